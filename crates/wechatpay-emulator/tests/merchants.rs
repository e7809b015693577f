//! Several merchants in one sandbox: two direct merchants and a service provider with a
//! sub-merchant, each calling as itself with the library's client (its own key and serial)
//! over real loopback. Orders are scoped per merchant, a key cannot sign for another merchant,
//! a service provider acts for its own sub-merchants only, and each merchant's notifications
//! decrypt with its own APIv3 key only.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{api, Receiver};
use wechatpay_chain::crypto::Rsa;
use wechatpay_chain::download::Bill;
use wechatpay_chain::Client;
use wechatpay_emulator::{Emulator, EmulatorConfig, MerchantConfig, MerchantRole, PaymentAction};

const A: &str = "1900000001";
const B: &str = "1900000002";
const SP: &str = "1900000100";
const SUB: &str = "1900000101";
const APPID: &str = "wxd678efh567hg6787";

/// A and B direct, SP a service provider with SUB.
fn start() -> Emulator {
    support::start(
        EmulatorConfig::new()
            .mchid(A)
            .merchant(MerchantConfig::new(B))
            .service_provider(MerchantConfig::new(SP), [MerchantConfig::new(SUB)]),
    )
}

/// The library's client signing as `mchid`.
fn client_as(emu: &Emulator, mchid: &str) -> Client {
    emu.builder_for(mchid)
        .expect("a merchant of the sandbox")
        .build()
        .unwrap()
}

fn order(mchid: &str, no: &str, total: i64, url: &str) -> Value {
    json!({"json": {"appid": APPID, "mchid": mchid, "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": no, "notify_url": url, "amount": {"total": total, "currency": "CNY"}}})
}

fn query(c: &Client, mchid: &str, no: &str) -> Result<Value, (u16, String, Option<String>)> {
    c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"mchid": mchid}}))
        .map(|r| r.json().unwrap())
        .map_err(api)
}

fn partner(sp: &str, sub: &str, no: &str, url: &str) -> Value {
    json!({"json": {"sp_appid": "wx8888888888888888", "sp_mchid": sp, "sub_mchid": sub,
        "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": no, "notify_url": url,
        "amount": {"total": 88, "currency": "CNY"}, "payer": {"sp_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}})
}

fn partner_query(
    c: &Client,
    sp: &str,
    sub: &str,
    no: &str,
) -> Result<Value, (u16, String, Option<String>)> {
    c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"sp_mchid": sp, "sub_mchid": sub}}))
        .map(|r| r.json().unwrap())
        .map_err(api)
}

const NOTIFY: &str = "https://www.weixin.qq.com/wxpay/pay.php";

#[test]
fn the_sandbox_lists_its_merchants_and_their_roles() {
    let emu = start();
    let ms = emu.merchants();
    let seen: Vec<(&str, &MerchantRole)> = ms.iter().map(|m| (m.mchid(), m.role())).collect();
    assert_eq!(
        seen,
        vec![
            (A, &MerchantRole::Direct),
            (B, &MerchantRole::Direct),
            (
                SP,
                &MerchantRole::ServiceProvider {
                    sub_mchids: vec![SUB.into()]
                }
            ),
            (
                SUB,
                &MerchantRole::SubMerchant {
                    sp_mchid: SP.into()
                }
            ),
        ]
    );
    // each its own key, serial and APIv3 key
    for (i, m) in ms.iter().enumerate() {
        assert!(m.private_key().is_some());
        for other in &ms[i + 1..] {
            assert_ne!(m.serial(), other.serial());
            assert_ne!(m.apiv3_key(), other.apiv3_key());
        }
    }
    assert_eq!(ms[0].serial(), emu.merchant_serial());
    assert_eq!(ms[0].apiv3_key(), emu.apiv3_key());
    assert!(emu.builder_for("1900000999").is_none());
    // GET /emulator lists them, numbers, serials and roles, no keys
    let req = http::Request::get(format!("{}emulator", emu.base_uri()))
        .body(Bytes::new())
        .unwrap();
    let (status, _, body) = support::send(req);
    assert_eq!(status, 200);
    let info: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        info["merchants"],
        json!([
            {"mchid": A, "merchant_serial": ms[0].serial(), "role": "direct"},
            {"mchid": B, "merchant_serial": ms[1].serial(), "role": "direct"},
            {"mchid": SP, "merchant_serial": ms[2].serial(), "role": "service_provider", "sub_mchids": [SUB]},
            {"mchid": SUB, "merchant_serial": ms[3].serial(), "role": "sub_merchant", "sp_mchid": SP},
        ])
    );
    for m in &ms {
        assert!(!String::from_utf8_lossy(&body).contains(m.apiv3_key()));
    }
    // secrets stay out of Debug
    let shown = format!("{ms:?}");
    assert!(!shown.contains(ms[1].apiv3_key()), "{shown}");
    // an mchid used twice is refused at start
    let twice = EmulatorConfig::new()
        .mchid(A)
        .merchant(MerchantConfig::new(A));
    let e = common::rt()
        .block_on(Emulator::start_async(twice))
        .unwrap_err();
    assert!(e.to_string().contains("used twice"), "{e}");
}

