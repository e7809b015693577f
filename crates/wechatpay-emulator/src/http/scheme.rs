//! The sandbox's APIv3 scheme ([`EmulatorConfig::scheme`](crate::EmulatorConfig::scheme)):
//! RSA by default, or (feature `shangmi`) the 国密 `WECHATPAY2-SM2-WITH-SM3`. Every place that
//! signs, verifies, seals or digests for the platform asks here, so that a flow never names an
//! algorithm.

use wechatpay_chain::crypto::{AesGcm, Certificate, PrivateKey, PublicKey, Rsa};
use wechatpay_chain::{Error, Scheme};

#[cfg(feature = "shangmi")]
use wechatpay_chain::crypto::{sm3::sm3_hex, Sm2, Sm4Gcm};

/// A fresh platform or merchant key of `scheme`'s kind.
pub(crate) fn generate_key(scheme: Scheme) -> Result<PrivateKey, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::generate(),
        _ => crate::util::generate_key(),
    }
}

/// Signs `message` for `Wechatpay-Signature` (Base64).
pub(crate) fn sign(scheme: Scheme, message: &[u8], key: &PrivateKey) -> Result<String, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::sign(message, key),
        _ => Rsa::sign(message, key),
    }
}

/// Whether `signature` (Base64) is `key`'s over `message`.
pub(crate) fn verify(scheme: Scheme, message: &[u8], signature: &str, key: &PublicKey) -> bool {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::verify(message, signature, key),
        _ => Rsa::verify(message, signature, key),
    }
}

/// A sensitive field encrypted for `key` (RSA-OAEP, or SM2 C1C3C2), Base64.
pub(crate) fn encrypt_field(
    scheme: Scheme,
    plain: &[u8],
    key: &PublicKey,
) -> Result<String, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::encrypt(plain, key),
        _ => Rsa::encrypt(plain, key),
    }
}

/// A sensitive field decrypted with `key`.
pub(crate) fn decrypt_field(
    scheme: Scheme,
    ciphertext: &str,
    key: &PrivateKey,
) -> Result<Vec<u8>, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::decrypt(ciphertext, key),
        _ => Rsa::decrypt(ciphertext, key),
    }
}

/// A resource or certificate sealed with the APIv3 key as the scheme's AEAD
/// ([`Scheme::aead`] names it): AES-256-GCM, or SM4-GCM under the key derived from it.
pub(crate) fn seal(
    scheme: Scheme,
    plain: &str,
    apiv3_key: &str,
    nonce: &str,
    aad: &str,
) -> Result<String, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm4Gcm::encrypt(plain, apiv3_key, nonce, aad),
        _ => AesGcm::encrypt(plain, apiv3_key, nonce, aad),
    }
}

/// The `hash_type` bills and downloads are described with, and `data`'s digest in it (hex).
pub(crate) fn digest(scheme: Scheme, data: &[u8]) -> (&'static str, String) {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => ("SM3", sm3_hex(data)),
        _ => ("SHA1", wechatpay_chain::crypto::hash::sha1_hex(data)),
    }
}

/// A certificate the sandbox issued, loaded as the scheme's kind.
pub(crate) fn certificate(scheme: Scheme, pem: &str) -> Result<Certificate, Error> {
    match scheme {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::from_certificate(pem),
        _ => Rsa::from_certificate(pem),
    }
}

/// The scheme an answer names in `Wechatpay-Signature-Type`: the sandbox's, or the other one
/// for [`Forgery::OtherScheme`](crate::http::settings::Forgery::OtherScheme).
pub(crate) fn named(
    scheme: Scheme,
    forgery: Option<crate::http::settings::Forgery>,
) -> &'static str {
    use wechatpay_chain::v3::scheme::{RSA, SM2};
    match (forgery, scheme.name()) {
        (Some(crate::http::settings::Forgery::OtherScheme), RSA) => SM2,
        (Some(crate::http::settings::Forgery::OtherScheme), _) => RSA,
        (_, name) => name,
    }
}

/// A bill part sealed for download as `algorithm` asks (`AEAD_AES_256_GCM`, or `SM4_GCM` in
/// the 国密 scheme): a fresh file key (32 or 16 characters), the raw ciphertext with its tag
/// last (no associated data) and the key encrypted for the merchant (RSA-OAEP or SM2).
pub(crate) fn seal_file(
    scheme: Scheme,
    sm4: bool,
    plain: &[u8],
    nonce: &str,
    merchant: &PublicKey,
) -> Result<(Vec<u8>, String), Error> {
    use base64::Engine as _;
    let key = wechatpay_chain::formatter::nonce(if sm4 { 16 } else { 32 });
    #[cfg(feature = "shangmi")]
    if sm4 {
        let sealed = Sm4Gcm::encrypt_with_key(plain, key.as_bytes(), nonce, "")?;
        return Ok((sealed, encrypt_field(scheme, key.as_bytes(), merchant)?));
    }
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(AesGcm::encrypt(plain, &key, nonce, "")?)
        .map_err(|e| Error::crypto(format!("cannot seal the bill: {e}")))?;
    Ok((sealed, encrypt_field(scheme, key.as_bytes(), merchant)?))
}
