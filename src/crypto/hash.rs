//! Digests and MACs, as wechatpay-php's `Crypto\Hash`: MD5 and HMAC-SHA256 in uppercase hex
//! (APIv2 signatures), and constant-time comparison.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use crate::error::Error;

fn hex_upper(bytes: &[u8]) -> String {
    crate::client_json::hex(bytes).to_ascii_uppercase()
}

/// Lowercase hex MD5 of `data`.
pub fn md5_hex(data: impl AsRef<[u8]>) -> Result<String, Error> {
    let d = openssl::hash::hash(MessageDigest::md5(), data.as_ref())?;
    Ok(crate::client_json::hex(&d))
}

/// Uppercase hex MD5 of `data`.
pub fn md5_upper(data: impl AsRef<[u8]>) -> Result<String, Error> {
    Ok(md5_hex(data)?.to_ascii_uppercase())
}

/// Uppercase hex HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256_upper(key: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> Result<String, Error> {
    let pkey = PKey::hmac(key.as_ref())?;
    let mut s = Signer::new(MessageDigest::sha256(), &pkey)?;
    s.update(data.as_ref())?;
    Ok(hex_upper(&s.sign_to_vec()?))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    crate::client_json::hex(&openssl::sha::sha256(data.as_ref()))
}

/// Lowercase hex SHA-1 of `data`.
pub fn sha1_hex(data: impl AsRef<[u8]>) -> String {
    crate::client_json::hex(&openssl::sha::sha1(data.as_ref()))
}

/// Compares two byte strings in time independent of where they differ.
pub fn equals(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert_eq!(md5_hex("").unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            hmac_sha256_upper("key", "The quick brown fox jumps over the lazy dog").unwrap(),
            "F7BC83F430538424B13298E6AA6FB143EF4D59A14946175997479DBC2D1A3CD8"
        );
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(equals(b"abc", b"abc"));
        assert!(!equals(b"abc", b"abd"));
        assert!(!equals(b"abc", b"ab"));
    }
}
