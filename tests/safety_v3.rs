//! APIv3 safety over loopback: error answers verified when signed, no call sent that could not
//! be verified, unsigned answers trusted only on the exact documented download paths, the
//! certificate refresher's range, and serials compared as numbers.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use common::{
    certificates_body, error_reply, platform_certificate, Keys, Reply, Server, MCHID, SERIAL,
};
use serde_json::json;
use wechatpay_chain::{Builder, Error, PrivateKey};

const APIV3: &str = "apiv3keyapiv3keyapiv3keyapiv3key";

#[test]
fn signed_looking_error_answers_are_verified() {
    // A forged error that carries Wechatpay-* headers is refused, not handed out as the
    // platform's word (a forged ORDER_NOT_EXIST could make a merchant charge twice).
    let forged = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, true)));
    let e = forged
        .client()
        .chain("v3/pay/transactions/out-trade-no/{n}")
        .get(json!({"n": "T1", "query": {"mchid": MCHID}}))
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");

    // Signed with a key that is not the platform's, or only some headers: refused too.
    let stranger = platform_certificate("0BADC0DE", -1, 10).0;
    let wrong = Server::start(
        Keys::shared(),
        Arc::new(move |_| Reply {
            sign_key: Some(stranger.clone()),
            ..error_reply(true, false)
        }),
    );
    let e = wrong.client().chain("v3/x").get(json!({})).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    let partial = Server::start(
        Keys::shared(),
        Arc::new(|_| {
            let mut r = error_reply(false, false);
            r.headers
                .push(("Wechatpay-Serial".into(), common::PUB_KEY_ID.into()));
            r
        }),
    );
    let e = partial.client().chain("v3/x").get(json!({})).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");

    // A genuine signed error: the platform's word, verified.
    let genuine = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, false)));
    let e = genuine.client().chain("v3/x").get(json!({})).unwrap_err();
    match &e {
        Error::Api {
            status, verified, ..
        } => {
            assert_eq!(*status, 404);
            assert!(*verified);
        }
        other => panic!("{other:?}"),
    }
    assert!(!e.to_string().contains("unverified"), "{e}");

    // No Wechatpay-* header at all (a gateway's answer): an API error, said to be unverified.
    let gateway = Server::start(Keys::shared(), Arc::new(|_| error_reply(false, false)));
    let e = gateway.client().chain("v3/x").get(json!({})).unwrap_err();
    match &e {
        Error::Api {
            status, verified, ..
        } => {
            assert_eq!(*status, 404);
            assert!(!*verified);
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("(unverified)"), "{e}");
}

#[test]
fn apiv3_calls_that_could_not_be_verified_are_not_sent() {
    let server = Server::start(Keys::shared(), common::echo());
    let client = Builder::new()
        .mchid(MCHID)
        .serial(SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(server.base())
        .build()
        .unwrap();
    let e = client
        .chain("v3/refund/domestic/refunds")
        .post(json!({"json": {"out_refund_no": "R1", "amount": {"refund": 1, "total": 1, "currency": "CNY"}}}))
        .unwrap_err();
    match &e {
        Error::Config(m) => {
            for word in [
                "platform_public_key",
                "platform_certificate",
                "auto_certificates",
            ] {
                assert!(m.contains(word), "{m}");
            }
        }
        other => panic!("{other:?}"),
    }
    let media =
        wechatpay_chain::util::media::Media::new("a.png", b"\x89PNG\r\n\x1a\n0000".to_vec())
            .unwrap();
    let e = client
        .chain("v3/merchant/media/upload")
        .upload(&media, json!({}))
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let e = client
        .download_to("/v3/billdownload/file?token=x", json!({}), Vec::new())
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
    assert!(server.recorded().is_empty());

    // The certificate downloader verifies by what it downloads: it still works with no key.
    let (cert_key, cert_pem) = &*CERT_LEADING_ZERO;
    let certs = {
        let pem = cert_pem.clone();
        let key = cert_key.clone();
        Server::start(
            Keys::shared(),
            Arc::new(move |_| Reply {
                sign_as: Some(SERIAL_LEADING_ZERO.into()),
                sign_key: Some(key.clone()),
                ..Reply::json(
                    200,
                    certificates_body(APIV3, &[(SERIAL_LEADING_ZERO, pem.as_str())]),
                )
            }),
        )
    };
    let client = Builder::new()
        .mchid(MCHID)
        .serial(SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(certs.base())
        .build()
        .unwrap();
    assert_eq!(client.download_certificates(APIV3).unwrap().len(), 1);
    // So does a client that downloads them on its own.
    let auto = Builder::new()
        .mchid(MCHID)
        .serial(SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(certs.base())
        .auto_certificates(APIV3)
        .build()
        .unwrap();
    auto.chain("v3/certificates").get(json!({})).unwrap();

    // An APIv2-only client is not concerned.
    let v2 = Builder::new()
        .secret("v2secretv2secretv2secretv2secret")
        .base_uri(server.base())
        .build()
        .unwrap();
    let before = server.recorded().len();
    let _ = v2
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"appid": "wx1", "mch_id": MCHID, "out_trade_no": "T1"}}));
    assert_eq!(server.recorded().len(), before + 1);
}

