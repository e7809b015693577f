//! Notifications of any documented event type, made as the platform sends them, for a
//! merchant's handler to be tested with (`wechatpay trigger`).
//!
//! Every event of [`catalog::events`] can be made: its resource holds every documented
//! required field with a value of its type and a plausible shape (the generator of the
//! documented answers), fields set with [`Trigger::set`] override or add to it (dotted paths
//! into nested objects and lists), and the wire is the page's:
//!
//! - APIv3 ([`Wire::V3`]): the JSON envelope, the resource encrypted with AEAD_AES_256_GCM under
//!   the APIv3 key, signed in `Wechatpay-Timestamp/-Nonce/-Serial/-Signature` headers with the
//!   platform private key, with `Request-ID`;
//! - APIv2 XML: signed with the APIv2 key ([`Wire::V2Signed`]), the refund result's `req_info`
//!   encrypted with AES-256-ECB under the MD5 of the APIv2 key ([`Wire::V2Refund`]), the
//!   APIv2 pages whose event travels encrypted in `event_ciphertext` ([`Wire::V2Sealed`]), and
//!   the two whose resource is JSON text in one field ([`Wire::V2Json`]).
//!
//! The same trigger at the same time with the same keys makes the same resource: every id,
//! signature nonce and value derives from a SHA-256 of the event, the fields set, the fault
//! and the time. The AES-GCM nonce alone is random, each encryption its own: two
//! notifications under one APIv3 key that shared one (the same second, another merchant or
//! amount) would give away the key's authentication key.
//!
//! ```
//! use wechatpay_chain::notify::Notifier;
//! use wechatpay_chain::{Keyring, Rsa};
//! use wechatpay_emulator::events::{self, Keys, Trigger};
//!
//! # fn main() -> Result<(), wechatpay_chain::Error> {
//! let pkey = openssl::rsa::Rsa::generate(2048).unwrap();
//! let pkey = openssl::pkey::PKey::from_rsa(pkey).unwrap();
//! let key = wechatpay_chain::PrivateKey::from_openssl(pkey);
//! let keys = Keys::new(key.clone(), "PUB_KEY_ID_0114232134912410000000000000000000", "a".repeat(32));
//! let event = events::find("TRANSACTION.SUCCESS", false)?;
//! let sent = Trigger::new(event).set_text("amount.total=1")?.build(&keys)?;
//!
//! let ring = Keyring::new();
//! ring.insert("PUB_KEY_ID_0114232134912410000000000000000000", key.public_key()?);
//! let n = Notifier::new(ring.into(), "a".repeat(32))?.verify(&sent.headers, &sent.body)?;
//! assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
//! assert_eq!(n.resource["amount"]["total"], 1);
//! assert_eq!(n.resource["trade_state"], "SUCCESS");
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value};
use wechatpay_chain::catalog::{self, Event, Field, Protocol, Type};
use wechatpay_chain::client_xml::{self, SignType};
use wechatpay_chain::crypto::{AesEcb, AesGcm};
use wechatpay_chain::notify::{Refusal, SIGNATURE_PROBE};
use wechatpay_chain::{formatter, transformer, Error, PrivateKey};

use crate::documented::Gen;
use crate::notify::webhooks;
pub use crate::state::rfc3339;

/// The keys a notification is made with: the platform's private key and the serial (or
/// public key id) it is known by, the APIv3 key, and for APIv2 events the APIv2 key. Its
/// `Debug` shows no key.
#[derive(Clone)]
pub struct Keys {
    /// Signs APIv3 notifications (APIv2 ones need none).
    pub platform_key: Option<PrivateKey>,
    /// `Wechatpay-Serial`: the platform certificate serial or `PUB_KEY_ID_…`.
    pub platform_serial: String,
    /// Encrypts APIv3 resources (32 bytes).
    pub apiv3_key: String,
    /// Signs APIv2 notifications and encrypts `req_info` (empty: APIv2 events cannot be made).
    pub apiv2_key: String,
    /// The merchant id the notifications are about (`mchid`, `mch_id`, `sp_mchid`).
    pub mchid: String,
}

impl Keys {
    /// Keys for APIv3 events; set [`apiv2_key`](Self::apiv2_key) for APIv2 ones. The merchant
    /// id is the emulator's default, 1900000001.
    pub fn new(
        platform_key: PrivateKey,
        platform_serial: impl Into<String>,
        apiv3_key: impl Into<String>,
    ) -> Keys {
        Keys {
            platform_key: Some(platform_key),
            platform_serial: platform_serial.into(),
            apiv3_key: apiv3_key.into(),
            apiv2_key: String::new(),
            mchid: "1900000001".into(),
        }
    }

