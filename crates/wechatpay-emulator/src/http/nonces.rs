//! The nonces of the APIv3 requests accepted in the last `2 × MAX_CLOCK_SKEW` seconds, so that
//! a replayed request is refused: amortized O(1) per request (a set to look up, a queue in the
//! order they were spent to expire from the front), and memory bounded by the requests of one
//! window. A request's timestamp is at most `MAX_CLOCK_SKEW` from the clock when it is
//! accepted, and again when replayed, so a nonce kept for twice that after it was spent catches
//! every replay.
//!
//! Each nonce is kept as a 128-bit keyed hash (two SipHash keys drawn at start) rather than its
//! text: about 45 bytes a nonce however long it is (16 in the set at its load factor, 24 in the
//! queue), and no collision to fear (about 2^-88 for a window of a million nonces).

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, RandomState};

/// A nonce's 128-bit keyed hash, as two words (a `u128` would pad each queue entry to 32 bytes).
type Key = [u64; 2];

/// The nonces spent, with when.
pub(crate) struct Nonces {
    /// How long a nonce is kept after it was spent, in seconds.
    window: i64,
    keys: (RandomState, RandomState),
    spent: HashSet<Key>,
    /// `(when spent, nonce)`, oldest first (`when` never goes back, even if the clock does).
    order: VecDeque<(i64, Key)>,
}

impl Nonces {
    /// A store keeping each nonce `window` seconds after it was spent.
    pub fn new(window: i64) -> Nonces {
        Nonces {
            window,
            keys: (RandomState::new(), RandomState::new()),
            spent: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    fn key(&self, nonce: &str) -> Key {
        [self.keys.0.hash_one(nonce), self.keys.1.hash_one(nonce)]
    }

    /// Spends `nonce` at `now` (seconds): `true` the first time in the window, `false` for a
    /// replay. First forgets the nonces spent more than the window ago.
    pub fn spend(&mut self, nonce: &str, now: i64) -> bool {
        while let Some(&(when, old)) = self.order.front() {
            if now.saturating_sub(when) <= self.window {
                break;
            }
            self.order.pop_front();
            self.spent.remove(&old);
        }
        let key = self.key(nonce);
        if !self.spent.insert(key) {
            return false;
        }
        let when = self.order.back().map_or(now, |&(last, _)| last.max(now));
        self.order.push_back((when, key));
        // Give back the room of a burst once it has expired.
        if self.spent.capacity() > 1024 && self.spent.capacity() > 4 * self.spent.len() {
            self.spent.shrink_to(2 * self.spent.len());
            self.order.shrink_to(2 * self.order.len());
        }
        true
    }

    /// How many nonces are remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Nonces;

    #[test]
    fn a_nonce_is_spent_once_within_the_window() {
        let mut n = Nonces::new(600);
        assert!(n.spend("A", 1000));
        assert!(!n.spend("A", 1000), "replay at once");
        assert!(!n.spend("A", 1600), "replay at the window's end");
        assert!(n.spend("B", 1600));
        assert!(n.spend("a", 1600), "nonces are compared as written");
    }

    #[test]
    fn nonces_expire_after_the_window_oldest_first() {
        let mut n = Nonces::new(600);
        assert!(n.spend("A", 1000));
        assert!(n.spend("B", 1300));
        assert_eq!(n.len(), 2);
        // A is forgotten, B not yet
        assert!(n.spend("C", 1601));
        assert_eq!(n.len(), 2);
        assert!(!n.spend("B", 1601));
        assert!(n.spend("A", 1601), "A spent again once it expired");
        // everything older than 600 s goes
        assert!(n.spend("D", 2300));
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn a_clock_that_goes_back_keeps_nonces_longer_not_shorter() {
        let mut n = Nonces::new(600);
        assert!(n.spend("A", 1000));
        assert!(n.spend("B", 900), "the clock went back 100 s");
        // B counts as spent at 1000: kept until 1600, as A is
        assert!(!n.spend("B", 1500));
        assert!(!n.spend("A", 1600));
        assert!(n.spend("C", 1601));
        assert!(n.spend("A", 1601));
        assert!(n.spend("B", 1601));
    }

    #[test]
    fn memory_is_bounded_by_one_window() {
        let mut n = Nonces::new(600);
        for i in 0..100_000i64 {
            // 100 requests a second for 1000 s
            assert!(n.spend(&format!("N{i}"), i / 100));
        }
        assert!(n.len() <= 601 * 100, "{}", n.len());
        assert!(n.spent.capacity() <= 4 * 601 * 100);
        // a quiet minute after the window forgets them all
        assert!(n.spend("last", 2000));
        assert_eq!(n.len(), 1);
        assert!(n.spent.capacity() < 1024 * 2);
    }
}
