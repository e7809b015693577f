//! Combined and service-provider (partner) payments, their refunds, and the payer's and the
//! platform's actions (paid, failed, closed; a refund succeeded, closed, abnormal), through
//! the library's client, the `Emulator` methods and the unsigned control endpoints. Each
//! notification is received by a loopback HTTP receiver and verified and decrypted with the
//! library's `Notifier`. Real sockets, keys generated at test time, one tokio runtime.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;
use support::{api, control, deliveries, Receiver};

use bytes::Bytes;
use serde_json::{json, Value};
use wechatpay_chain::client_xml::SignType;
use wechatpay_chain::notify::Notification;
use wechatpay_chain::request_payment::{AppPayParams, JsapiPayParams, PaySigner};
use wechatpay_chain::{Client, PrivateKey};
use wechatpay_emulator::{Emulator, EmulatorConfig, PaymentAction, RefundAction};

const APPID: &str = "wxd678efh567hg6787";
const SUB_MCHID: &str = "1900000109";

fn start() -> Emulator {
    support::start(EmulatorConfig::new().refund_delay(None))
}

/// A merchant's notification endpoint: answers 204 and hands over what it received.
fn hook() -> Receiver<(http::HeaderMap, Bytes)> {
    Receiver::new(|headers, body| ((headers, body), 204, Bytes::new()))
}

/// The hook's next notification, verified (platform signature) and decrypted (APIv3 key).
fn next(hook: &Receiver<(http::HeaderMap, Bytes)>, c: &Client, emu: &Emulator) -> Notification {
    let (headers, body) = hook
        .next_within(Duration::from_secs(10))
        .expect("a notification within 10 s");
    c.notifier(emu.apiv3_key())
        .unwrap()
        .verify(&headers, &body)
        .expect("a notification the library verifies and decrypts")
}

fn sub_order(emu: &Emulator, no: &str, total: i64) -> Value {
    json!({"mchid": emu.mchid(), "attach": "深圳分店", "amount": {"total_amount": total, "currency": "CNY"},
           "out_trade_no": no, "sub_mchid": SUB_MCHID, "description": "腾讯充值中心-QQ会员充值"})
}

fn combined(emu: &Emulator, no: &str, url: &str, subs: Vec<Value>) -> Value {
    json!({"json": {"combine_appid": APPID, "combine_mchid": emu.mchid(), "combine_out_trade_no": no,
        "scene_info": {"device_id": "POS1:1", "payer_client_ip": "14.17.22.32"},
        "sub_orders": subs, "notify_url": url,
        "combine_payer_info": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}})
}

fn refund(no: &str, out_refund_no: &str, url: &str, amount: i64, total: i64) -> Value {
    json!({"json": {"out_trade_no": no, "out_refund_no": out_refund_no, "notify_url": url,
        "amount": {"refund": amount, "total": total, "currency": "CNY"}}})
}

