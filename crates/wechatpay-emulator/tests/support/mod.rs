//! What the emulator's test binaries share: starting an emulator on the binary's runtime, the
//! library's client for it, an API error's parts, requests sent as they are, the control
//! endpoints (unsigned, with the control token), and merchants' notification endpoints on loopback. Included with
//! `mod support;` after `#[path = "../../../tests/common/mod.rs"] mod common;` (the runtime).
#![allow(dead_code)]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::sync::mpsc;
use wechatpay_chain::client_json::Credentials;
use wechatpay_chain::{Client, Error};
use wechatpay_emulator::{Emulator, EmulatorConfig};

use crate::common::{self, rt};

/// An emulator started on the binary's runtime.
pub fn start(config: EmulatorConfig) -> Emulator {
    rt().block_on(Emulator::start_async(config)).unwrap()
}

/// The library's client for `emu`.
pub fn client(emu: &Emulator) -> Client {
    emu.builder().build().unwrap()
}

/// The `trade_state` of merchant order `no`, as its query answers it.
pub fn trade_state(c: &Client, emu: &Emulator, no: &str) -> String {
    let v: Value = c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(serde_json::json!({"out_trade_no": no, "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    v["trade_state"].as_str().unwrap().to_string()
}

/// The merchant credentials `emu` knows, to sign requests by hand.
pub fn credentials(emu: &Emulator) -> Credentials {
    Credentials {
        mchid: emu.mchid().to_string(),
        serial: emu.merchant_serial().to_string(),
        key: emu.merchant_private_key().unwrap().clone(),
    }
}

/// The API error's status, code and `detail.field`.
pub fn api(e: Error) -> (u16, String, Option<String>) {
    match e {
        Error::Api {
            status,
            code,
            detail,
            ..
        } => (
            status,
            code,
            detail.and_then(|d| d["field"].as_str().map(str::to_string)),
        ),
        other => panic!("expected an API error, got {other}"),
    }
}

/// Sends a request as is over a plain hyper client; its status, headers and body.
pub fn send(req: http::Request<Bytes>) -> (u16, http::HeaderMap, Bytes) {
    rt().block_on(async {
        let c: HyperClient<_, Full<Bytes>> =
            HyperClient::builder(TokioExecutor::new()).build_http();
        let (parts, body) = req.into_parts();
        let res = c
            .request(http::Request::from_parts(parts, Full::new(body)))
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status.as_u16(),
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    })
}

/// POSTs `body` (JSON, unsigned, with the control token) to `path` below the emulator's base
/// URI (a control endpoint, `emulator/…`); the status and the JSON answer (null when it is not
/// JSON).
pub fn control(emu: &Emulator, path: &str, body: &str) -> (u16, Value) {
    let uri = format!("{}{}", emu.base_uri(), path.trim_start_matches('/'));
    let mut req = http::Request::post(uri).header("content-type", "application/json");
    if let Some(token) = emu.control_token() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(Bytes::from(body.to_string())).unwrap();
    let (status, _, body) = send(req);
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A receiver of APIv2 notifications at `path` answering `replies` (XML) in turn, the last
/// one again once they run out; the server and its URL.
pub fn xml_receiver(replies: Vec<String>, path: &str) -> (common::Server, String) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let seen = AtomicUsize::new(0);
    let handler: common::Handler = std::sync::Arc::new(move |_: &common::Recorded| {
        let i = seen.fetch_add(1, Ordering::SeqCst);
        common::Reply {
            body: replies[i.min(replies.len() - 1)].clone().into_bytes(),
            headers: vec![("Content-Type".into(), "text/xml".into())],
            sign_as: None,
            ..common::Reply::empty(200)
        }
    });
    let server = common::Server::start(common::Keys::shared(), handler);
    let url = format!("http://{}{path}", server.addr);
    (server, url)
}

/// Waits (up to 5 s) until `emu` has recorded `n` delivery attempts; returns them. An attempt
/// is recorded once the receiver has answered, which may be a moment after the receiver has
/// handed the notification over.
pub fn deliveries(emu: &Emulator, n: usize) -> Vec<wechatpay_emulator::Delivery> {
    at_least(n, || emu.deliveries())
}

/// Waits (up to 5 s) until `server` has received `n` requests; returns them.
pub fn received(server: &common::Server, n: usize) -> Vec<common::Recorded> {
    at_least(n, || server.recorded())
}

/// What `look` finds once it finds `n` or more, or after 5 s, whatever it finds then.
fn at_least<T>(n: usize, look: impl Fn() -> Vec<T>) -> Vec<T> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = look();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A merchant's notification endpoint on loopback (`url`, path `/notify`): `answer` turns each
/// request's headers and body into what is handed over, the status and the answer's body.
pub struct Receiver<T> {
    pub url: String,
    rx: Mutex<mpsc::UnboundedReceiver<T>>,
}

impl<T: Send + 'static> Receiver<T> {
    /// Listens on a free port of 127.0.0.1.
    pub fn new<F>(answer: F) -> Receiver<T>
    where
        F: Fn(http::HeaderMap, Bytes) -> (T, u16, Bytes) + Send + Sync + 'static,
    {
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let answer = std::sync::Arc::new(answer);
        rt().spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (tx, answer) = (tx.clone(), answer.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (tx, answer) = (tx.clone(), answer.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let (handed, status, reply) = answer(parts.headers, body);
                            let _ = tx.send(handed);
                            let mut res = hyper::Response::new(Full::new(reply));
                            *res.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(res)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            url,
            rx: Mutex::new(rx),
        }
    }

    /// What the next request handed over, if one comes `within`.
    pub fn next_within(&self, within: Duration) -> Option<T> {
        let mut rx = self.rx.lock().unwrap();
        rt().block_on(async { tokio::time::timeout(within, rx.recv()).await.ok().flatten() })
    }

    /// What a request already received handed over, if any is waiting.
    pub fn try_next(&self) -> Option<T> {
        self.rx.lock().unwrap().try_recv().ok()
    }
}
