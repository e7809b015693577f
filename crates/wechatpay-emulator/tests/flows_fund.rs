//! Merchant transfers and profit sharing against the emulator with the library's client: the
//! happy paths, their notifications received on loopback and verified with the library's
//! `Notifier`, every documented error the emulator models, the control endpoints, and the
//! conformance corpus's samples of these paths. Keys generated at test time, one tokio runtime
//! for the binary.

#[path = "../../../tests/common/mod.rs"]
mod common;
#[path = "../../../tests/support/shared.rs"]
mod shared;
mod support;

use std::time::Duration;
use support::{client, credentials, deliveries, send, start, Receiver};

use bytes::Bytes;
use serde_json::{json, Value};
use wechatpay_chain::client_json::sign_request;
use wechatpay_chain::notify::{Notification, Notifier};
use wechatpay_chain::{Client, Error, Rsa};
use wechatpay_emulator::{Emulator, EmulatorConfig, Outcome};

const OPENID: &str = "o-MYE42l80oelYMDE34nYD456Xoy";

/// The API error's status, code and `detail.field`; the answer must have verified.
fn api(e: Error) -> (u16, String, Option<String>) {
    match e {
        Error::Api {
            status,
            code,
            detail,
            verified,
            ..
        } => {
            assert!(verified, "the error answer is signed");
            (
                status,
                code,
                detail.and_then(|d| d["field"].as_str().map(str::to_string)),
            )
        }
        other => panic!("expected an API error, got {other}"),
    }
}

fn ok(r: Result<wechatpay_chain::Response, Error>) -> Value {
    r.unwrap().json().unwrap()
}

/// A merchant's notification endpoint that verifies each notification with the library's
/// `Notifier` (answering 204, or 400 when it does not verify) and hands over what verified.
fn hook(notifier: Notifier) -> Receiver<Result<Notification, String>> {
    Receiver::new(move |headers, body| {
        let verified = notifier.verify(&headers, &body);
        let status = if verified.is_ok() { 204 } else { 400 };
        (verified.map_err(|e| e.to_string()), status, Bytes::new())
    })
}

/// The hook's next notification, verified and decrypted.
fn next(hook: &Receiver<Result<Notification, String>>) -> Notification {
    hook.next_within(Duration::from_secs(10))
        .expect("a notification")
        .expect("the notification verifies")
}

/// Nothing more arrived (after the emulator's other deliveries were seen: call once the
/// expected notifications are in).
fn none_pending(hook: &Receiver<Result<Notification, String>>) {
    assert!(hook.try_next().is_none(), "no further notification");
}

/// POSTs to a control endpoint `emulator/{path}` (unsigned); status and JSON.
fn control(emu: &Emulator, path: &str, body: &str) -> (u16, Value) {
    support::control(emu, &format!("emulator/{path}"), body)
}

