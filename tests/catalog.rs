//! The operation catalogue against the documented calls (`../shared/conformance/corpus.dev.jsonl`,
//! else the sample of it in `tests/fixtures/`), mutations of them, and the seed pages
//! (`../shared/seeds/`, skipped without them).

#[path = "support/seeds.rs"]
mod seeds;
#[path = "support/shared.rs"]
mod shared;

use seeds::{flat, markdown_tables};
use serde_json::{json, Map, Value};
use wechatpay_chain::catalog::{self, Field, FindingKind, Operation, Type};

struct Sample {
    id: String,
    method: String,
    template: String,
    args: Value,
}

/// The documented calls, and whether they are the whole corpus.
fn corpus() -> (Vec<Sample>, bool) {
    let corpus = shared::corpus();
    (
        corpus
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("corpus line");
                let mut args = v["args"].clone();
                // Guzzle's `sink`: the command line takes it out of the args (it writes the
                // answer there), the library never sees it
                if let Some(m) = args.as_object_mut() {
                    m.remove("sink");
                }
                Sample {
                    id: v["id"].as_str().unwrap().to_string(),
                    method: v["method"].as_str().unwrap().to_string(),
                    template: v["template"].as_str().unwrap().to_string(),
                    args,
                }
            })
            .collect(),
        corpus.full,
    )
}

/// Documented samples whose own args contradict their page: (sample id, field, why).
const CONTRADICTIONS: &[(&str, &str, &str)] = &[
    (
        "openapi/v2/cgi-bin/mch/customs/customdeclareorder.md#0",
        "/xml/customs",
        "the sample sends SHANGHAI; the page enumerates SHANGHAI_ZS and others",
    ),
    (
        "openapi/v2/cgi-bin/mch/newcustoms/customdeclareredeclare.md#0",
        "/xml/customs",
        "the sample sends SHANGHAI; the page enumerates SHANGHAI_ZS and others",
    ),
    (
        "openapi/v3/payscore/payafter-orders/{out_order_no}/complete.md#0",
        "/json/finish_type",
        "the sample sends 0; the page enumerates 1 and 2",
    ),
];

fn op_of(s: &Sample) -> &'static Operation {
    catalog::find(&s.method, &s.template).unwrap_or_else(|| {
        panic!(
            "{}: {} {} is not in the catalogue",
            s.id, s.method, s.template
        )
    })
}

#[test]
fn every_documented_call_validates_clean_but_the_listed_contradictions() {
    let (samples, full) = corpus();
    let mut failing = Vec::new();
    for s in &samples {
        let op = op_of(s);
        assert_eq!(op.template, s.template, "{}", s.id);
        let findings = op.validate(&s.args);
        if findings.is_empty() {
            continue;
        }
        let known: Vec<&str> = CONTRADICTIONS
            .iter()
            .filter(|(id, _, _)| *id == s.id)
            .map(|(_, p, _)| *p)
            .collect();
        let found: Vec<&str> = findings.iter().map(|f| f.pointer.as_str()).collect();
        assert_eq!(
            found,
            known,
            "{}: {}",
            s.id,
            findings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
        for f in &findings {
            eprintln!("contradiction {}: {f}", s.id);
        }
        failing.push(s.id.as_str());
    }
    // (the sample carries two of them)
    let listed = CONTRADICTIONS
        .iter()
        .filter(|(id, _, _)| full || samples.iter().any(|s| s.id == *id));
    assert!(listed.clone().count() >= 2);
    for (id, _, why) in listed {
        assert!(
            failing.contains(id),
            "{id} is listed ({why}) but validates clean"
        );
    }
    eprintln!(
        "{} of {} documented calls contradict their page",
        failing.len(),
        samples.len()
    );
    assert!(
        !full || failing.len() * 50 <= samples.len(),
        "more than 2 % contradict their page"
    );
}

/// Every documented field of `fields` present in `value`, depth first, with its JSON pointer
/// (the first item of a list stands for the list).
fn present<'a>(
    fields: &'a [Field],
    value: &Value,
    pointer: &str,
    out: &mut Vec<(String, &'a Field)>,
) {
    let Some(m) = value.as_object() else { return };
    for f in fields {
        if f.name.contains('$') {
            continue;
        }
        let Some(v) = m.get(&f.name) else { continue };
        let p = format!("{pointer}/{}", f.name.replace('~', "~0").replace('/', "~1"));
        out.push((p.clone(), f));
        match (f.ty, v) {
            (Type::Object, _) => present(&f.children, v, &p, out),
            (Type::ObjectArray, Value::Array(a)) if !a.is_empty() => {
                present(&f.children, &a[0], &format!("{p}/0"), out)
            }
            _ => {}
        }
    }
}

/// The body fields (under `json`, `xml`, `query`) and the placeholders a sample sends.
fn body_fields(op: &'static Operation, args: &Value) -> Vec<(String, &'static Field)> {
    let mut out = Vec::new();
    for f in &op.request {
        if matches!(f.name.as_str(), "json" | "xml" | "query") && args[&f.name].is_object() {
            out.push((format!("/{}", f.name), f));
            present(
                &f.children,
                &args[&f.name],
                &format!("/{}", f.name),
                &mut out,
            );
        }
    }
    out
}

fn pointer_mut<'v>(v: &'v mut Value, pointer: &str) -> (&'v mut Map<String, Value>, String) {
    let (parent, last) = pointer.rsplit_once('/').unwrap();
    let key = last.replace("~1", "/").replace("~0", "~");
    let parent = if parent.is_empty() {
        v
    } else {
        v.pointer_mut(parent).unwrap()
    };
    (parent.as_object_mut().unwrap(), key)
}