#[test]
fn each_direct_merchant_creates_and_queries_its_own_orders_and_sees_no_other() {
    let emu = start();
    let (a, b) = (client_as(&emu, A), client_as(&emu, B));
    // the same number is two orders, one per merchant
    a["v3/pay/transactions/native"]
        .post(order(A, "SAME-NUMBER-01", 100, NOTIFY))
        .unwrap();
    b["v3/pay/transactions/native"]
        .post(order(B, "SAME-NUMBER-01", 200, NOTIFY))
        .unwrap();
    let va = query(&a, A, "SAME-NUMBER-01").unwrap();
    let vb = query(&b, B, "SAME-NUMBER-01").unwrap();
    assert_eq!(
        (va["mchid"].as_str(), va["amount"]["total"].as_i64()),
        (Some(A), Some(100))
    );
    assert_eq!(
        (vb["mchid"].as_str(), vb["amount"]["total"].as_i64()),
        (Some(B), Some(200))
    );

    // B's order is not A's to see, by number or by id, nor to close
    b["v3/pay/transactions/jsapi"]
        .post({
            let mut o = order(B, "B-ONLY-000001", 5, NOTIFY);
            o["json"]["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
            o
        })
        .unwrap();
    let e = query(&a, A, "B-ONLY-000001").unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "ORDER_NOT_EXIST"));
    let paid = emu
        .act_on_payment("B-ONLY-000001", PaymentAction::Paid, Some(B), None)
        .unwrap();
    assert_eq!(paid["mchid"], B);
    let id = paid["transaction_id"].as_str().unwrap();
    let e = api(a["v3/pay/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": id, "query": {"mchid": A}}))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (404, "ORDER_NOT_EXIST"));
    let by_id: Value = b["v3/pay/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": id, "query": {"mchid": B}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(by_id["out_trade_no"], "B-ONLY-000001");
    let e = api(a["v3/pay/transactions/out-trade-no/{out_trade_no}/close"]
        .post(json!({"out_trade_no": "B-ONLY-000001", "json": {"mchid": A}}))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (404, "ORDER_NOT_EXIST"));

    // the flows kept for the first merchant refuse B rather than show it A's state
    for (path, args) in [
        (
            "v3/combine-transactions/out-trade-no/{combine_out_trade_no}",
            json!({"combine_out_trade_no": "X-00000001"}),
        ),
        (
            "v3/profitsharing/orders/{out_order_no}",
            json!({"out_order_no": "X-00000001",
                "query": {"transaction_id": "4200000000000000000000000001"}}),
        ),
    ] {
        let e = api(b.chain(path).get(args).unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (403, "NO_AUTH"), "{path}");
    }
    // A's are A's as before
    let e = api(
        a["v3/combine-transactions/out-trade-no/{combine_out_trade_no}"]
            .get(json!({"combine_out_trade_no": "X-00000001"}))
            .unwrap_err(),
    );
    assert_eq!(e.0, 404);

    // A's bill of the day lists A's payment, not B's
    emu.act_on_payment("SAME-NUMBER-01", PaymentAction::Paid, None, None)
        .unwrap();
    emu.advance_clock(Duration::from_secs(86_400));
    let day = &paid["success_time"].as_str().unwrap()[..10];
    let listing: Bill = a["v3/bill/tradebill"]
        .get(json!({"query": {"bill_date": day}}))
        .unwrap()
        .json()
        .unwrap();
    let mut csv = Vec::new();
    a.download_bill(&listing, json!({}), &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.contains("`SAME-NUMBER-01"), "{csv}");
    assert!(!csv.contains(id) && !csv.contains("B-ONLY-000001"), "{csv}");

    // A cannot act for B: a body or query naming B, signed by A
    let e = api(a["v3/pay/transactions/native"]
        .post(order(B, "A-AS-B-00001", 1, NOTIFY))
        .unwrap_err());
    assert_eq!((e.0, e.2.as_deref()), (400, Some("/mchid")));
    let e = query(&a, B, "SAME-NUMBER-01").unwrap_err();
    assert_eq!((e.0, e.2.as_deref()), (400, Some("/mchid")));
}

