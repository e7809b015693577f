//! PEM files and certificate serial numbers, as wechatpay-php's `Util\PemUtil`: certificates and
//! keys loaded from files or text, serials read from certificates, and serials given by hand
//! checked, so that what reaches a header is exactly the serial and nothing else.
//!
//! ```
//! use wechatpay_chain::util::pem;
//! # let dir = std::env::temp_dir().join(format!("wcp-pem-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("wechatpay_cert.pem");
//! # let pkey = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
//! # let mut b = openssl::x509::X509Builder::new().unwrap();
//! # b.set_serial_number(&openssl::bn::BigNum::from_hex_str("5157f09efdc096de15ebe81a47057a7232f1b8e1").unwrap().to_asn1_integer().unwrap()).unwrap();
//! # b.set_pubkey(&pkey).unwrap();
//! # let mut n = openssl::x509::X509NameBuilder::new().unwrap();
//! # n.append_entry_by_text("CN", "Tenpay.com Root CA").unwrap();
//! # let n = n.build();
//! # b.set_subject_name(&n).unwrap();
//! # b.set_issuer_name(&n).unwrap();
//! # b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap()).unwrap();
//! # b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap()).unwrap();
//! # b.sign(&pkey, openssl::hash::MessageDigest::sha256()).unwrap();
//! # std::fs::write(&path, b.build().to_pem().unwrap()).unwrap();
//! let cert = pem::load_certificate(&path)?;
//! assert_eq!(cert.serial(), "5157F09EFDC096DE15EBE81A47057A7232F1B8E1");
//! let text = std::fs::read_to_string(&path)?;
//! assert_eq!(pem::parse_certificate_serial_no(&text)?, cert.serial());
//! // What `openssl x509 -serial -noout` prints, newline included, is accepted by hand:
//! assert_eq!(pem::normalize_serial("serial=5157F09EFDC096DE15EBE81A47057A7232F1B8E1\n")?, cert.serial());
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), wechatpay_chain::Error>(())
//! ```

use std::path::Path;

use openssl::x509::X509;

use crate::crypto::{Certificate, PrivateKey, Rsa};
use crate::error::Error;

/// Reads a certificate file (`apiclient_cert.pem`, a platform certificate …), PEM or DER.
pub fn load_certificate(path: impl AsRef<Path>) -> Result<Certificate, Error> {
    let path = path.as_ref();
    let data = std::fs::read(path).map_err(|e| {
        Error::key_from(
            format!("cannot read certificate file {}", path.display()),
            e,
        )
    })?;
    if data.windows(11).any(|w| w == b"-----BEGIN ") {
        let text = String::from_utf8(data).map_err(|e| {
            Error::key_from(
                format!("certificate file {} is not PEM text", path.display()),
                e.utf8_error(),
            )
        })?;
        return load_certificate_from_str(&text)
            .map_err(|e| e.prefixed(format_args!("certificate file {}", path.display())));
    }
    let x509 = X509::from_der(&data).map_err(|e| {
        Error::key_from(
            format!("certificate file {} is neither PEM nor DER", path.display()),
            e,
        )
    })?;
    let pem = x509
        .to_pem()
        .map_err(Error::openssl("cannot encode the certificate as PEM"))?;
    load_certificate_from_str(&String::from_utf8_lossy(&pem))
}

/// Parses a PEM certificate given as text.
pub fn load_certificate_from_str(pem: &str) -> Result<Certificate, Error> {
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::key(
            "certificate: expected PEM text (-----BEGIN CERTIFICATE-----)",
        ));
    }
    Rsa::from_certificate(pem)
}

/// `PemUtil::parseCertificateSerialNo`: the serial number of a PEM certificate, uppercase hex.
pub fn parse_certificate_serial_no(pem: &str) -> Result<String, Error> {
    Ok(load_certificate_from_str(pem)?.serial)
}

/// `PemUtil::loadPrivateKey`: reads a private key file (PKCS#1 or PKCS#8 PEM). Same as
/// [`Rsa::from_private`] with `file://`.
pub fn load_private_key(path: impl AsRef<Path>) -> Result<PrivateKey, Error> {
    PrivateKey::from_pem_file(path)
}

/// `PemUtil::loadPrivateKeyFromString`: same as [`Rsa::from_private`].
pub fn load_private_key_from_str(pem: &str) -> Result<PrivateKey, Error> {
    Rsa::from_private(pem)
}

/// Uppercase hex serial number of a certificate, as the platform prints it.
pub fn serial_of(x509: &X509) -> Result<String, Error> {
    let bn = x509
        .serial_number()
        .to_bn()
        .map_err(|e| Error::key_from("certificate: unreadable serial number", e))?;
    let hex = bn
        .to_hex_str()
        .map_err(|e| Error::key_from("certificate: unreadable serial number", e))?;
    Ok(hex.to_ascii_uppercase())
}

