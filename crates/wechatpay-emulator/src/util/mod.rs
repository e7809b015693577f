//! Room 1, util: small helpers every room may use (locking, bounded record lists, random
//! hex, key generation, openssl errors). Imports no other room.

use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Locks a mutex whatever a panicking holder left: the data is plain records.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A list behind a mutex whose length is read without it: what every call looks at and nearly
/// always finds empty (the fault plan, the queued forgeries, the certificate rotations) is seen
/// so without the lock, which two threads taking once per call would pass between the cores.
#[derive(Default)]
pub(crate) struct Counted<T> {
    items: Mutex<T>,
    len: AtomicUsize,
}

/// A list [`Counted`] can hold.
pub(crate) trait Len {
    fn len(&self) -> usize;
}

impl<T> Len for Vec<T> {
    fn len(&self) -> usize {
        Vec::len(self)
    }
}

impl<T> Len for VecDeque<T> {
    fn len(&self) -> usize {
        VecDeque::len(self)
    }
}

impl<T: Len> Counted<T> {
    /// Whether the list is empty, without the lock (a change made under it is seen once the
    /// lock is let go).
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// The list, locked (as [`lock`] does); its length is taken again when the guard goes.
    pub fn lock(&self) -> CountedGuard<'_, T> {
        CountedGuard {
            items: lock(&self.items),
            len: &self.len,
        }
    }
}

/// [`Counted::lock`]'s guard.
pub(crate) struct CountedGuard<'a, T: Len> {
    items: MutexGuard<'a, T>,
    len: &'a AtomicUsize,
}

impl<T: Len> Deref for CountedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.items
    }
}

impl<T: Len> DerefMut for CountedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.items
    }
}

impl<T: Len> Drop for CountedGuard<'_, T> {
    fn drop(&mut self) {
        // still under the lock: the count never lags a change another holder could see
        self.len.store(self.items.len(), Ordering::Release);
    }
}

pub(crate) fn generate_key() -> Result<PrivateKey, Error> {
    let rsa = openssl::rsa::Rsa::generate(2048).ssl("cannot generate an RSA key")?;
    Ok(PrivateKey::from_openssl(
        openssl::pkey::PKey::from_rsa(rsa).ssl("cannot generate an RSA key")?,
    ))
}

/// Random bytes from OpenSSL's generator, taken a block at a time per thread: every answer
/// wants some (its `Request-ID` and its nonce), and each `RAND_bytes` call costs OpenSSL a
/// lock and a `getpid(2)` (its fork check), a tenth of the sandbox's own work on an answer.
/// A block serves about forty answers. The sandbox never forks while it serves, so no block
/// is ever shared with a child process. `false` when OpenSSL's generator cannot be seeded.
pub(crate) fn random_bytes(out: &mut [u8]) -> bool {
    use std::cell::RefCell;
    const BLOCK: usize = 4096;
    thread_local! {
        /// Bytes drawn and not yet handed out: `block[used..]`.
        static POOL: RefCell<(Box<[u8; BLOCK]>, usize)> = RefCell::new((Box::new([0; BLOCK]), BLOCK));
    }
    if out.len() > BLOCK / 4 {
        return openssl::rand::rand_bytes(out).is_ok();
    }
    POOL.with(|pool| {
        let mut pool = pool.borrow_mut();
        let (block, used) = &mut *pool;
        if BLOCK - *used < out.len() {
            if openssl::rand::rand_bytes(&mut block[..]).is_err() {
                return false;
            }
            *used = 0;
        }
        out.copy_from_slice(&block[*used..*used + out.len()]);
        // handed out once: the copy kept here is wiped
        block[*used..*used + out.len()].fill(0);
        *used += out.len();
        true
    })
}

/// A random uppercase hex string of `bytes` random bytes.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = [0u8; 64];
    let buf = &mut buf[..bytes.min(64)];
    if bytes > 64 || !random_bytes(buf) {
        // Longer than any id made here, or no generator: the nonce generator, which retries
        // until the CSPRNG works.
        return formatter::nonce(bytes * 2).to_ascii_uppercase();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes * 2);
    for b in buf.iter() {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// A nonce of `size` characters from `[0-9A-Za-z]`, as [`formatter::nonce`] makes one, drawn
/// from [`random_bytes`].
pub(crate) fn nonce(size: usize) -> String {
    const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut out = String::with_capacity(size);
    let mut buf = [0u8; 64];
    while out.len() < size {
        if !random_bytes(&mut buf) {
            return formatter::nonce(size);
        }
        // 248 = 62 * 4: bytes at or above it would favour the first characters.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == size {
                break;
            }
            out.push(ALPHABET[usize::from(b % 62)] as char);
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::{nonce, random_bytes, random_hex, Counted};
    use std::collections::{HashSet, VecDeque};

    #[test]
    fn a_counted_list_is_seen_empty_or_not_as_its_last_holder_left_it() {
        let c: Counted<VecDeque<u8>> = Counted::default();
        assert!(c.is_empty());
        c.lock().push_back(1);
        c.lock().push_back(2);
        assert!(!c.is_empty());
        {
            let mut held = c.lock();
            assert_eq!(held.pop_front(), Some(1));
            assert!(!c.is_empty(), "the count follows when the guard goes");
        }
        assert!(!c.is_empty());
        assert_eq!(c.lock().pop_front(), Some(2));
        assert!(c.is_empty());
        assert_eq!(c.lock().pop_front(), None);
        assert!(c.is_empty());
    }

    #[test]
    fn pooled_random_ids_are_well_formed_and_never_repeat_across_blocks() {
        // 2,000 ids of 16 bytes and nonces of 32 characters span many 4 KiB blocks.
        let mut seen = HashSet::new();
        for _ in 0..2_000 {
            let id = random_hex(16);
            assert_eq!(id.len(), 32);
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
            let n = nonce(32);
            assert_eq!(n.len(), 32);
            assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(id) && seen.insert(n), "a repeated random value");
        }
        // past the block size, and an odd length that leaves a block's tail unaligned
        let (mut a, mut b) = ([0u8; 1500], [0u8; 7]);
        assert!(random_bytes(&mut b) && random_bytes(&mut a) && random_bytes(&mut b));
        assert!(a.iter().any(|&x| x != 0));
        assert_eq!(random_hex(100).len(), 200, "longer than the pooled path");
    }
}
