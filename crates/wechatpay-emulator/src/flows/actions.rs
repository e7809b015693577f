//! What the payer and the platform do, on demand: a pending payment (a merchant's, a partner's
//! or a combined one) paid, failed or closed; a processing refund succeeded, closed or
//! abnormal. Each action the platform notifies sends its notification (`TRANSACTION.SUCCESS`,
//! `REFUND.SUCCESS`, `REFUND.CLOSED`, `REFUND.ABNORMAL`); a payment that fails or closes is
//! not notified, as on the platform. Acting on an unknown object answers 404, on one already
//! past the state the action needs 409, both in the platform's error shape.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::flows::combine;
use crate::flows::partner;
use crate::flows::pay;
use crate::flows::refund;
use crate::flows::request_payment;
use crate::http::answer::Answer;
use crate::notify::webhooks;
use crate::state::shared::Shared;
use crate::state::{numeric_id, openid, partner_key, rfc3339, Party, State};
use crate::util::lock;
use wechatpay_chain::formatter;

/// What happens to a pending (`NOTPAY`) payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentAction {
    /// The payer pays: `SUCCESS`, and `TRANSACTION.SUCCESS` is notified.
    Paid,
    /// The payment fails (the bank refuses it): `PAYERROR`, not notified.
    Failed,
    /// The order expires unpaid: `CLOSED`, not notified.
    Closed,
}

impl PaymentAction {
    /// Every action, in the order of the control endpoints' documentation.
    pub const ALL: [PaymentAction; 3] = [
        PaymentAction::Paid,
        PaymentAction::Failed,
        PaymentAction::Closed,
    ];

    /// The action's name in the control endpoints: `paid`, `failed`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentAction::Paid => "paid",
            PaymentAction::Failed => "failed",
            PaymentAction::Closed => "closed",
        }
    }

    /// The `trade_state` the action leaves.
    pub fn trade_state(self) -> &'static str {
        match self {
            PaymentAction::Paid => "SUCCESS",
            PaymentAction::Failed => "PAYERROR",
            PaymentAction::Closed => "CLOSED",
        }
    }
}

/// What happens to a refund that is `PROCESSING` (or `ABNORMAL`, which may still succeed or
/// close).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundAction {
    /// The money is back: `SUCCESS`, `REFUND.SUCCESS`.
    Succeeded,
    /// The refund is closed: `CLOSED`, `REFUND.CLOSED`; the order may be refunded again.
    Closed,
    /// The refund cannot reach the payer (a closed card): `ABNORMAL`, `REFUND.ABNORMAL`.
    Abnormal,
}

impl RefundAction {
    /// Every action, in the order of the control endpoints' documentation.
    pub const ALL: [RefundAction; 3] = [
        RefundAction::Succeeded,
        RefundAction::Closed,
        RefundAction::Abnormal,
    ];

    /// The action's name in the control endpoints: `succeeded`, `closed`, `abnormal`.
    pub fn as_str(self) -> &'static str {
        match self {
            RefundAction::Succeeded => "succeeded",
            RefundAction::Closed => "closed",
            RefundAction::Abnormal => "abnormal",
        }
    }

    /// The refund `status` the action leaves.
    pub fn status(self) -> &'static str {
        match self {
            RefundAction::Succeeded => "SUCCESS",
            RefundAction::Closed => "CLOSED",
            RefundAction::Abnormal => "ABNORMAL",
        }
    }
}

/// An action name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAction(String);

impl fmt::Display for UnknownAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnknownAction {}

fn unknown<T: Copy>(name: &str, all: &[T], as_str: fn(T) -> &'static str) -> UnknownAction {
    let known: Vec<&str> = all.iter().map(|a| as_str(*a)).collect();
    UnknownAction(format!(
        "unknown action {name:?}: use one of {}",
        known.join(", ")
    ))
}

impl FromStr for PaymentAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PaymentAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| unknown(s, &PaymentAction::ALL, PaymentAction::as_str))
    }
}

impl FromStr for RefundAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RefundAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| unknown(s, &RefundAction::ALL, RefundAction::as_str))
    }
}

/// 409: the object is not in a state the action applies to.
pub(crate) fn wrong_state(message: impl Into<String>) -> Answer {
    Answer::error(409, "INVALID_STATE", message)
}

/// A payment an action applies to.
enum Target {
    /// A merchant's or a partner's order, by its key in `transactions`.
    Order(String),
    /// A combined order, by `combine_out_trade_no`.
    Combined(String),
}

