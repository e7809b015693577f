//! The APIv3 webhook helper behind a valid signature: every input is signed with the test
//! platform key, so the fuzzer drives the envelope parsing and the AES-GCM decryption. It must
//! never panic, and never return a notification the APIv3 key did not encrypt.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::{formatter, notify, Keyring, PrivateKey, Rsa};

const APIV3: &str = "0123456789abcdef0123456789abcdef";

static KEYS: LazyLock<(PrivateKey, Keyring)> = LazyLock::new(|| {
    let key = Rsa::from_private(include_str!("../keys/platform_key.pem")).unwrap();
    let ring = Keyring::new();
    ring.insert("PUB_KEY_ID_1", Rsa::from_public(include_str!("../keys/platform_pub.pem")).unwrap());
    (key, ring)
});

fuzz_target!(|body: &[u8]| {
    let (key, ring) = &*KEYS;
    let now = formatter::timestamp();
    let ts = now.to_string();
    let sig = Rsa::sign(formatter::response(&ts, "NONCE", body), key).unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("wechatpay-timestamp", ts.parse().unwrap());
    headers.insert("wechatpay-nonce", "NONCE".parse().unwrap());
    headers.insert("wechatpay-serial", "PUB_KEY_ID_1".parse().unwrap());
    headers.insert("wechatpay-signature", sig.parse().unwrap());
    // The fuzzer cannot produce a ciphertext that authenticates under the APIv3 key.
    assert!(notify::verify(&headers, body, ring, APIV3, now).is_err());
});
