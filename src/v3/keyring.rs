//! The platform's verification keys, by `Wechatpay-Serial`: certificate serials and
//! `PUB_KEY_ID_…` public-key ids side by side. Shared by every clone of a client; reads are
//! lock-free (`arc-swap`), so a refresh never blocks a call.

use std::collections::HashMap;

use arc_swap::ArcSwap;

use crate::crypto::{Certificate, PublicKey};
pub use crate::util::pem::{same_serial, serial_key};
use crate::v3::scheme::Scheme;

/// One key, under the serial as it was given.
#[derive(Clone)]
struct Entry {
    serial: String,
    key: PublicKey,
    /// A certificate's `notBefore` (Unix seconds), to tell the newest one.
    since: Option<i64>,
}

fn not_before(cert: &Certificate) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let d = epoch.diff(cert.as_openssl().not_before()).ok()?;
    Some(i64::from(d.days) * 86_400 + i64::from(d.secs))
}

/// A set of platform public keys, each under the serial or key id the platform names it by.
#[derive(Default)]
pub struct Keyring {
    keys: ArcSwap<HashMap<String, Entry>>,
    /// The scheme its keys verify under: an answer naming another is refused.
    scheme: Scheme,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("serials", &self.serials())
            .field("scheme", &self.scheme)
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty keyring whose keys verify under `scheme` (RSA for [`Keyring::new`]).
    pub fn for_scheme(scheme: Scheme) -> Self {
        Keyring {
            scheme,
            ..Self::default()
        }
    }

    /// The scheme answers and notifications are verified under.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The key the platform signs with under `serial`, if known (serials compare as numbers:
    /// `83D6…` finds the certificate whose hex serial is `083D6…`).
    pub fn get(&self, serial: &str) -> Option<PublicKey> {
        self.keys
            .load()
            .get(&serial_key(serial))
            .map(|e| e.key.clone())
    }

    fn put(&self, entries: Vec<Entry>) {
        self.keys.rcu(|old| {
            let mut m = HashMap::clone(old);
            for e in &entries {
                m.insert(serial_key(&e.serial), e.clone());
            }
            m
        });
    }

    /// Adds (or replaces) one key.
    pub fn insert(&self, serial: impl Into<String>, key: PublicKey) {
        self.merge([(serial.into(), key)]);
    }

    /// Adds several keys at once, keeping the ones already there (rotation overlaps).
    pub fn merge(&self, entries: impl IntoIterator<Item = (String, PublicKey)>) {
        self.put(
            entries
                .into_iter()
                .map(|(serial, key)| Entry {
                    serial,
                    key,
                    since: None,
                })
                .collect(),
        );
    }

    /// Adds platform certificates under their serials, remembering when each took effect so
    /// that [`Keyring::preferred`] names the newest.
    pub fn merge_certificates<'a>(&self, certs: impl IntoIterator<Item = &'a Certificate>) {
        self.put(
            certs
                .into_iter()
                .map(|c| Entry {
                    serial: c.serial().to_string(),
                    key: c.public_key().clone(),
                    since: not_before(c),
                })
                .collect(),
        );
    }

    /// A separate keyring holding these keys and `entries` besides, from one snapshot of
    /// this one (to check an answer against keys not yet trusted for good).
    pub fn with(&self, entries: impl IntoIterator<Item = (String, PublicKey)>) -> Keyring {
        let ring = Keyring {
            keys: ArcSwap::from_pointee(HashMap::clone(&self.keys.load())),
            scheme: self.scheme,
        };
        ring.merge(entries);
        ring
    }

    /// Removes a key, e.g. an expired certificate.
    pub fn remove(&self, serial: &str) -> Option<PublicKey> {
        let key = serial_key(serial);
        let mut removed = None;
        self.keys.rcu(|old| {
            let mut m = HashMap::clone(old);
            removed = m.remove(&key).map(|e| e.key);
            m
        });
        removed
    }

    /// The serials known (as given), sorted.
    pub fn serials(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .keys
            .load()
            .values()
            .map(|e| e.serial.clone())
            .collect();
        v.sort();
        v
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Whether no key is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The serial to name in `Wechatpay-Serial`, the key the merchant expects the platform to
    /// use (to sign answers, and to decrypt what is encrypted for it): a `PUB_KEY_ID_…` if one
    /// is configured, else the newest certificate (latest `notBefore`, then the greatest
    /// serial).
    pub fn preferred(&self) -> Option<(String, PublicKey)> {
        let keys = self.keys.load();
        let pick = keys
            .values()
            .filter(|e| e.serial.starts_with("PUB_KEY_ID_"))
            .max_by(|a, b| a.serial.cmp(&b.serial))
            .or_else(|| {
                keys.values().max_by(|a, b| {
                    (a.since, serial_key(&a.serial).len(), serial_key(&a.serial)).cmp(&(
                        b.since,
                        serial_key(&b.serial).len(),
                        serial_key(&b.serial),
                    ))
                })
            })?;
        Some((pick.serial.clone(), pick.key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PublicKey {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pem = String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap();
        crate::Rsa::from_public(&pem).unwrap()
    }

    #[test]
    fn with_makes_a_separate_ring_and_leaves_this_one_alone() {
        let ring = Keyring::new();
        ring.insert("A", key());
        let wider = ring.with([("B".to_string(), key())]);
        assert_eq!(wider.serials(), vec!["A", "B"]);
        assert_eq!(ring.serials(), vec!["A"]);
        wider.remove("A");
        assert!(ring.get("A").is_some());
    }

    #[test]
    fn serials_compare_as_numbers_and_ids_as_written() {
        let ring = Keyring::new();
        ring.insert("083D6A", key());
        for s in ["83D6A", "83d6a", "0083D6A", " 083D6A\n"] {
            assert!(ring.get(s).is_some(), "{s}");
        }
        assert!(ring.get("83D6A0").is_none());
        assert!(ring.get("3D6A").is_none());
        assert_eq!(ring.serials(), vec!["083D6A"]);
        assert!(ring.remove("83d6a").is_some());
        assert!(ring.is_empty());
        ring.insert("PUB_KEY_ID_01", key());
        assert!(ring.get("PUB_KEY_ID_1").is_none());
        assert!(ring.get("pub_key_id_01").is_none());
        assert!(same_serial("000", "0"));
    }
}
