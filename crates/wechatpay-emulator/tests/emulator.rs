//! The client against the emulator: every stateful operation with its documented fields and
//! errors, notifications verified and decrypted, the certificate downloader (library and
//! command), and the emulator refusing requests that are not signed right. Real sockets on
//! loopback, keys generated at test time, one tokio runtime for the binary.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use common::rt;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{api, client, credentials, send, start, Receiver};

use bytes::Bytes;
use serde_json::{json, Value};
use wechatpay_chain::client_json::{sign_request, sign_request_with, verify_headers, Credentials};
use wechatpay_chain::crypto::hash::{sha1_hex, sha256_hex};
use wechatpay_chain::crypto::AesGcm;
use wechatpay_chain::download::{Bill, BillList, Downloaded};
use wechatpay_chain::{formatter, Error, Keyring, Rsa};
use wechatpay_emulator::{Emulator, EmulatorConfig, Forgery, Outcome};

/// A merchant's notification endpoint: answers the queued statuses, then 204, and hands over
/// what it received.
fn hook(statuses: Vec<u16>) -> Receiver<(http::HeaderMap, Bytes)> {
    let statuses = Mutex::new(VecDeque::from(statuses));
    Receiver::new(move |headers, body| {
        let status = statuses.lock().unwrap().pop_front().unwrap_or(204);
        let reply = Bytes::from_static(b"{\"code\":\"FAIL\",\"message\":\"busy\"}");
        ((headers, body), status, reply)
    })
}

/// Verifies a notification with the platform key and decrypts its resource.
fn open(emu: &Emulator, headers: &http::HeaderMap, body: &[u8]) -> (Value, Value) {
    let ring = Keyring::new();
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    verify_headers(headers, body, &ring, formatter::timestamp()).expect("notification signature");
    let n: Value = serde_json::from_slice(body).unwrap();
    let r = &n["resource"];
    assert_eq!(r["algorithm"], "AEAD_AES_256_GCM");
    let plain = AesGcm::decrypt(
        r["ciphertext"].as_str().unwrap(),
        emu.apiv3_key(),
        r["nonce"].as_str().unwrap(),
        r["associated_data"].as_str().unwrap(),
    )
    .unwrap();
    (n.clone(), serde_json::from_slice(&plain).unwrap())
}

fn card(code: &str, template: &str) -> Value {
    json!({"json": {"out_card_code": code, "card_template_id": template,
        "appid": "wxd678efh567hg6787", "notify_url": "https://www.weixin.qq.com/wxpay/card.php"}})
}

fn records(code: &str, serial: &str, count: i64) -> Value {
    json!({"out_card_code": code, "json": {
        "card_template_id": "87789b2f25177433bcbf407e8e471f95",
        "objective_completion_records": [{"objective_completion_serial_no": serial, "objective_id": "123456",
            "completion_time": "2015-05-20T13:29:35.120+08:00", "completion_type": "INCREASE",
            "description": "购买商品", "completion_count": count, "remark": "特价商品"}],
        "reward_usage_records": [{"reward_usage_serial_no": "578354", "reward_id": "123456",
            "usage_time": "2015-05-20T13:29:35.120+08:00", "usage_type": "INCREASE",
            "description": "购买商品", "usage_count": 1, "amount": 100, "remark": "特价商品"}]}})
}

fn order_patch(no: &str, serial: &str, amount: i64) -> Value {
    json!({"out_order_no": no, "json": {
        "objectives": [{"objective_serial_no": serial, "objective_id": 123456,
            "performance_description": "购买商品", "performance_type": "INCREASE", "count": 1,
            "performance_time": "2015-05-20T13:29:35.120+08:00", "remark": "特价商品"}],
        "rewards": [{"reward_serial_no": "R1", "reward_id": 123456, "description": "购买商品",
            "reward_type": "INCREASE", "count": 1, "amount": amount,
            "reward_time": "2015-05-20T13:29:35.120+08:00", "remark": "特价商品"}]}})
}

#[test]
fn discount_card_operations_keep_state_with_documented_fields_and_errors() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let code = "6e8369071cd942c0476613f9d1ce9ca3";
    let template = "87789b2f25177433bcbf407e8e471f95";
    let no = "233bcbf407e87789b8e471f251774f95";

    // Prepare: a token; the same request again answers the same token; other content is 409.
    let res = c["v3"]["discountCard"]["cards"]
        .post(card(code, template))
        .unwrap();
    let token = res.json::<Value>().unwrap()["prepare_card_token"].clone();
    assert!(token.as_str().is_some_and(|t| !t.is_empty()));
    let again = c
        .chain("v3/discount-card/cards")
        .post(card(code, template))
        .unwrap();
    assert_eq!(again.json::<Value>().unwrap()["prepare_card_token"], token);
    let (status, code_409, _) = api(c["v3/discount-card/cards"]
        .post(card(code, "other"))
        .unwrap_err());
    assert_eq!(
        (status, code_409.as_str()),
        (409, "RESOURCE_ALREADY_EXISTS")
    );
    let mut missing = card("6e8369071cd942c0476613f9d1ce9ca4", template);
    missing["json"]
        .as_object_mut()
        .unwrap()
        .remove("notify_url");
    assert_eq!(
        api(c["v3/discount-card/cards"].post(missing).unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/notify_url".into()))
    );

    // Records need the user to have taken the card.
    let (status, err_code, _) = api(c["v3/discount-card/cards/{out_card_code}/add-user-records"]
        .post(records(code, "578354545", 1))
        .unwrap_err());
    assert_eq!((status, err_code.as_str()), (400, "INVALID_REQUEST"));
    let order = emu.accept_card(code, Some(no)).unwrap();
    assert_eq!(order["state"], "CREATED");
    assert_eq!(order["out_trade_no"], code);

    // Add user records: 204, idempotent, 409 on a reused serial with other content.
    let res = c["v3"]["discountCard"]["cards"]["_out_card_code_"]["addUserRecords"]
        .post(records(code, "578354545", 1))
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.body().is_empty());
    let res = rt()
        .block_on(
            c.chain("v3/discount-card/cards/{out_card_code}/add-user-records")
                .post_async(records(code, "578354545", 1)),
        )
        .unwrap();
    assert_eq!(res.status(), 204);
    let (status, _, field) = api(c["v3/discount-card/cards/{out_card_code}/add-user-records"]
        .post(records(code, "578354545", 2))
        .unwrap_err());
    assert_eq!(
        (status, field.as_deref()),
        (
            409,
            Some("/objective_completion_records/0/objective_completion_serial_no")
        )
    );
    let mut bad = records(code, "578354546", 1);
    bad["json"]["reward_usage_records"][0]
        .as_object_mut()
        .unwrap()
        .remove("amount");
    assert_eq!(
        api(c["v3/discount-card/cards/{out_card_code}/add-user-records"]
            .post(bad)
            .unwrap_err()),
        (
            400,
            "PARAM_ERROR".into(),
            Some("/reward_usage_records/0/amount".into())
        )
    );
    let (status, err_code, _) = api(c["v3/discount-card/cards/{out_card_code}/add-user-records"]
        .post(records("nosuchcard0001", "1", 1))
        .unwrap_err());
    assert_eq!((status, err_code.as_str()), (404, "RESOURCE_NOT_EXISTS"));

    // Update: out_out_order_no and order_id; idempotent; 409; 404 for an unknown order.
    let res = c["v3"]["discountCard"]["orders"]["_out_order_no_"]
        .patch(order_patch(no, "578354545", 100))
        .unwrap();
    let v: Value = res.json().unwrap();
    assert_eq!(v["out_order_no"], no);
    assert_eq!(v["order_id"], order["order_id"]);
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    c["v3/discount-card/orders/{out_order_no}"]
        .patch(order_patch(no, "578354545", 100))
        .unwrap();
    let (status, _, field) = api(c["v3/discount-card/orders/{out_order_no}"]
        .patch(order_patch(no, "578354545", 200))
        .unwrap_err());
    assert_eq!(
        (status, field.as_deref()),
        (409, Some("/rewards/0/reward_serial_no"))
    );
    assert_eq!(
        api(c["v3/discount-card/orders/{out_order_no}"]
            .patch(order_patch("nosuchorder", "1", 1))
            .unwrap_err()),
        (404, "ORDER_NOT_EXIST".into(), None)
    );
    let mut bad = order_patch(no, "578354547", 1);
    bad["json"]["objectives"][0]["objective_id"] = json!("not a number");
    assert_eq!(
        api(c["v3/discount-card/orders/{out_order_no}"]
            .patch(bad)
            .unwrap_err()),
        (
            400,
            "PARAM_ERROR".into(),
            Some("/objectives/0/objective_id".into())
        )
    );

    // Query: both records, each once, with the documented fields; by out_trade_no too.
    let v: Value = c
        .chain("v3/discount-card/orders/{out_order_no}")
        .get(json!({"out_order_no": no}))
        .unwrap()
        .json()
        .unwrap();
    for k in [
        "out_order_no",
        "discount_card_id",
        "out_trade_no",
        "appid",
        "service_id",
        "order_id",
        "openid",
        "card_begin_time",
        "card_end_time",
        "card_name",
        "objective_description",
        "reward_description",
        "estimated_reward_amount",
        "state",
        "create_time",
    ] {
        assert!(v.get(k).is_some(), "{k} missing from {v}");
    }
    assert_eq!(v["discount_card_id"], template);
    let objectives = v["objectives"].as_array().unwrap();
    assert_eq!(objectives.len(), 2, "{v}");
    assert_eq!(objectives[0]["objective_serial_no"], "578354545");
    assert_eq!(objectives[0]["objective_id"], 123456);
    assert_eq!(objectives[0]["performance_type"], "INCREASE");
    assert_eq!(v["rewards"].as_array().unwrap().len(), 2);
    assert_eq!(v["total_amount"], 200);
    let by_trade: Value = rt()
        .block_on(
            c["v3"]["discountCard"]["orders"]["outTradeNo"]["_out_trade_no_"]
                .get_async(json!({"out_trade_no": code})),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(by_trade, v);
    assert_eq!(
        api(c["v3/discount-card/orders/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": "nosuchtrade"}))
            .unwrap_err()),
        (404, "ORDER_NOT_EXIST".into(), None)
    );
    // Every request above passed the platform's checks.
    assert!(emu.requests().iter().all(|r| r.verified));
}

