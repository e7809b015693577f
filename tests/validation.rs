//! Validation before sending (`Builder::validation`, the args' `validate`), over loopback: a
//! server that counts what arrives shows what was sent and what was not.

mod common;

use std::sync::{Arc, Mutex};

use common::{echo, Keys, Server};
use serde_json::{json, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;
use wechatpay_chain::{Error, Validation};

fn server() -> Server {
    Server::start(Keys::shared(), echo())
}

/// A documented Native order, as its page lists the fields.
fn native() -> Value {
    json!({"json": {
        "appid": "wxd678efh567hg6787",
        "mchid": "1230000109",
        "description": "Image形象店-深圳腾大-QQ公仔",
        "out_trade_no": "1217752501201407033233368018",
        "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
        "amount": {"total": 100, "currency": "CNY"}
    }})
}

/// The Native order with the amount as a string: one finding, at `/json/amount/total`.
fn mutated() -> Value {
    let mut a = native();
    a["json"]["amount"]["total"] = json!("100");
    a
}

fn refusal(e: Error) -> String {
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    e.to_string()
}

#[test]
fn strict_refuses_with_the_field_path_and_sends_nothing() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    let chain = client.chain("v3/pay/transactions/native");
    let m = refusal(chain.post(mutated()).unwrap_err());
    assert!(m.contains("/json/amount/total"), "{m}");
    assert!(m.contains("integer, got string \"100\""), "{m}");
    assert!(m.contains("nothing was sent"), "{m}");
    // a required field dropped, an enumeration broken, an undocumented field, the forgotten
    // `json` wrapper: each named by its pointer
    let mut dropped = native();
    dropped["json"]
        .as_object_mut()
        .unwrap()
        .remove("notify_url");
    let m = refusal(chain.post(dropped).unwrap_err());
    assert!(
        m.contains("/json/notify_url: required field missing"),
        "{m}"
    );
    let mut enumerated = native();
    enumerated["json"]["limit_pay"] = json!(["no_cash"]);
    let m = refusal(chain.post(enumerated).unwrap_err());
    assert!(
        m.contains("/json/limit_pay/0: value outside the enumeration"),
        "{m}"
    );
    let mut unknown = native();
    unknown["json"]["amount"]["totl"] = json!(1);
    let m = refusal(chain.post(unknown).unwrap_err());
    assert!(
        m.contains("/json/amount/totl: unknown field") && m.contains("`total`"),
        "{m}"
    );
    let unwrapped = native()["json"].clone();
    let m = refusal(chain.post(unwrapped).unwrap_err());
    assert!(m.contains("/json: required body missing"), "{m}");
    // async calls are checked the same way
    let e = common::rt()
        .block_on(chain.post_async(mutated()))
        .unwrap_err();
    assert!(refusal(e).contains("/json/amount/total"));
    assert_eq!(s.recorded().len(), 0, "nothing may be sent");
    // the documented call goes out
    chain.post(native()).unwrap();
    assert_eq!(s.recorded().len(), 1);
}

#[test]
fn the_library_default_is_off_and_sends() {
    let s = server();
    let client = s.client();
    client
        .chain("v3/pay/transactions/native")
        .post(mutated())
        .unwrap();
    // an undocumented path too
    client
        .chain("v3/pay/transaction/native")
        .post(native())
        .unwrap();
    assert_eq!(s.recorded().len(), 2);
    let off = s.builder().validation(Validation::Off).build().unwrap();
    off.chain("v3/pay/transactions/native")
        .post(mutated())
        .unwrap();
    assert_eq!(s.recorded().len(), 3);
}

#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<Vec<String>>>);

struct Message<'a>(&'a mut String);

impl Visit for Message<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            *self.0 = format!("{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if *event.metadata().level() == Level::WARN {
            let mut m = String::new();
            event.record(&mut Message(&mut m));
            self.0.lock().unwrap().push(m);
        }
    }
}

#[test]
fn warn_logs_each_finding_and_sends() {
    let s = server();
    let client = s.builder().validation(Validation::Warn).build().unwrap();
    let warnings = Warnings::default();
    let subscriber = tracing_subscriber::registry().with(warnings.clone());
    tracing::subscriber::with_default(subscriber, || {
        let mut two = mutated();
        two["json"].as_object_mut().unwrap().remove("appid");
        client
            .chain("v3/pay/transactions/native")
            .post(two)
            .unwrap();
        client
            .chain("v3/pay/transaction/native")
            .post(native())
            .unwrap();
    });
    assert_eq!(s.recorded().len(), 2);
    let w = warnings.0.lock().unwrap().clone();
    let about = |needle: &str| w.iter().filter(|m| m.contains(needle)).count();
    assert_eq!(about("/json/amount/total: wrong type"), 1, "{w:?}");
    assert_eq!(about("/json/appid: required field missing"), 1, "{w:?}");
    assert_eq!(
        about("did you mean POST v3/pay/transactions/native"),
        1,
        "{w:?}"
    );
    assert_eq!(w.len(), 3, "{w:?}");
}

