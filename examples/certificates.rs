//! Platform certificates: download, decrypt and check them (wechatpay-php's
//! CertificateDownloader), then let the client keep them fresh by itself.
//!
//! ```sh
//! cargo run --example certificates
//! ```

use serde_json::json;
use wechatpay_chain::{Builder, Error};
use wechatpay_emulator::{Emulator, EmulatorConfig, Mode};

fn main() -> Result<(), Error> {
    // A platform that still signs with certificates (merchants before the public-key switch).
    let emulator = Emulator::start(EmulatorConfig::new().mode(Mode::Certificate))?;
    let merchant_key = emulator
        .merchant_private_key()
        .expect("the sandbox made the merchant key")
        .clone();
    // The merchant's own settings only: no platform key yet.
    let merchant = || {
        Builder::new()
            .base_uri(emulator.base_uri())
            .mchid(emulator.mchid())
            .serial(emulator.merchant_serial())
            .private_key(merchant_key.clone())
    };

    // Once, by hand: each certificate is decrypted with the APIv3 key and the answer is checked
    // with the certificates it carries.
    let downloaded = merchant()
        .build()?
        .download_certificates(emulator.apiv3_key())?;
    for cert in &downloaded {
        println!(
            "platform certificate {} valid until {}",
            cert.serial, cert.expire_time
        );
    }

    // In production: auto_certificates downloads at build, every 12 h, and when an answer
    // names a serial the client does not know yet.
    let client = merchant().auto_certificates(emulator.apiv3_key()).build()?;
    let res = client["v3/pay/transactions/native"].post(json!({"json": {
        "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(), "description": "证书示例",
        "out_trade_no": "1217752501201407033233368018", "notify_url": "https://127.0.0.1:1/n",
        "amount": {"total": 1},
    }}))?;
    println!(
        "answer {} verified with the downloaded certificate",
        res.status()
    );
    Ok(())
}
