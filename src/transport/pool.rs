//! One runtime's HTTP/1 connections (see the module above): the idle ones per origin, each
//! driven by a task on that runtime, and how a call takes one, or opens its own, and gives it
//! back.
//!
//! Written on hyper's connection API rather than hyper-util's legacy client because of what that
//! client does per call (issue 14): it spawns a task that puts the connection back once it is
//! ready again, and when no connection is idle it races a new connection against the next one to
//! come back, which opened about 1.5 connections per call in flight under load. Here a call
//! takes the most recently used idle connection or opens one of its own, and gives it back
//! itself once it has read the answer's body; no task is spawned per call.
//!
//! Kept from that client: a connection idle for [`IDLE_TIMEOUT`] is closed (by a task that runs
//! while idle connections exist and ends with the pool); a request refused by an idle
//! connection the server had closed (so never written) goes out on another one; the `Host`
//! header and the origin-form request target.
//!
//! Added (issue 19): a request is written on an idle connection only if nothing has arrived on
//! it since its last answer, however long it idled and whether or not its runtime ran since;
//! otherwise the connection is dropped and the request, handed back unwritten, goes out on
//! another one. The check is hyper's read before the write, made true by the connection's I/O
//! ([`tls::Conn`] over a `socket::Socket`), which this pool tells when the connection is idle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;

use super::tls;

type Sender = http1::SendRequest<Full<Bytes>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connection may stay idle before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    #[error("the address has no scheme or host")]
    NotAbsolute,
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    #[error("cannot start HTTP/1 on the connection")]
    Handshake(#[source] hyper::Error),
    /// The request failed on the connection (written or not): not retried here.
    #[error(transparent)]
    Send(hyper::Error),
}

/// A runtime's connections; clones share them.
#[derive(Clone)]
pub(crate) struct Pool(Arc<Inner>);

struct Inner {
    connector: tls::Connector,
    idle_timeout: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Few (a client talks to one or two hosts): found by a linear search, with no key built
    /// per call. Never removed, so a [`Lease`] names its origin by index.
    origins: Vec<Origin>,
    /// Held while the task closing idle connections runs: dropped with the pool, which ends
    /// that task.
    reaper: Option<tokio::sync::oneshot::Sender<()>>,
}

struct Origin {
    scheme: Scheme,
    authority: Authority,
    /// Its `Host` header, made once.
    host: HeaderValue,
    /// Oldest first: a call takes the last (the warmest), and the expired are at the front.
    idle: Vec<Idle>,
}

struct Idle {
    link: Link,
    since: Instant,
}

/// A connection, as the pool holds it.
struct Link {
    tx: Sender,
    /// Read by the connection's I/O (see [`tls::Conn`]): set while no request is on it.
    idle: Arc<AtomicBool>,
}

/// A connection in use by one call, which gives it back with [`Lease::release`] once it has
/// read the whole answer; dropped instead (a failure, a cancelled call), it closes.
pub(crate) struct Lease {
    pool: Pool,
    origin: usize,
    link: Link,
}

impl Lease {
    /// Back to the pool for the next call to this origin, unless the connection has closed.
    pub(crate) fn release(self) {
        if self.link.tx.is_closed() {
            return;
        }
        // From here on, anything the server writes on it was not asked for.
        self.link.idle.store(true, Ordering::Release);
        let mut state = self.pool.0.lock();
        state.origins[self.origin].idle.push(Idle {
            link: self.link,
            since: Instant::now(),
        });
        if state.reaper.is_none() {
            let (alive, gone) = tokio::sync::oneshot::channel();
            state.reaper = Some(alive);
            // On the runtime this pool belongs to: the call runs there.
            let first = self.pool.0.idle_timeout;
            drop(tokio::spawn(reap(
                Arc::downgrade(&self.pool.0),
                first,
                gone,
            )));
        }
    }
}

/// Closes idle connections as they expire, while any are idle; ends with the pool.
async fn reap(pool: Weak<Inner>, first: Duration, mut gone: tokio::sync::oneshot::Receiver<()>) {
    let mut wait = first;
    loop {
        if tokio::time::timeout(wait, &mut gone).await.is_ok() {
            return; // the pool was dropped
        }
        let Some(inner) = pool.upgrade() else { return };
        let timeout = inner.idle_timeout;
        let now = Instant::now();
        let mut closing = Vec::new();
        let mut state = inner.lock();
        let mut oldest = None::<Instant>;
        for origin in &mut state.origins {
            let expired = origin
                .idle
                .iter()
                .take_while(|i| now.duration_since(i.since) >= timeout)
                .count();
            closing.extend(origin.idle.drain(..expired));
            origin.idle.retain(|i| !i.link.tx.is_closed());
            if let Some(first) = origin.idle.first() {
                oldest = Some(oldest.map_or(first.since, |o| o.min(first.since)));
            }
        }
        match oldest {
            Some(since) => wait = (since + timeout).saturating_duration_since(now),
            None => {
                state.reaper = None;
                return;
            }
        }
        drop(state);
        drop(closing); // closes them, outside the lock
    }
}

