//! The `Builder`, as wechatpay-php's `Builder::factory` and reqwest's `ClientBuilder`: collects
//! the merchant's settings, checks them once, and makes a cheap-to-clone [`Client`].

use std::sync::Arc;
use std::time::Duration;

use crate::client_json::Credentials;
use crate::crypto::{Certificate, PrivateKey, PublicKey};
use crate::error::Error;
use crate::transport::{Identity, TlsConfig, Transport};
use crate::uri::Base;
use crate::uri::Placeholders;
use crate::util::pem::normalize_serial;
use crate::v3::keyring::Keyring;
use crate::{Client, Core};

/// The platform's default endpoint.
pub const DEFAULT_BASE_URI: &str = "https://api.mch.weixin.qq.com/";
/// Default timeout of one call.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default limit of an answer's body.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The merchant's TLS client identity from PEM text (the certificate, then any intermediates;
/// a PKCS#1 or PKCS#8 key), checked to belong together.
fn tls_identity(cert: &str, key: &str) -> Result<Identity, Error> {
    let pkey = crate::crypto::rsa::pem_private_key(
        key,
        None,
        "the merchant private key (merchant_identity)",
    )?;
    const NOT_PEM: &str = "the merchant certificate (merchant_identity) is not a PEM certificate";
    let mut certs = openssl::x509::X509::stack_from_pem(cert.as_bytes())
        .map_err(|e| Error::key_from(NOT_PEM, e))?
        .into_iter();
    let x509 = certs.next().ok_or_else(|| Error::key(NOT_PEM))?;
    let cert_key = x509
        .public_key()
        .map_err(|e| Error::key_from("the merchant certificate has no usable public key", e))?;
    if !pkey.public_eq(&cert_key) {
        return Err(Error::key(
            "the merchant private key does not belong to the merchant certificate",
        ));
    }
    Ok(Identity {
        cert: x509,
        chain: certs.collect(),
        key: pkey,
    })
}

/// Trusted roots from PEM text holding one or more certificates. Parsed here, so that a bad
/// one is refused by `build()`; the TLS context using them is built on the first `https://`
/// call.
fn tls_roots(pems: &[String]) -> Result<Vec<openssl::x509::X509>, Error> {
    let mut roots = Vec::new();
    for pem in pems {
        let certs = openssl::x509::X509::stack_from_pem(pem.as_bytes())
            .ok()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::key("root_certificate is not a PEM certificate (BEGIN CERTIFICATE)")
            })?;
        roots.extend(certs);
    }
    Ok(roots)
}

/// Collects a client's settings; [`Builder::build`] checks them and makes the [`Client`].
///
/// ```
/// use wechatpay_chain::{Builder, Rsa};
/// # let merchant = openssl::rsa::Rsa::generate(2048).unwrap();
/// # let platform = openssl::rsa::Rsa::generate(2048).unwrap();
/// # let merchant_pem = String::from_utf8(merchant.private_key_to_pem().unwrap()).unwrap();
/// # let platform_pem = String::from_utf8(platform.public_key_to_pem().unwrap()).unwrap();
/// let client = Builder::new()
///     .mchid("1900000001")
///     .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
///     .private_key(Rsa::from_private(&merchant_pem)?)
///     .platform_public_key("PUB_KEY_ID_0114232134912410000000000000", Rsa::from_public(&platform_pem)?)
///     .build()?;
/// assert_eq!(client["v3"]["discountCard"]["orders"]["_out_order_no_"].pathname(),
///            "v3/discount-card/orders/{out_order_no}");
/// # Ok::<(), wechatpay_chain::Error>(())
/// ```
#[derive(Default)]
pub struct Builder {
    mchid: Option<String>,
    serial: Option<String>,
    private_key: Option<PrivateKey>,
    platform_keys: Vec<(String, PublicKey)>,
    platform_certificates: Vec<Certificate>,
    scheme: crate::Scheme,
    wechatpay_serial: Option<String>,
    base_uri: Option<String>,
    timeout: Option<Duration>,
    body_limit: Option<usize>,
    placeholders: Placeholders,
    #[cfg(feature = "catalog")]
    validation: crate::catalog::Validation,
    user_agent: Option<String>,
    retry: Option<crate::RetryPolicy>,
    auto_certificates: Option<(String, Duration)>,
    pub(crate) secret: Option<String>,
    v2_either_sign_type: bool,
    pub(crate) merchant_identity: Option<(String, String)>,
    root_certificates: Vec<String>,
    errors: Vec<Error>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("mchid", &self.mchid)
            .field("serial", &self.serial)
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "redacted"),
            )
            .field(
                "platform_keys",
                &self
                    .platform_keys
                    .iter()
                    .map(|(s, _)| s)
                    .collect::<Vec<_>>(),
            )
            .field(
                "platform_certificates",
                &self
                    .platform_certificates
                    .iter()
                    .map(|c| c.serial())
                    .collect::<Vec<_>>(),
            )
            .field("scheme", &self.scheme)
            .field("wechatpay_serial", &self.wechatpay_serial)
            .field("base_uri", &self.base_uri)
            .field("timeout", &self.timeout)
            .field("secret", &self.secret.as_ref().map(|_| "redacted"))
            .field(
                "auto_certificates",
                &self
                    .auto_certificates
                    .as_ref()
                    .map(|(_, every)| ("redacted", every)),
            )
            .field(
                "merchant_identity",
                &self.merchant_identity.as_ref().map(|_| "redacted"),
            )
            .field("root_certificates", &self.root_certificates.len())
            .finish()
    }
}