/// A 200 answer with no `Wechatpay-*` header, whatever was asked.
fn unsigned_server() -> Server {
    Server::start(
        Keys::shared(),
        Arc::new(|_| Reply {
            sign_as: None,
            ..Reply::json(200, json!({"trade_state": "SUCCESS"}))
        }),
    )
}

#[test]
fn unsigned_answers_are_trusted_only_on_the_exact_download_paths() {
    let server = unsigned_server();
    let client = server.client();
    for path in [
        "v3/merchant-service/images/../../pay/transactions/id/1",
        "v3/merchant-service/images/./x/../../../pay/transactions/id/1",
        "v3/merchant-service/images/%2e%2e/%2E%2E/pay/transactions/id/1",
        "v3/merchant-service/images/.%2e/.%2E/pay/transactions/id/1",
        "v3/merchant-service/images/upload/",
        "v3/merchant-service/images/upload",
        "v3/merchant-service/images/a/b",
        "v3/merchant-service/images/a;b",
        "v3/merchant-service/images/",
        "v3/billdownload/file;/x",
        "v3/billdownload/file/.",
        "v3/transferdownload/signfile/../../pay/transactions/id/1",
        "v3/billdownload/./file",
        "v3/x/../billdownload/file",
        "global/v3/billdownload/file",
        "v3/global/billdownload/file",
    ] {
        let e = client.chain(path).get(json!({})).unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{path}: {e}");
    }
    // A placeholder value that is a dot segment is no media id either.
    for id in ["..", ".", "%2e%2e"] {
        let e = client
            .chain("v3/merchant-service/images/{media_id}")
            .get(json!({"media_id": id}))
            .unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{id}: {e}");
    }
    // download_to checks like every other call.
    for url in [
        "/v3/merchant-service/images/../../pay/transactions/id/1",
        "/v3/merchant-service/images/upload/",
        "/v3/billdownload/file;/x?token=1",
        "/v3/pay/transactions/id/1",
    ] {
        let e = client.download_to(url, json!({}), Vec::new()).unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{url}: {e}");
    }
    // The documented downloads themselves stay unsigned.
    for path in [
        "v3/billdownload/file",
        "v3/transferdownload/signfile",
        "v3/transferdownload/elecvoucherfile",
    ] {
        client
            .chain(path)
            .get(json!({"query": {"token": "x"}}))
            .unwrap();
    }
    client
        .chain("v3/merchant-service/images/{media_id}")
        .get(json!({"media_id": "ChsyMDIzMDUxNjE1MjMxOTA4MTU4NDQxNzY4MDAY"}))
        .unwrap();
    client
        .download_to("/v3/merchant-service/images/abc%3D", json!({}), Vec::new())
        .unwrap();
}

