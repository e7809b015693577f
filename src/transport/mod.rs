//! Where a call's I/O runs, and the pools of connections a `Client` and all its clones share.
//!
//! A connection belongs to the tokio runtime whose tasks drive it, and is kept in a pool of that
//! runtime: each `Client` keeps one pool per runtime its calls have run on, keyed by the
//! runtime's [`Id`], and shared by all its clones. So no connection is ever
//! used from a runtime other than its own, and none outlives its runtime. How a call takes a
//! connection from a runtime's pool and gives it back is [`mod@pool`]'s.
//!
//! - An async call awaited on a tokio runtime does its I/O right there, on the caller's task
//!   and runtime (hyper's connection tasks are spawned on it): no hand-off between threads. The
//!   first call of a client on a runtime leaves a small task on it that removes that runtime's
//!   pool when the runtime shuts down (or ends when the client is dropped). A runtime without
//!   IO or timers enabled cannot drive a socket: its calls go to the background runtime below.
//! - A blocking call made outside any runtime drives one of the crate's own current-thread
//!   runtimes on the calling thread (`Runtime::block_on`): the socket is written and read by the
//!   thread that signs and verifies, with no hand-off. A thread keeps the runtime it drove for
//!   its next blocking call, so its sequential calls reuse one warm connection even while other
//!   threads call; a thread's first call takes a runtime from a free list (filled by threads
//!   that ended) or makes one, so there are as many as threads that make blocking calls, up to
//!   [`MAX_BLOCKING_RUNTIMES`].
//! - A blocking call made inside a runtime (where a nested `block_on` would panic), an async
//!   call polled outside any tokio runtime, and calls on a runtime without IO or timers use
//!   the background runtime: a current-thread runtime driven by a thread of its own, started
//!   the first time it is needed; the caller waits for its answer.
//!
//! The crate's runtimes are never dropped (a runtime dropped inside another runtime's task
//! would panic), so their connections live as long as their pools.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tokio::runtime::{Handle, Id, Runtime};
use tokio::task::JoinHandle;

use crate::error::Error;

pub(crate) mod policy;
mod pool;
pub(crate) mod retry;
mod socket;
pub(crate) mod tls;

pub(crate) use tls::{Identity, TlsConfig};

use pool::{Lease, Pool};

/// How the calling thread is taking part in a call right now.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Not inside a blocking call: an async call uses the runtime it is polled on.
    Free,
    /// Driving one of the crate's blocking runtimes in [`block_on`]: the I/O runs here.
    Driving,
    /// Parked in [`block_on`] while the background runtime does the I/O.
    Parked,
}

thread_local! {
    static MODE: Cell<Mode> = const { Cell::new(Mode::Free) };
    /// The blocking runtime this thread drives its blocking calls on, kept between them; back
    /// on the free list when the thread ends. Never driven twice at once: a blocking call made
    /// while the thread drives it is `Mode::Driving`, and parks instead.
    static MINE: RefCell<Option<Owned>> = const { RefCell::new(None) };
}

/// Restores the thread's mode when a blocking call ends, however it ends.
struct Restore(Mode);

impl Drop for Restore {
    fn drop(&mut self) {
        MODE.set(self.0);
    }
}

fn enter(mode: Mode) -> Restore {
    Restore(MODE.replace(mode))
}

fn current_thread() -> std::io::Result<Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

// The failures are kept (shared: every later call reports the same cause) as error sources.
static BACKGROUND: LazyLock<Result<Runtime, Arc<std::io::Error>>> =
    LazyLock::new(|| current_thread().map_err(Arc::new));

/// The background runtime's driver thread, once started.
static DRIVER: OnceLock<Result<(), Arc<std::io::Error>>> = OnceLock::new();

/// The background runtime, its driver thread started (once).
fn background() -> Result<&'static Runtime, Error> {
    let rt = BACKGROUND
        .as_ref()
        .map_err(|e| Error::config_from("cannot start the I/O runtime", e.clone()))?;
    DRIVER
        .get_or_init(|| {
            std::thread::Builder::new()
                .name("wechatpay-io".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map(|_| ())
                .map_err(Arc::new)
        })
        .clone()
        .map_err(|e| Error::config_from("cannot start the I/O thread", e))?;
    Ok(rt)
}

/// The crate's blocking runtimes kept by no thread (their threads ended).
static IDLE: Mutex<Vec<&'static Runtime>> = Mutex::new(Vec::new());

