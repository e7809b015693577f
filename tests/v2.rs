//! APIv2 against loopback servers: XML POST and GET query calls signed with MD5 and
//! HMAC-SHA256 (checked here by an independent implementation), verified answers, each error,
//! hostile XML answers, raw bill downloads, and mutual TLS against a server that requires the
//! merchant certificate, with a CA, server and client certificates made at test time.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use common::{rt, Keys, Recorded, Reply, Server, MCHID};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslVerifyMode};
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509NameBuilder, X509};
use serde_json::{json, Value};
use wechatpay_chain::{transformer, Builder, Client, Error};

const SECRET: &str = "v2secretv2secretv2secretv2secret";

// ---------------------------------------------------------------------------------------------
// An independent APIv2 signer (not the crate's): sorted by bytes, `k=v&…&key=SECRET`.

fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn independent_sign(fields: &[(String, String)], secret: &str, sign_type: &str) -> String {
    let mut f: Vec<&(String, String)> = fields
        .iter()
        .filter(|(k, v)| k != "sign" && !v.is_empty())
        .collect();
    f.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut s = f
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    s.push_str("&key=");
    s.push_str(secret);
    if sign_type == "HMAC-SHA256" {
        let key = PKey::hmac(secret.as_bytes()).unwrap();
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &key).unwrap();
        signer.update(s.as_bytes()).unwrap();
        hex_upper(&signer.sign_to_vec().unwrap())
    } else {
        hex_upper(&openssl::hash::hash(MessageDigest::md5(), s.as_bytes()).unwrap())
    }
}

fn get<'a>(fields: &'a [(String, String)], k: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The fields of a request: its XML body, or for GET its query.
fn request_fields(method: &str, target: &str, body: &[u8]) -> Vec<(String, String)> {
    if method == "GET" {
        let q = target.split_once('?').map(|(_, q)| q).unwrap_or("");
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    } else {
        let m = transformer::to_array(body).expect("request body is XML");
        m.into_iter()
            .map(|(k, v)| (k, v.as_str().expect("flat field").to_string()))
            .collect()
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Whether a recorded request's sign verifies under SECRET with its declared sign type.
fn request_sign_ok(fields: &[(String, String)]) -> bool {
    let kind = get(fields, "sign_type").unwrap_or("MD5");
    get(fields, "sign") == Some(independent_sign(fields, SECRET, kind).as_str())
}

/// An XML answer the way the platform writes one (CDATA everywhere).
fn xml_answer(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from("<xml>");
    for (k, v) in fields {
        s.push_str(&format!("<{k}><![CDATA[{v}]]></{k}>"));
    }
    s.push_str("</xml>");
    s.into_bytes()
}

fn signed_answer(fields: &[(&str, &str)], sign_type: &str) -> Vec<u8> {
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sign = independent_sign(&owned, SECRET, sign_type);
    let mut all = fields.to_vec();
    all.push(("sign", &sign));
    xml_answer(&all)
}

fn xml_reply(body: Vec<u8>) -> Reply {
    Reply {
        status: 200,
        body,
        headers: vec![("Content-Type".into(), "text/xml; charset=utf-8".into())],
        sign_as: None,
        skew: 0,
        tamper: false,
        delay: None,
        sign_key: None,
    }
}

const OK: &[(&str, &str)] = &[
    ("return_code", "SUCCESS"),
    ("return_msg", "OK"),
    ("result_code", "SUCCESS"),
    ("appid", "wx2421b1c4370ec43b"),
    ("prepay_id", "wx201410272009395522657a690389285100"),
    ("nonce_str", "IITRi8Iabbblz1Jc"),
];

/// A v2 server answering `body` to every request.
fn v2_server(body: Vec<u8>) -> Server {
    let reply = xml_reply(body);
    Server::start(Keys::shared(), Arc::new(move |_r: &Recorded| reply.clone()))
}

fn v2_builder(server: &Server) -> Builder {
    setup();
    server.builder().secret(SECRET)
}

fn nothing_sent(server: &Server) -> bool {
    server.recorded().is_empty()
}

// ---------------------------------------------------------------------------------------------
// Test PKI: a CA, the server's certificate (localhost, 127.0.0.1) and the merchant's client
// certificate, all made at test time; a rogue CA and client certificate the server must refuse.

struct Pki {
    ca: X509,
    server: (X509, PKey<Private>),
    client: (X509, PKey<Private>),
    rogue_client: (X509, PKey<Private>),
}

fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
}

enum Role {
    Ca,
    Server,
    Client,
}

fn make_cert(
    cn: &str,
    key: &PKey<Private>,
    issuer: Option<(&X509, &PKey<Private>)>,
    role: Role,
) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    match issuer {
        Some((ca, _)) => b.set_issuer_name(ca.subject_name()).unwrap(),
        None => b.set_issuer_name(&name).unwrap(),
    }
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    match role {
        Role::Ca => {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
            b.append_extension(
                KeyUsage::new()
                    .critical()
                    .key_cert_sign()
                    .crl_sign()
                    .build()
                    .unwrap(),
            )
            .unwrap();
        }
        Role::Server => {
            let san = SubjectAlternativeName::new()
                .dns("localhost")
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|(c, _)| c.as_ref()), None))
                .unwrap();
            b.append_extension(san).unwrap();
            b.append_extension(ExtendedKeyUsage::new().server_auth().build().unwrap())
                .unwrap();
        }
        Role::Client => {
            b.append_extension(ExtendedKeyUsage::new().client_auth().build().unwrap())
                .unwrap();
        }
    }
    let signer = issuer.map(|(_, k)| k).unwrap_or(key);
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

