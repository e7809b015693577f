//! `wechatpay sandbox` against `wechatpay serve` in a child process (plain HTTP and TLS): a
//! payment paid, failed and closed, a refund succeeded, closed and abnormal, each printing the
//! new state as JSON; the notification a payment sends, received on loopback and verified with
//! the library's `Notifier`; and the errors (unknown object, final state, no sandbox, not a
//! sandbox, an untrusted TLS sandbox) with their exit statuses.

mod served;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output};

use serde_json::{json, Value};
use wechatpay_chain::{Builder, Rsa};

/// `wechatpay serve ARGS --keys-dir DIR`, until dropped, with the variables of its env file.
struct Served {
    child: Child,
    dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Served {
    fn start(args: &[&str], name: &str) -> Served {
        let dir = std::env::temp_dir().join(format!("wcp-sandbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (child, env) = served::spawn(env!("CARGO_BIN_EXE_wechatpay"), args, &dir);
        Served { child, dir, env }
    }

    fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} missing from {:?}", self.env))
    }

    /// `wechatpay ARGS` with the env file's variables, `without` some of them.
    fn cli_without(&self, args: &[&str], without: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
        cmd.args(args)
            .env_remove("WECHATPAY_BASE_URI")
            .env_remove("SSL_CERT_FILE");
        for (k, v) in self
            .env
            .iter()
            .filter(|(k, _)| !without.contains(&k.as_str()))
        {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        self.cli_without(args, &[])
    }

    /// A sandbox subcommand that succeeds: its JSON on stdout.
    fn ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The library's client for the sandbox, with the keys of its env file.
    fn client(&self) -> wechatpay_chain::Client {
        Builder::new()
            .base_uri(self.var("WECHATPAY_BASE_URI"))
            .mchid(self.var("WECHATPAY_MCHID"))
            .serial(self.var("WECHATPAY_SERIAL"))
            .private_key(
                Rsa::from_private(&format!("file://{}", self.var("WECHATPAY_PRIVATE_KEY")))
                    .unwrap(),
            )
            .platform_public_key(
                self.var("WECHATPAY_PUBLIC_KEY_ID"),
                Rsa::from_public(&format!("file://{}", self.var("WECHATPAY_PUBLIC_KEY"))).unwrap(),
            )
            .build()
            .unwrap()
    }

    /// A command that fails: its exit status and its stderr.
    fn fails(&self, args: &[&str]) -> (i32, String) {
        let out = self.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty());
        (
            out.status.code().unwrap(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A notification endpoint on loopback taking one notification (answered 204).
struct Hook {
    url: String,
    got: std::thread::JoinHandle<(http::HeaderMap, Vec<u8>)>,
}

impl Hook {
    fn new() -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let got = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut headers = http::HeaderMap::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            assert!(line.starts_with("POST /notify "), "{line}");
            loop {
                line.clear();
                r.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (k, v) = l.split_once(':').unwrap();
                headers.insert(
                    http::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                    v.trim().parse().unwrap(),
                );
            }
            let len: usize = headers["content-length"].to_str().unwrap().parse().unwrap();
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            (&stream)
                .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                .unwrap();
            (headers, body)
        });
        Hook { url, got }
    }
}

fn order(mchid: &str, no: &str, url: &str) -> String {
    json!({"json": {"appid": "wxd678efh567hg6787", "mchid": mchid, "description": "d",
        "out_trade_no": no, "notify_url": url, "amount": {"total": 100, "currency": "CNY"}}})
    .to_string()
}

#[test]
fn sandbox_acts_on_payments_and_refunds_and_the_notification_verifies() {
    let s = Served::start(&[], "plain");
    let mchid = s.var("WECHATPAY_MCHID");
    let hook = Hook::new();
    s.ok(&[
        "post",
        "v3/pay/transactions/native",
        &order(&mchid, "sbx-pay-0001", &hook.url),
    ]);
    let paid = s.ok(&[
        "sandbox",
        "payment",
        "sbx-pay-0001",
        "paid",
        "--openid",
        "oSandbox-0001",
    ]);
    assert_eq!(paid["trade_state"], "SUCCESS");
    assert_eq!(paid["payer"]["openid"], "oSandbox-0001");
    // the notification, verified with the platform key and decrypted with the APIv3 key
    let (headers, body) = hook.got.join().unwrap();
    let n = s
        .client()
        .notifier(s.var("WECHATPAY_APIV3_KEY"))
        .unwrap()
        .verify(&headers, &body)
        .unwrap();
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource, paid);

    // The control token from the env file is needed: without it, or with another, the sandbox
    // refuses (exit 6) and the payment stays as it was.
    let token = s.var("WECHATPAY_SANDBOX_TOKEN");
    assert!(token.len() >= 32, "{token}");
    s.ok(&[
        "post",
        "v3/pay/transactions/native",
        &order(&mchid, "sbx-token-01", "http://127.0.0.1:9/notify"),
    ]);
    let without = s.cli_without(
        &["sandbox", "payment", "sbx-token-01", "paid"],
        &["WECHATPAY_SANDBOX_TOKEN"],
    );
    let err = String::from_utf8_lossy(&without.stderr);
    assert_eq!(without.status.code(), Some(6), "{err}");
    assert!(
        err.contains("401 UNAUTHORIZED") && err.contains("WECHATPAY_SANDBOX_TOKEN"),
        "{err}"
    );
    let (code, err) = s.fails(&[
        "sandbox",
        "payment",
        "sbx-token-01",
        "paid",
        "--token",
        "not-the-token",
    ]);
    assert!(code == 6 && err.contains("401 UNAUTHORIZED"), "{err}");
    assert!(!err.contains(&token), "{err}");
    let state = s.ok(&[
        "get",
        "v3/pay/transactions/out-trade-no/{out_trade_no}",
        &json!({"out_trade_no": "sbx-token-01", "query": {"mchid": mchid}}).to_string(),
    ]);
    assert_eq!(state["trade_state"], "NOTPAY");
    let v = s.ok(&["sandbox", "payment", "sbx-token-01", "closed"]);
    assert_eq!(v["trade_state"], "CLOSED");

    // failed and closed
    let url = "http://127.0.0.1:9/notify";
    for (no, action, state) in [
        ("sbx-fail-001", "failed", "PAYERROR"),
        ("sbx-close-01", "closed", "CLOSED"),
    ] {
        s.ok(&[
            "post",
            "v3/pay/transactions/native",
            &order(&mchid, no, url),
        ]);
        let v = s.ok(&["sandbox", "payment", no, action]);
        assert_eq!(v["trade_state"], state);
        let (code, err) = s.fails(&["sandbox", "payment", no, "paid"]);
        assert_eq!(code, 6, "{err}");
        assert!(
            err.contains("409 INVALID_STATE") && err.contains(state),
            "{err}"
        );
    }

    // refunds: succeeded; closed; abnormal
    for (i, action, status) in [
        (1, "succeeded", "SUCCESS"),
        (2, "closed", "CLOSED"),
        (3, "abnormal", "ABNORMAL"),
    ] {
        let no = format!("sbx-refund-{i}");
        s.ok(&[
            "post",
            "v3/refund/domestic/refunds",
            &json!({"json": {"out_trade_no": "sbx-pay-0001", "out_refund_no": no,
                "amount": {"refund": 10, "total": 100, "currency": "CNY"}}})
            .to_string(),
        ]);
        let v = s.ok(&["sandbox", "refund", &no, action]);
        assert_eq!(
            (v["status"].as_str(), v["out_refund_no"].as_str()),
            (Some(status), Some(no.as_str()))
        );
    }
    let (code, err) = s.fails(&["sandbox", "refund", "sbx-refund-1", "closed"]);
    assert_eq!(code, 6);
    assert!(
        err.contains("refund sbx-refund-1 closed") && err.contains("SUCCESS"),
        "{err}"
    );

    // a merchant transfer waits for the user: succeeded, or failed with a documented reason
    for (no, action, extra, state) in [
        ("sbxtransfer01", "succeeded", None, "SUCCESS"),
        ("sbxtransfer02", "failed", Some("NAME_NOT_CORRECT"), "FAIL"),
    ] {
        let created = s.ok(&[
            "post",
            "v3/fund-app/mch-transfer/transfer-bills",
            &json!({"json": {
                "appid": "wxf636efh567hg4356", "out_bill_no": no,
                "openid": "o-MYE42l80oelYMDE34nYD456Xoy", "transfer_amount": 100,
                "transfer_remark": "报销", "user_recv_perception": "现金奖励",
                "transfer_scene_id": "1000",
                "transfer_scene_report_infos": [
                    {"info_type": "活动名称", "info_content": "新会员有礼"},
                    {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
                ],
            }})
            .to_string(),
        ]);
        assert_eq!(created["state"], "WAIT_USER_CONFIRM", "{created}");
        let mut args = vec!["sandbox", "transfer", no, action];
        if let Some(reason) = extra {
            args.extend(["--reason", reason]);
        }
        let v = s.ok(&args);
        assert_eq!(
            (v["state"].as_str(), v["out_bill_no"].as_str()),
            (Some(state), Some(no))
        );
        if let Some(reason) = extra {
            assert_eq!(v["fail_reason"], reason);
        }
    }
    let (code, err) = s.fails(&["sandbox", "transfer", "sbxtransfer02", "succeeded"]);
    assert!(code == 6 && err.contains("409 INVALID_STATE"), "{err}");
    let (code, err) = s.fails(&[
        "sandbox",
        "transfer",
        "sbxtransfer01",
        "failed",
        "--reason",
        "NOPE",
    ]);
    assert!(
        code == 6 && err.contains("PARAM_ERROR") && err.contains("NAME_NOT_CORRECT"),
        "{err}"
    );
    let (code, err) = s.fails(&["sandbox", "transfer", "sbxtransfer03", "succeeded"]);
    assert!(code == 6 && err.contains("404 NOT_FOUND"), "{err}");

    // errors: unknown objects, unknown actions, a partner order's options
    let (code, err) = s.fails(&["sandbox", "payment", "sbx-none-001", "paid"]);
    assert_eq!(code, 6);
    assert!(err.contains("404 ORDER_NOT_EXIST"), "{err}");
    let (code, err) = s.fails(&["sandbox", "refund", "sbx-none-001", "succeeded"]);
    assert!(code == 6 && err.contains("RESOURCE_NOT_EXISTS"), "{err}");
    let (code, err) = s.fails(&["sandbox", "payment", "sbx-pay-0001", "refunded"]);
    assert!(code == 2 && err.contains("paid, failed, closed"), "{err}");
    let (code, err) = s.fails(&[
        "sandbox",
        "payment",
        "sbx-pay-0001",
        "paid",
        "--sub-mchid",
        "1900000109",
    ]);
    assert!(code == 6 && err.contains("1900000109"), "{err}");

    // no sandbox, or not a sandbox
    let out = s.cli_without(
        &["sandbox", "payment", "x", "paid"],
        &["WECHATPAY_BASE_URI"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("wechatpay serve"));
    let (code, err) = s.fails(&[
        "sandbox",
        "--base-uri",
        "http://127.0.0.1:1/",
        "payment",
        "x",
        "paid",
    ]);
    assert!(
        code == 4 && err.contains("no sandbox answers there"),
        "{err}"
    );
    let (code, err) = s.fails(&[
        "--base-uri",
        "https://api.mch.weixin.qq.com/",
        "sandbox",
        "payment",
        "x",
        "paid",
    ]);
    assert!(code == 3 && err.contains("loopback"), "{err}");
}

#[test]
fn sandbox_talks_to_a_tls_sandbox_with_its_ca() {
    let s = Served::start(&["--tls", "--write-timeout", "5"], "tls");
    assert!(s.var("WECHATPAY_BASE_URI").starts_with("https://"));
    let mchid = s.var("WECHATPAY_MCHID");
    s.ok(&[
        "post",
        "v3/pay/transactions/native",
        &order(&mchid, "sbx-tls-0001", "http://127.0.0.1:9/n"),
    ]);
    // SSL_CERT_FILE (the env file's) trusts its CA
    let v = s.ok(&["sandbox", "payment", "sbx-tls-0001", "closed"]);
    assert_eq!(v["trade_state"], "CLOSED");
    // without it the sandbox is not trusted; --ca trusts it again
    let out = s.cli_without(
        &["sandbox", "payment", "sbx-tls-0001", "paid"],
        &["SSL_CERT_FILE"],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ca"));
    let ca = s.dir.join("ca.pem");
    let out = s.cli_without(
        &[
            "sandbox",
            "--ca",
            ca.to_str().unwrap(),
            "payment",
            "sbx-tls-0001",
            "paid",
        ],
        &["SSL_CERT_FILE"],
    );
    assert_eq!(
        out.status.code(),
        Some(6),
        "the sandbox answered: the order is closed"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("409 INVALID_STATE"));
}

/// `wechatpay sandbox payment sbx-front-001 paid --request-payment GIVEN`.
fn paying(given: &str) -> [&str; 6] {
    [
        "sandbox",
        "payment",
        "sbx-front-001",
        "paid",
        "--request-payment",
        given,
    ]
}

#[test]
fn sandbox_pays_with_front_end_parameters_it_checks() {
    let s = Served::start(&[], "front");
    let mchid = s.var("WECHATPAY_MCHID");
    let hook = Hook::new();
    let appid = "wxd678efh567hg6787";
    let created = s.ok(&[
        "post",
        "v3/pay/transactions/jsapi",
        &json!({"json": {"appid": appid, "mchid": mchid, "description": "d",
            "out_trade_no": "sbx-front-001", "notify_url": hook.url, "amount": {"total": 100},
            "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}}})
        .to_string(),
    ]);
    let prepay_id = created["prepay_id"].as_str().unwrap();
    let client = s.client();
    let params = client.jsapi_pay_params(appid, prepay_id).unwrap();

    // signed for another appid: refused, exit 6, the reason on stderr, still unpaid
    let wrong = client
        .jsapi_pay_params("wx8888888888888888", prepay_id)
        .unwrap();
    let (code, err) = s.fails(&paying(&serde_json::to_string(&wrong).unwrap()));
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("400 PARAM_ERROR") && err.contains("appId wx8888888888888888"),
        "{err}"
    );
    let mut forged = serde_json::to_value(&params).unwrap();
    forged["nonceStr"] = json!("another-nonce");
    let (code, err) = s.fails(&paying(&forged.to_string()));
    assert!(code == 6 && err.contains("支付验证签名失败"), "{err}");
    let (code, err) = s.fails(&paying("[1]"));
    assert!(
        code == 2 && err.contains("--request-payment must be a JSON object"),
        "{err}"
    );
    let state = s.ok(&[
        "get",
        "v3/pay/transactions/out-trade-no/{out_trade_no}",
        &json!({"out_trade_no": "sbx-front-001", "query": {"mchid": mchid}}).to_string(),
    ]);
    assert_eq!(state["trade_state"], "NOTPAY");

    // the right ones, from a file: paid, and the notification verifies
    let file = s.dir.join("request_payment.json");
    std::fs::write(&file, serde_json::to_vec(&params).unwrap()).unwrap();
    let paid = s.ok(&paying(&format!("@{}", file.display())));
    assert_eq!(paid["trade_state"], "SUCCESS");
    let (headers, body) = hook.got.join().unwrap();
    let n = client
        .notifier(s.var("WECHATPAY_APIV3_KEY"))
        .unwrap()
        .verify(&headers, &body)
        .unwrap();
    assert_eq!(n.resource, paid);
}

#[test]
fn sandbox_clock_shows_sets_and_advances_the_sandboxs_clock() {
    let s = Served::start(
        &[
            "--clock-start",
            "2026-12-07T10:00:00+08:00",
            "--clock-frozen",
        ],
        "clock",
    );
    let mchid = s.var("WECHATPAY_MCHID");
    let shown = s.ok(&["sandbox", "clock", "show"]);
    assert_eq!(shown["now"], "2026-12-07T10:00:00+08:00");
    assert_eq!(shown["frozen"], true);
    s.ok(&[
        "post",
        "v3/pay/transactions/native",
        &order(&mchid, "sbx-clock-01", "http://127.0.0.1:9/notify"),
    ]);
    let state = || {
        let v = s.ok(&[
            "get",
            "v3/pay/transactions/out-trade-no/{out_trade_no}",
            &json!({"out_trade_no": "sbx-clock-01", "query": {"mchid": mchid}}).to_string(),
        ]);
        v["trade_state"].as_str().unwrap().to_string()
    };
    // Two hours (the lifetime of an order without time_expire), less a second: still payable.
    let moved = s.ok(&["sandbox", "clock", "advance", "1h59m59s"]);
    assert_eq!(moved["now"], "2026-12-07T11:59:59+08:00");
    assert_eq!(state(), "NOTPAY");
    s.ok(&["sandbox", "clock", "advance", "1"]);
    assert_eq!(state(), "CLOSED");
    // set, in RFC 3339 or Unix seconds, frozen or running on
    let set = s.ok(&["sandbox", "clock", "set", "2027-01-01T00:00:00+08:00"]);
    assert_eq!(set["now"], "2027-01-01T00:00:00+08:00");
    let set = s.ok(&["sandbox", "clock", "set", "1796608800", "--running"]);
    assert_eq!(set["frozen"], false);
    assert!(
        set["now"].as_str().unwrap() >= "2026-12-07T10:00:00+08:00",
        "{set}"
    );
    // A wrong duration is the sandbox's 400, said on stderr (exit 6); no token, 401.
    let (code, err) = s.fails(&["sandbox", "clock", "advance", "soon"]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("PARAM_ERROR") && err.contains("clock advance"),
        "{err}"
    );
    let without = s.cli_without(
        &["sandbox", "clock", "advance", "1d"],
        &["WECHATPAY_SANDBOX_TOKEN"],
    );
    assert_eq!(without.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&without.stderr).contains("401"));
    // Reading needs no token.
    let read = s.cli_without(&["sandbox", "clock", "show"], &["WECHATPAY_SANDBOX_TOKEN"]);
    assert!(read.status.success());
}