/// How many blocking runtimes exist.
static MADE: AtomicUsize = AtomicUsize::new(0);

/// At most this many threads keep a blocking runtime of their own; the blocking calls of
/// threads beyond wait on the background runtime.
const MAX_BLOCKING_RUNTIMES: usize = 256;

/// A blocking runtime kept by this thread, back on the free list when the thread ends.
struct Owned(&'static Runtime);

impl Drop for Owned {
    fn drop(&mut self) {
        IDLE.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(self.0);
    }
}

/// This thread's blocking runtime: the one it kept, else one from the free list or a new one
/// (then kept); `None` when the thread cannot have one (its thread-locals being destroyed, or
/// the limit reached).
fn mine() -> Option<&'static Runtime> {
    MINE.try_with(|mine| {
        let mut mine = mine.borrow_mut();
        if mine.is_none() {
            *mine = lend().map(Owned);
        }
        mine.as_ref().map(|owned| owned.0)
    })
    .ok()
    .flatten()
}

/// A runtime from the free list, or a new one while fewer than the limit exist.
fn lend() -> Option<&'static Runtime> {
    if let Some(rt) = IDLE.lock().unwrap_or_else(PoisonError::into_inner).pop() {
        return Some(rt);
    }
    if MADE.fetch_add(1, Ordering::AcqRel) >= MAX_BLOCKING_RUNTIMES {
        MADE.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    match current_thread() {
        // Never dropped: see the module's docs.
        Ok(rt) => Some(Box::leak(Box::new(rt))),
        Err(e) => {
            MADE.fetch_sub(1, Ordering::AcqRel);
            tracing::debug!(error = %e, "cannot start a blocking runtime; using the background one");
            None
        }
    }
}

/// Whether the current runtime can drive sockets and timers (built with IO and time enabled):
/// tokio has no query for it, only a panic on first use, caught here once per client and
/// runtime.
fn drivable() -> bool {
    std::panic::catch_unwind(|| {
        drop(tokio::time::sleep(Duration::ZERO));
        #[cfg(unix)]
        if let Ok(s) = std::os::unix::net::UnixDatagram::unbound() {
            if s.set_nonblocking(true).is_ok() {
                drop(tokio::net::UnixDatagram::from_std(s));
            }
        }
    })
    .is_ok()
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub body_limit: usize,
}

/// Where an exchange runs: on the current runtime, in place, or on the background runtime.
enum Route {
    Here(Pool),
    Background(Pool),
}

/// One runtime's pool of a [`Pools`]; `None` for a runtime that cannot drive sockets.
struct Entry {
    pool: Option<Pool>,
    /// Tells this entry apart from a later one of the same runtime.
    token: u64,
    /// Dropped with the entry (the client gone): ends the task that watches the runtime.
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
}

static TOKENS: AtomicU64 = AtomicU64::new(0);

/// The pools of one kind (plain, or presenting the merchant certificate), one per runtime.
struct Pools {
    tls: Arc<tls::LazyTls>,
    /// Read on every call, written once per runtime: a reader never waits for another (with 64
    /// threads on two cores, a thread holding a mutex here is often preempted).
    by_runtime: RwLock<HashMap<Id, Entry>>,
}

/// Removes a runtime's pool when the runtime shuts down: held by a task on that runtime, which
/// the shutdown drops.
struct Forget {
    pools: Weak<Pools>,
    id: Id,
    token: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        let Some(pools) = self.pools.upgrade() else {
            return;
        };
        let removed = {
            let mut map = pools
                .by_runtime
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if map.get(&self.id).is_some_and(|e| e.token == self.token) {
                map.remove(&self.id)
            } else {
                None
            }
        };
        // Its connections close outside the lock.
        drop(removed);
    }
}

impl Pools {
    fn new(tls: Arc<tls::LazyTls>) -> Arc<Self> {
        Arc::new(Pools {
            tls,
            by_runtime: RwLock::new(HashMap::new()),
        })
    }

    fn lookup(&self, id: Id) -> Option<Option<Pool>> {
        self.by_runtime
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .map(|e| e.pool.clone())
    }

