//! Platform certificates: downloading `v3/certificates`, decrypting each with the APIv3 key and
//! checking the answer's signature against them; and keeping a client's keyring fresh on its
//! own (`Builder::auto_certificates`): at build, every 12 h, and when an answer names a serial
//! the keyring does not know (rate-limited), merging without dropping still-valid keys.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::client_json;
use crate::crypto::Certificate;
use crate::error::Error;
use crate::formatter;
use crate::request::{Pending, Protocol};
use crate::v3::scheme::Scheme;

use crate::{Client, Core};

/// How often the keyring is refreshed by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(12 * 3600);
/// The longest refresh interval `build()` accepts: platform certificates rotate with weeks of
/// overlap, and a longer wait would only hide a refresher that never runs.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(7 * 86_400);
pub use crate::v3::auto::MIN_REFRESH_GAP;

/// A platform certificate as downloaded and decrypted.
#[derive(Debug, Clone)]
pub struct Downloaded {
    /// The serial the platform lists it under (uppercase hex).
    pub serial: String,
    /// `effective_time` as listed.
    pub effective_time: String,
    /// `expire_time` as listed.
    pub expire_time: String,
    /// The certificate.
    pub certificate: Certificate,
    /// The certificate as PEM, as decrypted.
    pub pem: String,
}

#[derive(Deserialize)]
struct Listing {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    serial_no: String,
    #[serde(default)]
    effective_time: String,
    #[serde(default)]
    expire_time: String,
    encrypt_certificate: Encrypted,
}

#[derive(Deserialize)]
struct Encrypted {
    algorithm: String,
    nonce: String,
    #[serde(default)]
    associated_data: String,
    ciphertext: String,
}

/// Decrypts a `v3/certificates` body and checks each entry; the answer's own signature is
/// checked by the caller against these certificates.
pub fn decrypt_listing(body: &[u8], apiv3_key: &str) -> Result<Vec<Downloaded>, Error> {
    decrypt_listing_as(body, apiv3_key, Scheme::Rsa)
}

/// [`decrypt_listing`] of a scheme's listing (`algorithm_type=SM2`: `AEAD_SM4_GCM`-encrypted
/// SM2 certificates); an entry encrypted otherwise, or a certificate of the other kind, is an
/// error.
pub fn decrypt_listing_as(
    body: &[u8],
    apiv3_key: &str,
    scheme: Scheme,
) -> Result<Vec<Downloaded>, Error> {
    let listing: Listing = serde_json::from_slice(body)
        .map_err(|e| Error::decode_from("v3/certificates answer is not the documented JSON", e))?;
    let mut out = Vec::with_capacity(listing.data.len());
    for item in listing.data {
        let e = &item.encrypt_certificate;
        if e.algorithm != scheme.aead() {
            return Err(Error::crypto(format!(
                "certificate {} uses unsupported algorithm {:?}",
                item.serial_no, e.algorithm
            )));
        }
        let pem = scheme.open(
            &e.ciphertext,
            apiv3_key.as_bytes(),
            &e.nonce,
            &e.associated_data,
        )?;
        let pem = String::from_utf8(pem).map_err(|e| {
            Error::crypto_from("a decrypted certificate is not PEM text", e.utf8_error())
        })?;
        let certificate = scheme.certificate(&pem)?;
        // Serials are numbers: `83D6…` listed for a certificate whose hex is `083D6…` is it.
        if !crate::v3::keyring::same_serial(certificate.serial(), &item.serial_no) {
            return Err(Error::Verification(format!(
                "certificate listed as {} has serial {}",
                item.serial_no,
                certificate.serial()
            )));
        }
        out.push(Downloaded {
            serial: certificate.serial().to_string(),
            effective_time: item.effective_time,
            expire_time: item.expire_time,
            certificate,
            pem,
        });
    }
    Ok(out)
}

fn expired(cert: &Certificate) -> bool {
    match openssl::asn1::Asn1Time::days_from_now(0) {
        Ok(now) => cert.as_openssl().not_after() < now,
        Err(_) => false,
    }
}

impl Core {
    /// GET `v3/certificates` and decrypt it; the answer must verify with the keyring's keys or
    /// the downloaded certificates themselves.
    pub(crate) async fn fetch_certificates(
        &self,
        apiv3_key: &str,
    ) -> Result<Vec<Downloaded>, Error> {
        let call = self.fetch_certificates_once(apiv3_key);
        crate::transport::retry::spanned(&Method::GET, "v3/certificates", call).await
    }

    async fn fetch_certificates_once(&self, apiv3_key: &str) -> Result<Vec<Downloaded>, Error> {
        let pending: Pending = self.prepare(
            Method::GET,
            "v3/certificates",
            &json!({"query": {"algorithm_type": self.keyring.scheme().algorithm_type()}}),
            None,
        )?;
        let res = self
            .transport
            .send(pending.request, false, pending.limits)?
            .await?;
        crate::transport::retry::answered(res.status());
        if !res.status().is_success() {
            // Nothing is trusted from an error answer here (no certificate comes of it), so one
            // that does not verify (a public-key merchant's 404, signed by a key not configured
            // yet) stays an API error, marked unverified.
            let verified =
                client_json::verify_response(&res, &self.keyring, formatter::timestamp()).is_ok();
            return Err(Error::from_answer_as(res, verified));
        }
        let list = decrypt_listing_as(res.body(), apiv3_key, self.keyring.scheme())?;
        let ring = self.keyring.with(
            list.iter()
                .map(|d| (d.serial.clone(), d.certificate.public_key().clone())),
        );
        client_json::verify_response(&res, &ring, formatter::timestamp())?;
        Ok(list)
    }

