//! Faults on demand, as the merchant sees them: each kind of fault met by the library's client
//! (its retry policy, `Error::Api`, `Error::OutcomeUnknown`, a transport error, its timeout),
//! seeded probabilities that fire on the same calls every run, notifications dropped, delayed,
//! duplicated and reordered as a handler using the library's `Notifier` receives them, and the
//! guarded control endpoint `/emulator/faults`. Real loopback sockets, keys made at test time.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{api, control, deliveries, Receiver};
use wechatpay_chain::notify::Notification;
use wechatpay_chain::{Client, Error, RetryPolicy};
use wechatpay_emulator::{Emulator, EmulatorConfig, Fault, FaultAction, Outcome};

const APPID: &str = "wxd678efh567hg6787";

fn fault(spec: &str) -> Fault {
    spec.parse().unwrap()
}

fn start(faults: &[&str]) -> Emulator {
    let config = faults
        .iter()
        .fold(EmulatorConfig::new(), |c, f| c.fault(fault(f)));
    support::start(config)
}

fn order(emu: &Emulator, no: &str, url: &str) -> Value {
    json!({"json": {"appid": APPID, "mchid": emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": no, "notify_url": url, "amount": {"total": 100, "currency": "CNY"},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}})
}

fn jsapi(c: &Client, emu: &Emulator, no: &str) -> Result<Value, Error> {
    c["v3/pay/transactions/jsapi"]
        .post(order(emu, no, "https://www.weixin.qq.com/wxpay/pay.php"))
        .map(|r| r.json().unwrap())
}

fn query(c: &Client, emu: &Emulator, no: &str) -> Result<Value, Error> {
    c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"mchid": emu.mchid()}}))
        .map(|r| r.json().unwrap())
}

/// The statuses the sandbox answered (or meant to) to requests whose target starts with `path`.
fn statuses(emu: &Emulator, method: &str, path: &str) -> Vec<u16> {
    emu.requests()
        .iter()
        .filter(|r| r.method == method && r.target.starts_with(path))
        .map(|r| r.status)
        .collect()
}

fn fired(emu: &Emulator) -> Vec<u64> {
    emu.faults().iter().map(|f| f.fired).collect()
}

fn retrying(emu: &Emulator) -> Client {
    emu.builder()
        .retry(
            RetryPolicy::new()
                .max_attempts(3)
                .backoff(Duration::from_millis(10), Duration::from_millis(50)),
        )
        .build()
        .unwrap()
}

#[test]
fn a_system_error_is_retried_by_the_clients_policy_and_the_retry_is_idempotent() {
    let emu = start(&["POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*1"]);
    let created = jsapi(&retrying(&emu), &emu, "FAULT-RETRY-0001").unwrap();
    assert!(created["prepay_id"].as_str().unwrap().starts_with("wx"));
    assert_eq!(
        statuses(&emu, "POST", "/v3/pay/transactions/jsapi"),
        [500, 200]
    );
    assert_eq!(fired(&emu), [1]);
    let f = &emu.fired_faults()[0];
    assert_eq!(f.on, "POST /v3/pay/transactions/jsapi");
    assert_eq!(f.spec, "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*1");
    let logged: Vec<Option<String>> = emu.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(logged, [Some(f.spec.clone()), None]);

    // Without a policy the client hands the error out, signed and verified like any answer;
    // a 5xx leaves the outcome unknown, so the sandbox carried the call out: the order exists,
    // and calling again with the same content gets the same prepay_id.
    emu.fault(fault("POST v3/pay/transactions/jsapi=SYSTEM_ERROR*1"));
    let c = support::client(&emu);
    match jsapi(&c, &emu, "FAULT-RETRY-0002").unwrap_err() {
        Error::Api {
            status: 500,
            code,
            message,
            verified: true,
            ..
        } => {
            assert_eq!(code, "SYSTEM_ERROR");
            assert_eq!(message, "系统错误");
        }
        other => panic!("expected a verified 500 SYSTEM_ERROR, got {other:?}"),
    }
    assert_eq!(
        query(&c, &emu, "FAULT-RETRY-0002").unwrap()["trade_state"],
        "NOTPAY"
    );
    let first = jsapi(&c, &emu, "FAULT-RETRY-0002").unwrap();
    assert_eq!(jsapi(&c, &emu, "FAULT-RETRY-0002").unwrap(), first);
}

