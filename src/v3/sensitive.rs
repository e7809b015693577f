//! Sensitive fields (names, ID numbers, phone numbers …) encrypted for the platform, and the
//! `Wechatpay-Serial` header that must name the key they were encrypted with.
//!
//! wechatpay-php leaves the header to the caller, and forgetting it (or naming another key) is a
//! common support case: the platform cannot tell which key to decrypt with. Here an
//! [`Encryptor`] records a fingerprint of every ciphertext it makes, and a call whose JSON body
//! carries one of them gets `Wechatpay-Serial` set to that key's serial (or `PUB_KEY_ID_…`), with
//! no other step. An explicit `headers: {"Wechatpay-Serial": …}` in the args always wins. A body
//! carrying ciphertexts made under two different keys is refused before anything is sent.
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
//! use serde_json::json;
//! let enc = client.encryptor()?; // the platform key answers are verified with
//! let res = client.chain("v3/applyment4sub/applyment/").post(json!({"json": {
//!     "business_code": "1900013511_10000",
//!     "contact_info": {
//!         "contact_name": enc.encrypt("张三")?,
//!         "mobile_phone": enc.encrypt("13900000000")?,
//!     },
//! }}))?; // sent with `Wechatpay-Serial: <enc.serial()>`
//! # Ok(()) }
//! ```
//!
//! What is recognized: ciphertexts made by an `Encryptor` of this client (any clone), among the
//! most recent [`REMEMBERED`], found as JSON strings anywhere in the `json` arg (or in a `body`
//! arg that is JSON). Ciphertexts made with [`Rsa::encrypt`](crate::Rsa::encrypt) directly, or
//! placed in a query string, are not: name the serial in the headers for those.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::crypto::PublicKey;
use crate::error::Error;

/// How many ciphertexts are remembered (FIFO); 16 bytes of fingerprint each, so a few MiB at
/// most. One recognized field is enough for a call, so a transfer batch of thousands of
/// encrypted names still gets its header.
pub const REMEMBERED: usize = 65_536;

type Fingerprint = [u8; 16];

fn fingerprint(ciphertext: &str) -> Fingerprint {
    let d = openssl::sha::sha256(ciphertext.as_bytes());
    let mut f = [0u8; 16];
    f.copy_from_slice(&d[..16]);
    f
}

/// Whether a string could be base64 of an RSA ciphertext (1024 bits or more).
fn plausible(s: &str) -> bool {
    s.len() >= 172 && s.len() % 4 == 0
}

/// The fingerprints of recent ciphertexts and the serial each was made for; one per client.
#[derive(Default)]
pub(crate) struct Sealed {
    used: AtomicBool,
    inner: Mutex<SealedInner>,
}

#[derive(Default)]
struct SealedInner {
    serials: HashMap<Fingerprint, Arc<str>>,
    order: VecDeque<Fingerprint>,
}

impl Sealed {
    fn record(&self, ciphertext: &str, serial: &Arc<str>) {
        let f = fingerprint(ciphertext);
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.serials.insert(f, serial.clone()).is_none() {
            g.order.push_back(f);
            while g.order.len() > REMEMBERED {
                if let Some(old) = g.order.pop_front() {
                    g.serials.remove(&old);
                }
            }
        }
        self.used.store(true, Ordering::Release);
    }

    /// Whether any ciphertext was recorded: calls skip looking at their body until then.
    pub(crate) fn in_use(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    /// The serial the ciphertexts found in `json` were made for: `None` when it carries none,
    /// an error when they were made for different keys.
    pub(crate) fn serial_for(&self, json: &Value) -> Result<Option<Arc<str>>, Error> {
        if !self.in_use() {
            return Ok(None);
        }
        let mut found: Option<Arc<str>> = None;
        let mut stack = vec![json];
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) if plausible(s) => {
                    if let Some(serial) = g.serials.get(&fingerprint(s)) {
                        match &found {
                            Some(f) if f != serial => {
                                return Err(Error::arg(format!(
                                    "the body carries fields encrypted for two platform keys ({f} and {serial}): the platform can decrypt with one only"
                                )))
                            }
                            Some(_) => {}
                            None => found = Some(serial.clone()),
                        }
                    }
                }
                Value::Array(items) => stack.extend(items.iter()),
                Value::Object(m) => stack.extend(m.values()),
                _ => {}
            }
        }
        Ok(found)
    }
}