    /// Downloads and merges the platform certificates; returns how many are now managed.
    pub(crate) async fn refresh_certificates(&self) -> Result<usize, Error> {
        let Some(auto) = &self.auto else {
            return Err(Error::config(
                "automatic certificates are off: set Builder::auto_certificates",
            ));
        };
        if auto.busy.swap(true, Ordering::AcqRel) {
            return Ok(0);
        }
        let result = self.fetch_certificates(&auto.key.0).await;
        auto.busy.store(false, Ordering::Release);
        match result {
            Ok(list) => {
                let fresh: Vec<Certificate> = list
                    .into_iter()
                    .map(|d| d.certificate)
                    .filter(|c| !expired(c))
                    .collect();
                self.keyring.merge_certificates(&fresh);
                let mut managed = auto
                    .managed
                    .lock()
                    .map_err(|_| Error::config("certificate state poisoned"))?;
                for c in fresh {
                    managed.retain(|m| !crate::v3::keyring::same_serial(m.serial(), c.serial()));
                    managed.push(c);
                }
                let (gone, kept): (Vec<Certificate>, Vec<Certificate>) =
                    managed.drain(..).partition(expired);
                for c in gone {
                    self.keyring.remove(c.serial());
                }
                *managed = kept;
                tracing::info!(
                    certificates = managed.len(),
                    "platform certificates refreshed"
                );
                Ok(managed.len())
            }
            Err(Error::Api {
                status: 403 | 404, ..
            }) => {
                if !auto.told_unavailable.swap(true, Ordering::AcqRel) {
                    tracing::info!(
                        "platform certificates are not available for this merchant (public-key mode); \
                         answers are verified with the configured platform public key"
                    );
                }
                Ok(0)
            }
            Err(e) => {
                tracing::warn!(error = %e.chain_text(), "platform certificate refresh failed; keeping the keys already known");
                Err(e)
            }
        }
    }

    /// Checks an answer; with automatic certificates, an unknown `Wechatpay-Serial` first
    /// refreshes the keyring (at most once a minute), then the answer is checked.
    pub(crate) async fn checked(
        &self,
        pending: &Pending,
        res: http::Response<Bytes>,
    ) -> Result<Response, Error> {
        if let Some(auto) = &self.auto {
            let serial = res
                .headers()
                .get("wechatpay-serial")
                .and_then(|v| v.to_str().ok());
            if pending.protocol == Protocol::V3
                && (!res.status().is_success() || !client_json::is_unsigned(&pending.path))
                && serial.is_some_and(|s| self.keyring.get(s.trim()).is_none())
                && auto.may_refresh()
            {
                let _ = self.refresh_certificates().await;
            }
        }
        self.finish(pending, res)
    }
}

use crate::response::Response;

/// Starts the periodic refresher: it holds the core weakly and stops with the last client.
pub(crate) fn start_refresher(core: &Arc<Core>) -> Result<(), Error> {
    let Some(auto) = &core.auto else {
        return Ok(());
    };
    let interval = auto.interval;
    let weak: Weak<Core> = Arc::downgrade(core);
    // A plain thread, asleep between refreshes: it needs no runtime to wait on, and so keeps
    // blocking-only programs free of a driver thread. Dropping the core wakes it to stop.
    let thread = std::thread::Builder::new()
        .name("wechatpay-certificates".into())
        .spawn(move || {
            // `build()` bounds the interval; saturate anyway rather than panic in this thread.
            let after = |t: Instant| t.checked_add(interval).unwrap_or(t + MAX_REFRESH_INTERVAL);
            let mut next = after(Instant::now());
            loop {
                let now = Instant::now();
                if now < next {
                    std::thread::park_timeout(next - now);
                }
                let Some(core) = weak.upgrade() else { break };
                if Instant::now() >= next {
                    let _ = crate::transport::block_on(core.refresh_certificates());
                    next = after(Instant::now());
                }
            }
        })
        .map_err(|e| Error::config_from("cannot start the certificate refresher", e))?;
    if let Ok(mut slot) = auto.refresher.lock() {
        *slot = Some(thread.thread().clone());
    }
    Ok(())
}

impl Client {
    /// Downloads `v3/certificates`, decrypts each with `apiv3_key`, and checks the answer's
    /// signature with them (or the keys already known). Nothing is added to the keyring.
    pub async fn download_certificates_async(
        &self,
        apiv3_key: &str,
    ) -> Result<Vec<Downloaded>, Error> {
        self.core().fetch_certificates(apiv3_key).await
    }

    /// Blocking [`Client::download_certificates_async`].
    pub fn download_certificates(&self, apiv3_key: &str) -> Result<Vec<Downloaded>, Error> {
        crate::transport::block_on(self.download_certificates_async(apiv3_key))
    }

    /// Refreshes the keyring now (with `Builder::auto_certificates`); returns how many
    /// downloaded certificates it holds. Public-key-mode merchants get `Ok(0)`.
    pub fn refresh_certificates(&self) -> Result<usize, Error> {
        crate::transport::block_on(self.core().refresh_certificates())
    }
}