#[test]
fn brand_points_sync_answers_the_documented_fields_once_per_request_number() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let body = json!({"json": {"out_request_no": "100002322019090134234sfdf", "brand_id": "1004",
        "card_id": "pbLatjvWOibDc5-TBnbUk1pD12o0", "openid": "obLatjnx9gnqzS4myYGmLZ7LgLBA",
        "user_card_code": "478515832665", "point_balance": 1000}});
    let chain = &c["v3"]["brand"]["partner"]["cardMember"]["userPoints"]["sync"];
    let v: Value = chain.post(body.clone()).unwrap().json().unwrap();
    assert_eq!(v, body["json"]);
    let again: Value = rt()
        .block_on(chain.post_async(body.clone()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again, v);
    let mut other = body.clone();
    other["json"]["point_balance"] = json!(2000);
    assert_eq!(api(chain.post(other.clone()).unwrap_err()).0, 409);
    other["json"]["out_request_no"] = json!("100002322019090134234sfdg");
    assert_eq!(
        chain.post(other).unwrap().json::<Value>().unwrap()["point_balance"],
        2000
    );
    let mut missing = body.clone();
    missing["json"]
        .as_object_mut()
        .unwrap()
        .remove("user_card_code");
    assert_eq!(
        api(chain.post(missing).unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/user_card_code".into()))
    );
    let mut negative = body;
    negative["json"]["out_request_no"] = json!("neg");
    negative["json"]["point_balance"] = json!(-1);
    assert_eq!(
        api(chain.post(negative).unwrap_err()).2.as_deref(),
        Some("/point_balance")
    );
}

fn native(emu: &Emulator, no: &str, url: &str, total: i64) -> Value {
    json!({"json": {"appid": "wxd678efh567hg6787", "mchid": emu.mchid(),
        "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": no, "notify_url": url,
        "amount": {"total": total, "currency": "CNY"}}})
}

#[test]
fn native_payment_round_trip_with_a_verified_decrypted_notification() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let hook = hook(vec![]);
    let no = "1217752501201407033233368018";
    let created: Value = c["v3/pay/transactions/native"]
        .post(native(&emu, no, &hook.url, 100))
        .unwrap()
        .json()
        .unwrap();
    let code_url = created["code_url"].as_str().unwrap();
    assert!(
        code_url.starts_with("weixin://wxpay/bizpayurl?pr="),
        "{code_url}"
    );
    // The same order again: the same answer; other content: 409.
    let again: Value = c["v3/pay/transactions/native"]
        .post(native(&emu, no, &hook.url, 100))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again, created);
    assert_eq!(
        api(c["v3/pay/transactions/native"]
            .post(native(&emu, no, &hook.url, 101))
            .unwrap_err())
        .0,
        409
    );

    let query = json!({"out_trade_no": no, "query": {"mchid": emu.mchid()}});
    let v: Value = c["v3"]["pay"]["transactions"]["outTradeNo"]["_out_trade_no_"]
        .get(query.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["trade_state"], "NOTPAY");
    assert!(v.get("transaction_id").is_none());
    assert!(
        hook.next_within(Duration::from_millis(200)).is_none(),
        "nothing is notified before paying"
    );

    let paid = emu.pay(no).unwrap();
    let (headers, body) = hook
        .next_within(Duration::from_secs(5))
        .expect("a notification");
    assert_eq!(headers["wechatpay-serial"], emu.platform_serial());
    let (envelope, resource) = open(&emu, &headers, &body);
    assert_eq!(envelope["event_type"], "TRANSACTION.SUCCESS");
    assert_eq!(envelope["resource"]["associated_data"], "transaction");
    assert_eq!(resource["trade_state"], "SUCCESS");
    assert_eq!(resource["out_trade_no"], no);
    assert_eq!(resource["amount"]["total"], 100);
    assert_eq!(resource, paid);
    // The library's webhook helper takes it as well.
    let n = c
        .notifier(emu.apiv3_key())
        .unwrap()
        .verify(&headers, &body)
        .unwrap();
    assert_eq!(
        (n.event_type.as_str(), &n.resource),
        ("TRANSACTION.SUCCESS", &paid)
    );
    // A tampered notification does not verify.
    let mut tampered = body.to_vec();
    tampered.push(b' ');
    let ring = Keyring::new();
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    assert!(verify_headers(&headers, &tampered, &ring, formatter::timestamp()).is_err());

    let v: Value = c
        .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
        .get(query)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["trade_state"], "SUCCESS");
    // The query shows the order as the notification did, field for field and in the
    // documented order (the query serializes it straight from the order, the notification
    // through a JSON value).
    assert_eq!(v, paid);
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "appid",
            "mchid",
            "out_trade_no",
            "transaction_id",
            "trade_type",
            "trade_state",
            "trade_state_desc",
            "bank_type",
            "success_time",
            "payer",
            "amount"
        ]
    );
    assert_eq!(
        v["amount"],
        json!({"total": 100, "currency": "CNY", "payer_currency": "CNY", "payer_total": 100})
    );
    let id = v["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 28);
    let by_id: Value = c["v3/pay/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": id, "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(by_id, v);
    // Paying again changes nothing and notifies nothing.
    assert_eq!(emu.pay(no).unwrap()["transaction_id"], id.as_str());
    assert!(hook.next_within(Duration::from_millis(300)).is_none());
    let d = emu.deliveries();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].outcome, Outcome::Accepted(204));
    // A paid order cannot be closed.
    let (status, code, _) = api(c["v3/pay/transactions/out-trade-no/{out_trade_no}/close"]
        .post(json!({"out_trade_no": no, "json": {"mchid": emu.mchid()}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (400, "ORDERPAID"));
}

/// The scheme every signed answer names, as the platform sends it (wechatpayv3 refuses an
/// answer without it).
const SIGNATURE_TYPE: &str = "WECHATPAY2-SHA256-RSA2048";

#[test]
fn every_signed_answer_names_its_signature_type() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let scheme = |h: &http::HeaderMap| {
        h.get("wechatpay-signature-type")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // a 200
    let order = native(&emu, "scheme-0001", "https://example.invalid/notify", 1);
    let res = c["v3/pay/transactions/native"].post(order).unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(scheme(res.headers()).as_deref(), Some(SIGNATURE_TYPE));
    // a 204
    let close = json!({"out_trade_no": "scheme-0001", "json": {"mchid": emu.mchid()}});
    let res = c["v3/pay/transactions/out-trade-no/{out_trade_no}/close"]
        .post(close)
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(scheme(res.headers()).as_deref(), Some(SIGNATURE_TYPE));
    // an error answer, signed like any other: an unknown order, then an unsigned request
    let ring = Keyring::new();
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    let mut unknown = http::Request::get(format!(
        "{}v3/pay/transactions/out-trade-no/scheme-none?mchid={}",
        emu.base_uri(),
        emu.mchid()
    ))
    .body(Bytes::new())
    .unwrap();
    sign_request(&mut unknown, &credentials(&emu)).unwrap();
    let unsigned = http::Request::get(format!("{}v3/certificates", emu.base_uri()))
        .body(Bytes::new())
        .unwrap();
    for (req, want) in [(unknown, 404), (unsigned, 401)] {
        let (status, headers, body) = send(req);
        assert_eq!(status, want, "{}", String::from_utf8_lossy(&body));
        verify_headers(&headers, &body, &ring, formatter::timestamp()).unwrap();
        assert_eq!(scheme(&headers).as_deref(), Some(SIGNATURE_TYPE), "{want}");
    }
    // the certificate download in certificate mode
    let emu = start(EmulatorConfig::new().mode(wechatpay_emulator::Mode::Certificate));
    let res = client(&emu)["v3/certificates"].get(json!({})).unwrap();
    assert_eq!(scheme(res.headers()).as_deref(), Some(SIGNATURE_TYPE));
}

#[test]
fn jsapi_orders_close_and_answer_the_documented_errors() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let mut order = native(&emu, "jsapi-0001", "https://example.invalid/notify", 1);
    order["json"]["payer"] = json!({"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"});
    let v: Value = c["v3"]["pay"]["transactions"]["jsapi"]
        .post(order.clone())
        .unwrap()
        .json()
        .unwrap();
    assert!(v["prepay_id"].as_str().unwrap().starts_with("wx"));
    let mut no_payer = order.clone();
    no_payer["json"]["out_trade_no"] = json!("jsapi-0002");
    no_payer["json"].as_object_mut().unwrap().remove("payer");
    assert_eq!(
        api(c["v3/pay/transactions/jsapi"].post(no_payer).unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/payer".into()))
    );
    let mut other = order.clone();
    other["json"]["out_trade_no"] = json!("jsapi-0003");
    other["json"]["mchid"] = json!("1900000002");
    assert_eq!(
        api(c["v3/pay/transactions/jsapi"].post(other).unwrap_err())
            .2
            .as_deref(),
        Some("/mchid")
    );
    let mut no_total = order.clone();
    no_total["json"]["out_trade_no"] = json!("jsapi-0004");
    no_total["json"]["amount"] = json!({"currency": "CNY"});
    assert_eq!(
        api(c["v3/pay/transactions/jsapi"].post(no_total).unwrap_err())
            .2
            .as_deref(),
        Some("/amount/total")
    );

    // The query needs ?mchid=.
    assert_eq!(
        api(c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": "jsapi-0001"}))
            .unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/mchid".into()))
    );
    let close = json!({"out_trade_no": "jsapi-0001", "json": {"mchid": emu.mchid()}});
    let res = c["v3"]["pay"]["transactions"]["outTradeNo"]["_out_trade_no_"]["close"]
        .post(close.clone())
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(
        c["v3/pay/transactions/out-trade-no/{out_trade_no}/close"]
            .post(close)
            .unwrap()
            .status(),
        204
    );
    let v: Value = c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": "jsapi-0001", "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["trade_state"], "CLOSED");
    assert_eq!(v["payer"]["openid"], "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o");
    assert_eq!(api(emu.pay("jsapi-0001").unwrap_err()).1, "ORDER_CLOSED");
    for (path, args) in [
        (
            "v3/pay/transactions/out-trade-no/{out_trade_no}",
            json!({"out_trade_no": "nosuchorder", "query": {"mchid": emu.mchid()}}),
        ),
        (
            "v3/pay/transactions/id/{transaction_id}",
            json!({"transaction_id": "4200000000000000000000000000", "query": {"mchid": emu.mchid()}}),
        ),
    ] {
        assert_eq!(
            api(c.chain(path).get(args).unwrap_err()),
            (404, "ORDER_NOT_EXIST".into(), None)
        );
    }
    assert_eq!(
        api(c["v3/pay/transactions/out-trade-no/{out_trade_no}/close"]
            .post(json!({"out_trade_no": "nosuchorder", "json": {"mchid": emu.mchid()}}))
            .unwrap_err()),
        (404, "ORDER_NOT_EXIST".into(), None)
    );
    // A notify_url off the machine is not notified: the attempt is recorded as skipped.
    let mut remote = order.clone();
    remote["json"]["out_trade_no"] = json!("jsapi-0005");
    c["v3/pay/transactions/jsapi"].post(remote).unwrap();
    emu.pay("jsapi-0005").unwrap();
    let d = emu.deliveries();
    assert_eq!(d.len(), 1);
    assert!(
        matches!(&d[0].outcome, Outcome::Skipped(why) if why.contains("loopback")),
        "{d:?}"
    );
}

#[test]
fn app_and_h5_orders_answer_their_own_way_and_pay_like_any_order() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    // APP: a prepay_id for the app's SDK.
    let app = native(&emu, "app-0001", "https://example.invalid/notify", 5);
    let v: Value = c["v3/pay/transactions/app"]
        .post(app)
        .unwrap()
        .json()
        .unwrap();
    assert!(v["prepay_id"].as_str().unwrap().starts_with("wx"), "{v}");
    // H5: the scene is required, down to h5_info.type; the answer is an h5_url.
    let mut h5 = native(&emu, "h5-0001", "https://example.invalid/notify", 7);
    assert_eq!(
        api(c["v3/pay/transactions/h5"].post(h5.clone()).unwrap_err()),
        (400, "PARAM_ERROR".into(), Some("/scene_info".into()))
    );
    h5["json"]["scene_info"] = json!({"payer_client_ip": "14.23.150.211", "h5_info": {}});
    assert_eq!(
        api(c["v3/pay/transactions/h5"].post(h5.clone()).unwrap_err()),
        (
            400,
            "PARAM_ERROR".into(),
            Some("/scene_info/h5_info/type".into())
        )
    );
    h5["json"]["scene_info"]["h5_info"] = json!({"type": "Wap", "app_name": "王者荣耀"});
    let v: Value = c["v3"]["pay"]["transactions"]["h5"]
        .post(h5.clone())
        .unwrap()
        .json()
        .unwrap();
    let url = v["h5_url"].as_str().unwrap();
    assert!(
        url.starts_with("https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx")
            && url.contains("&package="),
        "{url}"
    );
    // The same request again is the same answer; the same number with other content is 409.
    let again: Value = c["v3/pay/transactions/h5"]
        .post(h5.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again, v);
    h5["json"]["amount"]["total"] = json!(8);
    assert_eq!(
        api(c["v3/pay/transactions/h5"].post(h5).unwrap_err()).0,
        409
    );
    // Both pay and query like any order, with their trade types.
    for (no, trade_type) in [("app-0001", "APP"), ("h5-0001", "MWEB")] {
        emu.pay(no).unwrap();
        let q: Value = c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": no, "query": {"mchid": emu.mchid()}}))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            (q["trade_state"].as_str(), q["trade_type"].as_str()),
            (Some("SUCCESS"), Some(trade_type))
        );
    }
}