#[test]
fn combined_payments_create_query_pay_notify_close_and_refund_their_sub_orders() {
    let emu = start();
    let c = emu.builder().build().unwrap();
    let hook = hook();
    let order = combined(
        &emu,
        "P2015080612534601",
        &hook.url,
        vec![
            sub_order(&emu, "SUB-A-000001", 100),
            sub_order(&emu, "SUB-B-000001", 50),
        ],
    );
    let created: Value = c["v3/combine-transactions/jsapi"]
        .post(order.clone())
        .unwrap()
        .json()
        .unwrap();
    assert!(created["prepay_id"].as_str().unwrap().starts_with("wx"));
    // the same request again: the same answer; other content under that number: 409
    let again: Value = c["v3/combine-transactions/jsapi"]
        .post(order.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again, created);
    let mut other = order.clone();
    other["json"]["sub_orders"][0]["amount"]["total_amount"] = json!(99);
    assert_eq!(
        api(c["v3/combine-transactions/jsapi"].post(other).unwrap_err()).0,
        409
    );
    // each client kind answers its documented field
    for (kind, field, prefix) in [
        ("native", "code_url", "weixin://wxpay/bizpayurl?pr="),
        ("app", "prepay_id", "wx"),
        ("h5", "h5_url", "https://wx.tenpay.com/"),
    ] {
        let mut o = combined(
            &emu,
            &format!("P-{kind}-000001"),
            &hook.url,
            vec![sub_order(&emu, &format!("SUB-{kind}-0001"), 10)],
        );
        if kind == "h5" {
            o["json"]["scene_info"]["h5_info"] = json!({"type": "Wap"});
        }
        let v: Value = c
            .chain(&format!("v3/combine-transactions/{kind}"))
            .post(o)
            .unwrap()
            .json()
            .unwrap();
        assert!(
            v[field].as_str().unwrap().starts_with(prefix),
            "{kind}: {v}"
        );
    }

    let q = json!({"combine_out_trade_no": "P2015080612534601"});
    let v: Value = c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}"]
        .get(q.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["combine_mchid"], emu.mchid());
    assert_eq!(v["sub_orders"].as_array().unwrap().len(), 2);
    assert_eq!(v["sub_orders"][0]["trade_state"], "NOTPAY");
    assert_eq!(v["sub_orders"][0]["trade_type"], "JSAPI");
    assert_eq!(v["sub_orders"][1]["amount"]["total_amount"], 50);
    let combine_id = v["combine_transaction_id"].as_str().unwrap().to_string();
    assert!(hook.try_next().is_none());

    // a sub-order alone is not acted on: its combined order is
    let e = api(emu
        .act_on_payment("SUB-A-000001", PaymentAction::Paid, None, None)
        .unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (409, "INVALID_STATE"));

    let paid = emu
        .act_on_payment("P2015080612534601", PaymentAction::Paid, None, None)
        .unwrap();
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.original_type, "transaction");
    let r = &n.resource;
    assert_eq!(r, &paid);
    assert_eq!(r["combine_appid"], APPID);
    assert_eq!(r["combine_mchid"], emu.mchid());
    assert_eq!(r["combine_out_trade_no"], "P2015080612534601");
    assert_eq!(
        r["combine_payer_info"]["openid"],
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    );
    for s in r["sub_orders"].as_array().unwrap() {
        assert_eq!(s["trade_state"], "SUCCESS");
        assert_eq!(s["transaction_id"].as_str().unwrap().len(), 28);
        assert!(s["success_time"].as_str().unwrap().ends_with("+08:00"));
        assert_eq!(s["amount"]["payer_amount"], s["amount"]["total_amount"]);
    }
    let by_id: Value = c["v3/combine-transactions/id/{combine_transaction_id}"]
        .get(json!({"combine_transaction_id": combine_id}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(by_id, paid);
    // paid twice: 409, nothing notified
    let e = api(emu
        .act_on_payment("P2015080612534601", PaymentAction::Paid, None, None)
        .unwrap_err());
    assert_eq!(e.0, 409);
    // a paid combined order cannot be closed
    let close = json!({"combine_out_trade_no": "P2015080612534601", "json": {"combine_appid": APPID,
        "sub_orders": [{"mchid": emu.mchid(), "out_trade_no": "SUB-A-000001"}]}});
    assert_eq!(
        api(
            c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}/close"]
                .post(close)
                .unwrap_err()
        )
        .1,
        "ORDERPAID"
    );

    // a sub-order is refunded as any order: by its out_trade_no, or its transaction_id
    let v: Value = c["v3/refund/domestic/refunds"]
        .post(refund("SUB-A-000001", "RA-0000001", &hook.url, 60, 100))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        (v["status"].as_str(), v["out_trade_no"].as_str()),
        (Some("PROCESSING"), Some("SUB-A-000001"))
    );
    let sub_b_id = paid["sub_orders"][1]["transaction_id"].clone();
    let v: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"transaction_id": sub_b_id, "out_refund_no": "RB-0000001",
            "notify_url": hook.url, "amount": {"refund": 50, "total": 50, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["out_trade_no"], "SUB-B-000001");
    let done = emu
        .act_on_refund("RA-0000001", RefundAction::Succeeded)
        .unwrap();
    assert_eq!(done["status"], "SUCCESS");
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "REFUND.SUCCESS");
    assert_eq!(n.resource["mchid"], emu.mchid());
    assert_eq!(n.resource["out_trade_no"], "SUB-A-000001");
    assert_eq!(n.resource["refund_status"], "SUCCESS");
    assert_eq!(n.resource["amount"]["refund"], 60);
    assert_eq!(n.resource["amount"]["currency"], "CNY");
    assert_eq!(n.resource["amount"]["payer_currency"], "CNY");
    let q: Value = c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}"]
        .get(q)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(q["sub_orders"][0]["trade_state"], "REFUND");

    // an unpaid combined order closes (with its sub-orders), and then cannot be paid
    let close = json!({"combine_out_trade_no": "P-native-000001", "json": {"combine_appid": APPID,
        "sub_orders": [{"mchid": emu.mchid(), "out_trade_no": "SUB-native-0001"}]}});
    let res = c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}/close"]
        .post(close)
        .unwrap();
    assert_eq!(res.status(), 204);
    let e = api(emu
        .act_on_payment("P-native-000001", PaymentAction::Paid, None, None)
        .unwrap_err());
    assert_eq!(e.0, 409);
    assert!(hook.try_next().is_none(), "closing notifies nothing");
}