    /// Keys for APIv2 events only: no platform key (set [`apiv3_key`](Self::apiv3_key) too
    /// for the events sealed in `event_ciphertext`).
    pub fn apiv2(apiv2_key: impl Into<String>) -> Keys {
        Keys {
            platform_key: None,
            platform_serial: String::new(),
            apiv3_key: String::new(),
            apiv2_key: apiv2_key.into(),
            mchid: "1900000001".into(),
        }
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("platform_serial", &self.platform_serial)
            .field("mchid", &self.mchid)
            .finish_non_exhaustive()
    }
}

/// What is wrong on purpose with a notification, for a handler to refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `Wechatpay-Timestamp` 600 s in the past (outside the ±300 s window), correctly signed.
    Stale,
    /// `Wechatpay-Serial` names a key the merchant does not have.
    WrongSerial,
    /// A signature that does not verify (APIv2: a `sign` made with another key, or a refund's
    /// `req_info` encrypted under another key).
    BadSignature,
    /// The platform's signature probe: `Wechatpay-Signature: WECHATPAY/SIGNTEST/…`.
    Probe,
}

impl Fault {
    /// Every fault.
    pub const ALL: [Fault; 4] = [
        Fault::Stale,
        Fault::WrongSerial,
        Fault::BadSignature,
        Fault::Probe,
    ];

    /// The library's refusal of an APIv3 notification with this fault.
    pub fn refusal(self) -> Refusal {
        match self {
            Fault::Stale => Refusal::Stale,
            Fault::WrongSerial => Refusal::UnknownSerial,
            Fault::BadSignature => Refusal::BadSignature,
            Fault::Probe => Refusal::SignatureProbe,
        }
    }

    /// Whether the fault exists on `wire`: APIv2 XML has no signature headers, so only
    /// [`Fault::BadSignature`] applies to it.
    pub fn applies_to(self, wire: Wire) -> bool {
        wire == Wire::V3 || self == Fault::BadSignature
    }

    /// The option's name: `stale`, `wrong-serial`, `bad-signature`, `probe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Stale => "stale",
            Fault::WrongSerial => "wrong-serial",
            Fault::BadSignature => "bad-signature",
            Fault::Probe => "probe",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an event travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Wire {
    /// APIv3: the JSON envelope, signed in `Wechatpay-*` headers; accepted by any 2xx.
    V3,
    /// APIv2 XML whose fields are the resource, covered by `sign` of the given type.
    V2Signed(SignType),
    /// APIv2 refund result: plain `return_code`, `appid`, `mch_id`, `nonce_str` and the
    /// resource as XML in `req_info`, AES-256-ECB under the lowercase hex MD5 of the APIv2 key.
    V2Refund,
    /// APIv2 XML signed with HMAC-SHA256 whose resource is JSON encrypted with the APIv3 key in
    /// `event_ciphertext` (`event_nonce`, `event_associated_data`).
    V2Sealed,
    /// APIv2 XML signed with the given type whose resource is JSON text in one field
    /// (`sub_order_list` of a combined payment, `transaction_id_list` of a risk report).
    V2Json {
        /// The field holding the resource.
        field: &'static str,
        /// The type of its `sign`.
        sign: SignType,
    },
}

impl Wire {
    /// Whether it is an APIv2 XML wire (accepted by a 2xx with `return_code` SUCCESS).
    pub fn is_v2(self) -> bool {
        self != Wire::V3
    }
}

/// How `event` travels, as its page documents it.
pub fn wire(event: &Event) -> Wire {
    if event.protocol == Protocol::V3 {
        return Wire::V3;
    }
    match event.encrypted.as_deref() {
        Some("by-aes-gcm") => return Wire::V2Sealed,
        Some("by-aes-ecb") => return Wire::V2Refund,
        _ => {}
    }
    match event.kind.as_str() {
        "combined-transactions-success" => Wire::V2Json {
            field: "sub_order_list",
            sign: SignType::Md5,
        },
        "transactions-risk-occurred" => Wire::V2Json {
            field: "transaction_id_list",
            sign: SignType::HmacSha256,
        },
        _ if event
            .resource()
            .iter()
            .any(|f| matches!(f.ty, Type::Object | Type::ObjectArray)) =>
        {
            Wire::V2Json {
                field: "resource",
                sign: SignType::HmacSha256,
            }
        }
        _ => {
            let hmac = event
                .resource()
                .iter()
                .any(|f| f.name == "sign_type" && f.enumeration.iter().any(|e| e == "HMAC-SHA256"));
            Wire::V2Signed(if hmac {
                SignType::HmacSha256
            } else {
                SignType::Md5
            })
        }
    }
}

/// The event of type `kind`: the APIv3 one unless `v2` (some types, `TRANSACTION.SUCCESS`
/// among them, are documented by both); a type only APIv2 documents whatever `v2` says. An
/// unknown type, or `v2` for an APIv3-only type, is an [`Error::InvalidArgument`] (the
/// former naming the nearest documented types).
pub fn find(kind: &str, v2: bool) -> Result<&'static Event, Error> {
    let want = if v2 { Protocol::V2 } else { Protocol::V3 };
    let same: Vec<&'static Event> = catalog::events().filter(|e| e.kind == kind).collect();
    if let Some(e) = same.iter().find(|e| e.protocol == want) {
        return Ok(e);
    }
    if let Some(e) = same.first() {
        if e.protocol == Protocol::V2 {
            // APIv2 only: its own name says so
            return Ok(e);
        }
        return Err(Error::InvalidArgument(format!(
            "{kind} is documented for APIv3 only: leave out --v2"
        )));
    }
    let near = suggest(kind);
    let hint = if near.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", near.join(", "))
    };
    Err(Error::InvalidArgument(format!(
        "{kind:?} is not a documented event type{hint} (wechatpay events lists them)"
    )))
}