impl Pool {
    pub(crate) fn new(connector: tls::Connector) -> Self {
        Self::with_timeout(connector, IDLE_TIMEOUT)
    }

    fn with_timeout(connector: tls::Connector, idle_timeout: Duration) -> Self {
        Pool(Arc::new(Inner {
            connector,
            idle_timeout,
            state: Mutex::new(State::default()),
        }))
    }

    /// Sends `req` (an absolute `http://` or `https://` address) on an idle connection to its
    /// origin, or on a new one; the answer's body is then read from the returned lease's
    /// connection.
    pub(crate) async fn send(
        &self,
        req: Request<Bytes>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        let (mut parts, body) = req.into_parts();
        let (origin, host) = self.origin(&parts.uri)?;
        let target = parts.uri.clone();
        if !parts.headers.contains_key(http::header::HOST) {
            parts.headers.insert(http::header::HOST, host);
        }
        parts.uri = origin_form(&target);
        let mut req = Request::from_parts(parts, Full::new(body));
        loop {
            // A reused connection may have been written on, or closed, by the server while it
            // was idle, and its runtime not running since: hyper reads it before writing the
            // request (the `Socket` under it sees what arrived), drops it if anything is there,
            // and hands the request back unwritten (below).
            let (mut link, reused) = match self.take(origin) {
                Some(link) => (link, true),
                None => (self.connect(&target).await?, false),
            };
            if let Err(e) = link.tx.ready().await {
                if reused {
                    continue; // closed while idle
                }
                return Err(PoolError::Send(e));
            }
            match link.tx.try_send_request(req).await {
                Ok(res) => {
                    let lease = Lease {
                        pool: self.clone(),
                        origin,
                        link,
                    };
                    return Ok((res, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection had closed, or had bytes nobody asked
                    // for; another one.
                    Some(back) if reused => req = back,
                    _ => return Err(PoolError::Send(e.into_error())),
                },
            }
        }
    }

    /// The index of `uri`'s origin (`scheme://authority`), added on first use, and its `Host`.
    fn origin(&self, uri: &Uri) -> Result<(usize, HeaderValue), PoolError> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(PoolError::NotAbsolute);
        };
        let mut state = self.0.lock();
        if let Some((i, o)) = state
            .origins
            .iter()
            .enumerate()
            .find(|(_, o)| o.scheme == *scheme && o.authority == *authority)
        {
            return Ok((i, o.host.clone()));
        }
        let host = host(uri)?;
        state.origins.push(Origin {
            scheme: scheme.clone(),
            authority: authority.clone(),
            host: host.clone(),
            idle: Vec::new(),
        });
        Ok((state.origins.len() - 1, host))
    }

    /// The most recently used idle connection to `origin` still open and not expired.
    fn take(&self, origin: usize) -> Option<Link> {
        let (timeout, now) = (self.0.idle_timeout, Instant::now());
        let mut state = self.0.lock();
        let idle = &mut state.origins[origin].idle;
        while let Some(i) = idle.pop() {
            if now.duration_since(i.since) >= timeout {
                // Expired, and every one before it is older: all closed, outside the lock.
                let closing = (std::mem::take(idle), i);
                drop(state);
                drop(closing);
                return None;
            }
            if !i.link.tx.is_closed() {
                return Some(i.link);
            }
        }
        None
    }

    /// A new connection to `target`'s origin, driven by a task on the current runtime.
    async fn connect(&self, target: &Uri) -> Result<Link, PoolError> {
        let mut connector = self.0.connector.clone();
        let io = tower_service::Service::call(&mut connector, target.clone())
            .await
            .map_err(PoolError::Connect)?;
        let idle = io.idle();
        let (tx, conn) = http1::handshake(io).await.map_err(PoolError::Handshake)?;
        drop(tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection closed");
            }
        }));
        Ok(Link { tx, idle })
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `Host` header of `uri`: its host, and its port unless the scheme's default (as
/// hyper-util's client sets it).
fn host(uri: &Uri) -> Result<HeaderValue, PoolError> {
    let host = uri.host().ok_or(PoolError::NotAbsolute)?;
    let default = match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let value = match uri.port_u16() {
        Some(port) if port != default => HeaderValue::from_str(&format!("{host}:{port}")),
        _ => HeaderValue::from_str(host),
    };
    value.map_err(|_| PoolError::NotAbsolute)
}

