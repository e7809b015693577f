//! The sandbox's clock: unpaid orders close at `time_expire` (or two hours on), refunds end
//! after their delay and unconfirmed transfers after a day, notifications are retried on the
//! platform's schedule, and a day's bill exists once the day has ended, each in clock time; the
//! clock read, set and advanced through the `Emulator` API and `/emulator/clock` (behind the
//! control guard). The library's client is the merchant; notifications are received on
//! loopback. Real sockets, keys generated at test time; the clock is frozen, so nothing here
//! waits for real time to pass.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde_json::{json, Value};
use support::{api, client, control, deliveries, trade_state, Receiver};
use wechatpay_chain::download::Bill;
use wechatpay_chain::Client;
use wechatpay_emulator::{
    time_from_rfc3339, Emulator, EmulatorConfig, Outcome, PaymentAction, PLATFORM_RETRY_SCHEDULE,
};

const APPID: &str = "wxd678efh567hg6787";
/// 2026-12-07T10:00:00+08:00, where the tests' clocks start.
const START: &str = "2026-12-07T10:00:00+08:00";
const START_UNIX: i64 = 1_796_608_800;

fn at(rfc3339: &str) -> SystemTime {
    time_from_rfc3339(rfc3339).unwrap()
}

/// An emulator whose clock stands still at [`START`].
fn frozen(config: EmulatorConfig) -> Emulator {
    support::start(config.clock_start(at(START)).clock_frozen(true))
}

fn native(c: &Client, emu: &Emulator, no: &str, url: &str, extra: Value) -> Value {
    let mut body = json!({"appid": APPID, "mchid": emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": no, "notify_url": url, "amount": {"total": 100}});
    if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
        b.extend(e);
    }
    c["v3/pay/transactions/native"]
        .post(json!({ "json": body }))
        .unwrap()
        .json()
        .unwrap()
}

fn query(c: &Client, emu: &Emulator, no: &str) -> Value {
    c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap()
}

/// A notification endpoint that refuses (500) the first `refusals` requests, then answers 204.
fn flaky(refusals: usize) -> Receiver<()> {
    let seen = AtomicUsize::new(0);
    Receiver::new(move |_, _| {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        ((), if n < refusals { 500 } else { 204 }, Bytes::new())
    })
}

#[test]
fn the_clock_starts_where_configured_and_moves_only_when_told() {
    let emu = frozen(EmulatorConfig::new());
    let r = emu.clock();
    assert!(r.frozen);
    assert_eq!(r.unix(), START_UNIX);
    assert_eq!(r.rfc3339(), START);
    assert_eq!(
        emu.advance_clock(Duration::from_secs(90)).unix(),
        START_UNIX + 90
    );
    assert_eq!(
        emu.set_clock(at("2027-01-01T00:00:00+08:00")).rfc3339(),
        "2027-01-01T00:00:00+08:00"
    );
    // Running again, it goes on from where it stood, with real time.
    let running = emu.freeze_clock(false);
    assert!(!running.frozen);
    let later = emu.clock().unix();
    assert!((running.unix()..running.unix() + 60).contains(&later));

    // A clock left alone reads real time.
    let real = support::start(EmulatorConfig::new());
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((real.clock().unix() - now).abs() < 60, "{:?}", real.clock());
    assert!(!real.clock().frozen);
}

#[test]
fn unpaid_orders_close_at_time_expire_and_cannot_be_paid_after() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    let url = "http://127.0.0.1:9/notify";
    native(
        &c,
        &emu,
        "expiring001",
        url,
        json!({"time_expire": "2026-12-07T10:30:00+08:00"}),
    );
    native(&c, &emu, "default001", url, json!({}));
    native(
        &c,
        &emu,
        "paid001",
        url,
        json!({"time_expire": "2026-12-07T10:30:00+08:00"}),
    );
    emu.pay("paid001").unwrap();
    let created = query(&c, &emu, "expiring001");
    assert_eq!(created["trade_state"], "NOTPAY");

    emu.advance_clock(Duration::from_secs(30 * 60 - 1));
    assert_eq!(trade_state(&c, &emu, "expiring001"), "NOTPAY");
    emu.advance_clock(Duration::from_secs(1));
    assert_eq!(trade_state(&c, &emu, "expiring001"), "CLOSED");
    assert_eq!(
        trade_state(&c, &emu, "paid001"),
        "SUCCESS",
        "a paid order stays paid"
    );
    // Paying it now fails as paying a closed order does.
    let e = emu.pay("expiring001").unwrap_err();
    assert_eq!(api(e).1, "ORDER_CLOSED");
    let e = emu
        .act_on_payment("expiring001", PaymentAction::Paid, None, None)
        .unwrap_err();
    assert_eq!(api(e).0, 409);

    // Without time_expire: two hours after creation.
    assert_eq!(trade_state(&c, &emu, "default001"), "NOTPAY");
    emu.set_clock(at("2026-12-07T11:59:59+08:00"));
    assert_eq!(trade_state(&c, &emu, "default001"), "NOTPAY");
    emu.advance_clock(Duration::from_secs(1));
    assert_eq!(trade_state(&c, &emu, "default001"), "CLOSED");
    assert!(
        emu.deliveries()
            .iter()
            .all(|d| d.event_type == "TRANSACTION.SUCCESS"),
        "closing by expiry notifies nothing: {:?}",
        emu.deliveries()
    );
}