/// Up to three documented event types nearest to `kind` (by edit distance, any case):
/// [`catalog::suggest_event`]'s, by type.
pub fn suggest(kind: &str) -> Vec<&'static str> {
    catalog::suggest_event(kind)
        .into_iter()
        .map(|e| e.kind.as_str())
        .collect()
}

/// One segment of a `--set` path: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A notification to make: an event, the fields set, a fault, a time.
#[derive(Debug, Clone)]
pub struct Trigger {
    event: &'static Event,
    sets: Vec<(Vec<Step>, Value)>,
    fault: Option<Fault>,
    now: Option<i64>,
}

impl Trigger {
    /// A notification of `event` with its generated resource, made now.
    pub fn new(event: &'static Event) -> Trigger {
        Trigger {
            event,
            sets: Vec::new(),
            fault: None,
            now: None,
        }
    }

    /// The event.
    pub fn event(&self) -> &'static Event {
        self.event
    }

    /// Sets the resource's field at `path` (`out_trade_no`, `amount.total`,
    /// `promotion_detail.0.amount`: dots into objects, numbers into lists) to `value`,
    /// creating the objects and list entries on the way; an optional object set this way
    /// gets its required fields too.
    pub fn set(mut self, path: &str, value: Value) -> Result<Trigger, Error> {
        let steps = parse_path(path)?;
        self.sets.push((steps, value));
        Ok(self)
    }

    /// [`set`](Self::set) from `path=value` text (`wechatpay trigger --set`): the value is
    /// typed as the page documents the field (`amount.total=100` an integer, `out_trade_no=123`
    /// a string); `path:=JSON` sets any JSON as is; an undocumented field takes JSON when the
    /// text is JSON, else the text.
    pub fn set_text(self, assignment: &str) -> Result<Trigger, Error> {
        let Some((path, text)) = assignment.split_once('=') else {
            return Err(Error::InvalidArgument(format!(
                "--set {assignment:?}: write path=value (e.g. amount.total=100), or path:=JSON"
            )));
        };
        if let Some(path) = path.strip_suffix(':') {
            let v: Value = serde_json::from_str(text)
                .map_err(|e| Error::InvalidArgument(format!("--set {path}:= takes JSON: {e}")))?;
            return self.set(path, v);
        }
        let steps = parse_path(path)?;
        let field = documented(self.event.resource(), &steps);
        let value = typed(path, field, text)?;
        self.set(path, value)
    }

    /// Makes the notification with `fault` (see [`Fault::applies_to`]).
    pub fn fault(mut self, fault: Fault) -> Trigger {
        self.fault = Some(fault);
        self
    }

    /// Makes the notification as at `timestamp` (Unix seconds) instead of now.
    pub fn at(mut self, timestamp: i64) -> Trigger {
        self.now = Some(timestamp);
        self
    }

    /// How the event travels.
    pub fn wire(&self) -> Wire {
        wire(self.event)
    }

    /// The resource in clear, as it will be encrypted (or sent), for the merchant `mchid`.
    pub fn resource(&self, mchid: &str) -> Value {
        let fields = self.event.resource();
        let seed = openssl::sha::sha256(
            format!(
                "event\n{}\n{}",
                match self.event.protocol {
                    Protocol::V2 => "v2",
                    Protocol::V3 => "v3",
                },
                self.event.kind
            )
            .as_bytes(),
        );
        let mut context = Value::Object(defaults(self.event, &seed));
        for (steps, v) in &self.sets {
            put(&mut context, steps, v.clone());
        }
        let g = Gen {
            mchid,
            answering: None,
            seed,
            identity: None,
            echo: Map::new(),
            now: self.now.unwrap_or_else(formatter::timestamp),
            template: "",
        };
        let mut out = Value::Object(g.object(fields, context.as_object(), ""));
        // what was set lands as set, also where the page's type or enumeration says otherwise
        for (steps, v) in &self.sets {
            put(&mut out, steps, v.clone());
        }
        out
    }

    /// Makes the notification with `keys`. A fault that does not apply to the event's wire,
    /// or an APIv2 event without the APIv2 key, is an [`Error::InvalidArgument`].
    pub fn build(&self, keys: &Keys) -> Result<Triggered, Error> {
        let wire = self.wire();
        if let Some(f) = self.fault {
            if !f.applies_to(wire) {
                return Err(Error::InvalidArgument(format!(
                    "{} is an APIv2 notification: XML without signature headers, so --{f} does not apply (only --bad-signature)",
                    self.event.kind
                )));
            }
        }
        if wire.is_v2() && keys.apiv2_key.is_empty() {
            return Err(Error::config(format!(
                "{} is an APIv2 notification: it needs the APIv2 key (WECHATPAY_SECRET)",
                self.event.kind
            )));
        }
        let now = self.now.unwrap_or_else(formatter::timestamp);
        let mut resource = self.resource(&keys.mchid);
        let mut d = Derive::new(self, now);
        let mut headers = HeaderMap::new();
        let body = match wire {
            Wire::V3 => {
                let body = self.v3_body(keys, &resource, now, &mut d)?;
                let ts = match self.fault {
                    Some(Fault::Stale) => now - 600,
                    _ => now,
                };
                let serial = match self.fault {
                    Some(Fault::WrongSerial) => other_serial(&keys.platform_serial, &mut d),
                    _ => keys.platform_serial.clone(),
                };
                let nonce = d.text(32);
                let signed_body = match self.fault {
                    // signed over other bytes than those sent
                    Some(Fault::BadSignature) => [body.as_slice(), b" "].concat(),
                    _ => body.clone(),
                };
                let key = keys.platform_key.as_ref().ok_or_else(|| {
                    Error::config(format!(
                        "{} is an APIv3 notification: it needs the platform private key",
                        self.event.kind
                    ))
                })?;
                let signed = webhooks::signature_headers(
                    key,
                    &serial,
                    &ts.to_string(),
                    &nonce,
                    &signed_body,
                )?;
                insert(&mut headers, "Content-Type", "application/json")?;
                for (k, v) in signed {
                    insert(&mut headers, k, &v)?;
                }
                if self.fault == Some(Fault::Probe) {
                    let noise: Vec<u8> = (0..8).flat_map(|_| d.bytes()).collect();
                    let probe = format!(
                        "{SIGNATURE_PROBE}{}",
                        base64::engine::general_purpose::STANDARD.encode(noise)
                    );
                    insert(&mut headers, "Wechatpay-Signature", &probe)?;
                }
                body
            }
            _ => {
                insert(&mut headers, "Content-Type", "text/xml")?;
                self.v2_body(keys, &mut resource, now, wire, &mut d)?
                    .into_bytes()
            }
        };
        insert(&mut headers, "Request-ID", &d.hex(16).to_ascii_uppercase())?;
        insert(
            &mut headers,
            "User-Agent",
            "Mozilla/4.0 (wechatpay-chain emulator)",
        )?;
        Ok(Triggered {
            event: self.event,
            wire,
            fault: self.fault,
            headers,
            body: Bytes::from(body),
            resource,
        })
    }

    fn v3_body(
        &self,
        keys: &Keys,
        resource: &Value,
        now: i64,
        d: &mut Derive,
    ) -> Result<Vec<u8>, Error> {
        let original_type = self.event.resource_type.clone().unwrap_or_else(|| {
            let first = self.event.kind.split('.').next().unwrap_or("");
            first.to_ascii_lowercase()
        });
        let id = webhooks::uuid_shaped(&d.hex(16));
        let created = match self.fault {
            Some(Fault::Stale) => now - 600,
            _ => now,
        };
        let sealed = webhooks::Sealed {
            id: &id,
            create_time: &rfc3339(created),
            event_type: &self.event.kind,
            summary: &self.event.label,
            original_type: &original_type,
            // random, never derived: see the module's documentation
            nonce: &formatter::nonce(12),
        };
        let scheme = keys
            .platform_key
            .as_ref()
            .map(wechatpay_chain::Scheme::of_key)
            .unwrap_or_default();
        let envelope = sealed.envelope(scheme, &resource.to_string(), &keys.apiv3_key)?;
        Ok(envelope.to_string().into_bytes())
    }

    fn v2_body(
        &self,
        keys: &Keys,
        resource: &mut Value,
        now: i64,
        wire: Wire,
        d: &mut Derive,
    ) -> Result<String, Error> {
        let bad = self.fault == Some(Fault::BadSignature);
        let wrong_key = format!("{}x", keys.apiv2_key);
        let sign_key = if bad { &wrong_key } else { &keys.apiv2_key };
        let appid = format!("wx{}", d.hex(8).to_ascii_lowercase());
        let mut outer = Map::new();
        let sign_type = match wire {
            Wire::V2Refund => {
                let inner: Map<String, Value> = resource
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), Value::String(text(v))))
                    .collect();
                let inner = transformer::to_xml_with(&inner, "root", "item")?;
                let key = AesEcb::key_from_secret(sign_key)?;
                outer.insert("return_code".into(), "SUCCESS".into());
                outer.insert("appid".into(), appid.into());
                outer.insert("mch_id".into(), keys.mchid.clone().into());
                outer.insert("nonce_str".into(), d.text(32).into());
                outer.insert(
                    "req_info".into(),
                    AesEcb::encrypt(inner, key.as_bytes())?.into(),
                );
                return transformer::to_xml(&outer);
            }
            Wire::V2Signed(kind) => {
                for (k, v) in resource.as_object().into_iter().flatten() {
                    if k != "sign" {
                        outer.insert(k.clone(), Value::String(text(v)));
                    }
                }
                kind
            }
            Wire::V2Sealed => {
                // random, never derived: see the module's documentation
                let nonce = formatter::nonce(12);
                let aad = self
                    .event
                    .kind
                    .split('.')
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                let ct = AesGcm::encrypt(resource.to_string(), &keys.apiv3_key, &nonce, &aad)?;
                for (k, v) in [
                    ("mch_id", keys.mchid.clone()),
                    ("appid", appid),
                    ("algorithm", "HMAC-SHA256".into()),
                    ("nonce_str", d.text(32)),
                    ("event_id", d.hex(16).to_ascii_lowercase()),
                    ("event_create_time", rfc3339(now)),
                    ("event_type", self.event.kind.clone()),
                    ("event_algorithm", "AEAD_AES_256_GCM".into()),
                    ("event_nonce", nonce),
                    ("event_associated_data", aad),
                    ("event_ciphertext", ct),
                ] {
                    outer.insert(k.into(), v.into());
                }
                SignType::HmacSha256
            }
            Wire::V2Json { field, sign } => {
                let digits = |d: &mut Derive, n: usize| -> String {
                    d.hex(n)
                        .bytes()
                        .map(|b| char::from(b'0' + b % 10))
                        .collect()
                };
                let common = [
                    ("return_code", "SUCCESS".to_string()),
                    ("result_code", "SUCCESS".to_string()),
                    ("nonce_str", d.text(32)),
                    ("sign_type", sign.as_str().to_string()),
                ];
                let own: Vec<(&str, String)> = if field == "sub_order_list" {
                    vec![
                        ("combine_appid", appid),
                        ("combine_mch_id", keys.mchid.clone()),
                        ("combine_out_trade_no", format!("SANDBOX{}", d.hex(8))),
                        ("trade_type", "JSAPI".into()),
                    ]
                } else if field == "transaction_id_list" {
                    vec![
                        ("event_code", digits(d, 16)),
                        ("risk_level", "HIGH".into()),
                        ("risk_level_desc", "高风险".into()),
                        ("mch_id", keys.mchid.clone()),
                        ("sub_mch_id", format!("19{}", digits(d, 8))),
                    ]
                } else {
                    vec![("mch_id", keys.mchid.clone()), ("appid", appid)]
                };
                for (k, v) in common.into_iter().chain(own) {
                    outer.insert(k.into(), v.into());
                }
                outer.insert(field.into(), resource.to_string().into());
                sign
            }
            Wire::V3 => unreachable!("an APIv3 event is no XML"),
        };
        let sign = client_xml::sign(&outer, sign_key, sign_type)?;
        if let (Wire::V2Signed(_), Some(m)) = (wire, resource.as_object_mut()) {
            // the resource is the document: its sign is the one sent
            m.insert("sign".into(), sign.clone().into());
        }
        outer.insert("sign".into(), sign.into());
        transformer::to_xml(&outer)
    }
}

