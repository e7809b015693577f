//! The APIv2 refund notification (sent when a refund made through APIv2 succeeds, whichever
//! API finished it), and the APIv2 description of a refund it and `pay/refundquery` share.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::notify::webhooks;
use crate::state::shared::Shared;
use crate::state::{v2_time, V2Fields};
use wechatpay_chain::crypto::AesEcb;
use wechatpay_chain::Error;
use wechatpay_chain::{formatter, transformer};

/// Amount `k` (`refund`, `total` …) of a refund as kept (in the APIv3 shape), as APIv2
/// writes amounts: fen, as text.
pub(crate) fn amount(refund: &Map<String, Value>, k: &str) -> Value {
    let fen = refund.get("amount").and_then(|a| a.get(k));
    Value::from(fen.and_then(Value::as_i64).unwrap_or(0).to_string())
}

/// A refund as kept, as APIv2 tells of it (the refund notification's `req_info`, and
/// `pay/refundquery` per refund): its order, amounts, status, `success_time` once it
/// succeeded (`YYYY-MM-DD HH:MM:SS`), the account it went to and the one it came from.
pub(crate) fn described(refund: &Map<String, Value>) -> V2Fields {
    let get = |k: &str| refund.get(k).cloned().unwrap_or_default();
    let status = get("status");
    let account = match refund.get("funds_account").and_then(Value::as_str) {
        Some("UNSETTLED") => "REFUND_SOURCE_UNSETTLED_FUNDS",
        _ => "REFUND_SOURCE_RECHARGE_FUNDS",
    };
    let mut fields = vec![
        ("transaction_id", get("transaction_id")),
        ("out_trade_no", get("out_trade_no")),
        ("refund_id", get("refund_id")),
        ("out_refund_no", get("out_refund_no")),
        ("total_fee", amount(refund, "total")),
        ("settlement_total_fee", amount(refund, "settlement_total")),
        ("refund_fee", amount(refund, "refund")),
        ("settlement_refund_fee", amount(refund, "settlement_refund")),
        ("refund_status", status.clone()),
    ];
    if status == "SUCCESS" {
        let at = refund.get("success_time").and_then(Value::as_str);
        fields.push(("success_time", v2_time(at.unwrap_or_default()).into()));
    }
    fields.push(("refund_recv_accout", get("user_received_account")));
    fields.push(("refund_account", account.into()));
    fields
}

/// The platform's APIv2 refund notification about `refund` (now SUCCESS) to `url`: no `sign`,
/// the refund in `req_info`, AES-256-ECB under the lowercase hex MD5 of merchant `mchid`'s
/// APIv2 key.
pub(crate) fn notify(
    shared: &Arc<Shared>,
    url: String,
    appid: &str,
    mchid: &str,
    refund: &Map<String, Value>,
) {
    let body = notification(shared, appid, mchid, refund)
        .map_err(|e| format!("cannot make the notification: {e}"));
    webhooks::notify_v2(shared, url, V2_REFUND_EVENT, body);
}

fn notification(
    shared: &Shared,
    appid: &str,
    mchid: &str,
    refund: &Map<String, Value>,
) -> Result<String, Error> {
    let mut inner: Map<String, Value> = described(refund)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    inner.insert("refund_request_source".into(), "API".into());
    // required by the notification's page, though `pay/refundquery` does not list it per refund
    inner.insert("cash_refund_fee".into(), amount(refund, "payer_refund"));
    let inner = transformer::to_xml_with(&inner, "root", "item")?;
    let key = AesEcb::key_from_secret(shared.settings.apiv2_key_of(mchid))?;
    let req_info = AesEcb::encrypt(inner, key.as_bytes())?;
    let mut outer = Map::new();
    outer.insert("return_code".into(), "SUCCESS".into());
    outer.insert("appid".into(), appid.into());
    outer.insert("mch_id".into(), mchid.into());
    outer.insert("nonce_str".into(), formatter::nonce(32).into());
    outer.insert("req_info".into(), req_info.into());
    transformer::to_xml(&outer)
}

/// What [`Delivery::event_type`](crate::state::records::Delivery::event_type) says of an APIv2 refund
/// notification (which has no event type of its own).
pub const V2_REFUND_EVENT: &str = "V2.REFUND.SUCCESS";