#[test]
fn refunds_process_then_succeed_and_notify() {
    let emu = start(EmulatorConfig::new().refund_delay(None));
    let c = client(&emu);
    let hook = hook(vec![]);
    c["v3/pay/transactions/native"]
        .post(native(&emu, "refund-0001", &hook.url, 100))
        .unwrap();
    let refund = |no: &str, amount: i64| {
        json!({"json": {"out_trade_no": "refund-0001", "out_refund_no": no, "notify_url": hook.url,
            "reason": "商品已售完", "amount": {"refund": amount, "total": 100, "currency": "CNY"}}})
    };
    let (status, code, _) = api(c["v3/refund/domestic/refunds"]
        .post(refund("R-0001", 60))
        .unwrap_err());
    assert_eq!(
        (status, code.as_str()),
        (400, "INVALID_REQUEST"),
        "an unpaid order cannot be refunded"
    );
    emu.pay("refund-0001").unwrap();
    let (h, b) = hook
        .next_within(Duration::from_secs(5))
        .expect("TRANSACTION.SUCCESS");
    assert_eq!(open(&emu, &h, &b).1["trade_state"], "SUCCESS");

    let v: Value = c["v3"]["refund"]["domestic"]["refunds"]
        .post(refund("R-0001", 60))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "PROCESSING");
    assert_eq!(v["amount"]["refund"], 60);
    assert_eq!(v["out_trade_no"], "refund-0001");
    let again: Value = c["v3/refund/domestic/refunds"]
        .post(refund("R-0001", 60))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["refund_id"], v["refund_id"]);
    assert_eq!(
        api(c["v3/refund/domestic/refunds"]
            .post(refund("R-0001", 50))
            .unwrap_err())
        .0,
        409
    );
    assert_eq!(
        api(c["v3/refund/domestic/refunds"]
            .post(refund("R-0002", 50))
            .unwrap_err())
        .1,
        "INVALID_REQUEST"
    );
    let mut wrong_total = refund("R-0003", 10);
    wrong_total["json"]["amount"]["total"] = json!(99);
    assert_eq!(
        api(c["v3/refund/domestic/refunds"]
            .post(wrong_total)
            .unwrap_err())
        .2
        .as_deref(),
        Some("/amount/total")
    );
    let mut no_order = refund("R-0004", 10);
    no_order["json"]
        .as_object_mut()
        .unwrap()
        .remove("out_trade_no");
    assert_eq!(
        api(c["v3/refund/domestic/refunds"].post(no_order).unwrap_err()).0,
        400
    );

    let q = json!({"out_refund_no": "R-0001"});
    let v: Value = c["v3/refund/domestic/refunds/{out_refund_no}"]
        .get(q.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "PROCESSING");
    assert!(hook.next_within(Duration::from_millis(200)).is_none());
    emu.complete_refund("R-0001").unwrap();
    let (headers, body) = hook
        .next_within(Duration::from_secs(5))
        .expect("REFUND.SUCCESS");
    let (envelope, resource) = open(&emu, &headers, &body);
    assert_eq!(envelope["event_type"], "REFUND.SUCCESS");
    assert_eq!(envelope["resource"]["associated_data"], "refund");
    assert_eq!(resource["refund_status"], "SUCCESS");
    assert_eq!(resource["out_refund_no"], "R-0001");
    assert_eq!(resource["amount"]["refund"], 60);
    let v: Value = c
        .chain("v3/refund/domestic/refunds/{out_refund_no}")
        .get(q)
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "SUCCESS");
    let t: Value = c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": "refund-0001", "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(t["trade_state"], "REFUND");
    assert_eq!(
        api(c["v3/refund/domestic/refunds/{out_refund_no}"]
            .get(json!({"out_refund_no": "R-none"}))
            .unwrap_err()),
        (404, "RESOURCE_NOT_EXISTS".into(), None)
    );
}