fn pki() -> &'static Pki {
    static PKI: LazyLock<Pki> = LazyLock::new(|| {
        let ca_key = rsa_key();
        let ca = make_cert("wechatpay-chain test CA", &ca_key, None, Role::Ca);
        let server_key = rsa_key();
        let server = make_cert("localhost", &server_key, Some((&ca, &ca_key)), Role::Server);
        let client_key = rsa_key();
        let client = make_cert(MCHID, &client_key, Some((&ca, &ca_key)), Role::Client);
        let rogue_ca_key = rsa_key();
        let rogue_ca = make_cert("rogue CA", &rogue_ca_key, None, Role::Ca);
        let rogue_key = rsa_key();
        let rogue = make_cert(
            MCHID,
            &rogue_key,
            Some((&rogue_ca, &rogue_ca_key)),
            Role::Client,
        );
        // The client trusts the test CA the way the wire check makes it: SSL_CERT_FILE, set
        // before any TLS connector of this process exists (every test calls setup() first).
        let path = std::env::temp_dir().join(format!(
            "wechatpay-chain-v2-test-ca-{}.pem",
            std::process::id()
        ));
        std::fs::write(&path, ca.to_pem().unwrap()).unwrap();
        std::env::set_var("SSL_CERT_FILE", &path);
        Pki {
            ca,
            server: (server, server_key),
            client: (client, client_key),
            rogue_client: (rogue, rogue_key),
        }
    });
    &PKI
}

fn setup() {
    pki();
}

fn pem_cert(c: &X509) -> String {
    String::from_utf8(c.to_pem().unwrap()).unwrap()
}

fn pem_pkcs8(k: &PKey<Private>) -> String {
    String::from_utf8(k.private_key_to_pem_pkcs8().unwrap()).unwrap()
}

/// A request as the TLS server received it, with the client certificate's CN.
#[derive(Debug, Clone)]
struct TlsRecorded {
    target: String,
    body: Vec<u8>,
    peer_cn: Option<String>,
}

struct TlsServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<TlsRecorded>>>,
    refused: Arc<AtomicUsize>,
}

/// A blocking HTTPS server on 127.0.0.1 that requires a client certificate issued by the test
/// CA; one request per connection; it accepts at most 16 connections, then stops.
fn tls_server(answer: Vec<u8>) -> TlsServer {
    let pki = pki();
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    b.set_certificate(&pki.server.0).unwrap();
    b.set_private_key(&pki.server.1).unwrap();
    b.cert_store_mut().add_cert(pki.ca.clone()).unwrap();
    b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    let acceptor = Arc::new(b.build());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(AtomicUsize::new(0));
    let (reqs, bad) = (requests.clone(), refused.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let (acceptor, reqs, bad, answer) =
                (acceptor.clone(), reqs.clone(), bad.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut s = match acceptor.accept(stream) {
                    Ok(s) => s,
                    Err(_) => {
                        bad.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                };
                let peer_cn = s.ssl().peer_certificate().and_then(|c| {
                    c.subject_name()
                        .entries_by_nid(Nid::COMMONNAME)
                        .next()
                        .and_then(|e| e.data().to_string().ok())
                });
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match s.read(&mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let target = head
                    .lines()
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .unwrap_or("")
                    .to_string();
                reqs.lock().unwrap().push(TlsRecorded {
                    target,
                    body: buf[head_end..head_end + len].to_vec(),
                    peer_cn,
                });
                let mut out = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    answer.len()
                )
                .into_bytes();
                out.extend_from_slice(&answer);
                let _ = s.write_all(&out);
                let _ = s.shutdown();
            });
        }
    });
    TlsServer {
        addr,
        requests,
        refused,
    }
}

