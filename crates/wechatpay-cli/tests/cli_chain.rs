//! The command line prints a failure's whole chain of causes once, on one line of stderr, and
//! keeps its exit status (3 configuration and keys, 4 transport).

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::{Keys, MCHID, SERIAL};

/// A scratch directory with the test keys written out, removed at the end.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("cli_chain_{name}_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Keys::shared().write_pems(&dir);
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `wechatpay get v3/x` against `base` with `private_key`; (exit status, stderr).
fn call(dir: &Scratch, base: &str, private_key: &std::path::Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WECHATPAY_MCHID", MCHID)
        .env("WECHATPAY_SERIAL", SERIAL)
        .env("WECHATPAY_PRIVATE_KEY", private_key)
        .env("WECHATPAY_PUBLIC_KEY", dir.0.join("platform.pem"))
        .env("WECHATPAY_PUBLIC_KEY_ID", common::PUB_KEY_ID)
        .env("WECHATPAY_BASE_URI", base)
        // v3/x is no documented operation: the catalogue would refuse it before the transport.
        .env("WECHATPAY_VALIDATE", "off")
        .args(["get", "v3/x"])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "nothing on stdout for a failure");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(err: &str) {
    assert!(err.ends_with('\n'), "{err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("wechatpay: "), "{err:?}");
}

#[test]
fn a_refused_connection_is_one_line_naming_each_cause_once() {
    let dir = Scratch::new("refused");
    let addr = common::closed_port();
    let (code, err) = call(
        &dir,
        &format!("http://{addr}/"),
        &dir.0.join("merchant.pem"),
    );
    assert_eq!(code, Some(4), "transport: {err}");
    one_line(&err);
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert_eq!(
        err.matches(&format!("http://{addr}/v3/x")).count(),
        1,
        "{err}"
    );
    // The levels in between are there too, each once.
    assert_eq!(err.matches("tcp connect error").count(), 1, "{err}");
}

#[test]
fn a_missing_key_file_is_one_line_with_the_system_s_reason_once() {
    let dir = Scratch::new("missing");
    let missing = dir.0.join("no-such-key.pem");
    let (code, err) = call(&dir, "http://127.0.0.1:9/", &missing);
    assert_eq!(code, Some(3), "configuration: {err}");
    one_line(&err);
    // given by its variable: the variable is named, the file once
    assert!(
        err.contains("WECHATPAY_PRIVATE_KEY"),
        "the variable is named: {err}"
    );
    assert_eq!(
        err.matches("no-such-key.pem").count(),
        1,
        "the file is named: {err}"
    );
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

#[test]
fn a_key_openssl_cannot_read_keeps_openssl_s_reason() {
    let dir = Scratch::new("unreadable");
    // The platform's public key where the merchant's private key belongs.
    let (code, err) = call(&dir, "http://127.0.0.1:9/", &dir.0.join("platform.pem"));
    assert_eq!(code, Some(3), "configuration: {err}");
    one_line(&err);
    assert!(err.contains("private key"), "{err}");
    // openssl's own words follow ours: "…: error:…:DECODER routines:…".
    assert!(err.contains("error:"), "{err}");
    assert!(!err.contains("BEGIN"), "no key text in the error: {err}");
}
