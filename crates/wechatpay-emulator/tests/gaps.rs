//! The gaps a run of wechatpay-php against the sandbox found, each closed and kept closed:
//! notifications carry `Request-ID`; `REFUND.SUCCESS` and the APIv2 refund notification carry
//! every field their pages mark required (`amount.currency`, `amount.payer_currency`,
//! `cash_refund_fee`); `GET v3/discount-card/cards/{out_card_code}` is answered from the card's
//! state; `detail.field` has one form (a JSON pointer into its `location`) for every error; and a
//! refused signature says which check failed and what the sandbox expected to be signed. Real
//! loopback sockets, keys made at test time, every answer and notification verified by the
//! library.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{credentials, received, send, start, xml_receiver};
use wechatpay_chain::catalog::{self, Field};
use wechatpay_chain::client_json::{sign_request, sign_request_with, verify_headers, Credentials};
use wechatpay_chain::crypto::hash::sha256_hex;
use wechatpay_chain::notify::Notifier;
use wechatpay_chain::{formatter, notify_v2, Error, Keyring};
use wechatpay_emulator::{visible, EmulatorConfig, SignatureCheck};

const APPID: &str = "wxd678efh567hg6787";

/// A receiver of notifications answering `reply` (XML for APIv2) to each.
fn receiver(reply: &str) -> (common::Server, String) {
    xml_receiver(vec![reply.to_string()], "/notify")
}