fn caught(op: &Operation, args: &Value, kind: FindingKind, pointer: &str, what: &str, id: &str) {
    let findings = op.validate(args);
    assert!(
        findings
            .iter()
            .any(|f| f.kind == kind && f.pointer == pointer && f.to_string().contains(pointer)),
        "{id}: {what} at {pointer} not caught as {kind:?}; findings: {:?}",
        findings.iter().map(ToString::to_string).collect::<Vec<_>>()
    );
}

#[test]
fn mutations_of_documented_calls_are_caught_by_field() {
    let (samples, _) = corpus();
    let mut counts = [0usize; 7];
    for s in &samples {
        let op = op_of(s);
        if !op.validate(&s.args).is_empty() {
            continue;
        }
        for (pointer, f) in body_fields(op, &s.args) {
            // drop a required field
            if f.required {
                let mut args = s.args.clone();
                let (parent, key) = pointer_mut(&mut args, &pointer);
                parent.remove(&key);
                caught(op, &args, FindingKind::Missing, &pointer, "dropped", &s.id);
                counts[0] += 1;
            }
            // change its type
            let wrong = match f.ty {
                Type::Any => None,
                Type::Object
                | Type::ObjectArray
                | Type::StringArray
                | Type::IntegerArray
                | Type::NumberArray => Some(json!(true)),
                _ => Some(json!({"not": "a scalar"})),
            };
            if let Some(wrong) = wrong {
                let mut args = s.args.clone();
                let (parent, key) = pointer_mut(&mut args, &pointer);
                parent.insert(key, wrong);
                caught(
                    op,
                    &args,
                    FindingKind::WrongType,
                    &pointer,
                    "retyped",
                    &s.id,
                );
                counts[1] += 1;
            }
            // a value outside the enumeration
            if !f.enumeration.is_empty()
                && matches!(f.ty, Type::String | Type::Integer | Type::Number)
            {
                let bad = if f.ty == Type::String {
                    json!("NOT_DOCUMENTED")
                } else {
                    json!(987654321)
                };
                let mut args = s.args.clone();
                let (parent, key) = pointer_mut(&mut args, &pointer);
                parent.insert(key, bad);
                caught(
                    op,
                    &args,
                    FindingKind::NotInEnumeration,
                    &pointer,
                    "enumeration",
                    &s.id,
                );
                counts[2] += 1;
            }
            // an undocumented field in a documented object
            if matches!(f.ty, Type::Object) && !f.children.is_empty() {
                let mut args = s.args.clone();
                if let Some(obj) = args.pointer_mut(&pointer).and_then(Value::as_object_mut) {
                    obj.insert("undocumented_field".into(), json!(1));
                    let p = format!("{pointer}/undocumented_field");
                    caught(op, &args, FindingKind::Unknown, &p, "undocumented", &s.id);
                    counts[3] += 1;
                }
            }
        }
        // a placeholder the page lists, dropped from the args
        for ph in op.placeholders() {
            let listed = op.request.iter().any(|f| f.name == ph);
            if listed && s.args.get(ph).is_some_and(|v| !v.is_null()) {
                let mut args = s.args.clone();
                args.as_object_mut().unwrap().remove(ph);
                let p = format!("/{ph}");
                caught(
                    op,
                    &args,
                    FindingKind::Missing,
                    &p,
                    "placeholder dropped",
                    &s.id,
                );
                counts[5] += 1;
            }
        }
        // every member of a group of alternatives dropped
        let mut objects = Vec::new();
        grouped(&op.request, "", &mut objects);
        for (pointer, obj) in objects {
            for g in &obj.alternatives {
                let mut args = s.args.clone();
                let Some(o) = args.pointer_mut(&pointer).and_then(Value::as_object_mut) else {
                    continue;
                };
                for m in &g.members {
                    o.remove(m);
                }
                caught(
                    op,
                    &args,
                    FindingKind::OneOf,
                    &pointer,
                    "group dropped",
                    &s.id,
                );
                counts[6] += 1;
            }
        }
        // the forgotten `json` wrapper
        let json_doc = op.request.iter().find(|f| f.name == "json");
        if let (Some(doc), Some(body)) = (json_doc, s.args.get("json").and_then(Value::as_object)) {
            if doc.required && !body.is_empty() {
                let mut args = s.args.clone();
                let m = args.as_object_mut().unwrap();
                m.remove("json");
                for (k, v) in body {
                    if !m.contains_key(k) {
                        m.insert(k.clone(), v.clone());
                    }
                }
                caught(
                    op,
                    &args,
                    FindingKind::BodyMissing,
                    "/json",
                    "unwrapped",
                    &s.id,
                );
                counts[4] += 1;
            }
        }
    }
    eprintln!(
        "mutations caught: {} dropped, {} retyped, {} enumerations, {} undocumented, {} unwrapped, {} placeholders dropped, {} groups of alternatives dropped",
        counts[0], counts[1], counts[2], counts[3], counts[4], counts[5], counts[6]
    );
    assert!(counts.iter().all(|n| *n > 0), "{counts:?}");
}

