//! The documented answers: the client against the in-process emulator on operations it does
//! not model. Each answer verified (the client checks every signature), every documented
//! required response field present with its JSON type, the request's values echoed, a missing
//! required field refused naming it, the same call answered the same, encrypted fields
//! encrypted for the merchant, and a replay of the conformance corpus's APIv3 calls.

#[path = "../../../tests/common/mod.rs"]
mod common;
#[path = "../../../tests/support/shared.rs"]
mod shared;

use common::{rt, with_mchid};
use serde_json::{json, Map, Value};
use wechatpay_chain::catalog::{self, Field, Type};
use wechatpay_chain::util::media::Media;
use wechatpay_chain::{Client, Error, Placeholders, Rsa};
use wechatpay_emulator::{Emulator, EmulatorConfig};

fn start() -> Emulator {
    rt().block_on(Emulator::start_async(EmulatorConfig::new()))
        .unwrap()
}

fn client(emu: &Emulator) -> Client {
    emu.builder().build().unwrap()
}

fn fits(ty: Type, v: &Value) -> bool {
    match ty {
        Type::String => v.is_string(),
        Type::Integer => v.is_i64() || v.is_u64(),
        Type::Number => v.is_number(),
        Type::Boolean => v.is_boolean(),
        Type::True => v == &Value::Bool(true),
        Type::Object => v.is_object(),
        Type::ObjectArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
        Type::StringArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        Type::IntegerArray => v
            .as_array()
            .is_some_and(|a| a.iter().all(|i| i.is_i64() || i.is_u64())),
        Type::NumberArray => v.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
        _ => true,
    }
}

/// Every required field of `fields` in `obj`, of its type, in its enumeration; recursively.
fn assert_documented(fields: &[Field], obj: &Map<String, Value>, at: &str) {
    for f in fields.iter().filter(|f| !f.name.contains('$')) {
        let Some(v) = obj.get(&f.name) else {
            assert!(!f.required, "{at}/{} (required) missing in {obj:?}", f.name);
            continue;
        };
        assert!(fits(f.ty, v), "{at}/{}: {} expected, got {v}", f.name, f.ty);
        if let (false, Some(s), None) = (f.enumeration.is_empty(), v.as_str(), &f.encrypted) {
            assert!(f.enumeration.iter().any(|e| e == s), "{at}/{}: {s}", f.name);
        }
        match v {
            Value::Object(m) => assert_documented(&f.children, m, &format!("{at}/{}", f.name)),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(m) = item {
                        assert_documented(&f.children, m, &format!("{at}/{}/{i}", f.name));
                    }
                }
            }
            _ => {}
        }
    }
}

/// Calls `template` with `method`, expects a verified 2xx, checks it against the catalogue
/// and hands over its JSON (`Null` for 204).
fn call(client: &Client, method: &str, template: &str, args: Value) -> (u16, Value) {
    let chain = client.chain(template);
    let res = match method {
        "GET" => chain.get(args),
        "POST" => chain.post(args),
        "PUT" => chain.put(args),
        "PATCH" => chain.patch(args),
        "DELETE" => chain.delete(args),
        other => panic!("{other}"),
    }
    .unwrap_or_else(|e| panic!("{method} {template}: {e}"));
    let status = res.status().as_u16();
    let op = catalog::find(method, template).unwrap();
    if status == 204 {
        assert!(res.body().is_empty());
        assert!(op.response.is_empty(), "{template} documents a body");
        return (status, Value::Null);
    }
    assert_eq!(status, 200);
    let v: Value = res.json().unwrap();
    assert_documented(&op.response, v.as_object().expect("an object"), "");
    (status, v)
}

