//! Digests and MACs, as wechatpay-php's `Crypto\Hash`: MD5 and HMAC with the key appended as
//! APIv2 signatures want, SHA-1/SHA-256 digests, and constant-time comparison.

use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::sign::Signer;

use serde_json::{Map, Value};

use crate::error::Error;

/// Lowercase hex of `bytes`, the form every digest of the platform's documents takes.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Lowercase hex MD5 of `data`.
pub fn md5_hex(data: impl AsRef<[u8]>) -> Result<String, Error> {
    let d = openssl::hash::hash(MessageDigest::md5(), data.as_ref())
        .map_err(Error::openssl("MD5 failed"))?;
    Ok(hex(&d))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    hex(&openssl::sha::sha256(data.as_ref()))
}

/// Lowercase hex SHA-1 of `data`.
pub fn sha1_hex(data: impl AsRef<[u8]>) -> String {
    hex(&openssl::sha::sha1(data.as_ref()))
}

/// Compares two byte strings in time independent of where they differ.
pub fn equals(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && openssl::memcmp::eq(a, b)
}

/// How an APIv2 `sign` is computed (wechatpay-php's `Hash::ALGO_MD5`/`ALGO_HMAC_SHA256`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    /// Uppercase hex MD5 (the default).
    Md5,
    /// Uppercase hex HMAC-SHA256.
    HmacSha256,
}

impl SignType {
    /// The `sign_type` field's value: `MD5` or `HMAC-SHA256`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }

    /// The type a data map asks for in its `sign_type` field (MD5 when absent).
    pub fn of_data(data: &Map<String, Value>) -> Result<SignType, Error> {
        match data.get("sign_type") {
            None | Some(Value::Null) => Ok(SignType::Md5),
            Some(Value::String(s)) if s == "MD5" => Ok(SignType::Md5),
            Some(Value::String(s)) if s == "HMAC-SHA256" => Ok(SignType::HmacSha256),
            Some(other) => Err(Error::arg(format!(
                "sign_type must be \"MD5\" or \"HMAC-SHA256\", got {}",
                crate::error::one_line(&other.to_string())
            ))),
        }
    }

    /// The type a received `sign` was made with, told by its length as the platform's
    /// answers do not always say: 64 hex characters are HMAC-SHA256, anything else MD5.
    pub fn of_sign(sign: &str) -> SignType {
        if sign.len() == 64 {
            SignType::HmacSha256
        } else {
            SignType::Md5
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests() {
        assert_eq!(md5_hex("").unwrap(), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(sha1_hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert!(equals(b"abc", b"abc"));
        assert!(!equals(b"abc", b"abd"));
        assert!(!equals(b"abc", b"ab"));
    }
}

// wechatpay-php's `Crypto\Hash::md5` and `::hmac`, with their key framing.

/// `Crypto\Hash::md5`: lowercase hex MD5 of `thing`, followed by `&key=KEY` when `key` is not
/// empty (`&secret=KEY` with `agency`, for WeWork's agency keys). With an empty key this is a
/// plain MD5.
///
/// ```
/// use wechatpay_chain::crypto::hash;
/// assert_eq!(hash::md5("a=1&b=2", "", false)?, "ed04c91cf6f6ab5a01a31c0295c5da34");
/// assert_eq!(hash::md5("a=1&b=2", "secret", false)?, "9f565ccd686cfa5dc3b06b3a89e4e3ad");
/// # Ok::<(), wechatpay_chain::Error>(())
/// ```
pub fn md5(thing: impl AsRef<[u8]>, key: &str, agency: bool) -> Result<String, Error> {
    let mut h = openssl::hash::Hasher::new(MessageDigest::md5())
        .map_err(Error::openssl("MD5 sign failed"))?;
    h.update(thing.as_ref())
        .map_err(Error::openssl("MD5 sign failed"))?;
    if !key.is_empty() {
        h.update(if agency { b"&secret=" } else { b"&key=" })
            .map_err(Error::openssl("MD5 sign failed"))?;
        h.update(key.as_bytes())
            .map_err(Error::openssl("MD5 sign failed"))?;
    }
    Ok(hex(&h
        .finish()
        .map_err(Error::openssl("MD5 sign failed"))?))
}

/// `Crypto\Hash::hmac`: lowercase hex HMAC of `thing` followed by `&key=KEY`, keyed with
/// `KEY` (PHP's quirk: the key is both the MAC key and appended to the data, as APIv2's
/// HMAC-SHA256 `sign` requires). `algorithm` is an openssl digest name: `sha256` as PHP's
/// default, `sha512` …; an unknown name is an error.
///
/// ```
/// use wechatpay_chain::crypto::hash;
/// assert_eq!(
///     hash::hmac("a=1&b=2", "secret", "sha256")?,
///     "3c1bcc36e976ded8aabbe1901a67b59016dffcaff3370ec35396fd4d664440a4"
/// );
/// # Ok::<(), wechatpay_chain::Error>(())
/// ```
pub fn hmac(thing: impl AsRef<[u8]>, key: &str, algorithm: &str) -> Result<String, Error> {
    let md = MessageDigest::from_name(algorithm).ok_or_else(|| {
        Error::crypto(format!(
            "unknown digest {:?} for HMAC",
            crate::error::one_line(algorithm)
        ))
    })?;
    let pkey = PKey::hmac(key.as_bytes()).map_err(Error::openssl("HMAC-SHA256 sign failed"))?;
    let mut s = Signer::new(md, &pkey).map_err(Error::openssl("HMAC-SHA256 sign failed"))?;
    s.update(thing.as_ref())
        .map_err(Error::openssl("HMAC-SHA256 sign failed"))?;
    s.update(b"&key=")
        .map_err(Error::openssl("HMAC-SHA256 sign failed"))?;
    s.update(key.as_bytes())
        .map_err(Error::openssl("HMAC-SHA256 sign failed"))?;
    Ok(hex(&s
        .sign_to_vec()
        .map_err(Error::openssl("HMAC-SHA256 sign failed"))?))
}

#[cfg(test)]
mod php_tests {
    use super::*;

    #[test]
    fn md5_appends_the_key_as_php_does() {
        assert_eq!(
            md5("a=1&b=2", "", false).unwrap(),
            "ed04c91cf6f6ab5a01a31c0295c5da34"
        );
        assert_eq!(
            md5("a=1&b=2", "", true).unwrap(),
            md5_hex("a=1&b=2").unwrap()
        );
        assert_eq!(
            md5("a=1&b=2", "secret", false).unwrap(),
            "9f565ccd686cfa5dc3b06b3a89e4e3ad"
        );
        assert_eq!(
            md5("a=1&b=2", "secret", true).unwrap(),
            "2764794cd910d6bf7d1fce51c3302df3"
        );
    }

    #[test]
    fn hmac_appends_the_key_and_names_its_digest() {
        assert_eq!(
            hmac("a=1&b=2", "secret", "sha256").unwrap(),
            "3c1bcc36e976ded8aabbe1901a67b59016dffcaff3370ec35396fd4d664440a4"
        );
        assert_eq!(
            hmac("a=1&b=2", "secret", "SHA512").unwrap(),
            "21978c6fe8eeb7197ad032f8fc8f5a2990ebf80a1166043983d8a8b15d40429dea05cd56a4903a63fe6afb7be607200b84fccd1b778f4c8452c3db8de2443587"
        );
        let e = hmac("x", "k", "nope\n").unwrap_err();
        assert!(matches!(e, Error::Crypto { .. }));
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn sha_helpers_and_equals() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(equals(b"", b""));
        assert!(!equals(b"a", b""));
    }
}