#[test]
fn validate_false_in_the_args_sends_and_true_asks_for_it() {
    let s = server();
    let strict = s.builder().validation(Validation::Strict).build().unwrap();
    let mut a = mutated();
    a["validate"] = json!(false);
    strict.chain("v3/pay/transactions/native").post(a).unwrap();
    assert_eq!(s.recorded().len(), 1);
    // nothing of the option reaches the wire
    let body: Value = serde_json::from_slice(&s.last().body).unwrap();
    assert_eq!(body, mutated()["json"]);
    // on a client that does not validate, `true` checks strictly
    let mut a = mutated();
    a["validate"] = json!(true);
    let m = refusal(
        s.client()
            .chain("v3/pay/transactions/native")
            .post(a)
            .unwrap_err(),
    );
    assert!(m.contains("/json/amount/total"), "{m}");
    let mut a = mutated();
    a["validate"] = json!("sometimes");
    let m = refusal(
        s.client()
            .chain("v3/pay/transactions/native")
            .post(a)
            .unwrap_err(),
    );
    assert!(m.contains("\"warn\""), "{m}");
    assert_eq!(s.recorded().len(), 1);
}

#[test]
fn an_unknown_path_names_the_nearest_template() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    let m = refusal(
        client
            .chain("v3/pay/transaction/native")
            .post(native())
            .unwrap_err(),
    );
    assert!(
        m.contains("did you mean POST v3/pay/transactions/native"),
        "{m}"
    );
    // a documented path under another method says which methods it takes
    let m = refusal(
        client
            .chain("v3/pay/transactions/native")
            .get(json!({}))
            .unwrap_err(),
    );
    assert!(m.contains("documented for POST only"), "{m}");
    let m = refusal(
        client
            .chain("v3/nothing/like/this/at/all")
            .get(json!({}))
            .unwrap_err(),
    );
    assert!(m.contains("no documented path is near it"), "{m}");
    assert_eq!(s.recorded().len(), 0);
}

#[test]
fn concrete_paths_and_filled_placeholders_are_checked_as_their_template() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    // the placeholder written in the path; the query the page requires given in the args
    client
        .chain("v3/pay/transactions/out-trade-no/T1")
        .get(json!({"query": {"mchid": "1230000109"}}))
        .unwrap();
    // or in the path itself
    client
        .chain("v3/pay/transactions/out-trade-no/T1?mchid=1230000109")
        .get(json!({}))
        .unwrap();
    // a placeholder filled from the args
    client
        .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
        .get(json!({"out_trade_no": "T1", "query": {"mchid": "1230000109"}}))
        .unwrap();
    assert_eq!(s.recorded().len(), 3);
    assert_eq!(
        s.last().target,
        "/v3/pay/transactions/out-trade-no/T1?mchid=1230000109"
    );
    let m = refusal(
        client
            .chain("v3/pay/transactions/out-trade-no/T1")
            .get(json!({}))
            .unwrap_err(),
    );
    assert!(m.contains("/query: required field missing"), "{m}");
    let m = refusal(
        client
            .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
            .get(json!({"query": {"mchid": "1230000109"}}))
            .unwrap_err(),
    );
    assert!(m.contains("/out_trade_no: required field missing"), "{m}");
    // a placeholder named otherwise than on the page stands for the page's
    client
        .chain("v3/pay/transactions/out-trade-no/{no}")
        .get(json!({"no": "T2", "query": {"mchid": "1230000109"}}))
        .unwrap();
    assert_eq!(
        s.last().target,
        "/v3/pay/transactions/out-trade-no/T2?mchid=1230000109"
    );
    let m = refusal(
        client
            .chain("v3/pay/transactions/out-trade-no/{no}")
            .get(json!({"query": {"mchid": 1230000109, "x": 1}}))
            .unwrap_err(),
    );
    assert!(m.contains("/query/x: unknown field"), "{m}");
    assert_eq!(s.recorded().len(), 4);
}

#[test]
fn an_upload_carries_its_body() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    let media =
        wechatpay_chain::util::media::Media::new("a.png", b"\x89PNG\r\n\x1a\n".to_vec()).unwrap();
    client
        .chain("v3/merchant/media/upload")
        .upload(&media, json!({}))
        .unwrap();
    assert_eq!(s.recorded().len(), 1);
}