impl TlsServer {
    fn base(&self) -> String {
        format!("https://localhost:{}/", self.addr.port())
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn post_xml_is_signed_with_hmac_and_the_answer_verified() {
    let server = v2_server(signed_answer(OK, "HMAC-SHA256"));
    let client = v2_builder(&server).build().unwrap();
    let res = client["v2"]["pay"]["unifiedorder"]
        .post(json!({"xml": {
            "appid": "wx2421b1c4370ec43b",
            "mch_id": MCHID,
            "sign_type": "HMAC-SHA256",
            "body": "腾讯充值中心-QQ会员充值",
            "attach": "a<b & \"c\"",
            "total_fee": 1,
            "detail": "",
        }}))
        .unwrap();
    let r = server.last();
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/pay/unifiedorder");
    assert_eq!(r.headers["content-type"], "text/xml; charset=utf-8");
    assert!(r.headers["accept"].to_str().unwrap().contains("text/xml"));
    assert!(
        !r.headers.contains_key("authorization"),
        "APIv2 has no Authorization"
    );
    let body = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        body.starts_with("<xml><appid>wx2421b1c4370ec43b</appid>"),
        "{body}"
    );
    assert!(
        body.contains("<attach><![CDATA[a<b & \"c\"]]></attach>"),
        "{body}"
    );
    assert!(body.contains("<detail></detail>"), "{body}");
    let fields = request_fields("POST", &r.target, &r.body);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "appid",
            "mch_id",
            "sign_type",
            "body",
            "attach",
            "total_fee",
            "detail",
            "nonce_str",
            "sign"
        ]
    );
    assert_eq!(get(&fields, "nonce_str").unwrap().len(), 32);
    assert_eq!(get(&fields, "sign").unwrap().len(), 64);
    assert!(request_sign_ok(&fields), "{fields:?}");

    assert_eq!(res.status(), 200);
    let xml = res.xml_map().unwrap();
    assert_eq!(xml[0], ("return_code".to_string(), "SUCCESS".to_string()));
    assert!(xml
        .iter()
        .any(|(k, v)| k == "prepay_id" && v.starts_with("wx2014")));
    let v: Value = res.json().unwrap();
    assert_eq!(v["appid"], "wx2421b1c4370ec43b");
}

#[test]
fn md5_is_the_default_and_nonceless_adds_no_nonce() {
    let server = v2_server(signed_answer(OK, "MD5"));
    let client = v2_builder(&server).build().unwrap();
    client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"appid": "wx1", "mch_id": MCHID, "out_trade_no": "1217752501201407033233368018"}}))
        .unwrap();
    let f = request_fields("POST", &server.last().target, &server.last().body);
    assert!(get(&f, "sign_type").is_none(), "sign_type is not inserted");
    assert_eq!(get(&f, "sign").unwrap().len(), 32);
    assert!(request_sign_ok(&f));
    assert!(get(&f, "nonce_str").is_some());

    client
        .chain("v2/papay/preentrustweb")
        .post(json!({"nonceless": true, "xml": {"mch_id": MCHID, "plan_id": "12535"}}))
        .unwrap();
    let f = request_fields("POST", &server.last().target, &server.last().body);
    assert!(get(&f, "nonce_str").is_none());
    assert!(request_sign_ok(&f));
    assert_eq!(server.last().target, "/papay/preentrustweb");
}

