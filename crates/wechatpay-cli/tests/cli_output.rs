//! What the command line shows a person: each command's help lists the options that apply to
//! it (the certificates command one spelling each), `-v`/`-vv`/WECHATPAY_LOG set what is logged,
//! stderr carries no colour when it is not a terminal, and every error line names its category
//! in Chinese and English, the platform's own message passed through.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{error_reply, Keys, Reply, Server, MCHID, SERIAL};
use serde_json::json;

/// Files of one test: the merchant key and the platform public key; removed when dropped.
struct Files {
    dir: std::path::PathBuf,
}

impl Files {
    fn new(name: &str) -> Files {
        let dir =
            std::env::temp_dir().join(format!("wechatpay-output-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Keys::shared().write_pems(&dir);
        Files { dir }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The binary with a clean environment: no WECHATPAY_* of the test's, no NO_COLOR.
fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // the calls here (`v3/x`) are about output, not the catalogue (see cli_catalog.rs)
        .env("WECHATPAY_VALIDATE", "off");
    cmd
}

/// The binary configured through the environment only, as the wire check drives it.
fn configured(files: &Files, base: &str) -> Command {
    let mut cmd = bare();
    cmd.env("WECHATPAY_MCHID", MCHID)
        .env("WECHATPAY_SERIAL", SERIAL)
        .env("WECHATPAY_PRIVATE_KEY", files.dir.join("merchant.pem"))
        .env("WECHATPAY_PUBLIC_KEY", files.dir.join("platform.pem"))
        .env("WECHATPAY_PUBLIC_KEY_ID", common::PUB_KEY_ID)
        .env("WECHATPAY_BASE_URI", base);
    cmd
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn help(args: &[&str]) -> String {
    let out = bare().args(args).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    text(&out.stdout)
}

/// How many option lines of a help text define `--name` (`  -m, --mchid <MCHID>  …`).
fn count_long(help: &str, name: &str) -> usize {
    let want = format!("--{name}");
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-'))
        .filter(|l| {
            let spec = l.split("  ").next().unwrap_or_default();
            spec.split([',', ' ', '='])
                .any(|t| t.trim_end_matches("...") == want)
        })
        .count()
}

/// Options of calls only: never in the help of a command that does not call the platform.
const CALL_ONLY: &[&str] = &[
    "base-uri",
    "private-key",
    "public-key",
    "public-key-id",
    "platform-cert",
    "timeout",
    "merchant-cert",
    "merchant-key",
    "v2-either-sign-type",
    "include",
    "lenient",
    "file",
    "meta",
];

#[test]
fn demo_and_serve_help_list_only_their_options() {
    let demo = help(&["demo", "--help"]);
    for o in CALL_ONLY
        .iter()
        .chain(&["mchid", "serial", "apiv3-key", "secret"])
    {
        assert_eq!(count_long(&demo, o), 0, "--{o} in demo's help:\n{demo}");
    }
    assert!(
        demo.contains("--verbose") && demo.contains("WECHATPAY_LOG"),
        "{demo}"
    );
    let serve = help(&["serve", "--help"]);
    for o in CALL_ONLY {
        assert_eq!(count_long(&serve, o), 0, "--{o} in serve's help:\n{serve}");
    }
    for o in [
        "mchid",
        "serial",
        "apiv3-key",
        "secret",
        "keys-dir",
        "verbose",
    ] {
        assert_eq!(count_long(&serve, o), 1, "--{o} in serve's help:\n{serve}");
    }
    // The call form and bill take every call option, with its variable.
    for args in [&["--help"][..], &["bill", "--help"]] {
        let h = help(args);
        for o in [
            "base-uri",
            "mchid",
            "private-key",
            "timeout",
            "secret",
            "apiv3-key",
        ] {
            assert_eq!(count_long(&h, o), 1, "--{o} in {args:?}:\n{h}");
        }
        assert!(
            h.contains("WECHATPAY_PRIVATE_KEY") && h.contains("WECHATPAY_LOG"),
            "{h}"
        );
    }
}

#[test]
fn certificates_help_shows_each_option_once() {
    let h = help(&["certificates", "--help"]);
    for (short, long) in [
        ("m", "mchid"),
        ("s", "serial"),
        ("f", "private-key"),
        ("k", "apiv3-key"),
        ("u", "base-uri"),
        ("o", "output"),
    ] {
        assert_eq!(count_long(&h, long), 1, "--{long}:\n{h}");
        assert!(
            h.contains(&format!("-{short}, --{long} ")),
            "-{short}, --{long}:\n{h}"
        );
    }
    for old in ["serialno", "privatekey", "baseuri", "key"] {
        assert_eq!(count_long(&h, old), 0, "--{old} shown:\n{h}");
    }
    // wechatpay-php's long names still parse (clap stops at --help only once all parsed).
    let out = bare()
        .args([
            "certificates",
            "--serialno",
            "S",
            "--privatekey",
            "F",
            "--key",
            "K",
        ])
        .args(["--baseuri", "http://127.0.0.1:1/", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn an_option_before_a_subcommand_that_does_not_take_it_is_a_clear_usage_error() {
    for (sub, before) in [
        ("demo", true),
        ("serve", true),
        ("demo", false),
        ("serve", false),
    ] {
        let args = match before {
            true => ["--timeout", "5", sub],
            false => [sub, "--timeout", "5"],
        };
        let out = bare().args(args).output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.starts_with(
                "wechatpay: 参数错误 bad arguments: --timeout does not apply to `wechatpay "
            ) && err.contains(sub)
                && err.contains("certificates, bill"),
            "{err}"
        );
    }
    // Where it applies, it is used: a timeout out of range given before `certificates` is
    // refused by certificates itself, after the key was read.
    let files = Files::new("placement");
    let out = bare()
        .args([
            "--timeout",
            "0",
            "--mchid",
            MCHID,
            "certificates",
            "-s",
            SERIAL,
            "-k",
            "k",
        ])
        .arg("-f")
        .arg(files.dir.join("merchant.pem"))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("--timeout 0 must be a positive number"),
        "{err}"
    );
}

/// A platform answering 500 SYSTEM_ERROR to the first request, then 200.
fn flaky() -> Server {
    let n = Arc::new(AtomicUsize::new(0));
    Server::start(
        Keys::shared(),
        Arc::new(move |_| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(500, json!({"code": "SYSTEM_ERROR", "message": "系统繁忙"}))
            } else {
                Reply::json(200, json!({"ok": true}))
            }
        }),
    )
}

fn retried_call(files: &Files, flags: &[&str], env: &[(&str, &str)]) -> Output {
    let server = flaky();
    let mut cmd = configured(files, &server.base());
    cmd.envs(env.iter().copied());
    let out = cmd
        .args(flags)
        .args(["get", "v3/pay/transactions/id/{transaction_id}"])
        .arg(r#"{"transaction_id": "4200000001", "retry": {"max_attempts": 2}}"#)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.recorded().len(), 2, "retried once");
    out
}

#[test]
fn verbosity_flags_and_wechatpay_log_set_what_stderr_shows_without_colour() {
    let files = Files::new("verbose");
    let quiet = text(&retried_call(&files, &[], &[]).stderr);
    assert!(
        !quiet.contains("INFO") && !quiet.contains("retrying"),
        "{quiet}"
    );

    let info = text(&retried_call(&files, &["-v"], &[]).stderr);
    let line = info
        .lines()
        .find(|l| l.contains("retrying"))
        .unwrap_or_else(|| panic!("{info}"));
    assert!(
        line.contains("INFO") && line.contains("wechatpay.call"),
        "{line}"
    );
    assert!(
        line.contains("v3/pay/transactions/id/{transaction_id}"),
        "the template: {line}"
    );
    assert!(!info.contains("DEBUG"), "{info}");

    let debug = text(&retried_call(&files, &["-vv"], &[]).stderr);
    assert_eq!(debug.matches("attempt done").count(), 2, "{debug}");
    assert!(debug.contains("DEBUG"), "{debug}");

    let env =
        text(&retried_call(&files, &[], &[("WECHATPAY_LOG", "wechatpay_chain=debug")]).stderr);
    assert!(
        env.contains("DEBUG") && env.contains("attempt done"),
        "{env}"
    );

    // Piped stderr: no escape sequence at any level; NO_COLOR is honoured as well.
    let no_color = text(&retried_call(&files, &["-vv"], &[("NO_COLOR", "1")]).stderr);
    for s in [&quiet, &info, &debug, &env, &no_color] {
        assert!(!s.contains('\u{1b}'), "ANSI escape in {s:?}");
    }
    // Nothing of the merchant key, the signature or the order number in the most verbose log.
    for l in Keys::shared()
        .merchant_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
    {
        assert!(!debug.contains(l), "{debug}");
    }
    assert!(
        !debug.contains("signature=") && !debug.contains("4200000001"),
        "{debug}"
    );
}

#[test]
fn every_error_line_names_its_category_in_both_languages() {
    let files = Files::new("categories");
    let run = |mut cmd: Command, args: &[&str]| {
        let out = cmd.args(args).output().unwrap();
        assert!(out.stdout.is_empty());
        let err = text(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        (out.status.code(), err)
    };
    let ok = flaky();
    let (code, err) = run(configured(&files, &ok.base()), &["frob", "v3/x"]);
    assert_eq!(code, Some(2));
    assert!(
        err.starts_with("wechatpay: 参数错误 bad arguments: unknown METHOD"),
        "{err}"
    );

    let (code, err) = run(bare(), &["get", "v3/x"]);
    assert_eq!(code, Some(3));
    assert!(
        err.starts_with("wechatpay: 配置错误 configuration: "),
        "{err}"
    );

    // A port nobody listens on.
    let base = format!("http://{}/", common::closed_port());
    let (code, err) = run(configured(&files, &base), &["get", "v3/x"]);
    assert_eq!(code, Some(4));
    assert!(err.starts_with("wechatpay: 网络错误 transport: "), "{err}");

    let forged = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, true)));
    let (code, err) = run(configured(&files, &forged.base()), &["get", "v3/x"]);
    assert_eq!(code, Some(5));
    assert!(
        err.starts_with("wechatpay: 验签失败 verification failed: "),
        "{err}"
    );

    let genuine = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, false)));
    let (code, err) = run(configured(&files, &genuine.base()), &["get", "v3/x"]);
    assert_eq!(code, Some(6));
    assert!(
        err.starts_with("wechatpay: 平台返回错误 the platform answered an error: ")
            && err.contains("ORDER_NOT_EXIST")
            && err.contains("订单不存在"),
        "the platform's own message passes through: {err}"
    );
}

