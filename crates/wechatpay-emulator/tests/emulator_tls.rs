//! The emulator's TLS mode: HTTPS with a CA it makes at start, the merchant certificate that
//! `security: true` APIv2 calls present (mutual TLS), `secapi/pay/refund` with its documented
//! errors, clients that present no certificate or a foreign one, hostile connections, and
//! `wechatpay serve --tls` driven from the command line. Real loopback sockets, keys and
//! certificates made at test time. This binary never sets `SSL_CERT_FILE`: a client trusts the
//! emulator's CA only when it is given it.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{deliveries, received, xml_receiver};
use wechatpay_chain::{Builder, Client, Error};
use wechatpay_emulator::{private_key_pem, Emulator, EmulatorConfig};

const APPID: &str = "wxd678efh567hg6787";

fn start() -> Emulator {
    Emulator::start(EmulatorConfig::new().tls(true)).unwrap()
}

/// A paid APIv2 micropay order of `total` fen; its transaction_id.
fn micropay(client: &Client, emu: &Emulator, out_trade_no: &str, total: i64) -> String {
    let res: Value = client["v2/pay/micropay"]
        .post(json!({"xml": {
            "appid": APPID, "mch_id": emu.mchid(), "body": "image形象店-深圳腾大- QQ公仔",
            "out_trade_no": out_trade_no, "total_fee": total, "spbill_create_ip": "14.17.22.52",
            "auth_code": "120061098828009406"}}))
        .unwrap()
        .json()
        .unwrap();
    res["transaction_id"].as_str().unwrap().to_string()
}

/// An unpaid APIv3 Native order of `total` fen; its answer.
fn native(client: &Client, emu: &Emulator, out_trade_no: &str, total: i64) -> Value {
    client["v3/pay/transactions/native"]
        .post(json!({"json": {
            "appid": APPID, "mchid": emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": out_trade_no, "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
            "amount": {"total": total}}}))
        .unwrap()
        .json()
        .unwrap()
}

/// `secapi/pay/refund` data for `out_trade_no`, plus `extra`.
fn refund_xml(emu: &Emulator, extra: Value) -> Value {
    let mut xml = json!({"appid": APPID, "mch_id": emu.mchid(), "out_refund_no": "r-0001",
                         "total_fee": 100, "refund_fee": 100});
    for (k, v) in extra.as_object().unwrap() {
        xml[k] = v.clone();
    }
    xml
}

fn refund(client: &Client, xml: Value) -> Result<Value, Error> {
    client["v2/secapi/pay/refund"]
        .post(json!({"security": true, "xml": xml}))
        .and_then(|r| r.json())
}

/// `(return_code, err_code_des or else return_msg, err_code)` of an APIv2 error.
fn v2_error(e: Error) -> (String, String, String) {
    match e {
        Error::V2 {
            return_code,
            return_msg,
            err_code,
            err_code_des,
            ..
        } => (
            return_code,
            err_code_des.or(return_msg).unwrap_or_default(),
            err_code.unwrap_or_default(),
        ),
        other => panic!("not an APIv2 error: {other:?}"),
    }
}