impl Builder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// The merchant id (`mchid`). Optional for an APIv2-only client; when set, APIv2 calls
    /// check that their data names the same merchant.
    pub fn mchid(mut self, mchid: impl Into<String>) -> Self {
        self.mchid = Some(mchid.into().trim().to_string());
        self
    }

    /// The merchant API certificate's serial number (a trailing newline or `serial=` prefix,
    /// as `openssl x509 -serial` prints it, is removed).
    pub fn serial(mut self, serial: impl AsRef<str>) -> Self {
        match normalize_serial(serial.as_ref()) {
            Ok(s) => self.serial = Some(s),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// The merchant API private key (`apiclient_key.pem`).
    pub fn private_key(mut self, key: PrivateKey) -> Self {
        self.private_key = Some(key);
        self
    }

    /// A platform public key under its id (`PUB_KEY_ID_…`). Repeatable.
    pub fn platform_public_key(mut self, id: impl AsRef<str>, key: PublicKey) -> Self {
        match normalize_serial(id.as_ref()) {
            Ok(id) => self.platform_keys.push((id, key)),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// A platform certificate, keyed by its serial. Repeatable; mixes with public keys.
    pub fn platform_certificate(mut self, cert: Certificate) -> Self {
        self.platform_certificates.push(cert);
        self
    }

    /// The APIv3 scheme: [`Scheme::Rsa`](crate::Scheme::Rsa) by default, or (feature
    /// `shangmi`) the 国密 `Scheme::Sm2`, whose merchant key, platform keys and certificates
    /// are SM2 ones (`Sm2::from_private`, `Sm2::from_public`, `Sm2::from_certificate`); `build()`
    /// refuses a key of the other kind. Answers naming the other scheme are refused.
    pub fn scheme(mut self, scheme: crate::Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The platform key every APIv3 request names in `Wechatpay-Serial`, i.e. the key the
    /// merchant expects answers to be signed with. By default the configured `PUB_KEY_ID_…`,
    /// else the newest platform certificate. While migrating from certificates to the public
    /// key, name the certificate serial here to keep answers signed by it until you switch. A
    /// `Wechatpay-Serial` header in a call's args wins; `build()` refuses a serial that no
    /// configured key has (unless certificates are downloaded automatically).
    pub fn wechatpay_serial(mut self, serial: impl AsRef<str>) -> Self {
        match normalize_serial(serial.as_ref()) {
            Ok(s) => self.wechatpay_serial = Some(s),
            Err(e) => self.errors.push(e),
        }
        self
    }

    /// The endpoint, `https://api.mch.weixin.qq.com/` by default. Its path prefix is kept.
    pub fn base_uri(mut self, uri: impl Into<String>) -> Self {
        self.base_uri = Some(uri.into());
        self
    }

    /// Timeout of one call, from sending to the last byte of the answer (30 s by default).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Largest answer body accepted, in bytes (32 MiB by default).
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = Some(bytes);
        self
    }

    /// What a `{name}` missing from the args does: [`Placeholders::Strict`] (the default)
    /// refuses the call; [`Placeholders::Lenient`] expands it to empty as wechatpay-php does.
    pub fn placeholders(mut self, mode: Placeholders) -> Self {
        self.placeholders = mode;
        self
    }

    /// Checks each call's args against the operation catalogue before anything is sent:
    /// [`Validation::Off`](crate::Validation::Off) (the default), `Warn` (each finding logged
    /// at WARN, the call sent) or `Strict` (a call with findings refused with
    /// [`Error::InvalidArgument`] naming each field by its JSON pointer, nothing sent). A call
    /// may skip it with `"validate": false` in its args. Cargo feature `catalog`.
    ///
    /// ```
    /// use serde_json::json;
    /// use wechatpay_chain::{Builder, Validation};
    ///
    /// let client = Builder::new().validation(Validation::Strict).build()?;
    /// // `total` must be an integer (fen): refused before anything is signed or sent
    /// let e = client
    ///     .chain("v3/pay/transactions/native")
    ///     .post(json!({"json": {"appid": "wx", "mchid": "1", "description": "d",
    ///         "out_trade_no": "T1", "notify_url": "https://example.com/n",
    ///         "amount": {"total": "100"}}}))
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("/json/amount/total"), "{e}");
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    #[cfg(feature = "catalog")]
    #[cfg_attr(docsrs, doc(cfg(feature = "catalog")))]
    pub fn validation(mut self, mode: crate::Validation) -> Self {
        self.validation = mode;
        self
    }

    /// Retries the platform's way (off by default); see [`RetryPolicy`](crate::RetryPolicy).
    /// Each call may override it with its `retry` arg.
    pub fn retry(mut self, policy: crate::RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Keeps the platform certificates fresh on its own: downloads `v3/certificates` at build
    /// and every 12 h, and when an answer names an unknown `Wechatpay-Serial` (at most once a
    /// minute), decrypting them with `apiv3_key` and merging them into the keyring without
    /// dropping still-valid keys. Merchants in public-key mode (the platform answers 403/404)
    /// keep working with their configured public key; this is said once, at info level.
    pub fn auto_certificates(mut self, apiv3_key: impl Into<String>) -> Self {
        let interval = self
            .auto_certificates
            .as_ref()
            .map(|a| a.1)
            .unwrap_or(crate::certificates::DEFAULT_REFRESH_INTERVAL);
        self.auto_certificates = Some((apiv3_key.into(), interval));
        self
    }

    /// How often [`Builder::auto_certificates`] refreshes (12 h by default): from 1 s (shorter
    /// is taken as 1 s) to 7 days; `build()` refuses more with [`Error::Config`].
    pub fn certificate_refresh_interval(mut self, every: Duration) -> Self {
        if let Some(a) = &mut self.auto_certificates {
            a.1 = every;
        } else {
            self.errors.push(Error::config(
                "certificate_refresh_interval needs auto_certificates first",
            ));
        }
        self
    }

    /// Replaces the default `User-Agent` (which names this crate and its version).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = Some(ua.into());
        self
    }

    /// The APIv2 key (`API密钥`, 32 characters), which signs APIv2 requests and verifies
    /// their answers and notifications. Needed only for `v2/…` calls; an APIv2-only client
    /// needs no APIv3 keys.
    ///
    /// ```
    /// let client = wechatpay_chain::Builder::new()
    ///     .secret("your 32-character APIv2 key....")
    ///     .build()?;
    /// assert!(format!("{client:?}").contains("redacted"));
    /// # Ok::<(), wechatpay_chain::Error>(())
    /// ```
    pub fn secret(mut self, secret: &str) -> Self {
        self.secret = Some(secret.to_string());
        self
    }

    /// Accepts an APIv2 answer signed with either MD5 or HMAC-SHA256, the type read off the
    /// sign's length, as wechatpay-php does. Off by default, and best left off: the platform
    /// answers with the request's `sign_type`, so a merchant who chose HMAC-SHA256 should never
    /// have to trust an MD5 sign in its place. For test platforms that always answer MD5.
    pub fn v2_either_sign_type(mut self, either: bool) -> Self {
        self.v2_either_sign_type = either;
        self
    }

    /// The merchant certificate and its private key (`apiclient_cert.pem`,
    /// `apiclient_key.pem`: PEM text, not paths), presented as the TLS client identity by the
    /// APIv2 calls made with `security: true` (refunds, red packets, transfers …). The key may
    /// be PKCS#8 or PKCS#1 PEM.
    pub fn merchant_identity(mut self, cert_pem: &str, key_pem: &str) -> Self {
        self.merchant_identity = Some((cert_pem.to_string(), key_pem.to_string()));
        self
    }

    /// Trusts one more root CA (PEM text of one or more certificates, not a path) for the
    /// server's certificate, beside the system's roots (and `SSL_CERT_FILE`/`SSL_CERT_DIR`),
    /// on every connection: APIv3, plain APIv2 and `security: true` calls alike. Repeatable.
    /// For a private test platform such as the emulator's TLS mode
    /// (`wechatpay_emulator::EmulatorConfig::tls`), or a TLS-intercepting
    /// proxy whose CA the process should trust without trusting it system-wide. `build()`
    /// refuses text that holds no certificate with [`Error::Key`].
    ///
    /// The TLS context is made on the first `https://` connection, not by `build()`: a client
    /// of an `http://` base (the emulator, a local proxy) never loads the system's roots, and
    /// an `https://` one loads them once, from the system's hashed certificate directory
    /// (`/etc/ssl/certs`, or `SSL_CERT_DIR`) where there is one, which OpenSSL reads a file at
    /// a time as a verification needs it, rather than parsing the whole bundle; a bundle is
    /// parsed when `SSL_CERT_FILE` names it, or when the system has no hashed directory.
    pub fn root_certificate(mut self, pem: &str) -> Self {
        self.root_certificates.push(pem.to_string());
        self
    }

    /// Checks the settings and makes the client: keys are parsed once, one connection pool
    /// is made for every clone.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.errors.into_iter().next() {
            return Err(e);
        }
        if let Some(m) = &self.mchid {
            if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(Error::config(format!(
                    "mchid {m:?} must be letters and digits"
                )));
            }
        }
        let mchid = self.mchid.clone();
        self.scheme.check_keys(
            self.private_key.as_ref(),
            &self.platform_keys,
            &self.platform_certificates,
        )?;
        let credentials = match (self.mchid, self.serial, self.private_key) {
            (Some(mchid), Some(serial), Some(key)) => Some(Credentials { mchid, serial, key }),
            (None, None, None) => None,
            (m, s, k) => {
                let missing: Vec<&str> = [
                    ("mchid", m.is_none()),
                    ("serial", s.is_none()),
                    ("private_key", k.is_none()),
                ]
                .iter()
                .filter(|(_, miss)| *miss)
                .map(|(n, _)| *n)
                .collect();
                // A v2-only client may name its mchid without APIv3 keys.
                if m.is_some() && s.is_none() && k.is_none() {
                    None
                } else {
                    return Err(Error::config(format!(
                        "APIv3 signing needs mchid, serial and private_key together; missing: {}",
                        missing.join(", ")
                    )));
                }
            }
        };
        let base = Base::parse(self.base_uri.as_deref().unwrap_or(DEFAULT_BASE_URI)).map_err(
            |e| match e {
                Error::InvalidArgument(m) => Error::config(m),
                other => other,
            },
        )?;
        let keyring = Keyring::for_scheme(self.scheme);
        keyring.merge(self.platform_keys);
        keyring.merge_certificates(&self.platform_certificates);
        if self.secret.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(Error::config(
                "the APIv2 key is empty: Builder::secret (--secret, WECHATPAY_SECRET) takes the key set on the merchant platform",
            ));
        }
        let identity = match &self.merchant_identity {
            Some((cert, key)) => Some(tls_identity(cert, key)?),
            None => None,
        };
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(Error::config("timeout must be more than zero"));
        }
        let ua = self.user_agent.unwrap_or_else(|| {
            format!(
                "wechatpay-chain/{} (rust; {})",
                env!("CARGO_PKG_VERSION"),
                std::env::consts::OS
            )
        });
        let user_agent = http::HeaderValue::from_str(&ua)
            .map_err(|e| Error::config_from("user agent cannot be sent in a header", e))?;
        if let Some(e) = self.retry.as_ref().and_then(|r| r.backup_error.clone()) {
            return Err(Error::config(format!("retry backup: {e}")));
        }
        let auto = match self.auto_certificates {
            Some((key, interval)) => {
                if key.len() != crate::crypto::aes_gcm::KEY_LEN {
                    return Err(Error::config(format!(
                        "the APIv3 key must be {} bytes, got {}",
                        crate::crypto::aes_gcm::KEY_LEN,
                        key.len()
                    )));
                }
                if credentials.is_none() {
                    return Err(Error::config(
                        "auto_certificates needs mchid, serial and private_key",
                    ));
                }
                if interval > crate::certificates::MAX_REFRESH_INTERVAL {
                    return Err(Error::config(format!(
                        "certificate_refresh_interval must be between 1 s and 7 days (12 h by \
                         default), got {interval:?}"
                    )));
                }
                Some(crate::v3::auto::Auto::new(
                    key,
                    interval.max(Duration::from_secs(1)),
                ))
            }
            None => None,
        };
        let has_auto = auto.is_some();
        if let Some(serial) = &self.wechatpay_serial {
            if !has_auto && keyring.get(serial).is_none() {
                return Err(Error::config(format!(
                    "wechatpay_serial {serial} is not one of the platform keys configured ({})",
                    keyring.serials().join(", ")
                )));
            }
        }
        let core = Core {
            auto,
            retry: self.retry,
            base,
            credentials,
            mchid,
            keyring: Arc::new(keyring),
            wechatpay_serial: self.wechatpay_serial,
            timeout,
            body_limit: self.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
            placeholders: self.placeholders,
            #[cfg(feature = "catalog")]
            validation: self.validation,
            user_agent,
            secret: self.secret,
            v2_either_sign_type: self.v2_either_sign_type,
            transport: Transport::new(TlsConfig {
                roots: tls_roots(&self.root_certificates)?,
                identity,
            }),
            sealed: Default::default(),
        };
        let client = Client::from_core(core);
        if has_auto {
            // A failure here is logged; calls still verify with the keys configured, and the
            // next refresh (periodic, or on an unknown serial) tries again.
            let _ = client.refresh_certificates();
            crate::certificates::start_refresher(client.core())?;
        }
        Ok(client)
    }
}

impl Client {
    /// A [`Builder`], as `Builder::new()` makes it.
    pub fn builder() -> crate::Builder {
        crate::Builder::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(serial: u32) -> String {
        let key =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        crate::util::pem::tests_support::self_signed(&key, serial)
    }

    #[test]
    fn root_certificates_take_pem_bundles_and_refuse_anything_else() {
        let bundle = self_signed(1) + &self_signed(2);
        assert_eq!(tls_roots(&[bundle]).unwrap().len(), 2);
        let client = Builder::new().root_certificate(&self_signed(3)).build();
        assert!(client.is_ok(), "{client:?}");
        for bad in [
            "",
            "not a certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            match Builder::new().root_certificate(bad).build() {
                Err(Error::Key { message: m, .. }) => {
                    assert!(m.contains("root_certificate"), "{m}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        // One bad root among good ones is refused too.
        let r = Builder::new()
            .root_certificate(&self_signed(4))
            .root_certificate("nope")
            .build();
        assert!(matches!(r, Err(Error::Key { .. })), "{r:?}");
    }
}
