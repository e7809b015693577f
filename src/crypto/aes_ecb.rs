//! AES-256-ECB with PKCS#7 padding, as wechatpay-php's `Crypto\AesEcb`: what the platform
//! encrypts the `req_info` of APIv2 refund notifications with, under the lowercase hex MD5 of
//! the APIv2 key ([`AesEcb::key_from_secret`]). ECB has no integrity of its own: treat what it
//! decrypts as a claim to check (query the refund), not as proof.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::symm::{decrypt, encrypt, Cipher};

use crate::error::Error;

/// Length the key must have.
pub const KEY_LEN: usize = 32;

/// AES-256-ECB, PKCS#7, base64 outside.
///
/// ```
/// use wechatpay_chain::crypto::AesEcb;
/// let key = "0123456789abcdef0123456789abcdef";
/// assert_eq!(AesEcb::encrypt("hello", key).unwrap(), "pZwJZBLuy3mDACEQT4YTBw==");
/// assert_eq!(AesEcb::decrypt("pZwJZBLuy3mDACEQT4YTBw==", key).unwrap(), b"hello");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AesEcb;

fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.len() != KEY_LEN {
        return Err(Error::crypto(format!(
            "AES-256-ECB key must be exactly {KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

impl AesEcb {
    /// The key refund notifications are encrypted with: lowercase hex MD5 of the APIv2 key.
    pub fn key_from_secret(secret: &str) -> Result<String, Error> {
        crate::crypto::hash::md5_hex(secret)
    }

    /// Encrypts `plaintext`; returns base64 of the ciphertext.
    pub fn encrypt(plaintext: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> Result<String, Error> {
        let key = key.as_ref();
        check_key(key)?;
        let out = encrypt(Cipher::aes_256_ecb(), key, None, plaintext.as_ref())
            .map_err(Error::openssl("AES-256-ECB encryption failed"))?;
        Ok(B64.encode(out))
    }

    /// Decrypts base64 `ciphertext`; bad base64, a length that is not whole blocks, or bad
    /// padding (most often: the wrong key) is an error.
    pub fn decrypt(ciphertext: &str, key: impl AsRef<[u8]>) -> Result<Vec<u8>, Error> {
        let key = key.as_ref();
        check_key(key)?;
        let raw = B64
            .decode(ciphertext.trim())
            .map_err(|e| Error::crypto_from("AES-256-ECB ciphertext is not base64", e))?;
        if raw.is_empty() || raw.len() % 16 != 0 {
            return Err(Error::crypto(format!(
                "AES-256-ECB ciphertext must be whole 16-byte blocks, got {} bytes",
                raw.len()
            )));
        }
        decrypt(Cipher::aes_256_ecb(), key, None, &raw).map_err(|e| {
            Error::crypto_from(
                "AES-256-ECB decryption failed (wrong key or corrupted data)",
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn fixed_vector_and_round_trip() {
        assert_eq!(
            AesEcb::encrypt("hello", KEY).unwrap(),
            "pZwJZBLuy3mDACEQT4YTBw=="
        );
        assert_eq!(
            AesEcb::decrypt("pZwJZBLuy3mDACEQT4YTBw==", KEY).unwrap(),
            b"hello"
        );
        let long = "退款 refund ".repeat(40);
        let ct = AesEcb::encrypt(&long, KEY).unwrap();
        assert_eq!(AesEcb::decrypt(&ct, KEY).unwrap(), long.as_bytes());
    }

    #[test]
    fn key_is_md5_hex_of_the_secret() {
        let k = AesEcb::key_from_secret("192006250b4c09247ec02edce69f6a2d").unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(k, k.to_ascii_lowercase());
        assert_eq!(
            AesEcb::key_from_secret("").unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(AesEcb::encrypt("x", "short").is_err());
        assert!(AesEcb::decrypt("pZwJZBLuy3mDACEQT4YTBw==", "short").is_err());
        assert!(AesEcb::decrypt("not base64!", KEY).is_err());
        assert!(AesEcb::decrypt("", KEY).is_err());
        assert!(AesEcb::decrypt("AAAA", KEY).is_err());
        let wrong = "fedcba9876543210fedcba9876543210";
        // A wrong key almost always leaves bad padding; when it does not, the bytes differ.
        match AesEcb::decrypt("pZwJZBLuy3mDACEQT4YTBw==", wrong) {
            Err(Error::Crypto { .. }) => {}
            Ok(pt) => assert_ne!(pt, b"hello"),
            Err(e) => panic!("{e}"),
        }
    }
}