#[test]
fn get_with_query_echoes_and_fills_every_required_field() {
    let emu = start();
    let c = client(&emu);
    let (_, v) = call(
        &c,
        "GET",
        "v3/marketing/favor/stocks",
        json!({"query": {"offset": 3, "limit": 7, "stock_creator_mchid": emu.mchid(), "status": "running"}}),
    );
    // query values echoed with the documented type
    assert_eq!(v["offset"], 3);
    assert_eq!(v["limit"], 7);
    // `data` is optional, but `total_count` counts it: one generated item after the 3 before
    // this page
    assert_eq!(v["data"].as_array().unwrap().len(), 1);
    assert_eq!(v["total_count"], 4);
    // a list with a placeholder: its documented list of one
    let (_, v) = call(
        &c,
        "GET",
        "v3/marketing/favor/users/{openid}/coupons",
        json!({"openid": "oSANDBOX_user", "query": {"appid": "wx1234567890abcdef", "status": "USED"}}),
    );
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["status"], "USED", "echoed at depth: {v}");
}

#[test]
fn post_put_patch_and_delete_are_answered_as_documented() {
    let emu = start();
    let c = client(&emu);
    let (_, v) = call(
        &c,
        "POST",
        "v3/marketing/favor/users/{openid}/coupons",
        json!({"openid": "oSANDBOX_user", "json": {
            "stock_id": "9856000", "out_request_no": "89560002019101000121",
            "appid": "wx233544546545989", "stock_creator_mchid": emu.mchid()}}),
    );
    let id = v["coupon_id"].as_str().unwrap();
    assert!(
        id.len() >= 20 && id.bytes().all(|b| b.is_ascii_digit()),
        "{id}"
    );

    let (_, v) = call(
        &c,
        "PATCH",
        "v3/marketing/busifavor/stocks/{stock_id}/budget",
        json!({"stock_id": "98065001", "json": {"current_max_coupons": 30,
            "target_max_coupons": 40, "modify_budget_request_no": "1002600620019090123143254436"}}),
    );
    assert!(v["max_coupons"].is_i64());

    let (status, _) = call(
        &c,
        "PUT",
        "v3/merchant-service/complaint-notifications",
        json!({"json": {"url": "https://merchant.example/complaints"}}),
    );
    assert_eq!(status, 200);

    let (status, v) = call(
        &c,
        "DELETE",
        "v3/marketing/membercard-open/cards/{card_id}/service-modules/{service_module_id}",
        json!({"card_id": "pbLatjvt5ZN0ZRanWMH5aDWwTrd8", "service_module_id": "1001"}),
    );
    assert_eq!((status, v), (204, Value::Null));
}

