//! `wechatpay listen`: a notification receiver on loopback. It verifies each notification with
//! the configured platform keys, decrypts it, prints it (or why it was refused), answers the
//! platform's way, and with `--forward-to` passes the original bytes and end-to-end headers
//! on to the merchant's handler and returns its answer.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use wechatpay_chain::client_xml::SignType;
use wechatpay_chain::crypto::AesGcm;
use wechatpay_chain::notify::{Notifier, Refusal};
use wechatpay_chain::{notify_v2, transformer, Error, Keyring};
use wechatpay_emulator::events::{self, Sender, Wire};
use wechatpay_emulator::WriteDeadline;

const AFTER_HELP: &str = "\
APIv3 notifications are verified with the platform keys (--public-key with --public-key-id,
or --platform-cert, as for calls) and decrypted with the APIv3 key; APIv2 ones are verified
with the APIv2 key, a refund's req_info decrypted with it. Each is printed: its type, time
and resource as JSON, or why it was refused. Answers: APIv3 204 when verified, 401 (400 for
a malformed body) with {\"code\",\"message\"} when refused; APIv2 XML return_code SUCCESS or FAIL.

With --forward-to every notification, refused or not, goes on to the handler byte for byte
with its headers (but those of one hop: Connection and the headers it names, Keep-Alive,
TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*); listen prints the handler's answer
(without control characters), says when it accepts what listen refused (or the reverse),
and returns that answer to the sender.

Exposed through a tunnel, listen is bounded: a connection has --header-read-timeout seconds
to send a notification's headers, then as long for its body (else 408), and as long to take
each answer; at most --max-connections are served at once (the others wait to be accepted);
a body over --max-body-bytes is refused with 413.

The first line printed is `listening on http://127.0.0.1:PORT/`. SIGINT or SIGTERM stops it.";

/// `wechatpay listen`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct ListenArgs {
    /// Port on 127.0.0.1 (0: any free port, printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// The merchant's handler to pass every notification on to (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub forward_to: Option<String>,
    /// The sign type expected of APIv2 notifications; by default the one the document names
    /// in sign_type (or algorithm), else MD5.
    #[arg(long, value_enum, value_name = "TYPE")]
    pub v2_sign_type: Option<SignTypeArg>,
    /// Platform public key (path), with --public-key-id.
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY")]
    pub public_key: Option<String>,
    /// Platform public key id (PUB_KEY_ID_…).
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY_ID")]
    pub public_key_id: Option<String>,
    /// Platform certificate (path); repeatable, or comma-separated in the variable.
    #[arg(long, env = "WECHATPAY_PLATFORM_CERT", value_delimiter = ',')]
    pub platform_cert: Vec<String>,
    /// APIv3 key (decrypts APIv3 resources).
    #[arg(long, env = "WECHATPAY_APIV3_KEY", hide_env_values = true)]
    pub apiv3_key: Option<String>,
    /// APIv2 key (verifies APIv2 notifications, decrypts req_info).
    #[arg(long, env = "WECHATPAY_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Seconds to wait for the handler's answer (default 10).
    #[arg(long, env = "WECHATPAY_TIMEOUT")]
    pub timeout: Option<f64>,
    /// Seconds a connection may take to send a notification's headers, then its body, and
    /// to take the answer, before it is closed (408 for a body not sent in time): stalled and
    /// idle connections free their slot.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = crate::common::seconds_arg)]
    pub header_read_timeout: Duration,
    /// Connections served at once; beyond it new ones wait to be accepted.
    #[arg(long, value_name = "N", default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_connections: u32,
    /// The most bytes a notification's body may hold (413 beyond it).
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_body_bytes: u64,
}

/// What keeps listen, which may be reachable from outside through a tunnel, from being held
/// or exhausted by its clients.
#[derive(Debug, Clone, Copy)]
struct Limits {
    /// For a connection to send a request's headers (from when it opens, or since its previous
    /// answer), then its body, and to take each answer.
    deadline: Duration,
    /// Connections served at once: a flood of stalled ones holds the slots for at most
    /// `deadline`, the others waiting in the listen backlog meanwhile.
    max_connections: usize,
    /// Bytes of a request's body.
    max_body: usize,
}

/// `--v2-sign-type`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SignTypeArg {
    /// MD5
    Md5,
    /// HMAC-SHA256
    HmacSha256,
}

