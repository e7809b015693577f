//! What the HTTP room itself needs of the running platform ([`Base`]), and what it asks of
//! the rooms above it ([`Platform`]): the server is handed a platform and never names a route.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::http::nonces::Nonces;
use crate::http::received::RequestLog;
use crate::http::request::{Req, Responded};
use crate::http::settings::{Forgery, Settings};

/// The part of the platform's shared state that requests, answers and signatures need.
pub(crate) struct Base {
    pub settings: Settings,
    pub received: Mutex<RequestLog>,
    pub forgeries: Forgeries,
    /// The nonces of the requests accepted in the last 600 s ([`Nonces`]).
    pub nonces: Mutex<Nonces>,
    pub runtime: tokio::runtime::Handle,
    /// Turns true when the emulator stops (pending notifications give up).
    pub stop: watch::Receiver<bool>,
}

/// The forgeries queued for the next APIv3 answers ([`Emulator::forge_next`](crate::Emulator::forge_next)).
#[derive(Default)]
pub(crate) struct Forgeries {
    queue: Mutex<VecDeque<Forgery>>,
    /// How many are queued: with none (nearly always), an answer takes no lock to find that
    /// out (two threads taking one lock per answer pass its line between cores).
    queued: AtomicUsize,
}

impl Forgeries {
    pub fn push(&self, forgery: Forgery) {
        let mut q = crate::util::lock(&self.queue);
        q.push_back(forgery);
        self.queued.store(q.len(), Ordering::Release);
    }

    /// The forgery for the next answer, if one is queued.
    pub fn next(&self) -> Option<Forgery> {
        if self.queued.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut q = crate::util::lock(&self.queue);
        let next = q.pop_front();
        self.queued.store(q.len(), Ordering::Release);
        next
    }
}

/// The platform the server serves: its [`Base`], and the answer to an admitted request.
pub(crate) trait Platform: Deref<Target = Base> + Send + Sync + 'static {
    /// The answer to `req` (already admitted by the guard), with what the server records.
    fn respond(this: &Arc<Self>, req: &Req) -> impl Future<Output = Responded> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgeries_come_out_in_the_order_queued_and_none_after() {
        let f = Forgeries::default();
        assert_eq!(f.next(), None);
        f.push(Forgery::TamperedBody);
        f.push(Forgery::WrongKey);
        assert_eq!(f.next(), Some(Forgery::TamperedBody));
        assert_eq!(f.next(), Some(Forgery::WrongKey));
        assert_eq!(f.next(), None);
        assert_eq!(f.queued.load(Ordering::Acquire), 0);
    }
}