/// A made notification: what to send, and the resource in clear.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Triggered {
    /// The event.
    pub event: &'static Event,
    /// How it travels.
    pub wire: Wire,
    /// What is wrong with it on purpose.
    pub fault: Option<Fault>,
    /// The headers to send: `Content-Type`, `Request-ID`, `User-Agent` and (APIv3) the
    /// `Wechatpay-*` ones.
    pub headers: HeaderMap,
    /// The body, exactly as it is sent and signed.
    pub body: Bytes,
    /// The resource in clear.
    pub resource: Value,
}

impl Triggered {
    /// Whether a handler's answer accepts the notification: a 2xx, and for APIv2 an XML body
    /// whose `return_code` is SUCCESS.
    pub fn accepted_by(&self, status: u16, body: &[u8]) -> bool {
        accepted(self.wire, status, body)
    }

    /// Whether a handler must accept it: it has no fault.
    pub fn must_accept(&self) -> bool {
        self.fault.is_none()
    }
}

/// Whether an answer accepts a notification of `wire`: a 2xx, and for APIv2 XML whose
/// `return_code` is SUCCESS.
pub fn accepted(wire: Wire, status: u16, body: &[u8]) -> bool {
    (200..300).contains(&status) && (!wire.is_v2() || webhooks::v2_accepted(body))
}

