//! The HTTP side: accepts loopback connections (at most [`Limits::max_connections`] at once;
//! in TLS mode, after a handshake bounded in time, with what the client presented), reads each
//! request whole (headers and body each within [`Limits::header_read_timeout`], the body at
//! most [`MAX_BODY`]), turns away those not meant for it ([`guard`](crate::http::guard)), sends the
//! others to the control endpoints, the APIv2 handlers, or (after the platform's signature
//! check) the APIv3 operations, records each (in a log bounded in bytes, its listing
//! included), and renders the answer signed, written within [`Limits::write_timeout`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::http::answer::{render, render_for, Answer};
use crate::http::base::Platform;
use crate::http::faults;
use crate::http::guard;
use crate::http::received::Received;
use crate::http::request::{Kind, Req};
use crate::http::tls::ClientCertificate;
use crate::util::lock;

/// SHA-256 of no bytes: the digest logged for a request without a body (every GET).
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Largest request body read (an upload is at most 2 MiB plus its meta).
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// What keeps a long-running emulator (`wechatpay serve`) from being exhausted by its clients:
/// set with [`EmulatorConfig`](crate::EmulatorConfig)'s methods of the same names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a connection may take to send a request's headers (from when it opens, or
    /// from the previous answer on a kept-alive connection), and then its body: a stalled or
    /// idle connection is closed after it.
    pub header_read_timeout: Duration,
    /// How long an answer may wait for its client to take it, from the first write that has
    /// to wait until it is flushed: a client that does not read loses the connection, and its
    /// slot.
    pub write_timeout: Duration,
    /// Connections served at once. Those beyond wait, not yet accepted, until one closes: a
    /// flood of silent connections holds every slot for at most `header_read_timeout`.
    pub max_connections: usize,
    /// The request log's size in bytes ([`Received::kept_bytes`]); the oldest records go first.
    pub max_log_bytes: usize,
    /// Bodies longer than this are logged as their first `log_body_prefix` bytes, with their
    /// length and SHA-256.
    pub log_body_prefix: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_log_bytes: 64 * 1024 * 1024,
            log_body_prefix: 64 * 1024,
        }
    }
}

/// Serves `shared` on `listener` until `shutdown`: what each request is answered with is the
/// platform's ([`Platform::respond`]), the routes are not this room's.
pub(crate) async fn serve<P: Platform>(
    listener: TcpListener,
    shared: Arc<P>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(
        shared.settings.limits.max_connections.max(1),
    ));
    loop {
        // A free slot first: connections beyond the cap wait in the listen backlog, and each
        // served one frees its slot within the read timeout if it sends nothing.
        let slot = tokio::select! {
            _ = shutdown.changed() => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait a little rather than spin.
                tracing::warn!("emulator accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        // Without it, an answer written right after TLS 1.3's session tickets waits for the
        // client's delayed ACK of them (Nagle): 40 ms per new connection.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let Some(tls) = &shared.settings.tls else {
                return connection(stream, ClientCertificate::Plain, shared.clone(), stop).await;
            };
            match tls.accept(stream).await {
                Ok((stream, client)) => connection(stream, client, shared.clone(), stop).await,
                Err(why) => tracing::debug!("emulator dropped a connection: {why}"),
            }
        });
    }
}

