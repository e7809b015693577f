//! A sub-merchant's fund-flow bill: it comes in encrypted parts, each decrypted with the merchant
//! key, gunzipped and checked against its digest as it streams, then joined in order. The file
//! appears only once it is whole and checked.
//!
//! ```sh
//! cargo run --example sub_merchant_bill
//! ```

use std::io::Write;

use serde_json::json;
use wechatpay_chain::download::BillList;
use wechatpay_emulator::{Emulator, EmulatorConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(EmulatorConfig::new())?;
    let client = emulator.builder().build()?;
    // A payment, so that the day has a fund flow.
    client["v3/pay/transactions/native"].post(json!({"json": {
        "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(), "description": "账单示例",
        "out_trade_no": "1217752501201407033233368018", "notify_url": "https://127.0.0.1:1/n",
        "amount": {"total": 100},
    }}))?;
    let paid = emulator.pay("1217752501201407033233368018")?;
    let bill_date = &paid["success_time"].as_str().unwrap_or_default()[..10];
    // A day's bill is made once the day has ended: move the sandbox's clock a day on.
    emulator.advance_clock(std::time::Duration::from_secs(86_400));

    let parts: BillList = client["v3/bill/sub-merchant-fundflowbill"]
        .get(json!({"query": {
            "sub_mchid": "1900000109", "bill_date": bill_date,
            "account_type": "BASIC", "algorithm": "AEAD_AES_256_GCM",
        }}))?
        .json()?;

    // Written next to its final name, renamed only when every part checked out.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join(format!("fundflow-{bill_date}.csv"));
    let mut part = tempfile::NamedTempFile::new_in(dir.path())?;
    client.download_bills(&parts, json!({}), part.as_file_mut())?;
    part.as_file_mut().flush()?;
    part.persist(&path)?;

    let csv = std::fs::read_to_string(&path)?;
    println!("{} ({} lines)", path.display(), csv.lines().count());
    assert!(csv.starts_with("记账时间,"));
    Ok(())
}
