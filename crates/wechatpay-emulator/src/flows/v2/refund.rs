//! APIv2 `secapi/pay/refund` (申请退款), which needs the merchant certificate (checked before,
//! in `v2::handle`): the documented fields, checked against a paid order, an APIv2 micropay
//! or an APIv3 one, and kept with the APIv3 refunds, so that
//! `GET v3/refund/domestic/refunds/{out_refund_no}`, the bills and
//! [`Emulator::complete_refund`] see it. The errors are the platform's (a `refund_fee` above
//! `total_fee`: `return_code` FAIL `invalid refund_fee`; the rest as `err_code`). When it
//! succeeds, the platform's APIv2 refund notification goes to the request's `notify_url`.
//!
//! [`Emulator::complete_refund`]: crate::Emulator::complete_refund

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::flows::pay::check_notify_url;
use crate::flows::refund::{record, schedule, NewRefund};
use crate::flows::v2::xml::{business, fail, missing, signed, text};
use crate::http::answer::Answer;
use crate::notify::v2_refund::amount;
use crate::state::shared::Shared;
use crate::state::{RefundNotify, State, V2Fields};
use crate::util::lock;
use wechatpay_chain::client_xml::SignType;

const REQUIRED: &[&str] = &[
    "appid",
    "mch_id",
    "nonce_str",
    "out_refund_no",
    "total_fee",
    "refund_fee",
];

/// The documented `refund_account` values.
const REFUND_ACCOUNTS: &[&str] = &[
    "REFUND_SOURCE_UNSETTLED_FUNDS",
    "REFUND_SOURCE_RECHARGE_FUNDS",
];

/// A paid order as a refund sees it, whichever API made it.
struct Paid {
    /// Its key in `transactions`.
    key: String,
    out_trade_no: String,
    transaction_id: String,
    total: i64,
    refunded: i64,
}

/// A business error: `err_code` and `err_code_des`.
type Refusal = (&'static str, String);

/// The order `transaction_id` (first, as the platform takes it when both are given) or
/// `out_trade_no` names, paid: the calling merchant's own.
fn paid_order(
    shared: &Shared,
    st: &State,
    transaction_id: &str,
    out_trade_no: &str,
) -> Result<Paid, Refusal> {
    let key = if transaction_id.is_empty() {
        let signer = shared.settings.signing_merchant();
        Some(shared.settings.order_key(&signer, out_trade_no))
    } else {
        st.transaction_ids.get(transaction_id).cloned()
    };
    let found = key.as_ref().and_then(|k| st.transactions.get(k));
    if let Some(t) = found.filter(|t| crate::flows::pay::is_signers(shared, t)) {
        return match (&t.transaction_id, t.trade_state) {
            (Some(id), "SUCCESS" | "REFUND") => Ok(Paid {
                key: key.unwrap_or_default(),
                out_trade_no: crate::http::validate::text(&t.request, "out_trade_no").to_string(),
                transaction_id: id.clone(),
                total: t
                    .request
                    .get("amount")
                    .and_then(|a| a.get("total"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0),
                refunded: t.refunded,
            }),
            _ => Err(("ERROR", "订单状态错误 (the order is not paid)".into())),
        };
    }
    // every paid order is a transaction, an APIv2 micropay one too
    Err(if transaction_id.is_empty() {
        ("ORDERNOTEXIST", "订单不存在 (no such out_trade_no)".into())
    } else {
        ("INVALID_TRANSACTIONID", "无效transaction_id".into())
    })
}

/// The answer's fields for a refund as kept (in the APIv3 shape).
fn answer_fields(refund: &Map<String, Value>) -> V2Fields {
    let get = |k: &str| refund.get(k).cloned().unwrap_or_default();
    let amount = |k: &str| amount(refund, k);
    vec![
        ("result_code", "SUCCESS".into()),
        ("transaction_id", get("transaction_id")),
        ("out_trade_no", get("out_trade_no")),
        ("out_refund_no", get("out_refund_no")),
        ("refund_id", get("refund_id")),
        ("refund_fee", amount("refund")),
        ("settlement_refund_fee", amount("settlement_refund")),
        ("total_fee", amount("total")),
        ("settlement_total_fee", amount("settlement_total")),
        ("fee_type", "CNY".into()),
        ("cash_fee", amount("payer_total")),
        ("cash_refund_fee", amount("payer_refund")),
        ("coupon_refund_fee", "0".into()),
        ("coupon_refund_count", "0".into()),
    ]
}

/// A positive amount in fen.
fn fen(data: &Map<String, Value>, k: &str) -> Option<i64> {
    text(data, k).parse().ok().filter(|v| *v > 0)
}

/// The request's own fields, checked without the state: the amounts, or the answer.
fn check_fields(
    shared: &Shared,
    kind: SignType,
    data: &Map<String, Value>,
) -> Result<(i64, i64), Answer> {
    let param = |des: &str| Err(business(shared, kind, data, "PARAM_ERROR", des));
    if let Some(a) = missing(shared, kind, data, REQUIRED) {
        return Err(a);
    }
    if text(data, "transaction_id").is_empty() && text(data, "out_trade_no").is_empty() {
        return param("transaction_id、out_trade_no至少填一个 (one of them is required)");
    }
    let no = text(data, "out_refund_no");
    let no_ok = no.len() <= 64
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b));
    if !no_ok {
        return param("out_refund_no must be up to 64 of 0-9, A-Z, a-z, _ - | * @");
    }
    let (Some(total), Some(refund)) = (fen(data, "total_fee"), fen(data, "refund_fee")) else {
        return param("total_fee and refund_fee must be positive integers of fen");
    };
    if refund > total {
        return Err(fail("invalid refund_fee"));
    }
    if !matches!(text(data, "refund_fee_type"), "" | "CNY") {
        return param("refund_fee_type must be CNY");
    }
    let account = text(data, "refund_account");
    if !account.is_empty() && !REFUND_ACCOUNTS.contains(&account) {
        return param(&format!(
            "refund_account must be one of {REFUND_ACCOUNTS:?}"
        ));
    }
    let url = text(data, "notify_url");
    if !url.is_empty() && check_notify_url(url).is_err() {
        return param("notify_url must be an absolute http(s) URL without a query");
    }
    Ok((total, refund))
}

