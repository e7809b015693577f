//! A webhook receiver in an axum service: every notification is checked (signature, time
//! window, platform key) and decrypted before the handler believes a word of it; a refusal is
//! answered non-2xx so that the platform sends it again; a notification seen before is
//! acknowledged without being processed twice (the platform retries until it gets a 2xx).
//!
//! Run on its own, it starts the local sandbox, makes an order whose `notify_url` is this
//! service, plays the user paying, and waits for the notification to be accepted:
//!
//! ```sh
//! cargo run --example webhook_axum
//! ```

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use wechatpay_chain::notify::Notifier;
use wechatpay_emulator::{Emulator, EmulatorConfig, Outcome};

/// What the handlers share: the notifier (platform keys + APIv3 key) and the ids already done.
#[derive(Clone)]
struct App {
    notifier: Arc<Notifier>,
    done: Arc<Mutex<HashSet<String>>>,
}

/// `POST /wechatpay/notify`: the raw body is needed, exactly as it came, for the signature.
async fn notify(
    State(app): State<App>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let notification = match app.notifier.verify(&headers, &body) {
        Ok(n) => n,
        Err(e) => {
            // Not from the platform, too old, or damaged: never acted on. The platform's own
            // signature probes land here too, and must be refused like any bad signature.
            eprintln!("refused a notification: {e}");
            let reply = json!({"code": "FAIL", "message": "signature check failed"});
            return (StatusCode::UNAUTHORIZED, Json(reply));
        }
    };
    let first_time = app
        .done
        .lock()
        .map(|mut done| done.insert(notification.id.clone()))
        .unwrap_or(false);
    if first_time {
        match notification.event_type.as_str() {
            "TRANSACTION.SUCCESS" => println!(
                "paid: {} ({} fen), transaction {}",
                notification.resource["out_trade_no"],
                notification.resource["amount"]["total"],
                notification.resource["transaction_id"],
            ),
            other => println!("{other}: {}", notification.plaintext),
        }
    }
    // 2xx with no body, or 200 with this, tells the platform to stop sending it.
    (
        StatusCode::OK,
        Json(json!({"code": "SUCCESS", "message": "成功"})),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start_async(EmulatorConfig::new()).await?;
    let client = emulator.builder().build()?;
    let app = App {
        notifier: Arc::new(client.notifier(emulator.apiv3_key())?),
        done: Arc::default(),
    };
    let router = Router::new()
        .route("/wechatpay/notify", post(notify))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let notify_url = format!("http://{}/wechatpay/notify", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, router).await });

    let no = "1217752501201407033233368018";
    client["v3/pay/transactions/native"]
        .post_async(json!({"json": {
            "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(), "description": "回调示例",
            "out_trade_no": no, "notify_url": notify_url, "amount": {"total": 100},
        }}))
        .await?;
    emulator.pay(no)?;

    // The sandbox delivers in the background; wait (bounded) for the handler's answer.
    for _ in 0..100 {
        if let Some(d) = emulator.deliveries().into_iter().next() {
            if !matches!(d.outcome, Outcome::Failed(_)) || d.attempt > 1 {
                println!("delivery {}: {:?}", d.event_type, d.outcome);
                assert!(matches!(d.outcome, Outcome::Accepted(_)), "{:?}", d.outcome);
                emulator.stop_async().await;
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("no notification was delivered within 5 s".into())
}
