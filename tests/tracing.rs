//! What the library tells `tracing`, captured field by field by a test layer: one span per call
//! (method, path template, attempt, status, elapsed), per-attempt events at DEBUG, INFO only for
//! retries and certificate notices, and no secret in any span or event field.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Keys, Recorded, Reply, Server};
use serde_json::json;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;
use wechatpay_chain::RetryPolicy;

const APIV3_KEY: &str = "apiv3keyapiv3keyapiv3keyapiv3ke0";
const V2_SECRET: &str = "v2secretv2secretv2secretv2secre9";

#[derive(Debug, Clone)]
struct SpanRec {
    name: String,
    fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct EventRec {
    level: Level,
    target: String,
    /// Index into the spans, when the event happened inside one.
    span: Option<usize>,
    fields: BTreeMap<String, String>,
}

#[derive(Default, Clone)]
struct Capture {
    spans: Arc<Mutex<Vec<SpanRec>>>,
    events: Arc<Mutex<Vec<EventRec>>>,
}

/// The index of a span in `Capture::spans`, kept in the span's extensions.
struct Index(usize);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().unwrap();
        spans.push(SpanRec {
            name: attrs.metadata().name().to_string(),
            fields,
        });
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Index(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(Index(i)) = span.extensions().get::<Index>().map(|i| Index(i.0)) else {
            return;
        };
        values.record(&mut Fields(&mut self.spans.lock().unwrap()[i].fields));
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let span = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Index>().map(|i| i.0));
        self.events.lock().unwrap().push(EventRec {
            level: *event.metadata().level(),
            target: event.metadata().target().to_string(),
            span,
            fields,
        });
    }
}

impl Capture {
    /// Runs `f` with this capture as the thread's subscriber, every level enabled.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let subscriber = tracing_subscriber::registry().with(self.clone());
        tracing::subscriber::with_default(subscriber, f)
    }

    fn calls(&self) -> Vec<(usize, SpanRec)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, s)| s.name == "wechatpay.call")
            .collect()
    }

    /// The library's events (hyper's own are left out).
    fn events(&self) -> Vec<EventRec> {
        let all = self.events.lock().unwrap().clone();
        all.into_iter()
            .filter(|e| e.target.starts_with("wechatpay_chain"))
            .collect()
    }

    /// Every captured field value and span name, for the secret checks.
    fn everything(&self) -> String {
        let mut all = String::new();
        for s in self.spans.lock().unwrap().iter() {
            all.push_str(&format!("{} {:?}\n", s.name, s.fields));
        }
        for e in self.events.lock().unwrap().iter() {
            all.push_str(&format!("{:?}\n", e.fields));
        }
        all
    }
}

fn system_error() -> Reply {
    Reply::json(500, json!({"code": "SYSTEM_ERROR", "message": "系统错误"}))
}

/// Answers `v3/certificates` with 404 (a public-key-mode merchant), 500 SYSTEM_ERROR to the
/// first `failures` other requests, then 200.
fn platform(failures: usize) -> common::Handler {
    let count = Arc::new(AtomicUsize::new(0));
    Arc::new(move |r: &Recorded| {
        if r.target.starts_with("/v3/certificates") {
            Reply::json(
                404,
                json!({"code": "NOT_FOUND", "message": "无可用的平台证书"}),
            )
        } else if count.fetch_add(1, Ordering::SeqCst) < failures {
            system_error()
        } else {
            Reply::json(200, json!({"ok": true}))
        }
    })
}

fn fast() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
}

const TEMPLATE: &str = "v3/pay/transactions/out-trade-no/{out_trade_no}";

fn order() -> serde_json::Value {
    json!({"out_trade_no": "T20260101", "query": {"mchid": common::MCHID}})
}

/// The `signature="…"` of every Authorization header the server received.
fn signatures(server: &Server) -> Vec<String> {
    server
        .recorded()
        .iter()
        .filter_map(|r| {
            let auth = r.headers.get("authorization")?.to_str().ok()?;
            let sig = auth.split("signature=\"").nth(1)?.split('"').next()?;
            Some(sig.to_string())
        })
        .collect()
}

fn assert_no_secret(capture: &Capture, server: &Server) {
    let all = capture.everything();
    let pem = &Keys::shared().merchant_pem;
    let pem_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(pem_lines.len() > 10);
    for l in pem_lines {
        assert!(!all.contains(l), "a private key line was traced: {all}");
    }
    assert!(!all.contains("PRIVATE KEY"), "{all}");
    assert!(!all.contains(APIV3_KEY), "the APIv3 key was traced: {all}");
    assert!(!all.contains(V2_SECRET), "the APIv2 key was traced: {all}");
    let sigs = signatures(server);
    for s in &sigs {
        assert!(
            !all.contains(&s[..40]),
            "an Authorization signature was traced"
        );
    }
    assert!(!all.to_ascii_lowercase().contains("authorization"), "{all}");
    assert!(!all.contains("WECHATPAY2-SHA256-RSA2048"), "{all}");
}