/// A handler's answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body (at most 1 MiB of it).
    pub body: Bytes,
}

/// Posts notifications over HTTP or HTTPS (the system's roots, or `SSL_CERT_FILE`): cheap to
/// clone, its connections reused.
#[derive(Clone)]
pub struct Sender {
    inner: std::sync::Arc<crate::http::client::Notifier>,
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender (TLS is set up here).
    pub fn new() -> Result<Sender, Error> {
        Ok(Sender {
            inner: std::sync::Arc::new(crate::http::client::Notifier::new()?),
        })
    }

    /// POSTs `body` with `headers` to `url` and reads the answer, within `timeout`.
    pub async fn post(
        &self,
        url: &str,
        headers: &HeaderMap,
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, Error> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| Error::InvalidArgument(format!("{url:?} is not a URL")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::InvalidArgument(format!(
                "{url:?}: give an http:// or https:// URL with a host"
            )));
        }
        let mut req = http::Request::post(uri)
            .body(Full::new(body))
            .map_err(|e| Error::InvalidArgument(format!("cannot make the request: {e}")))?;
        for (k, v) in headers {
            if k != http::header::HOST && k != http::header::CONTENT_LENGTH {
                req.headers_mut().append(k.clone(), v.clone());
            }
        }
        let exchange = async {
            let res = self
                .inner
                .pool
                .request(req)
                .await
                .map_err(|e| Error::transport(url, e, false))?;
            let (parts, body) = res.into_parts();
            let body = Limited::new(body, 1 << 20)
                .collect()
                .await
                .map_err(|e| Error::transport(url, e, true))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::transport(
                url,
                format!("no answer within {timeout:?}"),
                false,
            )),
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) -> Result<(), Error> {
    let v = HeaderValue::from_str(value)
        .map_err(|_| Error::InvalidArgument(format!("{name}: {value:?} is no header value")))?;
    let k = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::InvalidArgument(format!("{name:?} is no header name")))?;
    headers.insert(k, v);
    Ok(())
}