#[test]
fn combined_payments_answer_the_documented_errors() {
    let emu = start();
    let c = emu.builder().build().unwrap();
    let url = "https://example.invalid/notify";
    let post = |v: Value| api(c["v3/combine-transactions/native"].post(v).unwrap_err());
    let mut wrong_mchid = combined(
        &emu,
        "P-err-0000001",
        url,
        vec![sub_order(&emu, "S-err-1", 1)],
    );
    wrong_mchid["json"]["combine_mchid"] = json!("1230000109");
    assert_eq!(post(wrong_mchid).2.as_deref(), Some("/combine_mchid"));
    let mut no_subs = combined(&emu, "P-err-0000001", url, vec![]);
    no_subs["json"]
        .as_object_mut()
        .unwrap()
        .remove("sub_orders");
    assert_eq!(post(no_subs).2.as_deref(), Some("/sub_orders"));
    let empty = combined(&emu, "P-err-0000001", url, vec![]);
    assert_eq!(post(empty).2.as_deref(), Some("/sub_orders"));
    let mut bad_amount = combined(
        &emu,
        "P-err-0000001",
        url,
        vec![sub_order(&emu, "S-err-1", 1)],
    );
    bad_amount["json"]["sub_orders"][0]["amount"]["total_amount"] = json!("1");
    assert_eq!(
        post(bad_amount).2.as_deref(),
        Some("/sub_orders/0/amount/total_amount")
    );
    let twice = combined(
        &emu,
        "P-err-0000001",
        url,
        vec![sub_order(&emu, "S-err-1", 1), sub_order(&emu, "S-err-1", 2)],
    );
    assert_eq!(post(twice).2.as_deref(), Some("/sub_orders/1/out_trade_no"));
    // a sub-order number already used by an order: 409
    c["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": APPID, "mchid": emu.mchid(), "description": "d",
            "out_trade_no": "ORDER-000001", "notify_url": url, "amount": {"total": 1}}}),
        )
        .unwrap();
    let taken = combined(
        &emu,
        "P-err-0000002",
        url,
        vec![sub_order(&emu, "ORDER-000001", 1)],
    );
    assert_eq!(post(taken).0, 409);
    assert_eq!(
        api(
            c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}"]
                .get(json!({"combine_out_trade_no": "P-none-000001"}))
                .unwrap_err()
        )
        .1,
        "ORDER_NOT_EXIST"
    );
    // closing with a sub-order that is not the combined order's
    c["v3/combine-transactions/native"]
        .post(combined(
            &emu,
            "P-ok-00000001",
            url,
            vec![sub_order(&emu, "S-ok-1", 1)],
        ))
        .unwrap();
    let e = api(
        c["v3/combine-transactions/out-trade-no/{combine_out_trade_no}/close"]
            .post(
                json!({"combine_out_trade_no": "P-ok-00000001", "json": {"combine_appid": APPID,
            "sub_orders": [{"mchid": emu.mchid(), "out_trade_no": "ORDER-000001"}]}}),
            )
            .unwrap_err(),
    );
    assert_eq!(e.2.as_deref(), Some("/sub_orders/0/out_trade_no"));
}

