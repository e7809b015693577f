//! Every APIv2 operation of the catalogue answered as documented, through the library's client
//! against the emulator's TLS mode (the merchant certificate presented by `security: true`
//! calls): each in both sign types, its answer verified in the request's sign type, with every
//! documented required field; a wrong sign, another merchant, a missing certificate and a
//! missing field refused the platform's way. Then every APIv2 call of the conformance corpus
//! (`$SHARED/conformance/corpus.dev.jsonl`, else `../shared` beside the repository), replayed
//! in both sign types; without the corpus that test prints one line and passes.

use std::path::PathBuf;

use serde_json::{json, Map, Value};
use wechatpay_chain::catalog::{self, Field, Operation, Protocol, Type};
use wechatpay_chain::{Builder, Client, Error, Response};
use wechatpay_emulator::{private_key_pem, Emulator, EmulatorConfig};

const SIGN_TYPES: [&str; 2] = ["MD5", "HMAC-SHA256"];
const MERCHANT_FIELDS: [&str; 3] = ["mch_id", "mchid", "combine_mch_id"];

/// The modelled operations' business errors for an order or refund the emulator does not hold,
/// signed: what a query or refund of a made-up number gets.
const NOT_HELD: [&str; 3] = ["ORDERNOTEXIST", "REFUNDNOTEXIST", "INVALID_TRANSACTIONID"];

/// Corpus samples that contradict their own page, refused as the platform refuses them (a
/// signed `PARAM_ERROR` naming the field): the customs samples name `SHANGHAI`, which is not
/// among the page's customs (`SHANGHAI_ZS` is).
const SAMPLE_CONTRADICTS_PAGE: [(&str, &str); 2] = [
    ("v2/cgi-bin/mch/customs/customdeclareorder", "customs"),
    (
        "v2/cgi-bin/mch/newcustoms/customdeclareredeclare",
        "customs",
    ),
];

fn start() -> (Emulator, Client) {
    let emu = Emulator::start(EmulatorConfig::new().tls(true)).unwrap();
    let client = emu.builder().build().unwrap();
    (emu, client)
}

/// A client of `emu` that names no merchant, for the operations whose page documents no
/// merchant id (the client checks the data's against a configured one).
fn unnamed(emu: &Emulator) -> Client {
    let key = private_key_pem(emu.merchant_private_key().unwrap()).unwrap();
    Builder::new()
        .base_uri(emu.base_uri())
        .root_certificate(emu.ca_certificate_pem().unwrap())
        .merchant_identity(emu.merchant_certificate_pem().unwrap(), &key)
        .secret(emu.apiv2_key())
        .build()
        .unwrap()
}

/// The operation's body field (`xml`, or `query` for a GET).
fn body_field(op: &Operation) -> Option<&Field> {
    op.request
        .iter()
        .find(|f| f.name == "xml" || f.name == "query")
}

/// Whether the operation's page allows `sign_type` (a page that documents no `sign_type`
/// takes the client's choice).
fn allows(op: &Operation, sign_type: &str) -> bool {
    body_field(op)
        .and_then(|b| b.children.iter().find(|f| f.name == "sign_type"))
        .is_none_or(|f| f.enumeration.is_empty() || f.enumeration.iter().any(|e| e == sign_type))
}

/// A value of the field's documented type and enumeration.
fn sample(f: &Field) -> Value {
    if let Some(e) = f.enumeration.first() {
        return Value::from(e.as_str());
    }
    match f.ty {
        Type::Integer | Type::Number => Value::from(1),
        Type::Boolean => Value::from("true"),
        _ => Value::from("sandbox"),
    }
}

