//! RSA keys and operations: loading keys the ways `Rsa::from` does in wechatpay-php,
//! PKCS#1 v1.5 SHA-256 signatures, and OAEP (SHA-1) encryption for sensitive fields.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::pkey_ctx::PkeyCtx;
use openssl::rsa::Padding;
use openssl::sign::{Signer, Verifier};
use openssl::x509::X509;

use crate::error::Error;
use crate::util::pem;

/// A merchant's RSA private key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct PrivateKey(pub(crate) PKey<Private>, pub(crate) Contexts<Private>);

/// An RSA public key (platform public key, or a certificate's key).
#[derive(Clone)]
pub struct PublicKey(pub(crate) PKey<Public>, pub(crate) Contexts<Public>);

/// A key's OpenSSL contexts, set up for PKCS#1 v1.5 SHA-256 and kept for its next signature or
/// verification (clones of the key share them). Setting one up has OpenSSL 3 look the
/// algorithm up in its provider, which costs 2–3 % of a sign + verify: a call's crypto then
/// costs what `openssl speed` measures, plus the SHA-256 of the message.
pub(crate) struct Contexts<T>(
    Arc<Mutex<Vec<PkeyCtx<T>>>>,
    /// An SM2 key's RustCrypto form, made at its first use (`crypto::sm2`): making it costs a
    /// scalar multiplication, as much as the signature itself.
    #[cfg(feature = "shangmi")]
    pub(crate) Arc<std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>>,
);

/// More threads than this signing with one key at once make contexts that are then dropped.
const KEPT_CONTEXTS: usize = 64;

impl<T> Clone for Contexts<T> {
    fn clone(&self) -> Self {
        Contexts(
            self.0.clone(),
            #[cfg(feature = "shangmi")]
            self.1.clone(),
        )
    }
}

impl<T> Default for Contexts<T> {
    fn default() -> Self {
        Contexts(
            Arc::new(Mutex::new(Vec::new())),
            #[cfg(feature = "shangmi")]
            Default::default(),
        )
    }
}

impl<T> Contexts<T> {
    /// A kept context, else one set up for `key` with `init` (sign or verify); `None` when
    /// OpenSSL cannot set one up (a key that is not RSA: the caller then takes the general
    /// path, which reports the error).
    fn take(
        &self,
        key: &PKey<T>,
        init: fn(&mut PkeyCtx<T>) -> Result<(), openssl::error::ErrorStack>,
    ) -> Option<PkeyCtx<T>> {
        if let Some(ctx) = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Some(ctx);
        }
        let mut ctx = PkeyCtx::new(key).ok()?;
        init(&mut ctx).ok()?;
        ctx.set_rsa_padding(Padding::PKCS1).ok()?;
        ctx.set_signature_md(openssl::md::Md::sha256()).ok()?;
        Some(ctx)
    }

    /// Keeps `ctx`, which has just done an operation without error, for the next one.
    fn give(&self, ctx: PkeyCtx<T>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() < KEPT_CONTEXTS {
            kept.push(ctx);
        }
    }
}

/// An X.509 certificate with its serial number (uppercase hex), e.g. a platform certificate.
#[derive(Clone)]
pub struct Certificate {
    pub(crate) x509: X509,
    pub(crate) serial: String,
    pub(crate) key: PublicKey,
}

/// `RSA-2048`, or `SM2` for the 国密 scheme's keys (which these types hold too).
fn kind_name<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> String {
    if key.id() == openssl::pkey::Id::RSA {
        format!("RSA-{}", key.bits())
    } else if is_sm2(key) {
        "SM2".into()
    } else {
        format!("{:?}-{}", key.id(), key.bits())
    }
}

/// Whether `key` is on the SM2 curve. OpenSSL 3 gives such keys various ids (SM2, EC, or none
/// for a provider's key), so the key's SPKI says: `id-ecPublicKey` with the `sm2` curve.
pub(crate) fn is_sm2<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> bool {
    // SEQUENCE { OID 1.2.840.10045.2.1, OID 1.2.156.10197.1.301 }
    const SM2_ALGORITHM: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x81,
        0x1c, 0xcf, 0x55, 0x01, 0x82, 0x2d,
    ];
    key.id() == openssl::pkey::Id::SM2
        || key
            .public_key_to_der()
            .is_ok_and(|der| der.get(2..2 + SM2_ALGORITHM.len()) == Some(&SM2_ALGORITHM[..]))
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, redacted)", kind_name(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", kind_name(&self.0))
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("serial", &self.serial)
            .finish()
    }
}

