//! The command line against the emulator: `wechatpay serve` in a child process, its keys and
//! env file, the bill and upload commands. Real loopback sockets, keys made at test time.

#[path = "../../../tests/common/mod.rs"]
mod common;

use common::upload::upload_platform;
use common::{rt, Keys, MCHID, PUB_KEY_ID, SERIAL};
use serde_json::{json, Value};
use wechatpay_chain::{Builder, Error};
use wechatpay_emulator::{Emulator, EmulatorConfig, Forgery, Mode};

const APPID: &str = "wxd678efh567hg6787";

fn start(config: EmulatorConfig) -> Emulator {
    rt().block_on(Emulator::start_async(config)).unwrap()
}

fn native(emu: &Emulator, no: &str, url: &str, total: i64) -> Value {
    json!({"json": {"appid": APPID, "mchid": emu.mchid(),
        "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": no, "notify_url": url,
        "amount": {"total": total, "currency": "CNY"}}})
}

#[test]
fn serve_writes_what_the_command_line_needs() {
    let dir = std::env::temp_dir().join(format!("wcp-emu-serve-{}", std::process::id()));
    let served = Served::start(&["--mode", "certificate"], dir.clone());
    let first = &served.first_line;
    assert!(
        first.contains("http://127.0.0.1:") && first.contains("certificate mode"),
        "{first}"
    );
    assert!(
        served
            .env
            .iter()
            .any(|(k, _)| k == "WECHATPAY_PLATFORM_CERT"),
        "{:?}",
        served.env
    );
    let cli = |args: &[&str]| served.cli(args);
    // The downloader reads the same variables; the call form verifies with the saved certificate.
    let out = cli(&["certificates", "-o", "downloaded"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&[
        "post",
        "v3/brand/partner/card-member/user-points/sync",
        r#"{"json":{"out_request_no":"cli-1","brand_id":"1004","card_id":"c","openid":"o","user_card_code":"u","point_balance":7}}"#,
    ]);
    served.assert_key_is_private();
    drop(served);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["point_balance"],
        7
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_bill_command_downloads_checks_and_writes_only_good_bills() {
    let dir = std::env::temp_dir().join(format!("wcp-emu-bill-{}", std::process::id()));
    let served = Served::start(&[], dir.clone());
    let mchid = served.var("WECHATPAY_MCHID");
    let cli = |args: &[&str]| served.cli(args);
    let ok = |out: &std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A paid order, so that today's bills have a line.
    let no = format!("cli-bill-{}", std::process::id());
    ok(&cli(&[
        "post",
        "v3/pay/transactions/native",
        &json!({"json": {"appid": "wxd678efh567hg6787", "mchid": mchid, "description": "bill",
            "out_trade_no": no, "notify_url": "https://127.0.0.1:1/notify",
            "amount": {"total": 100, "currency": "CNY"}}})
        .to_string(),
    ]));
    // the emulator's own path, not a documented operation
    ok(&cli(&[
        "--validate",
        "off",
        "post",
        &format!("emulator/pay/transactions/out-trade-no/{no}/pay"),
    ]));
    let out = cli(&[
        "get",
        "v3/pay/transactions/out-trade-no/{out_trade_no}",
        &json!({"out_trade_no": no, "query": {"mchid": mchid}}).to_string(),
    ]);
    ok(&out);
    let paid: Value = serde_json::from_slice(&out.stdout).unwrap();
    let day = paid["success_time"].as_str().unwrap()[..10].to_string();
    // Today's bill is made once today has ended on the sandbox's clock: a day on.
    let out = cli(&["sandbox", "clock", "advance", "1d"]);
    ok(&out);
    let clock: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(clock["now"].as_str().unwrap() > day.as_str(), "{clock}");

    // The trade bill, gzip, to a file: only the finished file is left.
    let out = cli(&[
        "bill",
        "v3/bill/tradebill",
        &json!({"query": {"bill_date": day, "tar_type": "GZIP"}}).to_string(),
        "-o",
        "trade.csv",
    ]);
    ok(&out);
    let csv = std::fs::read_to_string(dir.join("trade.csv")).unwrap();
    assert!(csv.contains(&no), "{csv}");
    assert!(!dir.join("trade.csv.part").exists());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("(gunzipped)") && said.contains("matches"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // the bill is its owner's alone, whatever the umask
        let mode = std::fs::metadata(dir.join("trade.csv"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        // a link planted where FILE.part goes is not followed: its target is left as it was
        std::fs::write(dir.join("victim"), "precious").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("linked.csv.part")).unwrap();
        let out = cli(&[
            "bill",
            "v3/bill/tradebill",
            &json!({"query": {"bill_date": day, "tar_type": "GZIP"}}).to_string(),
            "-o",
            "linked.csv",
        ]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{said}");
        assert!(
            said.contains("linked.csv.part already exists") && said.contains("remove it"),
            "{said}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("victim")).unwrap(),
            "precious"
        );
        assert!(!dir.join("linked.csv").exists());
        // and what bill did not create, it does not remove
        assert!(std::fs::symlink_metadata(dir.join("linked.csv.part")).is_ok());
    }

    // The sub-merchant fund flow, in encrypted parts, to stdout: the fund-flow bill exactly.
    let query = json!({"bill_date": day, "account_type": "BASIC"});
    let out = cli(&[
        "bill",
        "v3.bill.fundflowbill",
        &json!({ "query": query }).to_string(),
    ]);
    ok(&out);
    let fundflow = out.stdout;
    let mut sub = query.clone();
    sub["sub_mchid"] = json!("1900000109");
    sub["algorithm"] = json!("AEAD_AES_256_GCM");
    let out = cli(&[
        "bill",
        "v3/bill/sub-merchant-fundflowbill",
        &json!({ "query": sub }).to_string(),
    ]);
    ok(&out);
    assert_eq!(out.stdout, fundflow);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("part 2: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // No bill that day: the platform's error, exit 6, and no file at all.
    let out = cli(&[
        "bill",
        "v3/bill/tradebill",
        r#"{"query":{"bill_date":"2001-01-01"}}"#,
        "-o",
        "none.csv",
    ]);
    assert_eq!(out.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&out.stderr).contains("NO_STATEMENT_EXIST"));
    assert!(!dir.join("none.csv").exists() && !dir.join("none.csv.part").exists());
    // Not a bill listing: a clear error, nothing written.
    let out = cli(&[
        "bill",
        "v3/pay/transactions/out-trade-no/{out_trade_no}",
        &json!({"out_trade_no": no, "query": {"mchid": mchid}}).to_string(),
        "-o",
        "odd.csv",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a bill"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("odd.csv").exists() && !dir.join("odd.csv.part").exists());
    drop(served);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn serve_tls_writes_what_the_command_line_needs_for_a_refund() {
    let dir = std::env::temp_dir().join(format!("wcp-emu-serve-tls-{}", std::process::id()));
    let served = Served::start(&["--tls"], dir.clone());
    let first = &served.first_line;
    assert!(
        first.contains("https://127.0.0.1:") && first.contains("TLS"),
        "{first}"
    );
    let var = |name: &str| served.var(name);
    assert_eq!(
        var("SSL_CERT_FILE"),
        dir.join("ca.pem").display().to_string()
    );
    assert_eq!(
        var("WECHATPAY_MERCHANT_CERT"),
        dir.join("apiclient_cert.pem").display().to_string()
    );
    assert_eq!(var("WECHATPAY_MERCHANT_KEY"), var("WECHATPAY_PRIVATE_KEY"));
    let mchid = var("WECHATPAY_MCHID");
    let cli = |args: &[&str]| {
        let out = served.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let paid = cli(&[
        "post",
        "v2/pay/micropay",
        &json!({"xml": {"appid": APPID, "mch_id": mchid, "body": "b",
                        "out_trade_no": "cli-micropay-0001", "total_fee": 100,
                        "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406"}})
        .to_string(),
    ]);
    // The page marks both transaction_id and out_trade_no required; the platform takes either.
    let refunded = cli(&[
        "--validate",
        "warn",
        "post",
        "v2/secapi/pay/refund",
        &json!({"security": true, "xml": {"appid": APPID, "mch_id": mchid,
                "transaction_id": paid["transaction_id"], "out_refund_no": "cli-refund-0001",
                "total_fee": 100, "refund_fee": 100}})
        .to_string(),
    ]);
    assert_eq!(refunded["result_code"], "SUCCESS");
    assert_eq!(refunded["out_trade_no"], "cli-micropay-0001");
    // APIv3 over the same HTTPS, trusting the CA through SSL_CERT_FILE.
    let queried = cli(&[
        "get",
        "v3/refund/domestic/refunds/{no}",
        r#"{"no":"cli-refund-0001"}"#,
    ]);
    assert_eq!(queried["refund_id"], refunded["refund_id"]);
    // An APIv2 operation the sandbox does not model gets its documented answer, over the same
    // mutual TLS where the catalogue says `security`, signed in the request's sign type.
    // (`--validate warn`: the page marks `nonce_str` required, which the client adds itself)
    let sent = cli(&[
        "--validate",
        "warn",
        "post",
        "v2/mmpaymkttransfers/sendworkwxredpack",
        &json!({"security": true, "xml": {"mch_billno": "cli-hb-0001", "mch_id": mchid,
                "wxappid": APPID, "sender_name": "sandbox", "re_openid": "oxTWIuGaIt6gTKsQRLau2M0yL16E",
                "total_amount": 100, "wishing": "wish", "act_name": "act", "remark": "remark",
                "workwx_sign": "0", "scene_id": "PRODUCT_1"}})
        .to_string(),
    ]);
    assert_eq!(sent["result_code"], "SUCCESS", "{sent}");
    assert_eq!(sent["mch_billno"], "cli-hb-0001");
    let closed = cli(&[
        "post",
        "v2/pay/closeorder",
        &json!({"xml": {"appid": APPID, "mch_id": mchid, "out_trade_no": "cli-micropay-0001",
                        "sign_type": "HMAC-SHA256"}})
        .to_string(),
    ]);
    assert_eq!(closed["return_code"], "SUCCESS", "{closed}");
    served.assert_key_is_private();
    drop(served);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_cli_uploads_a_file_with_meta() {
    let server = upload_platform();
    let keys = Keys::shared();
    let dir = std::env::temp_dir().join(format!("wcp-toolkit-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("apiclient_key.pem");
    let public = dir.join("pub_key.pem");
    let file = dir.join("video.mp4");
    std::fs::write(&key, &keys.merchant_pem).unwrap();
    std::fs::write(&public, &keys.platform_public_pem).unwrap();
    std::fs::write(&file, b"\x00\x00\x00\x18ftypmp42 video").unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
            .args([
                "--base-uri",
                &server.base(),
                "--mchid",
                MCHID,
                "--serial",
                SERIAL,
            ])
            .args(["--private-key", key.to_str().unwrap()])
            .args(["--public-key", public.to_str().unwrap()])
            .args(["--public-key-id", PUB_KEY_ID])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[
        "post",
        "v3/merchant/media/video_upload",
        "--file",
        file.to_str().unwrap(),
        "--meta",
        r#"{"purpose":"test"}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["meta"]["filename"], "video.mp4");
    assert_eq!(v["meta"]["purpose"], "test");
    assert_eq!(server.last().target, "/v3/merchant/media/video_upload");

    let out = run(&[
        "get",
        "v3/merchant/media/upload",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "post",
        "v3/merchant/media/upload",
        "--file",
        "/nonexistent.png",
    ]);
    assert!(!out.status.success());
    let out = run(&[
        "post",
        "v3/merchant/media/upload",
        "--file",
        file.to_str().unwrap(),
        "--meta",
        "{not json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `wechatpay serve ARGS --keys-dir DIR`, running until dropped (however the test ends), with
/// the first line it printed and the variables of the `env` file it wrote.
pub struct Served {
    child: std::process::Child,
    pub dir: std::path::PathBuf,
    pub first_line: String,
    pub env: Vec<(String, String)>,
}

impl Served {
    /// Starts it on a fresh `dir` and waits for its first line (the env file is written then).
    pub fn start(args: &[&str], dir: std::path::PathBuf) -> Served {
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
            .arg("serve")
            .args(args)
            .arg("--keys-dir")
            .arg(&dir)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut served = Served {
            child,
            dir,
            first_line: String::new(),
            env: Vec::new(),
        };
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut served.first_line)
            .unwrap();
        served.env = std::fs::read_to_string(served.dir.join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| {
                l.strip_prefix("export ")?
                    .split_once('=')
                    .map(|(k, v)| (k.into(), v.into()))
            })
            .collect();
        served
    }

    /// The value of `name` in the env file.
    pub fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {:?}", self.env))
    }

    /// Checks that the merchant private key written is readable by its owner only.
    pub fn assert_key_is_private(&self) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(self.dir.join("apiclient_key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the private key is readable by its owner only"
            );
        }
    }

    /// Runs `wechatpay ARGS` in the keys directory with the env file's variables.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"));
        cmd.args(args).current_dir(&self.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn certificate_downloader_against_the_emulator() {
    let emu = start(EmulatorConfig::new().mode(Mode::Certificate));
    let cert = emu.platform_certificate().unwrap().clone();
    assert_eq!(emu.platform_serial(), cert.serial());
    assert_eq!(cert.serial().len(), 40);
    let bare = merchant_only(&emu).build().unwrap();
    let certs = rt()
        .block_on(bare.download_certificates_async(emu.apiv3_key()))
        .unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].serial, cert.serial());
    assert_eq!(certs[0].pem, cert.to_pem().unwrap());
    assert!(certs[0].effective_time < certs[0].expire_time);
    // The wrong APIv3 key cannot decrypt; a forged answer does not verify.
    let wrong = bare
        .download_certificates("0123456789abcdef0123456789abcdef")
        .unwrap_err();
    assert!(matches!(wrong, Error::Crypto { .. }), "{wrong}");
    emu.forge_next(Forgery::TamperedBody);
    let forged = bare.download_certificates(emu.apiv3_key()).unwrap_err();
    assert!(matches!(forged, Error::Verification(_)), "{forged}");
    // The client made with the downloaded certificate verifies answers.
    let c = emu.builder().build().unwrap();
    c["v3/pay/transactions/native"]
        .post(native(&emu, "cert-0001", "https://example.invalid/n", 1))
        .unwrap();

    // A client that keeps its certificates fresh on its own finds the emulator's at build.
    let auto = merchant_only(&emu)
        .auto_certificates(emu.apiv3_key())
        .build()
        .unwrap();
    assert_eq!(auto.keyring().serials(), vec![cert.serial().to_string()]);
    auto["v3/pay/transactions/native"]
        .post(native(&emu, "cert-0002", "https://example.invalid/n", 1))
        .unwrap();

    // The command: writes wechatpay_<serial>.pem and prints serial, dates and path.
    let dir = std::env::temp_dir().join(format!("wcp-emu-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("apiclient_key.pem");
    std::fs::write(
        &key,
        wechatpay_emulator::private_key_pem(emu.merchant_private_key().unwrap()).unwrap(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .args([
            "certificates",
            "-k",
            emu.apiv3_key(),
            "-m",
            emu.mchid(),
            "-s",
            emu.merchant_serial(),
        ])
        .arg("-f")
        .arg(&key)
        .arg("-o")
        .arg(dir.join("out"))
        .args(["-u", &emu.base_uri()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = dir
        .join("out")
        .join(format!("wechatpay_{}.pem", cert.serial()));
    assert_eq!(
        std::fs::read_to_string(&saved).unwrap(),
        cert.to_pem().unwrap()
    );
    assert!(
        stdout.contains(cert.serial())
            && stdout.contains("Not After")
            && stdout.contains(&saved.display().to_string()),
        "{stdout}"
    );

    // Public-key mode: 404 from the platform, and the command explains the public-key setup.
    let pk = start(
        EmulatorConfig::new()
            .merchant_serial(emu.merchant_serial())
            .merchant_private_key(emu.merchant_private_key().unwrap().clone()),
    );
    let bare = merchant_only(&pk).build().unwrap();
    let e = bare.download_certificates(pk.apiv3_key()).unwrap_err();
    assert!(matches!(e, Error::Api { status: 404, .. }), "{e}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .args([
            "certificates",
            "-k",
            pk.apiv3_key(),
            "-m",
            pk.mchid(),
            "-s",
            pk.merchant_serial(),
        ])
        .arg("-f")
        .arg(&key)
        .args(["-u", &pk.base_uri()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("PUB_KEY_ID_") && stderr.contains("--public-key-id"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_demo_plays_the_whole_story_and_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .arg("demo")
        .env_remove("WECHATPAY_BASE_URI")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    assert!(
        stdout.contains("TRANSACTION.SUCCESS")
            && stdout.contains("/v3/certificates")
            && stdout.contains("/v3/bill/tradebill")
            && stdout.contains("matches;"),
        "{stdout}"
    );
    assert!(
        stdout.matches("signature verified").count() >= 10,
        "{stdout}"
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("summary:") && summary.contains(" 0 failed"),
        "{summary}"
    );
}

/// The merchant's side only (no platform key): what a merchant has before its first
/// certificate download.
fn merchant_only(emu: &Emulator) -> Builder {
    Builder::new()
        .base_uri(emu.base_uri())
        .mchid(emu.mchid())
        .serial(emu.merchant_serial())
        .private_key(emu.merchant_private_key().unwrap().clone())
}
