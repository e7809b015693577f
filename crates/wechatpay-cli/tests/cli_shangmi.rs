//! The command in the 国密 scheme: `wechatpay --scheme sm2 serve` runs an SM2 sandbox and
//! writes an env file with SM2 keys and `WECHATPAY_SCHEME=sm2`; with only that file, a call is
//! signed and verified with SM2, `trigger` sends an SM2-signed AEAD_SM4_GCM notification and
//! `listen` verifies and opens it. Real loopback sockets, keys made by the sandbox at start.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod served;

#[cfg(not(feature = "shangmi"))]
#[test]
fn scheme_sm2_without_the_feature_says_how_to_get_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .args(["--scheme", "sm2", "ops", "refund"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--features shangmi"), "{stderr}");
}

/// With the feature (`--features wechatpay-cli/shangmi`).
#[cfg(feature = "shangmi")]
mod sm2 {
    use std::io::BufRead;
    use std::process::{Command, Output, Stdio};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::served::Served;
    use serde_json::{json, Value};
    use wechatpay_chain::crypto::Sm2;

    const BIN: &str = env!("CARGO_BIN_EXE_wechatpay");

    /// `wechatpay ARGS` with the env file's variables only (as after `source $DIR/env`), and
    /// `extra` ones on top.
    fn cli(served: &Served, extra: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args).env_clear();
        for (k, v) in &served.env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn serve_scheme_sm2_writes_an_env_file_the_command_speaks_sm2_with() {
        let served = Served::start_with(BIN, &["--scheme", "sm2"]);
        let e = &served.env;
        assert_eq!(e["WECHATPAY_SCHEME"], "sm2");
        // The keys written are SM2 ones.
        Sm2::from_private(&format!("file://{}", e["WECHATPAY_PRIVATE_KEY"])).unwrap();
        Sm2::from_public(&format!("file://{}", e["WECHATPAY_PUBLIC_KEY"])).unwrap();

        // A call with the env file: signed with SM2, the SM2 answer verified.
        let order = json!({"json": {"appid": "wxd678efh567hg6787", "mchid": e["WECHATPAY_MCHID"],
            "description": "国密", "out_trade_no": "cli-shangmi-0001",
            "notify_url": "https://127.0.0.1:1/notify", "amount": {"total": 1}}})
        .to_string();
        let out = cli(
            &served,
            &[],
            &["post", "v3/pay/transactions/native", &order],
        );
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(created["code_url"].is_string(), "{created}");

        // The same keys read as RSA ones: refused as a configuration error, nothing sent.
        let out = cli(
            &served,
            &[("WECHATPAY_SCHEME", "rsa")],
            &["post", "v3/pay/transactions/native", &order],
        );
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert!(text(&out.stderr).contains("WECHATPAY_PRIVATE_KEY"));

        // trigger to listen, both from the env file.
        let mut listen = Command::new(BIN);
        listen.args(["listen", "--port", "0"]).env_clear();
        for (k, v) in &served.env {
            listen.env(k, v);
        }
        let mut child = listen
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first.strip_prefix("listening on ").unwrap().to_string();
        let seen = Arc::new(Mutex::new(String::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let mut s = s.lock().unwrap();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let to = format!("{url}notify");
        let expect = |what: &str| {
            let t0 = Instant::now();
            while !seen.lock().unwrap().contains(what) {
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "{what:?} not in listen's output:\n{}",
                    seen.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        let trigger = |args: &[&str]| {
            let out = cli(
                &served,
                &[],
                &[
                    &[
                        "trigger",
                        "--use-env-secrets",
                        "TRANSACTION.SUCCESS",
                        "--to",
                        &to,
                    ],
                    args,
                ]
                .concat(),
            );
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            text(&out.stdout)
        };
        let stdout = trigger(&["--set", "out_trade_no=CLI-SM2-1"]);
        assert!(
            stdout.contains("Wechatpay-Signature-Type: WECHATPAY2-SM2-WITH-SM3"),
            "{stdout}"
        );
        assert!(
            stdout.contains("← 204: accepted, as it must be"),
            "{stdout}"
        );
        expect("\"out_trade_no\": \"CLI-SM2-1\"");
        let stdout = trigger(&["--bad-signature"]);
        assert!(stdout.contains("← 401: refused, as it must be"), "{stdout}");
        expect("refused: bad signature");
        let _ = child.kill();
        let _ = child.wait();
    }

    #[test]
    fn certificates_downloads_the_sm2_platform_certificate_of_an_sm2_sandbox() {
        let served = Served::start_with(BIN, &["--scheme", "sm2", "--mode", "certificate"]);
        let e = &served.env;
        assert_eq!(e["WECHATPAY_SCHEME"], "sm2");
        let written =
            Sm2::from_certificate(&format!("file://{}", e["WECHATPAY_PLATFORM_CERT"])).unwrap();
        let dir = std::env::temp_dir().join(format!("wechatpay-sm2-certs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = cli(&served, &[], &["certificates", "-o", dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let saved = dir.join(format!("wechatpay_{}.pem", written.serial()));
        let downloaded = Sm2::from_certificate(&format!("file://{}", saved.display())).unwrap();
        assert_eq!(downloaded.serial(), written.serial());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