#[test]
fn misspelled_paths_are_unknown_and_suggest_the_documented_template() {
    let (samples, _) = corpus();
    let mut tried = 0;
    for s in &samples {
        let segs: Vec<&str> = s.template.split('/').collect();
        // drop the middle letter of the longest literal segment
        let Some((i, seg)) = segs
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.starts_with('{') && g.len() >= 4)
            .max_by_key(|(_, g)| g.len())
        else {
            continue;
        };
        let mut typo = seg.to_string();
        typo.remove(seg.len() / 2);
        let mut wrong = segs.clone();
        wrong[i] = &typo;
        let wrong = wrong.join("/");
        if catalog::find(&s.method, &wrong).is_some() {
            continue; // the typo is itself documented
        }
        let near = catalog::suggest(&s.method, &wrong);
        assert!(
            near.iter().any(|o| o.template == s.template),
            "{}: {wrong} suggests {:?}",
            s.id,
            near.iter().map(|o| o.template).collect::<Vec<_>>()
        );
        tried += 1;
    }
    assert!(tried > samples.len() / 2, "{tried}");
    assert!(catalog::find("POST", "v3/pay/transaction/native").is_none());
    assert_eq!(
        catalog::suggest("POST", "v3/pay/transaction/native")[0].template,
        "v3/pay/transactions/native"
    );
    assert!(catalog::suggest("GET", "something/else/entirely/unrelated").is_empty());
    // hostile input stays cheap and finds nothing
    let long = "v3/".repeat(10_000);
    assert!(catalog::suggest("GET", &long).is_empty());
    assert!(catalog::find("GET", &long).is_none());
}

