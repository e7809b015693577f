//! One sandbox, two schemes: merchants of the sandbox's scheme and merchants of the other one
//! ([`MerchantConfig::scheme`](crate::MerchantConfig::scheme)). The platform then holds a key
//! (and, in certificate mode, a certificate) of each kind; a request is answered, and a
//! merchant's objects notified, in the scheme of the merchant concerned.

use std::borrow::Cow;

use wechatpay_chain::crypto::{PrivateKey, PublicKey};
use wechatpay_chain::{Error, Scheme};

use crate::http::issued::Issued;
use crate::http::merchants::Merchant;
use crate::http::settings::{Mode, Settings, Signer};

/// The platform key of the scheme that is not the sandbox's.
pub(crate) struct OtherPlatform {
    pub scheme: Scheme,
    pub key: PrivateKey,
    pub public: PublicKey,
    pub serial: String,
    pub cert: Option<Issued>,
}

/// The second platform key, when a merchant speaks a scheme other than `scheme`.
pub(crate) fn other_platform(
    scheme: Scheme,
    merchants: &[Merchant],
    mode: Mode,
    mchid: &str,
) -> Result<Option<OtherPlatform>, Error> {
    let Some(other) = merchants.iter().map(|m| m.scheme).find(|s| *s != scheme) else {
        return Ok(None);
    };
    let key = crate::http::scheme::generate_key(other)?;
    let (serial, cert) = match mode {
        // a public key id of its own, so that a client tells the two keys apart
        Mode::PublicKey => (
            format!("PUB_KEY_ID_01{mchid}{}", crate::util::random_hex(9)),
            None,
        ),
        Mode::Certificate => {
            let issued = crate::http::issued::issue(&key)?;
            (issued.certificate.serial().to_string(), Some(issued))
        }
    };
    Ok(Some(OtherPlatform {
        scheme: other,
        public: key.public_key()?,
        key,
        serial,
        cert,
    }))
}

/// The scheme an `Authorization` header names: SM2's when it starts so, else RSA's (the
/// parser then says what is wrong).
pub(crate) fn named_in(header: &str) -> Scheme {
    #[cfg(feature = "shangmi")]
    if header.starts_with(wechatpay_chain::v3::scheme::SM2) {
        return Scheme::Sm2;
    }
    let _ = header;
    Scheme::Rsa
}

/// The scheme a notification body was sealed in (its `resource.algorithm`).
pub(crate) fn sealed_in(body: &[u8]) -> Option<Scheme> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let algorithm = v.pointer("/resource/algorithm")?.as_str()?;
    #[cfg(feature = "shangmi")]
    if algorithm == Scheme::Sm2.aead() {
        return Some(Scheme::Sm2);
    }
    (algorithm == Scheme::Rsa.aead()).then_some(Scheme::Rsa)
}

impl Settings {
    /// Whether every merchant speaks the sandbox's scheme (there is no second platform key).
    pub(crate) fn one_scheme(&self) -> bool {
        self.other_platform.is_none()
    }

    /// The scheme merchant `mchid` speaks: its own, else the sandbox's.
    pub(crate) fn scheme_of(&self, mchid: &str) -> Scheme {
        if self.one_scheme() {
            return self.scheme;
        }
        self.merchants
            .iter()
            .find(|m| m.mchid == mchid)
            .map_or(self.scheme, |m| m.scheme)
    }

    /// The scheme of the merchant whose request is being answered.
    pub(crate) fn signing_scheme(&self) -> Scheme {
        self.scheme_of(&self.signing_merchant())
    }

    /// The platform key of `scheme` and its serial, when it is not the sandbox's own scheme.
    pub(crate) fn other_signer(&self, scheme: Scheme) -> Option<Signer<'_>> {
        self.other_platform
            .as_ref()
            .filter(|o| o.scheme == scheme && scheme != self.scheme)
            .map(|o| (Cow::Borrowed(&o.key), Cow::Borrowed(o.serial.as_str())))
    }
}

/// The merchant an `Authorization` header names, whose scheme the answer is signed in.
pub(crate) fn mchid_in(header: Option<&str>) -> Option<String> {
    let header = header?;
    crate::http::auth::parse_as(header, named_in(header).name())
        .ok()
        .map(|a| a.mchid.to_string())
}

/// The `algorithm_type` of `v3/certificates` asked: `RSA` when absent (as documented), `None`
/// for `ALL`.
pub(crate) fn algorithm_type(
    asked: Option<&str>,
) -> Result<Option<&str>, crate::http::answer::Answer> {
    match asked.unwrap_or("RSA") {
        "ALL" => Ok(None),
        a @ ("RSA" | "SM2") => Ok(Some(a)),
        other => Err(crate::http::answer::Answer::param_error(
            "/algorithm_type",
            "query",
            "algorithm_type must be RSA, SM2 or ALL",
            serde_json::Value::from(other),
        )),
    }
}

/// Refuses a merchant given a key of another kind than its scheme's.
pub(crate) fn check_keys(merchants: &[Merchant]) -> Result<(), Error> {
    match merchants
        .iter()
        .find(|m| Scheme::of_public_key(&m.public_key) != m.scheme)
    {
        Some(m) => Err(Error::config(format!(
            "merchant {} speaks {}: give it a key of that kind, or none to have one generated",
            m.mchid,
            m.scheme.name()
        ))),
        None => Ok(()),
    }
}

/// The platform key of the scheme that is not the sandbox's, as its merchants verify with it
/// ([`Emulator::second_platform`](crate::Emulator::second_platform)).
#[derive(Clone)]
pub struct SecondPlatform {
    /// Its scheme (the one [`MerchantConfig::scheme`](crate::MerchantConfig::scheme) named).
    pub scheme: Scheme,
    /// Its public key id (`PUB_KEY_ID_…`) or certificate serial: `Wechatpay-Serial`.
    pub serial: String,
    /// Its public key.
    pub public_key: PublicKey,
    /// Its certificate, in certificate mode.
    pub certificate: Option<wechatpay_chain::crypto::Certificate>,
    /// Its private key (`wechatpay trigger` signs notifications with it as the sandbox does).
    pub private_key: PrivateKey,
}

impl std::fmt::Debug for SecondPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondPlatform")
            .field("scheme", &self.scheme)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}