fn transfer(no: &str, amount: i64, url: &str) -> Value {
    json!({"json": {
        "appid": "wxf636efh567hg4356", "out_bill_no": no, "openid": OPENID,
        "transfer_amount": amount, "transfer_remark": "2020年4月报销", "notify_url": url,
        "user_recv_perception": "现金奖励", "transfer_scene_id": "1000",
        "transfer_scene_report_infos": [
            {"info_type": "活动名称", "info_content": "新会员有礼"},
            {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
        ],
        "user_recv_style": {"type": "CONFIRM_PAGE"},
    }})
}

/// The merchant decrypts what the platform encrypted for it.
fn merchant_decrypts(emu: &Emulator, v: &Value) -> String {
    let key = emu.merchant_private_key().unwrap();
    String::from_utf8(Rsa::decrypt(v.as_str().unwrap(), key).unwrap()).unwrap()
}

/// Every documented required resource field of the notification's event type is there, and
/// every enumerated one holds a documented value.
fn documented(n: &Notification) {
    fn check(fields: &[wechatpay_chain::catalog::Field], v: &Value, at: &str) {
        for f in fields {
            let Some(x) = v.get(&f.name) else {
                assert!(!f.required, "{at}/{} missing", f.name);
                continue;
            };
            if let Some(s) = x.as_str().filter(|_| !f.enumeration.is_empty()) {
                assert!(f.enumeration.iter().any(|e| e == s), "{at}/{}: {s}", f.name);
            }
            check(&f.children, x, &format!("{at}/{}", f.name));
        }
    }
    let event = wechatpay_chain::catalog::event(&n.event_type).unwrap();
    check(event.resource(), &n.resource, &n.event_type);
}

/// Waits until the emulator has recorded `n` delivery attempts (the hook has them already: the
/// record follows the hook's answer), then checks that there are `n`, all accepted.
fn delivered(emu: &Emulator, n: usize) {
    let d = deliveries(emu, n);
    assert_eq!(d.len(), n, "{d:?}");
    assert!(
        d.iter().all(|d| d.outcome == Outcome::Accepted(204)),
        "{d:?}"
    );
}

#[test]
fn a_transfer_waits_for_the_user_then_succeeds_and_notifies() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let hook = hook(c.notifier(emu.apiv3_key()).unwrap());
    let enc = c.encryptor().unwrap();
    let mut args = transfer("plfk2020042013", 400_000, &hook.url);
    args["json"]["user_name"] = json!(enc.encrypt("张三").unwrap());
    let bills = &c["v3/fund-app/mch-transfer/transfer-bills"];
    let created = ok(bills.post(args.clone()));
    assert_eq!(created["out_bill_no"], "plfk2020042013");
    assert_eq!(created["state"], "WAIT_USER_CONFIRM");
    assert!(!created["package_info"].as_str().unwrap().is_empty());
    let id = created["transfer_bill_no"].as_str().unwrap().to_string();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert!(created["create_time"].as_str().unwrap().ends_with("+08:00"));

    // The same request again (the name encrypted anew): the same bill. Other content: 409.
    args["json"]["user_name"] = json!(enc.encrypt("张三").unwrap());
    assert_eq!(ok(bills.post(args.clone())), created);
    let mut other = args.clone();
    other["json"]["transfer_amount"] = json!(400_001);
    let (status, code, field) = api(bills.post(other).unwrap_err());
    assert_eq!(
        (status, code.as_str(), field.as_deref()),
        (409, "RESOURCE_ALREADY_EXISTS", Some("/out_bill_no"))
    );

    let by_no = ok(
        c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
            .get(json!({"out_bill_no": "plfk2020042013"})),
    );
    assert_eq!(by_no["state"], "WAIT_USER_CONFIRM");
    assert_eq!(by_no["mch_id"], emu.mchid());
    assert_eq!(by_no["transfer_amount"], 400_000);
    assert_eq!(by_no["openid"], OPENID);
    assert_eq!(by_no["transfer_bill_no"], id.as_str());
    assert_eq!(merchant_decrypts(&emu, &by_no["user_name"]), "张三");
    let by_id = ok(c
        ["v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}"]
        .get(json!({"transfer_bill_no": id})));
    assert_eq!(by_id["out_bill_no"], "plfk2020042013");
    assert_eq!(by_id["state"], "WAIT_USER_CONFIRM");
    assert!(
        emu.deliveries().is_empty(),
        "nothing is notified while pending"
    );

    let done = emu.transfer_succeeded("plfk2020042013").unwrap();
    assert_eq!(done["state"], "SUCCESS");
    let n = next(&hook);
    assert_eq!(n.event_type, "MCHTRANSFER.BILL.FINISHED");
    let r = &n.resource;
    assert_eq!(r["state"], "SUCCESS");
    assert_eq!(r["out_bill_no"], "plfk2020042013");
    assert_eq!(r["transfer_bill_no"], id.as_str());
    assert_eq!(r["transfer_amount"], 400_000);
    assert_eq!(r["openid"], OPENID);
    assert_eq!(r["mch_id"], emu.mchid());
    assert!(r.get("fail_reason").is_none());
    for f in ["create_time", "update_time"] {
        assert!(r[f].as_str().unwrap().ends_with("+08:00"), "{f}");
    }
    documented(&n);

    let now = ok(
        c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
            .get(json!({"out_bill_no": "plfk2020042013"})),
    );
    assert_eq!(now["state"], "SUCCESS");
    // Succeeding again answers the bill and notifies nothing; a finished bill cannot be
    // cancelled or fail.
    assert_eq!(
        emu.transfer_succeeded("plfk2020042013").unwrap()["state"],
        "SUCCESS"
    );
    let (status, code, _) = api(c
        ["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel"]
        .post(json!({"out_bill_no": "plfk2020042013"}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    let e = emu.transfer_failed("plfk2020042013", None).unwrap_err();
    assert_eq!(e.code(), Some("INVALID_STATE"));
    delivered(&emu, 1);
    none_pending(&hook);
}

#[test]
fn transfers_fail_or_are_cancelled_through_the_control_endpoints() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let hook = hook(c.notifier(emu.apiv3_key()).unwrap());
    let bills = &c["v3/fund-app/mch-transfer/transfer-bills"];
    ok(bills.post(transfer("failing001", 100, &hook.url)));
    ok(bills.post(transfer("cancelled01", 200, &hook.url)));

    // A reason outside the documented list is refused, naming the field.
    let (status, v) = control(&emu, "transfers/failing001/failed", r#"{"reason":5}"#);
    assert_eq!((status, v["code"].as_str()), (400, Some("PARAM_ERROR")));
    let (status, v) = control(&emu, "transfers/failing001/failed", r#"{"reason":"BROKE"}"#);
    assert_eq!((status, v["code"].as_str()), (400, Some("PARAM_ERROR")));
    assert_eq!(v["detail"]["field"], "/reason");
    let (status, v) = control(
        &emu,
        "transfers/failing001/failed",
        r#"{"reason":"NAME_NOT_CORRECT"}"#,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["fail_reason"].as_str()),
        (Some("FAIL"), Some("NAME_NOT_CORRECT"))
    );
    let n = next(&hook);
    assert_eq!(n.event_type, "MCHTRANSFER.BILL.FINISHED");
    assert_eq!(n.resource["state"], "FAIL");
    assert_eq!(n.resource["fail_reason"], "NAME_NOT_CORRECT");
    documented(&n);
    assert_eq!(n.resource["out_bill_no"], "failing001");
    let q = ok(
        c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
            .get(json!({"out_bill_no": "failing001"})),
    );
    assert_eq!(
        (q["state"].as_str(), q["fail_reason"].as_str()),
        (Some("FAIL"), Some("NAME_NOT_CORRECT"))
    );
    // A failed bill does not succeed.
    let (status, v) = control(&emu, "transfers/failing001/succeeded", "");
    assert_eq!((status, v["code"].as_str()), (409, Some("INVALID_STATE")));

    let cancel = &c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel"];
    let v = ok(cancel.post(json!({"out_bill_no": "cancelled01"})));
    assert_eq!(v["state"], "CANCELLED");
    assert_eq!(v["out_bill_no"], "cancelled01");
    assert!(v["update_time"].as_str().unwrap().ends_with("+08:00"));
    let n = next(&hook);
    assert_eq!(
        (
            n.resource["state"].as_str(),
            n.resource["out_bill_no"].as_str()
        ),
        (Some("CANCELLED"), Some("cancelled01"))
    );
    // Cancelling again answers the same, and notifies nothing more.
    assert_eq!(
        ok(cancel.post(json!({"out_bill_no": "cancelled01"})))["state"],
        "CANCELLED"
    );
    let (status, v) = control(&emu, "transfers/cancelled01/succeeded", "");
    assert_eq!((status, v["code"].as_str()), (409, Some("INVALID_STATE")));
    let (status, v) = control(&emu, "transfers/nobill/succeeded", "");
    assert_eq!((status, v["code"].as_str()), (404, Some("NOT_FOUND")));
    let (status, v) = control(&emu, "transfers/nobill/failed", "{");
    assert_eq!((status, v["code"].as_str()), (400, Some("PARAM_ERROR")));

    // A bill without a notify_url ends without a notification.
    let mut quiet = transfer("quiet0001", 300, "");
    quiet["json"].as_object_mut().unwrap().remove("notify_url");
    ok(bills.post(quiet));
    let (status, v) = control(&emu, "transfers/quiet0001/succeeded", "");
    assert_eq!((status, v["state"].as_str()), (200, Some("SUCCESS")));
    delivered(&emu, 2);
    none_pending(&hook);
}

#[test]
fn transfers_answer_the_documented_errors() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let bills = &c["v3/fund-app/mch-transfer/transfer-bills"];
    let url = "https://www.weixin.qq.com/wxpay/pay.php";
    for (path, arg, no) in [
        (
            "v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}",
            "out_bill_no",
            "nothing01",
        ),
        (
            "v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}",
            "transfer_bill_no",
            "1330000071100999991182020050700019480001",
        ),
    ] {
        let (status, code, _) = api(c[path].get(json!({arg: no})).unwrap_err());
        assert_eq!((status, code.as_str()), (404, "NOT_FOUND"), "{path}");
    }
    let (status, code, _) = api(c
        ["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel"]
        .post(json!({"out_bill_no": "nothing01"}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));

    let refused =
        |args: Value| -> (u16, String, Option<String>) { api(bills.post(args).unwrap_err()) };
    let param = |args: Value, field: &str| {
        let (status, code, f) = refused(args);
        assert_eq!(
            (status, code.as_str(), f.as_deref()),
            (400, "PARAM_ERROR", Some(field))
        );
    };
    let mut a = transfer("bad000001", 100, url);
    a["json"].as_object_mut().unwrap().remove("openid");
    param(a, "/openid");
    let mut a = transfer("bad000001", 100, url);
    a["json"]["transfer_scene_id"] = json!("9999");
    param(a, "/transfer_scene_id");
    let mut a = transfer("bad000001", 100, url);
    a["json"]["user_recv_style"]["type"] = json!("POPUP");
    param(a, "/user_recv_style/type");
    param(transfer("bad000001", 0, url), "/transfer_amount");
    // Each scene is reported with its own info types.
    let mut a = transfer("bad000001", 100, url);
    a["json"]["transfer_scene_report_infos"]
        .as_array_mut()
        .unwrap()
        .pop();
    param(a, "/transfer_scene_report_infos");
    let mut a = transfer("bad000001", 100, url);
    a["json"]["transfer_scene_id"] = json!("1002");
    param(a, "/transfer_scene_report_infos");
    let mut a = transfer("scene1002", 100, url);
    a["json"]["transfer_scene_id"] = json!("1002");
    a["json"]["transfer_scene_report_infos"] =
        json!([{"info_type": "补贴类型", "info_content": "购车补贴"}]);
    assert_eq!(ok(bills.post(a))["state"], "WAIT_USER_CONFIRM");
    param(transfer("bad-0001", 100, url), "/out_bill_no");
    param(
        transfer("bad000001", 100, "ftp://example.com/n"),
        "/notify_url",
    );
    // 2,000 yuan or more needs the payee's name.
    param(transfer("bad000001", 200_000, url), "/user_name");

    // A name in the clear, or encrypted with a key that is not the platform's, does not
    // decrypt: the platform's PARAM_ERROR.
    let serial = emu.platform_serial().to_string();
    let mut a = transfer("bad000001", 100, url);
    a["json"]["user_name"] = json!("张三");
    a["headers"] = json!({"Wechatpay-Serial": serial});
    let e = bills.post(a).unwrap_err();
    match &e {
        Error::Api { message, .. } => assert!(
            message.contains("请确认待处理的消息是否为加密后的密文"),
            "{message}"
        ),
        other => panic!("{other}"),
    }
    assert_eq!(
        api(e),
        (400, "PARAM_ERROR".into(), Some("/user_name".into()))
    );
    let stranger = wechatpay_chain::PrivateKey::from_openssl(
        openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap(),
    );
    let mut a = transfer("bad000001", 100, url);
    a["json"]["user_name"] = json!(Rsa::encrypt("张三", &stranger.public_key().unwrap()).unwrap());
    a["headers"] = json!({"Wechatpay-Serial": serial});
    param(a, "/user_name");
    // Encrypted without naming the key (the library always names one: a request of another
    // client's): the header is missing.
    let mut a = transfer("bad000001", 100, url);
    a["json"]["user_name"] = json!(Rsa::encrypt("张三", emu.platform_public_key()).unwrap());
    let mut req = http::Request::post(format!(
        "{}v3/fund-app/mch-transfer/transfer-bills",
        emu.base_uri()
    ))
    .header("content-type", "application/json")
    .header("accept", "application/json")
    .body(Bytes::from(a["json"].to_string()))
    .unwrap();
    sign_request(&mut req, &credentials(&emu)).unwrap();
    let (status, _, body) = send(req);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (status, v["code"].as_str()),
        (400, Some("PARAM_ERROR")),
        "{v}"
    );
    assert_eq!(v["detail"]["field"], "/Wechatpay-Serial");
    // Nothing of it was recorded.
    let (status, code, _) = api(c
        ["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
        .get(json!({"out_bill_no": "bad000001"}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
}

/// A paid payment made for profit sharing (or not); its `transaction_id`.
fn paid(emu: &Emulator, c: &Client, no: &str, total: i64, url: &str, sharing: bool) -> String {
    ok(c["v3/pay/transactions/native"].post(json!({"json": {
        "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "分账测试",
        "out_trade_no": no, "notify_url": url, "amount": {"total": total},
        "settle_info": {"profit_sharing": sharing},
    }})));
    emu.pay(no).unwrap()["transaction_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn add_receiver(c: &Client, body: Value) -> Result<wechatpay_chain::Response, Error> {
    c["v3/profitsharing/receivers/add"].post(json!({"json": body}))
}

#[test]
fn profit_sharing_shares_returns_and_unfreezes_with_notifications() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let hook = hook(c.notifier(emu.apiv3_key()).unwrap());
    let tid = paid(&emu, &c, "sharing0001", 1000, &hook.url, true);
    let n = next(&hook);
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    let paid_at = n.resource["success_time"].clone();
    let enc = c.encryptor().unwrap();

    let added = ok(add_receiver(
        &c,
        json!({
            "appid": "wx8888888888888888", "type": "MERCHANT_ID", "account": "86693852",
            "name": enc.encrypt("示例商户全称").unwrap(), "relation_type": "STORE",
        }),
    ));
    assert_eq!(
        (added["type"].as_str(), added["account"].as_str()),
        (Some("MERCHANT_ID"), Some("86693852"))
    );
    assert_eq!(merchant_decrypts(&emu, &added["name"]), "示例商户全称");
    let added = ok(add_receiver(
        &c,
        json!({
            "appid": "wx8888888888888888", "type": "PERSONAL_OPENID", "account": OPENID,
            "relation_type": "CUSTOM", "custom_relation": "代理商",
        }),
    ));
    assert_eq!(added["custom_relation"], "代理商");

    let amounts = &c["v3/profitsharing/transactions/{transaction_id}/amounts"];
    let v = ok(amounts.get(json!({"transaction_id": tid})));
    assert_eq!(
        (v["transaction_id"].as_str(), v["unsplit_amount"].as_i64()),
        (Some(tid.as_str()), Some(1000))
    );

    let order = json!({"json": {
        "appid": "wx8888888888888888", "transaction_id": tid, "out_order_no": "P20150806125346",
        "receivers": [
            {"type": "MERCHANT_ID", "account": "86693852", "name": enc.encrypt("示例商户全称").unwrap(),
             "amount": 300, "description": "分给商户A"},
            {"type": "PERSONAL_OPENID", "account": OPENID, "amount": 100, "description": "分给个人"},
        ],
        "unfreeze_unsplit": false,
    }});
    let orders = &c["v3/profitsharing/orders"];
    let created = ok(orders.post(order.clone()));
    assert_eq!(created["state"], "PROCESSING");
    assert_eq!(created["transaction_id"], tid.as_str());
    let order_id = created["order_id"].as_str().unwrap().to_string();
    let rs = created["receivers"].as_array().unwrap();
    assert_eq!(rs.len(), 2);
    assert!(rs.iter().all(|r| r["result"] == "PENDING"));
    let mut shares = [next(&hook), next(&hook)];
    shares.sort_by_key(|n| n.resource["receiver"]["amount"].as_i64());
    for (n, (account, amount)) in shares.iter().zip([(OPENID, 100), ("86693852", 300)]) {
        assert_eq!(n.event_type, "PROFITSHARING.SUCCESS");
        documented(n);
        let r = &n.resource;
        assert_eq!(
            (r["transaction_id"].as_str(), r["order_id"].as_str()),
            (Some(tid.as_str()), Some(order_id.as_str()))
        );
        assert_eq!(r["out_order_no"], "P20150806125346");
        assert_eq!(
            (
                r["receiver"]["account"].as_str(),
                r["receiver"]["amount"].as_i64()
            ),
            (Some(account), Some(amount))
        );
        assert_eq!(r["success_time"], paid_at, "the payment's success_time");
    }

    let query = &c["v3/profitsharing/orders/{out_order_no}"];
    let q =
        ok(query.get(json!({"out_order_no": "P20150806125346", "query": {"transaction_id": tid}})));
    assert_eq!(q["state"], "FINISHED");
    assert_eq!(q["order_id"], order_id.as_str());
    assert!(q["receivers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["result"] == "SUCCESS" && r["detail_id"].is_string()));
    assert_eq!(
        ok(amounts.get(json!({"transaction_id": tid})))["unsplit_amount"],
        600
    );
    // The same order again (the name encrypted anew): the order as it is. Other content: 409.
    let mut again = order.clone();
    again["json"]["receivers"][0]["name"] = json!(enc.encrypt("示例商户全称").unwrap());
    assert_eq!(ok(orders.post(again)), q);
    let mut other = order.clone();
    other["json"]["receivers"][1]["amount"] = json!(101);
    assert_eq!(api(orders.post(other).unwrap_err()).0, 409);

    // Part of the merchant receiver's share comes back.
    let ret = json!({"json": {"out_order_no": "P20150806125346", "out_return_no": "R20190516001",
        "return_mchid": "86693852", "amount": 120, "description": "用户退款"}});
    let returns = &c["v3/profitsharing/return-orders"];
    let r = ok(returns.post(ret.clone()));
    assert_eq!(
        (r["result"].as_str(), r["amount"].as_i64()),
        (Some("PROCESSING"), Some(120))
    );
    assert_eq!(r["order_id"], order_id.as_str());
    let n = next(&hook);
    assert_eq!(n.event_type, "PROFITSHARING.RETURN");
    documented(&n);
    assert_eq!(n.resource["success_time"], paid_at);
    assert_eq!(n.resource["out_order_no"], "R20190516001");
    assert_eq!(n.resource["order_id"], r["return_id"]);
    assert_eq!(
        (
            n.resource["receiver"]["account"].as_str(),
            n.resource["receiver"]["amount"].as_i64()
        ),
        (Some("86693852"), Some(120))
    );
    let rq = ok(c["v3/profitsharing/return-orders/{out_return_no}"].get(
        json!({"out_return_no": "R20190516001", "query": {"out_order_no": "P20150806125346"}}),
    ));
    assert_eq!(rq["result"], "SUCCESS");
    assert_eq!(rq["return_id"], r["return_id"]);
    assert_eq!(ok(returns.post(ret)), rq);
    // By order_id, the rest of it; beyond that, refused.
    let more = |no: &str, amount: i64| {
        json!({"json": {"order_id": order_id, "out_return_no": no,
        "return_mchid": "86693852", "amount": amount, "description": "用户退款"}})
    };
    let (status, code, _) = api(returns.post(more("R20190516002", 181)).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    assert_eq!(ok(returns.post(more("R20190516002", 180)))["amount"], 180);
    assert_eq!(next(&hook).event_type, "PROFITSHARING.RETURN");

    // The rest is unfrozen to the merchant: nothing more to share.
    let u = ok(c["v3/profitsharing/orders/unfreeze"].post(json!({"json": {
        "transaction_id": tid, "out_order_no": "P20150806125999", "description": "解冻全部剩余资金"}})));
    assert_eq!(u["state"], "PROCESSING");
    let own = &u["receivers"][0];
    assert_eq!(
        (own["account"].as_str(), own["amount"].as_i64()),
        (Some(emu.mchid()), Some(600))
    );
    assert_eq!(
        ok(amounts.get(json!({"transaction_id": tid})))["unsplit_amount"],
        0
    );
    let mut late = order.clone();
    late["json"]["out_order_no"] = json!("P20150806126000");
    let (status, code, _) = api(orders.post(late).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    let (status, code, _) = api(c["v3/profitsharing/orders/unfreeze"]
        .post(json!({"json": {
        "transaction_id": tid, "out_order_no": "P20150806126001", "description": "再解冻"}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));

    // Deleted receivers take no more shares.
    let d = ok(c["v3/profitsharing/receivers/delete"].post(json!({"json": {
        "appid": "wx8888888888888888", "type": "PERSONAL_OPENID", "account": OPENID}})));
    assert_eq!(d["account"], OPENID);
    delivered(&emu, 5);
    none_pending(&hook);
}

#[test]
fn profit_sharing_answers_the_documented_errors() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let url = "https://www.weixin.qq.com/wxpay/pay.php";
    let tid = paid(&emu, &c, "sharing0002", 500, url, true);
    let plain = paid(&emu, &c, "sharing0003", 500, url, false);
    let enc = c.encryptor().unwrap();
    let serial = emu.platform_serial().to_string();
    let order = |tid: &str, account: &str, amount: i64| {
        json!({"json": {
        "transaction_id": tid, "out_order_no": "P000000001",
        "receivers": [{"type": "MERCHANT_ID", "account": account, "amount": amount, "description": "分给商户"}],
        "unfreeze_unsplit": false}})
    };
    let orders = &c["v3/profitsharing/orders"];
    let refused = |args: Value| api(orders.post(args).unwrap_err());

    // Receivers: MERCHANT_ID needs its name, CUSTOM its relation, names must decrypt.
    let (status, code, field) = api(add_receiver(
        &c,
        json!({"appid": "wx8888888888888888",
        "type": "MERCHANT_ID", "account": "86693852", "relation_type": "STORE"}),
    )
    .unwrap_err());
    assert_eq!(
        (status, code.as_str(), field.as_deref()),
        (400, "PARAM_ERROR", Some("/name"))
    );
    let (_, code, field) = api(add_receiver(
        &c,
        json!({"appid": "wx8888888888888888",
        "type": "PERSONAL_OPENID", "account": OPENID, "relation_type": "CUSTOM"}),
    )
    .unwrap_err());
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("PARAM_ERROR", Some("/custom_relation"))
    );
    let (_, code, field) = api(c["v3/profitsharing/receivers/add"]
        .post(json!({
        "json": {"appid": "wx8888888888888888", "type": "MERCHANT_ID", "account": "86693852",
                 "name": "示例商户全称", "relation_type": "STORE"},
        "headers": {"Wechatpay-Serial": serial}}))
        .unwrap_err());
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("PARAM_ERROR", Some("/name"))
    );
    let (_, code, field) = api(add_receiver(
        &c,
        json!({"appid": "wx8888888888888888",
        "type": "SOMEONE", "account": OPENID, "relation_type": "STORE"}),
    )
    .unwrap_err());
    assert_eq!(
        (code.as_str(), field.as_deref()),
        ("PARAM_ERROR", Some("/type"))
    );
    let (status, code, _) = api(c["v3/profitsharing/receivers/delete"]
        .post(json!({"json": {
        "appid": "wx8888888888888888", "type": "MERCHANT_ID", "account": "86693852"}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));

    // Orders: the payment must exist, be made for sharing, the receivers be added.
    assert_eq!(
        refused(order("4200000000000000000000000000", "86693852", 10)),
        (404, "ORDER_NOT_EXIST".into(), None)
    );
    assert_eq!(refused(order(&plain, "86693852", 10)).1, "INVALID_REQUEST");
    assert_eq!(refused(order(&tid, "86693852", 10)).1, "INVALID_REQUEST");
    ok(add_receiver(
        &c,
        json!({"appid": "wx8888888888888888", "type": "MERCHANT_ID",
        "account": "86693852", "name": enc.encrypt("示例商户全称").unwrap(), "relation_type": "STORE"}),
    ));
    assert_eq!(refused(order(&tid, "86693852", 501)).0, 403);
    assert_eq!(refused(order(&tid, "86693852", 501)).1, "NOT_ENOUGH");
    assert_eq!(
        refused(order(&tid, "86693852", 0)),
        (
            400,
            "PARAM_ERROR".into(),
            Some("/receivers/0/amount".into())
        )
    );
    let mut missing = order(&tid, "86693852", 10);
    missing["json"]
        .as_object_mut()
        .unwrap()
        .remove("unfreeze_unsplit");
    assert_eq!(
        refused(missing),
        (400, "PARAM_ERROR".into(), Some("/unfreeze_unsplit".into()))
    );
    let mut named = order(&tid, "86693852", 10);
    named["json"]["receivers"][0]["name"] = json!(enc.encrypt("另一个商户").unwrap());
    assert_eq!(refused(named).1, "INVALID_REQUEST");
    let mut garbled = order(&tid, "86693852", 10);
    garbled["json"]["receivers"][0]["name"] = json!("bm90IGNpcGhlcnRleHQ=");
    garbled["headers"] = json!({"Wechatpay-Serial": serial});
    assert_eq!(
        refused(garbled),
        (400, "PARAM_ERROR".into(), Some("/receivers/0/name".into()))
    );
    // Nothing was shared by the refusals.
    let amounts = &c["v3/profitsharing/transactions/{transaction_id}/amounts"];
    assert_eq!(
        ok(amounts.get(json!({"transaction_id": tid})))["unsplit_amount"],
        500
    );
    let (status, code, _) = api(amounts
        .get(json!({"transaction_id": "4200000000000000000000000000"}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "ORDER_NOT_EXIST"));
    assert_eq!(
        ok(amounts.get(json!({"transaction_id": plain})))["unsplit_amount"],
        0
    );

    // Queries of what does not exist, or under another payment.
    let query = &c["v3/profitsharing/orders/{out_order_no}"];
    ok(orders.post(order(&tid, "86693852", 10)));
    let (status, code, _) = api(query
        .get(json!({"out_order_no": "P000000002", "query": {"transaction_id": tid}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
    let (status, code, _) = api(query
        .get(json!({"out_order_no": "P000000001", "query": {"transaction_id": plain}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
    let (status, code, field) = api(query
        .get(json!({"out_order_no": "P000000001"}))
        .unwrap_err());
    assert_eq!(
        (status, code.as_str(), field.as_deref()),
        (400, "PARAM_ERROR", Some("/transaction_id"))
    );

    // Returns: only from a receiver of the order, within its share.
    let returns = &c["v3/profitsharing/return-orders"];
    let ret = |order_no: &str, mchid: &str, amount: i64| {
        json!({"json": {"out_order_no": order_no,
        "out_return_no": "R000000001", "return_mchid": mchid, "amount": amount, "description": "回退"}})
    };
    assert_eq!(
        api(returns.post(ret("P000000009", "86693852", 1)).unwrap_err()).1,
        "RESOURCE_NOT_EXISTS"
    );
    assert_eq!(
        api(returns.post(ret("P000000001", "19000000", 1)).unwrap_err()).1,
        "INVALID_REQUEST"
    );
    assert_eq!(
        api(returns.post(ret("P000000001", "86693852", 11)).unwrap_err()).1,
        "INVALID_REQUEST"
    );
    let mut neither = ret("P000000001", "86693852", 1);
    neither["json"]
        .as_object_mut()
        .unwrap()
        .remove("out_order_no");
    assert_eq!(
        api(returns.post(neither).unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/out_order_no".into()))
    );
    let (status, code, _) = api(c["v3/profitsharing/return-orders/{out_return_no}"]
        .get(json!({"out_return_no": "R000000001", "query": {"out_order_no": "P000000001"}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
}

/// The conformance corpus's samples of these paths, replayed as they are (the corpus's
/// `Wechatpay-Serial` is made the sandbox's public key id): each gets a signed 2xx, or a
/// documented business error for what the sandbox does not hold (a payment or order it never
/// saw), or the platform's refusal of a value documented as encrypted that is not ciphertext.
#[test]
fn the_corpus_samples_of_these_paths_get_verified_documented_answers() {
    let emu = start(EmulatorConfig::new().public_key_id(common::PUB_KEY_ID));
    let c = client(&emu);
    // the corpus holds eight, the sample the repository carries four
    let corpus = shared::corpus();
    let mut seen = 0;
    for line in corpus.lines() {
        let s: Value = serde_json::from_str(line).unwrap();
        let template = s["template"].as_str().unwrap();
        let ours = (template.starts_with("v3/fund-app/mch-transfer/transfer-bills")
            || template.starts_with("v3/profitsharing/"))
            && s["mchid"] == emu.mchid();
        if !ours {
            continue;
        }
        seen += 1;
        let chain = c.chain(template);
        let args = s["args"].clone();
        let answer = match s["method"].as_str().unwrap() {
            "GET" => chain.get(args),
            "POST" => chain.post(args),
            m => panic!("{m} {template}"),
        };
        let op = wechatpay_chain::catalog::find(s["method"].as_str().unwrap(), template).unwrap();
        eprintln!(
            "{} {template}: {}",
            s["method"].as_str().unwrap_or_default(),
            match &answer {
                Ok(res) => res.status().as_u16().to_string(),
                Err(e) => e.to_string(),
            }
        );
        match answer {
            Ok(res) => assert!(res.status().is_success(), "{template}"),
            Err(Error::Api {
                status,
                code,
                detail,
                verified,
                ..
            }) => {
                assert!(verified, "{template}");
                let field = detail
                    .as_ref()
                    .and_then(|d| d["field"].as_str())
                    .unwrap_or("");
                let encrypted = |fields: &[wechatpay_chain::catalog::Field], name: &str| {
                    fn any(fs: &[wechatpay_chain::catalog::Field], name: &str) -> bool {
                        fs.iter().any(|f| {
                            (f.name == name && f.encrypted.is_some()) || any(&f.children, name)
                        })
                    }
                    any(fields, name)
                };
                let last = field.rsplit('/').next().unwrap_or("");
                let fine =
                    matches!(
                        (status, code.as_str()),
                        (404, "ORDER_NOT_EXIST" | "RESOURCE_NOT_EXISTS" | "NOT_FOUND")
                    ) || (status == 400 && code == "PARAM_ERROR" && encrypted(&op.request, last));
                assert!(fine, "{template}: {status} {code} {detail:?}");
            }
            Err(other) => panic!("{template}: {other}"),
        }
    }
    assert!(seen >= if corpus.full { 8 } else { 4 }, "{seen} samples");
}