fn partner(emu: &Emulator, sub_mchid: &str, no: &str, url: &str, total: i64) -> Value {
    json!({"json": {"sp_appid": "wx8888888888888888", "sp_mchid": emu.mchid(),
        "sub_appid": "wxd678efh567hg6999", "sub_mchid": sub_mchid, "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": no, "notify_url": url, "amount": {"total": total, "currency": "CNY"},
        "payer": {"sp_openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "sub_openid": "oUpF8uMuAJO_M2pxb1Q9zSUB0001"}}})
}

#[test]
fn partner_payments_and_refunds_carry_the_sub_merchant_through_every_notification() {
    let emu = start();
    let c = emu.builder().build().unwrap();
    let hook = hook();
    let no = "1217752501201407033233368018";
    let created: Value = c["v3/pay/partner/transactions/jsapi"]
        .post(partner(&emu, SUB_MCHID, no, &hook.url, 100))
        .unwrap()
        .json()
        .unwrap();
    assert!(created["prepay_id"].as_str().unwrap().starts_with("wx"));
    for (kind, field) in [("app", "prepay_id"), ("native", "code_url")] {
        let v: Value = c
            .chain(&format!("v3/pay/partner/transactions/{kind}"))
            .post(partner(
                &emu,
                SUB_MCHID,
                &format!("partner-{kind}-1"),
                &hook.url,
                1,
            ))
            .unwrap()
            .json()
            .unwrap();
        assert!(v[field].is_string(), "{kind}: {v}");
    }
    let mut h5 = partner(&emu, SUB_MCHID, "partner-h5-1", &hook.url, 1);
    h5["json"]["scene_info"] =
        json!({"payer_client_ip": "14.23.150.211", "h5_info": {"type": "Wap"}});
    let v: Value = c["v3/pay/partner/transactions/h5"]
        .post(h5)
        .unwrap()
        .json()
        .unwrap();
    assert!(v["h5_url"].is_string());
    // the same number for another sub-merchant is another order
    c["v3/pay/partner/transactions/native"]
        .post(partner(&emu, "1900000110", no, &hook.url, 7))
        .unwrap();

    let query = |sub: &str| {
        c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": no, "query": {"sp_mchid": emu.mchid(), "sub_mchid": sub}}))
    };
    let v: Value = query(SUB_MCHID).unwrap().json().unwrap();
    assert_eq!(
        (
            v["trade_state"].as_str(),
            v["sub_mchid"].as_str(),
            v["amount"]["total"].as_i64()
        ),
        (Some("NOTPAY"), Some(SUB_MCHID), Some(100))
    );
    assert_eq!(
        query("1900000111").map(|_| ()).map_err(api).unwrap_err().1,
        "ORDER_NOT_EXIST"
    );
    let e = api(c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"sp_mchid": emu.mchid()}}))
        .unwrap_err());
    assert_eq!((e.0, e.2.as_deref()), (400, Some("/sub_mchid")));
    let e = api(c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": no, "query": {"sp_mchid": "1230000109", "sub_mchid": SUB_MCHID}}))
        .unwrap_err());
    assert_eq!(e.2.as_deref(), Some("/sp_mchid"));

    // two sub-merchants have this number: the control endpoint asks which
    let (status, v) = control(&emu, &format!("/emulator/payments/{no}/paid"), "");
    assert_eq!((status, v["code"].as_str()), (409, Some("INVALID_STATE")));
    assert!(v["message"].as_str().unwrap().contains("sub_mchid"), "{v}");
    let (status, paid) = control(
        &emu,
        &format!("/emulator/payments/{no}/paid"),
        &json!({"sub_mchid": SUB_MCHID}).to_string(),
    );
    assert_eq!(status, 200, "{paid}");
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    let r = &n.resource;
    assert_eq!(r, &paid);
    assert_eq!(r["sp_mchid"], emu.mchid());
    assert_eq!(r["sub_mchid"], SUB_MCHID);
    assert_eq!(r["sp_appid"], "wx8888888888888888");
    assert_eq!(r["sub_appid"], "wxd678efh567hg6999");
    assert_eq!(r["payer"]["sp_openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(r["payer"]["sub_openid"], "oUpF8uMuAJO_M2pxb1Q9zSUB0001");
    assert_eq!(r["trade_state"], "SUCCESS");
    assert!(r.get("mchid").is_none());
    let id = r["transaction_id"].as_str().unwrap();
    let by_id: Value = c["v3/pay/partner/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": id, "query": {"sp_mchid": emu.mchid(), "sub_mchid": SUB_MCHID}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(by_id, paid);
    let wrong_sub = c["v3/pay/partner/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": id, "query": {"sp_mchid": emu.mchid(), "sub_mchid": "1900000110"}}));
    assert_eq!(api(wrong_sub.unwrap_err()).1, "ORDER_NOT_EXIST");

    // refunds name the sub-merchant; without it the order is not the merchant's own
    let mut r1 = refund(no, "PR-0000001", &hook.url, 30, 100);
    let e = api(c["v3/refund/domestic/refunds"]
        .post(r1.clone())
        .unwrap_err());
    assert_eq!(e.1, "ORDER_NOT_EXIST");
    r1["json"]["sub_mchid"] = json!(SUB_MCHID);
    let v: Value = c["v3/refund/domestic/refunds"]
        .post(r1)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "PROCESSING");
    let refund_q = |sub: Option<&str>| {
        let mut a = json!({"out_refund_no": "PR-0000001"});
        if let Some(s) = sub {
            a["query"] = json!({"sub_mchid": s});
        }
        c["v3/refund/domestic/refunds/{out_refund_no}"].get(a)
    };
    let q: Value = refund_q(Some(SUB_MCHID)).unwrap().json().unwrap();
    assert_eq!(q["refund_id"], v["refund_id"]);
    assert_eq!(
        api(refund_q(None).unwrap_err()).1,
        "RESOURCE_NOT_EXISTS",
        "a partner refund is found with its sub_mchid"
    );

    // closed: REFUND.CLOSED, and the amount is refundable again
    let (status, closed) = control(&emu, "/emulator/refunds/PR-0000001/closed", "");
    assert_eq!((status, closed["status"].as_str()), (200, Some("CLOSED")));
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "REFUND.CLOSED");
    assert_eq!(
        (
            n.resource["sp_mchid"].as_str(),
            n.resource["sub_mchid"].as_str()
        ),
        (Some(emu.mchid()), Some(SUB_MCHID))
    );
    assert_eq!(n.resource["refund_status"], "CLOSED");
    assert!(n.resource.get("mchid").is_none());
    let v: Value = query(SUB_MCHID).unwrap().json().unwrap();
    assert_eq!(v["trade_state"], "SUCCESS");
    let (status, _) = control(&emu, "/emulator/refunds/PR-0000001/succeeded", "");
    assert_eq!(status, 409, "a closed refund is final");

    // abnormal, then succeeded after all
    let mut r2 = refund(no, "PR-0000002", &hook.url, 100, 100);
    r2["json"]["sub_mchid"] = json!(SUB_MCHID);
    c["v3/refund/domestic/refunds"].post(r2).unwrap();
    let abnormal = emu
        .act_on_refund("PR-0000002", RefundAction::Abnormal)
        .unwrap();
    assert_eq!(abnormal["status"], "ABNORMAL");
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "REFUND.ABNORMAL");
    assert_eq!(n.resource["refund_status"], "ABNORMAL");
    assert_eq!(n.resource["amount"]["refund"], 100);
    assert_eq!(n.resource["amount"]["payer_currency"], "CNY");
    assert_eq!(
        api(emu
            .act_on_refund("PR-0000002", RefundAction::Abnormal)
            .unwrap_err())
        .0,
        409
    );
    emu.act_on_refund("PR-0000002", RefundAction::Succeeded)
        .unwrap();
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "REFUND.SUCCESS");
    assert_eq!(n.resource["sub_mchid"], SUB_MCHID);
    assert!(n.resource["success_time"].is_string());
    let (status, v) = control(&emu, "/emulator/refunds/PR-0000002/abnormal", "");
    assert_eq!((status, v["code"].as_str()), (409, Some("INVALID_STATE")));
    let (status, v) = control(&emu, "/emulator/refunds/PR-none/succeeded", "");
    assert_eq!(
        (status, v["code"].as_str()),
        (404, Some("RESOURCE_NOT_EXISTS"))
    );

    // close an unpaid partner order; failing it then is refused
    let res = c["v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close"]
        .post(json!({"out_trade_no": "partner-app-1", "json": {"sp_mchid": emu.mchid(), "sub_mchid": SUB_MCHID}}))
        .unwrap();
    assert_eq!(res.status(), 204);
    let e = api(emu
        .act_on_payment(
            "partner-app-1",
            PaymentAction::Failed,
            Some(SUB_MCHID),
            None,
        )
        .unwrap_err());
    assert_eq!(e.0, 409);
    assert!(hook.try_next().is_none());
}

