//! The platform's verification keys, by `Wechatpay-Serial`: certificate serials and
//! `PUB_KEY_ID_…` public-key ids side by side. Shared by every clone of a client; reads are
//! lock-free (`arc-swap`), so a refresh never blocks a call.

use std::collections::HashMap;

use arc_swap::ArcSwap;

use crate::crypto::PublicKey;

/// A set of platform public keys, each under the serial or key id the platform names it by.
#[derive(Default)]
pub struct Keyring {
    keys: ArcSwap<HashMap<String, PublicKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.load();
        let mut serials: Vec<&String> = keys.keys().collect();
        serials.sort();
        f.debug_struct("Keyring")
            .field("serials", &serials)
            .finish()
    }
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key the platform signs with under `serial`, if known.
    pub fn get(&self, serial: &str) -> Option<PublicKey> {
        self.keys.load().get(serial).cloned()
    }

    /// Adds (or replaces) one key.
    pub fn insert(&self, serial: impl Into<String>, key: PublicKey) {
        let serial = serial.into();
        self.keys.rcu(|old| {
            let mut m = HashMap::clone(old);
            m.insert(serial.clone(), key.clone());
            m
        });
    }

    /// Adds several keys at once, keeping the ones already there (rotation overlaps).
    pub fn merge(&self, entries: impl IntoIterator<Item = (String, PublicKey)>) {
        let entries: Vec<(String, PublicKey)> = entries.into_iter().collect();
        self.keys.rcu(|old| {
            let mut m = HashMap::clone(old);
            for (s, k) in &entries {
                m.insert(s.clone(), k.clone());
            }
            m
        });
    }

    /// A separate keyring holding these keys and `entries` besides, from one snapshot of
    /// this one (to check an answer against keys not yet trusted for good).
    pub fn with(&self, entries: impl IntoIterator<Item = (String, PublicKey)>) -> Keyring {
        let mut m = HashMap::clone(&self.keys.load());
        m.extend(entries);
        Keyring {
            keys: ArcSwap::from_pointee(m),
        }
    }

    /// Removes a key, e.g. an expired certificate.
    pub fn remove(&self, serial: &str) -> Option<PublicKey> {
        let mut removed = None;
        self.keys.rcu(|old| {
            let mut m = HashMap::clone(old);
            removed = m.remove(serial);
            m
        });
        removed
    }

    /// The serials known, sorted.
    pub fn serials(&self) -> Vec<String> {
        let mut v: Vec<String> = self.keys.load().keys().cloned().collect();
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

    /// A serial to name in `Wechatpay-Serial` when encrypting for the platform: a
    /// `PUB_KEY_ID_…` if one is configured, else the lexically last certificate serial.
    pub fn preferred(&self) -> Option<(String, PublicKey)> {
        let keys = self.keys.load();
        let pick = keys
            .keys()
            .filter(|s| s.starts_with("PUB_KEY_ID_"))
            .max()
            .or_else(|| keys.keys().max())?;
        Some((pick.clone(), keys[pick].clone()))
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
}