#[test]
fn concrete_paths_find_their_template_and_literals_win() {
    let a = catalog::find(
        "GET",
        "v3/pay/transactions/out-trade-no/1217752501201407033233368018",
    )
    .unwrap();
    assert_eq!(
        a.template,
        "v3/pay/transactions/out-trade-no/{out_trade_no}"
    );
    let b = catalog::find("get", "/v3/pay/transactions/id/4200000001?mchid=1230000109").unwrap();
    assert_eq!(b.template, "v3/pay/transactions/id/{transaction_id}");
    assert!(catalog::find("PUT", "v3/pay/transactions/id/1").is_none());
    assert!(catalog::find("FETCH", "v3/pay/transactions/id/1").is_none());
    // templates of the same shape: the path names which one
    let q = catalog::find("POST", "v2/secapi/mch/queryInstitutionsub").unwrap();
    assert_eq!(q.template, "v2/secapi/mch/{queryinstitutionsub}");
    let m = catalog::find("POST", "v2/secapi/mch/{modifyinstitutionsub}").unwrap();
    assert_eq!(m.template, "v2/secapi/mch/{modifyinstitutionsub}");
    // every template finds itself
    for op in catalog::operations() {
        let found = catalog::find(op.method, op.template).unwrap();
        assert!(std::ptr::eq(found, op), "{} {}", op.method, op.template);
    }
}

#[test]
fn a_concrete_path_fills_its_placeholders() {
    let op = catalog::find("PATCH", "v3/discount-card/orders/{out_order_no}").unwrap();
    let args = json!({"json": {}});
    let missing = op.validate(&args);
    assert!(missing
        .iter()
        .any(|f| f.kind == FindingKind::Missing && f.pointer == "/out_order_no"));
    assert!(op
        .validate_at("v3/discount-card/orders/X1", &args)
        .is_empty());
}

#[test]
fn top_level_mistakes_name_their_field() {
    let op = catalog::find("PATCH", "v3/discount-card/orders/{out_order_no}").unwrap();
    let f = op.validate(&json!({"out_order_no": "1", "json": {}, "out_order_n0": "1"}));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].kind, FindingKind::Unknown);
    assert!(f[0].to_string().contains("/out_order_n0"), "{}", f[0]);
    assert!(f[0].to_string().contains("out_order_no"), "{}", f[0]);
    let f = op.validate(&json!({"out_order_no": {"a": 1}, "json": {}}));
    assert_eq!(f[0].kind, FindingKind::WrongType);
    assert_eq!(f[0].pointer, "/out_order_no");
    let f = op.validate(&json!("not an object"));
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::WrongType, "")
    );
    // the client's own options are not args of the page
    assert!(op
        .validate(&json!({"out_order_no": "1", "json": {}, "timeout": 3, "headers": {"X-A": "b"}, "validate": false, "retry": false}))
        .is_empty());
}

#[test]
fn apiv2_xml_takes_text_for_numbers_and_the_client_managed_fields() {
    let op = catalog::find("POST", "v2/secapi/pay/refund").unwrap();
    assert!(op.security);
    let xml = json!({"appid": "wx1", "mch_id": "1", "transaction_id": "1", "out_trade_no": "1",
        "out_refund_no": "1", "total_fee": "100", "refund_fee": 1, "nonce_str": "n", "sign": "s"});
    assert!(op
        .validate(&json!({"security": true, "xml": xml}))
        .is_empty());
    let mut bad = xml.clone();
    bad["total_fee"] = json!("1.5");
    let f = op.validate(&json!({"security": true, "xml": bad}));
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::WrongType, "/xml/total_fee")
    );
    let f = op.validate(&json!({"xml": xml}));
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::Missing, "/security")
    );
    let f = op.validate(&json!({"security": false, "xml": xml}));
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::WrongType, "/security")
    );
    // the forgotten `xml` wrapper
    let mut unwrapped = xml.as_object().unwrap().clone();
    unwrapped.remove("nonce_str");
    unwrapped.remove("sign");
    unwrapped.insert("security".into(), json!(true));
    let f = op.validate(&Value::Object(unwrapped));
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::BodyMissing, "/xml")
    );
    assert!(f[0].to_string().contains("out_refund_no"), "{}", f[0]);
}

#[test]
fn the_unsigned_flag_agrees_with_the_client() {
    use wechatpay_chain::{client_json, client_xml};
    let mut unsigned = 0;
    for op in catalog::operations() {
        let path: Vec<&str> = op
            .template
            .split('/')
            .map(|s| if s.starts_with('{') { "x" } else { s })
            .collect();
        let path = path.join("/");
        let client = match path.strip_prefix("v2") {
            Some(p) => client_xml::is_unsigned(p),
            None => client_json::is_unsigned(&format!("/{path}")),
        };
        assert_eq!(op.unsigned, client, "{} {}", op.method, op.template);
        unsigned += usize::from(op.unsigned);
    }
    assert!(unsigned > 5, "{unsigned}");
}

