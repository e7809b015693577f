//! Retry rules against loopback servers that fail on purpose: attempts are counted, and every
//! attempt must carry a fresh, valid signature over the same method, path and body.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Keys, Reply, Server};
use serde_json::json;
use wechatpay_chain::{Error, RetryPolicy};

fn fast() -> RetryPolicy {
    RetryPolicy::new()
        .max_attempts(3)
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
}

/// Answers `first` for the first `n` requests, then 200.
fn failing(n: usize, first: Reply) -> (Arc<AtomicUsize>, common::Handler) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let h: common::Handler = Arc::new(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < n {
            first.clone()
        } else {
            Reply::json(200, json!({"ok": true}))
        }
    });
    (count, h)
}

fn system_error() -> Reply {
    Reply::json(500, json!({"code": "SYSTEM_ERROR", "message": "系统错误"}))
}

#[test]
fn system_errors_are_retried_with_fresh_signatures() {
    let (count, h) = failing(2, system_error());
    let server = Server::start(Keys::shared(), h);
    let client = server.builder().retry(fast()).build().unwrap();
    let res = client
        .chain("v3/pay/transactions/native")
        .post(json!({"json": {"out_trade_no": "T1", "amount": {"total": 1}}}))
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3);
    let recs = server.recorded();
    assert_eq!(recs.len(), 3);
    for r in &recs {
        assert!(r.signature_ok);
        assert_eq!(r.method, "POST");
        assert_eq!(r.target, "/v3/pay/transactions/native");
        assert_eq!(r.body, recs[0].body);
    }
    let auths: std::collections::HashSet<_> = recs
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_eq!(auths.len(), 3, "each attempt is signed anew");
}