#[test]
fn apiv3_calls_go_over_https_and_need_the_emulators_root() {
    let emu = start();
    assert!(emu.is_tls());
    assert!(
        emu.base_uri().starts_with("https://127.0.0.1:"),
        "{}",
        emu.base_uri()
    );
    let client = emu.builder().build().unwrap();
    let res = native(&client, &emu, "tls-native-0001", 100);
    assert!(res["code_url"].as_str().unwrap().starts_with("weixin://"));
    // APIv3 calls present no client certificate, and need none.
    let last = emu.requests().pop().unwrap();
    assert!(
        last.verified && last.client_certificate.is_none(),
        "{last:?}"
    );

    // The same client without the emulator's CA: the server certificate is not trusted.
    let own_builder = || {
        Builder::new()
            .base_uri(emu.base_uri())
            .mchid(emu.mchid())
            .serial(emu.merchant_serial())
            .private_key(emu.merchant_private_key().unwrap().clone())
            .platform_public_key(emu.platform_serial(), emu.platform_public_key().clone())
    };
    let untrusting = own_builder().build().unwrap();
    let before = emu.requests().len();
    match untrusting["v3/pay/transactions/out-trade-no/{no}"]
        .get(json!({"no": "tls-native-0001", "query": {"mchid": emu.mchid()}}))
    {
        Err(
            e @ Error::Transport {
                answered: false, ..
            },
        ) => {
            let chain = format!("{:?}", error_chain(&e));
            assert!(chain.contains("certificate verify failed"), "{chain}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.requests().len(), before, "nothing reached the emulator");

    // Given the CA PEM, a client of one's own works.
    let own = own_builder()
        .root_certificate(emu.ca_certificate_pem().unwrap())
        .build()
        .unwrap();
    let order: Value = own["v3/pay/transactions/out-trade-no/{no}"]
        .get(json!({"no": "tls-native-0001", "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(order["trade_state"], "NOTPAY");
}

/// The error and its sources, one line each.
fn error_chain(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}

#[test]
fn a_refund_with_the_merchant_certificate_is_made_and_shows_up() {
    let emu = start();
    let client = emu.builder().build().unwrap();
    let transaction_id = micropay(&client, &emu, "tls-micropay-0001", 100);
    let xml = refund_xml(
        &emu,
        json!({"out_trade_no": "tls-micropay-0001", "refund_fee": 30,
               "refund_desc": "商品已售完", "sign_type": "HMAC-SHA256"}),
    );
    let res = refund(&client, xml.clone()).unwrap();
    assert_eq!(res["return_code"], "SUCCESS");
    assert_eq!(res["result_code"], "SUCCESS");
    assert_eq!(res["transaction_id"], transaction_id.as_str());
    assert_eq!(res["out_refund_no"], "r-0001");
    assert_eq!(res["refund_fee"], "30");
    assert_eq!(res["total_fee"], "100");
    let refund_id = res["refund_id"].as_str().unwrap().to_string();
    assert!(
        refund_id.starts_with("5030") && refund_id.len() == 29,
        "{refund_id}"
    );
    let last = emu.requests().pop().unwrap();
    assert_eq!(last.target, "/secapi/pay/refund");
    assert_eq!(last.client_certificate.as_deref(), Some(emu.mchid()));
    assert!(last.verified);

    // The platform keeps one set of refunds: the APIv3 query sees it, and it completes.
    let done = emu.complete_refund("r-0001").unwrap();
    assert_eq!(done["status"], "SUCCESS");
    let queried: Value = client
        .chain("v3/refund/domestic/refunds/{no}")
        .get(json!({"no": "r-0001"}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(queried["refund_id"], refund_id.as_str());
    assert_eq!(queried["amount"]["refund"], 30);
    // … and the day's refund bill lists it with its micropay order's fields.
    let day = &queried["create_time"].as_str().unwrap()[..10];
    // A day's bill exists once the day has ended on the sandbox's clock.
    emu.advance_clock(std::time::Duration::from_secs(86_400));
    let bill: wechatpay_chain::download::Bill = client["v3/bill/tradebill"]
        .get(json!({"query": {"bill_date": day, "bill_type": "REFUND"}}))
        .unwrap()
        .json()
        .unwrap();
    let mut csv = Vec::new();
    client.download_bill(&bill, json!({}), &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    let line = csv
        .lines()
        .find(|l| l.contains(&refund_id))
        .unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.contains(&format!("`{APPID}")) && line.contains("`MICROPAY"),
        "{line}"
    );

    // The same request again (a fresh nonce) is the same refund.
    let again = refund(&client, xml).unwrap();
    assert_eq!(again["refund_id"], refund_id.as_str());

    // An APIv3 order paid through the emulator, refunded by transaction_id.
    native(&client, &emu, "tls-native-0002", 200);
    let paid = emu.pay("tls-native-0002").unwrap();
    let res = refund(
        &client,
        refund_xml(
            &emu,
            json!({"transaction_id": paid["transaction_id"], "out_refund_no": "r-0002",
                   "total_fee": 200, "refund_fee": 200}),
        ),
    )
    .unwrap();
    assert_eq!(res["out_trade_no"], "tls-native-0002");
    let order: Value = client["v3/pay/transactions/out-trade-no/{no}"]
        .get(json!({"no": "tls-native-0002", "query": {"mchid": emu.mchid()}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(order["trade_state"], "REFUND");
}

#[test]
fn the_documented_refund_errors() {
    let emu = start();
    let client = emu.builder().build().unwrap();
    micropay(&client, &emu, "tls-micropay-0003", 100);
    let code = |extra: Value| v2_error(refund(&client, refund_xml(&emu, extra)).unwrap_err());
    let order = |extra: Value| {
        let mut v = json!({"out_trade_no": "tls-micropay-0003"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };

    let (_, _, c) = code(json!({}));
    assert_eq!(c, "PARAM_ERROR", "neither transaction_id nor out_trade_no");
    let mut no_fee = refund_xml(&emu, order(json!({})));
    no_fee.as_object_mut().unwrap().remove("refund_fee");
    let (_, _, c) = v2_error(refund(&client, no_fee).unwrap_err());
    assert_eq!(c, "PARAM_ERROR");
    for bad in [
        json!({"refund_fee": 0}),
        json!({"refund_fee": "ten"}),
        json!({"refund_fee_type": "USD"}),
        json!({"refund_account": "ELSEWHERE"}),
        json!({"notify_url": "not a url"}),
        json!({"out_refund_no": "a b"}),
    ] {
        assert_eq!(code(order(bad.clone())).2, "PARAM_ERROR", "{bad}");
    }
    // refund_fee above total_fee: the platform answers return_code FAIL.
    let (rc, msg, _) = code(order(json!({"refund_fee": 101})));
    assert_eq!((rc.as_str(), msg.as_str()), ("FAIL", "invalid refund_fee"));

    let (_, _, c) = code(json!({"out_trade_no": "tls-none-0001"}));
    assert_eq!(c, "ORDERNOTEXIST");
    let (_, _, c) = code(json!({"transaction_id": "4200000000000000000000000000"}));
    assert_eq!(c, "INVALID_TRANSACTIONID");
    let (_, msg, c) = code(order(json!({"total_fee": 99, "refund_fee": 10})));
    assert_eq!(c, "REFUND_FEE_MISMATCH", "{msg}");

    // 60 + 30 fit, then 20 more does not; after the rest, the order is fully refunded.
    for (no, fee) in [("r-1", 60), ("r-2", 30)] {
        refund(
            &client,
            refund_xml(&emu, order(json!({"out_refund_no": no, "refund_fee": fee}))),
        )
        .unwrap();
    }
    let (_, msg, c) = code(order(json!({"out_refund_no": "r-3", "refund_fee": 20})));
    assert_eq!(c, "INVALID_REQUEST", "{msg}");
    refund(
        &client,
        refund_xml(
            &emu,
            order(json!({"out_refund_no": "r-4", "refund_fee": 10})),
        ),
    )
    .unwrap();
    let (_, msg, c) = code(order(json!({"out_refund_no": "r-5", "refund_fee": 1})));
    assert_eq!((c.as_str(), msg.as_str()), ("ERROR", "订单已全额退款"));
    // An out_refund_no used again with another amount.
    let (_, _, c) = code(order(json!({"out_refund_no": "r-1", "refund_fee": 61})));
    assert_eq!(c, "REFUND_FEE_MISMATCH");

    // An APIv3 order not paid yet.
    native(&client, &emu, "tls-native-0003", 100);
    let (_, _, c) = code(json!({"out_trade_no": "tls-native-0003", "out_refund_no": "r-6"}));
    assert_eq!(c, "ERROR");
    // Business errors are signed answers, verified by the client like any other.
    assert!(emu.requests().iter().all(|r| r.status == 200));
}

#[test]
fn refunds_without_the_merchants_certificate_are_refused() {
    let emu = start();
    let client = emu.builder().build().unwrap();
    micropay(&client, &emu, "tls-micropay-0004", 100);
    let xml = refund_xml(&emu, json!({"out_trade_no": "tls-micropay-0004"}));

    // A client without a merchant identity refuses a security call before sending anything.
    let before = emu.requests().len();
    let bare = Builder::new()
        .base_uri(emu.base_uri())
        .secret(emu.apiv2_key())
        .root_certificate(emu.ca_certificate_pem().unwrap())
        .build()
        .unwrap();
    match refund(&bare, xml.clone()) {
        Err(Error::Config { message: m, .. }) => assert!(m.contains("merchant_identity"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(emu.requests().len(), before);

    // Over the plain pool (no `security`), the TLS connection presents no certificate: the
    // emulator answers as the platform refuses it.
    let err = client["v2/secapi/pay/refund"]
        .post(json!({"xml": xml.clone()}))
        .unwrap_err();
    let (rc, msg, _) = v2_error(err);
    assert_eq!(rc, "FAIL");
    assert!(
        msg.starts_with("证书错误") && msg.contains("none was presented"),
        "{msg}"
    );

    // A certificate for the same merchant and key, issued by another emulator's CA.
    let key = emu.merchant_private_key().unwrap().clone();
    let other = Emulator::start(
        EmulatorConfig::new()
            .tls(true)
            .mchid(emu.mchid())
            .merchant_private_key(key.clone()),
    )
    .unwrap();
    let foreign = Builder::new()
        .base_uri(emu.base_uri())
        .secret(emu.apiv2_key())
        .root_certificate(emu.ca_certificate_pem().unwrap())
        .merchant_identity(
            other.merchant_certificate_pem().unwrap(),
            &private_key_pem(&key).unwrap(),
        )
        .build()
        .unwrap();
    let (rc, msg, _) = v2_error(refund(&foreign, xml.clone()).unwrap_err());
    assert_eq!(rc, "FAIL");
    assert!(msg.contains("not issued by the emulator's CA"), "{msg}");
    let last = emu.requests().pop().unwrap();
    assert!(
        !last.verified && last.client_certificate.is_none(),
        "{last:?}"
    );

    // Nothing was refunded by any of them; the merchant's own certificate still works.
    assert_eq!(refund(&client, xml).unwrap()["refund_fee"], "100");

    // A plain HTTP emulator cannot be presented a certificate: it says how to get one.
    let plain = Emulator::start(EmulatorConfig::new()).unwrap();
    let plain_client = plain.builder().build().unwrap();
    micropay(&plain_client, &plain, "tls-micropay-0005", 100);
    let err = plain_client["v2/secapi/pay/refund"]
        .post(json!({"xml": refund_xml(&plain, json!({"out_trade_no": "tls-micropay-0005"}))}))
        .unwrap_err();
    let (_, msg, _) = v2_error(err);
    assert!(msg.contains("tls(true)"), "{msg}");
}

#[test]
fn garbage_and_stalled_handshakes_are_dropped_and_the_emulator_keeps_serving() {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .tls(true)
            // long enough for the real client's handshake on a busy machine (300 ms was not),
            // short against the stalled client's 4 s bound below
            .handshake_timeout(Duration::from_millis(1000)),
    )
    .unwrap();
    let client = emu.builder().build().unwrap();
    let addr = emu.addr();

    // Plain HTTP to the TLS port: the handshake fails, the connection is closed.
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    garbage
        .write_all(b"POST /pay/micropay HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        .unwrap();
    let mut buf = [0u8; 256];
    let n = garbage.read(&mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("HTTP/1.1 200"));

    // A client that connects and says nothing is dropped after the handshake timeout …
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // … while others are served.
    let t0 = Instant::now();
    micropay(&client, &emu, "tls-micropay-0006", 1);
    let n = stalled.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    let waited = t0.elapsed();
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    // A handshake cut halfway: a TLS record header and then nothing.
    let mut half = TcpStream::connect(addr).unwrap();
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let n = half.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0);

    assert_eq!(
        client["v2/pay/orderquery"]
            .post(json!({"xml": {"appid": APPID, "mch_id": emu.mchid(),
                                 "out_trade_no": "tls-micropay-0006"}}))
            .unwrap()
            .json::<Value>()
            .unwrap()["trade_state"],
        "SUCCESS"
    );
}

/// `pay/refundquery` with `ids` (and `extra` fields).
fn refundquery(client: &Client, emu: &Emulator, ids: Value) -> Result<Value, Error> {
    let mut xml = json!({"appid": APPID, "mch_id": emu.mchid()});
    for (k, v) in ids.as_object().unwrap() {
        xml[k] = v.clone();
    }
    client["v2/pay/refundquery"]
        .post(json!({"xml": xml}))
        .and_then(|r| r.json())
}

#[test]
fn an_apiv2_refund_is_queried_notified_with_req_info_and_queried_again() {
    let emu = Emulator::start(EmulatorConfig::new().tls(true).refund_delay(None)).unwrap();
    let client = emu.builder().build().unwrap();
    let (receiver, notify_url) = xml_receiver(
        vec![wechatpay_chain::notify_v2::reply_success()],
        "/v2/refund-notify",
    );
    let transaction_id = micropay(&client, &emu, "v2-loop-0001", 100);
    let res = refund(
        &client,
        refund_xml(
            &emu,
            json!({"out_trade_no": "v2-loop-0001", "out_refund_no": "v2-loop-r1",
                   "refund_fee": 40, "notify_url": notify_url}),
        ),
    )
    .unwrap();
    let refund_id = res["refund_id"].as_str().unwrap().to_string();

    // No certificate needed to query; the answer is signed and verified by the client.
    let q = refundquery(&client, &emu, json!({"out_trade_no": "v2-loop-0001"})).unwrap();
    for (k, v) in [
        ("result_code", "SUCCESS"),
        ("transaction_id", transaction_id.as_str()),
        ("out_trade_no", "v2-loop-0001"),
        ("total_fee", "100"),
        ("cash_fee", "100"),
        ("refund_count", "1"),
        ("out_refund_no_0", "v2-loop-r1"),
        ("refund_id_0", refund_id.as_str()),
        ("refund_fee_0", "40"),
        ("refund_status_0", "PROCESSING"),
        ("refund_account_0", "REFUND_SOURCE_UNSETTLED_FUNDS"),
    ] {
        assert_eq!(q[k], v, "{k} in {q}");
    }
    assert!(q.get("refund_success_time_0").is_none(), "{q}");
    assert!(q.get("total_refund_count").is_none(), "{q}");
    let last = emu.requests().pop().unwrap();
    assert_eq!(last.target, "/pay/refundquery");
    assert_eq!(last.client_certificate, None);
    assert!(receiver.recorded().is_empty(), "not before it succeeds");

    // It succeeds: the platform's notification, unsigned, req_info encrypted.
    emu.complete_refund("v2-loop-r1").unwrap();
    let got = received(&receiver, 1);
    assert_eq!(got.len(), 1);
    let body = &got[0].body;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].target, "/v2/refund-notify");
    assert!(got[0].headers.get("wechatpay-signature").is_none());
    // A refund result carries no sign: the expected sign type does not apply to it.
    let md5 = wechatpay_chain::client_xml::SignType::Md5;
    let n = wechatpay_chain::notify_v2::verify(body, emu.apiv2_key(), md5).unwrap();
    assert_eq!(n.kind(), wechatpay_chain::notify_v2::KindV2::Refund);
    // The plain-text fields around req_info are unauthenticated: kept apart from get().
    let outer: Vec<&str> = n
        .unauthenticated_outer()
        .unwrap()
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        outer,
        ["return_code", "appid", "mch_id", "nonce_str", "req_info"]
    );
    assert_eq!(n.get("appid"), None);
    assert_eq!(n.get("return_code"), None);
    let info: std::collections::HashMap<&str, &str> = n
        .fields()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    for (k, v) in [
        ("transaction_id", transaction_id.as_str()),
        ("out_trade_no", "v2-loop-0001"),
        ("refund_id", refund_id.as_str()),
        ("out_refund_no", "v2-loop-r1"),
        ("total_fee", "100"),
        ("settlement_total_fee", "100"),
        ("refund_fee", "40"),
        ("settlement_refund_fee", "40"),
        ("refund_status", "SUCCESS"),
        ("refund_account", "REFUND_SOURCE_UNSETTLED_FUNDS"),
        ("refund_request_source", "API"),
    ] {
        assert_eq!(info.get(k), Some(&v), "{k} in {info:?}");
    }
    assert!(!info["refund_recv_accout"].is_empty());
    let at = info["success_time"];
    let shape = at.len() == 19 && at.as_bytes()[10] == b' ' && at[..4].parse::<u32>().is_ok();
    assert!(shape, "{at}");
    // The client's own helper agrees, and nothing else opens it.
    assert_eq!(client.verify_notification_v2(body, md5).unwrap(), n);
    assert!(wechatpay_chain::notify_v2::verify(body, "another APIv2 key", md5).is_err());

    // Accepted at once: one attempt, recorded (then a moment for a second that should not come).
    deliveries(&emu, 1);
    std::thread::sleep(Duration::from_millis(100));
    let d = emu.deliveries();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].event_type, wechatpay_emulator::V2_REFUND_EVENT);
    assert_eq!(d[0].url, notify_url);
    assert_eq!(d[0].outcome, wechatpay_emulator::Outcome::Accepted(200));

    // Queried again, by out_refund_no: SUCCESS, with the notification's time.
    let q = refundquery(&client, &emu, json!({"out_refund_no": "v2-loop-r1"})).unwrap();
    assert_eq!(q["refund_count"], "1");
    assert_eq!(q["refund_status_0"], "SUCCESS");
    assert_eq!(q["refund_success_time_0"], at);
    assert_eq!(q["refund_recv_accout_0"], info["refund_recv_accout"]);
}

#[test]
fn refundquery_lists_an_orders_refunds_from_both_apis() {
    let emu = start();
    let client = emu.builder().build().unwrap();
    native(&client, &emu, "v2-both-0001", 300);
    let paid = emu.pay("v2-both-0001").unwrap();
    client["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "v2-both-0001", "out_refund_no": "v3-refund-01",
                              "amount": {"refund": 100, "total": 300, "currency": "CNY"}}}),
        )
        .unwrap();
    refund(
        &client,
        refund_xml(
            &emu,
            json!({"transaction_id": paid["transaction_id"], "out_refund_no": "v2-refund-02",
                   "total_fee": 300, "refund_fee": 50, "sign_type": "HMAC-SHA256",
                   "refund_account": "REFUND_SOURCE_RECHARGE_FUNDS"}),
        ),
    )
    .unwrap();
    let q = refundquery(
        &client,
        &emu,
        json!({"transaction_id": paid["transaction_id"], "sign_type": "HMAC-SHA256"}),
    )
    .unwrap();
    assert_eq!(q["refund_count"], "2");
    assert_eq!(q["out_trade_no"], "v2-both-0001");
    assert_eq!(q["total_fee"], "300");
    assert_eq!(
        (q["out_refund_no_0"].as_str(), q["refund_fee_0"].as_str()),
        (Some("v3-refund-01"), Some("100"))
    );
    assert_eq!(
        (q["out_refund_no_1"].as_str(), q["refund_fee_1"].as_str()),
        (Some("v2-refund-02"), Some("50"))
    );
    assert_eq!(q["refund_account_1"], "REFUND_SOURCE_RECHARGE_FUNDS");
    assert_eq!(q["sign"].as_str().map(str::len), Some(64), "HMAC-SHA256");
    // By refund_id, preferred to the order's ids given beside it: that refund only.
    let r2 = q["refund_id_1"].clone();
    let one = refundquery(
        &client,
        &emu,
        json!({"refund_id": r2, "out_trade_no": "v2-both-0001"}),
    )
    .unwrap();
    assert_eq!(
        (
            one["refund_count"].as_str(),
            one["out_refund_no_0"].as_str()
        ),
        (Some("1"), Some("v2-refund-02"))
    );
    // offset: from the second one, with the total.
    let page = refundquery(
        &client,
        &emu,
        json!({"out_trade_no": "v2-both-0001", "offset": 1}),
    )
    .unwrap();
    assert_eq!(page["total_refund_count"], "2");
    assert_eq!(
        (
            page["refund_count"].as_str(),
            page["out_refund_no_0"].as_str()
        ),
        (Some("1"), Some("v2-refund-02"))
    );
}

#[test]
fn refundquery_errors_are_the_platforms() {
    let emu = start();
    let client = emu.builder().build().unwrap();
    micropay(&client, &emu, "v2-err-0001", 100);
    let code = |ids: Value| v2_error(refundquery(&client, &emu, ids).unwrap_err());

    // A paid order without refunds, and unknown ids.
    for ids in [
        json!({"out_trade_no": "v2-err-0001"}),
        json!({"out_trade_no": "v2-err-none"}),
        json!({"out_refund_no": "none"}),
        json!({"refund_id": "50300000000000000000000000000"}),
        json!({"transaction_id": "4200000000000000000000000000"}),
    ] {
        let (rc, _, c) = code(ids.clone());
        assert_eq!(
            (rc.as_str(), c.as_str()),
            ("SUCCESS", "REFUNDNOTEXIST"),
            "{ids}"
        );
    }
    assert_eq!(code(json!({})).2, "PARAM_ERROR", "no identifier");
    assert_eq!(
        code(json!({"out_refund_no": ""})).2,
        "PARAM_ERROR",
        "an empty one"
    );
    refund(
        &client,
        refund_xml(&emu, json!({"out_trade_no": "v2-err-0001"})),
    )
    .unwrap();
    for offset in [json!("x"), json!(-1), json!(1)] {
        let (_, msg, c) = code(json!({"out_trade_no": "v2-err-0001", "offset": offset}));
        assert_eq!(c, "PARAM_ERROR", "{offset}: {msg}");
    }
    // Business errors are signed: the client verified them all.
    assert!(emu.requests().iter().all(|r| r.verified && r.status == 200));

    // Signed with another key: return_code FAIL, unsigned, and the secret is not told.
    let wrong = emu
        .builder()
        .secret("not the merchant's APIv2 key at all")
        .build()
        .unwrap();
    let err = refundquery(&wrong, &emu, json!({"out_trade_no": "v2-err-0001"})).unwrap_err();
    let text = format!("{err} {err:?}");
    let (rc, msg, _) = v2_error(err);
    assert_eq!((rc.as_str(), msg.as_str()), ("FAIL", "签名错误"));
    assert!(!text.contains(emu.apiv2_key()), "{text}");
    let last = emu.requests().pop().unwrap();
    assert!(!last.verified);
    assert!(!format!("{last:?}").contains(emu.apiv2_key()));
}

#[test]
fn apiv2_refund_notifications_are_retried_until_return_code_success() {
    let retries = vec![Duration::from_millis(50); 3];
    let emu = Emulator::start(
        EmulatorConfig::new()
            .tls(true)
            .refund_delay(None)
            .notify_retries(retries),
    )
    .unwrap();
    let client = emu.builder().build().unwrap();
    micropay(&client, &emu, "v2-retry-0001", 100);
    let fail = wechatpay_chain::notify_v2::reply_fail("busy");
    let ok = wechatpay_chain::notify_v2::reply_success();
    // FAIL, then a 200 that is not XML, then SUCCESS: three attempts, the same body each time.
    let (flaky, flaky_url) = xml_receiver(vec![fail.clone(), "OK".into(), ok], "/v2/refund-notify");
    // FAIL forever: one attempt and three retries, then given up.
    let (stubborn, stubborn_url) = xml_receiver(vec![fail], "/v2/refund-notify");
    for (no, url) in [("v2-retry-r1", &flaky_url), ("v2-retry-r2", &stubborn_url)] {
        refund(
            &client,
            refund_xml(
                &emu,
                json!({"out_trade_no": "v2-retry-0001", "out_refund_no": no,
                       "refund_fee": 10, "notify_url": url}),
            ),
        )
        .unwrap();
        emu.complete_refund(no).unwrap();
    }
    // A refund without a notify_url: nothing is sent.
    refund(
        &client,
        refund_xml(
            &emu,
            json!({"out_trade_no": "v2-retry-0001", "out_refund_no": "v2-retry-r3", "refund_fee": 10}),
        ),
    )
    .unwrap();
    emu.complete_refund("v2-retry-r3").unwrap();

    let got = received(&flaky, 3);
    assert_eq!(got.len(), 3);
    assert!(got.windows(2).all(|w| w[0].body == w[1].body));
    assert_eq!(received(&stubborn, 4).len(), 4);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(flaky.recorded().len(), 3, "accepted: no more attempts");
    assert_eq!(stubborn.recorded().len(), 4, "bounded");

    use wechatpay_emulator::Outcome;
    let outcomes = |url: &str| -> Vec<(u32, Outcome)> {
        emu.deliveries()
            .into_iter()
            .filter(|d| d.url == url)
            .map(|d| (d.attempt, d.outcome))
            .collect()
    };
    assert_eq!(
        outcomes(&flaky_url),
        [
            (1, Outcome::Refused(200)),
            (2, Outcome::Refused(200)),
            (3, Outcome::Accepted(200))
        ]
    );
    assert_eq!(
        outcomes(&stubborn_url),
        (1..=4)
            .map(|i| (i, Outcome::Refused(200)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        emu.deliveries().len(),
        7,
        "none for the refund without a notify_url"
    );
}