/// A call of `op` with its required fields, the emulator's merchant and `sign_type`.
fn minimal_args(op: &Operation, mchid: &str, sign_type: &str, bill_date: &str) -> Value {
    let mut args = Map::new();
    for ph in op.placeholders() {
        let doc = op.request.iter().find(|f| f.name == ph);
        let v = doc
            .and_then(|f| f.enumeration.first().cloned())
            .unwrap_or_else(|| ph.to_string());
        args.insert(ph.to_string(), Value::from(v));
    }
    if let Some(body) = body_field(op) {
        let mut data = Map::new();
        for f in body.children.iter().filter(|f| f.required) {
            if matches!(f.name.as_str(), "nonce_str" | "sign") {
                continue;
            }
            data.insert(f.name.clone(), sample(f));
        }
        // a group of alternatives (`transaction_id` or `out_trade_no`…) is required as a
        // group: its first member stands for it
        for group in &body.alternatives {
            let first = group
                .members
                .first()
                .and_then(|m| body.children.iter().find(|f| f.name == *m));
            if let Some(f) = first {
                data.insert(f.name.clone(), sample(f));
            }
        }
        for m in MERCHANT_FIELDS {
            if body.children.iter().any(|f| f.name == m) {
                data.insert(m.into(), Value::from(mchid));
            }
        }
        if body.children.iter().any(|f| f.name == "bill_date") {
            data.insert("bill_date".into(), Value::from(bill_date));
        }
        if body.children.iter().any(|f| f.name == "auth_code") {
            // a payment code as the user's app shows it
            data.insert("auth_code".into(), Value::from("120061098828009406"));
        }
        data.insert("sign_type".into(), Value::from(sign_type));
        args.insert(body.name.clone(), Value::Object(data));
    }
    for flag in ["security", "nonceless"] {
        if op.request.iter().any(|f| f.name == flag) {
            args.insert(flag.into(), Value::Bool(true));
        }
    }
    Value::Object(args)
}

fn call(client: &Client, op: &Operation, args: Value) -> Result<Response, Error> {
    let chain = client.chain(op.template);
    match op.method {
        "GET" => chain.get(args),
        _ => chain.post(args),
    }
}

/// `(verified, return_code, err_code, err_code_des or return_msg)` of an APIv2 error.
fn v2_error(e: &Error) -> Option<(bool, &str, &str, &str)> {
    match e {
        Error::V2 {
            verified,
            return_code,
            return_msg,
            err_code,
            err_code_des,
            ..
        } => Some((
            *verified,
            return_code,
            err_code.as_deref().unwrap_or(""),
            err_code_des
                .as_deref()
                .or(return_msg.as_deref())
                .unwrap_or(""),
        )),
        _ => None,
    }
}

/// The documented required answer fields missing from `fields` (numbered ones as `_0`).
fn missing_fields(op: &Operation, fields: &[(String, String)]) -> Vec<String> {
    op.response
        .iter()
        .filter(|f| f.required && !matches!(f.name.as_str(), "err_code" | "err_code_des"))
        .filter(|f| !(op.unsigned && f.name == "sign"))
        .map(|f| f.name.replace("$n", "0").replace("$m", "0"))
        .filter(|n| !fields.iter().any(|(k, _)| k == n))
        .collect()
}

/// A micropay order paid a day ago on the sandbox's clock (whose bill exists: a day's bill
/// exists once the day has ended), the clock then back at real time; its `time_end`'s date.
fn micropay_yesterday(client: &Client, emu: &Emulator, out_trade_no: &str) -> String {
    let now = std::time::SystemTime::now();
    emu.set_clock(now - std::time::Duration::from_secs(86_400));
    let day = micropay(client, emu, out_trade_no);
    emu.set_clock(std::time::SystemTime::now());
    day
}

/// A paid micropay order of today; its `time_end`'s date (`YYYYMMDD`).
fn micropay(client: &Client, emu: &Emulator, out_trade_no: &str) -> String {
    let res: Value = client["v2/pay/micropay"]
        .post(json!({"xml": {
            "appid": "wxd678efh567hg6787", "mch_id": emu.mchid(), "body": "sandbox",
            "out_trade_no": out_trade_no, "total_fee": 100, "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406"}}))
        .unwrap()
        .json()
        .unwrap();
    res["time_end"].as_str().unwrap()[..8].to_string()
}