#[test]
fn a_key_cannot_sign_as_another_merchant() {
    let emu = start();
    let ms = emu.merchants();
    let (a, b) = (&ms[0], &ms[1]);
    // B's mchid and serial, A's key
    let forged = emu
        .builder()
        .mchid(b.mchid())
        .serial(b.serial())
        .private_key(a.private_key().unwrap().clone())
        .build()
        .unwrap();
    let e = api(forged["v3/pay/transactions/native"]
        .post(order(B, "FORGED-00001", 1, NOTIFY))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (401, "SIGN_ERROR"));
    // B's mchid with A's serial
    let forged = emu
        .builder()
        .mchid(b.mchid())
        .serial(a.serial())
        .private_key(a.private_key().unwrap().clone())
        .build()
        .unwrap();
    let e = api(forged["v3/pay/transactions/native"]
        .post(order(B, "FORGED-00002", 1, NOTIFY))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (401, "SIGN_ERROR"));
    // an mchid the sandbox does not have
    let stranger = emu.builder().mchid("1900000999").build().unwrap();
    let e = api(stranger["v3/pay/transactions/native"]
        .post(order("1900000999", "STRANGER-001", 1, NOTIFY))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (401, "SIGN_ERROR"));
    // nothing was made
    assert_eq!(
        query(&client_as(&emu, B), B, "FORGED-00001").unwrap_err().1,
        "ORDER_NOT_EXIST"
    );
}

#[test]
fn a_service_provider_orders_for_its_own_sub_merchants_only() {
    let emu = start();
    let sp = client_as(&emu, SP);
    let created: Value = sp["v3/pay/partner/transactions/jsapi"]
        .post(partner(SP, SUB, "SP-FOR-SUB-01", NOTIFY))
        .unwrap()
        .json()
        .unwrap();
    assert!(created["prepay_id"].is_string());
    let v = partner_query(&sp, SP, SUB, "SP-FOR-SUB-01").unwrap();
    assert_eq!(
        (
            v["sp_mchid"].as_str(),
            v["sub_mchid"].as_str(),
            v["trade_state"].as_str()
        ),
        (Some(SP), Some(SUB), Some("NOTPAY"))
    );

    // not for a sub-merchant it does not have: a stranger, a direct merchant, itself
    for (sub, status) in [("1900000999", 403), (A, 403), (B, 403)] {
        let e = api(sp["v3/pay/partner/transactions/jsapi"]
            .post(partner(SP, sub, "SP-NOT-SUB-01", NOTIFY))
            .unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (status, "NO_AUTH"), "{sub}");
    }
    let e = partner_query(&sp, SP, "1900000999", "SP-FOR-SUB-01").unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (403, "NO_AUTH"));
    // nor may other merchants act for SP's sub-merchant, or see its order
    for mchid in [A, B] {
        let c = client_as(&emu, mchid);
        let e = api(c["v3/pay/partner/transactions/jsapi"]
            .post(partner(mchid, SUB, "OTHER-FOR-SUB", NOTIFY))
            .unwrap_err());
        assert_eq!((e.0, e.1.as_str()), (403, "NO_AUTH"), "{mchid}");
        let e = partner_query(&c, mchid, SUB, "SP-FOR-SUB-01").unwrap_err();
        assert_eq!((e.0, e.1.as_str()), (403, "NO_AUTH"), "{mchid}");
        // nor sign as the service provider
        let e = partner_query(&c, SP, SUB, "SP-FOR-SUB-01").unwrap_err();
        assert_eq!((e.0, e.2.as_deref()), (400, Some("/sp_mchid")), "{mchid}");
    }
    // the sub-merchant is not its own service provider
    let c = client_as(&emu, SUB);
    let e = api(c["v3/pay/partner/transactions/jsapi"]
        .post(partner(SUB, SUB, "SUB-FOR-SUB-1", NOTIFY))
        .unwrap_err());
    assert_eq!((e.0, e.2.as_deref()), (400, Some("/sub_mchid")));
    let e = partner_query(&c, SUB, SUB, "SP-FOR-SUB-01").unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "ORDER_NOT_EXIST"));
    // closing: the service provider may, for its sub-merchant
    let res = sp["v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close"]
        .post(json!({"out_trade_no": "SP-FOR-SUB-01", "json": {"sp_mchid": SP, "sub_mchid": SUB}}))
        .unwrap();
    assert_eq!(res.status(), 204);
    let v = partner_query(&sp, SP, SUB, "SP-FOR-SUB-01").unwrap();
    assert_eq!(v["trade_state"], "CLOSED");
}