#[test]
fn a_plain_call_is_one_span_with_no_info_event() {
    let server = Server::start(Keys::shared(), platform(0));
    let capture = Capture::default();
    capture.run(|| {
        let client = server
            .builder()
            .auto_certificates(APIV3_KEY)
            .build()
            .unwrap();
        // Only the call from here on.
        capture.events.lock().unwrap().clear();
        capture.spans.lock().unwrap().clear();
        let res = client.chain(TEMPLATE).get(order()).unwrap();
        assert_eq!(res.status(), 200);
    });
    let calls = capture.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let (index, span) = &calls[0];
    let f = &span.fields;
    assert_eq!(f["method"], "GET");
    assert_eq!(f["path"], TEMPLATE, "the template, not the expanded path");
    assert_eq!(f["attempt"], "1");
    assert_eq!(f["status"], "200");
    assert!(f["elapsed_ms"].parse::<u64>().is_ok(), "{f:?}");
    let all = capture.events.lock().unwrap().clone();
    assert!(
        all.iter().all(|e| e.level > Level::INFO),
        "a successful call logs nothing at INFO: {all:?}"
    );
    let events = capture.events();
    assert!(
        events.iter().all(|e| e.level > Level::INFO),
        "a successful call logs nothing at INFO: {events:?}"
    );
    let attempts: Vec<_> = events
        .iter()
        .filter(|e| e.span == Some(*index) && e.level == Level::DEBUG)
        .collect();
    assert_eq!(attempts.len(), 1, "{events:?}");
    assert_eq!(attempts[0].fields["status"], "200");
    assert!(
        !capture.everything().contains("T20260101"),
        "no order number"
    );
    assert_no_secret(&capture, &server);
}

#[test]
fn retries_are_info_events_inside_one_span_for_async_calls() {
    let server = Server::start(Keys::shared(), platform(2));
    let client = server.builder().retry(fast()).build().unwrap();
    let capture = Capture::default();
    capture.run(|| {
        let res = common::rt()
            .block_on(client.chain(TEMPLATE).get_async(order()))
            .unwrap();
        assert_eq!(res.status(), 200);
    });
    let calls = capture.calls();
    assert_eq!(calls.len(), 1, "one span for all attempts: {calls:?}");
    let (index, span) = &calls[0];
    assert_eq!(span.fields["attempt"], "3");
    assert_eq!(span.fields["status"], "200");
    assert_eq!(span.fields["path"], TEMPLATE);
    let events = capture.events();
    let infos: Vec<_> = events.iter().filter(|e| e.level == Level::INFO).collect();
    assert_eq!(infos.len(), 2, "one INFO per retry: {events:?}");
    for (i, e) in infos.iter().enumerate() {
        assert_eq!(e.span, Some(*index), "inside the call's span");
        assert_eq!(e.fields["attempt"], (i + 1).to_string());
        assert_eq!(e.fields["status"], "500");
        assert!(e.fields["message"].contains("retrying"), "{e:?}");
    }
    let debugs = events
        .iter()
        .filter(|e| e.level == Level::DEBUG && e.span == Some(*index))
        .count();
    assert_eq!(debugs, 3, "one DEBUG per attempt: {events:?}");
    assert_no_secret(&capture, &server);
}

#[test]
fn blocking_retries_share_the_span_too() {
    let server = Server::start(Keys::shared(), platform(1));
    let client = server.builder().retry(fast()).build().unwrap();
    let capture = Capture::default();
    capture
        .run(|| {
            client
                .chain("v3/refund/domestic/refunds")
                .post(json!({"json": {"out_refund_no": "R1"}}))
        })
        .unwrap();
    let calls = capture.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1.fields["method"], "POST");
    assert_eq!(calls[0].1.fields["attempt"], "2");
    let infos = capture
        .events()
        .into_iter()
        .filter(|e| e.level == Level::INFO)
        .count();
    assert_eq!(infos, 1);
    assert!(
        !capture.everything().contains("R1\""),
        "no body in the trace"
    );
    assert_no_secret(&capture, &server);
}

#[test]
fn the_public_key_mode_notice_is_info_and_the_download_has_a_span() {
    let server = Server::start(Keys::shared(), platform(0));
    let capture = Capture::default();
    capture.run(|| {
        server
            .builder()
            .auto_certificates(APIV3_KEY)
            .build()
            .unwrap()
    });
    let events = capture.events();
    let notice: Vec<_> = events
        .iter()
        .filter(|e| e.level == Level::INFO && e.fields["message"].contains("public-key mode"))
        .collect();
    assert_eq!(notice.len(), 1, "{events:?}");
    let calls = capture.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1.fields["path"], "v3/certificates");
    assert_eq!(calls[0].1.fields["status"], "404");
    assert_no_secret(&capture, &server);
}

#[test]
fn apiv2_calls_trace_no_key() {
    let server = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| Reply {
            headers: vec![("Content-Type".into(), "text/xml".into())],
            body: "<xml><return_code>FAIL</return_code><return_msg>签名错误</return_msg></xml>"
                .as_bytes()
                .to_vec(),
            sign_as: None,
            ..Reply::json(200, json!(null))
        }),
    );
    let client = server.builder().secret(V2_SECRET).build().unwrap();
    let capture = Capture::default();
    let _ = capture.run(|| {
        client.chain("v2/pay/orderquery").post(json!({
            "xml": {"appid": "wxd678efh567hg6787", "mch_id": common::MCHID, "out_trade_no": "T1"}
        }))
    });
    assert_eq!(server.recorded().len(), 1, "the call was sent");
    let calls = capture.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].1.fields["path"], "v2/pay/orderquery");
    assert_eq!(calls[0].1.fields["method"], "POST");
    let all = capture.everything();
    let sign = String::from_utf8_lossy(&server.recorded()[0].body)
        .split("<sign>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .map(str::to_string)
        .unwrap();
    assert!(sign.len() >= 32 && !all.contains(&sign), "{all}");
    assert_no_secret(&capture, &server);
}