#[test]
fn an_upload_is_answered_after_its_parts_are_read() {
    let emu = start();
    let c = client(&emu);
    let png = [0x89u8, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0];
    let media = Media::new("coupon.png", png.to_vec()).unwrap();
    let res = c
        .chain("v3/marketing/favor/media/image-upload")
        .upload(&media, json!({}))
        .unwrap();
    let v: Value = res.json().unwrap();
    let op = catalog::find("POST", "v3/marketing/favor/media/image-upload").unwrap();
    assert_documented(&op.response, v.as_object().unwrap(), "");
    // a meta without its documented `sha256`
    let bare = Media::new("coupon.png", png.to_vec())
        .unwrap()
        .with_meta(json!({"filename": "coupon.png", "sha256": null}))
        .unwrap();
    match c
        .chain("v3/marketing/favor/media/image-upload")
        .upload(&bare, json!({}))
    {
        Err(Error::Api { status, detail, .. }) => {
            assert_eq!(status, 400);
            assert_eq!(detail.unwrap()["field"], "/meta/sha256");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn times_amounts_and_placeholders_have_plausible_shapes() {
    let emu = start();
    let c = client(&emu);
    let (_, v) = call(
        &c,
        "GET",
        "v3/merchant-service/complaints-v2/{complaint_id}",
        json!({"complaint_id": "200201820200101080076610000"}),
    );
    assert_eq!(v["complaint_id"], "200201820200101080076610000");
    let t = v["complaint_time"].as_str().unwrap();
    assert!(
        t.len() == 25 && t.ends_with("+08:00") && &t[10..11] == "T",
        "RFC 3339 in CST: {t}"
    );
    assert!(v["user_complaint_times"].is_i64());
    assert!(
        ["PENDING", "PROCESSING", "PROCESSED"].contains(&v["complaint_state"].as_str().unwrap())
    );
}

#[test]
fn a_missing_required_field_is_refused_naming_it() {
    let emu = start();
    let c = client(&emu);
    let e = c
        .chain("v3/marketing/favor/users/{openid}/coupons")
        .post(json!({"openid": "oSANDBOX_user", "json": {
            "stock_id": "9856000", "appid": "wx233544546545989", "stock_creator_mchid": emu.mchid()}}))
        .unwrap_err();
    let Error::Api {
        status,
        code,
        detail,
        verified,
        ..
    } = e
    else {
        panic!("expected an API error, got {e}")
    };
    assert_eq!(
        (status, code.as_str(), verified),
        (400, "PARAM_ERROR", true)
    );
    let detail = detail.unwrap();
    assert_eq!(detail["field"], "/out_request_no");
    assert_eq!(detail["location"], "body");

    // a query value of the wrong type, and one outside its enumeration
    for (query, field) in [
        (
            json!({"offset": "x", "limit": 10, "stock_creator_mchid": "1"}),
            "/offset",
        ),
        (
            json!({"offset": 0, "limit": 10, "stock_creator_mchid": "1", "status": "RUNNING"}),
            "/status",
        ),
        (json!({"offset": 0, "limit": 10}), "/stock_creator_mchid"),
    ] {
        match c
            .chain("v3/marketing/favor/stocks")
            .get(json!({"query": query}))
        {
            Err(Error::Api {
                status,
                code,
                detail,
                ..
            }) => {
                assert_eq!((status, code.as_str()), (400, "PARAM_ERROR"));
                let d = detail.unwrap();
                assert_eq!(
                    (d["field"].as_str(), d["location"].as_str()),
                    (Some(field), Some("query"))
                );
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // a documented placeholder left empty (wechatpay-php's expansion) routes nowhere
    let lenient = emu
        .builder()
        .placeholders(Placeholders::Lenient)
        .build()
        .unwrap();
    match lenient
        .chain("v3/marketing/favor/stocks/{stock_id}")
        .get(json!({"query": {"stock_creator_mchid": emu.mchid()}}))
    {
        Err(Error::Api {
            status,
            code,
            message,
            verified: true,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (404, "NOT_FOUND"));
            assert!(message.contains("{stock_id}"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // a path in no catalogue entry stays 404
    match c.chain("v3/no-such/operation").get(json!({})) {
        Err(Error::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "NOT_FOUND"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_group_of_alternatives_takes_one_and_refuses_none_or_both() {
    let emu = start();
    let c = client(&emu);
    let op = catalog::find("GET", "v3/payscore/serviceorder").unwrap();
    let g = &op
        .request
        .iter()
        .find(|f| f.name == "query")
        .unwrap()
        .alternatives[0];
    assert_eq!(
        (g.exclusive, g.members.as_slice()),
        (
            true,
            &["out_order_no".to_string(), "query_id".to_string()][..]
        )
    );
    let base = json!({"service_id": "500001", "appid": "wxd678efh567hg6787"});
    for id in ["out_order_no", "query_id"] {
        let mut q = base.clone();
        q[id] = json!("1234323JKHDFE1243252");
        call(
            &c,
            "GET",
            "v3/payscore/serviceorder",
            json!({"query": q, "validate": false}),
        );
    }
    let mut both = base.clone();
    both["out_order_no"] = json!("A1");
    both["query_id"] = json!("B1");
    for (q, issue) in [
        (base.clone(), "one of out_order_no, query_id required"),
        (
            both,
            "exactly one of out_order_no, query_id allowed, got out_order_no and query_id",
        ),
    ] {
        match c.chain("v3/payscore/serviceorder").get(json!({"query": q})) {
            Err(Error::Api {
                status,
                code,
                detail,
                verified: true,
                ..
            }) => {
                assert_eq!((status, code.as_str()), (400, "PARAM_ERROR"));
                let d = detail.unwrap();
                assert_eq!(
                    (d["location"].as_str(), d["field"].as_str()),
                    (Some("query"), Some("/"))
                );
                assert!(d["issue"].as_str().unwrap().contains(issue), "{d}");
            }
            other => panic!("{issue}: {other:?}"),
        }
    }
}

#[test]
fn the_same_call_gets_the_same_answer() {
    let emu = start();
    let c = client(&emu);
    let args = json!({"complaint_id": "200201820200101080076610001"});
    let op = catalog::find("GET", "v3/merchant-service/complaints-v2/{complaint_id}").unwrap();
    // the same values but for the times, which follow the sandbox's clock
    let same = |r: wechatpay_chain::Response| {
        let mut v: Value = r.json().unwrap();
        timeless(&op.response, &mut v);
        v
    };
    let a = c
        .chain("v3/merchant-service/complaints-v2/{complaint_id}")
        .get(args.clone())
        .unwrap();
    let b = c
        .chain("v3/merchant-service/complaints-v2/{complaint_id}")
        .get(args)
        .unwrap();
    let a = same(a);
    assert_eq!(a, same(b));
    let other = c
        .chain("v3/merchant-service/complaints-v2/{complaint_id}")
        .get(json!({"complaint_id": "200201820200101080076610002"}))
        .unwrap();
    assert_ne!(a, same(other));
    // and a restarted emulator answers the same
    let emu2 = start();
    let again = client(&emu2)
        .chain("v3/merchant-service/complaints-v2/{complaint_id}")
        .get(json!({"complaint_id": "200201820200101080076610001"}))
        .unwrap();
    assert_eq!(a, same(again));
}

#[test]
fn modelled_operations_keep_their_behaviour() {
    let emu = start();
    let c = client(&emu);
    match c
        .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
        .get(json!({"out_trade_no": "NEVER_CREATED", "query": {"mchid": emu.mchid()}}))
    {
        Err(Error::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (404, "ORDER_NOT_EXIST"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn encrypted_response_fields_are_encrypted_for_the_merchant() {
    let emu = start();
    let c = client(&emu);
    let secret = "8609cb22e1774a50a930e414cc71eca06121bc";
    let ciphertext = Rsa::encrypt(secret, emu.platform_public_key()).unwrap();
    let (_, v) = call(
        &c,
        "GET",
        "v3/aggracct-bc/wb-channel/bank-channel-account/rename/{application_id}",
        json!({"application_id": "11117742499090086455469010028373",
               "query": {"mchid": emu.mchid(), "bal_account_no": ciphertext},
               "headers": {"Wechatpay-Serial": emu.platform_serial()}}),
    );
    let got = v["bal_account_no"].as_str().unwrap();
    assert_ne!(got, secret);
    let plain = Rsa::decrypt(got, emu.merchant_private_key().unwrap()).unwrap();
    assert_eq!(plain, secret.as_bytes());
}

#[test]
fn the_corpus_replays_with_verified_answers() {
    let corpus = shared::corpus();
    let emu = start();
    // the corpus's args are wechatpay-php's: a placeholder it leaves out expands to empty
    let c = emu
        .builder()
        .placeholders(Placeholders::Lenient)
        .build()
        .unwrap();
    let (mut ok, mut business, mut calls) = (0, Vec::new(), 0);
    for line in corpus.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["expect"]["protocol"] != "v3" {
            continue;
        }
        calls += 1;
        let method = row["method"].as_str().unwrap();
        let template = row["template"].as_str().unwrap();
        let mut args = row["args"].clone();
        with_mchid(&mut args, emu.mchid());
        let m = args.as_object_mut().unwrap();
        // the sandbox is the base URI; the platform key it names is the sandbox's
        m.remove("base_uri");
        if let Some(h) = m.get_mut("headers").and_then(Value::as_object_mut) {
            if h.contains_key("Wechatpay-Serial") {
                h.insert(
                    "Wechatpay-Serial".into(),
                    Value::from(emu.platform_serial()),
                );
            }
        }
        let chain = c.chain(template);
        let res = match method {
            "GET" => chain.get(args),
            "POST" => chain.post(args),
            "PUT" => chain.put(args),
            "PATCH" => chain.patch(args),
            "DELETE" => chain.delete(args),
            other => panic!("{other}"),
        };
        match res {
            Ok(r) => {
                assert!(r.status().is_success());
                ok += 1;
            }
            Err(Error::Api {
                verified: true,
                status,
                code,
                message,
                ..
            }) => business.push(format!("{status} {code} {method} {template}: {message}")),
            Err(e) => panic!("{method} {template}: not a verified answer: {e}"),
        }
    }
    eprintln!(
        "corpus APIv3 calls: {calls}, 2xx: {ok}, signed business errors: {}",
        business.len()
    );
    for b in &business {
        eprintln!("  {b}");
    }
    // the whole corpus, or the sample's 17
    assert!(calls >= if corpus.full { 400 } else { 17 }, "{calls}");
    assert!(ok * 100 >= calls * 80, "{ok} of {calls} are 2xx");
}

/// A value of `f`'s type for a request: its first enumerated value, or a plain one; objects
/// with their required fields and one member of each group of alternatives.
fn sample(f: &Field) -> Value {
    let first = f.enumeration.first();
    let scalar = |ty: Type| match ty {
        Type::Integer => first
            .and_then(|e| e.parse::<i64>().ok())
            .map_or(json!(1), Value::from),
        Type::Number => match first {
            Some(e) => e
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| e.parse::<f64>().map(Value::from))
                .unwrap_or(json!(1.5)),
            None => json!(1.5),
        },
        Type::Boolean | Type::True => json!(true),
        _ => Value::from(first.map_or("x1", String::as_str)),
    };
    // required fields, and the first member of each group of alternatives
    let object = |f: &Field| {
        Value::Object(
            f.children
                .iter()
                .filter(|c| {
                    (c.required || f.alternatives.iter().any(|g| g.members[0] == c.name))
                        && !c.name.contains('$')
                })
                .map(|c| (c.name.clone(), sample(c)))
                .collect(),
        )
    };
    match f.ty {
        Type::Object => object(f),
        Type::ObjectArray => json!([object(f)]),
        Type::StringArray => json!([scalar(Type::String)]),
        Type::IntegerArray => json!([scalar(Type::Integer)]),
        Type::NumberArray => json!([scalar(Type::Number)]),
        ty => scalar(ty),
    }
}

/// Calls `op` with sampled args ([`sample`]) for each of its `json`, `query` and
/// placeholders, through `client`.
fn sampled_call(
    client: &Client,
    op: &catalog::Operation,
) -> Result<wechatpay_chain::Response, Error> {
    let mut args = Map::new();
    for f in &op.request {
        match f.name.as_str() {
            "json" | "query" => {
                args.insert(f.name.clone(), sample(f));
            }
            _ => {}
        }
    }
    for ph in op.placeholders() {
        let doc = op.request.iter().find(|f| f.name == ph);
        let v = match doc {
            Some(f) if f.ty == Type::Integer => json!("1"),
            Some(f) => match sample(f) {
                Value::String(s) => Value::from(s),
                _ => json!("x1"),
            },
            // `{empty}`: the trailing `/`
            None => json!(""),
        };
        args.insert(ph.to_string(), v);
    }
    let args = Value::Object(args);
    let chain = client.chain(op.template);
    match op.method {
        "GET" => chain.get(args),
        "POST" => chain.post(args),
        "PUT" => chain.put(args),
        "PATCH" => chain.patch(args),
        _ => chain.delete(args),
    }
}

#[test]
fn every_documented_apiv3_operation_answers_with_its_documented_fields() {
    let emu = start();
    let c = client(&emu);
    let (mut answered, mut modelled, mut skipped) = (0, Vec::new(), 0);
    for op in catalog::operations() {
        if op.protocol != catalog::Protocol::V3 {
            continue;
        }
        // uploads are multipart (the media test covers the modelled one)
        if op.request.iter().any(|f| f.name == "body") {
            skipped += 1;
            continue;
        }
        let res = sampled_call(&c, op);
        match res {
            Ok(r) if r.status().as_u16() == 204 => {
                assert!(op.response.is_empty(), "{} {}", op.method, op.template);
                answered += 1;
            }
            Ok(r) => {
                assert_eq!(r.status().as_u16(), 200, "{} {}", op.method, op.template);
                if !op.unsigned {
                    let v: Value = r.json().unwrap();
                    assert_documented(&op.response, v.as_object().unwrap(), op.template);
                }
                answered += 1;
            }
            // a modelled operation's business answer for an object it does not hold
            Err(Error::Api {
                verified: true,
                status,
                code,
                message,
                ..
            }) if code != "NOT_FOUND"
                || op.template == "v3/certificates"
                || !message.starts_with("the emulator has no operation") =>
            {
                modelled.push(format!(
                    "{status} {code} {} {}: {message}",
                    op.method, op.template
                ))
            }
            Err(e) => panic!("{} {}: {e}", op.method, op.template),
        }
    }
    eprintln!(
        "documented APIv3 operations: {answered} answered 2xx, {} business errors, {skipped} uploads skipped",
        modelled.len()
    );
    for m in &modelled {
        eprintln!("  {m}");
    }
    // all but the modelled operations' business answers to sampled args (unknown orders,
    // an mchid not the sandbox's, formats they check further)
    assert!(
        answered * 100 >= (answered + modelled.len()) * 95,
        "{answered}"
    );
}

/// Cross-border operations are documented under other bases
/// (`https://api.mch.weixin.qq.com/hk/`, `https://apihk.mch.weixin.qq.com/global/`, …): each
/// operation whose page names its base (`base_uri`) is answered, verified, under either path
/// prefix, signed over the path as sent.
#[test]
fn every_cross_border_operation_answers_under_its_base_prefix() {
    let emu = start();
    let mut checked = 0;
    for prefix in ["hk/", "global/"] {
        let c = emu
            .builder()
            .base_uri(format!("{}{prefix}", emu.base_uri()))
            .build()
            .unwrap();
        for op in catalog::operations() {
            // (the unsigned image download is documented on `apihk.mch.weixin.qq.com/`, no
            // prefix: the library trusts an unsigned answer only at the documented path)
            if op.protocol != catalog::Protocol::V3
                || op.unsigned
                || !op.request.iter().any(|f| f.name == "base_uri")
            {
                continue;
            }
            let at = format!("{} /{prefix}{}", op.method, op.template);
            match sampled_call(&c, op) {
                Ok(r) => assert!(r.status().is_success(), "{at}"),
                // a modelled operation's business answer to sampled args (and signed)
                Err(Error::Api {
                    verified: true,
                    code,
                    message,
                    ..
                }) => assert!(
                    code != "NOT_FOUND" || !message.starts_with("the emulator has no operation"),
                    "{at}: {message}"
                ),
                Err(e) => panic!("{at}: {e}"),
            }
            checked += 1;
        }
        // what the sandbox saw: the path as the SDK sent it
        let last = emu.requests().last().unwrap().target.clone();
        assert!(last.starts_with(&format!("/{prefix}v3/")), "{last}");
    }
    assert!(checked >= 2 * 100, "{checked}");
}

/// `YYYY-MM-DDTHH:MM:SS+08:00` (an optional fraction before the offset) as Unix seconds.
fn beijing_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    if b.len() < 25 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with("+08:00") {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // days from civil (H. Hinnant)
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss - 8 * 3600)
}

/// A response field holding a time in RFC 3339 (by its name, as the pages name them).
fn is_time(f: &Field) -> bool {
    let n = f.name.to_ascii_lowercase();
    f.ty == Type::String && (n.ends_with("time") || n.ends_with("_at"))
}

/// A time allowed after the sandbox's clock: an expiry, an end of validity, a deadline.
fn is_future_time(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["expire", "deadline", "invalid", "end_time", "over_time"]
        .iter()
        .any(|w| n.contains(w))
}

/// A time no earlier than the object's creation: a change of state after it.
fn is_done_time(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "success", "finish", "complete", "close", "update", "modify", "cancel", "paid", "pay_time",
        "confirm", "refund", "return", "use_time", "terminat",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// What [`assert_coherent`] saw, for the summary.
#[derive(Default)]
struct Coherence {
    times: usize,
    counts: usize,
    enumerated: usize,
}

/// The answer's values coherent with each other and with the sandbox's clock (between `t0`
/// and `t1`, the call's start and end): no value its field's label, enumerated values
/// documented, times RFC 3339 in Beijing time near the clock and in order (creation before a
/// change of state, a start before its end, an expiry after creation), counts equal to the
/// items listed.
fn assert_coherent(
    fields: &[Field],
    obj: &Map<String, Value>,
    at: &str,
    (t0, t1): (i64, i64),
    seen: &mut Coherence,
) {
    let time_of = |name: &str| {
        obj.get(name)
            .and_then(Value::as_str)
            .and_then(beijing_seconds)
    };
    for f in fields.iter().filter(|f| !f.name.contains('$')) {
        let Some(v) = obj.get(&f.name) else { continue };
        let here = format!("{at}/{}", f.name);
        if let (Some(s), false, None) = (v.as_str(), f.label.is_empty(), &f.encrypted) {
            assert_ne!(s, f.label, "{here}: the field's label as its value");
        }
        // (a page typing as a number a field it enumerates as words is left aside)
        let typed = match f.ty {
            Type::Integer | Type::Number => f.enumeration.iter().any(|e| e.parse::<f64>().is_ok()),
            _ => true,
        };
        if !f.enumeration.is_empty() && f.encrypted.is_none() && typed {
            seen.enumerated += 1;
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if !v.is_array() && !v.is_object() {
                assert!(
                    f.enumeration.contains(&text),
                    "{here}: {text} not in {:?}",
                    f.enumeration
                );
            }
        }
        if is_time(f) && f.encrypted.is_none() {
            let s = v.as_str().unwrap();
            let t = beijing_seconds(s).unwrap_or_else(|| panic!("{here}: {s} is no RFC 3339 time"));
            seen.times += 1;
            if is_future_time(&f.name) {
                assert!(t <= t1 + 400 * 86_400, "{here}: {s} over a year ahead");
                if let Some(c) = time_of("create_time") {
                    assert!(t > c, "{here}: {s} not after create_time");
                }
            } else {
                assert!(
                    (t0 - 86_400..=t1).contains(&t),
                    "{here}: {s} not within a day before the sandbox's clock ({t0})"
                );
            }
            if is_done_time(&f.name) {
                for c in ["create_time", "accept_time"] {
                    if let Some(c) = time_of(c) {
                        assert!(c <= t, "{here}: {s} before {c}");
                    }
                }
            }
            for (b, e) in [("begin", "end"), ("start", "end")] {
                if f.name.contains(e) {
                    if let Some(bt) = time_of(&f.name.replacen(e, b, 1)) {
                        assert!(bt <= t, "{here}: {s} before its {b}");
                    }
                }
            }
        }
        match v {
            Value::Object(m) => assert_coherent(&f.children, m, &here, (t0, t1), seen),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Object(m) = item {
                        assert_coherent(&f.children, m, &format!("{here}/{i}"), (t0, t1), seen);
                    }
                }
            }
            _ => {}
        }
    }
    // counts: `total_count` (and `count` beside it or `offset`) and the one list they count
    let has = |n: &str| fields.iter().any(|f| f.name == n);
    if !(has("total_count") || (has("count") && has("offset"))) {
        return;
    }
    let lists: Vec<&Field> = fields
        .iter()
        .filter(|f| {
            matches!(
                f.ty,
                Type::ObjectArray | Type::StringArray | Type::IntegerArray | Type::NumberArray
            )
        })
        .collect();
    let len = |f: &Field| {
        obj.get(&f.name)
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as i64
    };
    let offset = obj.get("offset").and_then(Value::as_i64).unwrap_or(0);
    for (name, expected) in [
        ("count", lists.first().map(|l| len(l))),
        ("total_count", lists.first().map(|l| offset + len(l))),
    ] {
        let (Some(n), [_], Some(expected)) =
            (obj.get(name).and_then(Value::as_i64), &lists[..], expected)
        else {
            continue;
        };
        seen.counts += 1;
        assert_eq!(n, expected, "{at}/{name} beside {} items", lists[0].name);
    }
}

/// The answer without its times and encrypted fields (ciphertexts are random): what the same
/// request must answer alike.
fn timeless(fields: &[Field], v: &mut Value) {
    match v {
        Value::Object(m) => {
            for f in fields {
                if is_time(f) || f.encrypted.is_some() {
                    m.remove(&f.name);
                } else if let Some(c) = m.get_mut(&f.name) {
                    timeless(&f.children, c);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| timeless(fields, i)),
        _ => {}
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn beijing_seconds_reads_rfc3339() {
    assert_eq!(beijing_seconds("1970-01-01T08:00:00+08:00"), Some(0));
    assert_eq!(
        beijing_seconds("2015-05-20T13:29:35+08:00"),
        Some(1_432_099_775)
    );
    assert_eq!(
        beijing_seconds("2000-02-29T08:00:00+08:00"),
        Some(951_782_400)
    );
    assert_eq!(
        beijing_seconds("2015-05-20T13:29:35.120+08:00"),
        Some(1_432_099_775)
    );
    assert_eq!(beijing_seconds("单据创建时间"), None);
}

/// Every documented APIv3 answer (sampled args, as above), called twice: coherent
/// ([`assert_coherent`]) and the same but for its times.
#[test]
fn every_documented_apiv3_answer_is_coherent_and_stable() {
    let emu = start();
    let c = client(&emu);
    let mut seen = Coherence::default();
    let mut answers = 0;
    for op in catalog::operations() {
        if op.protocol != catalog::Protocol::V3
            || op.unsigned
            || op.response.is_empty()
            || op.request.iter().any(|f| f.name == "body")
        {
            continue;
        }
        let mut got = Vec::new();
        for _ in 0..2 {
            let t0 = now();
            let Ok(r) = sampled_call(&c, op) else { break };
            let t1 = now();
            let v: Value = r.json().unwrap();
            assert_coherent(
                &op.response,
                v.as_object().unwrap(),
                op.template,
                (t0, t1),
                &mut seen,
            );
            got.push(v);
        }
        if let [a, b] = &mut got[..] {
            timeless(&op.response, a);
            timeless(&op.response, b);
            assert_eq!(
                a, b,
                "{} {}: the same request, other values",
                op.method, op.template
            );
            answers += 1;
        }
    }
    eprintln!(
        "coherent answers: {answers}; times checked {}, counts {}, enumerated values {}",
        seen.times, seen.counts, seen.enumerated
    );
    assert!(answers > 800, "{answers}");
    assert!(
        seen.times > 300 && seen.counts > 10,
        "{} {}",
        seen.times,
        seen.counts
    );
}

/// A state follows the object, not the request: the transfer bill a merchant created is in
/// the state its query answers, whatever else the requests carry, and always one of the
/// documented states (the creation's page enumerates none: the query's are taken).
#[test]
fn the_same_object_is_in_the_same_state_whichever_request_asks() {
    let emu = start();
    let c = client(&emu);
    let documented = catalog::find(
        "GET",
        "v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}",
    )
    .unwrap()
    .response
    .iter()
    .find(|f| f.name == "state")
    .unwrap()
    .enumeration
    .clone();
    let mut states = std::collections::BTreeSet::new();
    for i in 0..12 {
        let no = format!("SANDBOXBILL{i:04}");
        let (_, created) = call(
            &c,
            "POST",
            "v3/ecommerce/mch-transfer/transfer-bills",
            json!({"json": {"sub_mchid": "1900000109", "appid": "wxf636efh567hg4356",
                "out_bill_no": no, "transfer_scene_id": format!("100{i}"), "openid": "oSANDBOX",
                "transfer_amount": 100 + i, "transfer_remark": "sandbox"},
                "headers": {"Wechatpay-Serial": emu.platform_serial()}}),
        );
        let state = created["state"].as_str().unwrap().to_string();
        assert!(documented.contains(&state), "{state} not in {documented:?}");
        for sub in ["1900000109", "1900000110"] {
            let (_, queried) = call(
                &c,
                "GET",
                "v3/ecommerce/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}",
                json!({"out_bill_no": no, "query": {"sub_mchid": sub}}),
            );
            assert_eq!(queried["state"], state.as_str(), "{no} queried with {sub}");
        }
        states.insert(state);
    }
    // and other bills are in other states
    assert!(states.len() > 1, "{states:?}");
}
