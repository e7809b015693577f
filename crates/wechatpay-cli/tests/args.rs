//! Args that would silently do nothing are refused before anything is sent, and data written in
//! a path or query goes out as written: the library and the command line, against the emulator
//! on loopback (its request log counts what was sent).

use serde_json::{json, Value};
use wechatpay_chain::{Client, Error, Placeholders};
use wechatpay_emulator::{Emulator, EmulatorConfig, Mode};

fn start() -> Emulator {
    Emulator::start(EmulatorConfig::new()).unwrap()
}

/// Certificate mode: `v3/certificates` answers 200, a plain GET without args.
fn start_certificates() -> Emulator {
    Emulator::start(EmulatorConfig::new().mode(Mode::Certificate)).unwrap()
}

fn client(emu: &Emulator) -> Client {
    emu.builder().build().unwrap()
}

fn native_order(emu: &Emulator, out_trade_no: &str) -> Value {
    json!({
        "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "args test",
        "out_trade_no": out_trade_no, "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
        "amount": {"total": 100, "currency": "CNY"},
    })
}

/// The message of an `InvalidArgument`, or a panic naming what came instead.
fn refusal(r: Result<wechatpay_chain::Response, Error>) -> String {
    match r {
        Err(Error::InvalidArgument(m)) => m,
        Err(e) => panic!("expected InvalidArgument, got {e:?}"),
        Ok(res) => panic!("expected a refusal, got {} {}", res.status(), res.text()),
    }
}

#[test]
fn a_forgotten_json_wrapper_is_refused_and_nothing_is_sent() {
    let emu = start();
    let c = client(&emu);
    let m = refusal(
        c.chain("v3/pay/transactions/native")
            .post(native_order(&emu, "T-ARGS-1")),
    );
    assert!(m.contains("\"appid\"") && m.contains("\"json\""), "{m}");
    assert!(emu.requests().is_empty(), "nothing sent");

    // The same fields inside json go out.
    let res = c
        .chain("v3/pay/transactions/native")
        .post(json!({"json": native_order(&emu, "T-ARGS-1")}))
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(emu.requests().len(), 1);
}

#[test]
fn a_misspelt_placeholder_or_option_is_named_with_the_nearest_one() {
    let emu = start_certificates();
    let c = client(&emu);
    let m = refusal(
        c.chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
            .get(json!({"out_trade_num": "T1", "query": {"mchid": emu.mchid()}})),
    );
    assert!(
        m.contains("\"out_trade_num\"")
            && m.contains("did you mean the placeholder \"out_trade_no\""),
        "{m}"
    );
    let m = refusal(
        c.chain("v3/certificates")
            .get(json!({"heders": {"Accept": "application/json"}})),
    );
    assert!(
        m.contains("did you mean the request option \"headers\""),
        "{m}"
    );
    // An APIv2 option on an APIv3 path would be dropped: refused too.
    let m = refusal(c.chain("v3/certificates").get(json!({"xml": {"a": "1"}})));
    assert!(m.contains("APIv2"), "{m}");
    assert!(emu.requests().is_empty(), "nothing sent");

    // Every option the client reads is accepted (retry among them).
    c.chain("v3/certificates")
        .get(json!({"retry": false, "timeout": 10, "headers": {}, "query": {}}))
        .unwrap();
    assert_eq!(emu.requests().len(), 1);
}

#[test]
fn the_lenient_mode_sends_as_wechatpay_php_does() {
    let emu = start_certificates();
    // Per call.
    let res = client(&emu)
        .chain("v3/certificates")
        .get(json!({"appid": "ignored", "placeholders": "lenient"}));
    assert_eq!(res.unwrap().status(), 200);
    // On the Builder, with a missing placeholder expanded to empty.
    let lenient = emu
        .builder()
        .placeholders(Placeholders::Lenient)
        .build()
        .unwrap();
    let e = lenient
        .chain("v3/refund/domestic/refunds/{out_refund_no}")
        .get(json!({"out_refund_num": "R1"}))
        .unwrap_err();
    assert!(matches!(e, Error::Api { .. }), "sent, and answered: {e:?}");
    let targets: Vec<String> = emu.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets,
        ["/v3/certificates", "/v3/refund/domestic/refunds/"]
    );
    // A per-call "strict" wins over the Builder.
    let m = refusal(
        lenient
            .chain("v3/certificates")
            .get(json!({"appid": "x", "placeholders": "strict"})),
    );
    assert!(m.contains("\"appid\""), "{m}");
    assert_eq!(emu.requests().len(), 2);
}

#[test]
fn empty_is_a_trailing_slash_in_strict_mode_too() {
    let emu = start_certificates();
    let res = client(&emu)
        .chain("v3/certificates/{empty}")
        .get(json!({}))
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(emu.requests()[0].target, "/v3/certificates/");
}

