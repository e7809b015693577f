//! The HTTP side: accepts loopback connections (at most [`Limits::max_connections`] at once;
//! in TLS mode, after a handshake bounded in time, with what the client presented), reads each
//! request whole (headers and body each within [`Limits::header_read_timeout`], the body at
//! most [`MAX_BODY`]), turns away those not meant for it ([`guard`](super::guard)), sends the
//! others to the control endpoints, the APIv2 handlers, or (after the platform's signature
//! check) the APIv3 operations, records each (in a log bounded in bytes, its listing
//! included), and renders the answer signed, written within [`Limits::write_timeout`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use super::answer::{render, render_for, Answer};
use super::diagnosis::SignatureRefusal;
use super::faults::{self, Effect, Fired};
use super::tls::ClientCertificate;
use super::{
    auth, bills, brand, certificates, combine, control, discount_card, documented, guard, lock,
    media, partner, pay, profitsharing, refund, transfer, v2, v2_documented, Received, Shared,
    MAX_RECORDS,
};
use wechatpay_chain::formatter;

/// Largest request body read (an upload is at most 2 MiB plus its meta).
pub(crate) const MAX_BODY: usize = 8 * 1024 * 1024;

/// What keeps a long-running emulator (`wechatpay serve`) from being exhausted by its clients:
/// set with [`EmulatorConfig`](super::EmulatorConfig)'s methods of the same names.
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

/// The requests received, in the order of their `seq`, bounded in count ([`MAX_RECORDS`]) and
/// in bytes ([`Received::kept_bytes`], which counts the record's listing too).
#[derive(Default)]
pub(crate) struct RequestLog {
    items: VecDeque<Logged>,
    bytes: usize,
    /// The `seq` of the last record pushed.
    last: u64,
}

/// A record with its sizes, counted once.
struct Logged {
    record: Received,
    /// [`Received::kept_bytes`].
    kept: usize,
    /// [`Received::listed_bytes`].
    listed: usize,
}

impl RequestLog {
    /// Numbers `r` (so that the log stays in `seq` order whichever handler gets here first),
    /// appends it, then drops the oldest records until both bounds hold.
    pub fn push(&mut self, mut r: Received, max_bytes: usize) {
        self.last += 1;
        r.seq = self.last;
        let listed = r.listed_bytes();
        let kept = r.held_bytes() + listed;
        self.bytes += kept;
        self.items.push_back(Logged {
            record: r,
            kept,
            listed,
        });
        while self.items.len() > MAX_RECORDS || self.bytes > max_bytes {
            match self.items.pop_front() {
                Some(old) => self.bytes -= old.kept,
                None => break,
            }
        }
    }

    /// The records numbered after `seq`.
    pub fn after(&self, seq: u64) -> Vec<Received> {
        let start = self.items.partition_point(|l| l.record.seq <= seq);
        self.items
            .range(start..)
            .map(|l| l.record.clone())
            .collect()
    }

    /// A page of the listing: the records numbered after `seq`, at most `limit` of them and,
    /// past the first, at most `max_bytes` of listing; and whether more follow.
    pub fn page(&self, seq: u64, limit: usize, max_bytes: usize) -> (Vec<Received>, bool) {
        let start = self.items.partition_point(|l| l.record.seq <= seq);
        let (mut page, mut bytes) = (Vec::new(), 0);
        for l in self.items.range(start..) {
            if page.len() == limit || (!page.is_empty() && bytes + l.listed > max_bytes) {
                return (page, true);
            }
            bytes += l.listed;
            page.push(l.record.clone());
        }
        (page, false)
    }
}

/// A request read whole.
pub(crate) struct Req {
    pub method: Method,
    /// Path and query as received (what the request's signature covers).
    pub target: String,
    /// `target` without a documented base's path prefix ([`BASE_PREFIXES`]): the operation's
    /// own path, which routes it.
    pub route: String,
    /// The authority of an absolute request target (`GET http://host:port/… HTTP/1.1`).
    pub authority: Option<String>,
    /// Percent-decoded path segments of `route`.
    pub segments: Vec<String>,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the connection's client presented (TLS mode).
    pub client: ClientCertificate,
}

impl Req {
    /// The first query value named `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Which rules an answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    V3,
    V2,
    Control,
}

pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
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
async fn connection<S>(
    io: S,
    client: ClientCertificate,
    shared: Arc<Shared>,
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

async fn handle(
    shared: Arc<Shared>,
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
        Ok(()) => respond(&shared, &req).await,
        Err((answer, why)) => (answer, Kind::Control, Some(why), None, None),
    };
    let record = Received {
        // numbered by the log
        seq: 0,
        method: req.method.to_string(),
        target: req.target.clone(),
        headers: guard::redacted(&req.headers),
        body: req.body.slice(..req.body.len().min(limits.log_body_prefix)),
        body_len: req.body.len(),
        body_sha256: wechatpay_chain::crypto::hash::hex(&openssl::sha::sha256(&req.body)),
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
        Kind::V3 if !answer.unsigned => lock(&shared.forgeries).pop_front(),
        _ => None,
    };
    let named = req.header("wechatpay-serial");
    let res = render_for(&shared.settings, answer, kind != Kind::V2, forgery, named);
    faults::after(fired.and_then(|f| f.after), res, shared.stop.clone()).await
}

/// The answer, its kind, why the request was refused (if it was), for a refused signature the
/// diagnosis, and what a fault still does to the answer.
type Responded = (
    Answer,
    Kind,
    Option<String>,
    Option<SignatureRefusal>,
    Option<Fired>,
);

async fn respond(shared: &Arc<Shared>, req: &Req) -> Responded {
    let first = req.segments.first().map(String::as_str);
    match first {
        Some("emulator") => (
            control::handle(shared, req),
            Kind::Control,
            None,
            None,
            None,
        ),
        Some("v3") => {
            let multipart = match media::parse(&req.headers, &req.body).await {
                Ok(m) => m,
                Err(a) => {
                    let why = Some("unreadable multipart body".into());
                    return (a, Kind::V3, why, None, None);
                }
            };
            let signed: &[u8] = match &multipart {
                Some(m) => &m.meta,
                None => &req.body,
            };
            if let Err(refused) = auth::check(
                shared,
                req.method.as_str(),
                &req.target,
                req.header("authorization"),
                signed,
                formatter::timestamp(),
            ) {
                let why = format!("{}: {}", refused.check, refused.reason);
                return (
                    Answer::sign_error(&refused.reason),
                    Kind::V3,
                    Some(why),
                    Some(refused),
                    None,
                );
            }
            // A request carrying fields encrypted for the platform names its key.
            if let Some(serial) = req.header("wechatpay-serial") {
                if !shared.settings.knows_serial(serial) {
                    let a = Answer::param_error(
                        "/Wechatpay-Serial",
                        "header",
                        "平台证书序列号Wechatpay-Serial错误 (not the platform's key)",
                        serde_json::Value::from(serial),
                    );
                    return (a, Kind::V3, None, None, None);
                }
            }
            // the platform took the call: a fault may spoil it now
            let path = req.route.split('?').next().unwrap_or("");
            let effect = faults::on_call(
                &shared.faults,
                req.method.as_str(),
                path.trim_start_matches('/'),
                |status, code, message| Answer::error(status, code, message),
            );
            let (answer, after) = faults::apply(effect, || dispatch(shared, req, multipart));
            (answer, Kind::V3, None, None, after)
        }
        _ => {
            let effect = v2_fault(shared, req);
            let (mut kind, mut refusal) = (Kind::V2, None);
            let (answer, after) = faults::apply(effect, || match v2::handle(shared, req) {
                Some((answer, why)) => {
                    refusal = why;
                    answer
                }
                None => {
                    kind = Kind::V3;
                    not_found(req)
                }
            });
            (answer, kind, refusal, None, after)
        }
    }
}

/// The fault of an APIv2 call the platform takes (its certificate, sign and merchant
/// admitted), its error answered as `result_code` FAIL signed in the request's sign type.
fn v2_fault(shared: &Arc<Shared>, req: &Req) -> Option<(Effect, String)> {
    let path = format!("v2{}", req.route.split('?').next().unwrap_or(""));
    let method = req.method.as_str();
    let subject = faults::Subject::Call {
        method,
        path: &path,
    };
    if !shared.faults.any_for(&subject) {
        return None;
    }
    let op = v2_documented::operation(req)?;
    let admitted = v2_documented::admit(shared, req, op).ok()?;
    faults::on_call(&shared.faults, method, &path, |_, code, message| {
        v2::business(shared, admitted.kind, &admitted.data, code, message)
    })
}