#[test]
fn search_and_events() {
    let found: Vec<_> = catalog::search(&["discount-card", "orders"]).collect();
    assert!(found
        .iter()
        .any(|o| o.method == "PATCH" && o.template == "v3/discount-card/orders/{out_order_no}"));
    assert!(found.iter().all(|o| o.template.contains("discount-card")));
    assert!(catalog::search(&["更新先享卡订单"]).any(|o| o.method == "PATCH"));
    assert!(catalog::operations().count() > 1000);
    // the summaries list the same operations without decoding them
    let summaries: Vec<_> = catalog::summaries(&["discount-card", "orders"]).collect();
    assert_eq!(summaries.len(), found.len());
    for (s, op) in summaries.iter().zip(&found) {
        assert_eq!(
            (s.method, s.template, s.label),
            (op.method, op.template, op.label.as_str())
        );
        assert!(std::ptr::eq(s.operation().unwrap(), *op));
    }

    let e = catalog::event("TRANSACTION.SUCCESS").unwrap();
    assert_eq!(e.encrypted.as_deref(), Some("by-aes-gcm"));
    assert!(e
        .resource()
        .iter()
        .any(|f| f.name == "transaction_id" && f.required));
    let r = catalog::event("refund-processed").unwrap();
    assert_eq!(r.encrypted.as_deref(), Some("by-aes-ecb"));
    let status = r
        .resource()
        .iter()
        .find(|f| f.name == "refund_status")
        .unwrap();
    assert_eq!(status.enumeration, ["SUCCESS", "CHANGE", "REFUNDCLOSE"]);
    assert!(catalog::events().count() > 100);
    assert!(catalog::event("NO.SUCH.EVENT").is_none());
}

/// The rows of the rendered tables of a seed page: each row is its name and type run together.
fn rendered_tables(text: &str) -> Vec<Vec<String>> {
    let mut tables = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for line in text.lines() {
        if line == "请求参数类型描述" || line == "返回字典类型描述" {
            cur = Some(Vec::new());
            continue;
        }
        if let Some(rows) = &mut cur {
            if line.is_empty() || line == "php" {
                tables.push(cur.take().unwrap());
            } else if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
                rows.push(line.to_string());
            } // else a row across the table (no content): no fields
        }
    }
    tables.extend(cur);
    tables.retain(|t| !t.is_empty());
    tables
}

#[test]
fn the_seed_operations_have_the_fields_their_pages_list() {
    let seeds: &[(&str, &[(&str, &str)])] = &[
        (
            "000_0d943fc408932b11.txt",
            &[(
                "POST",
                "v3/discount-card/cards/{out_card_code}/add-user-records",
            )],
        ),
        (
            "001_e0bde6101d1d58f6.txt",
            &[(
                "POST",
                "v3/discount-card/cards/{out_card_code}/add-user-records",
            )],
        ),
        (
            "002_8d98f703eacacc47.txt",
            &[
                ("PATCH", "v3/discount-card/orders/{out_order_no}"),
                ("GET", "v3/discount-card/orders/{out_order_no}"),
            ],
        ),
        (
            "003_93f3e0da8ec9e051.txt",
            &[("POST", "v3/brand/partner/card-member/user-points/sync")],
        ),
        (
            "004_91420d6beb21f0ef.txt",
            &[
                ("PATCH", "v3/discount-card/orders/{out_order_no}"),
                ("GET", "v3/discount-card/orders/{out_order_no}"),
            ],
        ),
    ];
    for (file, ops) in seeds {
        let Some(text) = shared::seed(file, "the seed operations against their pages") else {
            return;
        };
        let ops: Vec<&Operation> = ops
            .iter()
            .map(|(m, t)| catalog::find(m, t).unwrap())
            .collect();
        // a table per request and per response, in the page's order
        let expected: Vec<Vec<(usize, String, String, bool)>> = ops
            .iter()
            .flat_map(|op| [&op.request, &op.response])
            .map(|f| {
                let mut out = Vec::new();
                flat(f, 0, &mut out);
                out
            })
            .collect();
        let md = markdown_tables(&text);
        if !md.is_empty() {
            let want: Vec<_> = expected.iter().filter(|t| !t.is_empty()).collect();
            let got: Vec<_> = md.iter().filter(|t| !t.is_empty()).collect();
            assert_eq!(got, want, "{file}");
            continue;
        }
        let rendered = rendered_tables(&text);
        assert!(!rendered.is_empty(), "{file} has no table");
        let want: Vec<_> = expected.iter().filter(|t| !t.is_empty()).collect();
        assert_eq!(rendered.len(), want.len(), "{file}: tables");
        for (rows, fields) in rendered.iter().zip(want) {
            assert_eq!(rows.len(), fields.len(), "{file}: {rows:?}");
            for (row, (_, name, ty, _)) in rows.iter().zip(fields) {
                assert!(
                    row.starts_with(&format!("{name}{ty}")),
                    "{file}: {row} is not {name} {ty}"
                );
            }
        }
    }
    // the discount-card PATCH, as its page lists it
    let op = catalog::find("PATCH", "v3/discount-card/orders/{out_order_no}").unwrap();
    let json = op.request.iter().find(|f| f.name == "json").unwrap();
    let rewards = json.children.iter().find(|f| f.name == "rewards").unwrap();
    assert_eq!(rewards.ty, Type::ObjectArray);
    assert!(!rewards.required);
    let names: Vec<(&str, Type, bool)> = rewards
        .children
        .iter()
        .map(|f| (f.name.as_str(), f.ty, f.required))
        .collect();
    assert_eq!(
        names,
        [
            ("reward_serial_no", Type::String, true),
            ("reward_id", Type::Integer, true),
            ("description", Type::String, true),
            ("reward_type", Type::String, true),
            ("count", Type::Integer, true),
            ("amount", Type::Integer, true),
            ("reward_time", Type::String, true),
            ("remark", Type::String, false),
        ]
    );
    assert_eq!(op.placeholders(), ["out_order_no"]);
    assert_eq!(op.label, "更新先享卡订单");
}

