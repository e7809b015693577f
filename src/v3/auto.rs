//! The state of automatic certificate refreshing that a client keeps (the APIv3 key, the
//! interval, when it last ran, what it added); the refreshing itself is in
//! [`certificates`](super::certificates).

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::crypto::Certificate;

/// The least time between two refreshes caused by unknown serials.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(60);

/// The APIv3 key: 32 bytes, never printed.
#[derive(Clone)]
pub(crate) struct ApiV3Key(pub(crate) String);

impl std::fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiV3Key(redacted)")
    }
}

/// State of automatic refreshing.
pub(crate) struct Auto {
    pub(crate) key: ApiV3Key,
    pub(crate) interval: Duration,
    pub(crate) last: Mutex<Option<Instant>>,
    pub(crate) busy: AtomicBool,
    pub(crate) told_unavailable: AtomicBool,
    /// Certificates this refresher added, so it can drop them when they expire.
    pub(crate) managed: Mutex<Vec<Certificate>>,
    /// The periodic refresher's thread, woken to stop when the client goes away.
    pub(crate) refresher: Mutex<Option<std::thread::Thread>>,
}

impl Drop for Auto {
    fn drop(&mut self) {
        if let Some(t) = self.refresher.lock().ok().and_then(|mut t| t.take()) {
            t.unpark();
        }
    }
}

impl Auto {
    pub(crate) fn new(key: String, interval: Duration) -> Auto {
        Auto {
            key: ApiV3Key(key),
            interval,
            last: Mutex::new(None),
            busy: AtomicBool::new(false),
            told_unavailable: AtomicBool::new(false),
            managed: Mutex::new(Vec::new()),
            refresher: Mutex::new(None),
        }
    }

    /// Whether an unknown serial may cause a refresh now (not busy, not within the gap).
    pub(crate) fn may_refresh(&self) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        match *last {
            Some(t) if t.elapsed() < MIN_REFRESH_GAP => false,
            _ => {
                *last = Some(Instant::now());
                true
            }
        }
    }
}