#[test]
fn notifications_are_retried_until_accepted_and_no_more() {
    let retries = vec![Duration::from_millis(50); 3];
    let emu = start(EmulatorConfig::new().notify_retries(retries));
    let c = client(&emu);
    // Refused twice, then accepted: three attempts, the same notification each time.
    let flaky = hook(vec![500, 503]);
    c["v3/pay/transactions/native"]
        .post(native(&emu, "retry-0001", &flaky.url, 1))
        .unwrap();
    emu.pay("retry-0001").unwrap();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (h, b) = flaky
            .next_within(Duration::from_secs(5))
            .expect("an attempt");
        ids.push(open(&emu, &h, &b).0["id"].clone());
    }
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert!(
        flaky.next_within(Duration::from_millis(400)).is_none(),
        "accepted: no more attempts"
    );
    let outcomes: Vec<Outcome> = emu.deliveries().into_iter().map(|d| d.outcome).collect();
    assert_eq!(
        outcomes,
        vec![
            Outcome::Refused(500),
            Outcome::Refused(503),
            Outcome::Accepted(204)
        ]
    );

    // Always refused: one attempt and three retries, then it gives up.
    let down = hook(vec![500; 10]);
    c["v3/pay/transactions/native"]
        .post(native(&emu, "retry-0002", &down.url, 1))
        .unwrap();
    emu.pay("retry-0002").unwrap();
    for _ in 0..4 {
        down.next_within(Duration::from_secs(5))
            .expect("an attempt");
    }
    assert!(
        down.next_within(Duration::from_millis(500)).is_none(),
        "bounded"
    );
    let attempts: Vec<u32> = emu
        .deliveries()
        .into_iter()
        .filter(|d| d.url == down.url)
        .map(|d| d.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2, 3, 4]);

    // Nobody listening: failures, recorded.
    let closed = format!("http://{}/notify", common::closed_port());
    c["v3/pay/transactions/native"]
        .post(native(&emu, "retry-0003", &closed, 1))
        .unwrap();
    emu.pay("retry-0003").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let failed = emu
            .deliveries()
            .into_iter()
            .filter(|d| d.url == closed && matches!(d.outcome, Outcome::Failed(_)))
            .count();
        if failed == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{:?}", emu.deliveries());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_emulator_refuses_requests_that_are_not_signed_right() {
    let emu = start(EmulatorConfig::new());
    let base = emu.base_uri();
    let cred = credentials(&emu);
    let body = br#"{"out_request_no":"sig-1","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":1}"#;
    let request = |body: &[u8]| {
        http::Request::post(format!(
            "{base}v3/brand/partner/card-member/user-points/sync"
        ))
        .header("content-type", "application/json")
        .body(Bytes::copy_from_slice(body))
        .unwrap()
    };
    let ring = Keyring::new();
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    let check = |req: http::Request<Bytes>, want: u16, why: &str| {
        let (status, headers, answer) = send(req);
        assert_eq!(status, want, "{why}: {}", String::from_utf8_lossy(&answer));
        // Errors are signed like any answer.
        verify_headers(&headers, &answer, &ring, formatter::timestamp()).unwrap();
        if want == 401 {
            let v: Value = serde_json::from_slice(&answer).unwrap();
            assert_eq!(v["code"], "SIGN_ERROR", "{why}");
            let refusal = emu.requests().last().unwrap().refusal.clone().unwrap();
            assert!(refusal.contains(why), "{refusal} should say {why}");
        }
    };

    let now = formatter::timestamp().to_string();
    let mut good = request(body);
    sign_request_with(&mut good, &cred, &now, "NONCE-GOOD").unwrap();
    let replay = {
        let mut r = request(body);
        *r.headers_mut() = good.headers().clone();
        r
    };
    check(good, 200, "a good request");
    check(replay, 401, "already used");

    let mut tampered = request(body);
    sign_request(&mut tampered, &cred).unwrap();
    *tampered.body_mut() = Bytes::from_static(br#"{"out_request_no":"sig-1","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":9999}"#);
    check(tampered, 401, "signature does not verify");

    let mut wrong_serial = request(body);
    sign_request(
        &mut wrong_serial,
        &Credentials {
            serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into(),
            ..cred.clone()
        },
    )
    .unwrap();
    check(wrong_serial, 401, "serial_no");

    let mut wrong_mchid = request(body);
    sign_request(
        &mut wrong_mchid,
        &Credentials {
            mchid: "1900000002".into(),
            ..cred.clone()
        },
    )
    .unwrap();
    check(wrong_mchid, 401, "mchid");

    for skew in [-310i64, 310] {
        let mut stale = request(body);
        let ts = (formatter::timestamp() + skew).to_string();
        sign_request_with(&mut stale, &cred, &ts, &formatter::nonce(32)).unwrap();
        check(stale, 401, "away from the platform's clock");
    }
    let mut edge = request(body);
    let ts = (formatter::timestamp() - 290).to_string();
    sign_request_with(&mut edge, &cred, &ts, &formatter::nonce(32)).unwrap();
    check(edge, 200, "within the skew");

    let other = Rsa::from_private(
        &String::from_utf8(
            openssl::rsa::Rsa::generate(2048)
                .unwrap()
                .private_key_to_pem()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let mut impostor = request(body);
    sign_request(
        &mut impostor,
        &Credentials {
            key: other,
            ..cred.clone()
        },
    )
    .unwrap();
    check(impostor, 401, "signature does not verify");

    check(request(body), 401, "no Authorization");
    let mut malformed = request(body);
    malformed.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("WECHATPAY2-SHA256-RSA2048 mchid=1900000001"),
    );
    check(malformed, 401, "quoted");
    // The query string is signed too.
    let mut moved = http::Request::get(format!(
        "{base}v3/pay/transactions/out-trade-no/x123456?mchid={}",
        emu.mchid()
    ))
    .body(Bytes::new())
    .unwrap();
    sign_request(&mut moved, &cred).unwrap();
    *moved.uri_mut() = format!("{base}v3/pay/transactions/out-trade-no/x123456?mchid=1900000002")
        .parse()
        .unwrap();
    check(moved, 401, "signature does not verify");

    // Wechatpay-Serial, when sent, must name the platform's key.
    let mut other_key = request(br#"{"out_request_no":"sig-2","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":1}"#);
    other_key.headers_mut().insert(
        "wechatpay-serial",
        http::HeaderValue::from_static("PUB_KEY_ID_0000000000000000000000000000"),
    );
    sign_request(&mut other_key, &cred).unwrap();
    check(other_key, 400, "Wechatpay-Serial");
    let mut platform_key = request(br#"{"out_request_no":"sig-3","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":1}"#);
    platform_key.headers_mut().insert(
        "wechatpay-serial",
        http::HeaderValue::from_str(emu.platform_serial()).unwrap(),
    );
    sign_request(&mut platform_key, &cred).unwrap();
    check(platform_key, 200, "the platform's key");

    let refused = emu.requests().iter().filter(|r| !r.verified).count();
    assert_eq!(refused, 10);
}

#[test]
fn media_upload_checks_the_meta_signature_and_the_file_hash() {
    let emu = start(EmulatorConfig::new());
    let cred = credentials(&emu);
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n not really an image, but bytes all the same".to_vec();
    let upload = |meta: &str, file: &[u8], sign_whole: bool| {
        let boundary = "wechatpay-boundary-0123456789";
        let mut body = Vec::new();
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n").as_bytes());
        body.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\n").as_bytes());
        body.extend_from_slice(file);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let uri = format!("{}v3/merchant/media/upload", emu.base_uri());
        let signed_body = if sign_whole {
            body.clone()
        } else {
            meta.as_bytes().to_vec()
        };
        let mut signed = http::Request::post(&uri)
            .body(Bytes::from(signed_body))
            .unwrap();
        sign_request(&mut signed, &cred).unwrap();
        let mut req = http::Request::post(&uri)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Bytes::from(body))
            .unwrap();
        req.headers_mut()
            .insert("authorization", signed.headers()["authorization"].clone());
        let (status, _, answer) = send(req);
        (status, serde_json::from_slice::<Value>(&answer).unwrap())
    };
    let meta = json!({"filename": "x.png", "sha256": sha256_hex(&png)}).to_string();
    let (status, v) = upload(&meta, &png, false);
    assert_eq!(status, 200, "{v}");
    assert!(v["media_id"].as_str().is_some_and(|m| m.len() >= 32), "{v}");

    let (status, v) = upload(&meta, &png, true);
    assert_eq!(
        (status, v["code"].as_str()),
        (401, Some("SIGN_ERROR")),
        "the signature covers the meta JSON only"
    );

    let (status, v) = upload(&meta, b"other bytes", false);
    assert_eq!(
        (status, v["detail"]["field"].as_str()),
        (400, Some("/meta/sha256")),
        "{v}"
    );

    let bad_name = json!({"filename": "x.exe", "sha256": sha256_hex(&png)}).to_string();
    assert_eq!(
        upload(&bad_name, &png, false).1["detail"]["field"],
        "/meta/filename"
    );
    let no_hash = json!({"filename": "x.png"}).to_string();
    assert_eq!(
        upload(&no_hash, &png, false).1["detail"]["field"],
        "/meta/sha256"
    );
}

#[test]
fn forged_answers_are_refused_by_the_client() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let call =
        || c["v3/discount-card/orders/{out_order_no}"].get(json!({"out_order_no": "nosuchorder"}));
    // An error answer: the client reports it (its body is not trusted data).
    assert_eq!(api(call().unwrap_err()).1, "ORDER_NOT_EXIST");
    let ok = || {
        c["v3/brand/partner/card-member/user-points/sync"].post(json!({"json": {"out_request_no": "f-1",
            "brand_id": "1004", "card_id": "c", "openid": "o", "user_card_code": "u", "point_balance": 1}}))
    };
    ok().unwrap();
    for forgery in [
        Forgery::TamperedBody,
        Forgery::WrongKey,
        Forgery::StaleTimestamp,
        Forgery::UnknownSerial,
    ] {
        emu.forge_next(forgery);
        match ok() {
            Err(Error::Verification(_)) => {}
            other => panic!("{forgery:?}: expected a verification failure, got {other:?}"),
        }
        ok().unwrap();
    }
}

/// A signed GET of `url` (absolute) sent as is: status, headers, body.
fn signed_get(emu: &Emulator, url: &str) -> (u16, http::HeaderMap, Bytes) {
    let mut req = http::Request::get(url).body(Bytes::new()).unwrap();
    sign_request(&mut req, &credentials(emu)).unwrap();
    send(req)
}

#[test]
fn bills_are_built_from_payments_and_refunds_and_downloaded_unsigned() {
    let emu = start(EmulatorConfig::new().refund_delay(None));
    let c = client(&emu);
    let no = "bill-order-0001";
    c["v3/pay/transactions/native"]
        .post(native(&emu, no, "http://127.0.0.1:9/n", 100))
        .unwrap();
    let paid = emu.pay(no).unwrap();
    let date = paid["success_time"].as_str().unwrap()[..10].to_string();
    // An APIv2 payment code payment is billed too.
    let micropay: Value = c["v2/pay/micropay"]
        .post(
            json!({"xml": {"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(),
            "body": "image形象店-深圳腾大- QQ公仔", "out_trade_no": "bill-micropay-01",
            "total_fee": "1", "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406"}}),
        )
        .unwrap()
        .json()
        .unwrap();
    let micropay_same_day = micropay["time_end"].as_str().unwrap()[..8] == date.replace('-', "");
    let refund: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": no, "out_refund_no": "bill-refund-0001",
            "amount": {"refund": 30, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    // A day's bill exists once the day has ended on the sandbox's clock.
    emu.advance_clock(Duration::from_secs(86_400));
    // Past midnight (Beijing time) between the two, the refund is on the next day's bills.
    let refund_same_day = refund["create_time"].as_str().unwrap().starts_with(&date);

    let trade = |query: Value| -> Bill {
        c["v3/bill/tradebill"]
            .get(json!({ "query": query }))
            .unwrap()
            .json()
            .unwrap()
    };
    let download = |bill: &Bill| -> (String, Downloaded) {
        let mut out = Vec::new();
        let done = c.download_bill(bill, json!({}), &mut out).unwrap();
        (String::from_utf8(out).unwrap(), done)
    };

    // Trade bill, plain and gzip: the same CSV, its SHA-1 the listing's.
    let plain = trade(json!({"bill_date": date}));
    assert_eq!(plain.hash_type, "SHA1");
    let prefix = format!("{}v3/billdownload/file?token=", emu.base_uri());
    assert!(
        plain.download_url.starts_with(&prefix),
        "{}",
        plain.download_url
    );
    let (csv, done) = download(&plain);
    assert!(!done.gzip);
    assert_eq!(plain.hash_value, sha1_hex(&csv));
    assert_eq!(done.digest.as_deref(), Some(plain.hash_value.as_str()));
    assert!(csv.starts_with("交易时间,公众账号ID,商户号,"), "{csv}");
    assert!(csv.contains(&format!(",`{no},")), "{csv}");
    assert!(csv.contains(paid["transaction_id"].as_str().unwrap()));
    assert!(csv.contains("总交易单数,应结订单总金额"));
    assert_eq!(csv.contains("bill-refund-0001"), refund_same_day);
    let gz = trade(json!({"bill_date": date, "bill_type": "ALL", "tar_type": "GZIP"}));
    assert_ne!(gz.download_url, plain.download_url);
    let (gz_csv, done) = download(&gz);
    assert!(done.gzip);
    assert_eq!(
        (gz_csv.as_str(), gz.hash_value.as_str()),
        (csv.as_str(), plain.hash_value.as_str())
    );
    let (success, _) = download(&trade(json!({"bill_date": date, "bill_type": "SUCCESS"})));
    assert!(success.contains(no) && !success.contains("bill-refund-0001"));
    assert_eq!(
        success.contains(",`bill-micropay-01,") && success.contains(",`MICROPAY,"),
        micropay_same_day,
        "{success}"
    );

    // The file is answered unsigned, as application/octet-stream; the gzip one is gzip.
    let (status, headers, body) = signed_get(&emu, &gz.download_url);
    assert_eq!(status, 200);
    assert!(headers.get("wechatpay-signature").is_none(), "{headers:?}");
    assert!(headers.get("wechatpay-serial").is_none());
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(&body[..2], &[0x1f, 0x8b]);
    // The listing itself is signed like any answer (the client verified it above).
    let (_, headers, _) = signed_get(
        &emu,
        &format!("{}v3/bill/tradebill?bill_date={date}", emu.base_uri()),
    );
    assert!(headers.get("wechatpay-signature").is_some());

    // Fund flow: the payment in, the refund out.
    let flow_query = json!({"bill_date": date, "account_type": "BASIC"});
    let flow: Bill = c["v3/bill/fundflowbill"]
        .get(json!({ "query": flow_query }))
        .unwrap()
        .json()
        .unwrap();
    let (flow_csv, done) = download(&flow);
    assert_eq!(done.digest.as_deref(), Some(sha1_hex(&flow_csv).as_str()));
    assert!(
        flow_csv.starts_with("记账时间,微信支付业务单号,资金流水单号"),
        "{flow_csv}"
    );
    assert!(
        flow_csv.contains(&format!(",`收入,`1.00,`1.00,`system,`,`{no}\r\n")),
        "{flow_csv}"
    );
    assert_eq!(
        // The balance runs: 1.00 + 0.01 (the micropay) - 0.30.
        flow_csv.contains(",`支出,`0.30,`0.71,"),
        refund_same_day,
        "{flow_csv}"
    );
    let default: Bill = c["v3/bill/fundflowbill"]
        .get(json!({"query": {"bill_date": date, "tar_type": "GZIP"}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        download(&default).0,
        flow_csv,
        "BASIC is the default account"
    );

    // The sub-merchant fund flow: two parts, each encrypted for the merchant with a key of its
    // own, decrypted and joined by download_bills into exactly the fund-flow bill.
    for tar in [None, Some("GZIP")] {
        let mut query = json!({"sub_mchid": "1900000109", "bill_date": date,
            "account_type": "BASIC", "algorithm": "AEAD_AES_256_GCM"});
        if let Some(t) = tar {
            query["tar_type"] = json!(t);
        }
        let list: BillList = c["v3/bill/sub-merchant-fundflowbill"]
            .get(json!({ "query": query }))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(list.download_bill_count, Some(2));
        let parts = list.in_order().unwrap();
        assert_eq!(parts.len(), 2);
        assert_ne!(parts[0].encrypt_key, parts[1].encrypt_key);
        for p in &parts {
            assert!(p.encrypt_key.is_some() && p.nonce.is_some(), "{p:?}");
            assert!(p.download_url.starts_with(&prefix));
        }
        let mut out = Vec::new();
        let done = c.download_bills(&list, json!({}), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), flow_csv);
        assert!(done.iter().all(|d| d.gzip == tar.is_some()), "{done:?}");
        assert!(done.iter().all(|d| d.bytes > 0));
        // What goes over the wire is not the bill.
        let (status, headers, body) = signed_get(&emu, &parts[0].download_url);
        assert_eq!(status, 200);
        assert!(headers.get("wechatpay-signature").is_none());
        assert!(!flow_csv.as_bytes().starts_with(&body[..16]));
    }

    // Errors: the platform's shapes.
    let sub = |extra: Value| {
        let mut q = json!({"sub_mchid": "1900000109", "bill_date": date,
            "account_type": "BASIC", "algorithm": "AEAD_AES_256_GCM"});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                q.as_object_mut().unwrap().remove(k);
            } else {
                q[k] = v.clone();
            }
        }
        api(c["v3/bill/sub-merchant-fundflowbill"]
            .get(json!({ "query": q }))
            .unwrap_err())
    };
    let e = c["v3/bill/sub-merchant-fundflowbill"]
        .get(
            json!({"query": {"sub_mchid": "1900000109", "bill_date": date,
            "account_type": "BASIC", "algorithm": "SM4_GCM"}}),
        )
        .unwrap_err();
    match &e {
        Error::Api {
            status: 400,
            code,
            message,
            ..
        } if code == "PARAM_ERROR" => {
            assert!(message.contains("SM4_GCM"), "{message}")
        }
        other => panic!("expected PARAM_ERROR, got {other:?}"),
    }
    for (extra, field) in [
        (json!({"sub_mchid": null}), "/sub_mchid"),
        (json!({"sub_mchid": "19000x"}), "/sub_mchid"),
        (json!({"bill_date": null}), "/bill_date"),
        (json!({"account_type": null}), "/account_type"),
        (json!({"account_type": "SAVINGS"}), "/account_type"),
        (json!({"algorithm": null}), "/algorithm"),
        (json!({"algorithm": "AES"}), "/algorithm"),
        (json!({"tar_type": "ZIP"}), "/tar_type"),
    ] {
        assert_eq!(
            sub(extra.clone()),
            (400, "PARAM_ERROR".to_string(), Some(field.to_string())),
            "{extra}"
        );
    }
    let huge = "9".repeat(4000);
    for (query, field) in [
        (json!({}), "/bill_date"),
        (json!({"bill_date": ""}), "/bill_date"),
        (json!({"bill_date": "2024-02-30"}), "/bill_date"),
        (json!({"bill_date": "20240601"}), "/bill_date"),
        (json!({"bill_date": huge}), "/bill_date"),
        (json!({"bill_date": date, "bill_type": "all"}), "/bill_type"),
        (json!({"bill_date": date, "tar_type": "gzip"}), "/tar_type"),
    ] {
        assert_eq!(
            api(c["v3/bill/tradebill"]
                .get(json!({ "query": query }))
                .unwrap_err()),
            (400, "PARAM_ERROR".to_string(), Some(field.to_string())),
            "{query}"
        );
    }
    assert_eq!(
        api(c["v3/bill/fundflowbill"]
            .get(json!({"query": {"bill_date": date, "account_type": "FEE"}}))
            .unwrap_err())
        .2
        .as_deref(),
        Some("/account_type")
    );
    // A day without records, or an account without movement: no bill.
    for (path, query) in [
        ("v3/bill/tradebill", json!({"bill_date": "2001-01-01"})),
        ("v3/bill/fundflowbill", json!({"bill_date": "2001-01-01"})),
        (
            "v3/bill/fundflowbill",
            json!({"bill_date": date, "account_type": "OPERATION"}),
        ),
    ] {
        let (status, code, _) = api(c.chain(path).get(json!({ "query": query })).unwrap_err());
        assert_eq!(
            (status, code.as_str()),
            (400, "NO_STATEMENT_EXIST"),
            "{path}"
        );
    }

    // Hostile query strings get answers.
    for target in [
        "v3/bill/tradebill?bill_date=%ZZ",
        "v3/bill/tradebill?bill_date=%E4%BD%A0%E5%A5%BD%E4%B8%96%E7%95%8C",
        "v3/bill/tradebill?bill_date=2024-06-01%00",
        "v3/bill/tradebill?bill_date=99999-01-01",
        "v3/bill/fundflowbill?bill_date=2024-06-01&account_type=%FF",
        "v3/bill/sub-merchant-fundflowbill?sub_mchid=%E4%BD%A0&bill_date=2024-06-01",
        "v3/billdownload/file?token=",
        "v3/billdownload/file?token=%",
    ] {
        let (status, headers, _) = signed_get(&emu, &format!("{}{target}", emu.base_uri()));
        assert_eq!(status, 400, "{target}");
        assert!(headers.get("wechatpay-signature").is_some(), "{target}");
    }

    // An unknown token: a signed 400 INVALID_REQUEST, reported as an API error.
    let bad = Bill::new(
        format!("{prefix}nosuchtoken"),
        "SHA1",
        plain.hash_value.clone(),
    );
    let (status, code, _) = api(c.download_bill(&bad, json!({}), Vec::new()).unwrap_err());
    assert_eq!((status, code.as_str()), (400, "INVALID_REQUEST"));
    let (status, headers, body) = signed_get(&emu, &format!("{prefix}nosuchtoken"));
    assert_eq!(status, 400);
    assert!(headers.get("wechatpay-signature").is_some());
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["code"],
        "INVALID_REQUEST"
    );
    let no_token = format!("{}v3/billdownload/file", emu.base_uri());
    assert_eq!(
        api(c
            .download_bill(&Bill::new(no_token, "SHA1", "00"), json!({}), Vec::new())
            .unwrap_err())
        .2
        .as_deref(),
        Some("/token")
    );
    // A spoiled file fails its digest.
    let mut tampered = plain.clone();
    tampered.hash_value = sha1_hex(b"another bill");
    assert!(matches!(
        c.download_bill(&tampered, json!({}), Vec::new()),
        Err(Error::Verification(_))
    ));
    // A download is unsigned, so it leaves a forgery for the next signed answer.
    emu.forge_next(Forgery::TamperedBody);
    download(&plain);
    assert!(matches!(
        c["v3/bill/tradebill"].get(json!({"query": {"bill_date": date}})),
        Err(Error::Verification(_))
    ));
    // Every request was signed right, downloads included.
    let bills: Vec<_> = emu
        .requests()
        .into_iter()
        .filter(|r| r.target.contains("bill"))
        .collect();
    assert!(bills
        .iter()
        .any(|r| r.target.starts_with("/v3/billdownload/file?token=")));
    assert!(bills.iter().all(|r| r.verified), "{bills:?}");
}