/// What listen knows: the keys, where to forward.
struct Listener {
    notifier: Option<Notifier>,
    apiv3_key: Option<String>,
    secret: Option<String>,
    v2_sign_type: Option<SignType>,
    forward: Option<(String, Sender, Duration)>,
    limits: Limits,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

/// A notification's verdict: what to print and how to answer.
struct Verdict {
    /// One line: the event, or why it was refused.
    line: String,
    /// The resource in clear, when verified.
    resource: Option<Value>,
    accepted: bool,
    v2: bool,
    /// The answer of listen itself.
    status: StatusCode,
    body: String,
}

pub fn run(a: &ListenArgs, key_source: impl Fn(&str) -> String) -> Result<(), Error> {
    let keyring = Keyring::for_scheme(crate::scheme::get());
    if let Some((id, key)) = crate::common::public_key(
        a.public_key.as_deref(),
        a.public_key_id.as_deref(),
        &key_source,
    )? {
        keyring.insert(id, key);
    }
    let certs: Vec<_> = a
        .platform_cert
        .iter()
        .filter(|c| !c.trim().is_empty())
        .map(|c| crate::scheme::certificate(&key_source(c.trim())))
        .collect::<Result<_, _>>()?;
    keyring.merge_certificates(certs.iter());
    let apiv3_key = a.apiv3_key.clone().filter(|k| !k.is_empty());
    let secret = a.secret.clone().filter(|k| !k.is_empty());
    if apiv3_key.is_none() && secret.is_none() {
        return Err(Error::config(
            "listen needs the APIv3 key (--apiv3-key, WECHATPAY_APIV3_KEY) or the APIv2 key \
             (--secret, WECHATPAY_SECRET): source the env file of `wechatpay serve`, or give them",
        ));
    }
    let notifier = match &apiv3_key {
        Some(k) => Some(Notifier::new(Arc::new(keyring), k)?),
        None => None,
    };
    if notifier.as_ref().is_some_and(|n| n.keyring().is_empty()) {
        eprintln!(
            "wechatpay listen: no platform key (--public-key with --public-key-id, or \
             --platform-cert): every APIv3 notification will be refused"
        );
    }
    let timeout = crate::common::timeout(a.timeout)?;
    let forward = match &a.forward_to {
        Some(url) => {
            let uri: http::Uri = url.parse().map_err(|_| {
                Error::InvalidArgument(format!("--forward-to {url:?} is not a URL"))
            })?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                return Err(Error::InvalidArgument(format!(
                    "--forward-to {url:?}: give an http:// or https:// URL with a host"
                )));
            }
            Some((url.clone(), Sender::new()?, timeout))
        }
        None => None,
    };
    let listener = Arc::new(Listener {
        notifier,
        apiv3_key,
        secret,
        v2_sign_type: a.v2_sign_type.map(|t| match t {
            SignTypeArg::Md5 => SignType::Md5,
            SignTypeArg::HmacSha256 => SignType::HmacSha256,
        }),
        forward,
        limits: Limits {
            deadline: a.header_read_timeout,
            max_connections: a.max_connections as usize,
            max_body: usize::try_from(a.max_body_bytes).unwrap_or(usize::MAX),
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(listener, a.port))
}

async fn serve(listener: Arc<Listener>, port: u16) -> Result<(), Error> {
    let socket = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Error::config_from(format!("cannot listen on 127.0.0.1:{port}"), e))?;
    let addr = socket
        .local_addr()
        .map_err(|e| Error::config_from("cannot read the listening address", e))?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "listening on http://{addr}/");
        if let Some((url, _, _)) = &listener.forward {
            let _ = writeln!(out, "forwarding to {url}");
        }
        let _ = out.flush();
    }
    let mut stop = crate::common::Stop::new(false)?;
    let limits = listener.limits;
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A free slot first: connections beyond the cap wait in the listen backlog.
        let slot = tokio::select! {
            _ = stop.recv() => return Ok(()),
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return Ok(()),
            },
        };
        let (stream, _) = tokio::select! {
            _ = stop.recv() => return Ok(()),
            accepted = socket.accept() => match accepted {
                Ok(a) => a,
                // out of descriptors and the like: wait a moment, keep serving
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let l = listener.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: http::Request<Incoming>| {
                let l = l.clone();
                async move { Ok::<_, Infallible>(handle(&l, req).await) }
            });
            // the headers bounded in time here, the body in handle, the answers by the stream
            let io = WriteDeadline::new(stream, limits.deadline);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.deadline)
                .serve_connection(TokioIo::new(io), svc)
                .await;
        });
    }
}