/// Serves the requests of one connection until it closes or the emulator stops.
async fn connection<S, P: Platform>(
    io: S,
    client: ClientCertificate,
    shared: Arc<P>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.settings.limits;
    let svc = service_fn(move |req| {
        let (shared, client) = (shared.clone(), client.clone());
        async move { handle(shared, client, req).await }
    });
    let io = WriteDeadline::new(io, limits.write_timeout);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// The path prefixes of the documented bases other than `https://api.mch.weixin.qq.com/`:
/// cross-border operations are documented under `https://api.mch.weixin.qq.com/hk/` and
/// `https://apihk.mch.weixin.qq.com/global/`, so an SDK sends them as `/hk/v3/…` and
/// `/global/v3/…`. (The other documented hosts, `apihk.`, `fraud.` and `payapp.`, add no prefix.)
pub(crate) const BASE_PREFIXES: [&str; 2] = ["hk", "global"];

/// `target` without a documented base's prefix when one comes before `v2/` or `v3/`
/// (`/hk/v3/refunds?x` is `/v3/refunds?x`); other targets as they are.
pub(crate) fn route(target: &str) -> &str {
    for prefix in BASE_PREFIXES {
        if let Some(rest) = target
            .strip_prefix('/')
            .and_then(|t| t.strip_prefix(prefix))
            .filter(|r| r.starts_with("/v3/") || r.starts_with("/v2/"))
        {
            return rest;
        }
    }
    target
}

/// A connection whose answers must be written in time: once the client stops taking an answer
/// (a write waits, the socket's buffers full), the answer must be flushed within `limit`, else
/// the write fails and hyper closes the connection. A client that asks and never reads holds
/// its slot no longer than that. Public for `wechatpay listen`, which bounds its answers alike.
pub struct WriteDeadline<S> {
    io: S,
    limit: Duration,
    /// Running from the first write of the answer that had to wait, until it is flushed.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    /// `io`, each of whose answers must be taken within `limit` once a write has to wait.
    pub fn new(io: S, limit: Duration) -> Self {
        WriteDeadline {
            io,
            limit,
            deadline: None,
        }
    }
}

impl<S: AsyncWrite + Unpin> WriteDeadline<S> {
    /// Runs a write operation; one that has to wait starts the deadline (unless it runs) and
    /// fails once it has passed.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        op: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        let ready = op(Pin::new(&mut self.io), cx);
        if ready.is_ready() {
            return ready;
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the peer did not take the answer within {limit:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.timed(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.timed(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = self.timed(cx, |io, cx| io.poll_flush(cx));
        if flushed.is_ready() {
            // The answer is out: the next one gets a deadline of its own.
            self.deadline = None;
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.timed(cx, |io, cx| io.poll_shutdown(cx))
    }
}

/// Percent-decodes one path segment or query part; `None` when not valid UTF-8 or escapes.
pub(crate) fn decode(s: &str, plus_is_space: bool) -> Option<String> {
    // most segments have nothing to decode: copied as they are (already UTF-8)
    if !(s.contains('%') || plus_is_space && s.contains('+')) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn handle<P: Platform>(
    shared: Arc<P>,
    client: ClientCertificate,
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, faults::Dropped> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let limits = shared.settings.limits;
    let read = tokio::time::timeout(
        limits.header_read_timeout,
        Limited::new(body, MAX_BODY).collect(),
    );
    let body = match read.await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(_)) => {
            let a = Answer::error(413, "PARAM_ERROR", "the request body is too large");
            return Ok(render(&shared.settings, a, true, None));
        }
        Err(_) => {
            let a = Answer::error(408, "PARAM_ERROR", "the request body was not sent in time");
            return Ok(render(&shared.settings, a, true, None));
        }
    };
    let route = route(&target).to_string();
    let path = route.split('?').next().unwrap_or("");
    let segments: Option<Vec<String>> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| decode(s, false))
        .collect();
    let query: Option<Vec<(String, String)>> = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((decode(k, true)?, decode(v, true)?))
        })
        .collect();
    let req = Req {
        method: parts.method,
        authority: parts.uri.authority().map(|a| a.as_str().to_string()),
        segments: segments.unwrap_or_default(),
        target,
        route,
        query: query.unwrap_or_default(),
        headers: parts.headers,
        body,
        client,
    };
    let (answer, kind, refusal, signature, fired) = match guard::admit(&shared, &req) {
        Ok(()) => P::respond(&shared, &req).await,
        Err((answer, why)) => (answer, Kind::Control, Some(why), None, None),
    };
    let record = Received {
        // numbered by the log
        seq: 0,
        method: req.method.to_string(),
        target: req.target.clone(),
        headers: guard::redacted(&req.headers),
        // copied, not sliced: a slice would keep the whole body (or read buffer) alive
        body: Bytes::copy_from_slice(&req.body[..req.body.len().min(limits.log_body_prefix)]),
        body_len: req.body.len(),
        body_sha256: match req.body.is_empty() {
            true => EMPTY_SHA256.to_string(),
            false => wechatpay_chain::crypto::hash::hex(&openssl::sha::sha256(&req.body)),
        },
        verified: refusal.is_none(),
        refusal: refusal.clone(),
        signature,
        client_certificate: req.client.verified().map(str::to_string),
        status: answer.status.as_u16(),
        fault: fired.as_ref().map(|f| f.spec.clone()),
    };
    lock(&shared.received).push(record, limits.max_log_bytes);
    if let Some(why) = &refusal {
        tracing::debug!(target = %req.target, "emulator refused a request: {why}");
    }
    // An unsigned answer (a bill file) leaves the forgery for the next signed one.
    let forgery = match kind {
        Kind::V3 if !answer.unsigned && !shared.forgeries.is_empty() => {
            shared.forgeries.lock().pop_front()
        }
        _ => None,
    };
    let named = req.header("wechatpay-serial");
    let render = || render_for(&shared.settings, answer, kind != Kind::V2, forgery, named);
    // signed in the scheme of the merchant who signed the request (in a sandbox of one scheme,
    // every answer alike)
    let mixed = !shared.settings.one_scheme();
    let signer = mixed.then(|| crate::http::mixed::mchid_in(req.header("authorization")));
    let res = match signer.flatten() {
        Some(mchid) => crate::http::merchants::with_signer(mchid, render),
        None => render(),
    };
    faults::after(fired.and_then(|f| f.after), res, shared.stop.clone()).await
}

#[cfg(test)]
mod tests {
    use super::{decode, route};

    #[test]
    fn documented_base_prefixes_route_to_their_operation() {
        assert_eq!(route("/hk/v3/refunds?offset=0"), "/v3/refunds?offset=0");
        assert_eq!(route("/global/v3/customs/orders"), "/v3/customs/orders");
        assert_eq!(route("/hk/v2/pay/orderquery"), "/v2/pay/orderquery");
        for same in [
            "/v3/refunds",
            "/hk",
            "/hk/",
            "/hkv3/x",
            "/hk/emulator/x",
            "/x/v3/y",
        ] {
            assert_eq!(route(same), same);
        }
    }

    #[test]
    fn the_empty_digest_is_sha256_of_nothing() {
        let empty = wechatpay_chain::crypto::hash::hex(&openssl::sha::sha256(b""));
        assert_eq!(super::EMPTY_SHA256, empty);
    }

    #[test]
    fn decodes_without_panicking() {
        assert_eq!(decode("a%20b", false).unwrap(), "a b");
        assert_eq!(decode("a+b", true).unwrap(), "a b");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("%E4%BD%A0", false).unwrap(), "你");
        assert_eq!(decode("你+好", false).unwrap(), "你+好");
        assert_eq!(decode("out-trade-no", true).unwrap(), "out-trade-no");
        for bad in ["%", "%4", "%zz", "%FF", "%e4%bd%"] {
            assert!(decode(bad, false).is_none(), "{bad}");
        }
    }
}
