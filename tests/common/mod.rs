//! A loopback stand-in for the platform, for integration tests: real sockets on 127.0.0.1,
//! keys generated at test time, every request recorded with whether its signature verified,
//! and answers signed (or not, or forged) as each test asks.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use wechatpay_chain::{formatter, Builder, Client, PrivateKey, PublicKey, Rsa, Scheme};

pub const MCHID: &str = "1900000001";
pub const SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1";
pub const PUB_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";

/// One tokio runtime for the whole test binary.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    });
    &RT
}

/// Key pairs made at test time.
#[derive(Clone)]
pub struct Keys {
    pub merchant: PrivateKey,
    pub merchant_pem: String,
    pub merchant_public: PublicKey,
    pub platform: PrivateKey,
    pub platform_public: PublicKey,
    pub platform_public_pem: String,
}

fn gen() -> (PrivateKey, String, PublicKey, String) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let pem = String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let pub_pem = String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap();
    let private = Rsa::from_private(&pem).unwrap();
    let public = Rsa::from_public(&pub_pem).unwrap();
    (private, pem, public, pub_pem)
}

impl Keys {
    /// Fresh keys (2048-bit generation takes a moment: share them within a test binary).
    pub fn new() -> Keys {
        let (merchant, merchant_pem, merchant_public, _) = gen();
        let (platform, _, platform_public, platform_public_pem) = gen();
        Keys {
            merchant,
            merchant_pem,
            merchant_public,
            platform,
            platform_public,
            platform_public_pem,
        }
    }

    /// The keys of this test binary.
    pub fn shared() -> &'static Keys {
        static K: LazyLock<Keys> = LazyLock::new(Keys::new);
        &K
    }

    /// Writes `merchant.pem` (the merchant private key) and `platform.pem` (the platform
    /// public key) into `dir`, for a command line to read; returns their paths.
    pub fn write_pems(&self, dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
        let (key, public) = (dir.join("merchant.pem"), dir.join("platform.pem"));
        std::fs::write(&key, &self.merchant_pem).unwrap();
        std::fs::write(&public, &self.platform_public_pem).unwrap();
        (key, public)
    }
}

/// A loopback address nothing listens on: bound to a free port, then closed.
pub fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// Whether the Authorization signature verified with the merchant's public key.
    pub signature_ok: bool,
    /// The `nonce_str` of the Authorization header.
    pub nonce: String,
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// Sign the answer with the platform key under this serial (None: unsigned).
    pub sign_as: Option<String>,
    /// Shift the signed timestamp by this many seconds.
    pub skew: i64,
    /// Change the body after signing.
    pub tamper: bool,
    /// Wait this long before answering.
    pub delay: Option<Duration>,
    /// Sign with this key instead of the platform key of `Keys`.
    pub sign_key: Option<PrivateKey>,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            body: serde_json::to_vec(&body).unwrap(),
            headers: vec![(
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            )],
            sign_as: Some(PUB_KEY_ID.into()),
            skew: 0,
            tamper: false,
            delay: None,
            sign_key: None,
        }
    }

    pub fn empty(status: u16) -> Reply {
        Reply {
            body: Vec::new(),
            headers: vec![],
            ..Reply::json(status, serde_json::Value::Null)
        }
    }
}

pub type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// The echo handler: 200 with the method, target and body it received, signed.
pub fn echo() -> Handler {
    Arc::new(|r: &Recorded| {
        Reply::json(
            200,
            serde_json::json!({
                "method": r.method,
                "target": r.target,
                "body": String::from_utf8_lossy(&r.body),
                "signature_ok": r.signature_ok,
            }),
        )
    })
}

pub struct Server {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    /// TCP connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    pub keys: Keys,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn verify_authorization(r: &mut Recorded, merchant: &PublicKey) {
    let Some(auth) = r.headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return;
    };
    // The merchant key's scheme (RSA, or SM2 for the 国密 tests) is the one to find.
    let scheme = Scheme::of_public_key(merchant);
    let Some(rest) = auth
        .strip_prefix(scheme.name())
        .and_then(|r| r.strip_prefix(' '))
    else {
        return;
    };
    let mut fields = std::collections::HashMap::new();
    for part in rest.split(',') {
        if let Some((k, v)) = part.split_once('=') {
            fields.insert(k.trim().to_string(), v.trim_matches('"').to_string());
        }
    }
    let (Some(ts), Some(nonce), Some(sig)) = (
        fields.get("timestamp"),
        fields.get("nonce_str"),
        fields.get("signature"),
    ) else {
        return;
    };
    r.nonce = nonce.clone();
    let msg = formatter::request(&r.method, &r.target, ts, nonce, &r.body);
    r.signature_ok = fields.get("mchid").map(String::as_str) == Some(MCHID)
        && fields.get("serial_no").map(String::as_str) == Some(SERIAL)
        && scheme.verify(&msg, sig, merchant);
}