/// `POST secapi/pay/refund`.
pub(crate) fn refund(shared: &Arc<Shared>, kind: SignType, data: &Map<String, Value>) -> Answer {
    let (total, refund) = match check_fields(shared, kind, data) {
        Ok(amounts) => amounts,
        Err(answer) => return answer,
    };
    match open(shared, data, total, refund) {
        Ok(fields) => signed(shared, kind, data, fields),
        Err((code, des)) => business(shared, kind, data, code, &des),
    }
}

/// Checks the refund against its order and the refunds before it, and records it.
fn open(
    shared: &Arc<Shared>,
    data: &Map<String, Value>,
    total: i64,
    refund: i64,
) -> Result<V2Fields, Refusal> {
    const MISMATCH: &str = "REFUND_FEE_MISMATCH";
    let out_refund_no = text(data, "out_refund_no").to_string();
    // The request as content, without what changes between honest retries.
    let mut content = data.clone();
    content.remove("sign");
    content.remove("nonce_str");
    let content = Value::Object(content);
    let signer = shared.settings.signing_merchant();
    let refund_key = shared.settings.order_key(&signer, &out_refund_no);
    let mut st = lock(&shared.state);
    match st.fresh("v2refund", "out_refund_no", &refund_key, &content) {
        Ok(true) if !st.refunds.contains_key(&refund_key) => {}
        Ok(false) => {
            if let Some(r) = st.refunds.get(&refund_key) {
                return Ok(answer_fields(&r.answer));
            }
        }
        _ => {
            return Err((
                MISMATCH,
                "订单金额或退款金额与之前请求不一致,请核实后再试 (out_refund_no was used \
                 with other content)"
                    .into(),
            ))
        }
    }
    let order = paid_order(
        shared,
        &st,
        text(data, "transaction_id"),
        text(data, "out_trade_no"),
    )?;
    if total != order.total {
        return Err((
            MISMATCH,
            format!(
                "订单金额或退款金额与之前请求不一致,请核实后再试 (total_fee must be the \
                 order's total {})",
                order.total
            ),
        ));
    }
    if order.refunded >= order.total {
        return Err(("ERROR", "订单已全额退款".into()));
    }
    // In i128: amounts near i64::MAX must not wrap into an acceptable sum.
    if i128::from(order.refunded) + i128::from(refund) > i128::from(order.total) {
        return Err((
            "INVALID_REQUEST",
            format!(
                "refund_fee大于可退金额 ({} of {} left)",
                order.total - order.refunded,
                order.total
            ),
        ));
    }
    if let Some(t) = st.transactions.get_mut(&order.key) {
        t.refunded += refund;
        t.trade_state = "REFUND";
    }
    let account = match text(data, "refund_account") {
        "REFUND_SOURCE_RECHARGE_FUNDS" => "AVAILABLE",
        _ => "UNSETTLED",
    };
    let answer = record(
        &shared.settings,
        &mut st,
        NewRefund {
            mchid: &signer,
            order: &order.key,
            now: shared.clock.now(),
            out_refund_no: &out_refund_no,
            transaction_id: &order.transaction_id,
            out_trade_no: &order.out_trade_no,
            total,
            refund,
            currency: json!("CNY"),
            funds_account: Some(json!(account)),
            // Only the request's: the platform's fallback, the URL configured on the merchant
            // platform, has no counterpart here.
            notify: match text(data, "notify_url") {
                "" => None,
                url => Some(RefundNotify::V2 {
                    url: url.to_string(),
                    appid: text(data, "appid").to_string(),
                }),
            },
        },
    );
    st.remember("v2refund", &refund_key, &content);
    drop(st);
    schedule(shared, refund_key);
    Ok(answer_fields(&answer))
}
