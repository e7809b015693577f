//! Refunds (`v3/refund/domestic/refunds`): checked against the paid order, `PROCESSING` at
//! first, `SUCCESS` after the configured delay (or on [`Emulator::complete_refund`]), when
//! `REFUND.SUCCESS` goes to the refund's `notify_url` (for an APIv2 refund, the APIv2
//! notification, made in `v2_refund`).
//!
//! [`Emulator::complete_refund`]: super::Emulator::complete_refund

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::answer::Answer;
use super::state::{numeric_id, rfc3339, Refund, RefundNotify, State};
use super::validate::{self, opt, req, Field, Kind};
use super::{lock, webhooks, Shared};
use wechatpay_chain::formatter;

const AMOUNT: &[Field] = &[
    req("refund", Kind::Int),
    req("total", Kind::Int),
    req("currency", Kind::Str),
    opt("from", Kind::Any),
];

const CREATE: &[Field] = &[
    opt("transaction_id", Kind::Str),
    opt("out_trade_no", Kind::Str),
    req("out_refund_no", Kind::Str),
    opt("reason", Kind::Str),
    opt("notify_url", Kind::Str),
    opt("funds_account", Kind::Str),
    req("amount", Kind::Obj(AMOUNT)),
    opt("goods_detail", Kind::Any),
];

fn no_refund(no: &str) -> Answer {
    Answer::error(
        404,
        "RESOURCE_NOT_EXISTS",
        format!("退款单不存在 (no refund {no})"),
    )
}

fn amount_of(obj: &Map<String, Value>, key: &str) -> i64 {
    obj.get("amount")
        .and_then(|a| a.get(key))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// `POST v3/refund/domestic/refunds`.
pub(crate) fn create(shared: &Arc<Shared>, body: &[u8]) -> Answer {
    let obj = match validate::object(body).and_then(|o| validate::check(&o, CREATE).map(|_| o)) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let out_refund_no = validate::text(&obj, "out_refund_no").to_string();
    if let Err(a) = super::pay::check_out_no("out_refund_no", &out_refund_no) {
        return a;
    }
    if let Some(url) = obj.get("notify_url").and_then(Value::as_str) {
        if let Err(a) = super::pay::check_notify_url(url) {
            return a;
        }
    }
    let (refund, total) = (amount_of(&obj, "refund"), amount_of(&obj, "total"));
    if refund <= 0 {
        return Answer::param_error(
            "/amount/refund",
            "body",
            "amount.refund must be a positive number of fen",
            Value::from(refund),
        );
    }
    let request = Value::Object(obj.clone());
    let mut st = lock(&shared.state);
    match st.fresh("refund", "out_refund_no", &out_refund_no, &request) {
        Ok(true) => {}
        Ok(false) => {
            return match st.refunds.get(&out_refund_no) {
                Some(r) => Answer::ok(Value::Object(r.answer.clone())),
                None => no_refund(&out_refund_no),
            }
        }
        Err(a) => return a,
    }
    let out_trade_no = match (
        obj.get("out_trade_no").and_then(Value::as_str),
        obj.get("transaction_id").and_then(Value::as_str),
    ) {
        (Some(no), _) => Some(no.to_string()),
        (None, Some(id)) => st.transaction_ids.get(id).cloned(),
        (None, None) => {
            return Answer::param_error(
                "/out_trade_no",
                "body",
                "missing required field: one of transaction_id and out_trade_no",
                Value::Null,
            )
        }
    };
    let Some(t) = out_trade_no
        .as_ref()
        .and_then(|no| st.transactions.get_mut(no))
    else {
        return Answer::no_order();
    };
    let (Some(transaction_id), "SUCCESS" | "REFUND") = (t.transaction_id.clone(), t.trade_state)
    else {
        return Answer::error(400, "INVALID_REQUEST", "订单未支付 (the order is not paid)");
    };
    let order_total = amount_of(&t.request, "total");
    if total != order_total {
        return Answer::param_error(
            "/amount/total",
            "body",
            format!("amount.total must be the order's total {order_total}"),
            Value::from(total),
        );
    }
    // In i128: two refunds near i64::MAX must not wrap into an acceptable sum.
    let after = i128::from(t.refunded) + i128::from(refund);
    if after > i128::from(order_total) {
        return Answer::error(
            400,
            "INVALID_REQUEST",
            format!("申请退款金额超过订单可退金额 (refunds would reach {after} of {order_total})"),
        );
    }
    t.refunded += refund;
    t.trade_state = "REFUND";
    let currency = obj
        .get("amount")
        .and_then(|a| a.get("currency"))
        .cloned()
        .unwrap_or(json!("CNY"));
    let answer = record(
        &mut st,
        NewRefund {
            out_refund_no: &out_refund_no,
            transaction_id: &transaction_id,
            out_trade_no: out_trade_no.as_deref().unwrap_or_default(),
            total: order_total,
            refund,
            currency,
            funds_account: obj.get("funds_account").cloned(),
            notify: obj
                .get("notify_url")
                .and_then(Value::as_str)
                .map(|url| RefundNotify::V3(url.to_string())),
        },
    );
    st.remember("refund", &out_refund_no, &request);
    drop(st);
    schedule(shared, out_refund_no);
    Answer::ok(Value::Object(answer))
}

/// A refund accepted, from either API, once its order and amounts are checked.
pub(crate) struct NewRefund<'a> {
    pub out_refund_no: &'a str,
    pub transaction_id: &'a str,
    pub out_trade_no: &'a str,
    /// The order's total and this refund, in fen.
    pub total: i64,
    pub refund: i64,
    pub currency: Value,
    pub funds_account: Option<Value>,
    /// Where its success is notified, and how.
    pub notify: Option<RefundNotify>,
}

