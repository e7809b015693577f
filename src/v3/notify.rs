//! APIv3 notifications (webhooks): what a merchant's server does with a callback from the
//! platform. The signature is checked over the raw body exactly as received (with the same rules
//! as answers, [`client_json::verify_headers`]), then `resource` is decrypted with the APIv3 key
//! (AEAD_AES_256_GCM; AEAD_SM4_GCM and SM2 signatures when the keyring's scheme is the 国密
//! one, feature `shangmi`). Every failed check is its own [`Refusal`], so a server can tell a stale
//! retry from a forgery in its logs.
//!
//! A server answers 200 or 204 (no body) when [`Notifier::verify`] succeeds, and 4xx/5xx with
//! `{"code":"FAIL","message":"…"}` otherwise: the platform then sends the notification again.
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use bytes::Bytes;
//! use http_body_util::{BodyExt, Full, Limited};
//! use hyper::{body::Incoming, service::service_fn, Request, Response};
//! use hyper_util::rt::TokioIo;
//! use wechatpay_chain::notify::Notifier;
//!
//! async fn notified(
//!     notifier: Notifier,
//!     req: Request<Incoming>,
//! ) -> Result<Response<Full<Bytes>>, Infallible> {
//!     let (parts, body) = req.into_parts();
//!     let reply = |status: u16, body: &'static str| {
//!         Ok(Response::builder().status(status).body(Full::from(body)).unwrap())
//!     };
//!     // Notifications are small: read at most 1 MiB.
//!     let Ok(body) = Limited::new(body, 1 << 20).collect().await else {
//!         return reply(400, r#"{"code":"FAIL","message":"body too large"}"#);
//!     };
//!     match notifier.verify(&parts.headers, &body.to_bytes()) {
//!         Ok(n) => {
//!             // n.event_type == "TRANSACTION.SUCCESS", n.resource is the decrypted JSON.
//!             println!("{} {} {}", n.id, n.event_type, n.resource["out_trade_no"]);
//!             reply(204, "")
//!         }
//!         // The platform checking that merchants verify: refuse it, quietly.
//!         Err(wechatpay_chain::Error::Notification {
//!             kind: wechatpay_chain::notify::Refusal::SignatureProbe,
//!             ..
//!         }) => reply(400, r#"{"code":"FAIL","message":"signature probe"}"#),
//!         Err(e) => {
//!             eprintln!("{e}");
//!             reply(400, r#"{"code":"FAIL","message":"refused"}"#)
//!         }
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     # let client: wechatpay_chain::Client = unimplemented!();
//!     // The client's platform keys, and the APIv3 key set in the merchant platform.
//!     let notifier = client.notifier(std::env::var("WECHATPAY_APIV3_KEY")?)?;
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     loop {
//!         let (stream, _) = listener.accept().await?;
//!         let notifier = notifier.clone();
//!         tokio::spawn(async move {
//!             let svc = service_fn(move |req| notified(notifier.clone(), req));
//!             let _ = hyper::server::conn::http1::Builder::new()
//!                 .serve_connection(TokioIo::new(stream), svc)
//!                 .await;
//!         });
//!     }
//! }
//! ```

use std::fmt;
use std::sync::Arc;

use http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::client_json::{self, MAX_CLOCK_SKEW};
use crate::crypto::aes_gcm::KEY_LEN;
pub use crate::error::Refusal;
use crate::error::{one_line, Error};
use crate::formatter;
use crate::v3::keyring::Keyring;

/// How the platform's deliberately bad signatures begin, see [`Refusal::SignatureProbe`].
pub const SIGNATURE_PROBE: &str = "WECHATPAY/SIGNTEST/";

/// The algorithm the platform encrypts `resource` with.
pub const ALGORITHM: &str = "AEAD_AES_256_GCM";

fn refuse(kind: Refusal, message: impl Into<String>) -> Error {
    let message = message.into();
    tracing::debug!(%kind, %message, "notification refused");
    Error::Notification {
        kind,
        message,
        source: None,
    }
}

/// A verified, decrypted notification: the envelope's fields and the resource in clear.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Notification {
    /// The notification id, e.g. `EV-2018022511223320873`: the same on every retry, so it
    /// de-duplicates.
    pub id: String,
    /// When the platform created it, RFC 3339.
    pub create_time: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS` …
    pub event_type: String,
    /// `encrypt-resource`.
    pub resource_type: String,
    /// The platform's summary, e.g. `支付成功` (empty when absent).
    pub summary: String,
    /// `resource.original_type`, e.g. `transaction` (empty when absent).
    pub original_type: String,
    /// The decrypted resource as JSON; a plaintext that is not JSON is kept as a JSON string.
    pub resource: Value,
    /// The decrypted resource as text, exactly as decrypted.
    pub plaintext: String,
    /// The body as received (its `resource` still encrypted).
    pub envelope: Map<String, Value>,
}

impl Notification {
    /// The decrypted resource as any type, e.g. a struct of the transaction's fields.
    pub fn resource_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.plaintext).map_err(|e| {
            Error::decode_from(
                format!(
                    "the {} resource does not fit the requested type",
                    one_line(&self.event_type)
                ),
                e,
            )
        })
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Error> {
    let v = headers
        .get(name)
        .ok_or_else(|| refuse(Refusal::Header, format!("{name} is missing")))?;
    let s = v
        .to_str()
        .map_err(|_| refuse(Refusal::Header, format!("{name} is not ASCII")))?
        .trim();
    if s.is_empty() {
        return Err(refuse(Refusal::Header, format!("{name} is empty")));
    }
    Ok(s)
}

fn field<'a>(m: &'a Map<String, Value>, key: &str, within: &str) -> Result<&'a str, Error> {
    match m.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(refuse(
            Refusal::Malformed,
            format!("{within}{key} is missing"),
        )),
        Some(_) => Err(refuse(
            Refusal::Malformed,
            format!("{within}{key} is not a string"),
        )),
    }
}

fn optional<'a>(m: &'a Map<String, Value>, key: &str, within: &str) -> Result<&'a str, Error> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(_) => field(m, key, within),
    }
}

fn check_key(apiv3_key: &[u8]) -> Result<(), Error> {
    if apiv3_key.len() != KEY_LEN {
        return Err(Error::config(format!(
            "the APIv3 key must be {KEY_LEN} bytes, got {}",
            apiv3_key.len()
        )));
    }
    Ok(())
}

/// Verifies and decrypts a notification given the headers and the raw body received, at time
/// `now` (seconds): the pure function behind [`Notifier`].
///
/// The checks run in order, each failure its own [`Refusal`]: the four `Wechatpay-*` headers,
/// the platform's signature probe (`WECHATPAY/SIGNTEST/…`),
/// the ±300 s window, the serial, the signature, the envelope, the algorithm, the decryption.
/// An APIv3 key that is not 32 bytes is an [`Error::Config`].
pub fn verify(
    headers: &HeaderMap,
    body: &[u8],
    keyring: &Keyring,
    apiv3_key: impl AsRef<[u8]>,
    now: i64,
) -> Result<Notification, Error> {
    let apiv3_key = apiv3_key.as_ref();
    check_key(apiv3_key)?;
    let timestamp = header(headers, "wechatpay-timestamp")?;
    header(headers, "wechatpay-nonce")?;
    let serial = header(headers, "wechatpay-serial")?;
    let signature = header(headers, "wechatpay-signature")?;
    // The platform's probe is refused as what it is, before anything else is checked.
    if signature.starts_with(SIGNATURE_PROBE) {
        return Err(refuse(
            Refusal::SignatureProbe,
            "Wechatpay-Signature is the platform's signature probe (WECHATPAY/SIGNTEST/…): \
             answer non-2xx; nothing is wrong",
        ));
    }
    let ts: i64 = timestamp.parse().map_err(|_| {
        refuse(
            Refusal::Header,
            format!(
                "Wechatpay-Timestamp {:?} is not a number",
                one_line(timestamp)
            ),
        )
    })?;
    if now.abs_diff(ts) > MAX_CLOCK_SKEW as u64 {
        return Err(refuse(
            Refusal::Stale,
            format!(
                "Wechatpay-Timestamp {ts} is {} s away from now (limit {MAX_CLOCK_SKEW} s)",
                now.abs_diff(ts)
            ),
        ));
    }
    if keyring.get(serial).is_none() {
        return Err(refuse(
            Refusal::UnknownSerial,
            format!(
                "Wechatpay-Serial {:?} is not a known platform certificate or public key",
                one_line(serial)
            ),
        ));
    }
    // The checks above passed, so what is left for verify_headers to refuse is the signature.
    client_json::verify_headers(headers, body, keyring, now).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.strip_prefix("verification failed: ").unwrap_or(&msg);
        refuse(Refusal::BadSignature, msg)
    })?;

    let envelope: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        let mut refused = refuse(Refusal::Malformed, "body is not a JSON object");
        if let Error::Notification { source, .. } = &mut refused {
            *source = Some(Box::new(e));
        }
        refused
    })?;
    let id = field(&envelope, "id", "")?.to_string();
    let create_time = optional(&envelope, "create_time", "")?.to_string();
    let event_type = field(&envelope, "event_type", "")?.to_string();
    let resource_type = optional(&envelope, "resource_type", "")?.to_string();
    let summary = optional(&envelope, "summary", "")?.to_string();
    let resource = match envelope.get("resource") {
        Some(Value::Object(r)) => r,
        Some(_) => return Err(refuse(Refusal::Malformed, "resource is not an object")),
        None => return Err(refuse(Refusal::Malformed, "resource is missing")),
    };
    let algorithm = field(resource, "algorithm", "resource.")?;
    // The keyring's scheme names the one algorithm accepted (AEAD_SM4_GCM for the 国密 one).
    let expected = keyring.scheme().aead();
    if algorithm != expected {
        return Err(refuse(
            Refusal::UnsupportedAlgorithm,
            format!(
                "resource.algorithm is {:?}, expected {expected}",
                one_line(algorithm)
            ),
        ));
    }
    let ciphertext = field(resource, "ciphertext", "resource.")?;
    let nonce = field(resource, "nonce", "resource.")?;
    let aad = optional(resource, "associated_data", "resource.")?;
    let original_type = optional(resource, "original_type", "resource.")?.to_string();
    let clear = keyring
        .scheme()
        .open(ciphertext, apiv3_key, nonce, aad)
        .map_err(|e| {
            let msg = e.to_string();
            let msg = msg.strip_prefix("crypto error: ").unwrap_or(&msg);
            refuse(Refusal::Decryption, msg)
        })?;
    let plaintext = String::from_utf8(clear)
        .map_err(|_| refuse(Refusal::Malformed, "the decrypted resource is not UTF-8"))?;
    let resource =
        serde_json::from_str(&plaintext).unwrap_or_else(|_| Value::String(plaintext.clone()));
    Ok(Notification {
        id,
        create_time,
        event_type,
        resource_type,
        summary,
        original_type,
        resource,
        plaintext,
        envelope,
    })
}

/// Verifies notifications with a keyring and the APIv3 key: `Clone + Send + Sync`, cheap to
/// clone (two `Arc`s), for a server's handlers. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Notifier {
    keyring: Arc<Keyring>,
    key: Arc<[u8]>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notifier")
            .field("keyring", &self.keyring)
            .field("apiv3_key", &"redacted")
            .finish()
    }
}

impl Notifier {
    /// A notifier over `keyring` (shared: keys added later are seen) with the 32-byte APIv3 key.
    /// The keyring's scheme ([`Keyring::for_scheme`]) is the one notifications must be in.
    pub fn new(keyring: Arc<Keyring>, apiv3_key: impl AsRef<[u8]>) -> Result<Notifier, Error> {
        let key = apiv3_key.as_ref();
        check_key(key)?;
        Ok(Notifier {
            keyring,
            key: Arc::from(key),
        })
    }

    /// The platform keys notifications are verified with.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Verifies and decrypts a notification from its headers and raw body, now; see [`verify`].
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<Notification, Error> {
        verify(
            headers,
            body,
            &self.keyring,
            &self.key,
            formatter::timestamp(),
        )
    }

    /// Same as [`Notifier::verify`] at a given time (seconds since the epoch).
    pub fn verify_at(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<Notification, Error> {
        verify(headers, body, &self.keyring, &self.key, now)
    }

    /// Verifies a whole `http::Request` whose body has been read (any `AsRef<[u8]>`: `Bytes`,
    /// `Vec<u8>`, `String` …).
    pub fn verify_request<B: AsRef<[u8]>>(
        &self,
        req: &http::Request<B>,
    ) -> Result<Notification, Error> {
        self.verify(req.headers(), req.body().as_ref())
    }
}

impl crate::Client {
    /// A [`Notifier`] sharing this client's platform keys, with the merchant's APIv3 key.
    pub fn notifier(&self, apiv3_key: impl AsRef<[u8]>) -> Result<Notifier, Error> {
        Notifier::new(self.core().keyring.clone(), apiv3_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{AesGcm, PrivateKey, Rsa};
    use openssl::pkey::PKey;
    use serde_json::json;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn platform() -> (PrivateKey, Arc<Keyring>) {
        let k = PrivateKey::from_openssl(
            PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        );
        let ring = Keyring::new();
        ring.insert("PUB_KEY_ID_1", k.public_key().unwrap());
        (k, Arc::new(ring))
    }

    fn body(resource: &Value) -> Vec<u8> {
        let ct = AesGcm::encrypt(
            serde_json::to_vec(resource).unwrap(),
            KEY,
            "fdasflkja484w",
            "transaction",
        )
        .unwrap();
        serde_json::to_vec(&json!({
            "id": "EV-2018022511223320873",
            "create_time": "2015-05-20T13:29:35+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ct,
                "associated_data": "transaction",
                "nonce": "fdasflkja484w"
            }
        }))
        .unwrap()
    }

    fn headers(key: &PrivateKey, ts: i64, serial: &str, body: &[u8]) -> HeaderMap {
        let sig = Rsa::sign(formatter::response(&ts.to_string(), "n0nce", body), key).unwrap();
        let mut h = HeaderMap::new();
        h.insert("wechatpay-timestamp", ts.to_string().parse().unwrap());
        h.insert("wechatpay-nonce", "n0nce".parse().unwrap());
        h.insert("wechatpay-serial", serial.parse().unwrap());
        h.insert("wechatpay-signature", sig.parse().unwrap());
        h
    }

    fn kind(r: Result<Notification, Error>) -> Refusal {
        match r {
            Err(Error::Notification { kind, .. }) => kind,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[derive(serde::Deserialize)]
    struct Transaction {
        out_trade_no: String,
        amount: Amount,
    }
    #[derive(serde::Deserialize)]
    struct Amount {
        total: u64,
    }

    #[test]
    fn a_notification_naming_another_scheme_is_refused() {
        let (k, ring) = platform();
        let b = body(&json!({"out_trade_no": "1"}));
        let mut h = headers(&k, NOW, "PUB_KEY_ID_1", &b);
        h.insert(
            "wechatpay-signature-type",
            "WECHATPAY2-SHA256-RSA2048".parse().unwrap(),
        );
        verify(&h, &b, &ring, KEY, NOW).unwrap();
        // Signed with the RSA key all the same: the scheme it names is what is refused.
        h.insert(
            "wechatpay-signature-type",
            "WECHATPAY2-SM2-WITH-SM3".parse().unwrap(),
        );
        let e = verify(&h, &b, &ring, KEY, NOW).unwrap_err();
        assert!(e.to_string().contains("WECHATPAY2-SM2-WITH-SM3"), "{e}");
        assert_eq!(kind(Err(e)), Refusal::BadSignature);
    }

    #[test]
    fn a_good_notification_decrypts() {
        let (k, ring) = platform();
        let resource =
            json!({"out_trade_no": "1217752501201407033233368018", "amount": {"total": 100}});
        let b = body(&resource);
        let n = verify(&headers(&k, NOW, "PUB_KEY_ID_1", &b), &b, &ring, KEY, NOW).unwrap();
        assert_eq!(n.id, "EV-2018022511223320873");
        assert_eq!(n.create_time, "2015-05-20T13:29:35+08:00");
        assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
        assert_eq!(n.resource_type, "encrypt-resource");
        assert_eq!(n.summary, "支付成功");
        assert_eq!(n.original_type, "transaction");
        assert_eq!(n.resource, resource);
        assert_eq!(n.plaintext, serde_json::to_string(&resource).unwrap());
        assert!(n.envelope["resource"]["ciphertext"].is_string());
        let t: Transaction = n.resource_as().unwrap();
        assert_eq!(t.out_trade_no, "1217752501201407033233368018");
        assert_eq!(t.amount.total, 100);
        assert!(matches!(
            n.resource_as::<Vec<u8>>(),
            Err(Error::Decode { .. })
        ));

        // Through a Notifier and an http::Request too, within the window either side.
        let notifier = Notifier::new(ring.clone(), KEY).unwrap();
        for skew in [-300, 0, 300] {
            notifier
                .verify_at(&headers(&k, NOW + skew, "PUB_KEY_ID_1", &b), &b, NOW)
                .unwrap();
        }
        let mut req = http::Request::post("/notify").body(b.clone()).unwrap();
        *req.headers_mut() = headers(&k, formatter::timestamp(), "PUB_KEY_ID_1", &b);
        assert_eq!(notifier.verify_request(&req).unwrap().id, n.id);
        assert!(!format!("{notifier:?}").contains(KEY));
    }

    #[test]
    fn the_platforms_signature_probes_are_refused_as_such() {
        let (k, ring) = platform();
        let b = body(&json!({"a": 1}));
        let mut h = headers(&k, NOW, "PUB_KEY_ID_1", &b);
        h.insert(
            "wechatpay-signature",
            "WECHATPAY/SIGNTEST/dGVzdA==".parse().unwrap(),
        );
        let e = verify(&h, &b, &ring, KEY, NOW).unwrap_err();
        assert!(e.to_string().contains("signature probe"), "{e}");
        assert_eq!(kind(Err(e)).to_string(), "signature probe");
        // Refused as a probe whatever else is wrong with it, through a Notifier too.
        let notifier = Notifier::new(ring.clone(), KEY).unwrap();
        h.insert("wechatpay-serial", "PUB_KEY_ID_UNKNOWN".parse().unwrap());
        let e = notifier.verify_at(&h, &b, NOW + 3600).unwrap_err();
        assert_eq!(kind(Err(e)).to_string(), "signature probe");
        // A bad signature that is not a probe stays one.
        h.insert("wechatpay-serial", "PUB_KEY_ID_1".parse().unwrap());
        h.insert("wechatpay-signature", "WECHATPAY/dGVzdA==".parse().unwrap());
        assert_eq!(kind(verify(&h, &b, &ring, KEY, NOW)), Refusal::BadSignature);
    }

    #[test]
    fn each_failure_is_its_own_refusal() {
        let (k, ring) = platform();
        let b = body(&json!({"a": 1}));
        let good = headers(&k, NOW, "PUB_KEY_ID_1", &b);
        for name in [
            "wechatpay-timestamp",
            "wechatpay-nonce",
            "wechatpay-serial",
            "wechatpay-signature",
        ] {
            let mut h = good.clone();
            h.remove(name);
            let e = verify(&h, &b, &ring, KEY, NOW).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
            assert_eq!(kind(Err(e)), Refusal::Header);
            let mut h = good.clone();
            h.insert(name, " ".parse().unwrap());
            assert_eq!(kind(verify(&h, &b, &ring, KEY, NOW)), Refusal::Header);
        }
        let mut h = good.clone();
        h.insert("wechatpay-timestamp", "soon".parse().unwrap());
        assert_eq!(kind(verify(&h, &b, &ring, KEY, NOW)), Refusal::Header);

        for skew in [-301, 301, -86_400] {
            let h = headers(&k, NOW + skew, "PUB_KEY_ID_1", &b);
            assert_eq!(kind(verify(&h, &b, &ring, KEY, NOW)), Refusal::Stale);
        }
        let h = headers(&k, NOW, "PUB_KEY_ID_2", &b);
        assert_eq!(
            kind(verify(&h, &b, &ring, KEY, NOW)),
            Refusal::UnknownSerial
        );

        let mut tampered = b.clone();
        tampered.push(b' ');
        assert_eq!(
            kind(verify(&good, &tampered, &ring, KEY, NOW)),
            Refusal::BadSignature
        );
        let (other, _) = platform();
        let h = headers(&other, NOW, "PUB_KEY_ID_1", &b);
        assert_eq!(kind(verify(&h, &b, &ring, KEY, NOW)), Refusal::BadSignature);

        // Signed but not a notification.
        for bad in [
            b"not json".to_vec(),
            b"[1]".to_vec(),
            br#"{"event_type":"X","resource":{}}"#.to_vec(),
            br#"{"id":"1","event_type":"X"}"#.to_vec(),
            br#"{"id":"1","event_type":"X","resource":"x"}"#.to_vec(),
            br#"{"id":"1","event_type":"X","resource":{"algorithm":"AEAD_AES_256_GCM","nonce":"n"}}"#.to_vec(),
            br#"{"id":1,"event_type":"X","resource":{}}"#.to_vec(),
        ] {
            let h = headers(&k, NOW, "PUB_KEY_ID_1", &bad);
            assert_eq!(kind(verify(&h, &bad, &ring, KEY, NOW)), Refusal::Malformed);
        }
        let mut env: Value = serde_json::from_slice(&b).unwrap();
        env["resource"]["algorithm"] = json!("AES_128_CBC");
        let alg = serde_json::to_vec(&env).unwrap();
        let h = headers(&k, NOW, "PUB_KEY_ID_1", &alg);
        assert_eq!(
            kind(verify(&h, &alg, &ring, KEY, NOW)),
            Refusal::UnsupportedAlgorithm
        );

        // Decryption: wrong key, altered ciphertext, associated data or nonce.
        assert_eq!(
            kind(verify(
                &good,
                &b,
                &ring,
                "1123456789abcdef0123456789abcdef",
                NOW
            )),
            Refusal::Decryption
        );
        for (field, value) in [
            ("ciphertext", json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            ("ciphertext", json!("not base64!")),
            ("associated_data", json!("refund")),
            ("associated_data", Value::Null),
            ("nonce", json!("fdasflkja484x")),
        ] {
            let mut env: Value = serde_json::from_slice(&b).unwrap();
            env["resource"][field] = value;
            let bad = serde_json::to_vec(&env).unwrap();
            let h = headers(&k, NOW, "PUB_KEY_ID_1", &bad);
            assert_eq!(
                kind(verify(&h, &bad, &ring, KEY, NOW)),
                Refusal::Decryption,
                "{field}"
            );
        }
    }

    #[test]
    fn a_bad_apiv3_key_is_a_config_error_that_hides_it() {
        let (k, ring) = platform();
        let b = body(&json!({}));
        let e = verify(
            &headers(&k, NOW, "PUB_KEY_ID_1", &b),
            &b,
            &ring,
            "short-key",
            NOW,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Config { .. }));
        assert!(!e.to_string().contains("short-key"));
        assert!(Notifier::new(ring, "short-key").is_err());
    }

    #[test]
    fn plaintext_that_is_not_json_is_kept() {
        let (k, ring) = platform();
        let ct = AesGcm::encrypt("plain words", KEY, "n", "").unwrap();
        let b = serde_json::to_vec(&json!({"id": "1", "event_type": "X",
            "resource": {"algorithm": ALGORITHM, "ciphertext": ct, "nonce": "n"}}))
        .unwrap();
        let n = verify(&headers(&k, NOW, "PUB_KEY_ID_1", &b), &b, &ring, KEY, NOW).unwrap();
        assert_eq!(n.resource, json!("plain words"));
        assert_eq!(n.plaintext, "plain words");
        assert_eq!(n.summary, "");
        assert_eq!(n.original_type, "");
    }
}