impl PublicKey {
    /// Reads a public key from a PEM file given by its plain path (`pub_key.pem`: SPKI
    /// `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`, or a `CERTIFICATE`, whose key is taken); the same
    /// as [`Rsa::from_public`] with `file://path`. An error names the file.
    ///
    /// ```no_run
    /// use wechatpay_chain::PublicKey;
    /// let key = PublicKey::from_pem_file("/path/to/pub_key.pem")?;
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<PublicKey, Error> {
        from_file(path.as_ref(), Rsa::public_from_text)
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> u32 {
        self.0.bits()
    }

    /// The key as an `openssl` type. Tied to the `openssl` crate: its major version is part of
    /// this method's signature.
    pub fn as_openssl(&self) -> &PKey<Public> {
        &self.0
    }

    /// Wraps an `openssl` public key (RSA). Tied to the `openssl` crate, as [`Self::as_openssl`].
    pub fn from_openssl(key: PKey<Public>) -> PublicKey {
        PublicKey(key, Contexts::default())
    }
}

impl PrivateKey {
    /// Reads a private key from a PEM file given by its plain path (`apiclient_key.pem`,
    /// PKCS#1 or PKCS#8); the same as [`Rsa::from_private`] with `file://path`. An error names
    /// the file and never shows the key; an encrypted key is refused (see
    /// [`Rsa::from_private_with_passphrase`]).
    ///
    /// ```
    /// use wechatpay_chain::PrivateKey;
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("apiclient_key.pem");
    /// # let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    /// # std::fs::write(&path, rsa.private_key_to_pem().unwrap()).unwrap();
    /// let key = PrivateKey::from_pem_file(&path)?;
    /// assert_eq!(key.bits(), 2048);
    /// let missing = PrivateKey::from_pem_file("/nowhere/apiclient_key.pem").unwrap_err();
    /// assert!(missing.to_string().contains("/nowhere/apiclient_key.pem"), "{missing}");
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<PrivateKey, Error> {
        from_file(path.as_ref(), |t| Rsa::private_from_text(t, None))
    }

    /// Size of the modulus in bits.
    pub fn bits(&self) -> u32 {
        self.0.bits()
    }

    /// The key as an `openssl` type, e.g. to write it out as PEM. Tied to the `openssl` crate:
    /// its major version is part of this method's signature.
    pub fn as_openssl(&self) -> &PKey<Private> {
        &self.0
    }

    /// Wraps an `openssl` private key (RSA). Tied to the `openssl` crate, as
    /// [`Self::as_openssl`].
    pub fn from_openssl(key: PKey<Private>) -> PrivateKey {
        PrivateKey(key, Contexts::default())
    }

    /// The matching public key.
    pub fn public_key(&self) -> Result<PublicKey, Error> {
        let der = self
            .0
            .public_key_to_der()
            .map_err(Error::openssl("cannot derive the public key"))?;
        Ok(PublicKey::from_openssl(
            PKey::public_key_from_der(&der)
                .map_err(Error::openssl("cannot derive the public key"))?,
        ))
    }
}

impl Certificate {
    /// Reads a certificate from a file given by its plain path (a platform certificate
    /// `wechatpay_<serial>.pem`, `apiclient_cert.pem`), PEM or DER; the same as
    /// [`Rsa::from_certificate`] with `file://path` and
    /// [`util::pem::load_certificate`](crate::util::pem::load_certificate).
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Certificate, Error> {
        pem::load_certificate(path)
    }

    /// The certificate serial number as uppercase hex (the platform's `Wechatpay-Serial`).
    pub fn serial(&self) -> &str {
        &self.serial
    }

    /// The certificate's public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.key
    }

    /// The certificate as an `openssl` type (validity dates, subject …). Tied to the `openssl`
    /// crate: its major version is part of this method's signature.
    pub fn as_openssl(&self) -> &X509 {
        &self.x509
    }

    /// The certificate as PEM text.
    pub fn to_pem(&self) -> Result<String, Error> {
        let pem = self
            .x509
            .to_pem()
            .map_err(Error::openssl("cannot encode the certificate as PEM"))?;
        String::from_utf8(pem)
            .map_err(|e| Error::key_from("the certificate's PEM is not text", e.utf8_error()))
    }
}