/// Records `r` as `PROCESSING` (the caller holds the state lock) and returns it as
/// `GET v3/refund/domestic/refunds/{out_refund_no}` answers it.
pub(crate) fn record(st: &mut State, r: NewRefund<'_>) -> Map<String, Value> {
    let seq = st.next();
    let now = formatter::timestamp();
    let (total, refund) = (r.total, r.refund);
    let answer = json!({
        "refund_id": numeric_id("5030", now, seq, 29),
        "out_refund_no": r.out_refund_no,
        "transaction_id": r.transaction_id,
        "out_trade_no": r.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": rfc3339(now),
        "status": "PROCESSING",
        "funds_account": r.funds_account.unwrap_or(json!("AVAILABLE")),
        "amount": {
            "total": total, "refund": refund, "payer_total": total,
            "payer_refund": refund, "settlement_refund": refund, "settlement_total": total,
            "discount_refund": 0, "currency": r.currency, "refund_fee": 0,
        },
    });
    // An object literal is always an object.
    let Value::Object(answer) = answer else {
        return Map::new();
    };
    st.refunds.insert(
        r.out_refund_no.to_string(),
        Refund {
            answer: answer.clone(),
            notify: r.notify,
        },
    );
    answer
}

/// Completes refund `out_refund_no` after the configured delay (if any).
pub(crate) fn schedule(shared: &Arc<Shared>, out_refund_no: String) {
    if let Some(delay) = shared.settings.refund_delay {
        let shared2 = shared.clone();
        shared.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = complete(&shared2, &out_refund_no);
        });
    }
}

/// `GET v3/refund/domestic/refunds/{out_refund_no}`.
pub(crate) fn query(shared: &Arc<Shared>, no: &str) -> Answer {
    match lock(&shared.state).refunds.get(no) {
        Some(r) => Answer::ok(Value::Object(r.answer.clone())),
        None => no_refund(no),
    }
}

/// A `PROCESSING` refund succeeds and its notification is sent (`REFUND.SUCCESS`, or the
/// APIv2 one for a refund made through APIv2); a finished one is answered as it is.
pub(crate) fn complete(shared: &Arc<Shared>, no: &str) -> Result<Value, Answer> {
    let (answer, notify) = {
        let mut st = lock(&shared.state);
        let Some(r) = st.refunds.get_mut(no) else {
            return Err(no_refund(no));
        };
        if r.answer.get("status").and_then(Value::as_str) != Some("PROCESSING") {
            return Ok(Value::Object(r.answer.clone()));
        }
        r.answer.insert("status".into(), json!("SUCCESS"));
        r.answer.insert(
            "success_time".into(),
            json!(rfc3339(formatter::timestamp())),
        );
        (r.answer.clone(), r.notify.clone())
    };
    match notify {
        Some(RefundNotify::V2 { url, appid }) => {
            super::v2_refund::notify(shared, url, &appid, &answer)
        }
        Some(RefundNotify::V3(url)) => v3_notify(shared, url, &answer),
        None => {}
    }
    Ok(Value::Object(answer))
}

/// `REFUND.SUCCESS` about refund `a`, to `url`.
fn v3_notify(shared: &Arc<Shared>, url: String, a: &Map<String, Value>) {
    let resource = notified(&shared.settings.mchid, a, "SUCCESS");
    webhooks::notify(
        shared,
        url,
        "REFUND.SUCCESS",
        "退款成功",
        "refund",
        &resource,
    );
}

/// The resource of a `REFUND.*` notification about refund `a` (as kept) of merchant `mchid`,
/// `refund_status` `status` (`SUCCESS`, `CLOSED`, `ABNORMAL`): every field the event pages mark
/// required (the amounts with their `currency` and `payer_currency`), and `success_time` for a
/// success.
pub(crate) fn notified(mchid: &str, a: &Map<String, Value>, status: &str) -> Value {
    let amount = a.get("amount").cloned().unwrap_or_default();
    let currency = amount.get("currency").cloned().unwrap_or(json!("CNY"));
    let mut resource = json!({
        "mchid": mchid,
        "transaction_id": a.get("transaction_id"),
        "out_trade_no": a.get("out_trade_no"),
        "refund_id": a.get("refund_id"),
        "out_refund_no": a.get("out_refund_no"),
        "refund_status": status,
        "user_received_account": a.get("user_received_account"),
        "amount": {
            "total": amount.get("total"), "refund": amount.get("refund"),
            "payer_total": amount.get("payer_total"), "payer_refund": amount.get("payer_refund"),
            "currency": currency, "payer_currency": currency,
        },
    });
    if status == "SUCCESS" {
        resource["success_time"] = a.get("success_time").cloned().unwrap_or_default();
    }
    resource
}
