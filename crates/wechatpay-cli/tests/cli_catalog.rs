//! The catalogue in the command line: `describe`, `ops`, `events`, `completions`, and
//! `--validate` (strict by default) refusing or warning before anything is sent.

#[path = "../../../tests/common/mod.rs"]
mod common;
#[path = "../../../tests/support/seeds.rs"]
mod seeds;
#[path = "../../../tests/support/shared.rs"]
mod shared;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::{echo, Keys, Server, MCHID, SERIAL};
use seeds::{flat, markdown_tables};
use serde_json::{json, Value};
use wechatpay_chain::catalog::{self, Field};

fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd
}

fn run(args: &[&str]) -> Output {
    bare().args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A field row of `describe`: (depth, name, type, required), depth 0 for the top-level args.
type Row = (usize, String, String, bool);

/// The request and the response rows of `describe`'s output.
fn described(out: &str) -> (Vec<Row>, Vec<Row>) {
    let (mut req, mut res) = (Vec::new(), Vec::new());
    let mut cur: Option<&mut Vec<Row>> = None;
    for line in out.lines() {
        if line.starts_with("request:") {
            cur = Some(&mut req);
            continue;
        }
        if line.starts_with("response:") {
            cur = Some(&mut res);
            continue;
        }
        let Some(rows) = cur.as_deref_mut() else {
            continue;
        };
        if line.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start_matches(' ').len();
        let cells: Vec<&str> = line.trim_start().split("  ").collect();
        assert!(indent >= 2 && indent % 2 == 0, "{line}");
        assert!(cells[2] == "required" || cells[2] == "optional", "{line}");
        rows.push((
            indent / 2 - 1,
            cells[0].to_string(),
            cells[1].to_string(),
            cells[2] == "required",
        ));
    }
    (req, res)
}

fn catalogued(fields: &[Field]) -> Vec<Row> {
    let mut out = Vec::new();
    flat(fields, 0, &mut out);
    out
}

/// The markdown rows of a seed page's request and response tables (pages in the rendered
/// form give none): (depth, name, type, required).
fn seed_tables(text: &str) -> Vec<Vec<Row>> {
    let mut tables = markdown_tables(text);
    tables.retain(|t| !t.is_empty());
    tables
}

#[test]
fn describe_prints_the_seed_operations_fields_as_their_pages_list_them() {
    let ops = [
        ("post", "v3/discount-card/cards"),
        (
            "post",
            "v3/discount-card/cards/{out_card_code}/add-user-records",
        ),
        ("patch", "v3/discount-card/orders/{out_order_no}"),
        ("get", "v3/discount-card/orders/{out_order_no}"),
        ("post", "v3/brand/partner/card-member/user-points/sync"),
    ];
    let mut printed = Vec::new();
    for (m, t) in ops {
        let op = catalog::find(m, t).unwrap();
        let out = stdout_of(&["describe", m, t]);
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            format!("{} {}  {}", op.method, op.template, op.label)
        );
        let ph = op.placeholders();
        let want = match ph.is_empty() {
            true => "placeholders: none".to_string(),
            false => format!("placeholders: {}", ph.join(", ")),
        };
        assert!(out.lines().any(|l| l == want), "{out}");
        let (req, res) = described(&out);
        assert_eq!(req, catalogued(&op.request), "{m} {t} request");
        assert_eq!(res, catalogued(&op.response), "{m} {t} response");
        assert!(!req.is_empty(), "{out}");
        if res.is_empty() {
            assert!(
                out.lines().any(|l| l == "response: none documented"),
                "{out}"
            );
        }
        printed.push((req, res));
    }
    // enumerations and encryption are shown on the field's line
    let out = stdout_of(&["describe", "post", "v3/pay/transactions/native"]);
    let op = catalog::find("post", "v3/pay/transactions/native").unwrap();
    let (mut any_enum, mut any_encrypted) = (false, false);
    let mut stack = vec![&op.request, &op.response];
    while let Some(fields) = stack.pop() {
        for f in fields {
            if !f.enumeration.is_empty() {
                any_enum = true;
                let shown = format!("one of: {}", f.enumeration.join(" | "));
                assert!(
                    out.lines()
                        .any(|l| l.trim_start().starts_with(&format!("{}  ", f.name))
                            && l.contains(&shown)),
                    "{} {shown}: {out}",
                    f.name
                );
            }
            if let Some(how) = &f.encrypted {
                any_encrypted = true;
                let shown = format!("encrypted: {how}");
                assert!(
                    out.lines()
                        .any(|l| l.trim_start().starts_with(&format!("{}  ", f.name))
                            && l.ends_with(&shown)),
                    "{} {shown}: {out}",
                    f.name
                );
            }
            stack.push(&f.children);
        }
    }
    assert!(any_enum && any_encrypted, "{out}");

    // the seed pages' own tables, row by row: name, type, required, nesting
    let seeds: [(&str, &[usize]); 5] = [
        ("000_0d943fc408932b11.txt", &[1]),
        ("001_e0bde6101d1d58f6.txt", &[1]),
        ("002_8d98f703eacacc47.txt", &[2, 3]),
        ("003_93f3e0da8ec9e051.txt", &[4]),
        ("004_91420d6beb21f0ef.txt", &[2, 3]),
    ];
    let pages: Option<Vec<String>> = seeds
        .iter()
        .map(|(file, _)| shared::seed(file, "describe against the seed pages' tables"))
        .collect();
    let mut compared = 0;
    for (&(file, which), page) in seeds.iter().zip(pages.iter().flatten()) {
        let tables = seed_tables(page);
        if tables.is_empty() {
            // a rendered page: each field's name and type start its row
            for i in which {
                for (_, name, ty, _) in printed[*i].0.iter().chain(&printed[*i].1) {
                    assert!(
                        page.lines().any(|l| l.starts_with(&format!("{name}{ty}"))),
                        "{file}: {name} {ty}"
                    );
                    compared += 1;
                }
            }
            continue;
        }
        let want: Vec<&Vec<Row>> = which
            .iter()
            .flat_map(|i| [&printed[*i].0, &printed[*i].1])
            .filter(|t| !t.is_empty())
            .collect();
        assert_eq!(tables.iter().collect::<Vec<_>>(), want, "{file}");
        compared += tables.iter().map(Vec::len).sum::<usize>();
    }
    assert!(pages.is_none() || compared > 50, "{compared}");
    // a spot check against the PATCH page: `reward_id` is a required integer under `rewards`
    let out = stdout_of(&["describe", "PATCH", "v3.discountCard.orders._out_order_no_"]);
    assert!(
        out.lines()
            .any(|l| l == "      reward_id  integer  required  先享卡奖励ID"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("    rewards  object[]  optional")),
        "{out}"
    );
}