    /// The pool of runtime `handle`, made on first use; `ours`: a runtime of the crate's own,
    /// never shut down and always able to drive sockets.
    fn of(self: &Arc<Self>, handle: &Handle, ours: bool) -> Option<Pool> {
        let id = handle.id();
        if let Some(pool) = self.lookup(id) {
            return pool;
        }
        let pool = (ours || drivable()).then(|| pool(self.tls.clone()));
        let token = TOKENS.fetch_add(1, Ordering::Relaxed);
        let (stop, stopped) = if ours {
            (None, None)
        } else {
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            (Some(tx), Some(rx))
        };
        {
            let mut map = self
                .by_runtime
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(e) = map.get(&id) {
                // Another thread of the same runtime was first.
                return e.pool.clone();
            }
            map.insert(
                id,
                Entry {
                    pool: pool.clone(),
                    token,
                    _stop: stop,
                },
            );
        }
        if let Some(stopped) = stopped {
            // Spawned after the insertion and outside the lock: a runtime already shutting down
            // drops the task (and so removes the entry) at once.
            let forget = Forget {
                pools: Arc::downgrade(self),
                id,
                token,
            };
            drop(handle.spawn(async move {
                let _forget = forget;
                let _ = stopped.await;
            }));
        }
        pool
    }

    /// Where this thread's exchange runs, and on which pool.
    fn route(self: &Arc<Self>) -> Result<Route, Error> {
        let here = match MODE.get() {
            Mode::Parked => None,
            Mode::Driving => Handle::try_current().ok().and_then(|h| self.of(&h, true)),
            Mode::Free => Handle::try_current().ok().and_then(|h| self.of(&h, false)),
        };
        match here {
            Some(pool) => Ok(Route::Here(pool)),
            None => {
                let bg = background()?;
                let pool = self.of(bg.handle(), true).ok_or_else(|| {
                    Error::config("the background I/O runtime cannot drive sockets")
                })?;
                Ok(Route::Background(pool))
            }
        }
    }

    #[cfg(test)]
    fn count(&self) -> usize {
        self.by_runtime
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|e| e.pool.is_some())
            .count()
    }
}

fn pool(tls: Arc<tls::LazyTls>) -> Pool {
    Pool::new(tls::Connector::new(tls))
}

/// Pooled HTTP(S) connections: a plain pool, and for APIv2 `security` calls a pool that
/// presents the merchant certificate, each one per runtime (see the module's docs). Each
/// builds its TLS context on its first `https://` connection (see [`tls`]): an `http://` base
/// never loads the trust store.
#[derive(Clone)]
pub(crate) struct Transport {
    plain: Arc<Pools>,
    secure: Option<Arc<Pools>>,
    #[cfg(test)]
    tls: Vec<Arc<tls::LazyTls>>,
}

impl Transport {
    /// `config.roots` are trusted beside the system's, by both pools; `config.identity`, when
    /// set, is presented by the `security` pool.
    pub(crate) fn new(config: TlsConfig) -> Self {
        let config = Arc::new(config);
        let plain = Arc::new(tls::LazyTls::new(config.clone(), false));
        let secure = config
            .identity
            .is_some()
            .then(|| Arc::new(tls::LazyTls::new(config.clone(), true)));
        Transport {
            plain: Pools::new(plain.clone()),
            secure: secure.clone().map(Pools::new),
            #[cfg(test)]
            tls: std::iter::once(plain).chain(secure).collect(),
        }
    }

    /// Whether any of the pools has built its TLS context (tests).
    #[cfg(test)]
    pub(crate) fn tls_built(&self) -> bool {
        self.tls.iter().any(|t| t.is_built())
    }

    /// How many runtimes the plain pools are kept for (tests).
    #[cfg(test)]
    pub(crate) fn runtimes(&self) -> usize {
        self.plain.count()
    }

    /// Whether a merchant identity was configured for `security` calls.
    pub(crate) fn has_identity(&self) -> bool {
        self.secure.is_some()
    }

    /// Sends `req`: in place on the current runtime, or on the background runtime (see the
    /// module's docs). The future cancels the exchange when dropped.
    pub(crate) fn send(
        &self,
        req: http::Request<Bytes>,
        secure: bool,
        limits: Limits,
    ) -> Result<Exchange, Error> {
        match self.pools(secure)?.route()? {
            Route::Here(pool) => Ok(Exchange::Inline(Box::pin(exchange(pool, req, limits)))),
            Route::Background(pool) => Ok(Exchange::Spawned(
                background()?.spawn(exchange(pool, req, limits)),
            )),
        }
    }