#[test]
fn start_blocking_serves_plain_threads_and_drop_stops_it() {
    let emu = Emulator::start(EmulatorConfig::new().mchid("1230000109")).unwrap();
    let c = emu.builder().build().unwrap();
    let res = c["v3/pay/transactions/native"]
        .post(native(&emu, "blocking-01", "http://127.0.0.1:9/n", 5))
        .unwrap();
    assert!(res.json::<Value>().unwrap()["code_url"].is_string());
    let info: Value = c.chain("emulator").get(json!({})).unwrap().json().unwrap();
    assert_eq!(info["mchid"], "1230000109");
    assert!(format!("{emu:?}").contains("1230000109"));
    assert!(!format!(
        "{:?}",
        EmulatorConfig::new().apiv3_key("0123456789abcdef0123456789abcdef")
    )
    .contains("0123456789abcdef"));
    drop(emu);
    assert!(matches!(
        c["v3/pay/transactions/native"].post(json!({"json": {}})),
        Err(Error::Transport { .. })
    ));
}

fn v2_code(e: Error) -> (String, Option<String>) {
    match e {
        Error::V2 {
            return_code,
            err_code,
            ..
        } => (return_code, err_code),
        other => panic!("expected an APIv2 error, got {other}"),
    }
}

#[test]
fn apiv2_micropay_and_orderquery_check_and_make_signs() {
    let emu = start(EmulatorConfig::new());
    let c = client(&emu);
    let pay = |no: &str, fee: &str, sign_type: Option<&str>| {
        let mut xml = json!({"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(),
            "body": "image形象店-深圳腾大- QQ公仔", "out_trade_no": no, "total_fee": fee,
            "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406"});
        if let Some(t) = sign_type {
            xml["sign_type"] = json!(t);
        }
        json!({"xml": xml})
    };
    let res = c
        .chain("v2/pay/micropay")
        .post(pay("1415757673", "1", None))
        .unwrap();
    let v: Value = res.json().unwrap();
    assert_eq!(v["result_code"], "SUCCESS", "{v}");
    assert_eq!(v["trade_type"], "MICROPAY");
    assert_eq!(v["total_fee"], "1");
    let id = v["transaction_id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 28);
    let sign = |r: &wechatpay_chain::Response| {
        r.xml_map()
            .unwrap()
            .iter()
            .find(|(k, _)| k == "sign")
            .unwrap()
            .1
            .clone()
    };
    assert_eq!(
        sign(&res).len(),
        32,
        "an MD5 request is answered with an MD5 sign"
    );
    // The same request again (a retry after a timeout) answers the same payment.
    let again: Value = c["v2/pay/micropay"]
        .post(pay("1415757673", "1", None))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["transaction_id"], id.as_str());
    let used = c["v2"]["pay"]["micropay"]
        .post(pay("1415757673", "2", None))
        .unwrap_err();
    assert_eq!(
        v2_code(used),
        ("SUCCESS".into(), Some("OUT_TRADE_NO_USED".into()))
    );
    let hmac = c["v2/pay/micropay"]
        .post(pay("1415757674", "5", Some("HMAC-SHA256")))
        .unwrap();
    assert_eq!(
        sign(&hmac).len(),
        64,
        "an HMAC-SHA256 request is answered in kind"
    );
    let mut bad_code = pay("1415757675", "1", None);
    bad_code["xml"]["auth_code"] = json!("990061098828009406");
    assert_eq!(
        v2_code(c["v2/pay/micropay"].post(bad_code).unwrap_err())
            .1
            .as_deref(),
        Some("AUTH_CODE_INVALID")
    );
    let mut no_ip = pay("1415757676", "1", None);
    no_ip["xml"]
        .as_object_mut()
        .unwrap()
        .remove("spbill_create_ip");
    assert_eq!(
        v2_code(c["v2/pay/micropay"].post(no_ip).unwrap_err())
            .1
            .as_deref(),
        Some("PARAM_ERROR")
    );

    let query = |field: &str, value: &str| json!({"xml": {"appid": "wx2421b1c4370ec43b", "mch_id": emu.mchid(), field: value}});
    for (field, value) in [
        ("out_trade_no", "1415757673"),
        ("transaction_id", id.as_str()),
    ] {
        let v: Value = c
            .chain("v2/pay/orderquery")
            .post(query(field, value))
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(
            (v["trade_state"].as_str(), v["transaction_id"].as_str()),
            (Some("SUCCESS"), Some(id.as_str()))
        );
    }
    let none = c["v2/pay/orderquery"]
        .post(query("out_trade_no", "nosuchorder"))
        .unwrap_err();
    assert_eq!(v2_code(none).1.as_deref(), Some("ORDERNOTEXIST"));

    // A request signed with another key: return_code FAIL, refused.
    let wrong = emu
        .builder()
        .secret("0000000000000000000000000000000a")
        .build()
        .unwrap();
    let e = wrong["v2/pay/micropay"]
        .post(pay("1415757677", "1", None))
        .unwrap_err();
    assert_eq!(v2_code(e).0, "FAIL");
    let last = emu.requests().pop().unwrap();
    assert!(!last.verified && last.refusal.unwrap().contains("sign"));
    // A document that is not XML.
    let (status, _, body) = send(
        http::Request::post(format!("{}pay/micropay", emu.base_uri()))
            .body(Bytes::from_static(b"{\"not\":\"xml\"}"))
            .unwrap(),
    );
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<return_code>FAIL</return_code>"));
}