#[test]
fn get_sends_the_signed_fields_as_the_query() {
    let server = v2_server(signed_answer(OK, "MD5"));
    let client = v2_builder(&server).build().unwrap();
    let res = client["v2"]["papay"]["querycontract"]
        .get(json!({"query": {
            "appid": "wx2421b1c4370ec43b",
            "mch_id": MCHID,
            "contract_code": "a b&c=d/中",
            "version": "1.0",
        }}))
        .unwrap();
    assert!(res.xml_map().is_some());
    let r = server.last();
    assert_eq!(r.method, "GET");
    assert!(r.body.is_empty());
    assert!(
        r.target
            .starts_with("/papay/querycontract?appid=wx2421b1c4370ec43b&mch_id="),
        "{}",
        r.target
    );
    assert!(
        !r.target.contains(' ') && !r.target.contains("中"),
        "{}",
        r.target
    );
    let f = request_fields("GET", &r.target, &r.body);
    assert_eq!(get(&f, "contract_code"), Some("a b&c=d/中"));
    assert!(get(&f, "nonce_str").is_some());
    assert!(request_sign_ok(&f), "{f:?}");
}

#[test]
fn mchid_must_match_the_data_and_nothing_is_sent_otherwise() {
    let server = v2_server(signed_answer(OK, "MD5"));
    let client = v2_builder(&server).build().unwrap();
    for xml in [
        json!({"mch_id": "1900000002"}),
        json!({"mchid": "1900000002"}),
        json!({"appid": "wx1"}),
    ] {
        match client.chain("v2/pay/orderquery").post(json!({"xml": xml})) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(MCHID), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(nothing_sent(&server));
    // combine_mch_id counts too
    client
        .chain("v2/pay/combinedorder")
        .post(json!({"xml": {"combine_mch_id": MCHID}}))
        .unwrap();
    assert_eq!(server.recorded().len(), 1);
}

#[test]
fn a_v2_only_client_needs_no_apiv3_keys() {
    let server = v2_server(signed_answer(OK, "MD5"));
    setup();
    let client = Builder::new()
        .secret(SECRET)
        .base_uri(server.base())
        .build()
        .unwrap();
    client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"mch_id": "any", "out_trade_no": "1"}}))
        .unwrap();
    assert!(request_sign_ok(&request_fields(
        "POST",
        "",
        &server.last().body
    )));
    // …and refuses APIv3 calls clearly
    assert!(matches!(
        client.chain("v3/certificates").get(json!({})),
        Err(Error::Config { .. })
    ));
    // a mchid alone is enough too
    Builder::new()
        .mchid(MCHID)
        .secret(SECRET)
        .base_uri(server.base())
        .build()
        .unwrap();
    assert_eq!(server.recorded().len(), 1);
}

#[test]
fn configuration_errors_send_nothing() {
    let server = v2_server(signed_answer(OK, "MD5"));
    setup();
    let no_secret = server.builder().build().unwrap();
    assert!(matches!(
        no_secret
            .chain("v2/pay/orderquery")
            .post(json!({"xml": {"mch_id": MCHID}})),
        Err(Error::Config { .. })
    ));
    let client = v2_builder(&server).build().unwrap();
    match client
        .chain("v2/secapi/pay/refund")
        .post(json!({"security": true, "xml": {"mch_id": MCHID}}))
    {
        Err(Error::Config { message: m, .. }) => assert!(m.contains("merchant_identity"), "{m}"),
        other => panic!("{other:?}"),
    }
    for bad in [
        json!({"xml": "<xml/>"}),
        json!({"security": "yes", "xml": {"mch_id": MCHID}}),
        json!({"json": {"mch_id": MCHID}}),
        json!({"xml": {"mch_id": MCHID, "sign_type": "SHA1"}}),
    ] {
        assert!(
            matches!(
                client.chain("v2/pay/orderquery").post(bad.clone()),
                Err(Error::InvalidArgument(_))
            ),
            "{bad}"
        );
    }
    assert!(nothing_sent(&server));
    assert!(matches!(
        v2_builder(&server).secret("").build(),
        Err(Error::Config { .. })
    ));
}

