//! The client in the 国密 scheme against a loopback platform with SM2 keys generated at test
//! time: requests signed `WECHATPAY2-SM2-WITH-SM3`, SM2 answers verified, and the RSA twins of
//! tests/client.rs (forged, stale, another key, another scheme) refused alike; SM2 sensitive
//! fields, SM2 certificates downloaded with `algorithm_type=SM2` and opened with SM4-GCM,
//! notifications in AEAD_SM4_GCM, and bills checked with SM3 and opened from SM4_GCM.

mod common;

use std::sync::{Arc, LazyLock};

use common::{Keys, Recorded, Reply, Server, MCHID, PUB_KEY_ID, SERIAL};
use serde_json::json;
use wechatpay_chain::crypto::sm3::sm3_hex;
use wechatpay_chain::crypto::{Sm2, Sm4Gcm};
use wechatpay_chain::download::Bill;
use wechatpay_chain::{formatter, Builder, Error, PrivateKey, Scheme};

const SM2_TYPE: &str = "WECHATPAY2-SM2-WITH-SM3";
const RSA_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";
const APIV3: &str = "apiv3keyapiv3keyapiv3keyapiv3key";

fn sm2_keys() -> &'static Keys {
    static K: LazyLock<Keys> = LazyLock::new(|| {
        let merchant = Sm2::generate().unwrap();
        let platform = Sm2::generate().unwrap();
        let platform_public = platform.public_key().unwrap();
        let pem = |b: Vec<u8>| String::from_utf8(b).unwrap();
        Keys {
            merchant_pem: pem(merchant.as_openssl().private_key_to_pem_pkcs8().unwrap()),
            merchant_public: merchant.public_key().unwrap(),
            merchant,
            platform_public_pem: pem(platform_public.as_openssl().public_key_to_pem().unwrap()),
            platform_public,
            platform,
        }
    });
    &K
}

/// An answer as the platform signs it in the 国密 scheme: SM2, naming its scheme.
fn sm2_reply(body: serde_json::Value) -> Reply {
    let mut r = Reply::json(200, body);
    r.headers
        .push(("Wechatpay-Signature-Type".into(), SM2_TYPE.into()));
    r
}

fn sm2_builder(server: &Server) -> Builder {
    server.builder().scheme(Scheme::Sm2)
}

#[test]
fn requests_are_signed_with_sm2_and_sm2_answers_verify() {
    let server = Server::start(
        sm2_keys(),
        Arc::new(|r: &Recorded| sm2_reply(json!({"signature_ok": r.signature_ok}))),
    );
    let client = sm2_builder(&server).build().unwrap();
    let res = client
        .chain("v3/pay/transactions/native")
        .post(json!({"json": {"mchid": MCHID, "description": "国密"}}))
        .unwrap();
    assert_eq!(
        res.json::<serde_json::Value>().unwrap()["signature_ok"],
        true
    );
    let sent = server.last();
    assert!(
        sent.signature_ok,
        "the loopback platform verified the SM2 signature"
    );
    let auth = sent.headers["authorization"].to_str().unwrap();
    assert!(
        auth.starts_with(&format!(
            "{SM2_TYPE} mchid=\"{MCHID}\",serial_no=\"{SERIAL}\",timestamp=\""
        )),
        "{auth}"
    );
    // An SM2 answer that does not name its scheme is checked under the client's, SM2.
    let plain = Server::start(sm2_keys(), Arc::new(|_| Reply::json(200, json!({"a": 1}))));
    let client = sm2_builder(&plain).build().unwrap();
    assert_eq!(
        client
            .chain("v3/x")
            .get(json!({}))
            .unwrap()
            .json::<serde_json::Value>()
            .unwrap()["a"],
        1
    );
}