/// A value of `f`'s documented type holding every required field (and the first member of
/// each group of alternatives): calls built from the catalogue alone.
fn minimal(f: &Field) -> Value {
    let scalar = |ty: Type| match (ty, f.enumeration.first()) {
        (Type::String | Type::StringArray | Type::Any, Some(e)) => json!(e),
        (Type::Integer | Type::IntegerArray | Type::Number | Type::NumberArray, Some(e)) => {
            serde_json::from_str(e).unwrap_or(json!(e))
        }
        (Type::Integer | Type::IntegerArray | Type::Number | Type::NumberArray, None) => json!(1),
        (Type::Boolean | Type::True, _) => json!(true),
        _ => json!("x"),
    };
    match f.ty {
        Type::Object => Value::Object(minimal_object(f)),
        Type::ObjectArray => json!([Value::Object(minimal_object(f))]),
        Type::StringArray | Type::IntegerArray | Type::NumberArray => json!([scalar(f.ty)]),
        ty => scalar(ty),
    }
}

fn minimal_object(f: &Field) -> Map<String, Value> {
    let mut m = Map::new();
    for c in &f.children {
        let first_of_group = f.alternatives.iter().any(|g| g.members[0] == c.name);
        if (c.required || first_of_group) && !c.name.contains('$') {
            m.insert(c.name.clone(), minimal(c));
        }
    }
    m
}

fn minimal_args(op: &Operation) -> Value {
    let mut m = Map::new();
    let ph = op.placeholders();
    for f in &op.request {
        if ph.contains(&f.name.as_str()) {
            m.insert(f.name.clone(), json!("x"));
        } else if f.required {
            m.insert(f.name.clone(), minimal(f));
        }
    }
    Value::Object(m)
}

/// Every object of the request holding groups of alternatives: (pointer into the args, field).
fn grouped<'f>(fields: &'f [Field], at: &str, out: &mut Vec<(String, &'f Field)>) {
    for f in fields {
        let here = match f.ty {
            Type::ObjectArray => format!("{at}/{}/0", f.name),
            _ => format!("{at}/{}", f.name),
        };
        if !f.alternatives.is_empty() {
            out.push((here.clone(), f));
        }
        grouped(&f.children, &here, out);
    }
}

