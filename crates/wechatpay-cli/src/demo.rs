//! `wechatpay demo`: the seeds' story against the local emulator, through the library the way
//! the docs show it, with a transcript. Fresh keys, loopback only, nothing to configure.

/// `println!` that ignores a closed stdout instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use std::convert::Infallible;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use wechatpay_chain::download::Bill;
use wechatpay_chain::notify::{Notification, Notifier};
use wechatpay_chain::{formatter, Builder, Client, Error, Response, Rsa};
use wechatpay_emulator::{Emulator, EmulatorConfig, Forgery, Mode};

const OUT_CARD_CODE: &str = "6e8369071cd942c0476613f9d1ce9ca3";
const CARD_TEMPLATE_ID: &str = "87789b2f25177433bcbf407e8e471f95";
const OUT_ORDER_NO: &str = "233bcbf407e87789b8e471f251774f95";
const APPID: &str = "wxd678efh567hg6787";

type Inbox = mpsc::UnboundedReceiver<Result<Notification, String>>;

/// The merchant's webhook receiver, as docs/toolkit.md shows it: `Notifier::verify` checks the
/// platform signature with the client's platform keys and decrypts the resource with the APIv3
/// key; it answers 204, or 401 when anything is off (the platform then retries).
async fn receiver(notifier: Notifier) -> std::io::Result<(String, Inbox)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/wechatpay/notify", listener.local_addr()?);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, notifier) = (tx.clone(), notifier.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (tx, notifier) = (tx.clone(), notifier.clone());
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = Limited::new(body, 1 << 20)
                            .collect()
                            .await
                            .map(|c| c.to_bytes())
                            .unwrap_or_default();
                        let got = notifier
                            .verify(&parts.headers, &body)
                            .map_err(|e| e.to_string());
                        let status = if got.is_ok() { 204 } else { 401 };
                        let _ = tx.send(got);
                        let mut res = hyper::Response::new(Full::new(Bytes::new()));
                        *res.status_mut() = hyper::StatusCode::from_u16(status)
                            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok((url, rx))
}

/// The transcript: numbered steps with status, verification, key fields and timings.
struct Transcript {
    steps: usize,
    failed: usize,
    started: Instant,
}

/// What a step shows when it passes.
struct Shown {
    method: &'static str,
    target: String,
    status: Option<u16>,
    /// What was verified, shown after the status.
    check: &'static str,
    fields: String,
}

fn shown(
    method: &'static str,
    target: impl Into<String>,
    res: &Response,
    fields: &[&str],
) -> Shown {
    let v: Value = res.json().unwrap_or(Value::Null);
    Shown {
        method,
        target: target.into(),
        status: Some(res.status().as_u16()),
        check: "signature verified",
        fields: fields
            .iter()
            .filter_map(|k| {
                let x = v.pointer(&format!("/{}", k.replace('.', "/")))?;
                Some(format!(
                    "{k}={}",
                    x.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| x.to_string())
                ))
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn note(text: impl Into<String>) -> Shown {
    Shown {
        method: "",
        target: String::new(),
        status: None,
        check: "",
        fields: text.into(),
    }
}

impl Transcript {
    fn step(&mut self, title: &str, run: impl FnOnce() -> Result<Shown, String>) {
        self.steps += 1;
        let t = Instant::now();
        let result = run();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let mut out = std::io::stdout().lock();
        match result {
            Ok(s) => {
                let _ = writeln!(out, "{:>3}. {title}", self.steps);
                if s.method.is_empty() {
                    let _ = writeln!(out, "     ok  {}  ({ms:.0} ms)", s.fields);
                } else {
                    let status = s.status.map(|c| c.to_string()).unwrap_or_default();
                    let verified = s.check;
                    let _ = writeln!(
                        out,
                        "     {} {}  →  {status}  {verified}  ({ms:.0} ms)",
                        s.method, s.target
                    );
                    if !s.fields.is_empty() {
                        let _ = writeln!(out, "     {}", s.fields);
                    }
                }
            }
            Err(e) => {
                self.failed += 1;
                let _ = writeln!(
                    out,
                    "{:>3}. {title}\n     FAILED: {e}  ({ms:.0} ms)",
                    self.steps
                );
            }
        }
    }
}

fn err(e: Error) -> String {
    crate::chain_line(&e)
}

fn expect_status(res: &Response, want: u16) -> Result<(), String> {
    if res.status().as_u16() == want {
        Ok(())
    } else {
        Err(format!("expected HTTP {want}, got {}", res.status()))
    }
}

fn wait(rt: &Runtime, inbox: &mut Inbox, want: &str) -> Result<Notification, String> {
    let got =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(10), inbox.recv()).await });
    match got {
        Ok(Some(Ok(r))) if r.event_type == want => Ok(r),
        Ok(Some(Ok(r))) => Err(format!("expected {want}, received {}", r.event_type)),
        Ok(Some(Err(e))) => Err(format!("the receiver refused the notification: {e}")),
        Ok(None) => Err("the receiver stopped".into()),
        Err(_) => Err(format!("no {want} notification within 10 s")),
    }
}

