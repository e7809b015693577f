//! Done means: every APIv3 call of the conformance corpus (`$SHARED/conformance/corpus.dev.jsonl`,
//! else `../shared` beside the repository) replayed through the `wechatpay` command line
//! against `wechatpay serve` gets a verified answer: a 2xx, or a signed business error of a
//! modelled flow that holds no such object (ORDER_NOT_EXIST …); at least 80 % of them a 2xx.
//! The calls go out as wechatpay-php sends them (`--lenient`), with `base_uri` pointed at the
//! sandbox and the sandbox's merchant id. Without the corpus (a bare clone), the sample of it
//! the repository carries is replayed the same way.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod served;
#[path = "../../../tests/support/shared.rs"]
mod shared;

use std::process::{Command, Stdio};

use common::with_mchid;
use serde_json::Value;
use served::Served;
use wechatpay_chain::catalog::{self, Field};
use wechatpay_chain::{PublicKey, Rsa};

/// What a merchant's code does before sending: each body field the operation's page marks
/// `by-rsa-pubkey` is encrypted with the platform public key (the samples hold placeholders,
/// which the platform refuses as "not ciphertext").
fn encrypt_sensitive(fields: &[Field], v: &mut Value, key: &PublicKey) {
    for f in fields {
        match v.get_mut(&f.name) {
            Some(Value::String(text)) if f.encrypted.as_deref() == Some("by-rsa-pubkey") => {
                *text = Rsa::encrypt(text.as_bytes(), key).unwrap();
            }
            Some(Value::Array(items)) => {
                for item in items {
                    encrypt_sensitive(&f.children, item, key);
                }
            }
            Some(inner @ Value::Object(_)) => encrypt_sensitive(&f.children, inner, key),
            _ => {}
        }
    }
}

/// The placeholders of `template` the args leave out or empty (`{empty}`, the docs' idiom for a
/// trailing `/`, aside): a documentation sample that omits one, which wechatpay-php (and
/// `--lenient`) expands to an empty segment, so the call reaches no operation.
fn doc_defect(template: &str, args: &Value) -> Vec<String> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|n| n.trim_start_matches('+'))
        .filter(|n| *n != "empty" && args.get(n).is_none_or(|v| v == ""))
        .map(str::to_string)
        .collect()
}

/// The business errors of the sandbox's modelled flows for objects it does not hold (an order,
/// a card, a bill, a platform certificate in public-key mode) or not in that state yet, or a
/// number the corpus reuses with other content (several samples share one `out_trade_no`).
const BUSINESS: [&str; 6] = [
    "RESOURCE_ALREADY_EXISTS",
    "ORDER_NOT_EXIST",
    "NOT_FOUND",
    "RESOURCE_NOT_EXISTS",
    "INVALID_REQUEST",
    "NO_STATEMENT_EXIST",
];

/// Samples that contradict their own page, refused as the platform refuses them: the transfer
/// sample reports scene 1000 with one `info_type` where the page's note asks for two.
const SAMPLE_CONTRADICTS_PAGE: [(&str, &str, &str); 1] = [(
    "post",
    "v3/fund-app/mch-transfer/transfer-bills",
    "/body/transfer_scene_report_infos",
)];

/// How one call ended.
enum Outcome {
    /// Exit 0: a verified 2xx, its body on stdout.
    Ok,
    /// Exit 6 on a signed (verified) business error: the stderr line.
    Business(String),
    /// A signed 404 for a sample that leaves a placeholder out (a defect of the docs' sample).
    DocDefect(String),
    /// Anything else: the exit status and stderr.
    Failed(String),
}

/// `HTTP 404 ORDER_NOT_EXIST: …` of the command's error line: the status and the code.
fn status_and_code(line: &str) -> Option<(u16, &str)> {
    let rest = &line[line.find("HTTP ")? + 5..];
    let (status, rest) = rest.split_once(' ')?;
    let code = rest.split(':').next()?;
    Some((status.parse().ok()?, code))
}