impl Server {
    /// Starts a server on an ephemeral loopback port with `handler`.
    pub fn start(keys: &Keys, handler: Handler) -> Server {
        let keys = keys.clone();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let listener = rt().block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let (reqs, conns, k) = (requests.clone(), connections.clone(), keys.clone());
        let task = rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.fetch_add(1, Ordering::SeqCst);
                let (reqs, k, handler) = (reqs.clone(), k.clone(), handler.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (reqs, k, handler) = (reqs.clone(), k.clone(), handler.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let mut rec = Recorded {
                                method: parts.method.to_string(),
                                target: parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.to_string())
                                    .unwrap_or_default(),
                                headers: parts.headers,
                                body,
                                signature_ok: false,
                                nonce: String::new(),
                            };
                            verify_authorization(&mut rec, &k.merchant_public);
                            reqs.lock().unwrap().push(rec.clone());
                            let reply = handler(&rec);
                            if let Some(d) = reply.delay {
                                tokio::time::sleep(d).await;
                            }
                            Ok::<_, Infallible>(render(&k, reply))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            requests,
            connections,
            keys,
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// A builder wired to this server with the test keys.
    pub fn builder(&self) -> Builder {
        Server::builder_at(&self.keys, self.addr)
    }

    /// A builder with `keys` for a platform at `addr` (a server of a test's own).
    pub fn builder_at(keys: &Keys, addr: SocketAddr) -> Builder {
        Builder::new()
            .mchid(MCHID)
            .serial(SERIAL)
            .private_key(keys.merchant.clone())
            .platform_public_key(PUB_KEY_ID, keys.platform_public.clone())
            .base_uri(format!("http://{addr}/"))
            .timeout(Duration::from_secs(5))
    }

    pub fn client(&self) -> Client {
        self.builder().build().unwrap()
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request received")
    }
}

/// Signs and renders a reply.
pub fn render(keys: &Keys, reply: Reply) -> hyper::Response<Full<Bytes>> {
    let mut b = hyper::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(k, v);
    }
    let mut body = reply.body.clone();
    if let Some(serial) = &reply.sign_as {
        let ts = (formatter::timestamp() + reply.skew).to_string();
        let nonce = formatter::nonce(32);
        let key = reply.sign_key.as_ref().unwrap_or(&keys.platform);
        let sig = Scheme::of_key(key)
            .sign(&formatter::response(&ts, &nonce, &body), key)
            .unwrap();
        b = b
            .header("Wechatpay-Timestamp", ts)
            .header("Wechatpay-Nonce", nonce)
            .header("Wechatpay-Serial", serial)
            .header("Wechatpay-Signature", sig)
            .header("Request-ID", "08DBF3A5B906105012081702800000000");
        if reply.tamper {
            body.extend_from_slice(b" ");
        }
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

/// A platform key pair and a self-signed certificate for it with the given serial, valid from
/// `from_days` to `to_days` relative to now.
pub fn platform_certificate(
    serial_hex: &str,
    from_days: i64,
    to_days: i64,
) -> (PrivateKey, String) {
    use openssl::asn1::{Asn1Integer, Asn1Time};
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::x509::{X509NameBuilder, X509};
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Tenpay.com Root CA")
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&Asn1Integer::from_bn(&BigNum::from_hex_str(serial_hex).unwrap()).unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&pkey).unwrap();
    let now = formatter::timestamp();
    b.set_not_before(&Asn1Time::from_unix(now + from_days * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + to_days * 86_400).unwrap())
        .unwrap();
    b.sign(&pkey, MessageDigest::sha256()).unwrap();
    let pem = String::from_utf8(b.build().to_pem().unwrap()).unwrap();
    let key =
        Rsa::from_private(&String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap())
            .unwrap();
    (key, pem)
}

/// A `v3/certificates` answer body listing `pems` (serial, PEM), encrypted with `apiv3_key`.
pub fn certificates_body(apiv3_key: &str, certs: &[(&str, &str)]) -> serde_json::Value {
    let data: Vec<serde_json::Value> = certs
        .iter()
        .map(|(serial, pem)| {
            let nonce = formatter::nonce(12);
            serde_json::json!({
                "serial_no": serial,
                "effective_time": "2026-01-01T00:00:00+08:00",
                "expire_time": "2031-01-01T00:00:00+08:00",
                "encrypt_certificate": {
                    "algorithm": "AEAD_AES_256_GCM",
                    "nonce": nonce,
                    "associated_data": "certificate",
                    "ciphertext": wechatpay_chain::crypto::AesGcm::encrypt(pem, apiv3_key, &nonce, "certificate").unwrap(),
                }
            })
        })
        .collect();
    serde_json::json!({ "data": data })
}
pub mod upload;

/// Every `mchid` of `v` (a documented call's arguments), at any depth, set to `mchid`: the
/// sandbox's merchant is also the service provider (`sp_mchid`) and the combining merchant
/// (`combine_mchid`).
pub fn with_mchid(v: &mut serde_json::Value, mchid: &str) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if matches!(k.as_str(), "mchid" | "sp_mchid" | "combine_mchid") && x.is_string() {
                    *x = Value::from(mchid);
                } else {
                    with_mchid(x, mchid);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| with_mchid(x, mchid)),
        _ => {}
    }
}

/// A 404 ORDER_NOT_EXIST, signed or not, tampered after signing or not.
pub fn error_reply(sign: bool, tamper: bool) -> Reply {
    let mut r = Reply::json(
        404,
        serde_json::json!({"code": "ORDER_NOT_EXIST", "message": "订单不存在"}),
    );
    if !sign {
        r.sign_as = None;
    }
    r.tamper = tamper;
    r
}
