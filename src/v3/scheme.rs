//! The APIv3 signature schemes: `WECHATPAY2-SHA256-RSA2048` (RSA, AES-256-GCM, SHA-256) and,
//! with the `shangmi` feature, the 国密 scheme `WECHATPAY2-SM2-WITH-SM3` (SM2, SM4-GCM, SM3). A
//! client speaks one of them ([`Builder::scheme`](crate::Builder::scheme)); an answer or a
//! notification that names the other is refused, never checked under a scheme it does not
//! claim.

use crate::crypto::{AesGcm, PrivateKey, PublicKey, Rsa};
use crate::error::Error;

/// An APIv3 signature scheme. RSA is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Scheme {
    /// `WECHATPAY2-SHA256-RSA2048`: RSA PKCS#1 v1.5 over SHA-256, RSA-OAEP sensitive fields,
    /// `AEAD_AES_256_GCM` resources.
    #[default]
    Rsa,
    /// `WECHATPAY2-SM2-WITH-SM3`: SM2 over SM3 (user id `1234567812345678`), SM2 sensitive
    /// fields (C1C3C2 ASN.1), `AEAD_SM4_GCM` resources, SM2 platform certificates.
    #[cfg(feature = "shangmi")]
    Sm2,
}

/// The name of the RSA scheme, in `Authorization` and `Wechatpay-Signature-Type`.
pub const RSA: &str = "WECHATPAY2-SHA256-RSA2048";
/// The name of the 国密 scheme, in `Authorization` and `Wechatpay-Signature-Type`.
pub const SM2: &str = "WECHATPAY2-SM2-WITH-SM3";

impl Scheme {
    /// The scheme's name, as `Authorization` begins and `Wechatpay-Signature-Type` says.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Rsa => RSA,
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => SM2,
        }
    }

    /// The AEAD the platform encrypts resources and certificates with in this scheme.
    pub fn aead(self) -> &'static str {
        match self {
            Scheme::Rsa => "AEAD_AES_256_GCM",
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => "AEAD_SM4_GCM",
        }
    }

    /// The `algorithm_type` of `v3/certificates` that lists this scheme's certificates.
    pub fn algorithm_type(self) -> &'static str {
        match self {
            Scheme::Rsa => "RSA",
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => "SM2",
        }
    }

    /// The scheme a merchant key signs under: SM2 for an SM2 key, else RSA (whose signer
    /// reports a key of any other kind).
    pub fn of_key(key: &PrivateKey) -> Scheme {
        Self::of_pkey(&key.0)
    }

    /// The scheme a platform key encrypts under, as [`Scheme::of_key`].
    pub fn of_public_key(key: &PublicKey) -> Scheme {
        Self::of_pkey(&key.0)
    }

    fn of_pkey<T: openssl::pkey::HasPublic>(key: &openssl::pkey::PKey<T>) -> Scheme {
        #[cfg(feature = "shangmi")]
        if key.id() != openssl::pkey::Id::RSA && crate::crypto::rsa::is_sm2(key) {
            return Scheme::Sm2;
        }
        let _ = key;
        Scheme::Rsa
    }

    /// Whether `key` is of this scheme's kind.
    pub(crate) fn fits<T: openssl::pkey::HasPublic>(self, key: &openssl::pkey::PKey<T>) -> bool {
        match self {
            Scheme::Rsa => key.id() == openssl::pkey::Id::RSA,
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::rsa::is_sm2(key),
        }
    }

    /// Checks that the builder's keys are all of this scheme's kind; the error says how to load
    /// the right one.
    pub(crate) fn check_keys(
        self,
        private: Option<&PrivateKey>,
        public: &[(String, PublicKey)],
        certificates: &[crate::crypto::Certificate],
    ) -> Result<(), Error> {
        let (kind, loader) = match self {
            Scheme::Rsa => ("RSA", "Rsa"),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => ("SM2", "Sm2"),
        };
        let wrong = |what: String| {
            Err(Error::config(format!(
                "{what} is not an {kind} key, which the scheme {self} needs: load it with \
                 {loader}::from_private / from_public / from_certificate, or choose the scheme \
                 of the key with Builder::scheme"
            )))
        };
        if private.is_some_and(|k| !self.fits(&k.0)) {
            return wrong("the merchant private key".into());
        }
        for (id, key) in public {
            if !self.fits(&key.0) {
                return wrong(format!("the platform public key {id}"));
            }
        }
        for cert in certificates {
            if !self.fits(&cert.key.0) {
                return wrong(format!("the platform certificate {}", cert.serial()));
            }
        }
        Ok(())
    }

    /// Signs `message` with `key` under this scheme; base64 ([`Rsa::sign`] or `Sm2::sign`).
    pub fn sign(self, message: &[u8], key: &PrivateKey) -> Result<String, Error> {
        match self {
            Scheme::Rsa => Rsa::sign(message, key),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm2::sign(message, key),
        }
    }

    /// Verifies a base64 signature under this scheme; false on any failure.
    pub fn verify(self, message: &[u8], signature: &str, key: &PublicKey) -> bool {
        match self {
            Scheme::Rsa => Rsa::verify(message, signature, key),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm2::verify(message, signature, key),
        }
    }

    /// Encrypts a sensitive field for the platform under this scheme; base64.
    pub(crate) fn encrypt(self, plaintext: &[u8], key: &PublicKey) -> Result<String, Error> {
        match self {
            Scheme::Rsa => Rsa::encrypt(plaintext, key),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm2::encrypt(plaintext, key),
        }
    }

    /// Decrypts what the platform encrypted with the merchant's key (a bill's key).
    pub(crate) fn decrypt(self, ciphertext: &str, key: &PrivateKey) -> Result<Vec<u8>, Error> {
        match self {
            Scheme::Rsa => Rsa::decrypt(ciphertext, key),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm2::decrypt(ciphertext, key),
        }
    }

    /// Opens a resource or certificate encrypted with this scheme's AEAD under the APIv3 key.
    pub(crate) fn open(
        self,
        ciphertext: &str,
        apiv3_key: &[u8],
        nonce: &str,
        aad: &str,
    ) -> Result<Vec<u8>, Error> {
        match self {
            Scheme::Rsa => AesGcm::decrypt(ciphertext, apiv3_key, nonce, aad),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm4Gcm::decrypt(ciphertext, apiv3_key, nonce, aad),
        }
    }

    /// A certificate of this scheme's kind from PEM text.
    pub(crate) fn certificate(self, pem: &str) -> Result<crate::crypto::Certificate, Error> {
        match self {
            Scheme::Rsa => Rsa::from_certificate(pem),
            #[cfg(feature = "shangmi")]
            Scheme::Sm2 => crate::crypto::Sm2::from_certificate(pem),
        }
    }
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
