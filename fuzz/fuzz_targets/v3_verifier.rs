//! The APIv3 answer verifier over arbitrary headers and body: never panics, and never accepts
//! an answer no key signed.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::{client_json, Keyring, Rsa};

static RING: LazyLock<Keyring> = LazyLock::new(|| {
    let rsa = openssl_key();
    let ring = Keyring::new();
    ring.insert("PUB_KEY_ID_1", Rsa::from_public(&rsa).unwrap());
    ring
});

fn openssl_key() -> String {
    // A fixed public key: the fuzzer cannot forge its signatures.
    include_str!("../keys/platform_pub.pem").to_string()
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(6, |b| *b == b'\n');
    let mut headers = http::HeaderMap::new();
    for name in ["wechatpay-timestamp", "wechatpay-nonce", "wechatpay-serial", "wechatpay-signature", "wechatpay-statement-sha1"] {
        if let Some(v) = parts.next() {
            if let Ok(v) = http::HeaderValue::from_bytes(v) {
                if !v.is_empty() {
                    headers.insert(name, v);
                }
            }
        }
    }
    let body = parts.next().unwrap_or(b"");
    let now = wechatpay_chain::formatter::timestamp();
    assert!(client_json::verify_headers(&headers, body, &RING, now).is_err());
});