/// Ids, signature nonces and noise derived from the trigger and the time: the same trigger at
/// the same time gives the same ones (never an AES-GCM nonce).
struct Derive {
    seed: [u8; 32],
    n: u64,
}

impl Derive {
    fn new(t: &Trigger, now: i64) -> Derive {
        let sets: Vec<String> = t.sets.iter().map(|(s, v)| format!("{s:?}={v}")).collect();
        let seed = openssl::sha::sha256(
            format!(
                "{:?}\n{}\n{}\n{:?}\n{}",
                t.event.protocol,
                t.event.kind,
                now,
                t.fault,
                sets.join("\n")
            )
            .as_bytes(),
        );
        Derive { seed, n: 0 }
    }

    fn bytes(&mut self) -> [u8; 32] {
        self.n += 1;
        openssl::sha::sha256(&[&self.seed[..], &self.n.to_be_bytes()].concat())
    }

    /// `n` characters of uppercase hex (n ≤ 64).
    fn hex(&mut self, n: usize) -> String {
        let b = self.bytes();
        let s: String = b.iter().map(|x| format!("{x:02X}")).collect();
        s[..(2 * n).min(64)].to_string()
    }

    /// `n` alphanumeric characters (n ≤ 32).
    fn text(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        self.bytes()
            .iter()
            .take(n)
            .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
            .collect()
    }
}

