//! SM2 (GB/T 32918, the 国密 scheme's public-key algorithm) beside [`Rsa`]:
//! signatures over SM3 with the default user id `1234567812345678`, DER-encoded (what
//! `WECHATPAY2-SM2-WITH-SM3` signs with), and C1C3C2 encryption in ASN.1 (what sensitive fields
//! are encrypted with). Keys load the ways [`Rsa`] loads them and are the same
//! [`PrivateKey`], [`PublicKey`] and [`Certificate`] types: a client or keyring holds either
//! kind. OpenSSL reads the key files; RustCrypto's `sm2` does the arithmetic (docs/toolkit.md
//! says why).

use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sm2::dsa::signature::{Signer as _, Verifier as _};
use sm2::dsa::{DerSignature, Signature, SigningKey, VerifyingKey};
use sm2::elliptic_curve::common::getrandom::SysRng;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey};
use sm2::pke::{DecryptingKey, EncryptingKey, Mode};
use zeroize::Zeroizing;

use super::rsa::{from_file, Kind};
use super::{Certificate, PrivateKey, PublicKey, Rsa};
use crate::error::Error;

/// The user id (distinguishing id) the platform signs and verifies with: the standard's default.
pub const DEFAULT_USER_ID: &str = "1234567812345678";

/// SM2 operations, associated functions as on [`Rsa`].
///
/// ```
/// use wechatpay_chain::crypto::Sm2;
/// let key = Sm2::generate()?;
/// let public = key.public_key()?;
/// let sig = Sm2::sign("hello", &key)?;
/// assert!(Sm2::verify("hello", &sig, &public));
/// let ct = Sm2::encrypt("张三", &public)?;
/// assert_eq!(Sm2::decrypt(&ct, &key)?, "张三".as_bytes());
/// # Ok::<(), wechatpay_chain::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Sm2;

/// The key's secret scalar for RustCrypto, through its PKCS#8 DER (wiped after use).
fn secret(key: &PrivateKey) -> Result<sm2::SecretKey, Error> {
    let der = Zeroizing::new(
        key.0
            .private_key_to_pkcs8()
            .map_err(Error::openssl("cannot export the SM2 private key"))?,
    );
    // No cause kept: it could describe the secret's bytes.
    sm2::SecretKey::from_pkcs8_der(&der).map_err(|_| Error::key("not an SM2 private key"))
}

fn public(key: &PublicKey) -> Result<sm2::PublicKey, Error> {
    let der = key
        .0
        .public_key_to_der()
        .map_err(Error::openssl("cannot export the SM2 public key"))?;
    sm2::PublicKey::from_public_key_der(&der).map_err(|_| Error::key("not an SM2 public key"))
}

/// `key`'s RustCrypto form, made once and kept with the key (its clones share it).
fn cached<K: Send + Sync + 'static>(
    slot: &std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    make: impl FnOnce() -> Result<K, Error>,
) -> Result<&K, Error> {
    if slot.get().is_none() {
        // Two threads may both make it; one is kept.
        let _ = slot.set(Box::new(make()?));
    }
    slot.get()
        .and_then(|b| b.downcast_ref::<K>())
        .ok_or_else(|| Error::key("the key holds another kind of cached key"))
}

fn signing_key(key: &PrivateKey) -> Result<&SigningKey, Error> {
    cached(&key.1 .1, || {
        SigningKey::new(DEFAULT_USER_ID, &secret(key)?)
            .map_err(|_| Error::crypto("SM2 signing key cannot be set up"))
    })
}

fn verifying_key(key: &PublicKey) -> Result<&VerifyingKey, Error> {
    cached(&key.1 .1, || {
        VerifyingKey::new(DEFAULT_USER_ID, public(key)?)
            .map_err(|_| Error::key("SM2 verifying key cannot be set up"))
    })
}

