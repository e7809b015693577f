//! Refunds (`v3/refund/domestic/refunds`): checked against the paid order, `PROCESSING` at
//! first, `SUCCESS` after the configured delay (or on [`Emulator::complete_refund`]), when
//! `REFUND.SUCCESS` goes to the refund's `notify_url` (for an APIv2 refund, the APIv2
//! notification, made in `v2_refund`).
//!
//! [`Emulator::complete_refund`]: crate::Emulator::complete_refund

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::flows::actions::{wrong_state, RefundAction};
use crate::http::answer::Answer;
use crate::http::merchants::{name_the_merchant, number_of, Found};
use crate::http::settings::Settings;
use crate::http::validate::{self, opt, req, Field, Kind};
use crate::notify::webhooks;
use crate::state::shared::Shared;
use crate::state::{numeric_id, partner_key, rfc3339, Party, Refund, RefundNotify, State};
use crate::util::lock;

const AMOUNT: &[Field] = &[
    req("refund", Kind::Int),
    req("total", Kind::Int),
    req("currency", Kind::Str),
    opt("from", Kind::Any),
];

const CREATE: &[Field] = &[
    opt("sub_mchid", Kind::Str),
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
    if let Err(a) = crate::flows::pay::check_out_no("out_refund_no", &out_refund_no) {
        return a;
    }
    if let Some(url) = obj.get("notify_url").and_then(Value::as_str) {
        if let Err(a) = crate::flows::pay::check_notify_url(url) {
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
    // each merchant its own refund numbers, as its own order numbers
    let signer = shared.settings.signing_merchant();
    let refund_key = shared.settings.order_key(&signer, &out_refund_no);
    let mut st = lock(&shared.state);
    match st.fresh("refund", "out_refund_no", &refund_key, &request) {
        Ok(true) => {}
        Ok(false) => {
            return match st.refunds.get(&refund_key) {
                Some(r) => Answer::ok(Value::Object(r.answer.clone())),
                None => no_refund(&out_refund_no),
            }
        }
        Err(a) => return a,
    }
    let sub_mchid = obj.get("sub_mchid").and_then(Value::as_str);
    let (by_no, by_id) = (
        obj.get("out_trade_no").and_then(Value::as_str),
        obj.get("transaction_id").and_then(Value::as_str),
    );
    if by_no.is_none() && by_id.is_none() {
        return Answer::param_error(
            "/out_trade_no",
            "body",
            "missing required field: one of transaction_id and out_trade_no",
            Value::Null,
        );
    }
    let own = by_no.map(|no| shared.settings.order_key(&signer, no));
    let by_no = by_no.zip(own.as_deref());
    let Some(key) = order_key(&st, sub_mchid, by_no, by_id) else {
        return Answer::no_order();
    };
    // another merchant's order is not there for the signer
    let Some(t) = st
        .transactions
        .get_mut(&key)
        .filter(|t| crate::flows::pay::is_signers(shared, t))
    else {
        return Answer::no_order();
    };
    let out_trade_no = validate::text(&t.request, "out_trade_no").to_string();
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
        &shared.settings,
        &mut st,
        NewRefund {
            mchid: &signer,
            order: &key,
            now: shared.clock.now(),
            out_refund_no: &out_refund_no,
            transaction_id: &transaction_id,
            out_trade_no: &out_trade_no,
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
    if let Some(r) = st.refunds.get_mut(&refund_key) {
        r.sub_mchid = sub_mchid.map(str::to_string);
    }
    st.remember("refund", &refund_key, &request);
    drop(st);
    schedule(shared, refund_key);
    Answer::ok(Value::Object(answer))
}

/// A refund accepted, from either API, once its order and amounts are checked.
pub(crate) struct NewRefund<'a> {
    /// The merchant making it, and its order's key in `transactions`.
    pub mchid: &'a str,
    pub order: &'a str,
    /// When it is accepted (the sandbox's clock, Unix seconds).
    pub now: i64,
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
pub(crate) fn record(settings: &Settings, st: &mut State, r: NewRefund<'_>) -> Map<String, Value> {
    let seq = st.next();
    let now = r.now;
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
        settings.order_key(r.mchid, r.out_refund_no),
        Refund {
            answer: answer.clone(),
            notify: r.notify,
            sub_mchid: None,
            mchid: r.mchid.to_string(),
            order: r.order.to_string(),
        },
    );
    answer
}

/// Completes the refund kept under `key` after the configured delay (if any) in the
/// sandbox's clock time, unless an action has ended it by then.
pub(crate) fn schedule(shared: &Arc<Shared>, key: String) {
    if let Some(delay) = shared.settings.refund_delay {
        shared.clock.after(
            delay,
            Box::new(move |s: &Arc<Shared>| {
                let _ = complete(s, &key);
            }),
        );
    }
}

/// The key in `transactions` of the order a refund names: with `sub_mchid`, the partner
/// order of that sub-merchant (or a combined sub-order for it); without, the merchant's order
/// (`own`: its key of the `out_trade_no` given) or a combined sub-order.
fn order_key(
    st: &State,
    sub_mchid: Option<&str>,
    by_no: Option<(&str, &str)>,
    transaction_id: Option<&str>,
) -> Option<String> {
    let key = match (by_no, transaction_id) {
        (Some((no, own)), _) => match sub_mchid {
            Some(sub) if st.transactions.contains_key(&partner_key(sub, no)) => {
                partner_key(sub, no)
            }
            _ => own.to_string(),
        },
        (None, Some(id)) => st.transaction_ids.get(id)?.clone(),
        (None, None) => return None,
    };
    let t = st.transactions.get(&key)?;
    let fits = match (&t.party, sub_mchid) {
        (Party::Merchant, None) => true,
        (Party::Combined { sub_mchid: s, .. }, want) => want.is_none() || s.as_deref() == want,
        (Party::Partner { sub_mchid: s }, Some(want)) => s == want,
        _ => false,
    };
    // a transaction_id and an out_trade_no that name two orders name none
    let agrees = match (by_no, transaction_id) {
        (Some(_), Some(id)) => t.transaction_id.as_deref() == Some(id),
        _ => true,
    };
    (fits && agrees).then_some(key)
}

/// `GET v3/refund/domestic/refunds/{out_refund_no}` (`?sub_mchid=` for a partner refund): the
/// signer's own refund of that number, none of another merchant's.
pub(crate) fn query(shared: &Arc<Shared>, no: &str, sub_mchid: Option<&str>) -> Answer {
    let signer = shared.settings.signing_merchant();
    let key = shared.settings.order_key(&signer, no);
    match lock(&shared.state).refunds.get(&key) {
        Some(r) if r.mchid == signer && r.sub_mchid.as_deref() == sub_mchid => {
            Answer::ok(Value::Object(r.answer.clone()))
        }
        _ => no_refund(no),
    }
}

/// The key of refund `no` for a control request ([`Settings::control_key`]).
pub(crate) fn control_key(
    shared: &Shared,
    no: &str,
    mchid: Option<&str>,
) -> Result<String, Answer> {
    let st = lock(&shared.state);
    match shared.settings.control_key(st.refunds.keys(), no, mchid) {
        Found::One(key) => Ok(key),
        Found::None => Err(no_refund(no)),
        Found::Several => Err(name_the_merchant("refund", no)),
    }
}

/// A `PROCESSING` refund succeeds and its notification is sent (`REFUND.SUCCESS`, or the
/// APIv2 one for a refund made through APIv2); a finished one is answered as it is (the
/// control endpoint `/emulator/refund/…/complete` of old and [`Emulator::complete_refund`]).
///
/// [`Emulator::complete_refund`]: crate::Emulator::complete_refund
///
/// `key`: the refund's key in the state ([`control_key`]).
pub(crate) fn complete(shared: &Arc<Shared>, key: &str) -> Result<Value, Answer> {
    {
        let st = lock(&shared.state);
        let Some(r) = st.refunds.get(key) else {
            return Err(no_refund(key));
        };
        if r.answer.get("status").and_then(Value::as_str) != Some("PROCESSING") {
            return Ok(Value::Object(r.answer.clone()));
        }
    }
    act(shared, key, RefundAction::Succeeded)
}

/// `action` on refund `no`, from `PROCESSING` (or from `ABNORMAL` to `SUCCESS` or `CLOSED`),
/// and its notification: `REFUND.SUCCESS`, `REFUND.CLOSED` or `REFUND.ABNORMAL` for an APIv3
/// refund with a `notify_url`, the APIv2 notification for an APIv2 refund that succeeds. A
/// closed refund gives its amount back to the order.
pub(crate) fn act(shared: &Arc<Shared>, key: &str, action: RefundAction) -> Result<Value, Answer> {
    // the number as its merchant knows it
    let no = number_of(key);
    let (answer, notify, sub_mchid, mchid) = {
        let mut st = lock(&shared.state);
        let Some(r) = st.refunds.get_mut(key) else {
            return Err(no_refund(no));
        };
        let status = r
            .answer
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("PROCESSING")
            .to_string();
        let allowed = match status.as_str() {
            "PROCESSING" => true,
            "ABNORMAL" => action != RefundAction::Abnormal,
            _ => false,
        };
        if !allowed {
            // A refund that succeeded by itself: say how to keep refunds for the actions.
            let by_itself = match shared.settings.refund_delay {
                Some(d) if status == "SUCCESS" => format!(
                    "; refunds succeed by themselves {} ms after they are made: start the \
                     sandbox with refund_delay None (wechatpay serve --refund-delay never) to \
                     decide each one",
                    d.as_millis()
                ),
                _ => String::new(),
            };
            return Err(wrong_state(format!(
                "refund {no} is {status}: only a PROCESSING refund can be {} (an ABNORMAL one can still be succeeded or closed){by_itself}",
                action.as_str()
            )));
        }
        r.answer.insert("status".into(), json!(action.status()));
        if action == RefundAction::Succeeded {
            r.answer
                .insert("success_time".into(), json!(rfc3339(shared.clock.now())));
        }
        let (answer, notify, sub_mchid, mchid) = (
            r.answer.clone(),
            r.notify.clone(),
            r.sub_mchid.clone(),
            r.mchid.clone(),
        );
        if action == RefundAction::Closed {
            let order = r.order.clone();
            give_back(&mut st, &answer, &order);
        }
        (answer, notify, sub_mchid, mchid)
    };
    match notify {
        Some(RefundNotify::V2 { url, appid }) if action == RefundAction::Succeeded => {
            crate::notify::v2_refund::notify(shared, url, &appid, &mchid, &answer)
        }
        Some(RefundNotify::V3(url)) => {
            v3_notify(shared, url, &answer, &mchid, sub_mchid.as_deref())
        }
        _ => {}
    }
    Ok(Value::Object(answer))
}

/// A closed refund's amount is refundable again; an order with nothing refunded is `SUCCESS`.
fn give_back(st: &mut State, a: &Map<String, Value>, order: &str) {
    let refund = a
        .get("amount")
        .and_then(|m| m.get("refund"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(t) = st.transactions.get_mut(order) {
        t.refunded = (t.refunded - refund).max(0);
        if t.refunded == 0 && t.trade_state == "REFUND" {
            t.trade_state = "SUCCESS";
        }
    }
}

/// `REFUND.SUCCESS`, `REFUND.CLOSED` or `REFUND.ABNORMAL` about refund `a`, to `url`; a
/// partner refund names `sp_mchid` and `sub_mchid` instead of `mchid` (the merchant that
/// made it, under whose APIv3 key it goes).
fn v3_notify(
    shared: &Arc<Shared>,
    url: String,
    a: &Map<String, Value>,
    mchid: &str,
    sub_mchid: Option<&str>,
) {
    let status = a.get("status").and_then(Value::as_str).unwrap_or("SUCCESS");
    let (event, summary) = match status {
        "CLOSED" => ("REFUND.CLOSED", "退款关闭"),
        "ABNORMAL" => ("REFUND.ABNORMAL", "退款异常"),
        _ => ("REFUND.SUCCESS", "退款成功"),
    };
    let amount = a.get("amount").cloned().unwrap_or_default();
    let currency = amount.get("currency").cloned().unwrap_or(json!("CNY"));
    let mut resource = Map::new();
    match sub_mchid {
        Some(sub) => {
            resource.insert("sp_mchid".into(), json!(mchid));
            resource.insert("sub_mchid".into(), json!(sub));
        }
        None => {
            resource.insert("mchid".into(), json!(mchid));
        }
    }
    for k in [
        "transaction_id",
        "out_trade_no",
        "refund_id",
        "out_refund_no",
    ] {
        resource.insert(k.into(), a.get(k).cloned().unwrap_or(Value::Null));
    }
    resource.insert("refund_status".into(), json!(status));
    if let Some(t) = a.get("success_time") {
        resource.insert("success_time".into(), t.clone());
    }
    resource.insert(
        "user_received_account".into(),
        a.get("user_received_account")
            .cloned()
            .unwrap_or(Value::Null),
    );
    resource.insert(
        "amount".into(),
        json!({
            "total": amount.get("total"), "refund": amount.get("refund"),
            "payer_total": amount.get("payer_total"), "payer_refund": amount.get("payer_refund"),
            "currency": currency, "payer_currency": currency,
        }),
    );
    webhooks::notify(
        shared,
        url,
        event,
        summary,
        "refund",
        &Value::Object(resource),
    );
}