#[test]
fn hostile_requests_get_answers_not_panics() {
    let emu = start(EmulatorConfig::new().refund_delay(None));
    let c = client(&emu);
    let cred = credentials(&emu);
    let base = emu.base_uri();
    // Signed right, so that they reach the operations.
    let signed = |method: &str, target: &str, body: &[u8], ct: Option<&str>| {
        let mut b = http::Request::builder()
            .method(method)
            .uri(format!("{base}{target}"));
        if let Some(ct) = ct {
            b = b.header("content-type", ct);
        }
        let mut req = b.body(Bytes::copy_from_slice(body)).unwrap();
        sign_request(&mut req, &cred).unwrap();
        send(req).0
    };
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for (method, target, body, ct, want) in [
        ("POST", "v3/discount-card/cards", &b"[]"[..], None, 400),
        ("POST", "v3/discount-card/cards", b"null", None, 400),
        ("POST", "v3/discount-card/cards", b"\xff\xfe", None, 400),
        ("POST", "v3/discount-card/cards", deep.as_bytes(), None, 400),
        (
            "POST",
            "v3/pay/transactions/native",
            b"{\"amount\": 1e400}",
            None,
            400,
        ),
        (
            "POST",
            "v3/merchant/media/upload",
            b"--x\r\nbroken",
            Some("multipart/form-data; boundary=x"),
            400,
        ),
        (
            "POST",
            "v3/merchant/media/upload",
            b"{}",
            Some("multipart/form-data"),
            400,
        ),
        (
            "GET",
            "v3/pay/transactions/out-trade-no/%ZZ?mchid=%",
            b"",
            None,
            404,
        ),
        ("GET", "v3/discount-card/orders/%E4%BD%A0", b"", None, 404),
        ("DELETE", "v3/certificates", b"", None, 404),
        (
            "POST",
            "emulator/pay/transactions/out-trade-no/none/pay",
            b"{",
            None,
            400,
        ),
    ] {
        assert_eq!(signed(method, target, body, ct), want, "{method} {target}");
    }
    // Amounts at the edge of i64 do not overflow.
    c["v3/pay/transactions/native"]
        .post(native(&emu, "huge-0001", "http://127.0.0.1:9/n", i64::MAX))
        .unwrap();
    emu.pay("huge-0001").unwrap();
    let refund = |no: &str, amount: i64| {
        json!({"json": {"out_trade_no": "huge-0001", "out_refund_no": no,
            "amount": {"refund": amount, "total": i64::MAX, "currency": "CNY"}}})
    };
    c["v3/refund/domestic/refunds"]
        .post(refund("huge-r1", i64::MAX - 1))
        .unwrap();
    assert_eq!(
        api(c["v3/refund/domestic/refunds"]
            .post(refund("huge-r2", i64::MAX))
            .unwrap_err())
        .1,
        "INVALID_REQUEST"
    );
    // The server is still answering.
    assert_eq!(signed("GET", "emulator", b"", None), 200);
}