#[test]
fn refresh_intervals_that_would_overflow_are_refused_at_build() {
    let server = unsigned_server();
    for every in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs(366 * 86_400),
    ] {
        let r = Builder::new()
            .mchid(MCHID)
            .serial(SERIAL)
            .private_key(Keys::shared().merchant.clone())
            .platform_public_key(common::PUB_KEY_ID, Keys::shared().platform_public.clone())
            .base_uri(server.base())
            .auto_certificates(APIV3)
            .certificate_refresh_interval(every)
            .build();
        match r {
            Err(Error::Config(m)) => assert!(m.contains("certificate_refresh_interval"), "{m}"),
            other => panic!("{every:?}: {other:?}"),
        }
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

/// A serial whose hex has a leading zero (`08…`), as the platform lists it without (`8…`).
const SERIAL_LEADING_ZERO: &str = "083D6A1A5A0A8E4B1F8C2C2F2A0A1B2C3D4E5F60";
const LISTED: &str = "83D6A1A5A0A8E4B1F8C2C2F2A0A1B2C3D4E5F60";
static CERT_LEADING_ZERO: LazyLock<(PrivateKey, String)> =
    LazyLock::new(|| platform_certificate(SERIAL_LEADING_ZERO, -1, 365));

#[test]
fn serials_compare_as_numbers() {
    let (key, pem) = CERT_LEADING_ZERO.clone();
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |req| {
            let body = if req.target.starts_with("/v3/certificates") {
                certificates_body(APIV3, &[(LISTED, pem.as_str())])
            } else {
                json!({"ok": true})
            };
            Reply {
                sign_as: Some(if req.target.contains("lower") {
                    SERIAL_LEADING_ZERO.to_ascii_lowercase()
                } else {
                    LISTED.into()
                }),
                sign_key: Some(key.clone()),
                ..Reply::json(200, body)
            }
        }),
    );
    let client = Builder::new()
        .mchid(MCHID)
        .serial(SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(server.base())
        .build()
        .unwrap();
    let list = client.download_certificates(APIV3).unwrap();
    assert_eq!(list.len(), 1);
    let client = Builder::new()
        .mchid(MCHID)
        .serial(SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(server.base())
        .platform_certificate(list[0].certificate.clone())
        .build()
        .unwrap();
    client.chain("v3/a").get(json!({})).unwrap();
    client.chain("v3/lower").get(json!({})).unwrap();
    assert!(client.keyring().get(LISTED).is_some());
    assert!(client
        .keyring()
        .get(&SERIAL_LEADING_ZERO.to_ascii_lowercase())
        .is_some());
    assert!(client
        .keyring()
        .get("0083D6A1A5A0A8E4B1F8C2C2F2A0A1B2C3D4E5F6")
        .is_none());
}

#[test]
fn apiv2_unsigned_exemptions_hold_only_for_plain_paths() {
    let server = Server::start(
        Keys::shared(),
        Arc::new(|_| {
            Reply {
            sign_as: None,
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: b"<xml><return_code>SUCCESS</return_code><result_code>SUCCESS</result_code><trade_state>SUCCESS</trade_state></xml>".to_vec(),
            ..Reply::json(200, json!(null))
        }
        }),
    );
    let client = Builder::new()
        .secret("v2secretv2secretv2secretv2secret")
        .base_uri(server.base())
        .build()
        .unwrap();
    let xml = json!({"xml": {"appid": "wx1", "mch_id": MCHID, "out_trade_no": "T1"}});
    for path in [
        "v2/pay/orderquery;/pay/downloadbill",
        "v2/pay/orderquery/../../pay/downloadbill",
        "v2/pay/orderquery/%2e%2e/%2e%2e/pay/downloadbill",
    ] {
        let e = client.chain(path).post(xml.clone()).unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{path}: {e}");
    }
}

const CERT_OLD: &str = "1A0000000000000000000000000000000000000A";
const CERT_NEW: &str = "0B0000000000000000000000000000000000000B";

#[test]
fn requests_name_the_platform_key_expected() {
    let server = Server::start(Keys::shared(), common::echo());
    let named = |client: &wechatpay_chain::Client, args: serde_json::Value| {
        let _ = client.chain("v3/a").post(args);
        server.last().headers["wechatpay-serial"]
            .to_str()
            .unwrap()
            .to_string()
    };
    // The public key when there is one.
    assert_eq!(named(&server.client(), json!({})), common::PUB_KEY_ID);
    // Else the newest certificate (latest notBefore, whatever the serials' order).
    let old = wechatpay_chain::Rsa::from_certificate(&platform_certificate(CERT_OLD, -30, 365).1)
        .unwrap();
    let new =
        wechatpay_chain::Rsa::from_certificate(&platform_certificate(CERT_NEW, -1, 365).1).unwrap();
    let certs_only = || {
        Builder::new()
            .mchid(MCHID)
            .serial(SERIAL)
            .private_key(Keys::shared().merchant.clone())
            .base_uri(server.base())
            .platform_certificate(new.clone())
            .platform_certificate(old.clone())
    };
    assert_eq!(
        named(&certs_only().build().unwrap(), json!({})),
        new.serial()
    );
    // Both: the public key, unless the builder pins the certificate (a migration under way).
    let both = certs_only()
        .platform_public_key(common::PUB_KEY_ID, Keys::shared().platform_public.clone());
    assert_eq!(named(&both.build().unwrap(), json!({})), common::PUB_KEY_ID);
    let both = certs_only()
        .platform_public_key(common::PUB_KEY_ID, Keys::shared().platform_public.clone());
    let pinned = both.wechatpay_serial(CERT_OLD).build().unwrap();
    assert_eq!(named(&pinned, json!({})), CERT_OLD);
    // An explicit header in the args wins.
    assert_eq!(
        named(&pinned, json!({"headers": {"Wechatpay-Serial": CERT_NEW}})),
        CERT_NEW
    );
    // A pinned serial that no configured key has is refused at build.
    match certs_only().wechatpay_serial("PUB_KEY_ID_0000").build() {
        Err(Error::Config(m)) => assert!(m.contains("wechatpay_serial"), "{m}"),
        other => panic!("{other:?}"),
    }
}
