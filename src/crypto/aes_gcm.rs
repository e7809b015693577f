//! AEAD_AES_256_GCM, as wechatpay-php's `Crypto\AesGcm`: what the platform encrypts
//! notifications' `resource` and downloaded certificates with, under the merchant's APIv3 key.
//! The tag is the last 16 bytes of the ciphertext.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};

use crate::error::Error;

/// Length of the authentication tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;
/// Length the key must have (the APIv3 key is 32 ASCII characters).
pub const KEY_LEN: usize = 32;

/// AES-256-GCM with the platform's framing.
///
/// ```
/// use wechatpay_chain::crypto::AesGcm;
/// let key = "0123456789abcdef0123456789abcdef";
/// let ct = AesGcm::encrypt("hello wechatpay 你好 微信支付", key, "0123456789ab", "certificate").unwrap();
/// assert_eq!(ct, "8cyLVizq736WbULJw2UFB6Y7dCqydUqOmiErpmgeDQbOxP/z/JKqUOKnGFY/hwPRUEBg");
/// let pt = AesGcm::decrypt(&ct, key, "0123456789ab", "certificate").unwrap();
/// assert_eq!(pt, "hello wechatpay 你好 微信支付".as_bytes());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AesGcm;

fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.len() != KEY_LEN {
        return Err(Error::Crypto(format!(
            "AES-256-GCM key must be exactly {KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_nonce(nonce: &[u8]) -> Result<(), Error> {
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(Error::Crypto(format!(
            "AES-GCM nonce must be 1 to 64 bytes, got {}",
            nonce.len()
        )));
    }
    Ok(())
}

impl AesGcm {
    /// Encrypts `plaintext`; returns base64 of ciphertext followed by the 16-byte tag.
    pub fn encrypt(
        plaintext: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        nonce: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<String, Error> {
        let (key, nonce) = (key.as_ref(), nonce.as_ref());
        check_key(key)?;
        check_nonce(nonce)?;
        let mut tag = [0u8; TAG_LEN];
        let mut out = encrypt_aead(
            Cipher::aes_256_gcm(),
            key,
            Some(nonce),
            aad.as_ref(),
            plaintext.as_ref(),
            &mut tag,
        )?;
        out.extend_from_slice(&tag);
        Ok(B64.encode(out))
    }

    /// Decrypts base64 `ciphertext` (tag last) and checks its tag; any tampering, a wrong key,
    /// nonce or associated data is an error.
    pub fn decrypt(
        ciphertext: &str,
        key: impl AsRef<[u8]>,
        nonce: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let (key, nonce) = (key.as_ref(), nonce.as_ref());
        check_key(key)?;
        check_nonce(nonce)?;
        let raw = B64
            .decode(ciphertext.trim())
            .map_err(|_| Error::Crypto("AES-GCM ciphertext is not base64".into()))?;
        if raw.len() < TAG_LEN {
            return Err(Error::Crypto(
                "AES-GCM ciphertext is shorter than its tag".into(),
            ));
        }
        let (ct, tag) = raw.split_at(raw.len() - TAG_LEN);
        decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad.as_ref(), ct, tag)
            .map_err(|_| Error::Crypto("AES-GCM decryption failed: wrong key, nonce, associated data, or tampered ciphertext".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn fixed_vector_both_ways() {
        let ct = "8cyLVizq736WbULJw2UFB6Y7dCqydUqOmiErpmgeDQbOxP/z/JKqUOKnGFY/hwPRUEBg";
        assert_eq!(
            AesGcm::encrypt(
                "hello wechatpay 你好 微信支付",
                KEY,
                "0123456789ab",
                "certificate"
            )
            .unwrap(),
            ct
        );
        assert_eq!(
            AesGcm::decrypt(ct, KEY, "0123456789ab", "certificate").unwrap(),
            "hello wechatpay 你好 微信支付".as_bytes()
        );
    }

    #[test]
    fn refuses_wrong_inputs() {
        let ct = AesGcm::encrypt("x", KEY, "0123456789ab", "a").unwrap();
        assert!(AesGcm::decrypt(&ct, KEY, "0123456789ab", "b").is_err());
        assert!(AesGcm::decrypt(&ct, KEY, "0123456789ac", "a").is_err());
        assert!(
            AesGcm::decrypt(&ct, "1123456789abcdef0123456789abcdef", "0123456789ab", "a").is_err()
        );
        // PHP pads short keys silently; we refuse.
        assert!(AesGcm::encrypt("x", "short", "0123456789ab", "").is_err());
        assert!(AesGcm::decrypt(&ct, "short", "0123456789ab", "").is_err());
        assert!(AesGcm::decrypt("AAAA", KEY, "0123456789ab", "a").is_err());
        assert!(AesGcm::decrypt("not base64!", KEY, "0123456789ab", "a").is_err());
        let mut raw = B64.decode(&ct).unwrap();
        raw[0] ^= 1;
        assert!(AesGcm::decrypt(&B64.encode(raw), KEY, "0123456789ab", "a").is_err());
    }
}