/// Whether the emulator models the operation's state (the others get documented answers).
fn modelled(op: &Operation) -> bool {
    matches!(
        op.template,
        "v2/pay/micropay" | "v2/pay/orderquery" | "v2/secapi/pay/refund" | "v2/pay/refundquery"
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `yyyyMMddHHmmss` in Beijing time as Unix seconds.
fn compact_seconds(s: &str) -> Option<i64> {
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + n(8..10) * 3600 + n(10..12) * 60 + n(12..14) - 8 * 3600)
}

/// What is incoherent in an answer's documented fields: a value that is its field's label, a
/// generated time (`yyyyMMddHHmmss`) not near the sandbox's clock (from two days before the
/// test started, `t0`, to now, as its order is paid a day back; an expiry up to 60 days ahead).
fn incoherent(op: &Operation, fields: &[(String, String)], t0: i64) -> Vec<String> {
    let mut out = Vec::new();
    for (k, v) in fields {
        let Some(f) = op.response.iter().find(|f| f.matches(k)) else {
            continue;
        };
        if !f.label.is_empty() && *v == f.label {
            out.push(format!("{k}: its label as its value"));
        }
        if let Some(t) = compact_seconds(v).filter(|_| k.contains("time")) {
            let ahead = ["expire", "end", "deadline", "invalid"]
                .iter()
                .any(|w| k.contains(w));
            let latest = now() + if ahead { 61 * 86_400 } else { 0 };
            if !(t0 - 2 * 86_400..=latest).contains(&t) {
                out.push(format!("{k}: {v} not near the sandbox's clock"));
            }
        }
    }
    out
}

#[test]
fn compact_seconds_reads_apiv2_times() {
    assert_eq!(compact_seconds("20150520132935"), Some(1_432_099_775));
    assert_eq!(compact_seconds("20000229080000"), Some(951_782_400));
    assert_eq!(compact_seconds("2015052013293"), None);
}

#[test]
fn every_apiv2_operation_of_the_catalogue_is_answered_in_both_sign_types() {
    let (emu, client) = start();
    let anyone = unnamed(&emu);
    let day = micropay_yesterday(&client, &emu, "v2-documented-0001");
    let ops: Vec<&Operation> = catalog::operations()
        .filter(|o| o.protocol == Protocol::V2)
        .collect();
    assert!(ops.len() > 100, "{} APIv2 operations", ops.len());
    let (mut answered, mut refused_sign_type, mut pages) = (0, 0, 0);
    let mut failures = Vec::new();
    let t0 = now();
    for op in &ops {
        if op.request.iter().any(|f| f.name == "body") {
            // a multipart upload (`secapi/mch/uploadmedia`), which the client does not send:
            // `an_image_upload_is_multipart_over_mutual_tls`
            continue;
        }
        for sign_type in SIGN_TYPES {
            let args = minimal_args(op, emu.mchid(), sign_type, &day);
            let names_merchant = body_field(op).is_some_and(|b| {
                b.children
                    .iter()
                    .any(|f| MERCHANT_FIELDS.contains(&f.name.as_str()))
            });
            let result = call(if names_merchant { &client } else { &anyone }, op, args);
            let what = format!("{} {} ({sign_type})", op.method, op.template);
            let xml_answer = op.response.iter().any(|f| f.name == "return_code");
            match result {
                Ok(res) if xml_answer && !op.template.contains("download") => {
                    let Some(fields) = res.xml_map() else {
                        failures.push(format!("{what}: not XML: {}", res.text()));
                        continue;
                    };
                    failures.extend(
                        incoherent(op, fields, t0)
                            .into_iter()
                            .map(|i| format!("{what}: {i}")),
                    );
                    let missing = missing_fields(op, fields);
                    if !missing.is_empty() {
                        failures.push(format!("{what}: documented fields missing: {missing:?}"));
                    }
                    if !allows(op, sign_type) {
                        failures.push(format!("{what}: answered a sign type the page excludes"));
                    }
                    answered += 1;
                }
                Ok(res) => {
                    // a bill (CSV) or a browser page
                    assert!(!res.body().is_empty(), "{what}");
                    if op.template.contains("download") {
                        assert!(res.text().contains("v2-documented-0001"), "{what}");
                        answered += 1;
                    } else {
                        pages += 1;
                    }
                }
                Err(e) if allows(op, sign_type) && modelled(op) => match v2_error(&e) {
                    Some((true, "SUCCESS", code, _)) if NOT_HELD.contains(&code) => answered += 1,
                    _ => failures.push(format!("{what}: {e}")),
                },
                Err(e) if !allows(op, sign_type) => match v2_error(&e) {
                    Some((verified, "SUCCESS", "PARAM_ERROR", des))
                        if des.contains("sign_type") && (verified || op.unsigned) =>
                    {
                        refused_sign_type += 1
                    }
                    _ => failures.push(format!("{what}: {e}")),
                },
                Err(Error::Decode { .. }) if !xml_answer => {
                    // `appauth/authindex` (a page) and `appauth/getaccesstoken` (JSON): not
                    // APIv2 XML, which the client reads as such; the answer is there
                    let last = emu.requests().pop().unwrap();
                    assert_eq!(last.status, 200, "{what}");
                    assert!(last.verified, "{what}: {:?}", last.refusal);
                    pages += 1;
                }
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
    }
    eprintln!(
        "APIv2 operations: {}; answered: {answered}, refused for a sign type the page \
         excludes: {refused_sign_type}, pages and JSON answers: {pages}",
        ops.len()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(answered > 150, "{answered}");
}

#[test]
fn an_answer_is_signed_in_the_request_sign_type_and_the_same_for_both() {
    let (emu, client) = start();
    let mut seen = Vec::new();
    for sign_type in SIGN_TYPES {
        let res = client["v2/pay/closeorder"]
            .post(
                json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                                 "out_trade_no": "1217752501201407033233368018",
                                 "sign_type": sign_type}}),
            )
            .unwrap();
        let fields = res.xml_map().unwrap().to_vec();
        let get = |k: &str| {
            fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        assert_eq!(get("return_code"), "SUCCESS");
        assert_eq!(get("result_code"), "SUCCESS");
        assert_eq!(get("mch_id"), emu.mchid());
        assert_eq!(get("appid"), "wxd678efh567hg6787");
        // the client verified it with the request's type: told by the sign's length
        assert_eq!(get("sign").len(), if sign_type == "MD5" { 32 } else { 64 });
        seen.push(
            fields
                .into_iter()
                .filter(|(k, _)| k != "sign" && k != "nonce_str")
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn a_wrong_sign_or_another_merchant_is_refused_unsigned() {
    let (emu, _) = start();
    let foreign = emu
        .builder()
        .secret("0123456789abcdef0123456789abcdef")
        .build()
        .unwrap();
    let data = json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                              "out_trade_no": "1217752501201407033233368018"}});
    let e = foreign["v2/pay/closeorder"].post(data).unwrap_err();
    assert_eq!(v2_error(&e), Some((false, "FAIL", "", "签名错误")), "{e}");
    let last = emu.requests().pop().unwrap();
    assert!(!last.verified);

    let other: Client = Builder::new()
        .base_uri(emu.base_uri())
        .root_certificate(emu.ca_certificate_pem().unwrap())
        .secret(emu.apiv2_key())
        .build()
        .unwrap();
    let e = other["v2/mmpaymkttransfers/query_coupon_stock"]
        .post(
            json!({"xml": {"coupon_stock_id": "1757", "appid": "wx5edab3bdfba3dc1c",
                             "mch_id": "1900000109", "op_user_id": "1900000109"}}),
        )
        .unwrap_err();
    assert_eq!(
        v2_error(&e),
        Some((false, "FAIL", "", "mch_id参数格式错误")),
        "{e}"
    );
}

#[test]
fn a_security_operation_without_the_merchant_certificate_is_refused() {
    let (emu, client) = start();
    let xml = json!({"mch_billno": "10000098201411111234567890", "mch_id": emu.mchid(),
                     "wxappid": "wx8888888888888888", "send_name": "sandbox",
                     "re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E", "total_amount": 100,
                     "total_num": 1, "wishing": "wish", "client_ip": "192.168.0.1",
                     "act_name": "act", "remark": "remark"});
    // with it: answered (unsigned by design, as the platform's red packets)
    let res: Value = client["v2/mmpaymkttransfers/sendredpack"]
        .post(json!({"security": true, "xml": xml}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(res["result_code"], "SUCCESS");
    assert_eq!(res["mch_billno"], "10000098201411111234567890");
    assert_eq!(
        emu.requests().pop().unwrap().client_certificate.as_deref(),
        Some(emu.mchid())
    );
    // without: the TLS layer's refusal, unsigned
    let e = client["v2/mmpaymkttransfers/sendredpack"]
        .post(json!({"xml": xml}))
        .unwrap_err();
    let (verified, code, _, msg) = v2_error(&e).unwrap();
    assert!(
        !verified && code == "FAIL" && msg.starts_with("证书错误"),
        "{e}"
    );
    assert!(msg.contains("none was presented"), "{msg}");
    // a plain HTTP emulator says how to get one
    let plain = Emulator::start(EmulatorConfig::new()).unwrap();
    let e = plain.builder().build().unwrap()["v2/secapi/pay/profitsharingfinish"]
        .post(
            json!({"xml": {"mch_id": plain.mchid(), "appid": "wx", "transaction_id": "1",
                             "out_order_no": "1", "description": "done",
                             "sign_type": "HMAC-SHA256"}}),
        )
        .unwrap_err();
    let (_, _, _, msg) = v2_error(&e).unwrap();
    assert!(msg.contains("--tls"), "{msg}");
}

#[test]
fn a_field_the_page_requires_is_refused_by_name_signed() {
    let (emu, client) = start();
    // `out_trade_no` left out of `pay/closeorder`
    let e = client["v2/pay/closeorder"]
        .post(
            json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                             "sign_type": "HMAC-SHA256"}}),
        )
        .unwrap_err();
    let (verified, code, err, des) = v2_error(&e).unwrap();
    assert!(verified, "{e}");
    assert_eq!((code, err), ("SUCCESS", "PARAM_ERROR"));
    assert!(des.contains("out_trade_no"), "{des}");
    // a value outside the page's enumeration: profit sharing takes HMAC-SHA256 only, and
    // the refusal is signed in the type the request used, which the client checks
    let e = client["v2/secapi/pay/profitsharingfinish"]
        .post(
            json!({"security": true, "xml": {"mch_id": emu.mchid(), "appid": "wx",
                     "transaction_id": "4208450740201411110007820472", "out_order_no": "P1",
                     "description": "done", "sign_type": "MD5"}}),
        )
        .unwrap_err();
    let (verified, _, err, des) = v2_error(&e).unwrap();
    assert!(verified, "{e}");
    assert_eq!(err, "PARAM_ERROR");
    assert!(
        des.starts_with("sign_type") && des.contains("HMAC-SHA256"),
        "{des}"
    );
    let body = match &e {
        Error::V2 { body, .. } => String::from_utf8_lossy(body).to_string(),
        _ => unreachable!(),
    };
    assert!(
        body.contains("<sign>") && !body.contains("<sign_type>"),
        "{body}"
    );
}

#[test]
fn micropay_orders_are_in_the_apiv2_bill() {
    let (emu, client) = start();
    let day = micropay_yesterday(&client, &emu, "v2-bill-0001");
    let res = client["v2/pay/downloadbill"]
        .post(
            json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                             "bill_date": day, "bill_type": "ALL"}}),
        )
        .unwrap();
    assert!(res.xml_map().is_none());
    assert!(res.text().contains("`v2-bill-0001"), "{}", res.text());
    // another day has none: the platform's unsigned FAIL
    let e = client["v2/pay/downloadbill"]
        .post(
            json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                             "bill_date": "20200101", "bill_type": "ALL"}}),
        )
        .unwrap_err();
    assert_eq!(
        v2_error(&e),
        Some((false, "FAIL", "", "No Bill Exist")),
        "{e}"
    );
}