/// RSA operations as wechatpay-php's `Crypto\Rsa` has them: associated functions, no state.
///
/// ```
/// use wechatpay_chain::Rsa;
/// let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
/// let pem = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
/// let key = Rsa::from_private(&pem).unwrap();
/// let public = key.public_key().unwrap();
/// let sig = Rsa::sign("hello", &key).unwrap();
/// assert!(Rsa::verify("hello", &sig, &public));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Rsa;

/// The text of a PEM file (`file://` and the `from_pem_file` constructors): an error names the
/// file, once, and never shows its content.
pub(crate) fn read_pem_file(path: &Path) -> Result<String, Error> {
    let shown = path.display();
    let data = std::fs::read(path)
        .map_err(|e| Error::key_from(format!("cannot read key file {shown}"), e))?;
    let text = String::from_utf8(data).map_err(|e| {
        Error::key_from(format!("key file {shown} is not PEM text"), e.utf8_error())
    })?;
    if !text.contains("-----BEGIN") {
        return Err(Error::key(format!(
            "key file {shown} holds no PEM block (a -----BEGIN … line)"
        )));
    }
    Ok(text)
}

/// Loads the PEM file at `path` with `parse` (a parser of text, never of `file://` again);
/// a parse error is prefixed with the file's name, since the parser sees only the text.
pub(crate) fn from_file<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    let text = read_pem_file(path)?;
    parse(&text).map_err(|e| e.prefixed(format_args!("key file {}", path.display())))
}

pub(crate) fn b64_der(body: &str, what: &str) -> Result<Vec<u8>, Error> {
    let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    B64.decode(clean)
        // No cause kept: base64's error quotes a character of the (secret) input.
        .map_err(|_| Error::key(format!("{what}: not valid base64")))
}

/// Parses PEM private key text, never letting OpenSSL ask for a pass phrase: its default
/// callback prompts on the terminal (blocking a server or a script) for an encrypted key, and
/// without one fails as if the key were not PEM. Every PEM private key the crate loads goes
/// through here. The error is the end of a sentence about the key ("is encrypted …").
/// `what` names the key in the error ("private key", "the merchant private key …").
pub(crate) fn pem_private_key(
    text: &str,
    passphrase: Option<&str>,
    what: &str,
) -> Result<PKey<Private>, Error> {
    let res = match passphrase {
        Some(p) => PKey::private_key_from_pem_passphrase(text.as_bytes(), p.as_bytes()),
        None if text.contains("ENCRYPTED") => {
            return Err(Error::key(format!(
                "{what} is encrypted and no passphrase was given: decrypt it once \
                 (openssl pkey -in key.pem -out key.plain.pem, keep it mode 0600), or load it \
                 with Rsa::from_private_with_passphrase"
            )));
        }
        // No pass phrase to give: an encrypted block the check above missed fails here.
        None => PKey::private_key_from_pem_callback(text.as_bytes(), |_| Ok(0)),
    };
    // OpenSSL's error names its decoder, never the passphrase or the key's bytes.
    res.map_err(|e| {
        Error::key_from(
            format!(
                "{what} is not a PEM private key OpenSSL can read (wrong type, passphrase or data)"
            ),
            e,
        )
    })
}

/// The kind of key a loader wants: the RSA scheme's, or the 国密 scheme's SM2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Rsa,
    #[cfg_attr(not(feature = "shangmi"), allow(dead_code))]
    Sm2,
}

fn ensure_kind<T: openssl::pkey::HasPublic>(key: &PKey<T>, want: Kind) -> Result<(), Error> {
    match want {
        Kind::Rsa if key.id() == openssl::pkey::Id::RSA => Ok(()),
        Kind::Rsa => Err(Error::key("not an RSA key")),
        Kind::Sm2 if is_sm2(key) => Ok(()),
        Kind::Sm2 => Err(Error::key("not an SM2 key")),
    }
}

impl Rsa {
    /// Loads a private key: `file://path`, PEM text (PKCS#1 or PKCS#8), or
    /// `private.pkcs1://BASE64` / `private.pkcs8://BASE64` (bare DER in base64).
    pub fn from_private(thing: &str) -> Result<PrivateKey, Error> {
        Self::load_private(thing, None)
    }