/// Encrypts sensitive fields for the platform with RSA-OAEP (SM2, C1C3C2 ASN.1, for an SM2
/// platform key: the 国密 scheme) under one platform key, and makes
/// the calls that carry them name that key (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct Encryptor {
    pub(crate) serial: Arc<str>,
    pub(crate) key: PublicKey,
    pub(crate) sealed: Arc<Sealed>,
}

impl fmt::Debug for Encryptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("serial", &&*self.serial)
            .finish()
    }
}

impl Encryptor {
    /// The serial (or `PUB_KEY_ID_…`) of the key this encryptor uses, as the calls will send
    /// it in `Wechatpay-Serial`.
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The platform public key this encryptor uses.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// Encrypts one field (UTF-8 text, at most 214 bytes with a 2048-bit key); returns base64
    /// to put in the JSON body as is.
    pub fn encrypt(&self, plaintext: impl AsRef<[u8]>) -> Result<String, Error> {
        // An SM2 platform key (the 国密 scheme) encrypts with SM2, C1C3C2 ASN.1.
        let scheme = crate::v3::scheme::Scheme::of_public_key(&self.key);
        let ct = scheme.encrypt(plaintext.as_ref(), &self.key)?;
        self.sealed.record(&ct, &self.serial);
        Ok(ct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{PrivateKey, Rsa};
    use openssl::pkey::PKey;
    use serde_json::json;

    fn key() -> (PrivateKey, PublicKey) {
        let k = PrivateKey::from_openssl(
            PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        );
        let p = k.public_key().unwrap();
        (k, p)
    }

    fn enc(serial: &str, key: &PublicKey, sealed: &Arc<Sealed>) -> Encryptor {
        Encryptor {
            serial: Arc::from(serial),
            key: key.clone(),
            sealed: sealed.clone(),
        }
    }

    #[test]
    fn ciphertexts_name_their_serial_wherever_they_sit() {
        let (k, p) = key();
        let sealed = Arc::new(Sealed::default());
        assert_eq!(sealed.serial_for(&json!({"a": "b"})).unwrap(), None);
        let e = enc("PUB_KEY_ID_1", &p, &sealed);
        let ct = e.encrypt("张三").unwrap();
        assert_eq!(Rsa::decrypt(&ct, &k).unwrap(), "张三".as_bytes());
        for body in [
            json!({"name": ct}),
            json!({"a": {"b": [1, {"c": ct}]}}),
            json!([ct]),
            json!(ct),
        ] {
            assert_eq!(
                sealed.serial_for(&body).unwrap().as_deref(),
                Some("PUB_KEY_ID_1")
            );
        }
        // Someone else's ciphertext, or a changed one, is not recognized.
        let foreign = Rsa::encrypt("张三", &p).unwrap();
        assert_eq!(sealed.serial_for(&json!({"n": foreign})).unwrap(), None);
        let mut altered = ct.clone();
        altered.replace_range(0..1, if ct.starts_with('A') { "B" } else { "A" });
        assert_eq!(sealed.serial_for(&json!({"n": altered})).unwrap(), None);
        // Two fields of the same key are fine; two keys are refused.
        let ct2 = e.encrypt("13900000000").unwrap();
        assert!(sealed.serial_for(&json!([ct, ct2])).unwrap().is_some());
        let other = enc("PUB_KEY_ID_2", &p, &sealed).encrypt("x").unwrap();
        let err = sealed
            .serial_for(&json!({"a": ct, "b": other}))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        assert!(err.to_string().contains("PUB_KEY_ID_2"));
        assert_eq!(format!("{e:?}"), "Encryptor { serial: \"PUB_KEY_ID_1\" }");
    }

    #[test]
    fn memory_is_bounded_and_oldest_forgotten() {
        let sealed = Sealed::default();
        let serial: Arc<str> = Arc::from("S");
        let fake = |i: usize| format!("{i:0>172}");
        for i in 0..REMEMBERED + 10 {
            sealed.record(&fake(i), &serial);
        }
        let g = sealed.inner.lock().unwrap();
        assert_eq!(g.serials.len(), REMEMBERED);
        assert_eq!(g.order.len(), REMEMBERED);
        drop(g);
        assert_eq!(sealed.serial_for(&json!(fake(3))).unwrap(), None);
        assert!(sealed
            .serial_for(&json!(fake(REMEMBERED + 9)))
            .unwrap()
            .is_some());
        // Recording the same ciphertext twice keeps one entry.
        sealed.record(&fake(REMEMBERED + 9), &serial);
        assert_eq!(sealed.inner.lock().unwrap().order.len(), REMEMBERED);
    }
}