#[test]
fn micropay_orders_are_the_orders_apiv3_sees_and_the_other_way_round() {
    let (emu, client) = start();
    micropay(&client, &emu, "v2-coherent-0001");
    // APIv3 queries the micropay order
    let q: Value = client["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": "v2-coherent-0001", "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(q["trade_type"], "MICROPAY");
    assert_eq!(q["trade_state"], "SUCCESS");
    assert_eq!(q["amount"]["total"], 100);
    // an APIv3 refund of it turns APIv2's trade_state to REFUND
    client["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "v2-coherent-0001", "out_refund_no": "v2-coherent-r1",
                              "amount": {"refund": 40, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap();
    let query = |no: &str| {
        client["v2/pay/orderquery"].post(json!({"xml": {"appid": "wxd678efh567hg6787",
                                                        "mch_id": emu.mchid(), "out_trade_no": no}}))
    };
    let v2: Value = query("v2-coherent-0001").unwrap().json().unwrap();
    assert_eq!(v2["trade_state"], "REFUND", "{v2}");
    assert_eq!(v2["transaction_id"], q["transaction_id"]);
    // the rest of it refunded by APIv2 (60 left); one fen more is refused
    let e = client["v2/secapi/pay/refund"]
        .post(
            json!({"security": true, "xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(),
                     "out_trade_no": "v2-coherent-0001", "out_refund_no": "v2-coherent-r2",
                     "total_fee": 100, "refund_fee": 61}}),
        )
        .unwrap_err();
    assert_eq!(v2_error(&e).unwrap().2, "INVALID_REQUEST", "{e}");
    // an APIv3 order is found by APIv2 orderquery, unpaid, and its number is taken
    client["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": "wxd678efh567hg6787", "mchid": emu.mchid(),
                              "description": "sandbox", "out_trade_no": "v3-coherent-0001",
                              "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
                              "amount": {"total": 5}}}),
        )
        .unwrap();
    let v2: Value = query("v3-coherent-0001").unwrap().json().unwrap();
    assert_eq!(v2["trade_state"], "NOTPAY", "{v2}");
    assert_eq!(v2["trade_type"], "NATIVE");
    assert_eq!(v2["total_fee"], "5");
    let e = client["v2/pay/micropay"]
        .post(json!({"xml": {"appid": "wxd678efh567hg6787", "mch_id": emu.mchid(), "body": "b",
                             "out_trade_no": "v3-coherent-0001", "total_fee": 5,
                             "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406"}}))
        .unwrap_err();
    assert_eq!(v2_error(&e).unwrap().2, "OUT_TRADE_NO_USED", "{e}");
}