#[test]
fn describe_refuses_an_unknown_operation_with_the_nearest_templates() {
    let out = run(&["describe", "post", "v3/pay/transaction/native"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("did you mean POST v3/pay/transactions/native"),
        "{err}"
    );
    let out = run(&["describe", "put", "v3/pay/transactions/native"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("documented for POST only"));
    // a concrete path finds its template
    let out = stdout_of(&["describe", "get", "v3/pay/transactions/out-trade-no/T1"]);
    assert!(out.starts_with("GET v3/pay/transactions/out-trade-no/{out_trade_no}  "));
}

#[test]
fn ops_and_events_filter_by_every_word() {
    let out = stdout_of(&["ops", "discount-card", "orders"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(!lines.is_empty());
    assert!(lines
        .iter()
        .all(|l| l.contains("discount-card") && l.contains("orders")));
    assert!(
        lines.iter().any(
            |l| l.starts_with("PATCH  v3/discount-card/orders/{out_order_no}")
                && l.ends_with("更新先享卡订单")
        ),
        "{out}"
    );
    let want = catalog::summaries(&["discount-card", "orders"]).count();
    assert_eq!(lines.len(), want);
    // by label, any case
    let out = stdout_of(&["ops", "更新先享卡订单"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = stdout_of(&["ops", "V3/REFUND/DOMESTIC/REFUNDS"]);
    assert!(out
        .lines()
        .any(|l| l.starts_with("POST   v3/refund/domestic/refunds ")));
    // every operation without words
    let all = stdout_of(&["ops"]);
    assert_eq!(all.lines().count(), catalog::operations().count());
    let none = run(&["ops", "no-such-operation-anywhere"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(none.stdout.is_empty());
    assert!(text(&none.stderr).contains("no documented operation"));

    let out = stdout_of(&["events", "refund"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines
        .iter()
        .any(|l| l.starts_with("REFUND.SUCCESS ") && l.contains("APIv3")));
    assert!(lines
        .iter()
        .any(|l| l.starts_with("refund-processed ") && l.contains("APIv2")));
    assert!(!out.contains("TRANSACTION.SUCCESS"), "{out}");
    let all = stdout_of(&["events"]);
    assert_eq!(all.lines().count(), catalog::events().count());
    assert_eq!(run(&["events", "no-such-event"]).status.code(), Some(1));
}

#[test]
fn completions_name_the_subcommands_and_the_documented_paths() {
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout_of(&["completions", shell]);
        for word in [
            "describe",
            "completions",
            "v3/discount-card/orders/{out_order_no}",
            "v2/pay/micropay",
            "patch",
        ] {
            assert!(script.contains(word), "{shell}: {word}");
        }
        // the shell itself reads it, where it is installed
        let check = Command::new(shell)
            .arg("-n")
            .arg("/dev/stdin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let Ok(mut child) = check else {
            eprintln!("{shell} is not installed: syntax not checked");
            continue;
        };
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

/// The binary configured for `server`, validation as `mode` (None: the default).
fn configured(server: &Server, dir: &std::path::Path, mode: Option<&str>) -> Command {
    let mut cmd = bare();
    cmd.env("WECHATPAY_MCHID", MCHID)
        .env("WECHATPAY_SERIAL", SERIAL)
        .env("WECHATPAY_PRIVATE_KEY", dir.join("merchant.pem"))
        .env("WECHATPAY_PUBLIC_KEY", dir.join("platform.pem"))
        .env("WECHATPAY_PUBLIC_KEY_ID", common::PUB_KEY_ID)
        .env("WECHATPAY_BASE_URI", server.base());
    if let Some(m) = mode {
        cmd.env("WECHATPAY_VALIDATE", m);
    }
    cmd
}

fn keys_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wcp-catalog-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    Keys::shared().write_pems(&dir);
    dir
}

fn native(total: Value) -> String {
    json!({"json": {
        "appid": "wxd678efh567hg6787", "mchid": "1230000109", "description": "d",
        "out_trade_no": "T1", "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
        "amount": {"total": total, "currency": "CNY"}}})
    .to_string()
}

#[test]
fn strict_refuses_a_mutated_call_and_warn_sends_it() {
    let server = Server::start(Keys::shared(), echo());
    let dir = keys_dir("validate");
    let call = ["post", "v3/pay/transactions/native"];
    let mutated = native(json!("100"));
    // strict by default, from the variable, and from the option
    for (mode, flags) in [
        (None, &[][..]),
        (Some("strict"), &[][..]),
        (Some("warn"), &["--validate", "strict"][..]),
    ] {
        let out = configured(&server, &dir, mode)
            .args(flags)
            .args(call)
            .arg(&mutated)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode:?} {flags:?}: {err}");
        assert!(
            err.starts_with("wechatpay: 参数错误 bad arguments: ")
                && err.contains("/json/amount/total: wrong type: integer, got string \"100\""),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
    assert_eq!(server.recorded().len(), 0, "nothing sent");
    // warn: the finding on stderr, the call sent as given
    let out = configured(&server, &dir, Some("warn"))
        .args(call)
        .arg(&mutated)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("/json/amount/total: wrong type") && err.contains("WARN"),
        "{err}"
    );
    assert_eq!(server.recorded().len(), 1);
    let sent: Value = serde_json::from_slice(&server.last().body).unwrap();
    assert_eq!(sent["amount"]["total"], "100");
    // off, and `"validate": false` in the args, send it without a word
    let out = configured(&server, &dir, None)
        .args(["--validate", "off"])
        .args(call)
        .arg(&mutated)
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    let mut per_call: Value = serde_json::from_str(&mutated).unwrap();
    per_call["validate"] = json!(false);
    let out = configured(&server, &dir, None)
        .args(call)
        .arg(per_call.to_string())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(server.recorded().len(), 3);
    // the documented call goes out under strict without a word
    let out = configured(&server, &dir, None)
        .args(call)
        .arg(native(json!(100)))
        .output()
        .unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    assert_eq!(server.recorded().len(), 4);
    // a bad mode is a usage error
    let out = configured(&server, &dir, Some("loose"))
        .args(call)
        .arg(native(json!(100)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(server.recorded().len(), 4);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_unknown_path_gets_did_you_mean_before_anything_is_sent() {
    let server = Server::start(Keys::shared(), echo());
    let dir = keys_dir("unknown");
    let call = ["post", "v3/pay/transaction/native"];
    let out = configured(&server, &dir, None)
        .args(call)
        .arg(native(json!(100)))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("did you mean POST v3/pay/transactions/native"),
        "{err}"
    );
    assert_eq!(server.recorded().len(), 0);
    // warn says it too, then sends
    let out = configured(&server, &dir, Some("warn"))
        .args(call)
        .arg(native(json!(100)))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("did you mean POST v3/pay/transactions/native"),
        "{err}"
    );
    assert_eq!(server.recorded().len(), 1);
    assert_eq!(server.last().target, "/v3/pay/transaction/native");
    // --validate belongs to calls
    let out = run(&["--validate", "off", "ops"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--validate"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn describe_marks_what_the_client_fills_in_itself() {
    let out = stdout_of(&["describe", "post", "v3/profitsharing/receivers/add"]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}  ")))
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .to_string()
    };
    assert!(
        line("Wechatpay-Serial").contains("string  filled by the client"),
        "{out}"
    );
    // the headers arg is required only for it: the user need not give it
    assert!(line("headers").contains("object  optional"), "{out}");
    assert!(line("json").contains("object  required"), "{out}");
    assert!(line("appid").contains("required"), "{out}");
}

#[test]
fn did_you_mean_offers_operations_of_the_same_method_first() {
    let out = run(&["post", "v3/pay/transaction/native", "{}"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let offered = err.split("did you mean ").nth(1).expect("did you mean");
    let methods: Vec<&str> = offered
        .split(", or ")
        .map(|o| o.split(' ').next().unwrap())
        .collect();
    assert_eq!(methods[0], "POST", "{err}");
    let posts = methods.iter().take_while(|m| **m == "POST").count();
    assert!(posts >= 2, "{err}");
    assert!(methods[posts..].iter().all(|m| *m != "POST"), "{err}");
}

#[test]
fn describe_shows_a_group_of_alternatives_on_its_object() {
    let out = stdout_of(&["describe", "post", "v2/pay/orderquery"]);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}  ")))
            .unwrap_or_else(|| panic!("{name}: {out}"))
            .to_string()
    };
    assert!(
        line("xml").ends_with("one of transaction_id, out_trade_no required"),
        "{out}"
    );
    assert!(line("transaction_id").contains("  optional"), "{out}");
    assert!(line("out_trade_no").contains("  optional"), "{out}");
    let out = stdout_of(&["describe", "get", "v3/payscore/serviceorder"]);
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("query  object  required")
                && l.ends_with("exactly one of out_order_no, query_id required")),
        "{out}"
    );
}

#[test]
fn strict_refuses_a_reserved_expansion_that_leaves_its_segment() {
    let server = Server::start(Keys::shared(), echo());
    let dir = keys_dir("reserved");
    let call = ["get", "v3/pay/transactions/out-trade-no/{+no}"];
    let args = json!({"no": "T100001/close", "query": {"mchid": "1230000109"}}).to_string();
    let out = configured(&server, &dir, None)
        .args(["--validate", "strict"])
        .args(call)
        .arg(&args)
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("{+no}: \"T100001/close\" holds '/'")
            && err.contains("{out_trade_no}")
            && err.contains("write {no}"),
        "{err}"
    );
    assert_eq!(server.recorded().len(), 0, "nothing sent");
    // warn sends it as written, as before
    let out = configured(&server, &dir, Some("warn"))
        .args(call)
        .arg(&args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        server.last().target,
        "/v3/pay/transactions/out-trade-no/T100001/close?mchid=1230000109"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