#[test]
fn a_partner_order_expires_apart_from_another_sub_merchants_of_the_same_number() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    let order = |sub: &str, extra: Value| {
        let mut body = json!({"sp_appid": "wx8888888888888888", "sp_mchid": emu.mchid(),
            "sub_mchid": sub, "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "partner001",
            "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 100, "currency": "CNY"}});
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        c["v3/pay/partner/transactions/native"]
            .post(json!({ "json": body }))
            .unwrap();
    };
    order(
        "1900000109",
        json!({"time_expire": "2026-12-07T10:10:00+08:00"}),
    );
    order("1900000110", json!({}));
    let state = |sub: &str| -> Value {
        let v: Value = c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": "partner001",
                "query": {"sp_mchid": emu.mchid(), "sub_mchid": sub}}))
            .unwrap()
            .json()
            .unwrap();
        v["trade_state"].clone()
    };
    emu.advance_clock(Duration::from_secs(600));
    assert_eq!(state("1900000109"), "CLOSED");
    assert_eq!(state("1900000110"), "NOTPAY");
    emu.advance_clock(Duration::from_secs(6600));
    assert_eq!(state("1900000110"), "CLOSED");
}

#[test]
fn a_combined_order_unpaid_at_time_expire_closes_every_sub_order() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    let sub = |no: &str| {
        json!({"mchid": emu.mchid(), "sub_mchid": "1900000109", "attach": "深圳分店", "out_trade_no": no,
               "amount": {"total_amount": 50, "currency": "CNY"}, "description": "QQ会员充值"})
    };
    c["v3/combine-transactions/native"]
        .post(
            json!({"json": {"combine_appid": APPID, "combine_mchid": emu.mchid(),
            "combine_out_trade_no": "combined001", "notify_url": "http://127.0.0.1:9/notify",
            "scene_info": {"device_id": "POS1:1", "payer_client_ip": "14.17.22.32"},
            "sub_orders": [sub("combined-sub1"), sub("combined-sub2")],
            "time_expire": "2026-12-07T10:05:00+08:00"}}),
        )
        .unwrap();
    let states = || -> Vec<Value> {
        let v: Value = c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}"]
            .get(json!({"combine_out_trade_no": "combined001"}))
            .unwrap()
            .json()
            .unwrap();
        v["sub_orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["trade_state"].clone())
            .collect()
    };
    assert_eq!(states(), vec![json!("NOTPAY"), json!("NOTPAY")]);
    emu.advance_clock(Duration::from_secs(300));
    assert_eq!(states(), vec![json!("CLOSED"), json!("CLOSED")]);
    let e = emu
        .act_on_payment("combined001", PaymentAction::Paid, None, None)
        .unwrap_err();
    assert_eq!(api(e).0, 409);
}