#[test]
fn forged_stale_and_scheme_mismatched_sm2_answers_are_refused() {
    let keys = sm2_keys();
    let rsa = Keys::shared();
    let secret = || sm2_reply(json!({"secret": "x"}));
    let cases: Vec<(&str, Reply)> = vec![
        (
            "tampered",
            Reply {
                tamper: true,
                ..secret()
            },
        ),
        (
            "stale",
            Reply {
                skew: -310,
                ..secret()
            },
        ),
        (
            "future",
            Reply {
                skew: 310,
                ..secret()
            },
        ),
        (
            // Signed with the SM2 key, but naming the RSA scheme: refused, not checked as SM2.
            "names RSA",
            Reply {
                headers: vec![("Wechatpay-Signature-Type".into(), RSA_TYPE.into())],
                ..secret()
            },
        ),
        (
            // A genuine RSA answer (RSA key, RSA named) to an SM2 client: no downgrade.
            "RSA-signed",
            Reply {
                headers: vec![("Wechatpay-Signature-Type".into(), RSA_TYPE.into())],
                sign_key: Some(rsa.platform.clone()),
                ..secret()
            },
        ),
        (
            "RSA-signed, naming SM2",
            Reply {
                sign_key: Some(rsa.platform.clone()),
                ..secret()
            },
        ),
        (
            "another SM2 key",
            Reply {
                sign_key: Some(Sm2::generate().unwrap()),
                ..secret()
            },
        ),
        (
            "unknown serial",
            Reply {
                sign_as: Some("PUB_KEY_ID_0000".into()),
                ..secret()
            },
        ),
        (
            "unsigned",
            Reply {
                sign_as: None,
                ..secret()
            },
        ),
    ];
    for (name, reply) in cases {
        let server = Server::start(keys, Arc::new(move |_| reply.clone()));
        let e = sm2_builder(&server)
            .build()
            .unwrap()
            .chain("v3/discount-card/orders/{n}")
            .get(json!({"n": "1"}))
            .unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{name}: {e}");
        assert!(!e.to_string().contains("secret"), "{name}: {e}");
    }
    // The twin the other way: a genuine SM2 answer to an RSA client is refused too.
    let server = Server::start(
        rsa,
        Arc::new(move |_| Reply {
            sign_key: Some(keys.platform.clone()),
            ..sm2_reply(json!({"secret": "x"}))
        }),
    );
    let e = server.client().chain("v3/x").get(json!({})).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(e.to_string().contains(SM2_TYPE), "{e}");
}

#[test]
fn the_builder_refuses_keys_of_the_other_scheme() {
    let server = Server::start(Keys::shared(), Arc::new(|_| Reply::json(200, json!({}))));
    // RSA keys in the SM2 scheme.
    let e = server.builder().scheme(Scheme::Sm2).build().unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    assert!(e.to_string().contains("Sm2::from_private"), "{e}");
    // An SM2 merchant key in the default RSA scheme.
    let e = server
        .builder()
        .private_key(sm2_keys().merchant.clone())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("merchant private key"), "{e}");
    // An RSA platform key beside SM2 ones.
    let e = Server::builder_at(sm2_keys(), server.addr)
        .scheme(Scheme::Sm2)
        .platform_public_key("PUB_KEY_ID_02", Keys::shared().platform_public.clone())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("PUB_KEY_ID_02"), "{e}");
}

#[test]
fn sensitive_fields_are_encrypted_with_sm2_for_the_platform_key() {
    let server = Server::start(sm2_keys(), Arc::new(|_| sm2_reply(json!({}))));
    let client = sm2_builder(&server).build().unwrap();
    let enc = client.encryptor().unwrap();
    assert_eq!(enc.serial(), PUB_KEY_ID);
    let ct = enc.encrypt("张三").unwrap();
    assert_eq!(
        Sm2::decrypt(&ct, &sm2_keys().platform).unwrap(),
        "张三".as_bytes()
    );
    assert!(Sm2::decrypt(&ct, &sm2_keys().merchant).is_err());
    client
        .chain("v3/applyment4sub/applyment/")
        .post(json!({"json": {"contact_name": ct}}))
        .unwrap();
    let sent = server.last();
    assert_eq!(sent.headers["wechatpay-serial"], PUB_KEY_ID);
}