/// The body whole, or the status and the reason it is refused: more than `max_body` bytes
/// (announced or sent), not sent within the deadline, or cut off.
async fn read(body: Incoming, limits: Limits) -> Result<Bytes, (StatusCode, String)> {
    let max = limits.max_body;
    let too_large = || {
        let why = format!("the body is over {max} bytes");
        (StatusCode::PAYLOAD_TOO_LARGE, why)
    };
    // one announced too large is refused before it is read
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let read = Limited::new(body, max).collect();
    match tokio::time::timeout(limits.deadline, read).await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) if e.is::<LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            format!("the body was cut off: {e}"),
        )),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            format!("the body was not sent within {:?}", limits.deadline),
        )),
    }
}

async fn handle(l: &Listener, req: http::Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let mut text = format!(
        "{} {} {}\n",
        events::rfc3339(wechatpay_chain::formatter::timestamp()),
        parts.method,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = match read(body, l.limits).await {
        Ok(b) => b,
        Err((status, why)) => {
            text.push_str(&format!("refused: {why} ({})\n", status.as_u16()));
            print(&text);
            let why = json!({"code": "FAIL", "message": why}).to_string();
            return reply(status, "application/json", why);
        }
    };
    let verdict = l.verdict(&parts.headers, &body);
    text.push_str(&verdict.line);
    text.push('\n');
    if let Some(r) = &verdict.resource {
        text.push_str(&serde_json::to_string_pretty(r).unwrap_or_default());
        text.push('\n');
    }
    let answer = match &l.forward {
        None => reply(
            verdict.status,
            if verdict.v2 {
                "text/xml"
            } else {
                "application/json"
            },
            verdict.body.clone(),
        ),
        Some((url, sender, timeout)) => {
            match sender
                .post(url, &end_to_end(&parts.headers), body.clone(), *timeout)
                .await
            {
                Ok(a) => {
                    let wire = if verdict.v2 { Wire::V2Refund } else { Wire::V3 };
                    let handler_accepts = events::accepted(wire, a.status, &a.body);
                    text.push_str(&format!("→ {url}: {}", a.status));
                    let shown = String::from_utf8_lossy(&a.body);
                    if !shown.trim().is_empty() {
                        text.push(' ');
                        text.push_str(shown.trim());
                    }
                    text.push('\n');
                    match (verdict.accepted, handler_accepts) {
                        (false, true) => text.push_str(
                            "  the handler ACCEPTED what listen refused: it must check the signature, time and serial\n",
                        ),
                        (true, false) => text.push_str(
                            "  the handler refused what listen verified: check its keys (platform key, APIv3/APIv2 key)\n",
                        ),
                        _ => {}
                    }
                    let mut res = Response::new(Full::new(a.body));
                    *res.status_mut() =
                        StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
                    if let Some(ct) = a.headers.get(http::header::CONTENT_TYPE) {
                        res.headers_mut()
                            .insert(http::header::CONTENT_TYPE, ct.clone());
                    }
                    res
                }
                Err(e) => {
                    let why = crate::chain_line(&e);
                    text.push_str(&format!("→ {url}: no answer: {why}\n"));
                    reply(
                        StatusCode::BAD_GATEWAY,
                        "application/json",
                        json!({"code": "FAIL", "message": format!("the handler did not answer: {why}")})
                            .to_string(),
                    )
                }
            }
        }
    };
    print(&text);
    answer
}

/// Prints what listen saw of a request. The handler's answer, a refusal's message: nothing
/// reaches the terminal as a command.
fn print(text: &str) {
    let text = crate::common::printable(text, true);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The headers that concern one hop only (RFC 9110 §7.6.1 and the older ones it lists),
/// which a proxy does not pass on.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// `headers` without those of this hop: [`HOP_BY_HOP`] and those `Connection` names (the
/// body is passed on whole, with a length of its own).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    headers
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            !HOP_BY_HOP.contains(&k) && !named.iter().any(|n| n == k)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}

impl Listener {
    fn verdict(&self, headers: &HeaderMap, body: &[u8]) -> Verdict {
        let xml = body
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'<');
        if xml {
            return self.v2(body);
        }
        let refused = |status: StatusCode, why: String| Verdict {
            line: format!("refused: {why}"),
            resource: None,
            accepted: false,
            v2: false,
            status,
            body: json!({"code": "FAIL", "message": why}).to_string(),
        };
        let Some(n) = &self.notifier else {
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "an APIv3 notification, and listen has no APIv3 key (WECHATPAY_APIV3_KEY)".into(),
            );
        };
        match n.verify(headers, body) {
            Ok(n) => Verdict {
                line: format!(
                    "{} ({}) id {} created {}: verified",
                    n.event_type,
                    if n.summary.is_empty() {
                        &n.original_type
                    } else {
                        &n.summary
                    },
                    n.id,
                    n.create_time
                ),
                resource: Some(n.resource),
                accepted: true,
                v2: false,
                status: StatusCode::NO_CONTENT,
                body: String::new(),
            },
            Err(Error::Notification { kind, message, .. }) => {
                let status = match kind {
                    Refusal::Malformed | Refusal::UnsupportedAlgorithm => StatusCode::BAD_REQUEST,
                    _ => StatusCode::UNAUTHORIZED,
                };
                refused(status, format!("{kind}: {message}"))
            }
            Err(e) => refused(StatusCode::INTERNAL_SERVER_ERROR, crate::chain_line(&e)),
        }
    }

    fn v2(&self, body: &[u8]) -> Verdict {
        let refused = |why: String| Verdict {
            line: format!("refused (APIv2): {why}"),
            resource: None,
            accepted: false,
            v2: true,
            status: StatusCode::OK,
            body: notify_v2::reply_fail(&why),
        };
        let Some(secret) = &self.secret else {
            return refused(
                "an APIv2 notification, and listen has no APIv2 key (WECHATPAY_SECRET)".into(),
            );
        };
        let map = match transformer::to_array(body) {
            Ok(m) => m,
            Err(e) => return refused(crate::chain_line(&e)),
        };
        let named = |k: &str| match map.get(k).and_then(Value::as_str) {
            Some("HMAC-SHA256") => Some(SignType::HmacSha256),
            Some("MD5") => Some(SignType::Md5),
            _ => None,
        };
        let expected = self
            .v2_sign_type
            .or_else(|| named("sign_type"))
            .or_else(|| named("algorithm"))
            .unwrap_or(SignType::Md5);
        let n = match notify_v2::verify(body, secret, expected) {
            Ok(n) => n,
            Err(e) => return refused(crate::chain_line(&e)),
        };
        let fields: Map<String, Value> = n
            .fields()
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let get = |k: &str| n.get(k).map(str::to_string);
        let (kind, resource) = if let Some(ct) = get("event_ciphertext") {
            let Some(key) = &self.apiv3_key else {
                return refused(
                    "event_ciphertext needs the APIv3 key (WECHATPAY_APIV3_KEY)".into(),
                );
            };
            let clear = AesGcm::decrypt(
                &ct,
                key,
                get("event_nonce").unwrap_or_default(),
                get("event_associated_data").unwrap_or_default(),
            );
            match clear {
                Ok(c) => (
                    get("event_type").unwrap_or_else(|| "APIv2 event".into()),
                    serde_json::from_slice(&c)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&c).into())),
                ),
                Err(e) => return refused(format!("event_ciphertext: {}", crate::chain_line(&e))),
            }
        } else if n.kind() == notify_v2::KindV2::Refund {
            ("refund-processed".to_string(), Value::Object(fields))
        } else {
            // the two documents whose resource is JSON text in one field
            let mut fields = fields;
            for k in ["sub_order_list", "transaction_id_list"] {
                if let Some(Value::String(s)) = fields.get(k) {
                    if let Ok(v) = serde_json::from_str::<Value>(s) {
                        fields.insert(k.into(), v);
                    }
                }
            }
            let kind = if fields.contains_key("sub_order_list") {
                "combined-transactions-success"
            } else if fields.contains_key("transaction_id_list") {
                "transactions-risk-occurred"
            } else if fields.contains_key("contract_code") {
                "pap-contract-state-changed"
            } else if fields.contains_key("plate_number") {
                "vehicle-state-changed-for-parking"
            } else {
                "transaction-success"
            };
            (kind.to_string(), Value::Object(fields))
        };
        Verdict {
            line: format!("{kind} (APIv2): verified"),
            resource: Some(resource),
            accepted: true,
            v2: true,
            status: StatusCode::OK,
            body: notify_v2::reply_success(),
        }
    }
}