#[test]
fn a_running_clock_closes_an_order_when_real_time_reaches_its_time_expire() {
    let emu = support::start(EmulatorConfig::new());
    let c = client(&emu);
    // Two seconds from now, in the platform's format (whole seconds).
    let expire = emu.clock().unix() + 2;
    let stamp = wechatpay_emulator::events::rfc3339(expire);
    native(
        &c,
        &emu,
        "realtime001",
        "http://127.0.0.1:9/notify",
        json!({ "time_expire": stamp }),
    );
    assert_eq!(trade_state(&c, &emu, "realtime001"), "NOTPAY");
    while emu.clock().unix() < expire {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Due by now: run before the query is answered, whether or not the background task woke.
    assert_eq!(trade_state(&c, &emu, "realtime001"), "CLOSED");
}

#[test]
fn signatures_are_checked_against_real_time_whatever_the_clock() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    native(&c, &emu, "far001", "http://127.0.0.1:9/notify", json!({}));
    emu.set_clock(at("2030-01-01T00:00:00+08:00"));
    // The merchant's client signs with its own (real) clock: still accepted.
    assert_eq!(trade_state(&c, &emu, "far001"), "CLOSED");
    assert!(emu.requests().iter().all(|r| r.verified));
}

#[test]
fn refunds_end_after_their_delay_in_clock_time() {
    let emu = frozen(EmulatorConfig::new().refund_delay(Some(Duration::from_secs(600))));
    let c = client(&emu);
    let hook = Receiver::new(|_, body| (body, 204, Bytes::new()));
    native(&c, &emu, "refunded001", &hook.url, json!({}));
    emu.pay("refunded001").unwrap();
    let _paid = hook
        .next_within(Duration::from_secs(10))
        .expect("TRANSACTION.SUCCESS");
    let refund = |no: &str| -> Value {
        c["v3/refund/domestic/refunds/{out_refund_no}"]
            .get(json!({"out_refund_no": no}))
            .unwrap()
            .json()
            .unwrap()
    };
    let made: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "refunded001", "out_refund_no": "clock-r001",
            "notify_url": hook.url, "amount": {"refund": 40, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(made["status"], "PROCESSING");
    assert_eq!(made["create_time"], START);

    emu.advance_clock(Duration::from_secs(599));
    assert_eq!(refund("clock-r001")["status"], "PROCESSING");
    emu.advance_clock(Duration::from_secs(1));
    let done = refund("clock-r001");
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["success_time"], "2026-12-07T10:10:00+08:00");
    let body = hook
        .next_within(Duration::from_secs(10))
        .expect("REFUND.SUCCESS");
    let n: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(n["event_type"], "REFUND.SUCCESS");
    assert_eq!(n["create_time"], "2026-12-07T10:10:00+08:00");
}

