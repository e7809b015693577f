//! Room 1, util: small helpers every room may use (locking, bounded record lists, random
//! hex, key generation, openssl errors). Imports no other room.

use std::sync::{Mutex, MutexGuard};

use wechatpay_chain::crypto::PrivateKey;
use wechatpay_chain::formatter;
use wechatpay_chain::Error;

/// How many received requests and notification attempts are kept (the oldest go first), so
/// that a long-running `wechatpay serve` does not grow without bound.
pub const MAX_RECORDS: usize = 10_000;

/// Appends to a record list, dropping the oldest beyond [`MAX_RECORDS`].
pub(crate) fn keep<T>(list: &Mutex<Vec<T>>, item: T) {
    let mut list = lock(list);
    list.push(item);
    if list.len() > MAX_RECORDS {
        let extra = list.len() - MAX_RECORDS;
        list.drain(..extra);
    }
}

/// Locks a mutex whatever a panicking holder left: the data is plain records.
/// An openssl failure as [`Error::Crypto`] saying what was being done, openssl's error kept as
/// its source (the library has no `From<ErrorStack>`: openssl's type stays out of its API).
pub(crate) trait Ssl<T> {
    fn ssl(self, what: &'static str) -> Result<T, Error>;
}

impl<T> Ssl<T> for Result<T, openssl::error::ErrorStack> {
    fn ssl(self, what: &'static str) -> Result<T, Error> {
        self.map_err(|e| Error::crypto_from(what, e))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn generate_key() -> Result<PrivateKey, Error> {
    let rsa = openssl::rsa::Rsa::generate(2048).ssl("cannot generate an RSA key")?;
    Ok(PrivateKey::from_openssl(
        openssl::pkey::PKey::from_rsa(rsa).ssl("cannot generate an RSA key")?,
    ))
}

/// A random uppercase hex string of `bytes` random bytes.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if openssl::rand::rand_bytes(&mut buf).is_err() {
        // Fall back to the nonce generator, which retries until the CSPRNG works.
        return formatter::nonce(bytes * 2).to_ascii_uppercase();
    }
    wechatpay_chain::crypto::hash::hex(&buf).to_ascii_uppercase()
}

/// A duration: seconds (`15`, `1.5`), or parts with units (`500ms`, `15s`, `10m`, `2h`,
/// `1d`, `1h30m`), as milliseconds.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as i64);
    }
    let mut total: i64 = 0;
    let mut rest = t;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        rest = &rest[unit..];
        total = total.checked_add(n.checked_mul(ms)?)?;
    }
    Some(total)
}