/// Normalizes a serial or public-key id given by hand: trims white space (a trailing newline
/// from `openssl x509 -serial` is common), drops a `serial=` prefix, and refuses anything that is
/// not `[0-9A-Za-z_]` so that nothing else can reach an HTTP header.
pub fn normalize_serial(serial: &str) -> Result<String, Error> {
    let s = serial.trim();
    let s = s.strip_prefix("serial=").unwrap_or(s).trim();
    if s.is_empty() {
        return Err(Error::key("serial number is empty"));
    }
    if s.len() > 128 || !s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::key(
            "serial number may contain only letters, digits and '_'",
        ));
    }
    Ok(s.to_string())
}

/// A serial as platform keys are compared by: a certificate serial is a number, so hex serials
/// compare without leading zeros and whatever their case (`83D6…` is `083d6…`); key ids
/// (`PUB_KEY_ID_…`) compare as written.
pub fn serial_key(serial: &str) -> String {
    let s = serial.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        let digits = s.trim_start_matches('0');
        if digits.is_empty() {
            "0".to_string()
        } else {
            digits.to_ascii_uppercase()
        }
    } else {
        s.to_string()
    }
}

/// Whether two serials name the same key, see [`serial_key`].
pub fn same_serial(a: &str, b: &str) -> bool {
    serial_key(a) == serial_key(b)
}

#[cfg(test)]
pub(crate) mod tests_support {
    use openssl::pkey::{PKey, Private};

    /// A self-signed certificate of `key` with serial `serial`, as PEM.
    pub(crate) fn self_signed(key: &PKey<Private>, serial: u32) -> String {
        let mut name = openssl::x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "Tenpay.com Root CA")
            .unwrap();
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let sn = openssl::bn::BigNum::from_u32(serial).unwrap();
        b.set_serial_number(&sn.to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        // An SM2 key signs with SM3 (OpenSSL refuses SM2 over SHA-256).
        let md = if crate::crypto::rsa::is_sm2(key) {
            openssl::hash::MessageDigest::sm3()
        } else {
            openssl::hash::MessageDigest::sha256()
        };
        b.sign(key, md).unwrap();
        String::from_utf8(b.build().to_pem().unwrap()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_trimmed_and_checked() {
        assert_eq!(
            normalize_serial("serial=5157F09EFDC096DE15EBE81A47057A7232F1B8E1\n").unwrap(),
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
        );
        assert_eq!(
            normalize_serial(" PUB_KEY_ID_0114232134912410000000000000 ").unwrap(),
            "PUB_KEY_ID_0114232134912410000000000000"
        );
        assert!(normalize_serial("").is_err());
        assert!(normalize_serial("AB\r\nX-Evil: 1").is_err());
        assert!(normalize_serial("AB CD").is_err());
    }

    #[test]
    fn certificates_load_from_files_and_text() {
        let pkey =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        // A serial with a leading zero nibble: whole bytes, as PHP's `serialNumberHex`.
        let pem = tests_support::self_signed(&pkey, 0x0ABC_DEF1);
        assert_eq!(parse_certificate_serial_no(&pem).unwrap(), "0ABCDEF1");
        let dir = std::env::temp_dir().join(format!("wcp-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pem_path = dir.join("cert.pem");
        let der_path = dir.join("cert.der");
        std::fs::write(&pem_path, &pem).unwrap();
        let der = X509::from_pem(pem.as_bytes()).unwrap().to_der().unwrap();
        std::fs::write(&der_path, der).unwrap();
        assert_eq!(load_certificate(&pem_path).unwrap().serial(), "0ABCDEF1");
        assert_eq!(load_certificate(&der_path).unwrap().serial(), "0ABCDEF1");
        assert_eq!(
            serial_of(load_certificate(&der_path).unwrap().as_openssl()).unwrap(),
            "0ABCDEF1"
        );

        let key_path = dir.join("key.pem");
        std::fs::write(&key_path, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let key = load_private_key(&key_path).unwrap();
        let text = std::fs::read_to_string(&key_path).unwrap();
        assert_eq!(load_private_key_from_str(&text).unwrap().bits(), key.bits());

        std::fs::write(dir.join("junk"), b"\x00\x01junk").unwrap();
        for bad in [dir.join("junk"), dir.join("missing.pem")] {
            assert!(
                matches!(load_certificate(&bad), Err(Error::Key { .. })),
                "{bad:?}"
            );
        }
        assert!(load_private_key(dir.join("missing.pem")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();

        for bad in [
            "",
            "not pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        ] {
            assert!(
                matches!(parse_certificate_serial_no(bad), Err(Error::Key { .. })),
                "{bad}"
            );
        }
        // A key where a certificate was expected.
        let key_pem = String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap();
        assert!(load_certificate_from_str(&key_pem).is_err());
    }
}
