//! `wechatpay sandbox`: what the payer and the platform do in a running sandbox (`wechatpay
//! serve`), through its control endpoints `POST /emulator/{kind}/{no}/{action}` (unsigned,
//! with the control token of its env file): a pending payment paid, failed or closed, a refund
//! succeeded, closed or abnormal, a transfer succeeded or failed. The object's new state is
//! printed as JSON; the sandbox sends the notification the platform would. `sandbox clock
//! show|set|advance` reads and moves the sandbox's clock (`/emulator/clock`).
//!
//! Each object kind is one variant of [`Object`] and one row of [`Object::endpoint`].

use std::io::Write;

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{Map, Value};
use wechatpay_chain::Error;

/// The largest answer read from the sandbox.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    object: Object,
    /// The sandbox's base URI, as `wechatpay serve` prints it and its env file sets it.
    #[arg(long, env = "WECHATPAY_BASE_URI", global = true)]
    pub base_uri: Option<String>,
    /// The CA certificate (PEM) a TLS sandbox (`serve --tls`) is trusted with; by default the
    /// SSL_CERT_FILE its env file sets (its ca.pem), then the system's roots.
    #[arg(long, value_name = "PATH", global = true)]
    ca: Option<String>,
    /// The sandbox's control token, which its env file sets (`wechatpay serve` makes one at
    /// start; without it the sandbox refuses to act).
    #[arg(
        long,
        env = "WECHATPAY_SANDBOX_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// Seconds to wait for the sandbox's answer (default 10).
    #[arg(long, env = "WECHATPAY_TIMEOUT", global = true)]
    pub timeout: Option<f64>,
}

#[derive(Subcommand)]
enum Object {
    /// A pending payment (an order, a combined order by its combine_out_trade_no, or a partner
    /// order) paid (TRANSACTION.SUCCESS is notified), failed (PAYERROR) or closed (CLOSED).
    Payment {
        /// out_trade_no, or combine_out_trade_no of a combined order (all its sub-orders).
        out_trade_no: String,
        #[arg(value_enum)]
        action: PaymentAction,
        /// The payer's openid, when the order names none.
        #[arg(long)]
        openid: Option<String>,
        /// The sub-merchant of a partner order (when several have this out_trade_no), or the
        /// merchant of an order of a merchant beyond the first (serve --merchants).
        #[arg(long)]
        sub_mchid: Option<String>,
        /// With paid: the front-end parameters the payer's WeChat client is given (the JSON a
        /// page passes to wx.requestPayment, or an app's appid/partnerid/prepayid/… object),
        /// inline, @file or - for stdin. The sandbox checks them as the client does and refuses
        /// a wrong appId, package, signType, timeStamp or paySign, saying why.
        #[arg(long, value_name = "JSON")]
        request_payment: Option<String>,
    },
    /// A processing refund succeeded, closed or abnormal (REFUND.SUCCESS, REFUND.CLOSED,
    /// REFUND.ABNORMAL are notified).
    Refund {
        out_refund_no: String,
        #[arg(value_enum)]
        action: RefundAction,
    },
    /// A merchant transfer waiting for the user succeeded or failed
    /// (MCHTRANSFER.BILL.FINISHED is notified).
    Transfer {
        out_bill_no: String,
        #[arg(value_enum)]
        action: TransferAction,
        /// Why it failed: one of the documented fail_reason values (default
        /// OTHER_FAIL_REASON_TYPE).
        #[arg(long)]
        reason: Option<String>,
    },
    /// The sandbox's clock: show it, set it to a time, or advance it; what became due by then
    /// (order expiries, refund and transfer ends, notification retries) happens at once.
    Clock {
        #[command(subcommand)]
        action: ClockAction,
    },
    /// The sandbox's fault plan (errors, delays, dropped connections, hangs; dropped, delayed,
    /// duplicated, reordered notifications): list, add, clear.
    Faults {
        #[command(subcommand)]
        op: crate::faults::FaultsOp,
    },
}

#[derive(Subcommand)]
enum ClockAction {
    /// Prints the clock (its time, whether frozen, how many jobs wait for their time).
    Show,
    /// Sets the clock to a time: RFC 3339 (2026-12-07T10:00:00+08:00) or Unix seconds.
    Set {
        /// The time: 2026-12-07T10:00:00+08:00, or Unix seconds (1796608800).
        time: String,
        #[command(flatten)]
        freeze: Freeze,
    },
    /// Moves the clock forward: seconds (15), or 500ms, 15s, 10m, 2h, 1d, 1h30m.
    Advance {
        /// How far: 15 (seconds), 500ms, 15s, 10m, 2h, 1d, 1h30m.
        by: String,
        #[command(flatten)]
        freeze: Freeze,
    },
}