#[test]
fn frequency_limited_is_an_api_error_and_on_a_refund_an_unknown_outcome() {
    let emu = start(&[
        "POST v3/pay/transactions/jsapi=FREQUENCY_LIMITED*1",
        "v3/refund/*=429:FREQUENCY_LIMITED*1",
    ]);
    let c = support::client(&emu);
    let (status, code, _) = api(jsapi(&c, &emu, "FAULT-429-0001").unwrap_err());
    assert_eq!((status, code.as_str()), (429, "FREQUENCY_LIMITED"));
    // a 4xx refuses the call: nothing was done
    assert_eq!(
        api(query(&c, &emu, "FAULT-429-0001").unwrap_err()).1,
        "ORDER_NOT_EXIST"
    );
    jsapi(&c, &emu, "FAULT-429-0001").unwrap();
    emu.pay("FAULT-429-0001").unwrap();

    let refund = json!({"json": {"out_trade_no": "FAULT-429-0001", "out_refund_no": "FAULT-429-R1",
        "amount": {"refund": 10, "total": 100, "currency": "CNY"}}});
    match c["v3/refund/domestic/refunds"]
        .post(refund.clone())
        .unwrap_err()
    {
        Error::OutcomeUnknown { path, source, .. } => {
            assert!(path.contains("refund"), "{path}");
            assert_eq!(api(*source).0, 429);
        }
        other => panic!("expected OutcomeUnknown, got {other:?}"),
    }
    // the merchant queries before calling again: no such refund, so it is safe to ask again
    let (status, _, _) = api(c["v3/refund/domestic/refunds/{out_refund_no}"]
        .get(json!({"out_refund_no": "FAULT-429-R1"}))
        .unwrap_err());
    assert_eq!(status, 404);
    let made: Value = c["v3/refund/domestic/refunds"]
        .post(refund)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(made["out_refund_no"], "FAULT-429-R1");
    assert_eq!(fired(&emu), [1, 1]);
}

#[test]
fn a_dropped_connection_leaves_the_outcome_unknown_and_a_query_finds_the_order() {
    let emu = start(&["POST v3/pay/transactions/jsapi=drop*1"]);
    let c = support::client(&emu);
    match jsapi(&c, &emu, "FAULT-DROP-0001").unwrap_err() {
        Error::Transport { answered, .. } => assert!(!answered),
        other => panic!("expected a transport error, got {other:?}"),
    }
    // the sandbox took the order before the connection went: the query finds it
    assert_eq!(
        query(&c, &emu, "FAULT-DROP-0001").unwrap()["trade_state"],
        "NOTPAY"
    );
    // with a retry policy the same call is sent again and answered
    emu.fault(fault("POST v3/pay/transactions/jsapi=drop*1"));
    let v = jsapi(&retrying(&emu), &emu, "FAULT-DROP-0002").unwrap();
    assert!(v["prepay_id"].is_string());
    assert_eq!(fired(&emu), [1, 1]);
}

#[test]
fn a_hang_meets_the_clients_timeout_and_a_short_delay_does_not() {
    let emu = start(&[
        "GET v3/pay/transactions/out-trade-no/{out_trade_no}=hang*1",
        "POST v3/pay/transactions/jsapi=delay:200ms*1",
        "v3/pay/transactions/id/*=delay:30s*1",
    ]);
    let c = emu
        .builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    // a delay below the timeout: answered
    assert!(jsapi(&c, &emu, "FAULT-HANG-0001").unwrap()["prepay_id"].is_string());
    match query(&c, &emu, "FAULT-HANG-0001").unwrap_err() {
        Error::Timeout { answered, .. } => assert!(!answered),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // a delay beyond it: the same
    let late = c["v3/pay/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": "4200000000000000", "query": {"mchid": emu.mchid()}}));
    assert!(matches!(late, Err(Error::Timeout { .. })), "{late:?}");
    // the rules are used up: the next query is answered
    assert_eq!(
        query(&c, &emu, "FAULT-HANG-0001").unwrap()["trade_state"],
        "NOTPAY"
    );
    assert_eq!(fired(&emu), [1, 1, 1]);
}