/// The call: `v2/pay/orderquery` with `out_trade_no` only. The page marks both ids
/// required, the platform takes either: strict sends it; with neither, one finding names the
/// group and nothing is sent.
#[test]
fn strict_sends_an_apiv2_query_with_one_of_its_ids() {
    let s = server();
    let client = s
        .builder()
        .secret("v2secretv2secretv2secretv2secret")
        .validation(Validation::Strict)
        .build()
        .unwrap();
    let chain = client.chain("v2/pay/orderquery");
    let xml = |id: Option<(&str, &str)>| {
        let mut x = json!({"appid": "wxd678efh567hg6787", "mch_id": "1900000001"});
        if let Some((k, v)) = id {
            x[k] = json!(v);
        }
        json!({ "xml": x })
    };
    let m = refusal(chain.post(xml(None)).unwrap_err());
    assert!(
        m.contains("/xml: one of transaction_id, out_trade_no required")
            && !m.contains("required field missing"),
        "{m}"
    );
    assert_eq!(s.recorded().len(), 0, "nothing may be sent");
    for (n, id) in [
        ("out_trade_no", "20150806125346"),
        ("transaction_id", "4200000001"),
    ]
    .into_iter()
    .enumerate()
    {
        // the echo server answers JSON, not the platform's XML: what matters is that it went
        match chain.post(xml(Some(id))) {
            Err(Error::InvalidArgument(m)) => panic!("{id:?} refused: {m}"),
            _ => assert_eq!(s.recorded().len(), n + 1, "{id:?} sent"),
        }
    }
}

/// The platform's amounts are integers in fen: a fraction is refused before it is sent, even
/// where the page types the field `number` and names no unit (`transfer_amount`, issue 21).
#[test]
fn strict_refuses_a_fractional_amount() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    let chain = client.chain("v3/fund-app/mch-transfer/transfer-bills");
    let bill = |amount: Value| {
        json!({"json": {
            "appid": "wxf636efh567hg6787",
            "out_bill_no": "plfk2020042013",
            "transfer_scene_id": "1000",
            "openid": "o-MYE42l80oelYMDE34nYD456Xoy",
            "transfer_amount": amount,
            "transfer_remark": "2020年会员回馈",
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": "新会员有礼"},
                {"info_type": "奖励说明", "info_content": "注册会员抽奖一等奖"}
            ]
        }})
    };
    let m = refusal(chain.post(bill(json!(1.5))).unwrap_err());
    assert!(m.contains("/json/transfer_amount"), "{m}");
    assert!(m.contains("integer"), "{m}");
    assert_eq!(s.recorded().len(), 0, "nothing may be sent");
    chain.post(bill(json!(400000))).unwrap();
    assert_eq!(s.recorded().len(), 1);
}

#[test]
fn strict_judges_the_path_that_is_sent_not_the_template() {
    let s = server();
    let client = s.builder().validation(Validation::Strict).build().unwrap();
    let query = json!({"mchid": "1230000109"});
    let chain = client.chain("v3/pay/transactions/out-trade-no/{+no}");
    // a reserved expansion that would carry the path on past the documented placeholder, or
    // start a query or a fragment: refused, naming the placeholder and the fix
    for (no, shows) in [
        ("T100001/close", "'/'"),
        ("T100001?mchid=1", "'?'"),
        ("T100001#x", "'#'"),
    ] {
        let m = refusal(chain.get(json!({"no": no, "query": query})).unwrap_err());
        assert!(
            m.contains("{+no}")
                && m.contains("{out_trade_no}")
                && m.contains(shows)
                && m.contains("write {no}")
                && m.contains("nothing was sent"),
            "{m}"
        );
    }
    // a whole segment that is a dot segment or empty is not the documented placeholder either
    for no in ["..", ".", ""] {
        let m = refusal(
            client
                .chain("v3/pay/transactions/out-trade-no/{no}")
                .get(json!({"no": no, "query": query}))
                .unwrap_err(),
        );
        assert!(m.contains("{no}") && m.contains("{out_trade_no}"), "{m}");
    }
    assert_eq!(s.recorded().len(), 0, "nothing sent");
    // a reserved expansion that stays inside its segment is the documented call
    chain
        .get(json!({"no": "T100001%2F1", "query": query}))
        .unwrap();
    assert_eq!(
        s.last().target,
        "/v3/pay/transactions/out-trade-no/T100001%2F1?mchid=1230000109"
    );
    // {no} percent-encodes the '/': one segment, as judged
    client
        .chain("v3/pay/transactions/out-trade-no/{no}")
        .get(json!({"no": "T100001/close", "query": query}))
        .unwrap();
    assert_eq!(
        s.last().target,
        "/v3/pay/transactions/out-trade-no/T100001%2Fclose?mchid=1230000109"
    );
    // warn and off send the call as written, as before
    for mode in ["warn", "off"] {
        chain
            .get(json!({"no": "T100001/close", "query": query, "validate": mode}))
            .unwrap();
        assert_eq!(
            s.last().target,
            "/v3/pay/transactions/out-trade-no/T100001/close?mchid=1230000109"
        );
    }
    assert_eq!(s.recorded().len(), 4);
}