/// Whether the clock stops or runs on after the change (as it was when neither is given).
#[derive(Args)]
struct Freeze {
    /// Stop the clock there: it then moves only when set or advanced.
    #[arg(long, conflicts_with = "running")]
    frozen: bool,
    /// Let the clock run on with real time from there.
    #[arg(long)]
    running: bool,
}

impl Freeze {
    fn put(&self, body: &mut Map<String, Value>) {
        if self.frozen || self.running {
            body.insert("frozen".into(), Value::Bool(self.frozen));
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum PaymentAction {
    Paid,
    Failed,
    Closed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TransferAction {
    Succeeded,
    Failed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RefundAction {
    Succeeded,
    Closed,
    Abnormal,
}

/// The action's name in the control endpoint's path (its clap name).
fn name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_string())
        .unwrap_or_default()
}

/// A control endpoint's method, its path after `/emulator/`, what it acts on (for messages),
/// and the body's fields.
type Endpoint = (http::Method, String, String, Map<String, Value>);

/// `POST /emulator/{kind}/{no}/{action}`.
fn act(kind: &str, no: &str, action: String, body: Map<String, Value>) -> Endpoint {
    let what = format!("{} {no} {action}", kind.trim_end_matches('s'));
    let path = format!("{kind}/{}/{action}", segment(no));
    (http::Method::POST, path, what, body)
}

impl Object {
    /// The control endpoint's method, path, what it acts on, and the body's fields.
    fn endpoint(&self) -> Result<Endpoint, Error> {
        let mut body = Map::new();
        let mut put = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                body.insert(k.into(), Value::from(v.as_str()));
            }
        };
        match self {
            Object::Payment {
                out_trade_no,
                action,
                openid,
                sub_mchid,
                request_payment,
            } => {
                put("openid", openid);
                put("sub_mchid", sub_mchid);
                if let Some(given) = request_payment {
                    let params = crate::read_object(Some(given), "--request-payment")?;
                    body.insert("request_payment".into(), params);
                }
                Ok(act("payments", out_trade_no, name(action), body))
            }
            Object::Refund {
                out_refund_no,
                action,
            } => Ok(act("refunds", out_refund_no, name(action), body)),
            Object::Transfer {
                out_bill_no,
                action,
                reason,
            } => {
                put("reason", reason);
                Ok(act("transfers", out_bill_no, name(action), body))
            }
            Object::Clock { action } => {
                let (key, value, freeze, what) = match action {
                    ClockAction::Show => {
                        return Ok((http::Method::GET, "clock".into(), "clock show".into(), body))
                    }
                    ClockAction::Set { time, freeze } => ("set", time, freeze, "clock set"),
                    ClockAction::Advance { by, freeze } => ("advance", by, freeze, "clock advance"),
                };
                // Unix seconds (a number) stay a number; the sandbox reads the rest.
                let v = match value.trim().parse::<i64>() {
                    Ok(n) if key == "set" => Value::from(n),
                    _ => Value::from(value.trim()),
                };
                body.insert(key.into(), v);
                freeze.put(&mut body);
                Ok((http::Method::POST, "clock".into(), what.into(), body))
            }
            Object::Faults { op } => Ok(op.endpoint()),
        }
    }
}

/// Percent-encodes one path segment: everything but RFC 3986's unreserved characters.
fn segment(s: &str) -> String {
    const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, RESERVED).to_string()
}