/// An SM2 platform certificate (signed with SM3) with serial `serial_hex`, and its key.
fn sm2_certificate(serial_hex: &str) -> (PrivateKey, String) {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    let key = Sm2::generate().unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Tenpay.com Root CA")
        .unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_hex_str(serial_hex).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key.as_openssl()).unwrap();
    let now = formatter::timestamp();
    b.set_not_before(&Asn1Time::from_unix(now - 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + 365 * 86_400).unwrap())
        .unwrap();
    b.sign(key.as_openssl(), openssl::hash::MessageDigest::sm3())
        .unwrap();
    (key, String::from_utf8(b.build().to_pem().unwrap()).unwrap())
}

#[test]
fn sm2_certificates_are_listed_with_algorithm_type_sm2_and_opened_with_sm4_gcm() {
    const SERIAL_C: &str = "5C8C3C7C2CA06D319E4E414C2C3D4E5F60718293";
    let (cert_key, cert_pem) = sm2_certificate(SERIAL_C);
    let item = |algorithm: &str, ciphertext: String, nonce: &str| {
        json!({"data": [{
            "serial_no": SERIAL_C,
            "effective_time": "2026-01-01T00:00:00+08:00",
            "expire_time": "2031-01-01T00:00:00+08:00",
            "encrypt_certificate": {"algorithm": algorithm, "nonce": nonce,
                "associated_data": "certificate", "ciphertext": ciphertext}}]})
    };
    let good = item(
        "AEAD_SM4_GCM",
        Sm4Gcm::encrypt(&cert_pem, APIV3, "0123456789ab", "certificate").unwrap(),
        "0123456789ab",
    );
    // The same certificate encrypted as in the RSA scheme: not what an SM2 client accepts.
    let aes = item(
        "AEAD_AES_256_GCM",
        wechatpay_chain::crypto::AesGcm::encrypt(&cert_pem, APIV3, "0123456789ab", "certificate")
            .unwrap(),
        "0123456789ab",
    );
    for (listing, ok) in [(good, true), (aes, false)] {
        let (k, l) = (cert_key.clone(), listing.clone());
        let server = Server::start(
            sm2_keys(),
            Arc::new(move |_| Reply {
                sign_as: Some(SERIAL_C.into()),
                sign_key: Some(k.clone()),
                ..sm2_reply(l.clone())
            }),
        );
        let client = Builder::new()
            .scheme(Scheme::Sm2)
            .mchid(MCHID)
            .serial(SERIAL)
            .private_key(sm2_keys().merchant.clone())
            .base_uri(server.base())
            .auto_certificates(APIV3)
            .build()
            .unwrap();
        let listed = server.recorded();
        assert_eq!(listed[0].target, "/v3/certificates?algorithm_type=SM2");
        if ok {
            assert_eq!(client.keyring().serials(), vec![SERIAL_C.to_string()]);
            client.chain("v3/x").get(json!({})).unwrap();
        } else {
            assert!(client.keyring().is_empty(), "an AES-GCM listing is refused");
        }
    }
}