/// A merchant's notification endpoint: answers 204 and hands over what it received.
fn hook() -> Receiver<(http::HeaderMap, Bytes)> {
    Receiver::new(|headers, body| ((headers, body), 204, Bytes::new()))
}

#[test]
fn each_merchants_notifications_decrypt_with_its_own_apiv3_key_only() {
    let emu = start();
    let ms = emu.merchants();
    let key = |mchid: &str| {
        ms.iter()
            .find(|m| m.mchid() == mchid)
            .unwrap()
            .apiv3_key()
            .to_string()
    };
    let hook = hook();
    let (a, b, sp) = (client_as(&emu, A), client_as(&emu, B), client_as(&emu, SP));
    a["v3/pay/transactions/native"]
        .post(order(A, "NOTIFY-A-0001", 1, &hook.url))
        .unwrap();
    b["v3/pay/transactions/native"]
        .post(order(B, "NOTIFY-B-0001", 2, &hook.url))
        .unwrap();
    sp["v3/pay/partner/transactions/native"]
        .post(partner(SP, SUB, "NOTIFY-S-0001", &hook.url))
        .unwrap();
    let paid = [
        (
            A,
            emu.act_on_payment("NOTIFY-A-0001", PaymentAction::Paid, None, None),
        ),
        (
            B,
            emu.act_on_payment("NOTIFY-B-0001", PaymentAction::Paid, Some(B), None),
        ),
        (
            SP,
            emu.act_on_payment("NOTIFY-S-0001", PaymentAction::Paid, Some(SUB), None),
        ),
    ];
    // deliveries run apart: each notification is told by the one key that opens it
    let mut opened = Vec::new();
    for _ in 0..paid.len() {
        let (headers, body) = hook
            .next_within(Duration::from_secs(10))
            .expect("a notification within 10 s");
        let openers: Vec<(&str, Value)> = [A, B, SP, SUB]
            .into_iter()
            .filter_map(|m| {
                let n = a.notifier(key(m)).unwrap().verify(&headers, &body).ok()?;
                Some((m, n.resource))
            })
            .collect();
        assert_eq!(
            openers.len(),
            1,
            "one key opens a notification, not {openers:?}"
        );
        opened.push(openers.into_iter().next().unwrap());
    }
    opened.sort_by_key(|(m, _)| *m);
    let mut expected: Vec<(&str, Value)> = paid.into_iter().map(|(m, r)| (m, r.unwrap())).collect();
    expected.sort_by_key(|(m, _)| *m);
    assert_eq!(opened, expected);
}

/// Merchant `mchid`'s refund `no` (`sub`: of a partner refund), as its query answers it.
fn refund_query(
    c: &Client,
    no: &str,
    sub: Option<&str>,
) -> Result<Value, (u16, String, Option<String>)> {
    let mut args = json!({"out_refund_no": no});
    if let Some(sub) = sub {
        args["query"] = json!({"sub_mchid": sub});
    }
    c["v3/refund/domestic/refunds/{out_refund_no}"]
        .get(args)
        .map(|r| r.json().unwrap())
        .map_err(api)
}

fn refund_of(no: &str, refund_no: &str, refund: i64, total: i64, url: &str) -> Value {
    json!({"json": {"out_trade_no": no, "out_refund_no": refund_no, "notify_url": url,
        "amount": {"refund": refund, "total": total, "currency": "CNY"}}})
}

/// The day's trade bill of the merchant `c` signs as.
fn trade_bill(c: &Client, day: &str) -> String {
    let listing: Bill = c["v3/bill/tradebill"]
        .get(json!({"query": {"bill_date": day}}))
        .unwrap()
        .json()
        .unwrap();
    let mut csv = Vec::new();
    c.download_bill(&listing, json!({}), &mut csv).unwrap();
    String::from_utf8(csv).unwrap()
}