/// Finds the payment `no` names: with `sub_mchid`, the partner order of that sub-merchant (or
/// a combined order with a sub-order for it); without, the merchant's order, then a combined
/// order, then the one partner order of that number.
fn find(st: &State, no: &str, sub_mchid: Option<&str>) -> Result<Target, Answer> {
    let sub_order = |t: &crate::state::Transaction| match &t.party {
        Party::Combined {
            combine_out_trade_no,
            ..
        } => Some(combine_out_trade_no.clone()),
        _ => None,
    };
    if let Some(sub) = sub_mchid {
        let key = partner_key(sub, no);
        if st.transactions.contains_key(&key) {
            return Ok(Target::Order(key));
        }
        if let Some(t) = st.transactions.get(no) {
            if let (Some(parent), Some(s)) = (sub_order(t), t.party.sub_mchid()) {
                if s == sub {
                    return Err(of_combined(no, &parent));
                }
            }
        }
        if let Some(c) = st.combines.get(no) {
            let has = c.sub_orders.iter().any(|k| {
                st.transactions
                    .get(k)
                    .and_then(|t| t.party.sub_mchid())
                    .is_some_and(|s| s == sub)
            });
            if has {
                return Ok(Target::Combined(no.to_string()));
            }
        }
        return Err(Answer::error(
            404,
            "ORDER_NOT_EXIST",
            format!("订单不存在 (no order {no} of sub-merchant {sub})"),
        ));
    }
    if let Some(t) = st.transactions.get(no) {
        if t.party == Party::Merchant {
            return Ok(Target::Order(no.to_string()));
        }
        if let Some(parent) = sub_order(t) {
            return Err(of_combined(no, &parent));
        }
    }
    if st.combines.contains_key(no) {
        return Ok(Target::Combined(no.to_string()));
    }
    let suffix = partner_key("", no);
    let mut partners = st
        .transactions
        .iter()
        .filter(|(k, t)| matches!(t.party, Party::Partner { .. }) && k.ends_with(&suffix));
    match (partners.next(), partners.next()) {
        (Some((k, _)), None) => Ok(Target::Order(k.clone())),
        (Some(_), Some(_)) => Err(wrong_state(format!(
            "several sub-merchants have an order {no}: say which with sub_mchid"
        ))),
        (None, _) => Err(Answer::error(
            404,
            "ORDER_NOT_EXIST",
            format!("订单不存在 (no order, combined order or partner order {no})"),
        )),
    }
}

fn of_combined(no: &str, parent: &str) -> Answer {
    wrong_state(format!(
        "{no} is a sub-order of combined order {parent}: act on {parent}, which pays, fails or closes all its sub-orders"
    ))
}

/// The state of transaction `key` after `action`, from `NOTPAY` (checked by the caller): a
/// paid one gets its `transaction_id`, `success_time` and payer (`user`, or one made up).
pub(crate) fn apply(
    st: &mut State,
    key: &str,
    action: PaymentAction,
    user: Option<&str>,
    now: i64,
) {
    let seq = st.next();
    let Some(t) = st.transactions.get_mut(key) else {
        return;
    };
    t.trade_state = action.trade_state();
    if action != PaymentAction::Paid {
        return;
    }
    let id = numeric_id("4200", now, seq, 28);
    t.transaction_id = Some(id.clone());
    t.success_time = Some(rfc3339(now));
    if t.openid.is_none() {
        t.openid = Some(user.map(str::to_string).unwrap_or_else(|| openid(seq)));
    }
    st.transaction_ids.insert(id, key.to_string());
}

/// 409 for a payment that is no longer pending.
pub(crate) fn not_pending(what: &str, state: &str, action: PaymentAction) -> Answer {
    wrong_state(format!(
        "{what} is {state}: only a NOTPAY payment can be {}",
        action.as_str()
    ))
}

/// What the payer's client checks front-end parameters against, for payment `target`.
fn presented_to<'a>(
    st: &'a State,
    no: &'a str,
    target: &Target,
) -> Option<request_payment::Order<'a>> {
    let text = crate::http::validate::text;
    let (trade_type, created, appids) = match target {
        Target::Order(key) => {
            let t = st.transactions.get(key)?;
            let r = &t.request;
            let appids = match t.party {
                Party::Partner { .. } => ["sp_appid", "sub_appid"]
                    .into_iter()
                    .map(|k| text(r, k))
                    .filter(|a| !a.is_empty())
                    .collect(),
                _ => vec![text(r, "appid")],
            };
            (t.trade_type, &t.created, appids)
        }
        Target::Combined(c) => {
            let c = st.combines.get(c)?;
            (
                c.trade_type,
                &c.created,
                vec![text(&c.request, "combine_appid")],
            )
        }
    };
    Some(request_payment::Order {
        no,
        trade_type,
        created,
        appids,
    })
}

