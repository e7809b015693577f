//! `wechatpay serve --state FILE`: a sandbox killed (SIGKILL, nothing written at exit) and
//! started again on its state file answers for the orders and refunds it had answered for, as
//! the same platform (the same merchant and platform keys in its env file), 64 orders made at
//! once included. A file that is not
//! a state file stops `serve` with a message naming it, and is left as it was.

mod served;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use wechatpay_chain::{Builder, Client, Rsa};

const BIN: &str = env!("CARGO_BIN_EXE_wechatpay");

fn var<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{name} missing from {env:?}"))
}

/// The merchant's client configured from the env file `keys`, talking to `base`.
fn client(keys: &[(String, String)], base: &str) -> Client {
    let file = |k: &str| format!("file://{}", var(keys, k));
    Builder::new()
        .base_uri(base)
        .mchid(var(keys, "WECHATPAY_MCHID"))
        .serial(var(keys, "WECHATPAY_SERIAL"))
        .private_key(Rsa::from_private(&file("WECHATPAY_PRIVATE_KEY")).unwrap())
        .platform_public_key(
            var(keys, "WECHATPAY_PUBLIC_KEY_ID"),
            Rsa::from_public(&file("WECHATPAY_PUBLIC_KEY")).unwrap(),
        )
        .build()
        .unwrap()
}

/// A `serve` child killed (SIGKILL) when dropped, a failing assertion included.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read(env: &[(String, String)], name: &str) -> String {
    std::fs::read_to_string(var(env, name)).unwrap()
}

#[test]
fn serve_killed_and_restarted_on_its_state_file_keeps_orders_refunds_and_keys() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("sandbox.db");
    let state_arg = state.to_str().unwrap();
    let (first, env1) = served::spawn(
        BIN,
        &["--state", state_arg, "--refund-delay", "never"],
        &root.path().join("keys1"),
    );
    let first = Killed(first);
    let c = client(&env1, var(&env1, "WECHATPAY_BASE_URI"));
    let mchid = var(&env1, "WECHATPAY_MCHID");
    let order = |c: &Client, no: &str| -> Value {
        c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": no, "query": {"mchid": mchid}}))
            .unwrap()
            .json()
            .unwrap()
    };
    c["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": "wxd678efh567hg6787", "mchid": mchid,
            "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "cli-state-001",
            "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 100}}}),
        )
        .unwrap();
    // 64 orders at once: each answered only once it is in the file (requests finishing
    // together share a write).
    std::thread::scope(|s| {
        for i in 0..64 {
            let c = &c;
            s.spawn(move || {
                c["v3/pay/transactions/native"]
                    .post(
                        json!({"json": {"appid": "wxd678efh567hg6787", "mchid": mchid,
                        "description": "Image形象店-深圳腾大-QQ公仔",
                        "out_trade_no": format!("cli-busy-{i:03}"),
                        "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 1}}}),
                    )
                    .unwrap();
            });
        }
    });
    let paid = Command::new(BIN)
        .args(["sandbox", "payment", "cli-state-001", "paid"])
        .env_remove("SSL_CERT_FILE")
        .envs(env1.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        paid.status.success(),
        "{}",
        String::from_utf8_lossy(&paid.stderr)
    );
    let refund: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "cli-state-001", "out_refund_no": "cli-state-r1",
            "amount": {"refund": 30, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(refund["status"], "PROCESSING");
    let before = order(&c, "cli-state-001");
    assert_eq!(before["trade_state"], "REFUND");
    // Killed: every answered change must already be in the file.
    drop(first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    let (second, env2) = served::spawn(
        BIN,
        &["--state", state_arg, "--refund-delay", "never"],
        &root.path().join("keys2"),
    );
    let second = Killed(second);
    for name in [
        "WECHATPAY_SERIAL",
        "WECHATPAY_PUBLIC_KEY_ID",
        "WECHATPAY_APIV3_KEY",
        "WECHATPAY_SECRET",
    ] {
        assert_eq!(var(&env1, name), var(&env2, name), "{name}");
    }
    for name in ["WECHATPAY_PRIVATE_KEY", "WECHATPAY_PUBLIC_KEY"] {
        assert_eq!(read(&env1, name), read(&env2, name), "{name}");
    }
    // The first env file's keys, the second sandbox's address.
    let c = client(&env1, var(&env2, "WECHATPAY_BASE_URI"));
    assert_eq!(order(&c, "cli-state-001"), before);
    let kept: Value = c["v3/refund/domestic/refunds/{out_refund_no}"]
        .get(json!({"out_refund_no": "cli-state-r1"}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept, refund);
    for i in 0..64 {
        assert_eq!(
            order(&c, &format!("cli-busy-{i:03}"))["trade_state"],
            "NOTPAY"
        );
    }
    drop(second);
}

#[test]
fn serve_refuses_a_state_file_that_is_not_one_and_leaves_it() {
    let root = tempfile::tempdir().unwrap();
    let bad = root.path().join("notes.db");
    let text = b"these are my notes, not a sandbox\n".repeat(200);
    std::fs::write(&bad, &text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = Command::new(BIN)
        .args(["serve", "--state"])
        .arg(&bad)
        .arg("--keys-dir")
        .arg(root.path().join("keys"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&bad.display().to_string()), "{err}");
    assert!(err.contains("pass another --state"), "{err}");
    assert_eq!(std::fs::read(&bad).unwrap(), text);
    assert!(!Path::new(&root.path().join("keys").join("env")).exists());
}
