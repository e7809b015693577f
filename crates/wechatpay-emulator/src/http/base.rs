//! What the HTTP room itself needs of the running platform ([`Base`]), and what it asks of
//! the rooms above it ([`Platform`]): the server is handed a platform and never names a route.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::http::nonces::Nonces;
use crate::http::received::RequestLog;
use crate::http::request::{Req, Responded};
use crate::http::settings::{Forgery, Settings};
use crate::util::Counted;

/// The part of the platform's shared state that requests, answers and signatures need.
pub(crate) struct Base {
    pub settings: Settings,
    pub received: Mutex<RequestLog>,
    /// Forgeries queued for the next APIv3 answers ([`Emulator::forge_next`](crate::Emulator::forge_next)).
    pub forgeries: Counted<VecDeque<Forgery>>,
    /// The nonces of the requests accepted in the last 600 s ([`Nonces`]).
    pub nonces: Mutex<Nonces>,
    pub runtime: tokio::runtime::Handle,
    /// Turns true when the emulator stops (pending notifications give up).
    pub stop: watch::Receiver<bool>,
}

/// The platform the server serves: its [`Base`], and the answer to an admitted request.
pub(crate) trait Platform: Deref<Target = Base> + Send + Sync + 'static {
    /// The answer to `req` (already admitted by the guard), with what the server records.
    fn respond(this: &Arc<Self>, req: &Req) -> impl Future<Output = Responded> + Send;
}