#[test]
fn data_in_a_path_or_query_goes_out_as_written() {
    let emu = start();
    let c = client(&emu);
    c.chain("v3/pay/transactions/native")
        .post(json!({"json": native_order(&emu, "T1000001")}))
        .unwrap();
    let uri = format!(
        "v3/pay/transactions/out-trade-no/T1000001?mchid={}",
        emu.mchid()
    );
    let res = c.chain(&uri).get(json!({})).unwrap();
    let order: Value = res.json().unwrap();
    assert_eq!(order["out_trade_no"], "T1000001");
    // Indexed segment by segment, as a PHP chain.
    let res = c["v3"]["pay"]["transactions"]["outTradeNo"]["T1000001"]
        .get(json!({"query": {"mchid": emu.mchid()}}))
        .unwrap();
    assert_eq!(res.status(), 200);
    let _ = c
        .chain("v3/bill/tradebill?bill_date=2024-06-01&bill_type=ALL")
        .get(json!({}));
    let targets: Vec<String> = emu.requests().into_iter().map(|r| r.target).collect();
    assert_eq!(
        targets[1..],
        [
            format!(
                "/v3/pay/transactions/out-trade-no/T1000001?mchid={}",
                emu.mchid()
            ),
            format!(
                "/v3/pay/transactions/out-trade-no/T1000001?mchid={}",
                emu.mchid()
            ),
            "/v3/bill/tradebill?bill_date=2024-06-01&bill_type=ALL".to_string(),
        ]
    );
}

/// The command line with the emulator's configuration in its environment.
struct Cli {
    dir: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Cli {
    fn new(emu: &Emulator, name: &str) -> Cli {
        let dir = std::env::temp_dir().join(format!("wcp-args-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("merchant.pem");
        let key_pem =
            wechatpay_emulator::private_key_pem(emu.merchant_private_key().unwrap()).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let public = dir.join("platform.pub");
        std::fs::write(&public, emu.platform_public_key_pem().unwrap()).unwrap();
        let env = vec![
            ("WECHATPAY_BASE_URI", emu.base_uri()),
            ("WECHATPAY_MCHID", emu.mchid().to_string()),
            ("WECHATPAY_SERIAL", emu.merchant_serial().to_string()),
            ("WECHATPAY_PRIVATE_KEY", key.display().to_string()),
            ("WECHATPAY_PUBLIC_KEY", public.display().to_string()),
            ("WECHATPAY_PUBLIC_KEY_ID", emu.platform_serial().to_string()),
        ];
        Cli { dir, env }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wechatpay"));
        cmd.args(args).current_dir(&self.dir);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn the_command_line_is_strict_by_default_and_lenient_on_request() {
    let emu = start();
    let cli = Cli::new(&emu, "strict");
    // A placeholder missing from ARGS: exit 2 naming it, nothing sent.
    let (code, _, err) = cli.run(&[
        "get",
        "v3/refund/domestic/refunds/{out_refund_no}",
        r#"{"out_refund_num":"R1"}"#,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("out_refund_no"), "{err}");
    // The json wrapper forgotten.
    let order = native_order(&emu, "T-CLI-1").to_string();
    let (code, _, err) = cli.run(&["post", "v3/pay/transactions/native", &order]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"json\""), "{err}");
    assert!(emu.requests().is_empty(), "nothing sent");

    // --lenient: sent as wechatpay-php sends it (the platform then answers 404).
    let (code, _, err) = cli.run(&[
        "--lenient",
        "get",
        "v3/refund/domestic/refunds/{out_refund_no}",
        r#"{"out_refund_num":"R1"}"#,
    ]);
    assert_eq!(code, 6, "{err}");
    assert_eq!(emu.requests()[0].target, "/v3/refund/domestic/refunds/");
}

#[test]
fn the_command_line_keeps_data_in_the_uri_and_writes_sink() {
    let emu = start();
    let cli = Cli::new(&emu, "data");
    let order = json!({"json": native_order(&emu, "T1000001")}).to_string();
    let (code, _, err) = cli.run(&["post", "v3/pay/transactions/native", &order]);
    assert_eq!(code, 0, "{err}");
    let uri = format!(
        "v3/pay/transactions/out-trade-no/T1000001?mchid={}",
        emu.mchid()
    );
    let (code, out, err) = cli.run(&["get", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"T1000001\""), "{out}");
    // Dot-joined chain segments are names; the query after them is kept as written.
    let (code, _, err) = cli.run(&[
        "get",
        &format!(
            "v3.pay.transactions.outTradeNo._out_trade_no_?mchid={}",
            emu.mchid()
        ),
        r#"{"out_trade_no":"T1000001","sink":"answer.json"}"#,
    ]);
    assert_eq!(code, 0, "{err}");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(cli.dir.join("answer.json")).unwrap()).unwrap();
    assert_eq!(saved["out_trade_no"], "T1000001");
    let targets: Vec<String> = emu.requests().into_iter().map(|r| r.target).collect();
    let want = format!(
        "/v3/pay/transactions/out-trade-no/T1000001?mchid={}",
        emu.mchid()
    );
    assert_eq!(targets[1..], [want.clone(), want]);
}