/// `action` on payment `no` (see [`find`]), the payer presenting `presented` (the front-end
/// parameters, checked as the WeChat client does: see [`request_payment`]) when given; returns
/// the payment as its query answers it.
pub(crate) fn payment(
    shared: &Arc<Shared>,
    no: &str,
    action: PaymentAction,
    sub_mchid: Option<&str>,
    user: Option<&str>,
    presented: Option<&Map<String, Value>>,
) -> Result<Value, Answer> {
    let mut st = lock(&shared.state);
    // `sub_mchid` may name the merchant whose own order it is, for one beyond the first.
    let own = sub_mchid.map(|m| shared.settings.order_key(m, no));
    let target = match own {
        Some(k)
            if st
                .transactions
                .get(&k)
                .is_some_and(|t| t.party == Party::Merchant) =>
        {
            Target::Order(k)
        }
        _ => find(&st, no, sub_mchid)?,
    };
    if let Some(given) = presented {
        let order = presented_to(&st, no, &target).ok_or_else(Answer::no_order)?;
        request_payment::check(shared, &order, given, formatter::timestamp())?;
    }
    let (resource, url) = match target {
        Target::Combined(no) => combine::act(shared, &mut st, &no, action, user)?,
        Target::Order(key) => {
            let Some(t) = st.transactions.get(&key) else {
                return Err(Answer::no_order());
            };
            if t.trade_state != "NOTPAY" {
                return Err(not_pending(&format!("order {no}"), t.trade_state, action));
            }
            apply(&mut st, &key, action, user, shared.clock.now());
            let Some(t) = st.transactions.get(&key) else {
                return Err(Answer::no_order());
            };
            let url = crate::http::validate::text(&t.request, "notify_url").to_string();
            let resource = match t.party {
                Party::Partner { .. } => partner::transaction_json(shared, t),
                _ => pay::transaction_json(shared, t),
            };
            (resource, url)
        }
    };
    drop(st);
    if action == PaymentAction::Paid {
        webhooks::notify(
            shared,
            url,
            "TRANSACTION.SUCCESS",
            "支付成功",
            "transaction",
            &resource,
        );
    }
    Ok(resource)
}

/// An action named in a control endpoint's path, or 400 naming the known ones.
fn parsed<T>(action: &str) -> Result<T, Answer>
where
    T: FromStr<Err = UnknownAction>,
{
    action
        .parse::<T>()
        .map_err(|e| Answer::param_error("/action", "path", e.to_string(), Value::from(action)))
}

/// The control endpoints `POST /emulator/payments/{out_trade_no}/{paid|failed|closed}` (body,
/// optional: `openid`, `sub_mchid`, and with `paid` `request_payment`, the front-end
/// parameters the payer's client is given) and `POST /emulator/refunds/{out_refund_no}/
/// {succeeded|closed|abnormal}`: `kind` is `payments` or `refunds`.
pub(crate) fn control(
    shared: &Arc<Shared>,
    kind: &str,
    no: &str,
    action: &str,
    body: &Map<String, Value>,
) -> Result<Value, Answer> {
    for name in ["openid", "sub_mchid", "mchid"] {
        if let Some(v) = body.get(name).filter(|v| !v.is_string() && !v.is_null()) {
            return Err(Answer::param_error(
                &format!("/{name}"),
                "body",
                format!("{name} must be a string"),
                v.clone(),
            ));
        }
    }
    let text = |k: &str| body.get(k).and_then(Value::as_str);
    match kind {
        "payments" => {
            let action: PaymentAction = parsed(action)?;
            let presented = match body.get("request_payment") {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) if action == PaymentAction::Paid => Some(m),
                Some(v @ Value::Object(_)) => {
                    return Err(Answer::param_error(
                        "/request_payment",
                        "body",
                        format!("request_payment goes with paid (the payer paying), not {}", action.as_str()),
                        v.clone(),
                    ))
                }
                Some(v) => {
                    return Err(Answer::param_error(
                        "/request_payment",
                        "body",
                        "request_payment must be the object of front-end parameters (appId, timeStamp, nonceStr, package, signType, paySign; or the APP form's)",
                        v.clone(),
                    ))
                }
            };
            payment(
                shared,
                no,
                action,
                text("sub_mchid"),
                text("openid"),
                presented,
            )
        }
        _ => {
            let action = parsed(action)?;
            let key = refund::control_key(shared, no, text("mchid"))?;
            refund::act(shared, &key, action)
        }
    }
}

/// `action` on refund `no`; returns the refund as its query answers it.
pub(crate) fn refund(
    shared: &Arc<Shared>,
    no: &str,
    action: RefundAction,
) -> Result<Value, Answer> {
    refund::act(shared, &refund::control_key(shared, no, None)?, action)
}