#[test]
fn v2_failures_are_errors_with_the_platform_fields() {
    let server = v2_server(xml_answer(&[
        ("return_code", "FAIL"),
        ("return_msg", "签名错误"),
    ]));
    let client = v2_builder(&server).build().unwrap();
    match client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"mch_id": MCHID}}))
    {
        Err(Error::V2 {
            return_code,
            return_msg,
            result_code,
            body,
            ..
        }) => {
            assert_eq!(return_code, "FAIL");
            assert_eq!(return_msg.as_deref(), Some("签名错误"));
            assert_eq!(result_code, None);
            assert!(!body.is_empty());
        }
        other => panic!("{other:?}"),
    }

    let server = v2_server(signed_answer(
        &[
            ("return_code", "SUCCESS"),
            ("result_code", "FAIL"),
            ("err_code", "ORDERNOTEXIST"),
            ("err_code_des", "此交易订单号不存在"),
        ],
        "MD5",
    ));
    let client = v2_builder(&server).build().unwrap();
    let err = client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"mch_id": MCHID}}))
        .unwrap_err();
    assert_eq!(err.code(), Some("ORDERNOTEXIST"));
    let line = err.to_string();
    assert!(
        line.contains("result_code=FAIL") && line.contains("此交易订单号不存在"),
        "{line}"
    );
}

#[test]
fn bad_or_missing_sign_is_a_verification_error_except_on_unsigned_paths() {
    let mut forged = OK.to_vec();
    forged.push(("sign", "0123456789ABCDEF0123456789ABCDEF"));
    let cases = [
        ("forged", xml_answer(&forged)),
        ("missing", xml_answer(OK)),
        ("other key", {
            let owned: Vec<(String, String)> = OK
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let s = independent_sign(&owned, "another-secret", "HMAC-SHA256");
            let mut f = OK.to_vec();
            f.push(("sign", &s));
            xml_answer(&f)
        }),
        ("tampered", {
            let good = String::from_utf8(signed_answer(OK, "MD5")).unwrap();
            good.replace("wx2421b1c4370ec43b", "wx0000000000000000")
                .into_bytes()
        }),
    ];
    for (name, body) in cases {
        let server = v2_server(body);
        let client = v2_builder(&server).build().unwrap();
        let r = client
            .chain("v2/pay/orderquery")
            .post(json!({"xml": {"mch_id": MCHID}}));
        assert!(matches!(r, Err(Error::Verification(_))), "{name}: {r:?}");
    }
    // The platform leaves these unsigned: red packets, transfers, bank transfers …
    let server = v2_server(xml_answer(OK));
    let client = v2_builder(&server).build().unwrap();
    for path in [
        "v2/mmpaysptrans/query_bank",
        "v2/mmpaysptrans/pay_bank",
        "v2/mmpaymkttransfers/gethbinfo",
    ] {
        let res = client
            .chain(path)
            .post(json!({"xml": {"mch_id": MCHID}}))
            .unwrap();
        assert!(res.xml_map().is_some(), "{path}");
    }
    // … but not PHP's misspelt bank paths
    let r = client
        .chain("v2/mmpaymkttransfers/query_bank")
        .post(json!({"xml": {"mch_id": MCHID}}));
    assert!(matches!(r, Err(Error::Verification(_))), "{r:?}");
}

/// The answer of a v2 server whose reply is `body`, to an orderquery signed with `sign_type`.
fn orderquery_answer(body: Vec<u8>, sign_type: &str) -> Result<wechatpay_chain::Response, Error> {
    orderquery_answer_with(body, sign_type, false)
}

fn orderquery_answer_with(
    body: Vec<u8>,
    sign_type: &str,
    either: bool,
) -> Result<wechatpay_chain::Response, Error> {
    let server = v2_server(body);
    let client = v2_builder(&server)
        .v2_either_sign_type(either)
        .build()
        .unwrap();
    let r = client.chain("v2/pay/orderquery").post(json!({"xml": {
        "appid": "wx2421b1c4370ec43b", "mch_id": MCHID, "sign_type": sign_type,
        "out_trade_no": "1217752501201407033233368018",
    }}));
    assert_eq!(server.recorded().len(), 1);
    r
}

/// `body` with `extra` inserted raw before `</xml>`.
fn inject(body: Vec<u8>, extra: &str) -> Vec<u8> {
    String::from_utf8(body)
        .unwrap()
        .replace("</xml>", &format!("{extra}</xml>"))
        .into_bytes()
}

