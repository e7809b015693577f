//! SM3 (GB/T 32905), the 国密 scheme's digest, beside [`hash`](super::hash)'s SHA-256: what
//! downloads and bills are checked with when the platform says `hash_type: SM3`.

use sm3::Digest;

use super::hash::hex;

/// An SM3 digest fed in parts (a download checked as it streams).
///
/// ```
/// use wechatpay_chain::crypto::sm3::{sm3_hex, Sm3};
/// let mut h = Sm3::new();
/// h.update("a");
/// h.update("bc");
/// assert_eq!(h.finish_hex(), sm3_hex("abc"));
/// ```
#[derive(Clone, Default)]
pub struct Sm3(sm3::Sm3);

impl std::fmt::Debug for Sm3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sm3")
    }
}

impl Sm3 {
    /// An empty digest.
    pub fn new() -> Sm3 {
        Sm3::default()
    }

    /// Takes the next bytes.
    pub fn update(&mut self, data: impl AsRef<[u8]>) {
        self.0.update(data.as_ref());
    }

    /// The 32-byte digest.
    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }

    /// The digest as lowercase hex, the form the platform's `hash_value` takes.
    pub fn finish_hex(self) -> String {
        hex(&self.finish())
    }
}

/// The SM3 digest of `data`.
pub fn sm3(data: impl AsRef<[u8]>) -> [u8; 32] {
    let mut h = Sm3::new();
    h.update(data);
    h.finish()
}

/// Lowercase hex SM3 of `data`.
///
/// ```
/// use wechatpay_chain::crypto::sm3::sm3_hex;
/// // GB/T 32905-2016, example 1.
/// assert_eq!(sm3_hex("abc"), "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0");
/// ```
pub fn sm3_hex(data: impl AsRef<[u8]>) -> String {
    hex(&sm3(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_vectors() {
        // GB/T 32905-2016, examples 1 and 2.
        assert_eq!(
            sm3_hex("abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(
            sm3_hex("abcd".repeat(16)),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
        let mut h = Sm3::new();
        for _ in 0..16 {
            h.update(b"abcd");
        }
        assert_eq!(h.finish(), sm3("abcd".repeat(16)));
    }
}
