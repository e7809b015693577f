//! The decryption and digest stages of a bill download, for either scheme: AES-256-GCM (a
//! 32-byte file key) streams through OpenSSL; SM4-GCM (a 16-byte file key, the 国密 scheme's
//! `SM4_GCM`) is opened whole at the end, since RustCrypto's GCM has no streaming decryption:
//! nothing of it reaches the writer before its tag is checked, and it is held in memory.
//! The digest is SHA-1/SHA-256 (OpenSSL) or SM3.

use openssl::hash::Hasher;

use crate::crypto::aes_gcm::Opener;
use crate::error::Error;
use crate::v3::download::HashType;

pub(crate) enum BillOpener {
    Aes(Opener),
    #[cfg(feature = "shangmi")]
    Sm4 {
        key: zeroize::Zeroizing<Vec<u8>>,
        nonce: Vec<u8>,
        held: Vec<u8>,
    },
}

impl BillOpener {
    /// The stage for a file key as decrypted from `encrypt_key`: its length tells the cipher.
    pub(crate) fn new(key: &[u8], nonce: &[u8]) -> Result<BillOpener, Error> {
        match key.len() {
            crate::crypto::aes_gcm::KEY_LEN => Ok(BillOpener::Aes(Opener::new(key, nonce, b"")?)),
            #[cfg(feature = "shangmi")]
            16 => Ok(BillOpener::Sm4 {
                key: zeroize::Zeroizing::new(key.to_vec()),
                nonce: nonce.to_vec(),
                held: Vec::new(),
            }),
            n => Err(Error::crypto(format!(
                "the bill's key is {n} bytes; {}",
                if cfg!(feature = "shangmi") {
                    "only AEAD_AES_256_GCM (32-byte keys) and SM4_GCM (16-byte keys) are supported"
                } else {
                    "only AEAD_AES_256_GCM (32-byte keys) is supported (SM4_GCM needs the \
                     shangmi feature)"
                }
            ))),
        }
    }

    /// Takes the next ciphertext bytes; returns the plaintext ready (not yet authenticated).
    pub(crate) fn update(&mut self, input: &[u8]) -> Result<Vec<u8>, Error> {
        match self {
            BillOpener::Aes(o) => o.update(input),
            #[cfg(feature = "shangmi")]
            BillOpener::Sm4 { held, .. } => {
                held.extend_from_slice(input);
                Ok(Vec::new())
            }
        }
    }

    /// Checks the tag; returns the plaintext not given out yet.
    pub(crate) fn finish(self) -> Result<Vec<u8>, Error> {
        match self {
            BillOpener::Aes(o) => o.finish().map(|()| Vec::new()),
            #[cfg(feature = "shangmi")]
            BillOpener::Sm4 { key, nonce, held } => {
                crate::crypto::Sm4Gcm::decrypt_with_key(&held, &key[..], &nonce, b"")
            }
        }
    }
}

pub(crate) enum BillDigest {
    OpenSsl(Hasher),
    #[cfg(feature = "shangmi")]
    Sm3(crate::crypto::sm3::Sm3),
}

impl BillDigest {
    pub(crate) fn new(kind: HashType) -> Result<BillDigest, Error> {
        let md = match kind {
            HashType::Sha1 => openssl::hash::MessageDigest::sha1(),
            HashType::Sha256 => openssl::hash::MessageDigest::sha256(),
            #[cfg(feature = "shangmi")]
            HashType::Sm3 => return Ok(BillDigest::Sm3(Default::default())),
        };
        Ok(BillDigest::OpenSsl(
            Hasher::new(md).map_err(Error::openssl("cannot start the bill digest"))?,
        ))
    }

    pub(crate) fn update(&mut self, data: &[u8]) -> Result<(), Error> {
        match self {
            BillDigest::OpenSsl(h) => h
                .update(data)
                .map_err(Error::openssl("cannot compute the bill digest")),
            #[cfg(feature = "shangmi")]
            BillDigest::Sm3(h) => {
                h.update(data);
                Ok(())
            }
        }
    }

    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, Error> {
        match self {
            BillDigest::OpenSsl(h) => Ok(h
                .finish()
                .map_err(Error::openssl("cannot compute the bill digest"))?
                .to_vec()),
            #[cfg(feature = "shangmi")]
            BillDigest::Sm3(h) => Ok(std::mem::take(h).finish().to_vec()),
        }
    }
}