impl Sm2 {
    /// A new SM2 private key (OpenSSL's generator), e.g. for tests and the sandbox.
    pub fn generate() -> Result<PrivateKey, Error> {
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::SM2)
            .map_err(Error::openssl("SM2 curve unavailable"))?;
        let ec = openssl::ec::EcKey::generate(&group)
            .map_err(Error::openssl("SM2 key generation failed"))?;
        let pkey = openssl::pkey::PKey::from_ec_key(ec)
            .map_err(Error::openssl("SM2 key generation failed"))?;
        Ok(PrivateKey::from_openssl(pkey))
    }

    /// Loads an SM2 private key: `file://path`, PEM text (PKCS#8 `PRIVATE KEY` as the platform
    /// issues `apiclient_key.pem`, SEC1 `EC PRIVATE KEY`, or encrypted with
    /// [`Sm2::from_private_with_passphrase`]), or `private.pkcs8://BASE64`.
    pub fn from_private(thing: &str) -> Result<PrivateKey, Error> {
        Self::load_private(thing, None)
    }

    /// Loads an encrypted SM2 private key with its passphrase (as
    /// [`Rsa::from_private_with_passphrase`]).
    pub fn from_private_with_passphrase(
        thing: &str,
        passphrase: &str,
    ) -> Result<PrivateKey, Error> {
        Self::load_private(thing, Some(passphrase))
    }

    fn load_private(thing: &str, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
        let parse = |t: &str| Rsa::private_from_text_as(t, passphrase, Kind::Sm2);
        let key = match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), parse)?,
            None => parse(thing)?,
        };
        secret(&key)?;
        Ok(key)
    }

    /// Loads an SM2 public key: `file://path`, PEM text (SPKI `PUBLIC KEY`, or a `CERTIFICATE`,
    /// whose key is taken), or `public.spki://BASE64`.
    pub fn from_public(thing: &str) -> Result<PublicKey, Error> {
        let parse = |t: &str| Rsa::public_from_text_as(t, Kind::Sm2);
        let key = match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), parse)?,
            None => parse(thing)?,
        };
        public(&key)?;
        Ok(key)
    }

    /// Loads an SM2 certificate (`file://path` or PEM text), e.g. an SM2 platform certificate
    /// downloaded with `algorithm_type=SM2`, with its serial.
    pub fn from_certificate(thing: &str) -> Result<Certificate, Error> {
        let parse = |t: &str| Rsa::certificate_from_text_as(t, Kind::Sm2);
        match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), parse),
            None => parse(thing),
        }
    }

    /// Signs `message` with SM2 over SM3 (user id [`DEFAULT_USER_ID`]); returns base64 of the
    /// DER signature.
    pub fn sign(message: impl AsRef<[u8]>, key: &PrivateKey) -> Result<String, Error> {
        let signing = signing_key(key)?;
        let sig: Signature = signing
            .try_sign(message.as_ref())
            .map_err(|_| Error::crypto("SM2 signing failed"))?;
        Ok(B64.encode(DerSignature::from(sig).as_bytes()))
    }

    /// Verifies a base64 DER SM2-with-SM3 signature (user id [`DEFAULT_USER_ID`]); false on
    /// any failure.
    pub fn verify(message: impl AsRef<[u8]>, signature_b64: &str, key: &PublicKey) -> bool {
        let Ok(raw) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        let Ok(der) = DerSignature::from_bytes(&raw) else {
            return false;
        };
        let Ok(sig) = Signature::try_from(der) else {
            return false;
        };
        let Ok(verifying) = verifying_key(key) else {
            return false;
        };
        verifying.verify(message.as_ref(), &sig).is_ok()
    }

    /// Encrypts with SM2 (C1C3C2 in ASN.1, as the platform expects sensitive fields); returns
    /// base64. To have calls name the key in `Wechatpay-Serial`, encrypt through the client's
    /// encryptor instead.
    pub fn encrypt(plaintext: impl AsRef<[u8]>, key: &PublicKey) -> Result<String, Error> {
        let enc = EncryptingKey::new_with_mode(public(key)?, Mode::C1C3C2);
        let ct = enc
            .encrypt_der(&mut SysRng, plaintext.as_ref())
            .map_err(|_| Error::crypto("SM2 encryption failed"))?;
        Ok(B64.encode(ct))
    }

    /// Decrypts a base64 SM2 ciphertext (C1C3C2 in ASN.1); a changed ciphertext or another
    /// key is an error.
    pub fn decrypt(ciphertext_b64: &str, key: &PrivateKey) -> Result<Vec<u8>, Error> {
        let ct = B64
            .decode(ciphertext_b64.trim())
            .map_err(|e| Error::crypto_from("SM2: ciphertext is not base64", e))?;
        let dec = DecryptingKey::new_with_mode(secret(key)?.to_nonzero_scalar(), Mode::C1C3C2);
        dec.decrypt_der(&ct).map_err(|_| {
            Error::crypto(
                "SM2 decryption failed: another key, or not a C1C3C2 ASN.1 ciphertext, or tampered",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_pkcs8_sec1_spki_and_certificates_of_sm2_only() {
        let k = Sm2::generate().unwrap();
        let ec = k.0.ec_key().unwrap();
        let sec1 = String::from_utf8(ec.private_key_to_pem().unwrap()).unwrap();
        let pkcs8 = String::from_utf8(k.0.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
        assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
        let spki = String::from_utf8(k.0.public_key_to_pem().unwrap()).unwrap();
        let cert = crate::util::pem::tests_support::self_signed(&k.0, 0x5a);
        let public = [
            Sm2::from_public(&spki).unwrap(),
            Sm2::from_public(&format!(
                "public.spki://{}",
                B64.encode(k.0.public_key_to_der().unwrap())
            ))
            .unwrap(),
            Sm2::from_public(&cert).unwrap(),
            Sm2::from_certificate(&cert).unwrap().public_key().clone(),
        ];
        assert_eq!(Sm2::from_certificate(&cert).unwrap().serial(), "5A");
        for text in [
            sec1,
            pkcs8,
            format!(
                "private.pkcs8://{}",
                B64.encode(k.0.private_key_to_pkcs8().unwrap())
            ),
        ] {
            let key = Sm2::from_private(&text).unwrap();
            let sig = Sm2::sign("m", &key).unwrap();
            for p in &public {
                assert!(Sm2::verify("m", &sig, p));
                assert!(!Sm2::verify("n", &sig, p));
            }
        }
        // An RSA key is not SM2, and SM2 keys are not RSA.
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let rsa_pem = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
        let e = Sm2::from_private(&rsa_pem).unwrap_err();
        assert!(e.to_string().contains("not an SM2 key"), "{e}");
        assert!(Rsa::from_private(
            &k.0.private_key_to_pem_pkcs8()
                .map(String::from_utf8)
                .unwrap()
                .unwrap()
        )
        .is_err());
        assert!(Rsa::from_public(&spki).is_err());
        assert!(Rsa::from_certificate(&cert).is_err());
        assert_eq!(format!("{k:?}"), "PrivateKey(SM2, redacted)");
    }

    #[test]
    fn encrypted_keys_need_their_passphrase_which_errors_never_show() {
        let k = Sm2::generate().unwrap();
        let pem =
            k.0.private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pa55")
                .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        let loaded = Sm2::from_private_with_passphrase(&pem, "pa55").unwrap();
        let sig = Sm2::sign("m", &loaded).unwrap();
        assert!(Sm2::verify("m", &sig, &k.public_key().unwrap()));
        assert!(Sm2::from_private(&pem)
            .unwrap_err()
            .to_string()
            .contains("passphrase"));
        let e = Sm2::from_private_with_passphrase(&pem, "wrong-pass").unwrap_err();
        assert!(!e.to_string().contains("wrong-pass"), "{e}");
        // Clones share the kept RustCrypto form; the signature does not depend on which signs.
        let clone = loaded.clone();
        assert_eq!(
            Sm2::sign("m", &clone).unwrap(),
            sig,
            "deterministic, same key"
        );
    }

    #[test]
    fn signatures_refuse_changes_and_encryption_round_trips() {
        let k = Sm2::generate().unwrap();
        let p = k.public_key().unwrap();
        let sig = Sm2::sign("GET\n/v3/x\n1\nN\n\n", &k).unwrap();
        assert!(Sm2::verify("GET\n/v3/x\n1\nN\n\n", &sig, &p));
        let mut raw = B64.decode(&sig).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(!Sm2::verify("GET\n/v3/x\n1\nN\n\n", &B64.encode(&raw), &p));
        assert!(!Sm2::verify("GET\n/v3/x\n1\nN\n\n", "not base64!", &p));
        let other = Sm2::generate().unwrap().public_key().unwrap();
        assert!(!Sm2::verify("GET\n/v3/x\n1\nN\n\n", &sig, &other));

        let ct = Sm2::encrypt("张三", &p).unwrap();
        assert_ne!(ct, Sm2::encrypt("张三", &p).unwrap(), "randomized");
        assert_eq!(Sm2::decrypt(&ct, &k).unwrap(), "张三".as_bytes());
        assert!(Sm2::decrypt(&ct, &Sm2::generate().unwrap()).is_err());
        let mut raw = B64.decode(&ct).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(Sm2::decrypt(&B64.encode(raw), &k).is_err());
        assert!(Sm2::decrypt("%%", &k).is_err());
        // An RSA key given to SM2 is an error, not a panic.
        let rsa = PrivateKey::from_openssl(
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
        );
        assert!(Sm2::sign("m", &rsa).is_err());
        assert!(!Sm2::verify("m", &sig, &rsa.public_key().unwrap()));
        assert!(Sm2::encrypt("m", &rsa.public_key().unwrap()).is_err());
    }
}