/// The pointers of the fields `spec` marks required that `value` lacks (or holds as null),
/// looking into objects and every item of lists.
fn missing_required(spec: &[Field], value: &Value, at: &str, out: &mut Vec<String>) {
    for f in spec {
        let here = format!("{at}/{}", f.name);
        match value.get(&f.name) {
            None | Some(Value::Null) if f.required => out.push(here),
            Some(Value::Object(_)) => missing_required(&f.children, &value[&f.name], &here, out),
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    if item.is_object() {
                        missing_required(&f.children, item, &format!("{here}/{i}"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

fn request_id(r: &common::Recorded) -> String {
    let id = r
        .headers
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        id.len() >= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{} {} carries Request-ID {id:?}: {:?}",
        r.method,
        r.target,
        r.headers
    );
    id
}

#[test]
fn notifications_carry_request_id_and_refunds_every_required_field() {
    let emu = start(EmulatorConfig::new().tls(true).refund_delay(None));
    let client = emu.builder().build().unwrap();
    let (v3_hook, v3_url) = receiver("");
    let v2_ok = "<xml><return_code><![CDATA[SUCCESS]]></return_code></xml>";
    let (v2_hook, v2_url) = receiver(v2_ok);

    // APIv3: a payment, then a refund of it; both notifications.
    client["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": APPID, "mchid": emu.mchid(), "description": "gap",
            "out_trade_no": "gap-v3-0001", "notify_url": v3_url,
            "amount": {"total": 100, "currency": "CNY"}}}),
        )
        .unwrap();
    emu.pay("gap-v3-0001").unwrap();
    let refund: Value = client["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "gap-v3-0001", "out_refund_no": "gap-v3-r1",
            "notify_url": v3_url, "amount": {"refund": 40, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(refund["status"], "PROCESSING");
    emu.complete_refund("gap-v3-r1").unwrap();
    let got = received(&v3_hook, 2);
    assert_eq!(got.len(), 2, "two notifications: {:?}", emu.deliveries());
    let ring = Arc::new(Keyring::new());
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    let notifier = Notifier::new(ring, emu.apiv3_key()).unwrap();
    let ids: Vec<String> = got.iter().map(request_id).collect();
    assert_ne!(ids[0], ids[1], "each notification has its own Request-ID");
    // Each notification goes out on its own, as the platform's do: they may arrive in either
    // order.
    let mut opened: Vec<_> = got
        .iter()
        .map(|r| notifier.verify(&r.headers, &r.body).unwrap())
        .collect();
    opened.sort_by(|a, b| b.event_type.cmp(&a.event_type));
    let types: Vec<&str> = opened.iter().map(|n| n.event_type.as_str()).collect();
    assert_eq!(types, ["TRANSACTION.SUCCESS", "REFUND.SUCCESS"]);
    let n = &opened[1];
    let event = catalog::event("REFUND.SUCCESS").unwrap();
    let mut missing = Vec::new();
    missing_required(event.resource(), &n.resource, "", &mut missing);
    assert!(missing.is_empty(), "missing {missing:?} in {}", n.resource);
    let amount = &n.resource["amount"];
    assert_eq!(
        (&amount["currency"], &amount["payer_currency"]),
        (&json!("CNY"), &json!("CNY"))
    );
    assert_eq!(
        (&amount["refund"], &amount["total"]),
        (&json!(40), &json!(100))
    );
    assert_eq!(n.resource["refund_status"], "SUCCESS");
    assert_eq!(n.resource["out_refund_no"], "gap-v3-r1");

    // APIv2: a micropay refunded through secapi, notified with req_info.
    client["v2/pay/micropay"]
        .post(
            json!({"xml": {"appid": APPID, "mch_id": emu.mchid(), "body": "gap",
            "out_trade_no": "gap-v2-0001", "total_fee": 100, "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406"}}),
        )
        .unwrap();
    client["v2/secapi/pay/refund"]
        .post(
            json!({"security": true, "xml": {"appid": APPID, "mch_id": emu.mchid(),
            "out_trade_no": "gap-v2-0001", "out_refund_no": "gap-v2-r1", "total_fee": 100,
            "refund_fee": 40, "notify_url": v2_url}}),
        )
        .unwrap();
    emu.complete_refund("gap-v2-r1").unwrap();
    let got = received(&v2_hook, 1);
    assert_eq!(got.len(), 1, "{:?}", emu.deliveries());
    request_id(&got[0]);
    let md5 = wechatpay_chain::client_xml::SignType::Md5;
    let n = notify_v2::verify(&got[0].body, emu.apiv2_key(), md5).unwrap();
    let info: serde_json::Map<String, Value> = n
        .fields()
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    let info = Value::Object(info);
    let event = catalog::event("refund-processed").unwrap();
    let mut missing = Vec::new();
    missing_required(event.resource(), &info, "", &mut missing);
    assert!(missing.is_empty(), "missing {missing:?} in req_info {info}");
    assert_eq!(info["cash_refund_fee"], "40");
    assert_eq!(info["refund_fee"], "40");
}

fn api(r: Result<wechatpay_chain::Response, Error>) -> (u16, String, Option<Value>, bool) {
    match r {
        Err(Error::Api {
            status,
            code,
            detail,
            verified,
            ..
        }) => (status, code, detail, verified),
        Err(other) => panic!("expected an API error, got {other}"),
        Ok(res) => panic!("expected an API error, got {}", res.status()),
    }
}

#[test]
fn the_discount_card_is_answered_from_its_state() {
    let emu = start(EmulatorConfig::new());
    let client = emu.builder().build().unwrap();
    let get = |code: &str| {
        client
            .chain("v3/discount-card/cards/{out_card_code}")
            .get(json!({"out_card_code": code}))
    };
    let (status, code, _, verified) = api(get("gap-card-none"));
    assert_eq!((status, code.as_str(), verified), (404, "NOT_FOUND", true));

    client["v3/discount-card/cards"]
        .post(
            json!({"json": {"out_card_code": "gap-card-1", "card_template_id": "tpl-1",
            "appid": APPID, "notify_url": "https://www.weixin.qq.com/wxpay/card.php"}}),
        )
        .unwrap();
    // prepared, not taken: the platform has no card yet
    let (status, code, _, _) = api(get("gap-card-1"));
    assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));

    emu.accept_card("gap-card-1", Some("gap-order-1")).unwrap();
    let records = json!({"out_card_code": "gap-card-1", "json": {
        "card_template_id": "tpl-1",
        "objective_completion_records": [
            {"objective_completion_serial_no": "o-1", "objective_id": "101",
             "completion_time": "2026-12-01T10:00:00+08:00", "completion_type": "INCREASE",
             "description": "bought", "completion_count": 1},
            {"objective_completion_serial_no": "o-2", "objective_id": "101",
             "completion_time": "2026-12-01T11:00:00+08:00", "completion_type": "INCREASE",
             "description": "bought", "completion_count": 2}],
        "reward_usage_records": [
            {"reward_usage_serial_no": "r-1", "reward_id": "201",
             "usage_time": "2026-12-01T10:00:00+08:00", "usage_type": "INCREASE",
             "description": "5 off", "usage_count": 1, "amount": 500}]}});
    let res = client
        .chain("v3/discount-card/cards/{out_card_code}/add-user-records")
        .post(records)
        .unwrap();
    assert_eq!(res.status(), 204);

    let card: Value = get("gap-card-1").unwrap().json().unwrap();
    let op = catalog::find("GET", "v3/discount-card/cards/{out_card_code}").unwrap();
    let mut missing = Vec::new();
    missing_required(&op.response, &card, "", &mut missing);
    assert!(missing.is_empty(), "missing {missing:?} in {card}");
    assert_eq!(card["out_card_code"], "gap-card-1");
    assert_eq!(card["card_template_id"], "tpl-1");
    assert_eq!(
        (&card["appid"], &card["mchid"]),
        (&json!(APPID), &json!(emu.mchid()))
    );
    assert_eq!(card["total_amount"], 500);
    let objectives = card["objectives"].as_array().unwrap();
    assert_eq!(objectives.len(), 1, "{card}");
    assert_eq!(objectives[0]["objective_id"], "101");
    assert_eq!(objectives[0]["count"], 3);
    assert_eq!(
        objectives[0]["objective_completion_records"][1]["objective_completion_serial_no"],
        "o-2"
    );
    assert_eq!(card["rewards"][0]["reward_usage_records"][0]["amount"], 500);
    let order: Value = client
        .chain("v3/discount-card/orders/{out_order_no}")
        .get(json!({"out_order_no": "gap-order-1"}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(card["card_id"], order["order_id"]);
    // the same card answers the same way
    assert_eq!(get("gap-card-1").unwrap().json::<Value>().unwrap(), card);
}

/// Whether `p` is a JSON pointer of field names and indexes (`/amount/total`, `/items/0`), or
/// `/` for the whole.
fn is_pointer(p: &str) -> bool {
    p == "/"
        || (p.starts_with('/')
            && p[1..].split('/').all(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
            }))
}

#[test]
fn detail_field_is_a_pointer_into_its_location_for_every_error() {
    let emu = start(EmulatorConfig::new());
    let client = emu.builder().build().unwrap();
    let native = |amount: Value| {
        client["v3/pay/transactions/native"].post(json!({"json": {"appid": APPID,
            "mchid": emu.mchid(), "description": "gap", "out_trade_no": "gap-pe-0001",
            "notify_url": "https://www.weixin.qq.com/wxpay/pay.php", "amount": amount}}))
    };
    let card = |template: &str| {
        client["v3/discount-card/cards"].post(json!({"json": {"out_card_code": "gap-pe-card",
            "card_template_id": template, "appid": APPID,
            "notify_url": "https://www.weixin.qq.com/wxpay/card.php"}}))
    };
    card("tpl-1").unwrap();
    let upload = |meta: Value| {
        let mut body = Vec::new();
        let b = "gap-boundary";
        body.extend_from_slice(format!("--{b}\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{meta}\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--{b}--\r\n").as_bytes());
        let uri = format!("{}v3/merchant/media/upload", emu.base_uri());
        let mut signed = http::Request::post(&uri)
            .body(Bytes::from(meta.to_string()))
            .unwrap();
        sign_request(&mut signed, &credentials(&emu)).unwrap();
        let mut req = http::Request::post(&uri)
            .header("content-type", format!("multipart/form-data; boundary={b}"))
            .body(Bytes::from(body))
            .unwrap();
        req.headers_mut()
            .insert("authorization", signed.headers()["authorization"].clone());
        send(req).2
    };
    // (what, the answer's body, the field and location expected)
    let mut errors: Vec<(&str, Value, &str, &str)> = Vec::new();
    let mut push = |what, r: Result<wechatpay_chain::Response, Error>, field, location| {
        let (status, code, detail, verified) = api(r);
        assert!(verified, "{what}: the error is signed");
        assert!(status == 400 || status == 409, "{what}: {status} {code}");
        errors.push((
            what,
            json!({"code": code, "detail": detail}),
            field,
            location,
        ));
    };
    // modelled operations: the documented table's check, then their own rules
    push(
        "modelled, missing",
        native(json!({})),
        "/amount/total",
        "body",
    );
    push(
        "modelled, rule",
        native(json!({"total": 0})),
        "/amount/total",
        "body",
    );
    push(
        "modelled, query",
        client["v3/bill/tradebill"].get(json!({"query": {"bill_date": "yesterday"}})),
        "/bill_date",
        "query",
    );
    push(
        "modelled, conflict",
        card("tpl-2"),
        "/out_card_code",
        "body",
    );
    emu.accept_card("gap-pe-card", Some("gap-pe-order"))
        .unwrap();
    let patch = |amount: i64| {
        client
            .chain("v3/discount-card/orders/{out_order_no}")
            .patch(json!({"out_order_no": "gap-pe-order", "json": {"rewards": [
                {"reward_serial_no": "R0", "reward_id": 1, "description": "d",
                 "reward_type": "INCREASE", "count": 1, "amount": 100,
                 "reward_time": "2026-12-01T10:00:00+08:00"},
                {"reward_serial_no": "R1", "reward_id": 1, "description": "d",
                 "reward_type": "INCREASE", "count": 1, "amount": amount,
                 "reward_time": "2026-12-01T10:00:00+08:00"}]}}))
    };
    patch(100).unwrap();
    push(
        "modelled, conflict in a list",
        patch(200),
        "/rewards/1/reward_serial_no",
        "body",
    );
    // a documented answer's check against the catalogue
    push(
        "documented, query",
        client
            .chain("v3/marketing/favor/stocks")
            .get(json!({"query": {"offset": 0, "limit": 10}})),
        "/stock_creator_mchid",
        "query",
    );
    push(
        "documented, body",
        client["v3/brand/partner/card-member/user-points/sync"]
            .post(json!({"json": {"out_request_no": "gap-1", "brand_id": "1004"}})),
        "/card_id",
        "body",
    );
    // a header the platform checks
    push(
        "header",
        client["v3/pay/transactions/native"].post(json!({"json": {"appid": APPID},
            "headers": {"Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000"}})),
        "/Wechatpay-Serial",
        "header",
    );
    let mut collected = errors;
    // an upload's meta part, modelled
    let meta: Value = serde_json::from_slice(&upload(json!({"filename": "x.png"}))).unwrap();
    collected.push(("upload meta", meta, "/meta/sha256", "body"));

    for (what, v, field, location) in &collected {
        let d = &v["detail"];
        assert_eq!(
            (d["field"].as_str(), d["location"].as_str()),
            (Some(*field), Some(*location)),
            "{what}: {v}"
        );
        assert!(is_pointer(field), "{what}: {field}");
    }
    // and the messages name the source as the platform does: /{location}{field}
    for (what, r) in [
        (
            "header",
            client["v3/pay/transactions/native"].post(json!({"json": {"appid": APPID},
                "headers": {"Wechatpay-Serial": "PUB_KEY_ID_0000000000000000000000000000"}})),
        ),
        ("body", native(json!({"total": 0}))),
    ] {
        match r {
            Err(Error::Api { message, .. }) => {
                assert!(!message.contains("/headerWechatpay"), "{what}: {message}");
                let source = if what == "header" {
                    "“/header/Wechatpay-Serial”"
                } else {
                    "“/body/amount/total”"
                };
                assert!(message.contains(source), "{what}: {message}");
            }
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn a_refused_signature_says_which_check_failed_and_what_was_expected() {
    let emu = start(EmulatorConfig::new().log_body_prefix(32));
    let base = emu.base_uri();
    let cred = credentials(&emu);
    let ring = Keyring::new();
    ring.insert(emu.platform_serial(), emu.platform_public_key().clone());
    // every refusal keeps the platform's shape, signed
    let refused = |req: http::Request<Bytes>| {
        let (status, headers, body) = send(req);
        verify_headers(&headers, &body, &ring, formatter::timestamp()).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((status, &v["code"]), (401, &json!("SIGN_ERROR")), "{v}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["code", "message"], "{v}");
        emu.requests().pop().unwrap().signature.unwrap()
    };
    let body = br#"{"out_request_no":"diag-1","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":1}"#;
    let post = |path: &str, body: &[u8]| {
        http::Request::post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(Bytes::copy_from_slice(body))
            .unwrap()
    };
    let path = "v3/brand/partner/card-member/user-points/sync";
    let ts = formatter::timestamp().to_string();

    // Signed over another path: the diagnosis has the path as sent.
    let mut moved = post("v3/brand/partner/card-member/user-points/sync?x=1", body);
    sign_request_with(&mut moved, &cred, &ts, "NONCE-MOVED").unwrap();
    *moved.uri_mut() = format!("{base}{path}").parse().unwrap();
    let why = refused(moved);
    assert_eq!(why.check, SignatureCheck::SignatureMismatch);
    let e = why.expected.clone().unwrap();
    assert_eq!(
        (
            e.method.as_str(),
            e.target.as_str(),
            e.timestamp.as_str(),
            e.nonce.as_str()
        ),
        (
            "POST",
            format!("/{path}").as_str(),
            ts.as_str(),
            "NONCE-MOVED"
        )
    );
    assert_eq!(
        (e.body_len, e.body_sha256.as_str()),
        (body.len(), sha256_hex(body).as_str())
    );
    // the body up to the log's prefix, the rest told by its length and digest
    assert_eq!(e.body.as_bytes(), &body[..32]);
    assert!(e.body_truncated);
    let whole = formatter::request("POST", &format!("/{path}"), &ts, "NONCE-MOVED", body);
    let shown = visible(&String::from_utf8(whole).unwrap());
    assert_eq!(
        e.one_line(),
        shown.replace(std::str::from_utf8(&body[32..]).unwrap(), "…")
    );

    // Signed over another body: the digest is of the body as sent.
    let mut tampered = post(path, body);
    sign_request_with(&mut tampered, &cred, &ts, "NONCE-BODY").unwrap();
    let other = b"{\"a\":\n1}";
    *tampered.body_mut() = Bytes::from_static(other);
    let why = refused(tampered);
    let e = why.expected.clone().unwrap();
    assert_eq!(
        (e.body_len, e.body_sha256.clone()),
        (other.len(), sha256_hex(other))
    );
    assert!(!e.body_truncated);
    assert_eq!(
        e.one_line(),
        format!("POST\\n/{path}\\n{ts}\\nNONCE-BODY\\n{{\"a\":\\n1}}\\n")
    );
    // the control endpoint lists the same, and never the signature
    let (_, _, list) = send(
        http::Request::get(format!("{base}emulator/requests"))
            .body(Bytes::new())
            .unwrap(),
    );
    let list: Value = serde_json::from_slice(&list).unwrap();
    let last = &list["data"].as_array().unwrap().last().unwrap()["signature"];
    assert_eq!(last["check"], "SIGNATURE_MISMATCH", "{last}");
    assert_eq!(last["expected"]["message"], e.one_line(), "{last}");
    assert_eq!(last["expected"]["body_sha256"], sha256_hex(other));
    let text = last.to_string();
    assert!(!text.contains("signature=\""), "{text}");

    // Each other check, named; no expected string for them.
    let mut wrong_mchid = post(path, body);
    let c = Credentials {
        mchid: "1900000002".into(),
        ..cred.clone()
    };
    sign_request(&mut wrong_mchid, &c).unwrap();
    let mut unknown_serial = post(path, body);
    let c = Credentials {
        serial: "5157F09EFDC096DE15EBE81A47057A7232F1B8E1".into(),
        ..cred.clone()
    };
    sign_request(&mut unknown_serial, &c).unwrap();
    let mut stale = post(path, body);
    let old = (formatter::timestamp() - 400).to_string();
    sign_request_with(&mut stale, &cred, &old, "NONCE-STALE").unwrap();
    let mut malformed = post(path, body);
    malformed.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("WECHATPAY2-SHA256-RSA2048 mchid=1900000001"),
    );
    let mut good = post(path, body);
    sign_request_with(&mut good, &cred, &ts, "NONCE-ONCE").unwrap();
    let replay = {
        let mut r = post(path, body);
        *r.headers_mut() = good.headers().clone();
        r
    };
    assert_eq!(send(good).0, 200);
    for (req, check) in [
        (post(path, body), SignatureCheck::NoAuthorization),
        (malformed, SignatureCheck::Malformed),
        (wrong_mchid, SignatureCheck::WrongMchid),
        (unknown_serial, SignatureCheck::UnknownSerial),
        (stale, SignatureCheck::StaleTimestamp),
        (replay, SignatureCheck::ReusedNonce),
    ] {
        let why = refused(req);
        assert_eq!(why.check, check, "{}", why.reason);
        assert!(why.expected.is_none(), "{check}");
        let refusal = emu.requests().pop().unwrap().refusal.unwrap();
        assert!(refusal.starts_with(check.as_str()), "{refusal}");
    }
}