#[test]
fn each_merchant_refunds_its_own_orders_sees_its_own_refunds_and_bills_and_is_notified_under_its_own_key(
) {
    // refunds wait for an action, so that each is decided here
    let emu = support::start(
        EmulatorConfig::new()
            .mchid(A)
            .merchant(MerchantConfig::new(B))
            .service_provider(MerchantConfig::new(SP), [MerchantConfig::new(SUB)])
            .refund_delay(None),
    );
    let ms = emu.merchants();
    let key = |mchid: &str| {
        ms.iter()
            .find(|m| m.mchid() == mchid)
            .unwrap()
            .apiv3_key()
            .to_string()
    };
    let hook = hook();
    let (a, b, sp) = (client_as(&emu, A), client_as(&emu, B), client_as(&emu, SP));
    // A and B each a paid order of the same number, SP one for SUB
    a["v3/pay/transactions/native"]
        .post(order(A, "PAID-SAME-001", 100, NOTIFY))
        .unwrap();
    b["v3/pay/transactions/native"]
        .post(order(B, "PAID-SAME-001", 200, NOTIFY))
        .unwrap();
    sp["v3/pay/partner/transactions/native"]
        .post(partner(SP, SUB, "PAID-SUB-0001", NOTIFY))
        .unwrap();
    let paid_a = emu
        .act_on_payment("PAID-SAME-001", PaymentAction::Paid, None, None)
        .unwrap();
    let paid_b = emu
        .act_on_payment("PAID-SAME-001", PaymentAction::Paid, Some(B), None)
        .unwrap();
    emu.act_on_payment("PAID-SUB-0001", PaymentAction::Paid, Some(SUB), None)
        .unwrap();

    // each refunds its own order, under the same refund number
    let refund = |c: &Client, args: Value| -> Value {
        c["v3/refund/domestic/refunds"]
            .post(args)
            .unwrap()
            .json()
            .unwrap()
    };
    let ra = refund(
        &a,
        refund_of("PAID-SAME-001", "REFUND-SAME-1", 10, 100, &hook.url),
    );
    let rb = refund(
        &b,
        refund_of("PAID-SAME-001", "REFUND-SAME-1", 20, 200, &hook.url),
    );
    let mut partner_refund = refund_of("PAID-SUB-0001", "REFUND-SAME-1", 8, 88, &hook.url);
    partner_refund["json"]["sub_mchid"] = json!(SUB);
    let rs = refund(&sp, partner_refund);
    assert_eq!(rb["transaction_id"], paid_b["transaction_id"]);
    let refunded = |r: &Value| r["amount"]["refund"].as_i64();
    assert_eq!((refunded(&ra), refunded(&rb)), (Some(10), Some(20)));
    // the same request again is the same refund; B's total against A's order is wrong
    let again = refund(
        &b,
        refund_of("PAID-SAME-001", "REFUND-SAME-1", 20, 200, &hook.url),
    );
    assert_eq!(again["refund_id"], rb["refund_id"]);
    let e = api(b["v3/refund/domestic/refunds"]
        .post(refund_of(
            "PAID-SAME-001",
            "REFUND-B-0002",
            1,
            100,
            &hook.url,
        ))
        .unwrap_err());
    assert_eq!((e.0, e.2.as_deref()), (400, Some("/amount/total")));

    // each queries its own, and no other merchant's
    assert_eq!(refund_query(&a, "REFUND-SAME-1", None).unwrap(), ra);
    assert_eq!(refund_query(&b, "REFUND-SAME-1", None).unwrap(), rb);
    assert_eq!(refund_query(&sp, "REFUND-SAME-1", Some(SUB)).unwrap(), rs);
    let e = refund_query(&sp, "REFUND-SAME-1", None).unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "RESOURCE_NOT_EXISTS"));
    b["v3/refund/domestic/refunds"]
        .post(refund_of("PAID-SAME-001", "REFUND-B-ONLY", 5, 200, NOTIFY))
        .unwrap();
    for c in [&a, &sp] {
        let e = refund_query(c, "REFUND-B-ONLY", None).unwrap_err();
        assert_eq!((e.0, e.1.as_str()), (404, "RESOURCE_NOT_EXISTS"));
    }
    let e = refund_query(&sp, "REFUND-B-ONLY", Some(SUB)).unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "RESOURCE_NOT_EXISTS"));
    // nor refunds another's order, by its transaction_id
    let e = api(a["v3/refund/domestic/refunds"]
        .post(json!({"json": {"transaction_id": paid_b["transaction_id"],
            "out_refund_no": "REFUND-A-OF-B", "amount": {"refund": 1, "total": 200, "currency": "CNY"}}}))
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (404, "ORDER_NOT_EXIST"));

    // the sandbox's actions: a number one merchant has is found; one several have takes mchid
    let done = emu.act_on_refund("REFUND-B-ONLY", wechatpay_emulator::RefundAction::Closed);
    assert_eq!(done.unwrap()["status"], "CLOSED");
    assert_eq!(
        refund_query(&b, "REFUND-B-ONLY", None).unwrap()["status"],
        "CLOSED"
    );
    assert_eq!(
        emu.complete_refund("REFUND-SAME-1").unwrap()["refund_id"],
        ra["refund_id"]
    );
    for (mchid, r) in [(B, &rb), (SP, &rs)] {
        let (status, v) = support::control(
            &emu,
            "/emulator/refunds/REFUND-SAME-1/succeeded",
            &json!({ "mchid": mchid }).to_string(),
        );
        assert_eq!((status, &v["refund_id"]), (200, &r["refund_id"]), "{v}");
    }
    assert_eq!(
        refund_query(&b, "REFUND-SAME-1", None).unwrap()["status"],
        "SUCCESS"
    );
    let (status, v) = support::control(
        &emu,
        "/emulator/refunds/REFUND-NONE-1/succeeded",
        &json!({ "mchid": B }).to_string(),
    );
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("RESOURCE_NOT_EXISTS"))
    );

    // REFUND.SUCCESS to each, under its own APIv3 key only, naming it
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (headers, body) = hook
            .next_within(Duration::from_secs(10))
            .expect("a refund notification within 10 s");
        let openers: Vec<(&str, Value)> = [A, B, SP, SUB]
            .into_iter()
            .filter_map(|m| {
                let n = a.notifier(key(m)).unwrap().verify(&headers, &body).ok()?;
                assert_eq!(n.event_type, "REFUND.SUCCESS");
                Some((m, n.resource))
            })
            .collect();
        assert_eq!(openers.len(), 1, "one key opens it, not {openers:?}");
        seen.push(openers.into_iter().next().unwrap());
    }
    seen.sort_by_key(|(m, _)| *m);
    let named: Vec<(&str, Value, Value, Value)> = seen
        .iter()
        .map(|(m, r)| {
            (
                *m,
                r["mchid"].clone(),
                r["sp_mchid"].clone(),
                r["refund_id"].clone(),
            )
        })
        .collect();
    assert_eq!(
        named,
        vec![
            (A, json!(A), Value::Null, ra["refund_id"].clone()),
            (B, json!(B), Value::Null, rb["refund_id"].clone()),
            (SP, Value::Null, json!(SP), rs["refund_id"].clone()),
        ]
    );
    assert_eq!(seen[2].1["sub_mchid"], SUB);

    // each merchant's trade bill lists its own payments and refunds only
    emu.advance_clock(Duration::from_secs(86_400));
    let day = &paid_a["success_time"].as_str().unwrap()[..10];
    let (bill_a, bill_b) = (trade_bill(&a, day), trade_bill(&b, day));
    let id = |v: &Value| v.as_str().unwrap().to_string();
    let (ta, tb) = (id(&paid_a["transaction_id"]), id(&paid_b["transaction_id"]));
    for (bill, mine, theirs) in [
        (
            &bill_a,
            [&ta, &id(&ra["refund_id"])],
            [&tb, &id(&rb["refund_id"])],
        ),
        (
            &bill_b,
            [&tb, &id(&rb["refund_id"])],
            [&ta, &id(&ra["refund_id"])],
        ),
    ] {
        for x in mine {
            assert!(bill.contains(x.as_str()), "{x} in {bill}");
        }
        for x in theirs {
            assert!(!bill.contains(x.as_str()), "{x} not in {bill}");
        }
        assert!(!bill.contains(&id(&rs["refund_id"])), "{bill}");
    }
    assert!(bill_b.contains("`REFUND-B-ONLY"), "{bill_b}");
    let bill_sp = trade_bill(&sp, day);
    assert!(bill_sp.contains(&id(&rs["refund_id"])), "{bill_sp}");
    assert!(
        !bill_sp.contains(&ta) && !bill_sp.contains(&tb),
        "{bill_sp}"
    );
}