#[test]
fn pending_payments_fail_or_close_unnotified_and_the_control_endpoints_say_what_is_wrong() {
    let emu = start();
    let c = emu.builder().build().unwrap();
    let hook = hook();
    let order = |no: &str| {
        json!({"json": {"appid": APPID, "mchid": emu.mchid(), "description": "d",
            "out_trade_no": no, "notify_url": hook.url, "amount": {"total": 10}}})
    };
    for no in [
        "FAIL-0000001",
        "CLOSE-000001",
        "PAY-00000001",
        "LEGACY-00001",
    ] {
        c["v3/pay/transactions/native"].post(order(no)).unwrap();
    }
    let trade_state = |no: &str| support::trade_state(&c, &emu, no);
    let failed = emu
        .act_on_payment("FAIL-0000001", PaymentAction::Failed, None, None)
        .unwrap();
    assert_eq!(failed["trade_state"], "PAYERROR");
    assert_eq!(trade_state("FAIL-0000001"), "PAYERROR");
    let (status, closed) = control(&emu, "/emulator/payments/CLOSE-000001/closed", "  ");
    assert_eq!(
        (status, closed["trade_state"].as_str()),
        (200, Some("CLOSED"))
    );
    assert_eq!(trade_state("CLOSE-000001"), "CLOSED");
    // paid with a given payer: the only notification of the three
    let (status, paid) = control(
        &emu,
        "/emulator/payments/PAY-00000001/paid",
        r#"{"openid": "oUser-given-0001"}"#,
    );
    assert_eq!(status, 200, "{paid}");
    let n = next(&hook, &c, &emu);
    assert_eq!(n.resource["out_trade_no"], "PAY-00000001");
    assert_eq!(n.resource["payer"]["openid"], "oUser-given-0001");
    assert_eq!(n.resource, paid);
    let events: Vec<String> = deliveries(&emu, 1)
        .into_iter()
        .map(|d| d.event_type)
        .collect();
    assert_eq!(events, ["TRANSACTION.SUCCESS"]);

    // the old control endpoint still pays, and answers a paid order as it is
    let (status, v) = control(
        &emu,
        "/emulator/pay/transactions/out-trade-no/LEGACY-00001/pay",
        "",
    );
    assert_eq!((status, v["trade_state"].as_str()), (200, Some("SUCCESS")));
    assert_eq!(
        next(&hook, &c, &emu).resource["out_trade_no"],
        "LEGACY-00001"
    );
    let (status, again) = control(
        &emu,
        "/emulator/pay/transactions/out-trade-no/LEGACY-00001/pay",
        "",
    );
    assert_eq!((status, &again), (200, &v));

    for (path, body, want, code) in [
        (
            "/emulator/payments/PAY-00000001/failed",
            "",
            409,
            "INVALID_STATE",
        ),
        (
            "/emulator/payments/FAIL-0000001/paid",
            "",
            409,
            "INVALID_STATE",
        ),
        (
            "/emulator/payments/CLOSE-000001/closed",
            "",
            409,
            "INVALID_STATE",
        ),
        (
            "/emulator/payments/NONE-0000001/paid",
            "",
            404,
            "ORDER_NOT_EXIST",
        ),
        (
            "/emulator/payments/PAY-00000001/refunded",
            "",
            400,
            "PARAM_ERROR",
        ),
        (
            "/emulator/payments/PAY-00000001/paid",
            "[1]",
            400,
            "PARAM_ERROR",
        ),
        (
            "/emulator/payments/PAY-00000001/paid",
            r#"{"openid": 1}"#,
            400,
            "PARAM_ERROR",
        ),
        (
            "/emulator/refunds/R-none/succeeded",
            "",
            404,
            "RESOURCE_NOT_EXISTS",
        ),
        ("/emulator/refunds/R-none/reversed", "", 400, "PARAM_ERROR"),
    ] {
        let (status, v) = control(&emu, path, body);
        assert_eq!(
            (status, v["code"].as_str()),
            (want, Some(code)),
            "{path} {body}: {v}"
        );
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let (_, v) = control(&emu, "/emulator/payments/PAY-00000001/refunded", "");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("paid, failed, closed"),
        "{v}"
    );
    // a refund's order keeps refunds apart from payment actions
    c["v3/refund/domestic/refunds"]
        .post(refund("PAY-00000001", "R-00000001", &hook.url, 10, 10))
        .unwrap();
    assert_eq!(trade_state("PAY-00000001"), "REFUND");
    assert_eq!(
        api(emu
            .act_on_payment("PAY-00000001", PaymentAction::Closed, None, None)
            .unwrap_err())
        .0,
        409
    );
    // the old refund control endpoint completes it
    let (status, v) = control(
        &emu,
        "/emulator/refund/domestic/refunds/R-00000001/complete",
        "",
    );
    assert_eq!((status, v["status"].as_str()), (200, Some("SUCCESS")));
    assert_eq!(next(&hook, &c, &emu).event_type, "REFUND.SUCCESS");
    assert!("paid".parse::<PaymentAction>().is_ok());
    assert!("abnormal".parse::<RefundAction>().is_ok());
    assert!("PAID".parse::<PaymentAction>().is_err());
}

