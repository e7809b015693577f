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
