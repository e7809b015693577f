//! Public-key migration: the emulator, given both a certificate and a public key, signs each
//! answer with the key the request names in Wechatpay-Serial.

use serde_json::json;
use wechatpay_chain::Builder;

#[test]
fn the_emulator_signs_with_the_key_the_request_names() {
    use wechatpay_emulator::{Emulator, EmulatorConfig, Mode};
    let emu = Emulator::start(
        EmulatorConfig::new()
            .mode(Mode::Certificate)
            .public_key_alongside(true),
    )
    .unwrap();
    let (id, _) = emu.public_key_alongside().unwrap();
    let id = id.to_string();
    let cert = emu.platform_certificate().unwrap().serial().to_string();
    let order = |client: &wechatpay_chain::Client, n: &str| {
        let res = client
            .chain("v3/pay/transactions/native")
            .post(json!({"json": {
                "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "x",
                "out_trade_no": n, "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
                "amount": {"total": 100},
            }}))
            .unwrap();
        res.headers()["wechatpay-serial"]
            .to_str()
            .unwrap()
            .to_string()
    };
    // Configured with both, the client names (and gets) the public key.
    let client = emu.builder().build().unwrap();
    assert_eq!(order(&client, "T-PUB-1"), id);
    // Pinned to the certificate: answers stay signed by the certificate.
    let pinned = emu.builder().wechatpay_serial(&cert).build().unwrap();
    assert_eq!(order(&pinned, "T-CERT-1"), cert);
    // A client that knows only the certificate (names it) keeps working.
    let old = Builder::new()
        .base_uri(emu.base_uri())
        .mchid(emu.mchid())
        .serial(emu.merchant_serial())
        .private_key(emu.merchant_private_key().unwrap().clone())
        .platform_certificate(emu.platform_certificate().unwrap().clone())
        .build()
        .unwrap();
    assert_eq!(order(&old, "T-CERT-2"), cert);
    let named: Vec<String> = emu
        .requests()
        .iter()
        .map(|r| r.headers["wechatpay-serial"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(named, vec![id.clone(), cert.clone(), cert.clone()]);
}

#[test]
fn the_emulator_compares_named_serials_as_numbers() {
    use wechatpay_emulator::{Emulator, EmulatorConfig, Mode};
    let emu = Emulator::start(EmulatorConfig::new().mode(Mode::Certificate)).unwrap();
    let cert = emu.platform_certificate().unwrap().serial().to_string();
    let client = emu.builder().build().unwrap();
    let order = |n: &str, serial: &str| {
        client
            .chain("v3/pay/transactions/native")
            .post(json!({
                "headers": {"Wechatpay-Serial": serial},
                "json": {
                    "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "x",
                    "out_trade_no": n, "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
                    "amount": {"total": 100},
                },
            }))
            .map(|r| r.status().as_u16())
            .map_err(|e| e.code().unwrap_or_default().to_string())
    };
    // The same number written with a leading zero, or in lower case, names the same key.
    assert_eq!(order("T-SER-1", &format!("0{cert}")), Ok(200));
    assert_eq!(order("T-SER-2", &cert.to_ascii_lowercase()), Ok(200));
    // Another number does not.
    assert_eq!(order("T-SER-3", "1234ABCD"), Err("PARAM_ERROR".to_string()));
}
