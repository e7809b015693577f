//! Faults on demand from the command line: `wechatpay serve --fault SPEC` (a bad SPEC refused
//! before the sandbox starts, naming the part at fault), and `wechatpay sandbox faults
//! list|add|clear` against the served sandbox, seen by the library's client; the control
//! token required to change the plan.

mod served;

use std::process::{Command, Output};

use serde_json::{json, Value};
use wechatpay_chain::{Builder, Error, Rsa};

const BIN: &str = env!("CARGO_BIN_EXE_wechatpay");

/// `wechatpay ARGS` with the env file's variables but those named in `without`.
fn cli(env: &[(String, String)], args: &[&str], without: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("WECHATPAY_BASE_URI")
        .env_remove("WECHATPAY_SANDBOX_TOKEN");
    for (k, v) in env.iter().filter(|(k, _)| !without.contains(&k.as_str())) {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(env: &[(String, String)], args: &[&str]) -> Value {
    let out = cli(env, args, &[]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn serve_refuses_a_bad_fault_spec_naming_the_part() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--fault",
            "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--fault") && err.contains("`*x`") && err.contains("whole number above 0"),
        "{err}"
    );
}

#[test]
fn serve_fault_and_sandbox_faults_list_add_clear() {
    let dir = std::env::temp_dir().join(format!("wcp-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (mut child, env) = served::spawn(
        BIN,
        &["--fault", "POST v3/pay/transactions/jsapi=SYSTEM_ERROR*1"],
        &dir,
    );
    let var = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let c = Builder::new()
        .base_uri(var("WECHATPAY_BASE_URI"))
        .mchid(var("WECHATPAY_MCHID"))
        .serial(var("WECHATPAY_SERIAL"))
        .private_key(
            Rsa::from_private(&format!("file://{}", var("WECHATPAY_PRIVATE_KEY"))).unwrap(),
        )
        .platform_public_key(
            var("WECHATPAY_PUBLIC_KEY_ID"),
            Rsa::from_public(&format!("file://{}", var("WECHATPAY_PUBLIC_KEY"))).unwrap(),
        )
        .build()
        .unwrap();
    let order = json!({"json": {"appid": "wxd678efh567hg6787", "mchid": var("WECHATPAY_MCHID"),
        "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "CLI-FAULT-0001",
        "notify_url": "https://www.weixin.qq.com/wxpay/pay.php", "amount": {"total": 100},
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}});

    let listed = ok(&env, &["sandbox", "faults", "list"]);
    assert_eq!(
        listed["data"][0]["spec"],
        "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*1"
    );
    assert_eq!(listed["data"][0]["fired"], 0);
    match c["v3/pay/transactions/jsapi"].post(order.clone()) {
        Err(Error::Api {
            status: 500, code, ..
        }) => assert_eq!(code, "SYSTEM_ERROR"),
        other => panic!("expected 500 SYSTEM_ERROR, got {other:?}"),
    }
    let listed = ok(&env, &["sandbox", "faults", "list"]);
    assert_eq!(listed["data"][0]["fired"], 1);
    assert_eq!(listed["fired"][0]["on"], "POST /v3/pay/transactions/jsapi");

    // adding needs the control token
    let out = cli(
        &env,
        &[
            "sandbox",
            "faults",
            "add",
            "v3/pay/*=429:FREQUENCY_LIMITED*1",
        ],
        &["WECHATPAY_SANDBOX_TOKEN"],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused faults add: HTTP 401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a bad SPEC is refused before anything is sent
    let out = cli(&env, &["sandbox", "faults", "add", "v3/pay/*=boom"], &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`boom` is not an action"));

    let added = ok(
        &env,
        &[
            "sandbox",
            "faults",
            "add",
            "v3/pay/*=429:FREQUENCY_LIMITED*1",
        ],
    );
    assert_eq!(added["data"][0]["spec"], "v3/pay/*=429:FREQUENCY_LIMITED*1");
    match c["v3/pay/transactions/jsapi"].post(order.clone()) {
        Err(Error::Api { status: 429, .. }) => {}
        other => panic!("expected 429, got {other:?}"),
    }
    ok(&env, &["sandbox", "faults", "add", "v3/pay/*=hang"]);
    ok(&env, &["sandbox", "faults", "clear"]);
    assert_eq!(ok(&env, &["sandbox", "faults", "list"])["data"], json!([]));
    assert!(c["v3/pay/transactions/jsapi"].post(order).is_ok());

    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