/// `/path?query` of `uri`, the request target of a request to an origin server.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
        _ => Uri::from_static("/"),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::transport::TlsConfig;

    /// What the test server does after each answer.
    #[derive(Clone, Copy, PartialEq)]
    enum Then {
        KeepAlive,
        /// Closes the connection, without saying so in the answer.
        Close,
        /// Answers with `Connection: close`, then closes.
        CloseHeader,
        /// Keep-alive, but waits 300 ms before each answer.
        Slow,
        /// Closes the connection when the test says so (after the client went idle).
        CloseWhenTold,
    }

    /// How a connection of the test server ended.
    #[derive(Debug, PartialEq)]
    enum Ended {
        ByClient,
        ByServer,
    }

    /// A raw HTTP/1.1 server on loopback: answers `ok` to every request, and reports each
    /// connection's end.
    fn server(then: Then) -> (SocketAddr, Arc<AtomicUsize>, mpsc::Receiver<Ended>) {
        let (addr, accepted, ended, _tell) = server_told(then);
        (addr, accepted, ended)
    }

    /// [`server`], and the sender that tells a `CloseWhenTold` server to close.
    fn server_told(
        then: Then,
    ) -> (
        SocketAddr,
        Arc<AtomicUsize>,
        mpsc::Receiver<Ended>,
        mpsc::Sender<()>,
    ) {
        let (tell, told) = mpsc::channel::<()>();
        let told = Arc::new(Mutex::new(told));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let tx = tx.clone();
                let told = told.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        // The request's head (the tests send no bodies).
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                let _ = tx.send(Ended::ByClient);
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                        }
                        if then == Then::Slow {
                            std::thread::sleep(Duration::from_millis(300));
                        }
                        let close = if then == Then::CloseHeader {
                            "Connection: close\r\n"
                        } else {
                            ""
                        };
                        let answer =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{close}\r\nok");
                        if stream.write_all(answer.as_bytes()).is_err() {
                            let _ = tx.send(Ended::ByClient);
                            return;
                        }
                        if then == Then::CloseWhenTold {
                            let _ = told.lock().unwrap().recv();
                        }
                        if matches!(then, Then::Close | Then::CloseHeader | Then::CloseWhenTold) {
                            let _ = stream.shutdown(std::net::Shutdown::Both);
                            let _ = tx.send(Ended::ByServer);
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted, rx, tell)
    }

    fn pool(idle_timeout: Duration) -> Pool {
        let tls = tls::LazyTls::new(Arc::new(TlsConfig::default()), false);
        Pool::with_timeout(tls::Connector::new(Arc::new(tls)), idle_timeout)
    }

    /// One call: the answer read whole, the connection given back.
    async fn get(pool: &Pool, addr: SocketAddr) -> Result<(), PoolError> {
        let req = Request::get(format!("http://{addr}/v3/x?a=1"))
            .body(Bytes::new())
            .unwrap();
        let (res, lease) = pool.send(req).await?;
        let body = res.into_body().collect().await.map_err(PoolError::Send)?;
        assert_eq!(body.to_bytes(), "ok");
        lease.release();
        Ok(())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[test]
    fn an_idle_connection_serves_the_next_call_and_closes_after_the_idle_timeout() {
        let (addr, accepted, ended) = server(Then::KeepAlive);
        let rt = runtime();
        let pool = pool(Duration::from_millis(300));
        rt.block_on(async {
            for _ in 0..5 {
                get(&pool, addr).await.unwrap();
            }
        });
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for five calls"
        );
        assert!(ended.try_recv().is_err(), "still open");
        // The runtime runs while the connection idles: the pool closes it.
        rt.block_on(async { tokio::time::sleep(Duration::from_millis(800)).await });
        assert_eq!(ended.recv_timeout(WAIT), Ok(Ended::ByClient));
        rt.block_on(get(&pool, addr)).unwrap();
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a new one after it expired"
        );
        // With nothing left idle the closing task ends; dropping the pool closes the rest.
        rt.block_on(tokio::task::yield_now());
        drop(pool);
        rt.block_on(tokio::task::yield_now());
        assert_eq!(ended.recv_timeout(WAIT), Ok(Ended::ByClient));
        assert_eq!(
            rt.metrics().num_alive_tasks(),
            0,
            "no task outlives the pool"
        );
    }

    #[test]
    fn a_connection_the_server_closed_while_idle_is_not_used_again() {
        for then in [Then::Close, Then::CloseHeader] {
            let (addr, accepted, ended) = server(then);
            let rt = runtime();
            let pool = pool(IDLE_TIMEOUT);
            rt.block_on(get(&pool, addr)).unwrap();
            assert_eq!(ended.recv_timeout(WAIT), Ok(Ended::ByServer));
            // The client's runtime has not run since the server closed: the request goes out
            // on the closed connection, which hands it back unsent, and then on a new one.
            std::thread::sleep(Duration::from_millis(50));
            rt.block_on(get(&pool, addr)).unwrap();
            // And after the client saw the close.
            rt.block_on(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                get(&pool, addr).await.unwrap();
            });
            assert_eq!(accepted.load(Ordering::SeqCst), 3);
        }
    }

    #[test]
    fn a_request_handed_back_by_a_connection_closed_while_idle_goes_out_on_another() {
        let (addr, accepted, ended, tell) = server_told(Then::CloseWhenTold);
        let rt = runtime();
        let pool = pool(IDLE_TIMEOUT);
        rt.block_on(get(&pool, addr)).unwrap();
        // Closed while the client's runtime is not running: when the next call starts, the
        // connection still looks open, takes the request, and hands it back unwritten.
        tell.send(()).unwrap();
        assert_eq!(ended.recv_timeout(WAIT), Ok(Ended::ByServer));
        std::thread::sleep(Duration::from_millis(50));
        rt.block_on(get(&pool, addr)).unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn each_origin_keeps_its_own_connections() {
        let (a, accepted_a, _) = server(Then::KeepAlive);
        let (b, accepted_b, _) = server(Then::KeepAlive);
        let rt = runtime();
        let pool = pool(IDLE_TIMEOUT);
        rt.block_on(async {
            for _ in 0..3 {
                get(&pool, a).await.unwrap();
                get(&pool, b).await.unwrap();
            }
        });
        assert_eq!(accepted_a.load(Ordering::SeqCst), 1);
        assert_eq!(accepted_b.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_call_dropped_before_its_answer_closes_its_connection() {
        let (addr, accepted, ended) = server(Then::Slow);
        let rt = runtime();
        let pool = pool(IDLE_TIMEOUT);
        rt.block_on(async {
            let call = tokio::time::timeout(Duration::from_millis(50), get(&pool, addr));
            assert!(call.await.is_err(), "timed out");
            get(&pool, addr).await.unwrap();
        });
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "not the cancelled call's"
        );
        assert_eq!(ended.recv_timeout(WAIT), Ok(Ended::ByClient));
    }

    #[test]
    fn refusals_name_their_cause() {
        let rt = runtime();
        let pool = pool(IDLE_TIMEOUT);
        let req = |u: &str| Request::get(u).body(Bytes::new()).unwrap();
        let e = rt.block_on(pool.send(req("/v3/x"))).err().unwrap();
        assert!(matches!(e, PoolError::NotAbsolute), "{e}");
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = rt
            .block_on(pool.send(req(&format!("http://{closed}/"))))
            .err()
            .unwrap();
        assert!(matches!(e, PoolError::Connect(_)), "{e}");
        assert_eq!(e.to_string(), "cannot connect");
    }

    #[test]
    fn host_and_origin_form_as_hyper_util_sets_them() {
        let h = |u: &str| host(&u.parse().unwrap()).unwrap();
        assert_eq!(
            h("https://api.mch.weixin.qq.com/v3/x"),
            "api.mch.weixin.qq.com"
        );
        assert_eq!(
            h("https://api.mch.weixin.qq.com:443/v3/x"),
            "api.mch.weixin.qq.com"
        );
        assert_eq!(h("http://127.0.0.1:8080/v3/x"), "127.0.0.1:8080");
        assert_eq!(h("http://127.0.0.1:80/"), "127.0.0.1");
        assert_eq!(h("https://127.0.0.1:80/"), "127.0.0.1:80");
        assert_eq!(h("http://[::1]:9000/"), "[::1]:9000");
        let o = |u: &str| origin_form(&u.parse().unwrap()).to_string();
        assert_eq!(o("https://h/v3/a/b?c=d&e=f"), "/v3/a/b?c=d&e=f");
        assert_eq!(o("https://h/"), "/");
        assert_eq!(o("https://h"), "/");
        assert_eq!(o("https://h/?a=1"), "/?a=1");
    }
}
