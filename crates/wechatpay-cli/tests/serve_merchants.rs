//! `wechatpay serve --merchants 2 --service-provider --sub-merchants 1` in a child process:
//! an env file per merchant (`env` for the first, as with one merchant, `env.<mchid>` for the
//! others, each private), and the command line, given each file's variables, calls as that
//! merchant: its own orders, the service provider's order for its sub-merchant, and another
//! merchant's order out of sight.

mod served;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};

use serde_json::{json, Value};

struct Served {
    child: Child,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn env_of(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    served::env_file(&text).into_iter().collect()
}

/// `wechatpay ARGS` with the variables of an env file.
fn cli(env: &HashMap<String, String>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
    cmd.args(args)
        .env_remove("WECHATPAY_BASE_URI")
        .env_remove("SSL_CERT_FILE")
        .envs(env);
    cmd.output().unwrap()
}

fn ok(env: &HashMap<String, String>, args: &[&str]) -> Value {
    let out = cli(env, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn order(mchid: &str, no: &str) -> String {
    json!({"json": {"appid": "wxd678efh567hg6787", "mchid": mchid, "description": "d",
        "out_trade_no": no, "notify_url": "http://127.0.0.1:9/notify",
        "amount": {"total": 100, "currency": "CNY"}}})
    .to_string()
}

fn query(mchid: &str, no: &str) -> String {
    json!({"out_trade_no": no, "query": {"mchid": mchid}}).to_string()
}

#[test]
fn serve_writes_an_env_file_per_merchant_and_each_calls_as_itself() {
    let dir = std::env::temp_dir().join(format!("wcp-merchants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let args = [
        "--merchants",
        "2",
        "--service-provider",
        "--sub-merchants",
        "1",
    ];
    let (child, first) = served::spawn(env!("CARGO_BIN_EXE_wechatpay"), &args, &dir);
    let _served = Served {
        child,
        dir: dir.clone(),
    };
    let first: HashMap<String, String> = first.into_iter().collect();
    assert_eq!(first["WECHATPAY_MCHID"], "1900000001");

    // the first merchant's env as with one merchant; the others numbered after it
    let (b, sp, sub) = (
        env_of(&dir.join("env.1900000002")),
        env_of(&dir.join("env.1900000003")),
        env_of(&dir.join("env.1900000004")),
    );
    assert_eq!(b["WECHATPAY_MCHID"], "1900000002");
    assert_eq!(b["WECHATPAY_SANDBOX_ROLE"], "direct");
    assert_eq!(sp["WECHATPAY_SANDBOX_ROLE"], "service-provider");
    assert_eq!(sub["WECHATPAY_SANDBOX_ROLE"], "sub-merchant");
    assert_eq!(sub["WECHATPAY_SP_MCHID"], "1900000003");
    for other in [&b, &sp, &sub] {
        for k in [
            "WECHATPAY_SERIAL",
            "WECHATPAY_PRIVATE_KEY",
            "WECHATPAY_APIV3_KEY",
            "WECHATPAY_SECRET",
        ] {
            assert_ne!(other[k], first[k], "{k}");
        }
        for k in [
            "WECHATPAY_BASE_URI",
            "WECHATPAY_PUBLIC_KEY_ID",
            "WECHATPAY_SANDBOX_TOKEN",
        ] {
            assert_eq!(other[k], first[k], "{k}");
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["env.1900000002", "env.1900000003", "env.1900000004"] {
            let mode = std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}");
        }
        let key = std::fs::metadata(&b["WECHATPAY_PRIVATE_KEY"]).unwrap();
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }

    // each merchant calls as itself and sees its own orders only
    ok(
        &first,
        &[
            "post",
            "v3/pay/transactions/native",
            &order("1900000001", "cli-a-000001"),
        ],
    );
    ok(
        &b,
        &[
            "post",
            "v3/pay/transactions/native",
            &order("1900000002", "cli-b-000001"),
        ],
    );
    let v = ok(
        &b,
        &[
            "get",
            "v3/pay/transactions/out-trade-no/{out_trade_no}",
            &query("1900000002", "cli-b-000001"),
        ],
    );
    assert_eq!(v["mchid"], "1900000002");
    let out = cli(
        &first,
        &[
            "get",
            "v3/pay/transactions/out-trade-no/{out_trade_no}",
            &query("1900000001", "cli-b-000001"),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ORDER_NOT_EXIST"));
    // B's order paid from the command line, named by its merchant
    let paid = ok(
        &b,
        &[
            "sandbox",
            "payment",
            "cli-b-000001",
            "paid",
            "--sub-mchid",
            "1900000002",
        ],
    );
    assert_eq!(
        (paid["mchid"].as_str(), paid["trade_state"].as_str()),
        (Some("1900000002"), Some("SUCCESS"))
    );

    // the service provider orders for its sub-merchant
    let partner = json!({"json": {"sp_appid": "wx8888888888888888", "sp_mchid": "1900000003",
        "sub_mchid": "1900000004", "description": "d", "out_trade_no": "cli-sp-00001",
        "notify_url": "http://127.0.0.1:9/notify", "amount": {"total": 1, "currency": "CNY"}}})
    .to_string();
    ok(
        &sp,
        &["post", "v3/pay/partner/transactions/native", &partner],
    );
    let v = ok(&sp, &["get", "v3/pay/partner/transactions/out-trade-no/{out_trade_no}",
        &json!({"out_trade_no": "cli-sp-00001", "query": {"sp_mchid": "1900000003", "sub_mchid": "1900000004"}}).to_string()]);
    assert_eq!(v["sub_mchid"], "1900000004");
    // and the sub-merchant's key is its own: it calls as itself
    ok(
        &sub,
        &[
            "post",
            "v3/pay/transactions/native",
            &order("1900000004", "cli-sub-0001"),
        ],
    );
}

#[test]
fn serve_with_one_merchant_writes_env_only() {
    let dir = std::env::temp_dir().join(format!("wcp-one-merchant-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (child, _) = served::spawn(env!("CARGO_BIN_EXE_wechatpay"), &[], &dir);
    let _served = Served {
        child,
        dir: dir.clone(),
    };
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("env"))
        .collect();
    names.sort();
    assert_eq!(names, ["env"]);
}
