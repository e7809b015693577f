//! Decrypting a `v3/certificates` answer from arbitrary bytes never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::certificates::decrypt_listing;

fuzz_target!(|data: &[u8]| {
    let _ = decrypt_listing(data, "0123456789abcdef0123456789abcdef");
});
