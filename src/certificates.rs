//! The platform certificate download, as wechatpay-php's `CertificateDownloader`: GET
//! `v3/certificates`, decrypt each certificate with the APIv3 key, and only then verify the
//! answer's signature, with the certificates it carries (there is nothing else to verify it
//! with before the first download).
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
//! let certs = wechatpay_chain::certificates::download_blocking(&client, "0123456789abcdef0123456789abcdef")?;
//! for c in &certs {
//!     println!("{} valid until {}", c.serial_no, c.expire_time);
//! }
//! # Ok(()) }
//! ```

use bytes::Bytes;
use http::Method;
use serde::Deserialize;

use crate::client_json;
use crate::crypto::{AesGcm, Certificate, Rsa};
use crate::decorator::{api_error, Pending};
use crate::error::Error;
use crate::formatter;
use crate::keyring::Keyring;
use crate::Client;

/// A downloaded, decrypted platform certificate.
#[derive(Debug, Clone)]
pub struct PlatformCertificate {
    /// Its serial number (`Wechatpay-Serial`).
    pub serial_no: String,
    /// Start of validity, as the platform wrote it (RFC 3339).
    pub effective_time: String,
    /// End of validity, as the platform wrote it (RFC 3339).
    pub expire_time: String,
    /// The certificate.
    pub certificate: Certificate,
    /// The certificate as PEM text, to save as `wechatpay_<serial>.pem`.
    pub pem: String,
}

#[derive(Deserialize)]
struct Listing {
    data: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    serial_no: String,
    effective_time: String,
    expire_time: String,
    encrypt_certificate: Encrypted,
}

#[derive(Deserialize)]
struct Encrypted {
    algorithm: String,
    nonce: String,
    associated_data: String,
    ciphertext: String,
}

/// Decrypts the certificates of a `v3/certificates` answer and checks that each is the one its
/// `serial_no` names.
pub fn decrypt(body: &[u8], apiv3_key: &str) -> Result<Vec<PlatformCertificate>, Error> {
    let listing: Listing = serde_json::from_slice(body)
        .map_err(|e| Error::Decode(format!("v3/certificates answer: {e}")))?;
    let mut out = Vec::with_capacity(listing.data.len());
    for e in listing.data {
        let enc = &e.encrypt_certificate;
        if enc.algorithm != "AEAD_AES_256_GCM" {
            return Err(Error::Decode(format!(
                "certificate {} is encrypted with {:?}, not AEAD_AES_256_GCM",
                crate::error::one_line(&e.serial_no),
                crate::error::one_line(&enc.algorithm)
            )));
        }
        let pem = AesGcm::decrypt(&enc.ciphertext, apiv3_key, &enc.nonce, &enc.associated_data)?;
        let pem = String::from_utf8(pem)
            .map_err(|_| Error::Decode("a decrypted certificate is not PEM text".into()))?;
        let certificate = Rsa::from_certificate(&pem)?;
        if !certificate.serial().eq_ignore_ascii_case(&e.serial_no) {
            return Err(Error::Verification(format!(
                "certificate listed as {} has serial {}",
                crate::error::one_line(&e.serial_no),
                certificate.serial()
            )));
        }
        out.push(PlatformCertificate {
            serial_no: e.serial_no,
            effective_time: e.effective_time,
            expire_time: e.expire_time,
            certificate,
            pem,
        });
    }
    if out.is_empty() {
        return Err(Error::Decode(
            "v3/certificates listed no certificate".into(),
        ));
    }
    Ok(out)
}

fn finish(res: http::Response<Bytes>, apiv3_key: &str) -> Result<Vec<PlatformCertificate>, Error> {
    if !res.status().is_success() {
        return Err(api_error(res));
    }
    let certs = decrypt(res.body(), apiv3_key)?;
    let ring = Keyring::new();
    for c in &certs {
        ring.insert(c.serial_no.clone(), c.certificate.public_key().clone());
    }
    client_json::verify_response(&res, &ring, formatter::timestamp())?;
    Ok(certs)
}

fn begin(client: &Client) -> Result<Pending, Error> {
    client
        .core()
        .begin(Method::GET, "v3/certificates", &serde_json::Value::Null)
}

/// Downloads, decrypts and verifies the platform certificates. A platform answer of 404 or 403
/// comes back as [`Error::Api`]: the merchant uses platform public keys instead.
pub async fn download(client: &Client, apiv3_key: &str) -> Result<Vec<PlatformCertificate>, Error> {
    let pending = begin(client)?;
    let core = client.core();
    let res = core
        .transport
        .send(pending.request.clone(), false, pending.limits)?
        .await?;
    finish(res, apiv3_key)
}

/// [`download`], blocking the calling thread.
pub fn download_blocking(
    client: &Client,
    apiv3_key: &str,
) -> Result<Vec<PlatformCertificate>, Error> {
    let pending = begin(client)?;
    let res =
        client
            .core()
            .transport
            .send_blocking(pending.request.clone(), false, pending.limits)?;
    finish(res, apiv3_key)
}