fn not_found(req: &Req) -> Answer {
    Answer::error(
        404,
        "NOT_FOUND",
        format!(
            "the emulator has no operation {} {}",
            req.method,
            req.target.split('?').next().unwrap_or("")
        ),
    )
}

fn dispatch(shared: &Arc<Shared>, req: &Req, multipart: Option<media::Parts>) -> Answer {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let body = &req.body;
    match (req.method.as_str(), &segs[1..]) {
        ("POST", ["discount-card", "cards"]) => discount_card::create(shared, body),
        ("GET", ["discount-card", "cards", code]) => discount_card::card(shared, code),
        ("POST", ["discount-card", "cards", code, "add-user-records"]) => {
            discount_card::add_user_records(shared, code, body)
        }
        ("PATCH", ["discount-card", "orders", no]) => discount_card::update(shared, no, body),
        ("GET", ["discount-card", "orders", "out-trade-no", no]) => {
            discount_card::query_by_trade_no(shared, no)
        }
        ("GET", ["discount-card", "orders", no]) => discount_card::query(shared, no),
        ("POST", ["brand", "partner", "card-member", "user-points", "sync"]) => {
            brand::sync_points(shared, body)
        }
        ("POST", ["pay", "transactions", kind @ ("native" | "jsapi" | "app" | "h5")]) => {
            pay::create(shared, kind, body)
        }
        ("GET", ["pay", "transactions", "out-trade-no", no]) => {
            pay::query(shared, pay::By::OutTradeNo(no), req)
        }
        ("GET", ["pay", "transactions", "id", id]) => pay::query(shared, pay::By::Id(id), req),
        ("POST", ["pay", "transactions", "out-trade-no", no, "close"]) => {
            pay::close(shared, no, body)
        }
        ("POST", ["refund", "domestic", "refunds"]) => refund::create(shared, body),
        ("GET", ["refund", "domestic", "refunds", no]) => {
            refund::query(shared, no, req.query("sub_mchid"))
        }
        (
            "POST",
            ["pay", "partner", "transactions", kind @ ("native" | "jsapi" | "app" | "h5")],
        ) => partner::create(shared, kind, req),
        ("GET", ["pay", "partner", "transactions", "out-trade-no", no]) => {
            partner::query(shared, partner::By::OutTradeNo(no), req)
        }
        ("GET", ["pay", "partner", "transactions", "id", id]) => {
            partner::query(shared, partner::By::Id(id), req)
        }
        ("POST", ["pay", "partner", "transactions", "out-trade-no", no, "close"]) => {
            partner::close(shared, no, req)
        }
        ("POST", ["combine-transactions", kind @ ("native" | "jsapi" | "app" | "h5")]) => {
            combine::create(shared, kind, req)
        }
        ("GET", ["combine-transactions", "out-trade-no", no]) => combine::query(shared, no),
        ("GET", ["combine-transactions", "id", id]) => combine::query_by_id(shared, id),
        ("POST", ["combine-transactions", "out-trade-no", no, "close"]) => {
            combine::close(shared, no, req)
        }
        ("GET", ["certificates"]) => certificates::list(shared),
        ("GET", ["bill", "tradebill"]) => bills::trade_bill(shared, req),
        ("GET", ["bill", "fundflowbill"]) => bills::fund_flow_bill(shared, req),
        ("GET", ["bill", "sub-merchant-fundflowbill"]) => {
            bills::sub_merchant_fund_flow_bill(shared, req)
        }
        ("GET", ["billdownload", "file"]) => bills::download(shared, req),
        ("POST", ["merchant", "media", "upload"]) => media::upload(shared, multipart),
        // the flows routed by their own modules, then every other documented APIv3
        // operation: a documented answer
        _ => transfer::route(shared, req, &segs[1..])
            .or_else(|| profitsharing::route(shared, req, &segs[1..]))
            .or_else(|| documented::answer(shared, req, multipart.as_ref()))
            .unwrap_or_else(|| not_found(req)),
    }
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
    fn decodes_without_panicking() {
        assert_eq!(decode("a%20b", false).unwrap(), "a b");
        assert_eq!(decode("a+b", true).unwrap(), "a b");
        assert_eq!(decode("a+b", false).unwrap(), "a+b");
        assert_eq!(decode("%E4%BD%A0", false).unwrap(), "你");
        for bad in ["%", "%4", "%zz", "%FF", "%e4%bd%"] {
            assert!(decode(bad, false).is_none(), "{bad}");
        }
    }
}