fn transfer(no: &str, url: &str) -> Value {
    json!({"json": {
        "appid": APPID, "out_bill_no": no, "openid": "o-MYE42l80oelYMDE34nYD456Xoy",
        "transfer_amount": 400_000, "transfer_remark": "2020年4月报销", "notify_url": url,
        "user_recv_perception": "现金奖励", "transfer_scene_id": "1000",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "新会员有礼"},
            {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
        ],
    }})
}

#[test]
fn each_merchant_transfers_sees_its_own_bills_and_is_notified_under_its_own_key() {
    let emu = start();
    let ms = emu.merchants();
    let (ma, mb) = (&ms[0], &ms[1]);
    let hook = hook();
    let (a, b) = (client_as(&emu, A), client_as(&emu, B));
    let bills = |c: &Client, no: &str, name: &str| -> Value {
        let mut args = transfer(no, &hook.url);
        args["json"]["user_name"] = json!(c.encryptor().unwrap().encrypt(name).unwrap());
        c["v3/fund-app/mch-transfer/transfer-bills"]
            .post(args)
            .unwrap()
            .json()
            .unwrap()
    };
    // the same bill number, one bill per merchant
    let ta = bills(&a, "SAMEBILL0001", "张三");
    let tb = bills(&b, "SAMEBILL0001", "李四");
    assert_ne!(ta["transfer_bill_no"], tb["transfer_bill_no"]);
    let by_no = |c: &Client, no: &str| {
        c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
            .get(json!({ "out_bill_no": no }))
            .map(|r| r.json::<Value>().unwrap())
            .map_err(api)
    };
    let by_id = |c: &Client, id: &Value| {
        c["v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}"]
            .get(json!({ "transfer_bill_no": id }))
            .map(|r| r.json::<Value>().unwrap())
            .map_err(api)
    };
    // each sees its own, its payee's name encrypted for its own key
    let qb = by_no(&b, "SAMEBILL0001").unwrap();
    assert_eq!(
        (&qb["mch_id"], &qb["transfer_bill_no"]),
        (&json!(B), &tb["transfer_bill_no"])
    );
    let name = Rsa::decrypt(qb["user_name"].as_str().unwrap(), mb.private_key().unwrap());
    assert_eq!(String::from_utf8(name.unwrap()).unwrap(), "李四");
    assert!(Rsa::decrypt(qb["user_name"].as_str().unwrap(), ma.private_key().unwrap()).is_err());
    assert_eq!(by_no(&a, "SAMEBILL0001").unwrap()["mch_id"], A);
    assert_eq!(by_id(&b, &tb["transfer_bill_no"]).unwrap()["mch_id"], B);
    // and not another's: not by number, not by the platform's number, not to cancel
    bills(&b, "BONLYBILL001", "李四");
    let e = by_no(&a, "BONLYBILL001").unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "NOT_FOUND"));
    let e = by_id(&a, &tb["transfer_bill_no"]).unwrap_err();
    assert_eq!((e.0, e.1.as_str()), (404, "NOT_FOUND"));
    let e = api(
        a["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel"]
            .post(json!({"out_bill_no": "BONLYBILL001"}))
            .unwrap_err(),
    );
    assert_eq!((e.0, e.1.as_str()), (404, "NOT_FOUND"));
    assert_eq!(
        by_no(&b, "BONLYBILL001").unwrap()["state"],
        "WAIT_USER_CONFIRM"
    );

    // the user's side: a number one merchant has is found; one both have takes mchid
    assert_eq!(emu.transfer_succeeded("BONLYBILL001").unwrap()["mch_id"], B);
    let (status, v) = support::control(&emu, "/emulator/transfers/SAMEBILL0001/succeeded", "{}");
    // the first merchant's, as before several merchants
    assert_eq!((status, &v["mch_id"]), (200, &json!(A)), "{v}");
    let (status, v) = support::control(
        &emu,
        "/emulator/transfers/SAMEBILL0001/failed",
        &json!({"mchid": B, "reason": "ACCOUNT_FROZEN"}).to_string(),
    );
    assert_eq!(
        (status, &v["mch_id"], &v["state"]),
        (200, &json!(B), &json!("FAIL")),
        "{v}"
    );
    assert_eq!(by_no(&a, "SAMEBILL0001").unwrap()["state"], "SUCCESS");
    // two merchants beyond the first with one number: the action must name the merchant
    let sp = client_as(&emu, SP);
    bills(&b, "BOTHBSP00001", "李四");
    bills(&sp, "BOTHBSP00001", "王五");
    let (status, v) = support::control(&emu, "/emulator/transfers/BOTHBSP00001/succeeded", "{}");
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("PARAM_ERROR")),
        "{v}"
    );
    assert!(v["message"].as_str().unwrap().contains("mchid"), "{v}");
    assert!(emu.transfer_succeeded("BOTHBSP00001").is_err());
    assert_eq!(
        by_no(&sp, "BOTHBSP00001").unwrap()["state"],
        "WAIT_USER_CONFIRM"
    );

    // MCHTRANSFER.BILL.FINISHED to each, under its own APIv3 key only
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (headers, body) = hook
            .next_within(Duration::from_secs(10))
            .expect("a transfer notification within 10 s");
        let openers: Vec<(&str, Value)> = [(A, ma), (B, mb)]
            .into_iter()
            .filter_map(|(m, k)| {
                let n = a
                    .notifier(k.apiv3_key())
                    .unwrap()
                    .verify(&headers, &body)
                    .ok()?;
                assert_eq!(n.event_type, "MCHTRANSFER.BILL.FINISHED");
                Some((m, n.resource))
            })
            .collect();
        assert_eq!(openers.len(), 1, "one key opens it, not {openers:?}");
        let (m, r) = openers.into_iter().next().unwrap();
        assert_eq!(r["mch_id"], m);
        let text = |k: &str| r[k].as_str().unwrap().to_string();
        seen.push((m, text("out_bill_no"), text("state")));
    }
    seen.sort();
    let want = |m, no: &str, state: &str| (m, no.to_string(), state.to_string());
    assert_eq!(
        seen,
        vec![
            want(A, "SAMEBILL0001", "SUCCESS"),
            want(B, "BONLYBILL001", "SUCCESS"),
            want(B, "SAMEBILL0001", "FAIL"),
        ]
    );
}