#[test]
fn every_apiv3_call_of_the_corpus_gets_a_verified_answer_from_serve() {
    let corpus = shared::corpus();
    let bin = env!("CARGO_BIN_EXE_wechatpay");
    let served = Served::start(bin);
    let env = &served.env;
    let base = env["WECHATPAY_BASE_URI"].clone();
    let mchid = env["WECHATPAY_MCHID"].clone();
    let key_id = env["WECHATPAY_PUBLIC_KEY_ID"].clone();
    let platform_key =
        Rsa::from_public(&format!("file://{}", env["WECHATPAY_PUBLIC_KEY"])).unwrap();
    let scratch = tempfile::tempdir().unwrap();

    let mut calls = Vec::new();
    for line in corpus.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["expect"]["protocol"] != "v3" {
            continue;
        }
        let method = row["method"].as_str().unwrap().to_ascii_lowercase();
        let template = row["template"].as_str().unwrap().to_string();
        let mut args = row["args"].clone();
        with_mchid(&mut args, &mchid);
        if let Some(op) = catalog::find(&method, &template) {
            // the request fields start at the args: `json`, `query`, the placeholders
            encrypt_sensitive(&op.request, &mut args, &platform_key);
        }
        let m = args.as_object_mut().unwrap();
        // the sandbox is the base URI of every call (a per-call endpoint included), and the
        // platform key a call names is the sandbox's
        if m.contains_key("base_uri") {
            m.insert("base_uri".into(), Value::from(base.as_str()));
        }
        if let Some(h) = m.get_mut("headers").and_then(Value::as_object_mut) {
            if h.contains_key("Wechatpay-Serial") {
                h.insert("Wechatpay-Serial".into(), Value::from(key_id.as_str()));
            }
        }
        calls.push((method, template, args));
    }
    // the whole corpus, or the sample's 17
    let least = if corpus.full { 400 } else { 17 };
    assert!(
        calls.len() >= least,
        "{} APIv3 calls in the corpus",
        calls.len()
    );

    let mut outcomes = Vec::new();
    for (i, (method, template, args)) in calls.iter().enumerate() {
        let file = scratch.path().join(format!("args-{i}.json"));
        std::fs::write(&file, serde_json::to_vec(args).unwrap()).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--lenient")
            .arg(method)
            .arg(template)
            .arg(format!("@{}", file.display()))
            .env("WECHATPAY_VALIDATE", "warn")
            .env("WECHATPAY_TIMEOUT", "20")
            // a sample may name a file to save the answer to (a bill): written here, not in the crate
            .current_dir(scratch.path())
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("").to_string();
        // the platform answered an error, signed (an unsigned one says "(unverified)")
        let signed_error = out.status.code() == Some(6) && !last.contains("(unverified)");
        let missing = doc_defect(template, args);
        let outcome = match (out.status.code(), status_and_code(&last)) {
            (Some(0), _) => Outcome::Ok,
            (_, Some((404, "NOT_FOUND")))
                if signed_error && !missing.is_empty() && last.contains("is empty") =>
            {
                Outcome::DocDefect(last)
            }
            (_, Some((400, "PARAM_ERROR")))
                if signed_error
                    && SAMPLE_CONTRADICTS_PAGE.iter().any(|(m, t, field)| {
                        m == method && t == template && last.contains(field)
                    }) =>
            {
                Outcome::DocDefect(last)
            }
            (_, Some((400..=409, code)))
                if signed_error
                    && BUSINESS.contains(&code)
                    && !last.contains("the emulator has no operation") =>
            {
                Outcome::Business(last)
            }
            (status, _) => Outcome::Failed(format!("exit {status:?}: {stderr}")),
        };
        outcomes.push((method.to_ascii_uppercase(), template.clone(), outcome));
    }

    let ok = outcomes
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::Ok))
        .count();
    let (mut business, mut defects, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (method, template, o) in &outcomes {
        let line = |text: &str| format!("{method} {template}: {text}");
        match o {
            Outcome::Ok => {}
            Outcome::Business(text) => business.push(line(text)),
            Outcome::DocDefect(text) => defects.push(line(text)),
            Outcome::Failed(text) => failed.push(line(text)),
        }
    }
    eprintln!(
        "corpus APIv3 calls through the command line: {}, 2xx: {ok}, signed business errors: {}, \
         signed refusals of samples missing a placeholder or contradicting their page: {}, other: {}",
        outcomes.len(),
        business.len(),
        defects.len(),
        failed.len()
    );
    for (what, list) in [
        ("business errors", &business),
        (
            "samples missing a placeholder or contradicting their page",
            &defects,
        ),
        ("NOT VERIFIED ANSWERS", &failed),
    ] {
        if !list.is_empty() {
            eprintln!("{what}:");
        }
        for l in list {
            eprintln!("  {l}");
        }
    }
    assert!(failed.is_empty(), "not a verified answer: {failed:#?}");
    assert!(
        ok * 100 >= outcomes.len() * 80,
        "{ok} of {} are 2xx",
        outcomes.len()
    );
}
