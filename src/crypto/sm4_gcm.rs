//! AEAD_SM4_GCM, beside [`AesGcm`](super::AesGcm): what the 国密 scheme encrypts notifications'
//! `resource`, downloaded certificates and bills with. Its key is the first 16 bytes of the SM3
//! digest of the APIv3 key (as wechatpay-java's `AeadSM4Cipher` derives it); the nonce is 12
//! bytes, the tag the last 16 bytes of the ciphertext, as with AES-GCM.

use aes_gcm::aead::array::typenum::U12;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::error::Error;

/// Length of the authentication tag appended to the ciphertext.
pub const TAG_LEN: usize = 16;
/// Length the APIv3 key must have (32 ASCII characters), as for [`AesGcm`](super::AesGcm).
pub const KEY_LEN: usize = 32;
/// Length of the nonce the platform sends.
pub const NONCE_LEN: usize = 12;

type Cipher = aes_gcm::AesGcm<sm4::Sm4, U12>;

/// SM4-GCM with the platform's framing, keyed by the APIv3 key as [`AesGcm`](super::AesGcm) is.
///
/// ```
/// use wechatpay_chain::crypto::Sm4Gcm;
/// let key = "0123456789abcdef0123456789abcdef";
/// let ct = Sm4Gcm::encrypt("hello 微信支付", key, "0123456789ab", "certificate")?;
/// assert_eq!(Sm4Gcm::decrypt(&ct, key, "0123456789ab", "certificate")?, "hello 微信支付".as_bytes());
/// # Ok::<(), wechatpay_chain::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sm4Gcm;

fn cipher(apiv3_key: &[u8]) -> Result<Cipher, Error> {
    if apiv3_key.len() != KEY_LEN {
        return Err(Error::crypto(format!(
            "SM4-GCM: the APIv3 key must be exactly {KEY_LEN} bytes, got {}",
            apiv3_key.len()
        )));
    }
    let key = Sm4Gcm::key_of(apiv3_key);
    raw_cipher(&key[..])
}

fn raw_cipher(sm4_key: &[u8]) -> Result<Cipher, Error> {
    Cipher::new_from_slice(sm4_key)
        .map_err(|_| Error::crypto(format!("an SM4 key is 16 bytes, got {}", sm4_key.len())))
}

fn open(c: Cipher, raw: &[u8], nonce_: &[u8], aad: &[u8]) -> Result<Vec<u8>, Error> {
    let n = nonce(nonce_)?;
    if raw.len() < TAG_LEN {
        return Err(Error::crypto("SM4-GCM ciphertext is shorter than its tag"));
    }
    c.decrypt(&n, Payload { msg: raw, aad }).map_err(|_| {
        Error::crypto(
            "SM4-GCM decryption failed: wrong key, nonce, associated data, or tampered ciphertext",
        )
    })
}

fn nonce(nonce: &[u8]) -> Result<aes_gcm::Nonce<U12>, Error> {
    aes_gcm::Nonce::<U12>::try_from(nonce).map_err(|_| {
        Error::crypto(format!(
            "SM4-GCM nonce must be exactly {NONCE_LEN} bytes, got {}",
            nonce.len()
        ))
    })
}

impl Sm4Gcm {
    /// The SM4 key derived from an APIv3 key: the first 16 bytes of its SM3 digest.
    pub fn key_of(apiv3_key: impl AsRef<[u8]>) -> Zeroizing<[u8; 16]> {
        let digest = Zeroizing::new(super::sm3::sm3(apiv3_key));
        let mut key = Zeroizing::new([0u8; 16]);
        key.copy_from_slice(&digest[..16]);
        key
    }

    /// Encrypts under a 16-byte SM4 key as is (a bill's file key, not derived from the APIv3
    /// key); returns the raw ciphertext, tag last.
    pub fn encrypt_with_key(
        plaintext: impl AsRef<[u8]>,
        sm4_key: impl AsRef<[u8]>,
        nonce_: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let n = nonce(nonce_.as_ref())?;
        raw_cipher(sm4_key.as_ref())?
            .encrypt(
                &n,
                Payload {
                    msg: plaintext.as_ref(),
                    aad: aad.as_ref(),
                },
            )
            .map_err(|_| Error::crypto("SM4-GCM encryption failed"))
    }

