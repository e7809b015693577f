//! The one pooled hyper client a `Client` and all its clones share, on a small current-thread
//! runtime of the crate's own, never dropped (a runtime dropped inside another runtime's task
//! would panic).
//!
//! Who drives it: while a program makes blocking calls one at a time (a script, the command
//! line), each call drives it itself on its own thread (`Runtime::block_on`), so a blocking call
//! costs no thread hand-off at all. Async calls, overlapping blocking calls, and blocking calls
//! made inside a runtime (where a nested `block_on` would panic) are spawned onto it and driven
//! by a dedicated thread, started the first time one is needed; from then on every call goes
//! through that thread. Either way there is one pool, and connections never belong to a
//! caller's runtime, so they never outlive one.

use std::cell::Cell;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::{LazyLock, OnceLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::error::Error;

pub(crate) mod policy;
pub(crate) mod retry;
pub(crate) mod tls;

pub(crate) use tls::{Identity, TlsConfig};

type Pool = HyperClient<tls::Connector, Full<Bytes>>;

// The failures are kept (shared: every later call reports the same cause) as error sources.
static RUNTIME: LazyLock<Result<Runtime, Arc<std::io::Error>>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Arc::new)
});

/// The dedicated driver thread, once started.
static DRIVER: OnceLock<Result<(), Arc<std::io::Error>>> = OnceLock::new();

/// Threads inside [`block_on`] right now.
static INLINE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// True while this thread drives the I/O runtime in [`block_on`].
    static DRIVING: Cell<bool> = const { Cell::new(false) };
}

fn runtime() -> Result<&'static Runtime, Error> {
    RUNTIME
        .as_ref()
        .map_err(|e| Error::config_from("cannot start the I/O runtime", e.clone()))
}

/// Spawns onto the I/O runtime. Unless this thread is driving it right now, the dedicated
/// driver thread is started (once) so that the task makes progress.
pub(crate) fn spawn<F>(f: F) -> Result<JoinHandle<F::Output>, Error>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt = runtime()?;
    if !DRIVING.get() {
        let started = DRIVER.get_or_init(|| {
            std::thread::Builder::new()
                .name("wechatpay-io".into())
                .spawn(move || rt.block_on(std::future::pending::<()>()))
                .map(|_| ())
                .map_err(Arc::new)
        });
        started
            .clone()
            .map_err(|e| Error::config_from("cannot start the I/O thread", e))?;
    }
    Ok(rt.spawn(f))
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub body_limit: usize,
}

/// Pooled HTTP(S) connections: a plain pool, and for APIv2 `security` calls a pool that
/// presents the merchant certificate. Each pool builds its TLS context on its first `https://`
/// connection (see [`tls`]): an `http://` base never loads the trust store.
#[derive(Clone)]
pub(crate) struct Transport {
    plain: Pool,
    secure: Option<Pool>,
    #[cfg(test)]
    tls: Vec<Arc<tls::LazyTls>>,
}

fn pool(tls: Arc<tls::LazyTls>) -> Pool {
    HyperClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(tls::Connector::new(tls))
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
            plain: pool(plain.clone()),
            secure: secure.clone().map(pool),
            #[cfg(test)]
            tls: std::iter::once(plain).chain(secure).collect(),
        }
    }

    /// Whether any of the pools has built its TLS context (tests).
    #[cfg(test)]
    pub(crate) fn tls_built(&self) -> bool {
        self.tls.iter().any(|t| t.is_built())
    }

    /// Whether a merchant identity was configured for `security` calls.
    pub(crate) fn has_identity(&self) -> bool {
        self.secure.is_some()
    }

    /// Sends `req` on the I/O runtime; the returned future can be awaited on any runtime and
    /// cancels the exchange when dropped.
    pub(crate) fn send(
        &self,
        req: http::Request<Bytes>,
        secure: bool,
        limits: Limits,
    ) -> Result<Exchange, Error> {
        let pool = self.pool(secure)?;
        if DRIVING.get() {
            // This thread drives the runtime: the exchange runs right here, no hand-off.
            Ok(Exchange::Inline(Box::pin(exchange(pool, req, limits))))
        } else {
            Ok(Exchange::Spawned(spawn(exchange(pool, req, limits))?))
        }
    }

    fn pool(&self, secure: bool) -> Result<Pool, Error> {
        if secure {
            self.secure.clone().ok_or_else(|| {
                Error::config("this call needs the merchant certificate (security): set Builder::merchant_identity")
            })
        } else {
            Ok(self.plain.clone())
        }
    }
}

/// Sends `req` on `pool` and returns the answer's head: the one place a request goes out, and a
/// failure before any answer becomes [`Error::Transport`] naming `uri`.
async fn send(
    pool: &Pool,
    req: http::Request<Bytes>,
    uri: &http::Uri,
) -> Result<http::Response<hyper::body::Incoming>, Error> {
    let (parts, body) = req.into_parts();
    pool.request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| Error::Transport {
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
        let res = send(&pool, req, &uri).await?;
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

/// An exchange under way: run in place by the thread driving the runtime, or as a task on it;
/// dropping it cancels the exchange.
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

/// Waits `d` on the I/O runtime's timer, so it works from any runtime and from [`block_on`].
pub(crate) async fn sleep(d: Duration) -> Result<(), Error> {
    if DRIVING.get() {
        tokio::time::sleep(d).await;
        return Ok(());
    }
    // Made inside the task: a `Sleep` registers with the timer of the runtime it is made on.
    spawn(async move { tokio::time::sleep(d).await })?
        .await
        .map_err(|e| Error::config_from("the I/O task failed", e))
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
/// tokio runtime the thread drives the I/O runtime itself; inside one (a worker of the caller's
/// runtime, say), where a nested `block_on` would panic, it parks while the driver thread does
/// the I/O: that blocks the worker, as any blocking call does, but cannot panic or deadlock.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    // In place only for one thread at a time, before any driver thread: with two threads taking
    // turns on the scheduler, a connection could be checked back into the pool late and another
    // opened. The first overlap starts the driver thread, and every call goes through it after.
    let alone = INLINE.fetch_add(1, Ordering::AcqRel) == 0;
    struct Leave;
    impl Drop for Leave {
        fn drop(&mut self) {
            INLINE.fetch_sub(1, Ordering::AcqRel);
            DRIVING.set(false);
        }
    }
    let _leave = Leave;
    match runtime() {
        Ok(rt)
            if alone
                && !DRIVING.get()
                && DRIVER.get().is_none()
                && tokio::runtime::Handle::try_current().is_err() =>
        {
            DRIVING.set(true);
            rt.block_on(f)
        }
        // Without a runtime, `f` meets the same error when it sends, and returns it.
        _ => park_on(f),
    }
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
        let pool = self.pool(secure)?;
        let uri = req.uri().clone();
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let task_uri = uri.clone();
        let task = spawn(async move {
            let uri = task_uri;
            let res = match tokio::time::timeout(limits.timeout, send(&pool, req, &uri)).await {
                Ok(Ok(res)) => res,
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
                    Err(_) => Some(Err(timed_out(&uri, limits.timeout, true))),
                    Ok(None) => None,
                    Ok(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => Some(Ok(data)),
                        Err(_) => continue, // trailers
                    },
                    Ok(Some(Err(e))) => Some(Err(Error::Transport {
                        uri: uri.to_string(),
                        source: Box::new(e),
                        answered: true,
                    })),
                };
                let Some(item) = item else { break };
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    break;
                }
            }
        });
        let task = AbortOnDrop(task?);
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