#[test]
fn notifications_verify_sm2_and_open_aead_sm4_gcm() {
    let keys = sm2_keys();
    let server = Server::start(keys, Arc::new(|_| sm2_reply(json!({}))));
    let notifier = sm2_builder(&server)
        .build()
        .unwrap()
        .notifier(APIV3)
        .unwrap();
    let body = |algorithm: &str, ciphertext: String| {
        serde_json::to_vec(&json!({
            "id": "EV-1", "create_time": "2026-12-07T10:00:00+08:00",
            "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
            "summary": "支付成功",
            "resource": {"algorithm": algorithm, "ciphertext": ciphertext, "nonce": "0123456789ab",
                "associated_data": "transaction", "original_type": "transaction"}}))
        .unwrap()
    };
    let signed = |body: &[u8], key: &PrivateKey, named: &str| {
        let ts = formatter::timestamp().to_string();
        let mut h = http::HeaderMap::new();
        h.insert("wechatpay-signature-type", named.parse().unwrap());
        let sig = Scheme::of_key(key)
            .sign(&formatter::response(&ts, "n0nce", body), key)
            .unwrap();
        h.insert("wechatpay-timestamp", ts.parse().unwrap());
        h.insert("wechatpay-nonce", "n0nce".parse().unwrap());
        h.insert("wechatpay-serial", PUB_KEY_ID.parse().unwrap());
        h.insert("wechatpay-signature", sig.parse().unwrap());
        h
    };
    let resource = r#"{"out_trade_no":"T1","trade_state":"SUCCESS"}"#;
    let sm4 = Sm4Gcm::encrypt(resource, APIV3, "0123456789ab", "transaction").unwrap();
    let good = body("AEAD_SM4_GCM", sm4.clone());
    let n = notifier
        .verify(&signed(&good, &keys.platform, SM2_TYPE), &good)
        .unwrap();
    assert_eq!(n.resource["out_trade_no"], "T1");
    assert_eq!(n.plaintext, resource);

    use wechatpay_chain::notify::Refusal;
    let refusal = |h: http::HeaderMap, b: &[u8]| match notifier.verify(&h, b) {
        Err(Error::Notification { kind, .. }) => kind,
        other => panic!("{other:?}"),
    };
    // Named RSA, or signed by RSA: BadSignature, as its RSA twin.
    assert_eq!(
        refusal(signed(&good, &keys.platform, RSA_TYPE), &good),
        Refusal::BadSignature
    );
    assert_eq!(
        refusal(signed(&good, &Keys::shared().platform, SM2_TYPE), &good),
        Refusal::BadSignature
    );
    // The resource in the RSA scheme's AEAD is not what an SM2 notifier opens.
    let aes = body(
        "AEAD_AES_256_GCM",
        wechatpay_chain::crypto::AesGcm::encrypt(resource, APIV3, "0123456789ab", "transaction")
            .unwrap(),
    );
    assert_eq!(
        refusal(signed(&aes, &keys.platform, SM2_TYPE), &aes),
        Refusal::UnsupportedAlgorithm
    );
    // A ciphertext changed after encryption (and then signed): Decryption.
    let mut raw = base64_decode(&sm4);
    raw[0] ^= 1;
    let bad = body("AEAD_SM4_GCM", base64_encode(&raw));
    assert_eq!(
        refusal(signed(&bad, &keys.platform, SM2_TYPE), &bad),
        Refusal::Decryption
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn bills_are_checked_with_sm3_and_opened_from_sm4_gcm() {
    let plain = "交易时间,公众账号ID,商户号\n`2026-12-01 10:00:00,`wx1,`1900000001\n".repeat(50);
    // The file key: 16 bytes for SM4; encrypted for the merchant's SM2 key.
    let file_key = *b"0123456789abcdef";
    let nonce = "bill-nonce12";
    // AEAD_SM4_GCM under the file key itself (not derived from the APIv3 key).
    let sealed = Sm4Gcm::encrypt_with_key(&plain, file_key, nonce, "").unwrap();
    let body = Arc::new(sealed.clone());
    let server = Server::start(
        sm2_keys(),
        Arc::new(move |_| Reply {
            sign_as: None,
            body: body.to_vec(),
            headers: vec![],
            ..Reply::empty(200)
        }),
    );
    let client = sm2_builder(&server).build().unwrap();
    let key_ct = Sm2::encrypt(file_key, &sm2_keys().merchant_public).unwrap();
    let url = format!("{}v3/billdownload/file?token=t", server.base());
    let bill = Bill::new(&url, "SM3", sm3_hex(&plain)).encrypted(&key_ct, nonce);
    let mut out = Vec::new();
    let done = client.download_bill(&bill, json!({}), &mut out).unwrap();
    assert_eq!(out, plain.as_bytes());
    assert_eq!(done.digest.as_deref(), Some(sm3_hex(&plain).as_str()));

    // Another SM3 value: refused after the whole file; a changed file: refused before a byte.
    let wrong = Bill::new(&url, "SM3", sm3_hex("other")).encrypted(&key_ct, nonce);
    let e = client
        .download_bill(&wrong, json!({}), Vec::new())
        .unwrap_err();
    assert!(e.to_string().contains("SM3"), "{e}");
    let other_nonce = Bill::new(&url, "SM3", sm3_hex(&plain)).encrypted(&key_ct, "other-nonce1");
    let mut out = Vec::new();
    let e = client
        .download_bill(&other_nonce, json!({}), &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(out.is_empty(), "nothing unauthenticated was written");
}