/// `secapi/mch/uploadmedia` as another SDK sends it (the library's client sends no APIv2
/// upload): multipart over mutual TLS, `media` beside the signed text parts. The answer's
/// fields, or the whole answer when it is not XML.
fn upload_media(emu: &Emulator, media: &[u8], media_hash: &str, cert: bool) -> Map<String, Value> {
    use std::io::{Read, Write};
    use wechatpay_chain::client_xml::{self, SignType};
    let mut fields = Map::new();
    fields.insert("mch_id".into(), Value::from(emu.mchid()));
    fields.insert("media_hash".into(), Value::from(media_hash));
    fields.insert("sign_type".into(), Value::from("HMAC-SHA256"));
    let sign = client_xml::sign(&fields, emu.apiv2_key(), SignType::HmacSha256).unwrap();
    fields.insert("sign".into(), Value::from(sign));
    let mut body = Vec::new();
    for (k, v) in &fields {
        write!(
            body,
            "--B0UNDARY\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{}\r\n",
            v.as_str().unwrap()
        )
        .unwrap();
    }
    write!(body, "--B0UNDARY\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").unwrap();
    body.extend_from_slice(media);
    body.extend_from_slice(b"\r\n--B0UNDARY--\r\n");

    let mut tls = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    let ca = openssl::x509::X509::from_pem(emu.ca_certificate_pem().unwrap().as_bytes()).unwrap();
    tls.cert_store_mut().add_cert(ca).unwrap();
    if cert {
        let pem = emu.merchant_certificate_pem().unwrap();
        tls.set_certificate(&openssl::x509::X509::from_pem(pem.as_bytes()).unwrap())
            .unwrap();
        let key = private_key_pem(emu.merchant_private_key().unwrap()).unwrap();
        tls.set_private_key(&openssl::pkey::PKey::private_key_from_pem(key.as_bytes()).unwrap())
            .unwrap();
    }
    let tcp = std::net::TcpStream::connect(emu.addr()).unwrap();
    let mut stream = tls.build().connect("localhost", tcp).unwrap();
    let head = format!(
        "POST /secapi/mch/uploadmedia HTTP/1.1\r\nHost: {}\r\nContent-Type: multipart/form-data; \
         boundary=B0UNDARY\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        emu.addr(),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body).unwrap();
    let mut answer = Vec::new();
    // the server closes after the answer; a TLS close without close_notify ends it too
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).to_string();
    let xml = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let map = wechatpay_chain::transformer::to_array(xml.as_bytes()).unwrap();
    if map.contains_key("sign") {
        client_xml::verify(&map, emu.apiv2_key(), SignType::HmacSha256).unwrap();
    }
    map
}