/// Another serial of the same form as `serial`.
fn other_serial(serial: &str, d: &mut Derive) -> String {
    loop {
        let s = if serial.starts_with("PUB_KEY_ID_") {
            format!("PUB_KEY_ID_{}", d.hex(16))
        } else {
            d.hex(20)
        };
        if !s.eq_ignore_ascii_case(serial) {
            return s;
        }
    }
}

/// A value as APIv2 XML text.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// What a plausible notification of `event` says unless set otherwise: `return_code` and
/// `result_code` SUCCESS, a state or status field named by the type's last word
/// (`REFUND.CLOSED`: `refund_status` CLOSED), and a nonce for APIv2.
fn defaults(event: &Event, seed: &[u8; 32]) -> Map<String, Value> {
    let mut out = Map::new();
    let word = event.kind.rsplit(['.', '-']).next().unwrap_or("");
    let word = word.to_ascii_uppercase();
    for f in event.resource() {
        let name = f.name.as_str();
        let has = |w: &str| f.enumeration.iter().any(|e| e == w);
        if (name == "return_code" || name == "result_code") && has("SUCCESS") {
            out.insert(name.into(), "SUCCESS".into());
        } else if (name.ends_with("state") || name.ends_with("status"))
            && (has(&word)
                || (f.enumeration.is_empty()
                    && ["SUCCESS", "CLOSED", "ABNORMAL"].contains(&word.as_str())))
        {
            out.insert(name.into(), word.clone().into());
        } else if (name.ends_with("state") || name.ends_with("status"))
            && has("SUCCESS")
            && ![
                "FAIL",
                "CLOSE",
                "ABNORMAL",
                "REVOKE",
                "TERMINATE",
                "DELETE",
                "CANCEL",
            ]
            .iter()
            .any(|w| word.contains(w))
        {
            out.insert(name.into(), "SUCCESS".into());
        } else if name == "amount" && !f.children.is_empty() {
            // the figures a merchant reconciles, which some pages leave optional: the order's
            // total and what the payer paid (no discount), in CNY
            let h = openssl::sha::sha256(&[&seed[..], b"amount"].concat());
            let total = 1 + i64::from(u16::from_be_bytes([h[0], h[1]]));
            let mut amount = Map::new();
            for c in &f.children {
                let v: Value = match c.name.as_str() {
                    "total" | "payer_total" if c.ty != Type::Object => total.into(),
                    "currency" | "payer_currency" => "CNY".into(),
                    _ => continue,
                };
                amount.insert(c.name.clone(), v);
            }
            if !amount.is_empty() {
                out.insert(name.into(), Value::Object(amount));
            }
        } else if name == "nonce_str" {
            let h = openssl::sha::sha256(&[&seed[..], b"nonce_str"].concat());
            let s: String = h[..16].iter().map(|x| format!("{x:02x}")).collect();
            out.insert(name.into(), s.into());
        }
    }
    out
}

fn parse_path(path: &str) -> Result<Vec<Step>, Error> {
    if path.is_empty() {
        return Err(Error::InvalidArgument(
            "--set needs a field: path=value (e.g. amount.total=100)".into(),
        ));
    }
    path.split('.')
        .map(|s| {
            if s.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "--set {path:?}: an empty segment (write a.b.0.c)"
                )));
            }
            Ok(match s.parse::<usize>() {
                Ok(i) if i <= 1000 => Step::Index(i),
                Ok(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "--set {path:?}: list index {s} is too large"
                    )))
                }
                Err(_) => Step::Key(s.to_string()),
            })
        })
        .collect()
}

/// The documented field at `steps` (indices skipped), if any.
fn documented<'f>(fields: &'f [Field], steps: &[Step]) -> Option<&'f Field> {
    let mut fields = fields;
    let mut found = None;
    for s in steps {
        match s {
            Step::Index(_) => {}
            Step::Key(k) => {
                let f = fields.iter().find(|f| f.matches(k))?;
                fields = &f.children;
                found = Some(f);
            }
        }
    }
    found
}