#[test]
fn retries_are_off_by_default_and_per_call_overridable() {
    let (count, h) = failing(
        100,
        Reply::json(
            503,
            json!({"code": "SERVICE_UNAVAILABLE", "message": "busy"}),
        ),
    );
    let server = Server::start(Keys::shared(), h);
    let plain = server.client();
    assert_eq!(
        plain.chain("v3/a").get(json!({})).unwrap_err().code(),
        Some("SERVICE_UNAVAILABLE")
    );
    assert_eq!(count.swap(0, Ordering::SeqCst), 1);

    plain
        .chain("v3/a")
        .get(json!({"retry": {"max_attempts": 2}}))
        .unwrap_err();
    assert_eq!(count.swap(0, Ordering::SeqCst), 2);

    let with = server.builder().retry(fast()).build().unwrap();
    with.chain("v3/a").get(json!({"retry": false})).unwrap_err();
    assert_eq!(count.swap(0, Ordering::SeqCst), 1);
    with.chain("v3/a").get(json!({})).unwrap_err();
    assert_eq!(count.swap(0, Ordering::SeqCst), 3);

    assert!(matches!(
        with.chain("v3/a").get(json!({"retry": "often"})),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        with.chain("v3/a")
            .get(json!({"retry": {"max_attempts": 0}})),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(count.load(Ordering::SeqCst), 0);
}

#[test]
fn client_errors_are_never_retried() {
    for reply in [
        Reply::json(400, json!({"code": "PARAM_ERROR", "message": "bad"})),
        Reply::json(404, json!({"code": "ORDER_NOT_EXIST", "message": "none"})),
        Reply::json(
            429,
            json!({"code": "RATELIMIT_EXCEEDED", "message": "slow down"}),
        ),
        Reply::json(
            500,
            json!({"code": "INVALID_REQUEST", "message": "other 5xx code"}),
        ),
    ] {
        let (count, h) = failing(100, reply);
        let server = Server::start(Keys::shared(), h);
        let client = server.builder().retry(fast()).build().unwrap();
        assert!(client
            .chain("v3/pay/transactions/id/{id}")
            .get(json!({"id": "1"}))
            .is_err());
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn rate_limited_refund_leaves_the_outcome_unknown() {
    let (count, h) = failing(
        100,
        Reply::json(
            429,
            json!({"code": "RATELIMIT_EXCEEDED", "message": "slow down"}),
        ),
    );
    let server = Server::start(Keys::shared(), h);
    let client = server.builder().retry(fast()).build().unwrap();
    let e = client
        .chain("v3/refund/domestic/refunds")
        .post(json!({"json": {"out_refund_no": "R1"}}))
        .unwrap_err();
    assert!(matches!(e, Error::OutcomeUnknown { .. }), "{e}");
    assert_eq!(e.code(), Some("RATELIMIT_EXCEEDED"));
    assert_eq!(e.status(), Some(429));
    assert!(e.to_string().contains("query"), "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
    // A query that is rate limited is just an API error.
    let e = client
        .chain("v3/refund/domestic/refunds/{n}")
        .get(json!({"n": "R1"}))
        .unwrap_err();
    assert!(matches!(e, Error::Api { status: 429, .. }), "{e}");
}

#[test]
fn accepted_202_is_called_again_but_userpaying_is_not() {
    let (count, h) = failing(1, Reply::empty(202));
    let server = Server::start(Keys::shared(), h);
    let client = server.builder().retry(fast()).build().unwrap();
    assert_eq!(
        client
            .chain("v3/a")
            .post(json!({"json": {"x": 1}}))
            .unwrap()
            .status(),
        200
    );
    assert_eq!(count.load(Ordering::SeqCst), 2);

    let (count, h) = failing(
        1,
        Reply::json(202, json!({"code": "USERPAYING", "message": "用户支付中"})),
    );
    let server = Server::start(Keys::shared(), h);
    let client = server.builder().retry(fast()).build().unwrap();
    assert_eq!(
        client
            .chain("v3/a")
            .post(json!({"json": {"x": 1}}))
            .unwrap()
            .status(),
        202
    );
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn transport_failures_go_to_the_backup_domain() {
    let dead = common::closed_port();
    let backup = Server::start(Keys::shared(), common::echo());
    let client = backup
        .builder()
        .base_uri(format!("http://{dead}/"))
        .retry(fast().backup_base_uri(&backup.base()))
        .build()
        .unwrap();
    let res = client
        .chain("v3/certificates")
        .get(json!({"query": {"algorithm_type": "RSA"}}))
        .unwrap();
    assert_eq!(res.status(), 200);
    let r = backup.last();
    assert_eq!(r.target, "/v3/certificates?algorithm_type=RSA");
    assert!(r.signature_ok);
    assert_eq!(r.headers["host"], backup.addr.to_string());

    // A call with its own base_uri stays there.
    let e = client
        .chain("v3/x")
        .get(json!({"base_uri": format!("http://{dead}/global/")}))
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                answered: false,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(backup.recorded().len(), 1);
}

#[test]
fn timeouts_before_an_answer_are_retried() {
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |_| {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply {
                    delay: Some(Duration::from_secs(2)),
                    ..Reply::json(200, json!({"late": true}))
                }
            } else {
                Reply::json(200, json!({"late": false}))
            }
        }),
    );
    let client = server
        .builder()
        .timeout(Duration::from_millis(300))
        .retry(fast())
        .build()
        .unwrap();
    let v: serde_json::Value = client.chain("v3/a").get(json!({})).unwrap().json().unwrap();
    assert_eq!(v["late"], false);
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[test]
fn the_deadline_bounds_all_attempts() {
    let (count, h) = failing(1000, system_error());
    let server = Server::start(Keys::shared(), h);
    let policy = RetryPolicy::new()
        .max_attempts(50)
        .backoff(Duration::from_millis(100), Duration::from_millis(100))
        .deadline(Duration::from_millis(450));
    let client = server.builder().retry(policy).build().unwrap();
    let t0 = Instant::now();
    let e = client.chain("v3/a").get(json!({})).unwrap_err();
    assert_eq!(e.code(), Some("SYSTEM_ERROR"));
    assert!(t0.elapsed() < Duration::from_secs(2));
    let n = count.load(Ordering::SeqCst);
    assert!((2..=9).contains(&n), "{n} attempts");
}

#[test]
fn async_calls_retry_too() {
    let (count, h) = failing(2, system_error());
    let server = Server::start(Keys::shared(), h);
    let client = server.builder().retry(fast()).build().unwrap();
    let res = common::rt()
        .block_on(client.chain("v3/a").get_async(json!({})))
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}