#[test]
fn transfers_left_unconfirmed_for_a_day_fail_overdue() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    let hook = Receiver::new(|_, body| (body, 204, Bytes::new()));
    let created: Value = c["v3/fund-app/mch-transfer/transfer-bills"]
        .post(json!({"json": {
            "appid": "wxf636efh567hg4356", "out_bill_no": "overdue001",
            "openid": "o-MYE42l80oelYMDE34nYD456Xoy", "transfer_amount": 100,
            "transfer_remark": "2020年4月报销", "notify_url": hook.url,
            "user_recv_perception": "现金奖励", "transfer_scene_id": "1000",
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": "新会员有礼"},
                {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
            ],
        }}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(created["state"], "WAIT_USER_CONFIRM");
    let bill = || -> Value {
        c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
            .get(json!({"out_bill_no": "overdue001"}))
            .unwrap()
            .json()
            .unwrap()
    };
    emu.advance_clock(Duration::from_secs(86_399));
    assert_eq!(bill()["state"], "WAIT_USER_CONFIRM");
    emu.advance_clock(Duration::from_secs(1));
    let b = bill();
    assert_eq!(b["state"], "FAIL");
    assert_eq!(b["fail_reason"], "OVERDUE_CLOSE");
    assert_eq!(b["update_time"], "2026-12-08T10:00:00+08:00");
    let body = hook
        .next_within(Duration::from_secs(10))
        .expect("the end notified");
    let n: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(n["event_type"], "MCHTRANSFER.BILL.FINISHED");
}

#[test]
fn notifications_are_retried_on_the_platforms_schedule_in_clock_time() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    // Refuses three times, then accepts: attempts at 0, 15 s, 30 s and 60 s.
    let hook = flaky(3);
    native(&c, &emu, "retried001", &hook.url, json!({}));
    emu.pay("retried001").unwrap();
    hook.next_within(Duration::from_secs(10))
        .expect("the first attempt");
    assert_eq!(deliveries(&emu, 1).len(), 1);

    emu.advance_clock(Duration::from_secs(14));
    assert!(
        hook.next_within(Duration::from_millis(300)).is_none(),
        "no retry before 15 s of clock time"
    );
    emu.advance_clock(Duration::from_secs(1));
    hook.next_within(Duration::from_secs(10))
        .expect("the retry at 15 s");
    emu.advance_clock(Duration::from_secs(15));
    hook.next_within(Duration::from_secs(10))
        .expect("the retry at 30 s");
    emu.advance_clock(Duration::from_secs(29));
    assert!(hook.next_within(Duration::from_millis(300)).is_none());
    emu.advance_clock(Duration::from_secs(1));
    hook.next_within(Duration::from_secs(10))
        .expect("the retry at 60 s");
    let d = deliveries(&emu, 4);
    let seen: Vec<(u32, i64, bool)> = d
        .iter()
        .map(|d| {
            let ok = matches!(d.outcome, Outcome::Accepted(_));
            (d.attempt, d.at - START_UNIX, ok)
        })
        .collect();
    assert_eq!(
        seen,
        vec![(1, 0, false), (2, 15, false), (3, 30, false), (4, 60, true)]
    );
    // Accepted: a day on, nothing more.
    emu.advance_clock(Duration::from_secs(86_400));
    assert!(hook.next_within(Duration::from_millis(300)).is_none());
    assert_eq!(emu.deliveries().len(), 4);
}

#[test]
fn a_day_on_runs_every_retry_due_in_order() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    let hook = flaky(usize::MAX);
    native(&c, &emu, "refused001", &hook.url, json!({}));
    emu.pay("refused001").unwrap();
    assert_eq!(deliveries(&emu, 1).len(), 1);
    let whole: Duration = PLATFORM_RETRY_SCHEDULE.iter().sum();
    emu.advance_clock(whole - Duration::from_secs(1));
    let d = deliveries(&emu, 15);
    assert_eq!(d.len(), 15, "all but the last retry: {d:?}");
    // The last retry is queued once the attempt before it is recorded.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while emu.clock().pending == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(emu.clock().pending, 1, "the last retry waits for its time");
    assert_eq!(emu.deliveries().len(), 15);
    emu.advance_clock(Duration::from_secs(2 * 86_400));
    let d = deliveries(&emu, 16);
    assert_eq!(d.len(), 16, "the first attempt and 15 retries: {d:?}");
    // Each retry came due on the way and was made at once, at the clock's time then.
    let attempts: Vec<u32> = d.iter().map(|d| d.attempt).collect();
    assert_eq!(attempts, (1..=16).collect::<Vec<u32>>());
    assert_eq!(d[0].at, START_UNIX);
    let whole = whole.as_secs() as i64;
    assert!(
        d[1..15].iter().all(|d| d.at == START_UNIX + whole - 1),
        "{d:?}"
    );
    assert_eq!(d[15].at, START_UNIX + whole + 2 * 86_400 - 1);
    emu.advance_clock(Duration::from_secs(86_400));
    assert_eq!(
        emu.deliveries().len(),
        16,
        "no attempt after the last retry"
    );
}