/// `text` as a value of the documented field's type.
fn typed(path: &str, field: Option<&Field>, text: &str) -> Result<Value, Error> {
    let json = || serde_json::from_str::<Value>(text).ok();
    let Some(f) = field else {
        return Ok(json().unwrap_or_else(|| Value::String(text.to_string())));
    };
    let wrong = |what: &str| {
        Error::InvalidArgument(format!(
            "--set {path}={text}: the page documents {path} as {what} ({}); write {path}:=JSON to send any JSON",
            f.ty
        ))
    };
    Ok(match f.ty {
        Type::String | Type::Any => match json() {
            Some(Value::String(s)) if text.starts_with('"') => Value::String(s),
            _ => Value::String(text.to_string()),
        },
        Type::Integer => Value::from(text.parse::<i64>().map_err(|_| wrong("an integer"))?),
        Type::Number => match json() {
            Some(v @ Value::Number(_)) => v,
            _ => return Err(wrong("a number")),
        },
        Type::Boolean | Type::True => match text {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(wrong("true or false")),
        },
        Type::Object => match json() {
            Some(v @ Value::Object(_)) => v,
            _ => return Err(wrong("an object")),
        },
        Type::ObjectArray | Type::StringArray | Type::IntegerArray | Type::NumberArray => {
            match json() {
                Some(v @ Value::Array(_)) => v,
                // one element: a list of it
                _ if f.ty == Type::StringArray => Value::Array(vec![Value::String(text.into())]),
                Some(v) if f.ty != Type::ObjectArray => Value::Array(vec![v]),
                _ => return Err(wrong("a list")),
            }
        }
        _ => json().unwrap_or_else(|| Value::String(text.to_string())),
    })
}

/// Puts `value` at `steps` in `root`, creating objects and list entries on the way (a list
/// grows with empty objects up to the index; a scalar in the way is replaced).
fn put(root: &mut Value, steps: &[Step], value: Value) {
    let Some((last, init)) = steps.split_last() else {
        return;
    };
    let mut at = root;
    for (i, s) in init.iter().enumerate() {
        let next_is_index = matches!(steps[i + 1], Step::Index(_));
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(Map::new())
            }
        };
        at = match s {
            Step::Key(k) => {
                if !at.is_object() {
                    *at = Value::Object(Map::new());
                }
                let m = at.as_object_mut().expect("an object");
                let slot = m.entry(k.clone()).or_insert_with(fresh);
                if slot.is_null() || (!slot.is_object() && !slot.is_array()) {
                    *slot = fresh();
                }
                slot
            }
            Step::Index(n) => {
                if !at.is_array() {
                    *at = Value::Array(Vec::new());
                }
                let a = at.as_array_mut().expect("a list");
                while a.len() <= *n {
                    a.push(fresh());
                }
                &mut a[*n]
            }
        };
    }
    match last {
        Step::Key(k) => {
            if !at.is_object() {
                *at = Value::Object(Map::new());
            }
            at.as_object_mut()
                .expect("an object")
                .insert(k.clone(), value);
        }
        Step::Index(n) => {
            if !at.is_array() {
                *at = Value::Array(Vec::new());
            }
            let a = at.as_array_mut().expect("a list");
            while a.len() <= *n {
                a.push(Value::Null);
            }
            a[*n] = value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_create_objects_and_list_entries() {
        let mut v = json!({"amount": {"total": 1}});
        put(
            &mut v,
            &parse_path("amount.currency").unwrap(),
            json!("CNY"),
        );
        put(
            &mut v,
            &parse_path("promotion_detail.1.amount").unwrap(),
            json!(5),
        );
        put(&mut v, &parse_path("amount.total").unwrap(), json!(9));
        assert_eq!(
            v,
            json!({"amount": {"total": 9, "currency": "CNY"},
                   "promotion_detail": [{}, {"amount": 5}]})
        );
        assert!(parse_path("a..b").is_err());
        assert!(parse_path("").is_err());
    }

    #[test]
    fn unknown_types_get_the_nearest() {
        let e = find("TRANSACTION.SUCCES", false).unwrap_err().to_string();
        assert!(e.contains("did you mean TRANSACTION.SUCCESS"), "{e}");
        assert_eq!(
            find("refund-processed", false).unwrap().protocol,
            Protocol::V2
        );
        assert_eq!(
            find("TRANSACTION.SUCCESS", true).unwrap().protocol,
            Protocol::V2
        );
        assert_eq!(
            find("TRANSACTION.SUCCESS", false).unwrap().protocol,
            Protocol::V3
        );
    }

    #[test]
    fn values_are_typed_as_documented() {
        let t = Trigger::new(find("TRANSACTION.SUCCESS", false).unwrap());
        let t = t
            .set_text("amount.total=100")
            .and_then(|t| t.set_text("out_trade_no=123"))
            .and_then(|t| t.set_text("attach:={\"a\":1}"))
            .unwrap();
        let r = t.resource("1900000001");
        assert_eq!(r["amount"]["total"], 100);
        assert_eq!(r["out_trade_no"], "123");
        assert_eq!(r["attach"], json!({"a": 1}));
        assert!(Trigger::new(t.event())
            .set_text("amount.payer_total=x")
            .is_err());
        assert_eq!(
            Trigger::new(t.event())
                .set_text("amount.payer_total=12")
                .unwrap()
                .resource("1")["amount"]["payer_total"],
            12
        );
        assert!(Trigger::new(t.event()).set_text("amount.total").is_err());
    }
}