fn shown(findings: &[catalog::Finding]) -> String {
    findings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn every_group_of_alternatives_takes_each_member_alone_and_refuses_none() {
    let mut groups = 0;
    for op in catalog::operations() {
        let mut objects = Vec::new();
        grouped(&op.request, "", &mut objects);
        for (pointer, obj) in objects {
            let base = minimal_args(op);
            let f = op.validate(&base);
            assert!(f.is_empty(), "{} {}: {}", op.method, op.template, shown(&f));
            for g in &obj.alternatives {
                groups += 1;
                let without = |args: &mut Value| {
                    let o = args.pointer_mut(&pointer).unwrap().as_object_mut().unwrap();
                    for m in &g.members {
                        o.remove(m);
                    }
                };
                let doc = |name: &str| obj.children.iter().find(|c| c.name == name).unwrap();
                for m in &g.members {
                    // each member alone passes, and is not required alone
                    assert!(
                        !doc(m).required,
                        "{} {}: {m} required",
                        op.method,
                        op.template
                    );
                    let mut args = base.clone();
                    without(&mut args);
                    let o = args.pointer_mut(&pointer).unwrap().as_object_mut().unwrap();
                    o.insert(m.clone(), minimal(doc(m)));
                    let f = op.validate(&args);
                    assert!(
                        f.is_empty(),
                        "{} {} with {m} alone: {}",
                        op.method,
                        op.template,
                        shown(&f)
                    );
                }
                // none: one finding naming the group, at its object
                let mut args = base.clone();
                without(&mut args);
                let f = op.validate(&args);
                assert_eq!(f.len(), 1, "{} {}: {}", op.method, op.template, shown(&f));
                assert_eq!(
                    (f[0].kind, f[0].pointer.as_str()),
                    (FindingKind::OneOf, pointer.as_str())
                );
                let want = format!("one of {} required", g.members.join(", "));
                assert!(f[0].to_string().ends_with(&want), "{}", f[0]);
                // an empty string is no value
                let o = args.pointer_mut(&pointer).unwrap().as_object_mut().unwrap();
                o.insert(g.members[0].clone(), json!(""));
                assert_eq!(op.validate(&args).len(), 1, "{} {}", op.method, op.template);
                // two at once: fine for at least one, refused for exactly one
                let mut args = base.clone();
                let o = args.pointer_mut(&pointer).unwrap().as_object_mut().unwrap();
                for m in &g.members[..2] {
                    o.insert(m.clone(), minimal(doc(m)));
                }
                let f = op.validate(&args);
                if g.exclusive {
                    assert_eq!(f.len(), 1, "{} {}: {}", op.method, op.template, shown(&f));
                    assert_eq!(f[0].kind, FindingKind::OneOf);
                    assert!(f[0].to_string().contains("exactly one of"), "{}", f[0]);
                } else {
                    assert!(f.is_empty(), "{} {}: {}", op.method, op.template, shown(&f));
                }
            }
        }
    }
    assert!(groups >= 21, "{groups} groups");
}

/// The APIv2 calls merchants make every day, each with only the id they have: all refused
/// before the catalogue knew the alternatives (the pages mark every id required).
#[test]
fn everyday_apiv2_calls_pass_with_one_id() {
    const CALLS: &[(&str, &[&str])] = &[
        ("v2/pay/orderquery", &["transaction_id", "out_trade_no"]),
        (
            "v2/pay/refundquery",
            &[
                "transaction_id",
                "out_trade_no",
                "out_refund_no",
                "refund_id",
            ],
        ),
        (
            "v2/pay/refundqueryv2",
            &[
                "transaction_id",
                "out_trade_no",
                "out_refund_no",
                "refund_id",
            ],
        ),
        ("v2/secapi/pay/refund", &["transaction_id", "out_trade_no"]),
        (
            "v2/secapi/pay/refundv2",
            &["transaction_id", "out_trade_no"],
        ),
        ("v2/secapi/pay/reverse", &["transaction_id", "out_trade_no"]),
        ("v2/pay/facepayquery", &["transaction_id", "out_trade_no"]),
        (
            "v2/secapi/pay/facepayreverse",
            &["transaction_id", "out_trade_no"],
        ),
        ("v2/pay/paporderquery", &["transaction_id", "out_trade_no"]),
        (
            "v2/pay/partner/paporderquery",
            &["transaction_id", "out_trade_no"],
        ),
        ("v2/deposit/orderquery", &["transaction_id", "out_trade_no"]),
        ("v2/deposit/reverse", &["transaction_id", "out_trade_no"]),
        ("v2/deposit/consume", &["transaction_id", "out_trade_no"]),
        ("v2/deposit/refund", &["transaction_id", "out_trade_no"]),
        (
            "v2/deposit/refundquery",
            &[
                "transaction_id",
                "out_trade_no",
                "out_refund_no",
                "refund_id",
            ],
        ),
        ("v2/pay/closeorder", &["out_trade_no"]),
    ];
    let mut n = 0;
    for (template, ids) in CALLS {
        let op = catalog::find("POST", template).unwrap();
        for id in *ids {
            let mut args = minimal_args(op);
            let xml = args["xml"].as_object_mut().unwrap();
            for other in [
                "transaction_id",
                "out_trade_no",
                "out_refund_no",
                "refund_id",
            ] {
                xml.remove(other);
            }
            // the refund calls also name the refund they make
            let doc = op.request.iter().find(|f| f.name == "xml").unwrap();
            if doc
                .children
                .iter()
                .any(|f| f.name == "out_refund_no" && f.required)
            {
                xml.insert("out_refund_no".into(), json!("R1"));
            }
            xml.insert((*id).into(), json!("4200000001"));
            let f = op.validate(&args);
            assert!(
                f.is_empty(),
                "POST {template} with {id} only: {}",
                shown(&f)
            );
            n += 1;
        }
    }
    assert_eq!(n, 37);
}

/// The request field at `path` (names from the top: `json`, `amount`, `total`).
fn request_field(op: &'static Operation, path: &[&str]) -> &'static Field {
    let mut fields = &op.request;
    let mut found = None;
    for name in path {
        let f = fields
            .iter()
            .find(|f| f.name == *name)
            .unwrap_or_else(|| panic!("{} {}: no {name}", op.method, op.template));
        fields = &f.children;
        found = Some(f);
    }
    found.unwrap()
}

/// A number the page says is in fen is an integer (`detail_list.amount`: 单位分), and so is an
/// amount the page leaves without a unit (`total_amount`: 总金额): the platform's amounts are
/// integers in fen. A rate stays a number (`tax_rate`: 税率).
#[test]
fn amounts_in_fen_are_integers_where_the_page_says_so() {
    let op = catalog::find("POST", "v3/fund-app/brand-redpacket/brand-merchant-batches").unwrap();
    let amount = request_field(op, &["json", "detail_list", "amount"]);
    assert_eq!(amount.ty, Type::Integer);
    let total = request_field(op, &["json", "total_amount"]);
    assert_eq!(total.ty, Type::Integer);
    let fapiao = catalog::find("POST", "v3/new-tax-control-fapiao/fapiao-applications").unwrap();
    let rate = request_field(fapiao, &["json", "fapiao_information", "items", "tax_rate"]);
    assert_eq!(rate.ty, Type::Number);
    let mut args = minimal_args(op);
    assert!(
        op.validate(&args).is_empty(),
        "{}",
        shown(&op.validate(&args))
    );
    args["json"]["detail_list"][0]["amount"] = json!(1.5);
    let f = op.validate(&args);
    assert_eq!(f.len(), 1, "{}", shown(&f));
    assert_eq!(
        (f[0].kind, f[0].pointer.as_str()),
        (FindingKind::WrongType, "/json/detail_list/0/amount")
    );
    assert!(
        f[0].to_string().contains("integer, got number 1.5"),
        "{}",
        f[0]
    );
}

/// Corrections from the Go SDK's models (catalog/corrections.tsv): an int64 the page writes
/// `number` without a unit is an integer; a request enumeration takes both sources' values.
#[test]
fn corrections_from_the_sdk_models_hold() {
    let op = catalog::find(
        "POST",
        "v3/marketing/goods-subsidy-activity/qualification/lock",
    )
    .unwrap();
    let fee = request_field(op, &["json", "order_information", "total_fee"]);
    assert_eq!(fee.ty, Type::Integer);
    let op = catalog::find("POST", "v3/payroll-card/authentications/pre-order").unwrap();
    let kind = request_field(op, &["json", "authenticate_type"]);
    for v in ["SIGN_IN", "INSURANCE", "CONTRACT", "NORMAL"] {
        assert!(
            kind.enumeration.iter().any(|e| e == v),
            "{v}: {:?}",
            kind.enumeration
        );
    }
}
