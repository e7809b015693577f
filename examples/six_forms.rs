//! The six forms of a call, as wechatpay-php shows them (纯链式, 声明式, 属性式; sync and async),
//! against the local sandbox, so it runs with no merchant account:
//!
//! ```sh
//! cargo run --example six_forms
//! ```

use serde_json::{json, Value};
use wechatpay_chain::Error;
use wechatpay_emulator::{Emulator, EmulatorConfig};

const CARD: &str = "6e8369071cd942c0476613f9d1ce9ca3";
const ORDER: &str = "233bcbf407e87789b8e471f251774f95";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let emulator = Emulator::start_async(EmulatorConfig::new()).await?;
    // In production: Builder::new().mchid(..).serial(..).private_key(..).platform_public_key(..)
    let client = emulator.builder().build()?;

    // A discount card for the user, so that there is an order to read.
    client["v3/discount-card/cards"]
        .post_async(json!({"json": {
            "out_card_code": CARD, "card_template_id": "87789b2f25177433bcbf407e8e471f95",
            "appid": "wxd678efh567hg6787", "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
        }}))
        .await?;
    emulator.accept_card(CARD, Some(ORDER))?;
    let args = json!({ "out_order_no": ORDER });

    // Blocking calls may be made from async code too: the client drives their I/O itself.
    let sync = [
        // 纯链式: $instance->v3->discountCard->orders->_out_order_no_->get([...])
        client["v3"]["discountCard"]["orders"]["_out_order_no_"].get(args.clone())?,
        // 声明式: $instance->chain('v3/discount-card/orders/{out_order_no}')->get([...])
        client
            .chain("v3/discount-card/orders/{out_order_no}")
            .get(args.clone())?,
        // 属性式: $instance['v3/discount-card/orders/{out_order_no}']->get([...])
        client["v3/discount-card/orders/{out_order_no}"].get(args.clone())?,
    ];
    let awaited = [
        client["v3"]["discountCard"]["orders"]["_out_order_no_"]
            .get_async(args.clone())
            .await?,
        client
            .chain("v3/discount-card/orders/{out_order_no}")
            .get_async(args.clone())
            .await?,
        client["v3/discount-card/orders/{out_order_no}"]
            .get_async(args)
            .await?,
    ];
    for (form, res) in ["纯链式", "声明式", "属性式"]
        .iter()
        .cycle()
        .zip(sync.iter().chain(awaited.iter()))
    {
        let order: Value = res.json()?;
        println!("{form}: {} state={}", res.status(), order["state"]);
        assert_eq!(order["out_order_no"], ORDER);
    }
    emulator.stop_async().await;
    Ok(())
}
