//! The command line's exit status tells forged, verified and unverified error answers apart.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::sync::Arc;

use common::{error_reply, Keys, Server, MCHID, SERIAL};

#[test]
fn the_cli_tells_forged_verified_and_unverified_errors_apart() {
    let dir = std::env::temp_dir().join(format!("safety_v3_cli_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, public) = Keys::shared().write_pems(&dir);
    let run = |server: &Server, with_key: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("WECHATPAY_MCHID", MCHID)
            .env("WECHATPAY_SERIAL", SERIAL)
            .env("WECHATPAY_PRIVATE_KEY", &key)
            .env("WECHATPAY_BASE_URI", server.base())
            // `v3/x` is no documented operation: this is about the answers
            .env("WECHATPAY_VALIDATE", "off");
        if with_key {
            cmd.env("WECHATPAY_PUBLIC_KEY", &public)
                .env("WECHATPAY_PUBLIC_KEY_ID", common::PUB_KEY_ID);
        }
        let out = cmd.args(["get", "v3/x"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let forged = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, true)));
    assert_eq!(run(&forged, true).0, Some(5), "verification");
    let genuine = Server::start(Keys::shared(), Arc::new(|_| error_reply(true, false)));
    let (code, err) = run(&genuine, true);
    assert_eq!(code, Some(6), "{err}");
    assert!(!err.contains("unverified"), "{err}");
    let gateway = Server::start(Keys::shared(), Arc::new(|_| error_reply(false, false)));
    let (code, err) = run(&gateway, true);
    assert_eq!(code, Some(6), "{err}");
    assert!(err.contains("(unverified)"), "{err}");
    // No platform key: refused before sending, a configuration error.
    let (code, err) = run(&gateway, false);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("--public-key"), "{err}");
    assert_eq!(gateway.recorded().len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The command with nothing of the test's environment but PATH, no documented-path check.
fn bare() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("WECHATPAY_VALIDATE", "off");
    cmd
}

fn refused(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "a configuration error: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn configuration_errors_name_the_option_and_the_variable_to_set() {
    // nothing set: what to set, by option and variable
    let err = refused(bare().args(["get", "v3/x"]));
    for name in [
        "--mchid/WECHATPAY_MCHID",
        "--serial/WECHATPAY_SERIAL",
        "--private-key/WECHATPAY_PRIVATE_KEY",
    ] {
        assert!(err.contains(name), "{name}: {err}");
    }
    // an APIv2 call without its key
    let err = refused(bare().args(["post", "v2/pay/micropay", r#"{"xml":{"appid":"wx1"}}"#]));
    assert!(err.contains("--secret/WECHATPAY_SECRET"), "{err}");
    // a key path that is wrong: named by where it was set, the path once
    let missing = "/nonexistent/wechatpay/apiclient_key.pem";
    let mut cmd = bare();
    cmd.env("WECHATPAY_MCHID", MCHID)
        .env("WECHATPAY_SERIAL", SERIAL)
        .env("WECHATPAY_PRIVATE_KEY", missing)
        .args(["get", "v3/x"]);
    let err = refused(&mut cmd);
    assert!(
        err.contains("WECHATPAY_PRIVATE_KEY: cannot read key file"),
        "{err}"
    );
    assert!(!err.contains("--private-key"), "set by the variable: {err}");
    assert_eq!(err.matches(missing).count(), 1, "{err}");
    let mut cmd = bare();
    cmd.args([
        "--mchid",
        MCHID,
        "--serial",
        SERIAL,
        "--private-key",
        missing,
    ])
    .args(["get", "v3/x"]);
    let err = refused(&mut cmd);
    assert!(err.contains("--private-key: cannot read key file"), "{err}");
    assert_eq!(err.matches(missing).count(), 1, "{err}");
    // a platform key file that holds no key
    let dir = std::env::temp_dir().join(format!("cli_errors_names_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (key, _) = Keys::shared().write_pems(&dir);
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "not a key\n").unwrap();
    let mut cmd = bare();
    cmd.env("WECHATPAY_MCHID", MCHID)
        .env("WECHATPAY_SERIAL", SERIAL)
        .env("WECHATPAY_PRIVATE_KEY", &key)
        .env("WECHATPAY_PUBLIC_KEY", &notes)
        .env("WECHATPAY_PUBLIC_KEY_ID", common::PUB_KEY_ID)
        .args(["get", "v3/x"]);
    let err = refused(&mut cmd);
    assert!(err.contains("WECHATPAY_PUBLIC_KEY: key file"), "{err}");
    assert_eq!(
        err.matches(&*notes.display().to_string()).count(),
        1,
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
