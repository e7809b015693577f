//! A front end's view of a payment: the merchant's server places a JSAPI order, hands its page
//! the signed parameters for `wx.requestPayment` (or `WeixinJSBridge`), the payer pays in
//! WeChat, whose client checks them, and the server verifies the notification.
//!
//! It runs against the local sandbox, which plays the platform and the payer's WeChat client:
//!
//! ```sh
//! cargo run --example front_end_payment
//! ```

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use wechatpay_emulator::{Emulator, EmulatorConfig};

const APPID: &str = "wxd678efh567hg6787";
const OPENID: &str = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o";

/// The merchant's notification endpoint: hands each notification over as it came.
async fn notify(
    State(tx): State<mpsc::UnboundedSender<(HeaderMap, Bytes)>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = tx.send((headers, body));
    StatusCode::NO_CONTENT
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start_async(EmulatorConfig::new()).await?;
    // In production: Builder::new().mchid(..).serial(..).private_key(..).platform_public_key(..)
    let client = emulator.builder().build()?;

    let (tx, mut notifications) = mpsc::unbounded_channel();
    let router = Router::new()
        .route("/wechatpay/notify", post(notify))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/wechatpay/notify", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    // 1. The server places the order for the payer (their openid in this appid).
    let no = "1217752501201407033233368018";
    let order: Value = client["v3/pay/transactions/jsapi"]
        .post_async(json!({"json": {
            "appid": APPID, "mchid": emulator.mchid(), "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": no, "notify_url": notify_url, "amount": {"total": 100},
            "payer": {"openid": OPENID},
        }}))
        .await?
        .json()?;
    let prepay_id = order["prepay_id"].as_str().ok_or("no prepay_id")?;

    // 2. The parameters the page needs, signed with the merchant key the client holds:
    //    wx.requestPayment({...params, success, fail}) in a mini program,
    //    WeixinJSBridge.invoke('getBrandWCPayRequest', params, callback) in WeChat's browser.
    let params = client.jsapi_pay_params(APPID, prepay_id)?;
    println!("for the page: {}", serde_json::to_string(&params)?);

    // 3. The payer pays: the sandbox checks the parameters as the WeChat client does (appId,
    //    package, signType, timeStamp, paySign) and refuses wrong ones, saying why.
    let mut tampered = params.clone();
    tampered.package = "prepay_id=wx-another-order".into();
    match emulator.request_payment(no, &tampered) {
        Err(e) => println!("tampered parameters refused: {e}"),
        Ok(_) => return Err("the sandbox paid with tampered parameters".into()),
    }
    let paid = emulator.request_payment(no, &params)?;
    println!("paid: {}", paid["trade_state"]);

    // 4. The notification, verified (platform signature, time) and decrypted (APIv3 key).
    let (headers, body) = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await?
        .ok_or("the notification endpoint stopped")?;
    let n = client
        .notifier(emulator.apiv3_key())?
        .verify(&headers, &body)?;
    println!(
        "{}: {} paid by {}, transaction {}",
        n.event_type,
        n.resource["out_trade_no"],
        n.resource["payer"]["openid"],
        n.resource["transaction_id"]
    );
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource["out_trade_no"], no);
    emulator.stop_async().await;
    Ok(())
}