fn micropay(c: &Client, mchid: &str, no: &str, fee: &str) -> Result<Value, wechatpay_chain::Error> {
    c["v2/pay/micropay"]
        .post(json!({"xml": {"appid": APPID, "mch_id": mchid,
            "body": "image形象店-深圳腾大- QQ公仔", "out_trade_no": no, "total_fee": fee,
            "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406"}}))
        .map(|r| r.json().unwrap())
}

#[test]
fn apiv2_calls_are_the_merchant_mch_id_names_checked_with_its_apiv2_key() {
    let emu = start();
    let (a, b) = (client_as(&emu, A), client_as(&emu, B));
    assert_ne!(emu.merchants()[1].apiv2_key(), emu.apiv2_key());
    // each pays an order of the same number with its own APIv2 key; the client checks the
    // answer's sign with the same key, so a success is an answer signed with B's key
    let pa = micropay(&a, A, "V2-SAME-0001", "1").unwrap();
    let pb = micropay(&b, B, "V2-SAME-0001", "2").unwrap();
    assert_eq!(
        (pa["total_fee"].as_str(), pb["total_fee"].as_str()),
        (Some("1"), Some("2"))
    );
    // B's order is B's, in APIv3 too
    let vb = query(&b, B, "V2-SAME-0001").unwrap();
    assert_eq!(
        (&vb["mchid"], &vb["transaction_id"]),
        (&json!(B), &pb["transaction_id"])
    );
    let orderquery = |c: &Client, mchid: &str, q: Value| {
        let mut x = json!({"appid": APPID, "mch_id": mchid});
        x.as_object_mut()
            .unwrap()
            .extend(q.as_object().unwrap().clone());
        c["v2/pay/orderquery"]
            .post(json!({ "xml": x }))
            .map(|r| r.json::<Value>().unwrap())
    };
    let qb = orderquery(&b, B, json!({"out_trade_no": "V2-SAME-0001"})).unwrap();
    assert_eq!(
        (qb["result_code"].as_str(), qb["total_fee"].as_str()),
        (Some("SUCCESS"), Some("2"))
    );
    // A does not see B's order by B's transaction_id
    let e = orderquery(&a, A, json!({"transaction_id": pb["transaction_id"]})).unwrap_err();
    assert!(e.to_string().contains("ORDERNOTEXIST"), "{e}");
    let qa = orderquery(&a, A, json!({"out_trade_no": "V2-SAME-0001"})).unwrap();
    assert_eq!(qa["transaction_id"], pa["transaction_id"]);
    // B signing with A's APIv2 key, or naming A with B's key: refused
    let forged = emu
        .builder_for(B)
        .unwrap()
        .secret(emu.apiv2_key())
        .build()
        .unwrap();
    let e = micropay(&forged, B, "V2-FORGED-001", "1").unwrap_err();
    assert!(e.to_string().contains("签名错误"), "{e}");
    let b_key = emu.merchants()[1].apiv2_key().to_string();
    let forged = emu.builder_for(A).unwrap().secret(&b_key).build().unwrap();
    let e = micropay(&forged, A, "V2-FORGED-002", "1").unwrap_err();
    assert!(e.to_string().contains("签名错误"), "{e}");
    // nothing was made
    for no in ["V2-FORGED-001", "V2-FORGED-002"] {
        assert_eq!(query(&a, A, no).unwrap_err().1, "ORDER_NOT_EXIST");
        assert_eq!(query(&b, B, no).unwrap_err().1, "ORDER_NOT_EXIST");
    }
}