#[test]
fn a_days_bill_exists_once_the_day_has_ended() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    native(
        &c,
        &emu,
        "billed001",
        "http://127.0.0.1:9/notify",
        json!({}),
    );
    emu.pay("billed001").unwrap();
    let bill = || c["v3/bill/tradebill"].get(json!({"query": {"bill_date": "2026-12-07"}}));
    let (status, code, _) = api(bill().unwrap_err());
    assert_eq!((status, code.as_str()), (400, "NO_STATEMENT_EXIST"));
    // Tomorrow's too.
    let e = c["v3/bill/fundflowbill"]
        .get(json!({"query": {"bill_date": "2026-12-08"}}))
        .unwrap_err();
    assert_eq!(api(e).1, "NO_STATEMENT_EXIST");
    emu.set_clock(at("2026-12-07T23:59:59+08:00"));
    assert_eq!(api(bill().unwrap_err()).1, "NO_STATEMENT_EXIST");
    emu.advance_clock(Duration::from_secs(1));
    let listing: Bill = bill().unwrap().json().unwrap();
    let mut csv = Vec::new();
    c.download_bill(&listing, json!({}), &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.contains("`billed001"), "{csv}");

    // APIv2 as well: the day's bill once it has ended, not the next day's.
    let v2 = |day: &str| {
        c["v2/pay/downloadbill"].post(json!({"xml": {"appid": APPID, "mch_id": emu.mchid(),
            "bill_date": day, "bill_type": "ALL"}}))
    };
    assert!(v2("20261207").unwrap().text().contains("`billed001"));
    let e = v2("20261208").unwrap_err().to_string();
    assert!(e.contains("No Bill Exist"), "{e}");
}

#[test]
fn the_control_endpoint_reads_sets_and_advances_behind_the_guard() {
    let emu = frozen(EmulatorConfig::new());
    let c = client(&emu);
    native(&c, &emu, "ctl001", "http://127.0.0.1:9/notify", json!({}));
    let uri = format!("{}emulator/clock", emu.base_uri());

    // Reading needs no token.
    let (status, _, body) = support::send(http::Request::get(&uri).body(Bytes::new()).unwrap());
    assert_eq!(status, 200);
    let shown: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(shown["now"], START);
    assert_eq!(shown["unix"], START_UNIX);
    assert_eq!(shown["frozen"], true);
    assert_eq!(shown["pending"], 1, "the order's expiry waits");

    // Changing it does.
    let (status, _, _) = support::send(
        http::Request::post(&uri)
            .header("content-type", "application/json")
            .body(Bytes::from(r#"{"advance": "1d"}"#))
            .unwrap(),
    );
    assert_eq!(status, 401);
    assert_eq!(emu.clock().unix(), START_UNIX, "refused: unchanged");

    let (status, v) = control(&emu, "emulator/clock", r#"{"advance": "1h30m"}"#);
    assert_eq!((status, v["unix"].as_i64()), (200, Some(START_UNIX + 5400)));
    let (_, v) = control(&emu, "emulator/clock", r#"{"advance": 15}"#);
    assert_eq!(v["unix"].as_i64(), Some(START_UNIX + 5415));
    let (_, v) = control(
        &emu,
        "emulator/clock",
        r#"{"set": "2026-12-07T12:00:00+08:00"}"#,
    );
    assert_eq!(v["now"], "2026-12-07T12:00:00+08:00");
    assert_eq!(v["pending"], 0, "the order expired on the way");
    assert_eq!(trade_state(&c, &emu, "ctl001"), "CLOSED");
    let (_, v) = control(
        &emu,
        "emulator/clock",
        &format!(r#"{{"set": {START_UNIX}}}"#),
    );
    assert_eq!(v["now"], START, "set may go back");

    for (bad, field) in [
        (r#"{"advance": "-5s"}"#, "/advance"),
        (r#"{"advance": "soon"}"#, "/advance"),
        (r#"{"set": "tomorrow"}"#, "/set"),
        (r#"{"set": 1, "advance": 1}"#, "/advance"),
        (r#"{"frozen": "yes"}"#, "/frozen"),
        (r#"{"speed": 2}"#, "/speed"),
        (r#"{}"#, "/"),
    ] {
        let (status, v) = control(&emu, "emulator/clock", bad);
        assert_eq!(status, 400, "{bad}: {v}");
        assert_eq!(v["code"], "PARAM_ERROR", "{bad}: {v}");
        assert_eq!(v["detail"]["field"], field, "{bad}: {v}");
    }
    let (_, v) = control(&emu, "emulator/clock", r#"{"frozen": false}"#);
    assert_eq!(v["frozen"], false);
    assert!(!emu.clock().frozen);
    let r = emu.clock();
    assert!(r.unix() >= START_UNIX && r.unix() < START_UNIX + 60);
}