    /// Waits `d` (between retries) on the timer of the runtime this call's I/O runs on.
    pub(crate) async fn sleep(&self, d: Duration) -> Result<(), Error> {
        match self.plain.route()? {
            Route::Here(_) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
            // Made inside the task: a `Sleep` registers with the timer of the runtime it is
            // made on.
            Route::Background(_) => background()?
                .spawn(async move { tokio::time::sleep(d).await })
                .await
                .map_err(|e| Error::config_from("the I/O task failed", e)),
        }
    }

    fn pools(&self, secure: bool) -> Result<&Arc<Pools>, Error> {
        if secure {
            self.secure.as_ref().ok_or_else(|| {
                Error::config("this call needs the merchant certificate (security): set Builder::merchant_identity")
            })
        } else {
            Ok(&self.plain)
        }
    }
}

/// Sends `req` on `pool` and returns the answer's head, and the connection to read its body
/// from and give back: the one place a request goes out, and a failure before any answer
/// becomes [`Error::Transport`] naming `uri`.
async fn send(
    pool: &Pool,
    req: http::Request<Bytes>,
    uri: &http::Uri,
) -> Result<(http::Response<hyper::body::Incoming>, Lease), Error> {
    pool.send(req).await.map_err(|e| Error::Transport {
        uri: uri.to_string(),
        source: Box::new(e),
        answered: false,
    })
}

fn timed_out(uri: &http::Uri, after: Duration, answered: bool) -> Error {
    Error::Timeout {
        uri: uri.to_string(),
        after,
        answered,
    }
}

async fn exchange(
    pool: Pool,
    req: http::Request<Bytes>,
    limits: Limits,
) -> Result<http::Response<Bytes>, Error> {
    // Kept as a `Uri` (reference-counted parts): it is formatted only for an error.
    let uri = req.uri().clone();
    let answered = std::sync::atomic::AtomicBool::new(false);
    let work = async {
        let (res, lease) = send(&pool, req, &uri).await?;
        answered.store(true, std::sync::atomic::Ordering::Relaxed);
        let (parts, body) = res.into_parts();
        let too_large = || Error::BodyTooLarge {
            uri: uri.to_string(),
            limit: limits.body_limit,
        };
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limits.body_limit as u64 {
                return Err(too_large());
            }
        }
        let collected = Limited::new(body, limits.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    too_large()
                } else {
                    Error::Transport {
                        uri: uri.to_string(),
                        source: e,
                        answered: true,
                    }
                }
            })?;
        lease.release();
        Ok(http::Response::from_parts(parts, collected.to_bytes()))
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(
            &uri,
            limits.timeout,
            answered.load(std::sync::atomic::Ordering::Relaxed),
        )),
    }
}

type Answer = Result<http::Response<Bytes>, Error>;

/// An exchange under way: run in place on the current runtime, or as a task on the background
/// runtime; dropping it cancels the exchange.
pub(crate) enum Exchange {
    Inline(Pin<Box<dyn Future<Output = Answer> + Send>>),
    Spawned(JoinHandle<Answer>),
}

impl Future for Exchange {
    type Output = Answer;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Answer> {
        match &mut *self {
            Exchange::Inline(f) => f.as_mut().poll(cx),
            Exchange::Spawned(h) => Pin::new(h).poll(cx).map(|r| match r {
                Ok(r) => r,
                Err(e) => Err(Error::config_from("the I/O task failed", e)),
            }),
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if let Exchange::Spawned(h) = self {
            h.abort();
        }
    }
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a call's future to completion on the calling thread, for the blocking API. Outside any
/// tokio runtime the thread drives a blocking runtime of the crate's own itself (the I/O runs
/// here); inside one (a worker of the caller's runtime, say), where a nested `block_on` would
/// panic, it parks while the background runtime does the I/O: that blocks the worker, as any
/// blocking call does, but cannot panic or deadlock.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    if MODE.get() == Mode::Free && Handle::try_current().is_err() {
        if let Some(rt) = mine() {
            let _mode = enter(Mode::Driving);
            return rt.block_on(f);
        }
    }
    let _mode = enter(Mode::Parked);
    park_on(f)
}