    /// Opens raw `ciphertext` (tag last) under a 16-byte SM4 key as is, see
    /// [`Sm4Gcm::encrypt_with_key`].
    pub fn decrypt_with_key(
        ciphertext: &[u8],
        sm4_key: impl AsRef<[u8]>,
        nonce_: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, Error> {
        open(
            raw_cipher(sm4_key.as_ref())?,
            ciphertext,
            nonce_.as_ref(),
            aad.as_ref(),
        )
    }

    /// Encrypts `plaintext`; returns base64 of ciphertext followed by the 16-byte tag.
    pub fn encrypt(
        plaintext: impl AsRef<[u8]>,
        apiv3_key: impl AsRef<[u8]>,
        nonce_: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<String, Error> {
        let c = cipher(apiv3_key.as_ref())?;
        let n = nonce(nonce_.as_ref())?;
        let out = c
            .encrypt(
                &n,
                Payload {
                    msg: plaintext.as_ref(),
                    aad: aad.as_ref(),
                },
            )
            .map_err(|_| Error::crypto("SM4-GCM encryption failed"))?;
        Ok(B64.encode(out))
    }

    /// Decrypts base64 `ciphertext` (tag last) and checks its tag; any tampering, a wrong key,
    /// nonce or associated data is an error.
    pub fn decrypt(
        ciphertext: &str,
        apiv3_key: impl AsRef<[u8]>,
        nonce_: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, Error> {
        let raw = B64
            .decode(ciphertext.trim())
            .map_err(|e| Error::crypto_from("SM4-GCM ciphertext is not base64", e))?;
        Self::decrypt_bytes(&raw, apiv3_key, nonce_, aad)
    }

    /// [`Sm4Gcm::decrypt`] of raw bytes (an encrypted bill, read whole: the tag is checked
    /// before any plaintext is given out).
    pub fn decrypt_bytes(
        raw: &[u8],
        apiv3_key: impl AsRef<[u8]>,
        nonce_: impl AsRef<[u8]>,
        aad: impl AsRef<[u8]>,
    ) -> Result<Vec<u8>, Error> {
        open(
            cipher(apiv3_key.as_ref())?,
            raw,
            nonce_.as_ref(),
            aad.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trip_and_refusals() {
        let ct = Sm4Gcm::encrypt("x", KEY, "0123456789ab", "a").unwrap();
        assert_eq!(
            Sm4Gcm::decrypt(&ct, KEY, "0123456789ab", "a").unwrap(),
            b"x"
        );
        assert!(Sm4Gcm::decrypt(&ct, KEY, "0123456789ab", "b").is_err());
        assert!(Sm4Gcm::decrypt(&ct, KEY, "0123456789ac", "a").is_err());
        assert!(
            Sm4Gcm::decrypt(&ct, "1123456789abcdef0123456789abcdef", "0123456789ab", "a").is_err()
        );
        assert!(Sm4Gcm::encrypt("x", "short", "0123456789ab", "").is_err());
        let e = Sm4Gcm::encrypt("x", KEY, "short", "").unwrap_err();
        assert!(e.to_string().contains("12 bytes"), "{e}");
        assert!(Sm4Gcm::decrypt("AAAA", KEY, "0123456789ab", "a").is_err());
        assert!(Sm4Gcm::decrypt("not base64!", KEY, "0123456789ab", "a").is_err());
        let mut raw = B64.decode(&ct).unwrap();
        raw[0] ^= 1;
        assert!(Sm4Gcm::decrypt(&B64.encode(raw), KEY, "0123456789ab", "a").is_err());
        // SM4-GCM and AES-256-GCM under the same APIv3 key do not open each other's output.
        let aes = super::super::AesGcm::encrypt("x", KEY, "0123456789ab", "a").unwrap();
        assert!(Sm4Gcm::decrypt(&aes, KEY, "0123456789ab", "a").is_err());
    }
}
