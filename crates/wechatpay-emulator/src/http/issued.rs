//! The platform certificate the emulator issues itself (what answers are signed under in
//! certificate mode).

use wechatpay_chain::crypto::{Certificate, PrivateKey};
use wechatpay_chain::formatter;
use wechatpay_chain::Error;

use crate::http::tls;
use crate::util::Ssl as _;

/// A certificate the emulator issued, with its validity as Unix times.
pub(crate) struct Issued {
    pub certificate: Certificate,
    pub pem: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// Issues a self-signed platform certificate for `key`, valid from a day ago for five years,
/// with a 40-hex-digit serial like the platform's.
pub(crate) fn issue(key: &PrivateKey) -> Result<Issued, Error> {
    let now = formatter::timestamp();
    let (not_before, not_after) = (now - 86_400, now + 5 * 365 * 86_400);
    let x509 = tls::issue(
        &tls::Spec {
            subject: &[
                ("C", "CN"),
                ("O", "Tenpay.com"),
                ("OU", "Tenpay.com CA Center"),
                ("CN", "Tenpay.com Root CA (wechatpay-chain emulator)"),
            ],
            serial: &tls::random_serial()?,
            not_before,
            not_after,
            role: tls::Role::Signing,
            issuer: None,
            signer: key.as_openssl(),
        },
        key.as_openssl(),
    )?;
    let pem = String::from_utf8(
        x509.to_pem()
            .ssl("cannot encode the platform certificate")?,
    )
    .map_err(|e| Error::key_from("a PEM encoding is not text", e.utf8_error()))?;
    Ok(Issued {
        certificate: crate::http::scheme::certificate(wechatpay_chain::Scheme::of_key(key), &pem)?,
        pem,
        not_before,
        not_after,
    })
}