#[test]
fn a_text_answer_ends_its_line_and_a_file_goes_out_byte_for_byte() {
    let files = Files::new("newline");
    let server = Server::start(
        Keys::shared(),
        Arc::new(|r: &common::Recorded| {
            if r.target.starts_with("/v3/billdownload/file") {
                // a bill file: unsigned by design, bytes to save as they came
                Reply {
                    body: b"\x1f\x8b no newline at the end".to_vec(),
                    headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                    sign_as: None,
                    ..Reply::empty(200)
                }
            } else {
                Reply::json(200, json!({"code_url": "weixin://wxpay/bizpayurl?pr=x"}))
            }
        }),
    );
    let out = configured(&files, &server.base())
        .args(["get", "v3/x"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "{\"code_url\":\"weixin://wxpay/bizpayurl?pr=x\"}\n"
    );
    let out = configured(&files, &server.base())
        .args(["get", "v3/billdownload/file", r#"{"query":{"token":"t"}}"#])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"\x1f\x8b no newline at the end");
}

#[test]
fn a_bare_wechatpay_prints_an_overview_of_the_commands() {
    let out = bare().output().unwrap();
    let err = text(&out.stderr);
    // as clap's arg_required_else_help: on stderr, status 2
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        err.contains("Usage: wechatpay [OPTIONS] <METHOD> <URI> [ARGS]"),
        "{err}"
    );
    for command in [
        "serve",
        "sandbox",
        "describe",
        "listen",
        "trigger",
        "completions",
    ] {
        assert!(
            err.lines().any(|l| l.trim_start().starts_with(command)),
            "{command} listed: {err}"
        );
    }
    assert!(
        err.contains("bash, zsh or fish"),
        "a list is not cut: {err}"
    );
    assert!(err.lines().count() < 30, "short: {err}");
    assert!(!err.contains("参数错误"), "not an error line: {err}");
}
