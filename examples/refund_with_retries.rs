//! A refund that survives a flaky network: retries the platform's way, and an outcome that is
//! not known is settled by querying, never by refunding again.
//!
//! ```sh
//! cargo run --example refund_with_retries
//! ```

use std::time::Duration;

use serde_json::{json, Value};
use wechatpay_chain::{Client, Error, RetryPolicy};
use wechatpay_emulator::{Emulator, EmulatorConfig};

/// Asks for a refund once; when the platform may or may not have taken it, asks what happened.
fn refund(client: &Client, out_trade_no: &str, out_refund_no: &str) -> Result<Value, Error> {
    let asked = client["v3/refund/domestic/refunds"].post(json!({"json": {
        "out_trade_no": out_trade_no, "out_refund_no": out_refund_no, "reason": "商品已售完",
        "amount": {"refund": 100, "total": 100, "currency": "CNY"},
    }}));
    match asked {
        Ok(res) => res.json(),
        // 429 on a money-moving call, or a transport failure after the request left: the
        // refund may exist. The same out_refund_no is safe to query (and to ask again later).
        Err(Error::OutcomeUnknown { .. }) => {
            eprintln!("outcome unknown: querying {out_refund_no}");
            client
                .chain("v3/refund/domestic/refunds/{out_refund_no}")
                .get(json!({ "out_refund_no": out_refund_no }))?
                .json()
        }
        Err(e) => Err(e),
    }
}

fn main() -> Result<(), Error> {
    let emulator = Emulator::start(EmulatorConfig::new())?;
    let client = emulator
        .builder()
        // Transport failures before any byte of the answer, 5xx SYSTEM_ERROR and the like are
        // tried again, with a fresh signature each time, within 10 s in all.
        .retry(
            RetryPolicy::new()
                .max_attempts(4)
                .backoff(Duration::from_millis(100), Duration::from_secs(1))
                .deadline(Duration::from_secs(10)),
        )
        .build()?;

    let no = "1217752501201407033233368018";
    client["v3/pay/transactions/native"].post(json!({"json": {
        "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(), "description": "退款示例",
        "out_trade_no": no, "notify_url": "https://127.0.0.1:1/notify", "amount": {"total": 100},
    }}))?;
    emulator.pay(no)?;

    let refund = refund(&client, no, "R1217752501201407033233368018")?;
    println!("refund {} is {}", refund["refund_id"], refund["status"]);
    assert!(refund["status"] == "PROCESSING" || refund["status"] == "SUCCESS");
    Ok(())
}