/// Polls `f` on the calling thread, parking between polls; the I/O is driven elsewhere.
fn park_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// An answer whose body arrives chunk by chunk, for downloads larger than the body limit: the
/// I/O task sends at most a few chunks ahead (backpressure), and dropping the stream aborts it.
pub(crate) struct Stream {
    pub parts: http::response::Parts,
    pub uri: String,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, Error>>,
    _task: AbortOnDrop,
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Stream {
    /// The next chunk of the body; `None` at its end. Each chunk must arrive within the
    /// call's timeout of the one before.
    pub(crate) async fn next(&mut self) -> Option<Result<Bytes, Error>> {
        self.rx.recv().await
    }

    /// The rest of the body, bounded by `limit` (for error answers and signed bodies).
    pub(crate) async fn collect(&mut self, limit: usize) -> Result<Bytes, Error> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.next().await {
            let chunk = chunk?;
            if out.len() + chunk.len() > limit {
                return Err(Error::BodyTooLarge {
                    uri: self.uri.clone(),
                    limit,
                });
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }
}

impl Transport {
    /// Sends `req` and returns once the answer's head has arrived (within the timeout); the body
    /// then streams, with the timeout applying between chunks rather than to the whole.
    pub(crate) async fn send_streaming(
        &self,
        req: http::Request<Bytes>,
        secure: bool,
        limits: Limits,
    ) -> Result<Stream, Error> {
        let route = self.pools(secure)?.route()?;
        let uri = req.uri().clone();
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let task_uri = uri.clone();
        let task = move |pool: Pool| async move {
            let uri = task_uri;
            let (res, lease) =
                match tokio::time::timeout(limits.timeout, send(&pool, req, &uri)).await {
                    Ok(Ok(sent)) => sent,
                    Ok(Err(e)) => {
                        let _ = head_tx.send(Err(e));
                        return;
                    }
                    Err(_) => {
                        let _ = head_tx.send(Err(timed_out(&uri, limits.timeout, false)));
                        return;
                    }
                };
            let (parts, mut body) = res.into_parts();
            if head_tx.send(Ok(parts)).is_err() {
                return;
            }
            loop {
                let item = match tokio::time::timeout(limits.timeout, body.frame()).await {
                    Err(_) => Err(timed_out(&uri, limits.timeout, true)),
                    Ok(None) => {
                        // The whole body read: the connection can serve the next call.
                        lease.release();
                        break;
                    }
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue, // trailers
                    },
                    Ok(Some(Err(e))) => Err(Error::Transport {
                        uri: uri.to_string(),
                        source: Box::new(e),
                        answered: true,
                    }),
                };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        };
        // On the runtime whose pool the connection comes from.
        let task = AbortOnDrop(match route {
            Route::Here(pool) => tokio::spawn(task(pool)),
            Route::Background(pool) => background()?.spawn(task(pool)),
        });
        let parts = head_rx
            .await
            .map_err(|e| Error::config_from("the I/O task stopped", e))??;
        Ok(Stream {
            parts,
            uri: uri.to_string(),
            rx,
            _task: task,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(t: &Transport) -> impl Future<Output = Answer> + Send + 'static {
        // Port 9 on loopback: refused (or timed out); the route is what is tested.
        let req = http::Request::get("http://127.0.0.1:9/")
            .body(Bytes::new())
            .unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(5),
            body_limit: 1024,
        };
        let t = t.clone();
        async move { t.send(req, false, limits)?.await }
    }

    #[test]
    fn a_runtimes_pool_goes_with_the_runtime_and_its_watcher_with_the_client() {
        let t = Transport::new(TlsConfig::default());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(attempt(&t));
        let _ = rt.block_on(attempt(&t));
        assert_eq!(t.runtimes(), 1, "one pool for the runtime");
        drop(rt);
        assert_eq!(t.runtimes(), 0, "the pool went with its runtime");

        // Blocking calls keep pools of the crate's own runtimes, never removed.
        let _ = block_on(attempt(&t));
        assert_eq!(t.runtimes(), 1);

        // The task watching a user's runtime ends when the client is dropped.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(attempt(&t));
        assert_eq!(t.runtimes(), 2);
        assert!(rt.metrics().num_alive_tasks() >= 1);
        drop(t);
        let left = rt.block_on(async {
            let alive = || {
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks()
            };
            for _ in 0..100_000 {
                if alive() == 0 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            alive()
        });
        assert_eq!(left, 0, "the watcher ended with the client");
    }
}
