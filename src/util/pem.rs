//! Certificate serial numbers: read from certificates, and checked when given by hand, so that
//! what reaches a header is exactly the serial and nothing else.

use openssl::x509::X509;

use crate::error::Error;

/// Uppercase hex serial number of a certificate, as the platform prints it.
pub fn serial_of(x509: &X509) -> Result<String, Error> {
    let bn = x509
        .serial_number()
        .to_bn()
        .map_err(|_| Error::key("certificate: unreadable serial number"))?;
    let hex = bn
        .to_hex_str()
        .map_err(|_| Error::key("certificate: unreadable serial number"))?;
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
}