#[test]
fn an_image_upload_is_multipart_over_mutual_tls() {
    let (emu, _) = start();
    let image = b"\xff\xd8\xff\xe0 a jpeg";
    let hash = wechatpay_chain::crypto::hash::md5_hex(image).unwrap();
    let ok = upload_media(&emu, image, &hash, true);
    assert_eq!(ok["result_code"], "SUCCESS", "{ok:?}");
    assert!(!ok["media_id"].as_str().unwrap().is_empty());
    let bad = upload_media(&emu, image, &"0".repeat(32), true);
    assert_eq!(bad["err_code"], "PARAM_ERROR", "{bad:?}");
    assert!(bad["err_code_des"].as_str().unwrap().contains("media_hash"));
    let refused = upload_media(&emu, image, &hash, false);
    assert_eq!(refused["return_code"], "FAIL");
    assert!(refused["return_msg"]
        .as_str()
        .unwrap()
        .starts_with("证书错误"));
}

/// Where the shared conformance corpus is: `$SHARED`, else `../shared` beside the repository.
fn corpus() -> Option<PathBuf> {
    let shared = match std::env::var_os("SHARED") {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let path = shared.join("conformance/corpus.dev.jsonl");
    path.is_file().then_some(path)
}

/// The corpus's merchant ids made the emulator's, in the body's merchant fields.
fn with_merchant(xml: &mut Value, mchid: &str) {
    if let Some(m) = xml.as_object_mut() {
        for k in MERCHANT_FIELDS {
            if m.get(k).is_some_and(Value::is_string) {
                m.insert(k.into(), Value::from(mchid));
            }
        }
    }
}

#[test]
fn every_apiv2_call_of_the_corpus_gets_a_verified_answer_in_both_sign_types() {
    let Some(path) = corpus() else {
        eprintln!("skipped: no conformance corpus (set SHARED to the directory holding conformance/corpus.dev.jsonl)");
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let (emu, client) = start();
    let mut calls = 0;
    let mut answered = [0usize; 2];
    let mut refused_sign_type = [0usize; 2];
    let mut contradicting = [0usize; 2];
    let mut business = [0usize; 2];
    let mut failures = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["expect"]["protocol"] != "v2" {
            continue;
        }
        calls += 1;
        let method = row["method"].as_str().unwrap();
        let template = row["template"].as_str().unwrap();
        let op = catalog::find(method, template).unwrap();
        for (i, sign_type) in SIGN_TYPES.into_iter().enumerate() {
            let mut args = row["args"].clone();
            let m = args.as_object_mut().unwrap();
            // the sandbox is the base URI of every call (a per-call endpoint included)
            if m.contains_key("base_uri") {
                m.insert("base_uri".into(), Value::from(emu.base_uri()));
            }
            let xml = m.get_mut("xml").unwrap();
            with_merchant(xml, emu.mchid());
            xml["sign_type"] = Value::from(sign_type);
            let mtls = row["expect"]["mtls"] == true;
            assert_eq!(mtls, op.security, "{template}");
            let what = format!("{method} {template} ({sign_type})");
            match call(&client, op, args) {
                Ok(res) => {
                    let last = emu.requests().pop().unwrap();
                    assert!(last.verified, "{what}");
                    if mtls {
                        assert_eq!(last.client_certificate.as_deref(), Some(emu.mchid()));
                    }
                    if let Some(fields) = res.xml_map() {
                        let missing = missing_fields(op, fields);
                        if !missing.is_empty() {
                            failures.push(format!("{what}: fields missing: {missing:?}"));
                        }
                    }
                    answered[i] += 1;
                }
                Err(e) => match v2_error(&e) {
                    Some((verified, "SUCCESS", "PARAM_ERROR", des))
                        if !allows(op, sign_type)
                            && des.contains("sign_type")
                            && (verified || op.unsigned) =>
                    {
                        refused_sign_type[i] += 1
                    }
                    Some((true, "SUCCESS", "PARAM_ERROR", des))
                        if SAMPLE_CONTRADICTS_PAGE
                            .iter()
                            .any(|(t, field)| *t == template && des.starts_with(field)) =>
                    {
                        contradicting[i] += 1
                    }
                    Some((true, "SUCCESS", code, _))
                        if modelled(op) && NOT_HELD.contains(&code) =>
                    {
                        business[i] += 1
                    }
                    _ => failures.push(format!("{what}: {e}")),
                },
            }
        }
    }
    eprintln!(
        "corpus APIv2 calls: {calls}; answered MD5: {}, HMAC-SHA256: {}; signed business \
         errors of the modelled flows (an order the sandbox does not hold), MD5: {}, \
         HMAC-SHA256: {}; signed PARAM_ERROR for a sign type the page excludes, MD5: {}, \
         HMAC-SHA256: {}; for a sample contradicting its page, MD5: {}, HMAC-SHA256: {}",
        answered[0],
        answered[1],
        business[0],
        business[1],
        refused_sign_type[0],
        refused_sign_type[1],
        contradicting[0],
        contradicting[1]
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(calls >= 40, "{calls} APIv2 calls in the corpus");
    for i in 0..2 {
        assert_eq!(
            answered[i] + business[i] + refused_sign_type[i] + contradicting[i],
            calls
        );
    }
}
