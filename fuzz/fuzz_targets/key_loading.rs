//! Loading keys and certificates from text never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::Rsa;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if s.starts_with("file://") {
        return; // not the file system
    }
    let _ = Rsa::from_private(s);
    let _ = Rsa::from_private_with_passphrase(s, "pass");
    let _ = Rsa::from_public(s);
    let _ = Rsa::from_certificate(s);
    for prefix in ["private.pkcs1://", "private.pkcs8://", "public.pkcs1://", "public.spki://"] {
        let _ = Rsa::from_private(&format!("{prefix}{s}"));
        let _ = Rsa::from_public(&format!("{prefix}{s}"));
    }
});