/// A JSAPI order by the merchant for `no`, answered with its prepay_id.
fn jsapi(c: &Client, emu: &Emulator, kind: &str, no: &str, url: &str) -> String {
    let mut order = json!({"appid": APPID, "mchid": emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": no, "notify_url": url, "amount": {"total": 100}});
    if kind == "jsapi" {
        order["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
    }
    let created: Value = c[format!("v3/pay/transactions/{kind}").as_str()]
        .post(json!({ "json": order }))
        .unwrap()
        .json()
        .unwrap();
    created["prepay_id"].as_str().unwrap().to_string()
}

/// A fresh RSA key the sandbox does not know.
fn stranger() -> PrivateKey {
    PrivateKey::from_openssl(
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
    )
}

#[test]
fn the_payer_pays_with_front_end_parameters_checked_as_the_wechat_client_checks_them() {
    let emu = start();
    let c = emu.builder().build().unwrap();
    let hook = hook();
    let no = "FRONT-JSAPI-0001";
    let prepay_id = jsapi(&c, &emu, "jsapi", no, &hook.url);
    let other_prepay_id = jsapi(&c, &emu, "jsapi", "FRONT-JSAPI-0002", &hook.url);
    let trade_state = |no: &str| support::trade_state(&c, &emu, no);
    let now = wechatpay_chain::formatter::timestamp();
    let nonce = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    let key = emu.merchant_private_key().unwrap().clone();
    let at = |appid: &str, prepay: &str, ts: i64, signer: PaySigner<'_>| {
        serde_json::to_value(JsapiPayParams::with_nonce(appid, prepay, ts, nonce, signer).unwrap())
            .unwrap()
    };
    let right = at(APPID, &prepay_id, now, PaySigner::Rsa(&key));
    let mut as_number = right.clone();
    as_number["timeStamp"] = json!(now);
    let mut missing = right.clone();
    missing.as_object_mut().unwrap().remove("paySign");
    let stranger = stranger();
    let app_form = serde_json::to_value(
        AppPayParams::with_nonce(APPID, emu.mchid(), &prepay_id, now, nonce, &key).unwrap(),
    )
    .unwrap();
    let apiv2_key = emu.apiv2_key().to_string();
    let refusals = [
        (
            at(APPID, &prepay_id, now, PaySigner::Rsa(&stranger)),
            "paySign",
            "支付验证签名失败",
        ),
        (
            at(APPID, &other_prepay_id, now, PaySigner::Rsa(&key)),
            "package",
            "prepay_id order FRONT-JSAPI-0001 was answered with",
        ),
        (
            at("wx8888888888888888", &prepay_id, now, PaySigner::Rsa(&key)),
            "appId",
            "not the appid order FRONT-JSAPI-0001 was made with (wxd678efh567hg6787)",
        ),
        (
            at(
                APPID,
                &prepay_id,
                now,
                PaySigner::v2(SignType::Md5, &apiv2_key),
            ),
            "signType",
            "made with APIv3",
        ),
        (
            at(APPID, &prepay_id, now * 1000, PaySigner::Rsa(&key)),
            "timeStamp",
            "milliseconds",
        ),
        (
            at(APPID, &prepay_id, now - 3 * 3600, PaySigner::Rsa(&key)),
            "timeStamp",
            "prepay_id lives two hours",
        ),
        (as_number, "timeStamp", "must be a string"),
        (missing, "paySign", "lacks paySign"),
        (app_form, "appId", "the keys given are the APP form's"),
    ];
    for (params, field, reason) in refusals {
        // over the wire, as `wechatpay sandbox payment … paid --request-payment` sends it
        let body = json!({ "request_payment": params }).to_string();
        let (status, v) = control(&emu, &format!("/emulator/payments/{no}/paid"), &body);
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("PARAM_ERROR")),
            "{field}: {v}"
        );
        assert_eq!(
            v["detail"]["field"].as_str(),
            Some(format!("/request_payment/{field}").as_str()),
            "{v}"
        );
        let message = v["message"].as_str().unwrap();
        assert!(message.contains(reason), "{field}: {message}");
        // and through the Emulator's method
        let (status, code, at) = api(emu.request_payment(no, &params).unwrap_err());
        assert_eq!(
            (status, code.as_str(), at),
            (
                400,
                "PARAM_ERROR",
                Some(format!("/request_payment/{field}"))
            )
        );
        assert_eq!(
            trade_state(no),
            "NOTPAY",
            "refused params must leave {no} unpaid"
        );
    }
    // The refusal of a wrong paySign shows the message that should have been signed.
    let (_, v) = control(
        &emu,
        &format!("/emulator/payments/{no}/paid"),
        &json!({"request_payment": at(APPID, &prepay_id, now, PaySigner::Rsa(&stranger))})
            .to_string(),
    );
    let shown = format!("{APPID}\\n{now}\\n{nonce}\\nprepay_id={prepay_id}\\n");
    assert!(
        v["message"].as_str().unwrap().contains(&shown),
        "{v} should show {shown}"
    );
    // Front-end parameters are what the payer pays with: not for failing or closing.
    let (status, v) = control(
        &emu,
        &format!("/emulator/payments/{no}/failed"),
        &json!({ "request_payment": right }).to_string(),
    );
    assert_eq!(
        (status, v["detail"]["field"].as_str()),
        (400, Some("/request_payment")),
        "{v}"
    );
    let (status, _) = control(
        &emu,
        &format!("/emulator/payments/{no}/paid"),
        r#"{"request_payment": "appId=…"}"#,
    );
    assert_eq!(status, 400);
    assert_eq!(trade_state(no), "NOTPAY");
    assert!(emu.deliveries().is_empty(), "nothing refused is notified");

    // The right ones, made by the client with the key it holds: paid and notified.
    let params = c.jsapi_pay_params(APPID, &prepay_id).unwrap();
    let (status, paid) = control(
        &emu,
        &format!("/emulator/payments/{no}/paid"),
        &json!({ "request_payment": params }).to_string(),
    );
    assert_eq!(
        (status, paid["trade_state"].as_str()),
        (200, Some("SUCCESS")),
        "{paid}"
    );
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource["out_trade_no"], no);
    assert_eq!(
        n.resource["payer"]["openid"],
        "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    );
    assert_eq!(n.resource, paid);
    // the same again: the order is paid
    assert_eq!(api(emu.request_payment(no, &params).unwrap_err()).0, 409);

    // An APP order: the APP form, partnerid the merchant.
    let app_no = "FRONT-APP-00001";
    let app_prepay = jsapi(&c, &emu, "app", app_no, &hook.url);
    let wrong_partner =
        AppPayParams::with_nonce(APPID, "1900000109", &app_prepay, now, nonce, &key).unwrap();
    let (status, _, field) = api(emu.request_payment(app_no, &wrong_partner).unwrap_err());
    assert_eq!(
        (status, field.as_deref()),
        (400, Some("/request_payment/partnerid"))
    );
    let jsapi_form = c.jsapi_pay_params(APPID, &app_prepay).unwrap();
    let e = emu.request_payment(app_no, &jsapi_form).unwrap_err();
    assert!(
        e.to_string()
            .contains("the keys given are the JSAPI form's"),
        "{e}"
    );
    let paid = emu
        .request_payment(app_no, &c.app_pay_params(APPID, &app_prepay).unwrap())
        .unwrap();
    assert_eq!(paid["trade_state"], "SUCCESS");
    assert_eq!(next(&hook, &c, &emu).resource["out_trade_no"], app_no);

    // A Native order is paid from its code_url, not with front-end parameters.
    c["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": APPID, "mchid": emu.mchid(), "description": "d",
            "out_trade_no": "FRONT-NATIVE-001", "notify_url": hook.url, "amount": {"total": 1}}}),
        )
        .unwrap();
    let e = emu
        .request_payment("FRONT-NATIVE-001", &params)
        .unwrap_err();
    assert!(e.to_string().contains("code_url"), "{e}");

    // A partner order is paid in the sub-merchant's app (sub_appid) or the provider's.
    let partner_no = "FRONT-PARTNER-01";
    let created: Value = c["v3/pay/partner/transactions/jsapi"]
        .post(partner(&emu, SUB_MCHID, partner_no, &hook.url, 100))
        .unwrap()
        .json()
        .unwrap();
    let partner_prepay = created["prepay_id"].as_str().unwrap();
    let e = emu
        .request_payment(
            partner_no,
            &c.jsapi_pay_params(APPID, partner_prepay).unwrap(),
        )
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("wx8888888888888888 or wxd678efh567hg6999"),
        "{e}"
    );
    let paid = emu
        .request_payment(
            partner_no,
            &c.jsapi_pay_params("wxd678efh567hg6999", partner_prepay)
                .unwrap(),
        )
        .unwrap();
    assert_eq!(paid["trade_state"], "SUCCESS");
    assert_eq!(next(&hook, &c, &emu).resource["out_trade_no"], partner_no);

    // A combined order is paid in its combine_appid, with its own prepay_id.
    let order = combined(
        &emu,
        "FRONT-COMBINED-1",
        &hook.url,
        vec![sub_order(&emu, "FRONT-SUB-00001", 100)],
    );
    let created: Value = c["v3/combine-transactions/jsapi"]
        .post(order)
        .unwrap()
        .json()
        .unwrap();
    let combined_prepay = created["prepay_id"].as_str().unwrap();
    let e = emu
        .request_payment(
            "FRONT-COMBINED-1",
            &c.jsapi_pay_params(APPID, &prepay_id).unwrap(),
        )
        .unwrap_err();
    assert_eq!(api(e).2.as_deref(), Some("/request_payment/package"));
    emu.request_payment(
        "FRONT-COMBINED-1",
        &c.jsapi_pay_params(APPID, combined_prepay).unwrap(),
    )
    .unwrap();
    let n = next(&hook, &c, &emu);
    assert_eq!(n.resource["combine_out_trade_no"], "FRONT-COMBINED-1");
}