#[test]
fn unsigned_nested_elements_in_a_signed_answer_are_refused() {
    let mut fields = OK.to_vec();
    fields.push(("total_fee", "1"));
    for extra in [
        "<coupon_fee><forged>9999</forged></coupon_fee>",
        "<coupon_fee>1<forged>9999</forged></coupon_fee>",
        "<coupon_fee><![CDATA[1]]><forged>9999</forged></coupon_fee>",
    ] {
        let body = inject(signed_answer(&fields, "MD5"), extra);
        match orderquery_answer(body, "MD5") {
            Err(Error::Verification(m)) => assert!(!m.contains("9999"), "{m}"),
            Err(other) => panic!("{extra}: {other}"),
            Ok(res) => panic!("{extra}: accepted as {:?}", res.xml_map()),
        }
    }
    // a signed field repeated: which one the sign covers is ambiguous
    let body = inject(signed_answer(&fields, "MD5"), "<total_fee>9999</total_fee>");
    assert!(matches!(
        orderquery_answer(body, "MD5"),
        Err(Error::Decode { .. })
    ));
    // a signed flat answer still passes, attributes are never handed out
    let body = String::from_utf8(signed_answer(&fields, "MD5"))
        .unwrap()
        .replace("<total_fee>", "<total_fee forged=\"9999\">")
        .into_bytes();
    let res = orderquery_answer(body, "MD5").unwrap();
    let v: Value = res.json().unwrap();
    assert_eq!(v["total_fee"], "1");
    assert!(!v.to_string().contains("9999"), "{v}");
}