/// Runs the action; `Ok(false)` when the sandbox refused it (said on stderr).
pub fn run(a: &SandboxArgs) -> Result<bool, Error> {
    let base = a.base_uri.as_deref().ok_or_else(|| {
        Error::config(
            "no sandbox to call: pass --base-uri, or source the env file `wechatpay serve` \
             writes (WECHATPAY_BASE_URI)",
        )
    })?;
    let base_uri: http::Uri = base
        .parse()
        .map_err(|e| Error::config_from(format!("--base-uri {base:?} is not a URI"), e))?;
    let tls = match base_uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => {
            return Err(Error::config(format!(
                "--base-uri {base} must be http:// or https://"
            )))
        }
    };
    let host = base_uri.host().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(Error::config(format!(
            "--base-uri {base} is not a sandbox: `wechatpay serve` listens on loopback \
             (127.0.0.1) only; source the env file it writes"
        )));
    }
    let timeout = crate::common::timeout(a.timeout)?;
    let (method, path, what, body) = a.object.endpoint()?;
    let url = format!("{}/emulator/{path}", base.trim_end_matches('/'));
    let body = if body.is_empty() {
        Bytes::new()
    } else {
        Bytes::from(Value::Object(body).to_string())
    };
    let port = base_uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let authority = base_uri
        .authority()
        .map_or_else(|| host.to_string(), |a| a.as_str().to_string());
    let exchange = post(
        method,
        &url,
        (bare, port, &authority),
        tls,
        (a.ca.as_deref(), a.token.as_deref()),
        body,
    );
    let (status, answer) =
        match rt.block_on(async { tokio::time::timeout(timeout, exchange).await }) {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::transport(
                    url,
                    format!("the sandbox did not answer within {timeout:?} (--timeout)"),
                    false,
                ))
            }
        };
    let value: Option<Value> = serde_json::from_slice(&answer).ok();
    if (200..300).contains(&status) {
        let shown = match &value {
            Some(v) => serde_json::to_string_pretty(v).unwrap_or_default(),
            None => String::from_utf8_lossy(&answer).into_owned(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{shown}");
        return Ok(true);
    }
    let text = |k: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let (code, message) = (text("code"), text("message"));
    let message = if message.is_empty() {
        String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned()
    } else {
        message
    };
    let line: String =
        format!("wechatpay: 沙箱拒绝 the sandbox refused {what}: HTTP {status} {code}: {message}")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
    eprintln!("{line}");
    Ok(false)
}

/// Sends `body` to `url` with `method` (at `host`, `port`, named `authority`, with the control
/// `token`), over TLS (trusting `ca`) when `tls`; the status and the body of the answer.
async fn post(
    method: http::Method,
    url: &str,
    (host, port, authority): (&str, u16, &str),
    tls: bool,
    (ca, token): (Option<&str>, Option<&str>),
    body: Bytes,
) -> Result<(u16, Bytes), Error> {
    let not_running = |e: std::io::Error| {
        Error::transport(
            format!("{url} (no sandbox answers there: start one with `wechatpay serve` and source its env file)"),
            e,
            false,
        )
    };
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(not_running)?;
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .header(http::header::HOST, authority)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::USER_AGENT, "wechatpay-cli sandbox");
    if let Some(token) = token {
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::config("--token (WECHATPAY_SANDBOX_TOKEN) must be visible ASCII characters")
        })?;
        value.set_sensitive(true);
        req = req.header(http::header::AUTHORIZATION, value);
    }
    let req = req
        .body(Full::new(body))
        .map_err(|e| Error::config_from(format!("cannot make a request to {url}"), e))?;
    if tls {
        let stream = handshake(tcp, host, ca).await.map_err(|e| match e {
            e @ Error::Config { .. } => e,
            other => Error::transport(url.to_string(), other, false),
        })?;
        exchange(url, TokioIo::new(stream), req).await
    } else {
        exchange(url, TokioIo::new(tcp), req).await
    }
}

/// TLS to the sandbox, trusting `ca` (or SSL_CERT_FILE and the system's roots) and checking
/// that its certificate names `host`.
async fn handshake(
    tcp: tokio::net::TcpStream,
    host: &str,
    ca: Option<&str>,
) -> Result<tokio_openssl::SslStream<tokio::net::TcpStream>, Error> {
    use openssl::ssl::{SslConnector, SslMethod};
    let fail = |what: &str, e: openssl::error::ErrorStack| Error::config_from(what.to_string(), e);
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| fail("cannot set up TLS", e))?;
    if let Some(path) = ca {
        b.set_ca_file(path)
            .map_err(|e| fail(&format!("--ca {path} is not a PEM certificate"), e))?;
    }
    let ssl = b
        .build()
        .configure()
        .and_then(|c| c.into_ssl(host))
        .map_err(|e| fail("cannot set up TLS", e))?;
    let mut stream =
        tokio_openssl::SslStream::new(ssl, tcp).map_err(|e| fail("cannot set up TLS", e))?;
    std::pin::Pin::new(&mut stream)
        .connect()
        .await
        .map_err(|e| {
            Error::config_from(
            "the sandbox's TLS certificate is not trusted (pass --ca with the ca.pem `wechatpay \
             serve --tls` writes, or source its env file, which sets SSL_CERT_FILE)",
            e,
        )
        })?;
    Ok(stream)
}

/// One HTTP/1.1 exchange over `io`.
async fn exchange<I>(
    url: &str,
    io: TokioIo<I>,
    req: http::Request<Full<Bytes>>,
) -> Result<(u16, Bytes), Error>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let broke =
        |answered: bool| move |e: hyper::Error| Error::transport(url.to_string(), e, answered);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(broke(false))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let res = sender.send_request(req).await.map_err(broke(false))?;
    let status = res.status().as_u16();
    let body = Limited::new(res.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| Error::transport(url.to_string(), e, true))?
        .to_bytes();
    Ok((status, body))
}