    /// Loads an encrypted PKCS#8 (or legacy encrypted PEM) private key with its passphrase.
    /// A wrong passphrase is a [`Error::Key`] that does not repeat it.
    ///
    /// ```
    /// use wechatpay_chain::Rsa;
    /// let pkey = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    /// let pem = pkey
    ///     .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"s3cret")
    ///     .unwrap();
    /// let pem = String::from_utf8(pem).unwrap(); // -----BEGIN ENCRYPTED PRIVATE KEY-----
    /// let key = Rsa::from_private_with_passphrase(&pem, "s3cret")?;
    /// assert_eq!(key.bits(), 2048);
    /// assert!(Rsa::from_private(&pem).is_err());
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    pub fn from_private_with_passphrase(
        thing: &str,
        passphrase: &str,
    ) -> Result<PrivateKey, Error> {
        Self::load_private(thing, Some(passphrase))
    }

    fn load_private(thing: &str, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
        match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), |t| Self::private_from_text(t, passphrase)),
            None => Self::private_from_text(thing, passphrase),
        }
    }

    /// A private key from anything but `file://`.
    fn private_from_text(thing: &str, passphrase: Option<&str>) -> Result<PrivateKey, Error> {
        Self::private_from_text_as(thing, passphrase, Kind::Rsa)
    }

    /// A private key of kind `want` from anything but `file://`.
    pub(crate) fn private_from_text_as(
        thing: &str,
        passphrase: Option<&str>,
        want: Kind,
    ) -> Result<PrivateKey, Error> {
        let thing = thing.trim();
        let key = if let Some(b) = thing.strip_prefix("private.pkcs1://") {
            let der = b64_der(b, "private.pkcs1")?;
            let rsa = openssl::rsa::Rsa::private_key_from_der(&der)
                .map_err(|e| Error::key_from("private.pkcs1: not a PKCS#1 RSA private key", e))?;
            PKey::from_rsa(rsa).map_err(Error::openssl("cannot use the RSA private key"))?
        } else if let Some(b) = thing.strip_prefix("private.pkcs8://") {
            let der = b64_der(b, "private.pkcs8")?;
            PKey::private_key_from_pkcs8(&der)
                .map_err(|e| Error::key_from("private.pkcs8: not a PKCS#8 private key", e))?
        } else {
            let text = thing;
            if !text.contains("-----BEGIN") {
                return Err(Error::key(
                    "private key: expected file://path, PEM text, private.pkcs1:// or \
                     private.pkcs8:// (a plain path: PrivateKey::from_pem_file(path))",
                ));
            }
            pem_private_key(text, passphrase, "private key")?
        };
        ensure_kind(&key, want)?;
        Ok(PrivateKey::from_openssl(key))
    }

    /// Loads a public key: `file://path`, PEM text (SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY`,
    /// or an X.509 `CERTIFICATE`, whose key is taken), or `public.pkcs1://BASE64` /
    /// `public.spki://BASE64`.
    pub fn from_public(thing: &str) -> Result<PublicKey, Error> {
        match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), Self::public_from_text),
            None => Self::public_from_text(thing),
        }
    }

    /// A public key from anything but `file://`.
    fn public_from_text(thing: &str) -> Result<PublicKey, Error> {
        Self::public_from_text_as(thing, Kind::Rsa)
    }

    /// A public key of kind `want` from anything but `file://`.
    pub(crate) fn public_from_text_as(thing: &str, want: Kind) -> Result<PublicKey, Error> {
        let thing = thing.trim();
        let key = if let Some(b) = thing.strip_prefix("public.pkcs1://") {
            let der = b64_der(b, "public.pkcs1")?;
            let rsa = openssl::rsa::Rsa::public_key_from_der_pkcs1(&der)
                .map_err(|e| Error::key_from("public.pkcs1: not a PKCS#1 RSA public key", e))?;
            PKey::from_rsa(rsa).map_err(Error::openssl("cannot use the RSA public key"))?
        } else if let Some(b) = thing.strip_prefix("public.spki://") {
            let der = b64_der(b, "public.spki")?;
            PKey::public_key_from_der(&der)
                .map_err(|e| Error::key_from("public.spki: not an SPKI public key", e))?
        } else {
            let text = thing;
            if text.contains("-----BEGIN CERTIFICATE-----") {
                return Ok(Self::certificate_from_text_as(text, want)?.key);
            } else if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
                let rsa = openssl::rsa::Rsa::public_key_from_pem_pkcs1(text.as_bytes())
                    .map_err(|e| Error::key_from("public key: bad PKCS#1 PEM", e))?;
                PKey::from_rsa(rsa).map_err(Error::openssl("cannot use the RSA public key"))?
            } else if text.contains("-----BEGIN PUBLIC KEY-----") {
                PKey::public_key_from_pem(text.as_bytes())
                    .map_err(|e| Error::key_from("public key: bad SPKI PEM", e))?
            } else {
                return Err(Error::key(
                    "public key: expected file://path, PEM text, public.pkcs1:// or \
                     public.spki:// (a plain path: PublicKey::from_pem_file(path))",
                ));
            }
        };
        ensure_kind(&key, want)?;
        Ok(PublicKey::from_openssl(key))
    }

    /// Loads an X.509 certificate (`file://path` or PEM text) and reads its serial number.
    pub fn from_certificate(thing: &str) -> Result<Certificate, Error> {
        match thing.trim().strip_prefix("file://") {
            Some(path) => from_file(Path::new(path), Self::certificate_from_text),
            None => Self::certificate_from_text(thing),
        }
    }

    /// A certificate from PEM text.
    fn certificate_from_text(text: &str) -> Result<Certificate, Error> {
        Self::certificate_from_text_as(text, Kind::Rsa)
    }

    /// A certificate from PEM text whose key is of kind `want`.
    pub(crate) fn certificate_from_text_as(text: &str, want: Kind) -> Result<Certificate, Error> {
        let x509 = X509::from_pem(text.trim().as_bytes())
            .map_err(|e| Error::key_from("certificate: PEM could not be parsed", e))?;
        let serial = pem::serial_of(&x509)?;
        let pkey = x509
            .public_key()
            .map_err(|e| Error::key_from("certificate: no readable public key", e))?;
        ensure_kind(&pkey, want)?;
        Ok(Certificate {
            x509,
            serial,
            key: PublicKey::from_openssl(pkey),
        })
    }

    /// Signs `message` with RSA PKCS#1 v1.5 SHA-256; returns base64.
    pub fn sign(message: impl AsRef<[u8]>, key: &PrivateKey) -> Result<String, Error> {
        let failed = |e| Error::crypto_from("RSA-SHA256 signing failed", e);
        let message = message.as_ref();
        let Some(mut ctx) = key.1.take(&key.0, |c| c.sign_init()) else {
            let mut signer = Signer::new(MessageDigest::sha256(), &key.0).map_err(failed)?;
            signer.update(message).map_err(failed)?;
            return Ok(B64.encode(signer.sign_to_vec().map_err(failed)?));
        };
        let mut signature = Vec::new();
        ctx.sign_to_vec(&openssl::sha::sha256(message), &mut signature)
            .map_err(failed)?;
        key.1.give(ctx);
        Ok(B64.encode(signature))
    }

    /// Verifies a base64 RSA PKCS#1 v1.5 SHA-256 signature; false on any failure.
    pub fn verify(message: impl AsRef<[u8]>, signature_b64: &str, key: &PublicKey) -> bool {
        let Ok(sig) = B64.decode(signature_b64.trim()) else {
            return false;
        };
        let message = message.as_ref();
        let Some(mut ctx) = key.1.take(&key.0, |c| c.verify_init()) else {
            let Ok(mut v) = Verifier::new(MessageDigest::sha256(), &key.0) else {
                return false;
            };
            return v.verify_oneshot(&sig, message).unwrap_or(false);
        };
        match ctx.verify(&openssl::sha::sha256(message), &sig) {
            Ok(valid) => {
                key.1.give(ctx);
                valid
            }
            // A refused signature leaves OpenSSL's reason, taken (and so cleared) here; the
            // context goes with it.
            Err(_) => false,
        }
    }

    /// Encrypts with RSAES-OAEP (SHA-1, MGF1-SHA-1, empty label), as the platform expects for
    /// sensitive fields; returns base64. There is deliberately no PKCS#1 v1.5 encryption.
    /// To have calls name the key in `Wechatpay-Serial` by themselves, encrypt through
    /// [`Client::encryptor`](crate::Client::encryptor) instead.
    ///
    /// ```
    /// use wechatpay_chain::Rsa;
    /// let pem = openssl::rsa::Rsa::generate(2048).unwrap().private_key_to_pem().unwrap();
    /// let key = Rsa::from_private(std::str::from_utf8(&pem).unwrap())?;
    /// let ciphertext = Rsa::encrypt("张三", &key.public_key()?)?;
    /// assert_eq!(Rsa::decrypt(&ciphertext, &key)?, "张三".as_bytes());
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    pub fn encrypt(plaintext: impl AsRef<[u8]>, key: &PublicKey) -> Result<String, Error> {
        let rsa = key
            .0
            .rsa()
            .map_err(Error::openssl("the public key is not RSA"))?;
        let mut out = vec![0u8; rsa.size() as usize];
        let n = rsa
            .public_encrypt(plaintext.as_ref(), &mut out, Padding::PKCS1_OAEP)
            .map_err(|e| {
                Error::crypto_from(
                    "RSA-OAEP encryption failed (plaintext too long for the key?)",
                    e,
                )
            })?;
        out.truncate(n);
        Ok(B64.encode(out))
    }

    /// Decrypts a base64 RSAES-OAEP (SHA-1) ciphertext.
    pub fn decrypt(ciphertext_b64: &str, key: &PrivateKey) -> Result<Vec<u8>, Error> {
        let ct = B64
            .decode(ciphertext_b64.trim())
            .map_err(|e| Error::crypto_from("RSA-OAEP: ciphertext is not base64", e))?;
        let rsa = key
            .0
            .rsa()
            .map_err(Error::openssl("the private key is not RSA"))?;
        let mut out = vec![0u8; rsa.size() as usize];
        let n = rsa
            .private_decrypt(&ct, &mut out, Padding::PKCS1_OAEP)
            .map_err(|e| Error::crypto_from("RSA-OAEP decryption failed", e))?;
        out.truncate(n);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (openssl::rsa::Rsa<Private>, PrivateKey) {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let k = PrivateKey::from_openssl(PKey::from_rsa(rsa.clone()).unwrap());
        (rsa, k)
    }

    #[test]
    fn loads_every_documented_form() {
        let (rsa, _) = pair();
        let pkcs1 = String::from_utf8(rsa.private_key_to_pem().unwrap()).unwrap();
        let pkey = PKey::from_rsa(rsa.clone()).unwrap();
        let pkcs8 = String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        assert!(pkcs1.contains("BEGIN RSA PRIVATE KEY"));
        assert!(pkcs8.contains("BEGIN PRIVATE KEY"));
        let a = Rsa::from_private(&pkcs1).unwrap();
        let b = Rsa::from_private(&pkcs8).unwrap();
        let c = Rsa::from_private(&format!(
            "private.pkcs1://{}",
            B64.encode(rsa.private_key_to_der().unwrap())
        ))
        .unwrap();
        let d = Rsa::from_private(&format!(
            "private.pkcs8://{}",
            B64.encode(pkey.private_key_to_pkcs8().unwrap())
        ))
        .unwrap();
        let spki = String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap();
        let pub1 = String::from_utf8(rsa.public_key_to_pem_pkcs1().unwrap()).unwrap();
        let p1 = Rsa::from_public(&spki).unwrap();
        let p2 = Rsa::from_public(&pub1).unwrap();
        let p3 = Rsa::from_public(&format!(
            "public.spki://{}",
            B64.encode(pkey.public_key_to_der().unwrap())
        ))
        .unwrap();
        let p4 = Rsa::from_public(&format!(
            "public.pkcs1://{}",
            B64.encode(rsa.public_key_to_der_pkcs1().unwrap())
        ))
        .unwrap();
        for k in [&a, &b, &c, &d] {
            let sig = Rsa::sign(b"msg", k).unwrap();
            for p in [&p1, &p2, &p3, &p4] {
                assert!(Rsa::verify(b"msg", &sig, p));
                assert!(!Rsa::verify(b"msg2", &sig, p));
            }
        }
        // file:// form
        let dir = std::env::temp_dir().join(format!("wcp-rsa-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k.pem");
        std::fs::write(&path, &pkcs8).unwrap();
        let e = Rsa::from_private(&format!("file://{}", path.display())).unwrap();
        assert_eq!(e.bits(), 2048);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_inputs_are_clean_errors_without_secrets() {
        for bad in [
            "",
            "garbage",
            "private.pkcs1://!!!",
            "private.pkcs8://AAAA",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
            "file:///nonexistent/key.pem",
        ] {
            let e = Rsa::from_private(bad).unwrap_err();
            assert!(matches!(e, Error::Key { .. }), "{bad}: {e}");
        }
        for bad in [
            "",
            "public.spki://AAAA",
            "public.pkcs1://%%",
            "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----",
        ] {
            assert!(
                matches!(Rsa::from_public(bad), Err(Error::Key { .. })),
                "{bad}"
            );
        }
        let (_, k) = pair();
        assert_eq!(format!("{k:?}"), "PrivateKey(RSA-2048, redacted)");
    }

    /// What `Rsa::sign` made before it kept contexts: OpenSSL's one-shot digest-sign.
    fn digest_sign(message: &[u8], key: &PrivateKey) -> String {
        let mut signer = Signer::new(MessageDigest::sha256(), &key.0).unwrap();
        signer.update(message).unwrap();
        B64.encode(signer.sign_to_vec().unwrap())
    }

    #[test]
    fn kept_contexts_sign_and_verify_as_a_one_shot_digest_sign_does() {
        let (_, k) = pair();
        let public = k.public_key().unwrap();
        let long = vec![b'x'; 100_000];
        for message in [&b""[..], b"GET\n/v3/a\n1\nN\n\n", &long] {
            let expected = digest_sign(message, &k);
            // The first call sets a context up, the second reuses it; PKCS#1 v1.5 is
            // deterministic, so both equal the one-shot signature byte for byte.
            assert_eq!(Rsa::sign(message, &k).unwrap(), expected);
            assert_eq!(Rsa::sign(message, &k).unwrap(), expected);
            assert!(Rsa::verify(message, &expected, &public));
            assert!(Rsa::verify(message, &expected, &public));
        }
        assert_eq!(k.1 .0.lock().unwrap().len(), 1, "one context kept, reused");
        assert_eq!(public.1 .0.lock().unwrap().len(), 1);

        let sig = Rsa::sign(b"m", &k).unwrap();
        let mut raw = B64.decode(&sig).unwrap();
        raw[10] ^= 1;
        let other = pair().1;
        for (message, signature, key) in [
            (&b"n"[..], sig.clone(), public.clone()), // another message
            (b"m", B64.encode(&raw), public.clone()), // a changed signature
            (b"m", B64.encode(&raw[..255]), public.clone()), // too short
            (b"m", sig.clone(), other.public_key().unwrap()), // another key
            (b"m", "not base64!".into(), public.clone()),
        ] {
            assert!(!Rsa::verify(message, &signature, &key));
        }
        // A refusal leaves the key's contexts working.
        assert!(Rsa::verify(b"m", &sig, &public));
    }

    #[test]
    fn threads_signing_with_one_key_at_once_get_the_right_signatures() {
        let (_, k) = pair();
        let public = k.public_key().unwrap();
        std::thread::scope(|s| {
            for t in 0..8 {
                let (k, public) = (k.clone(), public.clone());
                s.spawn(move || {
                    for i in 0..10 {
                        let message = format!("thread {t} message {i}");
                        let sig = Rsa::sign(&message, &k).unwrap();
                        assert_eq!(sig, digest_sign(message.as_bytes(), &k));
                        assert!(Rsa::verify(&message, &sig, &public));
                        assert!(!Rsa::verify(format!("{message}."), &sig, &public));
                    }
                });
            }
        });
        let kept = k.1 .0.lock().unwrap().len();
        assert!((1..=8).contains(&kept), "{kept} contexts kept");
    }

    #[test]
    fn a_key_openssl_cannot_set_up_for_rsa_takes_the_general_path() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let k = PrivateKey::from_openssl(PKey::from_ec_key(ec).unwrap());
        let public = k.public_key().unwrap();
        // What it did before contexts were kept: OpenSSL's digest-sign with that key.
        let sig = Rsa::sign(b"m", &k).unwrap();
        assert!(Rsa::verify(b"m", &sig, &public));
        assert!(!Rsa::verify(b"n", &sig, &public));
        assert!(k.1 .0.lock().unwrap().is_empty());
    }

    #[test]
    fn oaep_round_trip() {
        let (_, k) = pair();
        let p = k.public_key().unwrap();
        let ct = Rsa::encrypt("张三", &p).unwrap();
        assert_ne!(ct, Rsa::encrypt("张三", &p).unwrap(), "OAEP is randomized");
        assert_eq!(Rsa::decrypt(&ct, &k).unwrap(), "张三".as_bytes());
        assert!(Rsa::decrypt("AAAA", &k).is_err());
    }

    #[test]
    fn encrypted_pkcs8_needs_its_passphrase() {
        let (rsa, k) = pair();
        let pkey = PKey::from_rsa(rsa).unwrap();
        let pem = pkey
            .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pa55")
            .unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.contains("BEGIN ENCRYPTED PRIVATE KEY"));
        let loaded = Rsa::from_private_with_passphrase(&pem, "pa55").unwrap();
        let sig = Rsa::sign(b"m", &loaded).unwrap();
        assert!(Rsa::verify(b"m", &sig, &k.public_key().unwrap()));
        // Without the passphrase: a clear hint; a wrong one: an error that does not echo it.
        let e = Rsa::from_private(&pem).unwrap_err();
        assert!(e.to_string().contains("passphrase"), "{e}");
        let e = Rsa::from_private_with_passphrase(&pem, "wrong-pass").unwrap_err();
        assert!(matches!(e, Error::Key { .. }));
        assert!(!e.to_string().contains("wrong-pass"), "{e}");
        // Legacy encrypted PEM (Proc-Type: 4,ENCRYPTED) works the same way.
        let legacy =
            k.0.rsa()
                .unwrap()
                .private_key_to_pem_passphrase(openssl::symm::Cipher::aes_128_cbc(), b"pa55")
                .unwrap();
        let legacy = String::from_utf8(legacy).unwrap();
        assert!(legacy.contains("ENCRYPTED"));
        assert_eq!(
            Rsa::from_private_with_passphrase(&legacy, "pa55")
                .unwrap()
                .bits(),
            2048
        );
        assert!(Rsa::from_private(&legacy).is_err());
    }

    #[test]
    fn pkcs1_public_key_as_risk_getpublickey_answers_it() {
        // APIv2 `risk/getpublickey` answers `pub_key` as a PKCS#1 `RSA PUBLIC KEY` PEM, which
        // encrypts bank card numbers with OAEP.
        let (rsa, k) = pair();
        let pem = String::from_utf8(rsa.public_key_to_pem_pkcs1().unwrap()).unwrap();
        assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----"));
        for text in [pem.clone(), pem.replace('\n', "\r\n"), format!("  {pem}\n")] {
            let p = Rsa::from_public(&text).unwrap();
            let ct = Rsa::encrypt("6225880137650000", &p).unwrap();
            assert_eq!(Rsa::decrypt(&ct, &k).unwrap(), b"6225880137650000");
        }
        let broken = pem.replace("-----END RSA PUBLIC KEY-----", "");
        assert!(matches!(Rsa::from_public(&broken), Err(Error::Key { .. })));
    }

    #[test]
    fn certificates_give_serial_and_key() {
        let (rsa, k) = pair();
        let pkey = PKey::from_rsa(rsa).unwrap();
        let pem = crate::util::pem::tests_support::self_signed(&pkey, 0x1a2b3c);
        let cert = Rsa::from_certificate(&pem).unwrap();
        assert_eq!(cert.serial(), "1A2B3C");
        // from_public takes a certificate's key too.
        let p = Rsa::from_public(&pem).unwrap();
        let sig = Rsa::sign(b"m", &k).unwrap();
        assert!(Rsa::verify(b"m", &sig, &p));
        assert!(Rsa::verify(b"m", &sig, cert.public_key()));
        assert!(cert.to_pem().unwrap().contains("BEGIN CERTIFICATE"));
        assert!(format!("{cert:?}").contains("1A2B3C"));
    }

    #[test]
    fn oaep_refuses_oversized_plaintext_and_foreign_keys() {
        let (_, k) = pair();
        let p = k.public_key().unwrap();
        // 2048-bit OAEP-SHA1 carries at most 256 - 42 = 214 bytes.
        assert!(Rsa::encrypt(vec![b'x'; 214], &p).is_ok());
        assert!(matches!(
            Rsa::encrypt(vec![b'x'; 215], &p),
            Err(Error::Crypto { .. })
        ));
        let ct = Rsa::encrypt("x", &p).unwrap();
        let (_, other) = pair();
        assert!(Rsa::decrypt(&ct, &other).is_err());
        assert!(Rsa::decrypt("%%%", &k).is_err());
    }
}