#[test]
fn a_seeded_probability_fires_on_the_same_calls_every_run() {
    let run = |spec: &str| -> Vec<bool> {
        let emu = start(&[spec]);
        let c = support::client(&emu);
        jsapi(&c, &emu, "FAULT-SEED-0001").unwrap();
        let outcomes: Vec<bool> = (0..40)
            .map(|_| match query(&c, &emu, "FAULT-SEED-0001") {
                Ok(_) => false,
                Err(e) => {
                    assert_eq!(api(e).1, "SYSTEM_ERROR");
                    true
                }
            })
            .collect();
        let failed = outcomes.iter().filter(|f| **f).count() as u64;
        assert_eq!(emu.faults()[0].fired, failed);
        assert_eq!(emu.faults()[0].matched, 40);
        outcomes
    };
    let spec = "v3/pay/transactions/out-trade-no/*=SYSTEM_ERROR@0.5,seed=7";
    let first = run(spec);
    let n = first.iter().filter(|f| **f).count();
    assert!((8..=32).contains(&n), "{n} of 40 failed");
    assert_eq!(run(spec), first);
    assert_ne!(
        run("v3/pay/transactions/out-trade-no/*=SYSTEM_ERROR@0.5,seed=8"),
        first
    );
}

#[test]
fn an_apiv2_micropay_answers_userpaying_and_the_order_query_finds_it_paid() {
    let emu = start(&["POST v2/pay/micropay=USERPAYING*1"]);
    let c = support::client(&emu);
    let micropay = json!({"xml": {"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(),
        "body": "image形象店-深圳腾大- QQ公仔", "out_trade_no": "FAULT-V2-0001",
        "total_fee": "1", "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406"}});
    match c["v2/pay/micropay"].post(micropay.clone()).unwrap_err() {
        Error::V2 {
            err_code, verified, ..
        } => {
            assert_eq!(err_code.as_deref(), Some("USERPAYING"));
            assert!(verified, "the pending answer is signed");
        }
        other => panic!("expected an APIv2 USERPAYING, got {other:?}"),
    }
    // pending: the merchant polls the order query, which finds the payment
    let q: Value = c["v2/pay/orderquery"]
        .post(
            json!({"xml": {"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(),
            "out_trade_no": "FAULT-V2-0001"}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(q["trade_state"], "SUCCESS", "{q}");

    // a refusal (a 4xx-like code) by path pattern: nothing is done, the query finds no order
    emu.fault(fault("v2/pay/*=NOAUTH*1"));
    let mut again = micropay.clone();
    again["xml"]["out_trade_no"] = json!("FAULT-V2-0002");
    let code = |e: Error| match e {
        Error::V2 { err_code, .. } => err_code.unwrap_or_default(),
        other => panic!("expected an APIv2 error, got {other:?}"),
    };
    assert_eq!(
        code(c["v2/pay/micropay"].post(again).unwrap_err()),
        "NOAUTH"
    );
    let missing = c["v2/pay/orderquery"]
        .post(
            json!({"xml": {"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(),
            "out_trade_no": "FAULT-V2-0002"}}),
        )
        .unwrap_err();
    assert_eq!(code(missing), "ORDERNOTEXIST");
}

#[test]
fn faults_apply_only_to_calls_the_platform_takes() {
    let emu = start(&["POST v3/pay/transactions/jsapi=SYSTEM_ERROR*1"]);
    // unsigned: refused as usual, the rule not used up
    let req = http::Request::post(format!("{}v3/pay/transactions/jsapi", emu.base_uri()))
        .header("content-type", "application/json")
        .body(Bytes::from_static(b"{}"))
        .unwrap();
    assert_eq!(support::send(req).0, 401);
    assert_eq!(emu.faults()[0].matched, 0);
    // a control endpoint is never faulted
    emu.fault(fault("*=hang"));
    let (status, _) = control(&emu, "emulator/faults", r#"{"spec": "v3/x=drop*1"}"#);
    assert_eq!(status, 200);
    emu.clear_faults();
    assert!(emu.faults().is_empty());
    let c = support::client(&emu);
    assert!(jsapi(&c, &emu, "FAULT-SIGNED-0001").is_ok());
}

#[test]
fn the_control_endpoint_lists_adds_and_clears_faults_behind_the_token() {
    let emu = start(&[]);
    let url = |p: &str| format!("{}emulator/faults{p}", emu.base_uri());
    let plain = |method: &str, body: &'static str| {
        let req = http::Request::builder()
            .method(method)
            .uri(url(""))
            .header("content-type", "application/json")
            .body(Bytes::from_static(body.as_bytes()))
            .unwrap();
        support::send(req).0
    };
    // changing the plan needs the token
    assert_eq!(plain("POST", r#"{"spec": "v3/refund/*=drop"}"#), 401);
    assert_eq!(plain("DELETE", ""), 401);
    assert!(emu.faults().is_empty());

    let (status, added) = control(
        &emu,
        "emulator/faults",
        r#"{"specs": ["POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2", "notify:*=duplicate"]}"#,
    );
    assert_eq!(status, 200, "{added}");
    assert_eq!(
        added["data"][0]["spec"],
        "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2"
    );
    assert_eq!(added["data"][0]["remaining"], 2);
    assert_eq!(added["data"][1]["remaining"], Value::Null);

    // a bad SPEC: 400 naming the part at fault, and nothing added (all or none)
    let (status, refused) = control(
        &emu,
        "emulator/faults",
        r#"{"specs": ["v3/x=drop", "v3/y=explode*2"]}"#,
    );
    assert_eq!(status, 400);
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("`explode` is not an action") && message.contains("drop, hang"),
        "{message}"
    );
    assert_eq!(emu.faults().len(), 2);

    // listing needs no token, and shows what fired
    let c = support::client(&emu);
    assert_eq!(api(jsapi(&c, &emu, "FAULT-CTL-0001").unwrap_err()).0, 500);
    let req = http::Request::get(url("")).body(Bytes::new()).unwrap();
    let (status, _, body) = support::send(req);
    assert_eq!(status, 200);
    let listed: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(listed["data"][0]["fired"], 1);
    assert_eq!(listed["data"][0]["remaining"], 1);
    assert_eq!(listed["fired"][0]["on"], "POST /v3/pay/transactions/jsapi");

    // cleared with the token
    let mut req = http::Request::delete(url(""));
    req = req.header(
        "authorization",
        format!("Bearer {}", emu.control_token().unwrap()),
    );
    assert_eq!(support::send(req.body(Bytes::new()).unwrap()).0, 204);
    assert!(emu.faults().is_empty());
    assert!(jsapi(&c, &emu, "FAULT-CTL-0001").is_ok());
}

/// A merchant's notification endpoint: answers 204 and hands over what it received.
fn hook() -> Receiver<(http::HeaderMap, Bytes)> {
    Receiver::new(|headers, body| ((headers, body), 204, Bytes::new()))
}

/// The hook's next notification within `within`, verified and decrypted by the library.
fn next(
    hook: &Receiver<(http::HeaderMap, Bytes)>,
    c: &Client,
    emu: &Emulator,
    within: Duration,
) -> Option<Notification> {
    let (headers, body) = hook.next_within(within)?;
    Some(
        c.notifier(emu.apiv3_key())
            .unwrap()
            .verify(&headers, &body)
            .expect("a notification the library verifies and decrypts"),
    )
}

/// An order paid by the payer, its notification going to `hook`.
fn paid(c: &Client, emu: &Emulator, no: &str, hook: &Receiver<(http::HeaderMap, Bytes)>) {
    c["v3/pay/transactions/jsapi"]
        .post(order(emu, no, &hook.url))
        .unwrap();
    emu.pay(no).unwrap();
}

#[test]
fn a_dropped_notification_never_comes_and_the_app_queries_the_order() {
    let emu = start(&["notify:TRANSACTION.SUCCESS=drop*1"]);
    let (c, hook) = (support::client(&emu), hook());
    paid(&c, &emu, "FAULT-NDROP-0001", &hook);
    let d = deliveries(&emu, 1);
    assert!(
        matches!(&d[0].outcome, Outcome::Skipped(why) if why.contains("dropped by a fault")),
        "{d:?}"
    );
    assert!(next(&hook, &c, &emu, Duration::from_millis(500)).is_none());
    // what the app does when the notification does not come: query the order
    assert_eq!(
        query(&c, &emu, "FAULT-NDROP-0001").unwrap()["trade_state"],
        "SUCCESS"
    );
    // the next payment's notification comes as usual
    paid(&c, &emu, "FAULT-NDROP-0002", &hook);
    let n = next(&hook, &c, &emu, Duration::from_secs(10)).unwrap();
    assert_eq!(n.resource["out_trade_no"], "FAULT-NDROP-0002");
}

#[test]
fn a_duplicated_notification_comes_twice_with_the_same_id() {
    let emu = start(&["notify:TRANSACTION.SUCCESS=duplicate*1"]);
    let (c, hook) = (support::client(&emu), hook());
    paid(&c, &emu, "FAULT-NDUP-0001", &hook);
    let a = next(&hook, &c, &emu, Duration::from_secs(10)).unwrap();
    let b = next(&hook, &c, &emu, Duration::from_secs(10)).expect("the same notification again");
    assert_eq!(a.id, b.id);
    assert_eq!(a.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(a.resource, b.resource);
    let d = deliveries(&emu, 2);
    assert!(d
        .iter()
        .all(|d| d.id == a.id && d.outcome == Outcome::Accepted(204)));
}

#[test]
fn a_delayed_notification_comes_later() {
    let emu = start(&["notify:*=delay:1s*1"]);
    let (c, hook) = (support::client(&emu), hook());
    paid(&c, &emu, "FAULT-NDELAY-0001", &hook);
    assert!(hook.try_next().is_none(), "nothing yet");
    assert!(emu.deliveries().is_empty());
    let n = next(&hook, &c, &emu, Duration::from_secs(10)).expect("the notification, later");
    assert_eq!(n.resource["out_trade_no"], "FAULT-NDELAY-0001");
    assert_eq!(
        emu.fired_faults()[0].on,
        format!("notify TRANSACTION.SUCCESS {}", n.id)
    );
}

#[test]
fn a_reordered_payment_notification_arrives_after_its_refunds() {
    let emu = start(&["notify:TRANSACTION.SUCCESS=reorder*1"]);
    let (c, hook) = (support::client(&emu), hook());
    paid(&c, &emu, "FAULT-NORDER-0001", &hook);
    c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "FAULT-NORDER-0001", "out_refund_no": "FAULT-NORDER-R1",
            "notify_url": hook.url, "amount": {"refund": 10, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap();
    let first = next(&hook, &c, &emu, Duration::from_secs(10)).unwrap();
    let second = next(&hook, &c, &emu, Duration::from_secs(10)).unwrap();
    assert_eq!(
        (first.event_type.as_str(), second.event_type.as_str()),
        ("REFUND.SUCCESS", "TRANSACTION.SUCCESS")
    );
    assert_eq!(second.resource["out_trade_no"], "FAULT-NORDER-0001");
}

#[test]
fn faults_are_built_in_code_as_in_specs() {
    let built = Fault::operation(
        "POST",
        "v3/refund/domestic/refunds",
        FaultAction::error("FREQUENCY_LIMITED").unwrap(),
    )
    .unwrap()
    .times(3);
    assert_eq!(
        built,
        fault("POST v3/refund/domestic/refunds=429:FREQUENCY_LIMITED*3")
    );
    let n = Fault::notification("REFUND.SUCCESS", FaultAction::Hang).unwrap_err();
    assert!(n.to_string().contains("does not apply here"), "{n}");
    assert!(
        Fault::path("v3/*", FaultAction::Delay(Duration::from_secs(1)))
            .unwrap()
            .chance(0.25, 9)
            .to_string()
            .ends_with("@0.25,seed=9")
    );
}

#[test]
fn a_hung_call_frees_its_connection_slot_when_the_client_leaves() {
    // one connection at a time: if the hung call kept its slot, nothing else would be served
    let emu = support::start(
        EmulatorConfig::new()
            .max_connections(1)
            .fault(fault("POST v3/pay/transactions/jsapi=hang*1")),
    );
    let c = emu
        .builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    assert!(matches!(
        jsapi(&c, &emu, "FAULT-SLOT-0001"),
        Err(Error::Timeout { .. })
    ));
    let again = emu
        .builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert!(jsapi(&again, &emu, "FAULT-SLOT-0001").unwrap()["prepay_id"].is_string());
}

#[test]
fn a_notification_delay_counts_on_the_sandboxs_clock() {
    // the clock stopped: an hour's delay passes only when the clock is moved an hour on
    let emu = support::start(
        EmulatorConfig::new()
            .clock_frozen(true)
            .fault(fault("notify:TRANSACTION.SUCCESS=delay:1h*1")),
    );
    let (c, hook) = (support::client(&emu), hook());
    paid(&c, &emu, "FAULT-NCLOCK-0001", &hook);
    assert!(next(&hook, &c, &emu, Duration::from_millis(500)).is_none());
    emu.advance_clock(Duration::from_secs(1800));
    assert!(next(&hook, &c, &emu, Duration::from_millis(500)).is_none());
    emu.advance_clock(Duration::from_secs(1800));
    let n = next(&hook, &c, &emu, Duration::from_secs(10)).expect("due an hour on");
    assert_eq!(n.resource["out_trade_no"], "FAULT-NCLOCK-0001");
}
