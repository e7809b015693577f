//! AEAD_AES_256_GCM, as wechatpay-php's `Crypto\AesGcm`: what the platform encrypts
//! notifications' `resource` and downloaded certificates with, under the merchant's APIv3 key.
//! The tag is the last 16 bytes of the ciphertext.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher, Crypter, Mode};

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
        return Err(Error::crypto(format!(
            "AES-256-GCM key must be exactly {KEY_LEN} bytes, got {}",
            key.len()
        )));
    }
    Ok(())
}

fn check_nonce(nonce: &[u8]) -> Result<(), Error> {
    if nonce.is_empty() || nonce.len() > 64 {
        return Err(Error::crypto(format!(
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
        )
        .map_err(Error::openssl("AES-GCM encryption failed"))?;
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
            .map_err(|e| Error::crypto_from("AES-GCM ciphertext is not base64", e))?;
        if raw.len() < TAG_LEN {
            return Err(Error::crypto("AES-GCM ciphertext is shorter than its tag"));
        }
        let (ct, tag) = raw.split_at(raw.len() - TAG_LEN);
        decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), aad.as_ref(), ct, tag)
            .map_err(|e| Error::crypto_from("AES-GCM decryption failed: wrong key, nonce, associated data, or tampered ciphertext", e))
    }
}

/// AES-256-GCM decryption of a stream whose last 16 bytes are the tag: what the platform's
/// encrypted bill files are. Plaintext comes out as the ciphertext goes in, so it is not yet
/// authenticated: only a successful [`Opener::finish`] proves it, and on an error whatever was
/// handed on must be discarded.
pub(crate) struct Opener {
    crypter: Crypter,
    /// The last bytes seen, up to [`TAG_LEN`]: the tag, once the stream ends.
    held: Vec<u8>,
}

impl Opener {
    pub(crate) fn new(key: &[u8], nonce: &[u8], aad: &[u8]) -> Result<Opener, Error> {
        check_key(key)?;
        check_nonce(nonce)?;
        let mut crypter = Crypter::new(Cipher::aes_256_gcm(), Mode::Decrypt, key, Some(nonce))
            .map_err(Error::openssl(
                "AES-GCM decryption cannot start (key or nonce size)",
            ))?;
        if !aad.is_empty() {
            crypter.aad_update(aad).map_err(Error::openssl(
                "AES-GCM decryption cannot take the associated data",
            ))?;
        }
        Ok(Opener {
            crypter,
            held: Vec::with_capacity(TAG_LEN),
        })
    }

    /// Takes the next ciphertext bytes; returns the plaintext they give (not yet authenticated).
    pub(crate) fn update(&mut self, input: &[u8]) -> Result<Vec<u8>, Error> {
        let total = self.held.len() + input.len();
        if total <= TAG_LEN {
            self.held.extend_from_slice(input);
            return Ok(Vec::new());
        }
        // Everything but the last TAG_LEN bytes of held + input is ciphertext now.
        let ready = total - TAG_LEN;
        let mut out = vec![0u8; ready + 16];
        let mut n = 0;
        let from_held = ready.min(self.held.len());
        if from_held > 0 {
            n += self
                .crypter
                .update(&self.held[..from_held], &mut out[n..])
                .map_err(Error::openssl("AES-GCM decryption failed"))?;
        }
        let from_input = ready - from_held;
        if from_input > 0 {
            n += self
                .crypter
                .update(&input[..from_input], &mut out[n..])
                .map_err(Error::openssl("AES-GCM decryption failed"))?;
        }
        self.held.drain(..from_held);
        self.held.extend_from_slice(&input[from_input..]);
        out.truncate(n);
        Ok(out)
    }

    /// Ends the stream: checks the tag. An error means the whole plaintext is untrustworthy.
    pub(crate) fn finish(mut self) -> Result<(), Error> {
        if self.held.len() < TAG_LEN {
            return Err(Error::crypto("AES-GCM stream is shorter than its tag"));
        }
        self.crypter
            .set_tag(&self.held)
            .map_err(Error::openssl("AES-GCM tag cannot be set"))?;
        let mut rest = [0u8; 32];
        self.crypter.finalize(&mut rest).map_err(|e| {
            Error::crypto_from(
                "AES-GCM decryption failed: wrong key or nonce, or a damaged stream",
                e,
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opener_streams_in_any_chunking_and_checks_the_tag() {
        let plain: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let raw = B64
            .decode(AesGcm::encrypt(&plain, KEY, "nonce-of-bill", "").unwrap())
            .unwrap();
        for chunk in [1, 5, 15, 16, 17, 100, 2000] {
            let mut o = Opener::new(KEY.as_bytes(), b"nonce-of-bill", b"").unwrap();
            let mut out = Vec::new();
            for c in raw.chunks(chunk) {
                out.extend(o.update(c).unwrap());
            }
            o.finish().unwrap();
            assert_eq!(out, plain, "chunks of {chunk}");
        }
        // A flipped bit anywhere, a wrong nonce, a truncated stream: finish refuses.
        for bad in [0, 500, raw.len() - 1] {
            let mut r = raw.clone();
            r[bad] ^= 1;
            let mut o = Opener::new(KEY.as_bytes(), b"nonce-of-bill", b"").unwrap();
            o.update(&r).unwrap();
            assert!(o.finish().is_err(), "bit flipped at {bad}");
        }
        let mut o = Opener::new(KEY.as_bytes(), b"other-nonce", b"").unwrap();
        o.update(&raw).unwrap();
        assert!(o.finish().is_err());
        let mut o = Opener::new(KEY.as_bytes(), b"nonce-of-bill", b"").unwrap();
        o.update(&raw[..raw.len() - 1]).unwrap();
        assert!(o.finish().is_err());
        let mut o = Opener::new(KEY.as_bytes(), b"nonce-of-bill", b"").unwrap();
        o.update(&raw[..10]).unwrap();
        assert!(o.finish().is_err(), "shorter than a tag");
        assert!(Opener::new(b"short", b"n", b"").is_err());
    }

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