pub fn run() -> Result<bool, Error> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let emu = rt.block_on(Emulator::start_async(EmulatorConfig::new()))?;
    let client: Client = emu.builder().build()?;
    let (notify_url, mut inbox) = rt.block_on(receiver(client.notifier(emu.apiv3_key())?))?;
    say!("wechatpay demo: the documented story against a local WeChat Pay emulator");
    say!(
        "  platform  {} (public-key mode, Wechatpay-Serial {})",
        emu.base_uri(),
        emu.platform_serial()
    );
    say!(
        "  merchant  mchid {}, serial {}, keys generated just now",
        emu.mchid(),
        emu.merchant_serial()
    );
    say!("  webhooks  {notify_url}");
    say!("");
    let mut t = Transcript {
        steps: 0,
        failed: 0,
        started,
    };

    t.step("Prepare a discount card (sync, pure chain)", || {
        let res = client["v3"]["discountCard"]["cards"]
            .post(json!({"json": {
                "out_card_code": OUT_CARD_CODE, "card_template_id": CARD_TEMPLATE_ID,
                "appid": APPID, "notify_url": notify_url,
            }}))
            .map_err(err)?;
        Ok(shown(
            "POST",
            "/v3/discount-card/cards",
            &res,
            &["prepare_card_token"],
        ))
    });
    t.step(
        "The user takes the card in the mini program (emulator)",
        || {
            let order = emu
                .accept_card(OUT_CARD_CODE, Some(OUT_ORDER_NO))
                .map_err(err)?;
            Ok(note(format!(
                "order out_order_no={} state={}",
                order["out_order_no"].as_str().unwrap_or_default(),
                order["state"].as_str().unwrap_or_default()
            )))
        },
    );
    let records = json!({
        "out_card_code": OUT_CARD_CODE,
        "json": {
            "card_template_id": CARD_TEMPLATE_ID,
            "objective_completion_records": [{
                "objective_completion_serial_no": "578354545", "objective_id": "123456",
                "completion_time": "2015-05-20T13:29:35.120+08:00", "completion_type": "INCREASE",
                "description": "购买商品", "completion_count": 1, "remark": "特价商品",
            }],
            "reward_usage_records": [{
                "reward_usage_serial_no": "578354", "reward_id": "123456",
                "usage_time": "2015-05-20T13:29:35.120+08:00", "usage_type": "INCREASE",
                "description": "购买商品", "usage_count": 1, "amount": 100, "remark": "特价商品",
            }],
        },
    });
    t.step("Add user records (sync, index)", || {
        let res = client["v3/discount-card/cards/{out_card_code}/add-user-records"]
            .post(records.clone())
            .map_err(err)?;
        expect_status(&res, 204)?;
        let mut s = shown(
            "POST",
            format!("/v3/discount-card/cards/{OUT_CARD_CODE}/add-user-records"),
            &res,
            &[],
        );
        s.fields = "no content, as documented".into();
        Ok(s)
    });
    t.step("Update the order (async, pure chain)", || {
        let fut = client["v3"]["discountCard"]["orders"]["_out_order_no_"].patch_async(json!({
            "out_order_no": OUT_ORDER_NO,
            "json": {
                "objectives": [{
                    "objective_serial_no": "578354546", "objective_id": 123456,
                    "performance_description": "购买商品", "performance_type": "INCREASE",
                    "count": 1, "performance_time": "2015-05-20T13:29:35.120+08:00", "remark": "特价商品",
                }],
                "rewards": [{
                    "reward_serial_no": "578355", "reward_id": 123456, "description": "购买商品",
                    "reward_type": "INCREASE", "count": 1, "amount": 100,
                    "reward_time": "2015-05-20T13:29:35.120+08:00", "remark": "特价商品",
                }],
            },
        }));
        let res = rt.block_on(fut).map_err(err)?;
        Ok(shown("PATCH", format!("/v3/discount-card/orders/{OUT_ORDER_NO}"), &res, &["out_order_no", "order_id"]))
    });
    t.step("Query the order (sync, declarative)", || {
        let res = client
            .chain("v3/discount-card/orders/{out_order_no}")
            .get(json!({"out_order_no": OUT_ORDER_NO}))
            .map_err(err)?;
        let v: Value = res.json().map_err(err)?;
        let n = (
            v["objectives"].as_array().map_or(0, Vec::len),
            v["rewards"].as_array().map_or(0, Vec::len),
        );
        if n != (2, 2) {
            return Err(format!("expected 2 objectives and 2 rewards, got {n:?}"));
        }
        let mut s = shown(
            "GET",
            format!("/v3/discount-card/orders/{OUT_ORDER_NO}"),
            &res,
            &["state", "total_amount"],
        );
        s.fields
            .push_str(&format!(" objectives={} rewards={}", n.0, n.1));
        Ok(s)
    });
    t.step("Query the order by out_trade_no (async, index)", || {
        let fut = client["v3/discount-card/orders/out-trade-no/{out_trade_no}"]
            .get_async(json!({"out_trade_no": OUT_CARD_CODE}));
        let res = rt.block_on(fut).map_err(err)?;
        Ok(shown(
            "GET",
            format!("/v3/discount-card/orders/out-trade-no/{OUT_CARD_CODE}"),
            &res,
            &["out_order_no", "order_id"],
        ))
    });
    t.step("Sync brand member points (async, declarative)", || {
        let fut = client.chain("v3/brand/partner/card-member/user-points/sync").post_async(json!({
            "json": {
                "out_request_no": "100002322019090134234sfdf", "brand_id": "1004",
                "card_id": "pbLatjvWOibDc5-TBnbUk1pD12o0", "openid": "obLatjnx9gnqzS4myYGmLZ7LgLBA",
                "user_card_code": "478515832665", "point_balance": 1000,
            },
        }));
        let res = rt.block_on(fut).map_err(err)?;
        Ok(shown(
            "POST",
            "/v3/brand/partner/card-member/user-points/sync",
            &res,
            &["user_card_code", "point_balance"],
        ))
    });
    let out_trade_no = format!("demo{}", formatter::timestamp());
    t.step("Create a Native payment", || {
        let res = client
            .chain("v3/pay/transactions/native")
            .post(json!({"json": {
                "appid": APPID, "mchid": emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
                "out_trade_no": out_trade_no, "notify_url": notify_url,
                "amount": {"total": 100, "currency": "CNY"},
            }}))
            .map_err(err)?;
        Ok(shown(
            "POST",
            "/v3/pay/transactions/native",
            &res,
            &["code_url"],
        ))
    });
    t.step(
        "The user scans and pays; the notification arrives, verified and decrypted",
        || {
            emu.pay(&out_trade_no).map_err(err)?;
            let n = wait(&rt, &mut inbox, "TRANSACTION.SUCCESS")?;
            Ok(note(format!(
            "{} → webhook signature verified, resource decrypted: trade_state={} transaction_id={}",
            n.event_type,
            n.resource["trade_state"].as_str().unwrap_or_default(),
            n.resource["transaction_id"].as_str().unwrap_or_default()
        )))
        },
    );
    // The day (Beijing time) the payment succeeded: its trade bill lists it.
    let mut paid_on = String::new();
    t.step("Query the payment", || {
        let res = client["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": out_trade_no, "query": {"mchid": emu.mchid()}}))
            .map_err(err)?;
        let v: Value = res.json().map_err(err)?;
        if v["trade_state"] != "SUCCESS" {
            return Err(format!("trade_state is {}", v["trade_state"]));
        }
        paid_on = v["success_time"]
            .as_str()
            .and_then(|t| t.get(..10))
            .unwrap_or_default()
            .to_string();
        Ok(shown(
            "GET",
            format!(
                "/v3/pay/transactions/out-trade-no/{out_trade_no}?mchid={}",
                emu.mchid()
            ),
            &res,
            &["trade_state", "amount.payer_total"],
        ))
    });
    t.step("Refund part of it; REFUND.SUCCESS arrives", || {
        let res = client["v3/refund/domestic/refunds"]
            .post(json!({"json": {
                "out_trade_no": out_trade_no, "out_refund_no": format!("R{out_trade_no}"),
                "notify_url": notify_url, "amount": {"refund": 40, "total": 100, "currency": "CNY"},
            }}))
            .map_err(err)?;
        let mut s = shown(
            "POST",
            "/v3/refund/domestic/refunds",
            &res,
            &["status", "amount.refund"],
        );
        let n = wait(&rt, &mut inbox, "REFUND.SUCCESS")?;
        s.fields.push_str(&format!(
            "; then {} verified and decrypted: refund_status={}",
            n.event_type,
            n.resource["refund_status"].as_str().unwrap_or_default()
        ));
        Ok(s)
    });
    t.step(
        "Download the day's trade bill: streamed, gunzipped, SHA1 checked",
        || {
            // A day's bill is made once the day has ended: the sandbox's clock moves a day on.
            emu.advance_clock(std::time::Duration::from_secs(86_400));
            let bill: Bill = client["v3/bill/tradebill"]
                .get(json!({"query": {"bill_date": paid_on, "tar_type": "GZIP"}}))
                .map_err(err)?
                .json()
                .map_err(err)?;
            let mut csv = Vec::new();
            let done = client
                .download_bill(&bill, json!({}), &mut csv)
                .map_err(err)?;
            let csv = String::from_utf8(csv).map_err(|e| e.to_string())?;
            // The payment's line, and its refund's unless Beijing midnight fell in between.
            let rows = csv.lines().filter(|l| l.contains(&out_trade_no)).count();
            if rows == 0 {
                return Err(format!("the payment {out_trade_no} is not in the bill"));
            }
            Ok(note(format!(
                "GET /v3/bill/tradebill?bill_date={paid_on}, then the file: {} bytes, sha1 {} matches; {rows} line(s) of this order in it",
                done.bytes,
                done.digest.unwrap_or_default()
            )))
        },
    );
    t.step("APIv2 micropay: XML, the sign checked both ways", || {
        let res = client
            .chain("v2/pay/micropay")
            .post(json!({"xml": {
                "appid": APPID, "mch_id": emu.mchid(), "body": "image形象店-深圳腾大- QQ公仔",
                "out_trade_no": format!("v2{out_trade_no}"), "total_fee": "1",
                "spbill_create_ip": "14.17.22.52", "auth_code": "120061098828009406",
            }}))
            .map_err(err)?;
        let mut s = shown(
            "POST",
            "/pay/micropay",
            &res,
            &["result_code", "transaction_id"],
        );
        s.check = "sign verified";
        Ok(s)
    });
    t.step(
        "A forged answer (body changed after signing) is refused",
        || {
            emu.forge_next(Forgery::TamperedBody);
            match client
                .chain("v3/discount-card/orders/{out_order_no}")
                .get(json!({"out_order_no": OUT_ORDER_NO}))
            {
                Err(Error::Verification(why)) => Ok(note(format!("refused: {why}"))),
                Err(e) => Err(format!("expected a verification failure, got: {e}")),
                Ok(_) => Err("the forged answer was accepted".into()),
            }
        },
    );
    t.step(
        "A request signed with another key is refused by the platform",
        || {
            let other = openssl::rsa::Rsa::generate(2048).map_err(|e| e.to_string())?;
            let pem = String::from_utf8(other.private_key_to_pem().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            let impostor = emu
                .builder()
                .private_key(Rsa::from_private(&pem).map_err(err)?)
                .build()
                .map_err(err)?;
            match impostor
                .chain("v3/discount-card/orders/{out_order_no}")
                .get(json!({"out_order_no": OUT_ORDER_NO}))
            {
                Err(e @ Error::Api { status: 401, .. }) if e.code() == Some("SIGN_ERROR") => {
                    Ok(note(format!("refused: {e}")))
                }
                Err(e) => Err(format!("expected 401 SIGN_ERROR, got: {e}")),
                Ok(_) => Err("the platform accepted a request signed with another key".into()),
            }
        },
    );

    // Certificate mode: a second platform that signs with a certificate it issued itself.
    let cert_emu = rt.block_on(Emulator::start_async(
        EmulatorConfig::new()
            .mode(Mode::Certificate)
            .merchant_serial(emu.merchant_serial())
            .merchant_private_key(
                emu.merchant_private_key()
                    .cloned()
                    .ok_or_else(|| Error::config("no merchant key"))?,
            )
            .apiv3_key(emu.apiv3_key()),
    ))?;
    say!("");
    say!("  platform  {} (certificate mode)", cert_emu.base_uri());
    let downloaded = Mutex::new(None);
    t.step(
        "Download the platform certificate, decrypt it, verify the answer with it",
        || {
            let bare = Builder::new()
                .base_uri(cert_emu.base_uri())
                .mchid(cert_emu.mchid())
                .serial(cert_emu.merchant_serial())
                .private_key(
                    cert_emu
                        .merchant_private_key()
                        .cloned()
                        .ok_or("no merchant key")?,
                )
                .build()
                .map_err(err)?;
            let certs = bare
                .download_certificates(cert_emu.apiv3_key())
                .map_err(err)?;
            let c = certs.first().ok_or("no certificate")?;
            let s = Shown {
                method: "GET",
                target: "/v3/certificates".into(),
                status: Some(200),
                check: "signature verified",
                fields: format!(
                    "serial_no={} valid {} → {}",
                    c.serial, c.effective_time, c.expire_time
                ),
            };
            *downloaded.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.certificate.clone());
            Ok(s)
        },
    );
    t.step("A call verified with the downloaded certificate", || {
        let cert = downloaded.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or("no certificate downloaded")?;
        let c = Builder::new()
            .base_uri(cert_emu.base_uri())
            .mchid(cert_emu.mchid())
            .serial(cert_emu.merchant_serial())
            .private_key(cert_emu.merchant_private_key().cloned().ok_or("no merchant key")?)
            .platform_certificate(cert)
            .build()
            .map_err(err)?;
        let res = c["v3"]["pay"]["transactions"]["jsapi"]
            .post(json!({"json": {
                "appid": APPID, "mchid": cert_emu.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
                "out_trade_no": out_trade_no, "notify_url": notify_url,
                "amount": {"total": 1}, "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
            }}))
            .map_err(err)?;
        Ok(shown("POST", "/v3/pay/transactions/jsapi", &res, &["prepay_id"]))
    });

    let requests = emu.requests().len() + cert_emu.requests().len();
    rt.block_on(async {
        cert_emu.stop_async().await;
        emu.stop_async().await;
    });
    say!("");
    say!(
        "summary: {} steps, {} passed, {} failed; {requests} requests checked by the platform; {:.2} s",
        t.steps,
        t.steps - t.failed,
        t.failed,
        t.started.elapsed().as_secs_f64()
    );
    Ok(t.failed == 0)
}
