//! The strings the protocol signs, as wechatpay-php's `Formatter`: nonces, timestamps, the
//! request and response messages, the `Authorization` header value, and APIv2's sorted
//! `k=v&…` string.

use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random string of `size` characters from `0-9A-Za-z`, drawn without modulo bias from
/// openssl's CSPRNG.
///
/// ```
/// use wechatpay_chain::formatter;
/// let n = formatter::nonce(32);
/// assert_eq!(n.len(), 32);
/// assert!(n.bytes().all(|b| b.is_ascii_alphanumeric()));
/// ```
pub fn nonce(size: usize) -> String {
    let mut out = String::with_capacity(size);
    let mut buf = [0u8; 64];
    while out.len() < size {
        // openssl's RAND_bytes only fails when the CSPRNG cannot be seeded at all; the thread
        // RNG of the standard library is not available, so fall back to a clear panic-free path:
        // an unseeded RNG would make every signature unsafe, so we retry until it works.
        if openssl::rand::rand_bytes(&mut buf).is_err() {
            std::thread::yield_now();
            continue;
        }
        for &b in buf.iter() {
            // 248 = 62 * 4: bytes at or above it would favour the first characters.
            if b < 248 && out.len() < size {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Seconds since the Unix epoch.
///
/// ```
/// let now = wechatpay_chain::formatter::timestamp();
/// assert!(now > 1_700_000_000);
/// ```
pub fn timestamp() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Joins pieces with a line feed after each one, the framing of every signed message.
///
/// ```
/// use wechatpay_chain::formatter::joined_by_line_feed;
/// assert_eq!(joined_by_line_feed(["a", "", "b"]), b"a\n\nb\n");
/// assert_eq!(joined_by_line_feed(Vec::<&str>::new()), b"");
/// ```
pub fn joined_by_line_feed<I, S>(pieces: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    append_lines(Vec::new(), pieces)
}

/// Appends each piece and a line feed to `out`.
fn append_lines<I, S>(mut out: Vec<u8>, pieces: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<[u8]>,
{
    for p in pieces {
        out.extend_from_slice(p.as_ref());
        out.push(b'\n');
    }
    out
}

/// The request message: `METHOD\nURI\nTIMESTAMP\nNONCE\nBODY\n`, URI being path and query.
///
/// ```
/// use wechatpay_chain::formatter;
/// let m = formatter::request("GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", b"");
/// assert_eq!(m, b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n");
/// ```
pub fn request(method: &str, uri: &str, timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    joined(&[
        method.as_bytes(),
        uri.as_bytes(),
        timestamp.as_bytes(),
        nonce.as_bytes(),
        body,
    ])
}

/// [`joined_by_line_feed`] of a few known pieces, in one allocation of the exact size (every
/// call signs one message and verifies another).
fn joined(pieces: &[&[u8]]) -> Vec<u8> {
    let size = pieces.iter().map(|p| p.len() + 1).sum();
    append_lines(Vec::with_capacity(size), pieces)
}

/// The response (and notification) message: `TIMESTAMP\nNONCE\nBODY\n`.
///
/// ```
/// assert_eq!(wechatpay_chain::formatter::response("1", "n", b"{}"), b"1\nn\n{}\n");
/// ```
pub fn response(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    joined(&[timestamp.as_bytes(), nonce.as_bytes(), body])
}

/// The `Authorization` header value of an APIv3 request.
///
/// ```
/// let v = wechatpay_chain::formatter::authorization("1900000001", "N", "S", "1", "SER");
/// assert_eq!(v, r#"WECHATPAY2-SHA256-RSA2048 mchid="1900000001",serial_no="SER",timestamp="1",nonce_str="N",signature="S""#);
/// ```
pub fn authorization(
    mchid: &str,
    nonce: &str,
    signature: &str,
    timestamp: &str,
    serial: &str,
) -> String {
    authorization_as(
        crate::v3::scheme::Scheme::Rsa,
        mchid,
        nonce,
        signature,
        timestamp,
        serial,
    )
}

/// [`authorization`] under `scheme`: `WECHATPAY2-SM2-WITH-SM3 mchid=…` for the 国密 scheme.
pub fn authorization_as(
    scheme: crate::v3::scheme::Scheme,
    mchid: &str,
    nonce: &str,
    signature: &str,
    timestamp: &str,
    serial: &str,
) -> String {
    let pieces = [
        scheme.name(),
        " mchid=\"",
        mchid,
        "\",serial_no=\"",
        serial,
        "\",timestamp=\"",
        timestamp,
        "\",nonce_str=\"",
        nonce,
        "\",signature=\"",
        signature,
        "\"",
    ];
    // One allocation of the exact size: every call sends one.
    let mut out = String::with_capacity(pieces.iter().map(|p| p.len()).sum());
    pieces.iter().for_each(|p| out.push_str(p));
    out
}

/// Sorts pairs by key in byte order, as PHP's `ksort($a, SORT_STRING)`: `"10" < "9" < "B" <
/// "a" < "a_b" < "ab"`. Stable, so equal keys keep their order.
pub fn ksort<K: AsRef<str>, V>(pairs: &mut [(K, V)]) {
    pairs.sort_by(|a, b| a.0.as_ref().as_bytes().cmp(b.0.as_ref().as_bytes()));
}

/// The APIv2 string to sign from (already sorted) pairs, as PHP's `queryStringLike`: `k=v`
/// joined by `&`, leaving out `sign` and empty values, with nothing URL-encoded.
///
/// ```
/// use wechatpay_chain::formatter::{ksort, query_string_like};
/// let mut pairs = vec![("mch_id", "10000100"), ("sign", "X"), ("body", "test"), ("attach", "")];
/// ksort(&mut pairs);
/// assert_eq!(query_string_like(&pairs), "body=test&mch_id=10000100");
/// ```
pub fn query_string_like<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref());
        if k == "sign" || v.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksort_is_byte_order() {
        let mut pairs: Vec<(&str, ())> = ["ab", "a_b", "a", "B", "9", "10"]
            .iter()
            .map(|k| (*k, ()))
            .collect();
        ksort(&mut pairs);
        let keys: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        assert_eq!(keys, ["10", "9", "B", "a", "a_b", "ab"]);
    }

    #[test]
    fn query_string_like_skips_sign_and_empty_and_does_not_encode() {
        let pairs = [
            ("a", "1 2&3"),
            ("b", ""),
            ("sign", "S"),
            ("url", "https://x/?y=1"),
        ];
        assert_eq!(query_string_like(&pairs), "a=1 2&3&url=https://x/?y=1");
        assert_eq!(query_string_like::<&str, &str>(&[]), "");
    }

    #[test]
    fn nonce_has_size_and_alphabet_and_varies() {
        let a = nonce(32);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(a, nonce(32));
        assert_eq!(nonce(0), "");
        assert_eq!(nonce(1000).len(), 1000);
    }

    #[test]
    fn nonce_is_not_biased() {
        // 62 symbols over 124,000 draws: each should appear ~2,000 times. With modulo bias
        // (256 % 62 = 8) the first 8 symbols would appear ~20% more often.
        let s = nonce(124_000);
        let mut counts = [0usize; 128];
        for b in s.bytes() {
            counts[b as usize] += 1;
        }
        let first = counts[b'0' as usize]
            + counts[b'1' as usize]
            + counts[b'2' as usize]
            + counts[b'3' as usize];
        let last = counts[b'w' as usize]
            + counts[b'x' as usize]
            + counts[b'y' as usize]
            + counts[b'z' as usize];
        let ratio = first as f64 / last as f64;
        assert!((0.9..1.1).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn messages_are_framed_by_line_feeds() {
        assert_eq!(
            request(
                "GET",
                "/v3/certificates",
                "1554208460",
                "593BEC0C930BF1AFEB40B4A08C8FB242",
                b""
            ),
            b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n".to_vec()
        );
        assert_eq!(response("1", "n", b"{}"), b"1\nn\n{}\n".to_vec());
        assert_eq!(
            authorization("1900000001", "N", "S", "1", "SER"),
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",serial_no=\"SER\",timestamp=\"1\",nonce_str=\"N\",signature=\"S\""
        );
    }
}