#[test]
fn error_answers_must_be_signed_unless_a_bare_return_code_fail() {
    let biz = [
        ("return_code", "SUCCESS"),
        ("result_code", "FAIL"),
        ("err_code", "ORDERNOTEXIST"),
        ("err_code_des", "此交易订单号不存在"),
    ];
    let mut forged = biz.to_vec();
    forged.push(("sign", "0123456789ABCDEF0123456789ABCDEF"));
    for (name, body) in [
        ("unsigned", xml_answer(&biz)),
        ("wrong sign", xml_answer(&forged)),
    ] {
        match orderquery_answer(body, "MD5") {
            Err(Error::Verification(_)) => {}
            other => panic!("{name}: a forged ORDERNOTEXIST must not pass: {other:?}"),
        }
    }
    // return_code FAIL with a wrong sign: checked too
    let mut fail = vec![("return_code", "FAIL"), ("return_msg", "签名错误")];
    fail.push(("sign", "0123456789ABCDEF0123456789ABCDEF"));
    assert!(matches!(
        orderquery_answer(xml_answer(&fail), "MD5"),
        Err(Error::Verification(_))
    ));
    // the platform's unsigned communication failure: Error::V2, said to be unauthenticated,
    // and carrying no business code it could have made up
    let bare = xml_answer(&[
        ("return_code", "FAIL"),
        ("return_msg", "签名错误"),
        ("err_code", "ORDERNOTEXIST"),
    ]);
    match orderquery_answer(bare, "MD5") {
        Err(
            e @ Error::V2 {
                verified: false,
                err_code: None,
                ..
            },
        ) => {
            assert_eq!(e.code(), Some("FAIL"));
            assert!(e.to_string().contains("not authenticated"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // a signed business error is what it says
    match orderquery_answer(signed_answer(&biz, "HMAC-SHA256"), "HMAC-SHA256") {
        Err(e @ Error::V2 { verified: true, .. }) => {
            assert_eq!(e.code(), Some("ORDERNOTEXIST"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_answer_must_be_signed_with_the_request_sign_type() {
    match orderquery_answer(signed_answer(OK, "MD5"), "HMAC-SHA256") {
        Err(Error::Verification(m)) => assert!(m.contains("HMAC-SHA256"), "{m}"),
        other => panic!("an MD5 answer to an HMAC-SHA256 request: {other:?}"),
    }
    assert!(matches!(
        orderquery_answer(signed_answer(OK, "HMAC-SHA256"), "MD5"),
        Err(Error::Verification(_))
    ));
    orderquery_answer(signed_answer(OK, "HMAC-SHA256"), "HMAC-SHA256").unwrap();
    orderquery_answer(signed_answer(OK, "MD5"), "MD5").unwrap();
}

#[test]
fn either_sign_type_is_an_explicit_opt_in_that_still_checks_the_sign() {
    // wechatpay-php reads the type off the sign's length; so does the opt-in, and no more.
    orderquery_answer_with(signed_answer(OK, "MD5"), "HMAC-SHA256", true).unwrap();
    orderquery_answer_with(signed_answer(OK, "HMAC-SHA256"), "MD5", true).unwrap();
    // A field changed after signing still fails, whichever type the sign claims.
    let tampered = String::from_utf8(signed_answer(OK, "MD5"))
        .unwrap()
        .replace(
            "wx201410272009395522657a690389285100",
            "wx201410272009395522657a690389285199",
        );
    assert!(matches!(
        orderquery_answer_with(tampered.into_bytes(), "HMAC-SHA256", true),
        Err(Error::Verification(_))
    ));
}

#[test]
fn an_empty_apiv2_key_is_refused_where_it_is_configured() {
    let server = v2_server(signed_answer(OK, "MD5"));
    for blank in ["", "   "] {
        match v2_builder(&server).secret(blank).build() {
            Err(Error::Config { message: m, .. }) => assert!(m.contains("Builder::secret"), "{m}"),
            other => panic!("{blank:?}: {other:?}"),
        }
    }
    assert!(nothing_sent(&server));
}

#[test]
fn hostile_xml_answers_are_clean_errors() {
    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!("fixtures/v2/", $name)).to_vec()
        };
    }
    for (name, body) in [
        ("xxe", fixture!("xxe_injection.xml")),
        ("parameter entity", fixture!("xxe_parameter_entity.xml")),
        ("billion laughs", fixture!("billion_laughs.xml")),
        ("undeclared entity", fixture!("undeclared_entity.xml")),
        ("bad entity", fixture!("bad_entity.xml")),
        ("fragment injection", fixture!("fragment_injection.xml")),
        ("trailing junk", fixture!("trailing_junk.xml")),
        ("repeated elements", fixture!("batchjob.xml")),
        ("html 404", fixture!("html_404.html")),
        ("well-formed html", fixture!("html_404_plain.html")),
        ("unclosed", fixture!("unclosed.xml")),
        ("empty", Vec::new()),
        ("json", b"{\"return_code\":\"SUCCESS\"}".to_vec()),
    ] {
        let server = v2_server(body);
        let client = v2_builder(&server).build().unwrap();
        let r = client
            .chain("v2/pay/orderquery")
            .post(json!({"xml": {"mch_id": MCHID}}));
        match r {
            Err(Error::Decode { message: m, .. }) => {
                assert!(!m.contains("root:x:0:0"), "{name}: {m}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    // An HTML error page with its HTTP status is an API error, not a parse attempt.
    let server = Server::start(
        Keys::shared(),
        Arc::new(|_r: &Recorded| Reply {
            status: 404,
            ..xml_reply(include_bytes!("fixtures/v2/html_404.html").to_vec())
        }),
    );
    let client = v2_builder(&server).build().unwrap();
    let err = client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"mch_id": MCHID}}))
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
}

#[test]
fn bill_downloads_come_back_as_raw_bytes() {
    let csv =
        "交易时间,公众账号ID,商户号\r\n`2024-01-01 00:00:00,`wx2421b1c4370ec43b,`1900000001\r\n";
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| Reply {
            headers: vec![("Content-Type".into(), "text/plain;charset=utf-8".into())],
            ..xml_reply(if r.target.starts_with("/pay/downloadfundflow") {
                vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]
            } else {
                csv.as_bytes().to_vec()
            })
        }),
    );
    let client = v2_builder(&server).build().unwrap();
    let res = client["v2"]["pay"]["downloadbill"]
        .post(json!({"xml": {"mch_id": MCHID, "bill_date": "20240101", "bill_type": "ALL"}}))
        .unwrap();
    assert_eq!(res.text(), csv);
    assert!(res.xml_map().is_none());
    let res = client["v2"]["pay"]["downloadfundflow"]
        .post(json!({"xml": {"mch_id": MCHID, "bill_date": "20240101", "tar_type": "GZIP"}}))
        .unwrap();
    assert_eq!(&res.body()[..2], &[0x1f, 0x8b]);
    // the same bytes from a signed path are refused
    let r = client
        .chain("v2/pay/orderquery")
        .post(json!({"xml": {"mch_id": MCHID}}));
    assert!(matches!(r, Err(Error::Decode { .. })), "{r:?}");
}

#[test]
fn async_calls_work_too() {
    let server = v2_server(signed_answer(OK, "MD5"));
    let client = v2_builder(&server).build().unwrap();
    let res = rt()
        .block_on(
            client
                .chain("v2/pay/orderquery")
                .post_async(json!({"xml": {"mch_id": MCHID}})),
        )
        .unwrap();
    assert!(res.xml_map().is_some());
}

#[test]
fn secrets_never_show_in_debug() {
    setup();
    let pki = pki();
    let key_pem = pem_pkcs8(&pki.client.1);
    let b = Builder::new()
        .secret(SECRET)
        .merchant_identity(&pem_cert(&pki.client.0), &key_pem);
    let shown = format!("{b:?}");
    let client = b.build().unwrap();
    let shown = shown + &format!("{client:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("redacted"));
}

// ---------------------------------------------------------------------------------------------
// Mutual TLS

fn mtls_client(server_base: &str, cert: &X509, key_pem: &str) -> Client {
    setup();
    Builder::new()
        .mchid(MCHID)
        .secret(SECRET)
        .merchant_identity(&pem_cert(cert), key_pem)
        .base_uri(server_base)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn security_calls_present_the_merchant_certificate() {
    let pki = pki();
    let tls = tls_server(signed_answer(OK, "HMAC-SHA256"));
    let client = mtls_client(&tls.base(), &pki.client.0, &pem_pkcs8(&pki.client.1));
    let res = client["v2"]["secapi"]["pay"]["refund"]
        .post(json!({"security": true, "xml": {
            "appid": "wx2421b1c4370ec43b", "mch_id": MCHID, "out_refund_no": "1415701182",
            "total_fee": 1, "refund_fee": 1, "sign_type": "HMAC-SHA256"}}))
        .unwrap();
    assert!(res.xml_map().is_some());
    let recorded = tls.requests.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].target, "/secapi/pay/refund");
    assert_eq!(recorded[0].peer_cn.as_deref(), Some(MCHID));
    let f = request_fields("POST", "", &recorded[0].body);
    assert!(request_sign_ok(&f));

    // without `security` the call goes over the plain pool, which has no client identity:
    // the server refuses the handshake and the call fails as a transport error.
    let r = client
        .chain("v2/secapi/pay/refund")
        .post(json!({"xml": {"mch_id": MCHID}}));
    assert!(matches!(r, Err(Error::Transport { .. })), "{r:?}");
    assert_eq!(tls.requests.lock().unwrap().len(), 1);
    // The client may give up before the server thread has counted the refused handshake
    // (with TLS 1.3 the refusal arrives after the client's side of the handshake is done).
    let t0 = std::time::Instant::now();
    while tls.refused.load(Ordering::SeqCst) == 0 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(tls.refused.load(Ordering::SeqCst) >= 1);
}

#[test]
fn pkcs1_merchant_keys_work_and_foreign_certificates_are_refused() {
    let pki = pki();
    let tls = tls_server(signed_answer(OK, "MD5"));
    let rsa = pki.client.1.rsa().unwrap();
    let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
    assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
    let client = mtls_client(&tls.base(), &pki.client.0, &pkcs1);
    client
        .chain("v2/mmpaymkttransfers/sendredpack")
        .post(json!({"security": true, "xml": {"mch_id": MCHID}}))
        .unwrap();
    assert_eq!(tls.requests.lock().unwrap().len(), 1);

    let rogue = mtls_client(
        &tls.base(),
        &pki.rogue_client.0,
        &pem_pkcs8(&pki.rogue_client.1),
    );
    let r = rogue
        .chain("v2/mmpaymkttransfers/sendredpack")
        .post(json!({"security": true, "xml": {"mch_id": MCHID}}));
    assert!(matches!(r, Err(Error::Transport { .. })), "{r:?}");
    assert_eq!(tls.requests.lock().unwrap().len(), 1);
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_at_build() {
    let pki = pki();
    let r = Builder::new()
        .secret(SECRET)
        .merchant_identity(&pem_cert(&pki.client.0), &pem_pkcs8(&pki.rogue_client.1))
        .build();
    assert!(matches!(r, Err(Error::Key { .. })), "{r:?}");
    let r = Builder::new()
        .merchant_identity("not a certificate", &pem_pkcs8(&pki.client.1))
        .build();
    assert!(matches!(r, Err(Error::Key { .. })), "{r:?}");
    let r = Builder::new()
        .merchant_identity(&pem_cert(&pki.client.0), "not a key")
        .build();
    match r {
        Err(Error::Key { message: m, .. }) => assert!(!m.contains("not a key")),
        other => panic!("{other:?}"),
    }
}
