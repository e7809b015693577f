//! Combined payments (合单支付, `v3/combine-transactions/{jsapi,app,h5,native}`): one payment
//! of several sub-orders (at most 50), each kept as a transaction of its own (under its
//! `out_trade_no`, in the merchant's number space) so that it can be refunded through
//! `v3/refund/domestic/refunds` like any order. Queried by `combine_out_trade_no` and by
//! `combine_transaction_id`, closed with its sub-orders, paid through [`crate::flows::actions`]:
//! every sub-order `SUCCESS`, and one `TRANSACTION.SUCCESS` with the combined resource
//! (`combine_appid`, `combine_mchid`, `combine_out_trade_no`, `sub_orders`,
//! `combine_payer_info`).

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::documented;
use crate::flows::actions::{self, PaymentAction};
use crate::flows::pay::{check_notify_url, check_out_no, check_signer, order_amount, prepay};
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::validate;
use crate::state::records::Combine;
use crate::state::shared::Shared;
use crate::state::{numeric_id, openid, Party, State, Transaction};
use crate::util::lock;

/// The platform's limit of sub-orders in one combined order.
const MAX_SUB_ORDERS: usize = 50;

fn total_amount(so: &Map<String, Value>) -> i64 {
    so.get("amount")
        .and_then(|a| a.get("total_amount"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// The combined order as its query and its notification show it.
pub(crate) fn combine_json(shared: &Shared, st: &State, c: &Combine) -> Value {
    let r = &c.request;
    let mut m = Map::new();
    m.insert(
        "combine_appid".into(),
        json!(validate::text(r, "combine_appid")),
    );
    m.insert("combine_mchid".into(), json!(shared.settings.mchid));
    m.insert(
        "combine_out_trade_no".into(),
        json!(validate::text(r, "combine_out_trade_no")),
    );
    m.insert(
        "combine_transaction_id".into(),
        json!(c.combine_transaction_id),
    );
    if let Some(d) = r.get("scene_info").and_then(|s| s.get("device_id")) {
        m.insert("scene_info".into(), json!({"device_id": d}));
    }
    let mut payer = None;
    let subs: Vec<Value> = c
        .sub_orders
        .iter()
        .filter_map(|k| st.transactions.get(k))
        .map(|t| {
            let r = &t.request;
            let (total, currency) = order_amount(r);
            let paid = t.transaction_id.is_some();
            let mut s = Map::new();
            s.insert("mchid".into(), json!(validate::text(r, "mchid")));
            s.insert("trade_type".into(), json!(c.trade_type));
            s.insert("trade_state".into(), json!(t.trade_state));
            if paid {
                s.insert("bank_type".into(), json!("OTHERS"));
            }
            s.insert("attach".into(), json!(validate::text(r, "attach")));
            if let Some(time) = &t.success_time {
                s.insert("success_time".into(), json!(time));
            }
            if let Some(id) = &t.transaction_id {
                s.insert("transaction_id".into(), json!(id));
            }
            s.insert(
                "out_trade_no".into(),
                json!(validate::text(r, "out_trade_no")),
            );
            for k in ["sub_mchid", "sub_appid"] {
                if let Some(v) = r.get(k) {
                    s.insert(k.into(), v.clone());
                }
            }
            s.insert(
                "amount".into(),
                json!({"total_amount": total, "currency": currency,
                       "payer_amount": if paid { total } else { 0 }, "payer_currency": currency}),
            );
            if payer.is_none() {
                payer = t.openid.clone();
            }
            Value::Object(s)
        })
        .collect();
    m.insert("sub_orders".into(), Value::Array(subs));
    if let Some(o) = payer {
        m.insert("combine_payer_info".into(), json!({"openid": o}));
    }
    Value::Object(m)
}

/// `POST v3/combine-transactions/{jsapi,app,h5,native}`.
pub(crate) fn create(shared: &Arc<Shared>, kind: &str, req: &Req) -> Answer {
    match try_create(shared, kind, req) {
        Ok(a) | Err(a) => a,
    }
}

fn try_create(shared: &Arc<Shared>, kind: &str, req: &Req) -> Result<Answer, Answer> {
    documented::check(req)?;
    let obj = validate::object(&req.body)?;
    let combine_mchid = validate::text(&obj, "combine_mchid");
    check_signer(shared, "combine_mchid", "merchant", combine_mchid, "body")?;
    let no = validate::text(&obj, "combine_out_trade_no").to_string();
    check_out_no("combine_out_trade_no", &no)?;
    check_notify_url(validate::text(&obj, "notify_url"))?;
    let subs: Vec<&Map<String, Value>> = obj
        .get("sub_orders")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if subs.is_empty() || subs.len() > MAX_SUB_ORDERS {
        return Err(Answer::param_error(
            "/sub_orders",
            "body",
            format!(
                "sub_orders must hold 1 to {MAX_SUB_ORDERS} sub-orders, not {}",
                subs.len()
            ),
            Value::Null,
        ));
    }
    let mut seen = HashSet::new();
    for (i, so) in subs.iter().enumerate() {
        let sub_no = validate::text(so, "out_trade_no");
        check_out_no(&format!("sub_orders/{i}/out_trade_no"), sub_no)?;
        if !seen.insert(sub_no) || sub_no == no {
            return Err(Answer::param_error(
                &format!("/sub_orders/{i}/out_trade_no"),
                "body",
                "each sub-order needs an out_trade_no of its own, apart from combine_out_trade_no",
                Value::from(sub_no),
            ));
        }
        let total = total_amount(so);
        if total <= 0 {
            return Err(Answer::param_error(
                &format!("/sub_orders/{i}/amount/total_amount"),
                "body",
                "amount.total_amount must be a positive number of fen",
                Value::from(total),
            ));
        }
    }
    let mut st = lock(&shared.state);
    if let Some(c) = st.combines.get(&no) {
        if c.request == obj {
            return Ok(Answer::ok(c.created.clone()));
        }
        return Err(Answer::conflict("combine_out_trade_no", &no));
    }
    for (i, so) in subs.iter().enumerate() {
        let sub_no = validate::text(so, "out_trade_no");
        if st.transactions.contains_key(sub_no) {
            return Err(Answer::conflict(
                &format!("sub_orders/{i}/out_trade_no"),
                sub_no,
            ));
        }
    }
    let (trade_type, created) = prepay(kind, shared.clock.now());
    let seq = st.next();
    let combine_transaction_id = numeric_id("4200", shared.clock.now(), seq, 28);
    let payer = obj.get("combine_payer_info").cloned().unwrap_or_default();
    let appid = validate::text(&obj, "combine_appid");
    let mut keys = Vec::with_capacity(subs.len());
    for so in &subs {
        let sub_no = validate::text(so, "out_trade_no").to_string();
        // the sub-order in the shape of an order, for refunds and bills
        let mut r = Map::new();
        let sub_appid = so.get("sub_appid").and_then(Value::as_str);
        r.insert("appid".into(), json!(sub_appid.unwrap_or(appid)));
        r.insert("mchid".into(), json!(validate::text(so, "mchid")));
        r.insert("out_trade_no".into(), json!(sub_no));
        r.insert(
            "description".into(),
            json!(validate::text(so, "description")),
        );
        r.insert("attach".into(), json!(validate::text(so, "attach")));
        r.insert(
            "notify_url".into(),
            json!(validate::text(&obj, "notify_url")),
        );
        let currency = str_at(&Value::Object((*so).clone()), "/amount/currency")
            .unwrap_or("CNY")
            .to_string();
        r.insert(
            "amount".into(),
            json!({"total": total_amount(so), "currency": currency}),
        );
        for k in ["sub_mchid", "sub_appid"] {
            if let Some(v) = so.get(k) {
                r.insert(k.into(), v.clone());
            }
        }
        let sub_mchid = so
            .get("sub_mchid")
            .and_then(Value::as_str)
            .map(str::to_string);
        st.transactions.insert(
            sub_no.clone(),
            Transaction {
                request: r,
                trade_type,
                trade_state: "NOTPAY",
                created: created.clone(),
                transaction_id: None,
                success_time: None,
                openid: str_at(&payer, "/openid").map(str::to_string),
                refunded: 0,
                party: Party::Combined {
                    combine_out_trade_no: no.clone(),
                    sub_mchid,
                },
            },
        );
        keys.push(sub_no);
    }
    super::expiry::orders(shared, keys.clone(), &obj);
    st.combines.insert(
        no,
        Combine {
            request: obj,
            trade_type,
            created: created.clone(),
            combine_transaction_id,
            sub_orders: keys,
        },
    );
    Ok(Answer::ok(created))
}

/// `GET v3/combine-transactions/out-trade-no/{combine_out_trade_no}`.
pub(crate) fn query(shared: &Arc<Shared>, no: &str) -> Answer {
    let st = lock(&shared.state);
    match st.combines.get(no) {
        Some(c) => Answer::ok(combine_json(shared, &st, c)),
        None => Answer::no_order(),
    }
}

/// `GET v3/combine-transactions/id/{combine_transaction_id}`.
pub(crate) fn query_by_id(shared: &Arc<Shared>, id: &str) -> Answer {
    let st = lock(&shared.state);
    match st
        .combines
        .values()
        .find(|c| c.combine_transaction_id == id)
    {
        Some(c) => Answer::ok(combine_json(shared, &st, c)),
        None => Answer::no_order(),
    }
}

/// `POST v3/combine-transactions/out-trade-no/{combine_out_trade_no}/close`: the sub-orders
/// listed are closed (204), unless one of them is paid (`ORDERPAID`, nothing closed).
pub(crate) fn close(shared: &Arc<Shared>, no: &str, req: &Req) -> Answer {
    match try_close(shared, no, req) {
        Ok(a) | Err(a) => a,
    }
}

fn try_close(shared: &Arc<Shared>, no: &str, req: &Req) -> Result<Answer, Answer> {
    documented::check(req)?;
    let obj = validate::object(&req.body)?;
    let mut st = lock(&shared.state);
    let Some(c) = st.combines.get(no) else {
        return Err(Answer::no_order());
    };
    let appid = validate::text(&obj, "combine_appid");
    if appid != validate::text(&c.request, "combine_appid") {
        return Err(Answer::param_error(
            "/combine_appid",
            "body",
            "combine_appid is not the one the combined order was made with",
            Value::from(appid),
        ));
    }
    let listed: Vec<&Map<String, Value>> = obj
        .get("sub_orders")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    if listed.is_empty() {
        return Err(Answer::missing("/sub_orders", "body"));
    }
    let mut keys = Vec::new();
    for (i, so) in listed.iter().enumerate() {
        let sub_no = validate::text(so, "out_trade_no");
        let known = c.sub_orders.iter().any(|k| k == sub_no)
            && st.transactions.get(sub_no).is_some_and(|t| {
                validate::text(&t.request, "mchid") == validate::text(so, "mchid")
            });
        if !known {
            return Err(Answer::param_error(
                &format!("/sub_orders/{i}/out_trade_no"),
                "body",
                format!("{sub_no} (with this mchid) is not a sub-order of combined order {no}"),
                Value::from(sub_no),
            ));
        }
        keys.push(sub_no.to_string());
    }
    if keys.iter().any(|k| {
        st.transactions
            .get(k)
            .is_some_and(|t| !matches!(t.trade_state, "NOTPAY" | "CLOSED"))
    }) {
        return Err(Answer::error(
            400,
            "ORDERPAID",
            "订单已支付，不能关闭 (a sub-order is paid)",
        ));
    }
    for k in keys {
        if let Some(t) = st.transactions.get_mut(&k) {
            t.trade_state = "CLOSED";
        }
    }
    Ok(Answer::no_content())
}

/// `action` on combined order `no` (the caller holds the state lock): every sub-order must be
/// `NOTPAY`; returns the combined order as notified, and where to.
pub(crate) fn act(
    shared: &Shared,
    st: &mut State,
    no: &str,
    action: PaymentAction,
    user: Option<&str>,
) -> Result<(Value, String), Answer> {
    let Some(c) = st.combines.get(no) else {
        return Err(Answer::no_order());
    };
    let keys = c.sub_orders.clone();
    for k in &keys {
        if let Some(t) = st.transactions.get(k) {
            if t.trade_state != "NOTPAY" {
                return Err(actions::not_pending(
                    &format!("combined order {no} (its sub-order {k})"),
                    t.trade_state,
                    action,
                ));
            }
        }
    }
    // one payer for every sub-order
    let user = match user {
        Some(u) => u.to_string(),
        None => {
            let seq = st.next();
            openid(seq)
        }
    };
    for k in &keys {
        actions::apply(st, k, action, Some(&user), shared.clock.now());
    }
    let Some(c) = st.combines.get(no) else {
        return Err(Answer::no_order());
    };
    let url = validate::text(&c.request, "notify_url").to_string();
    Ok((combine_json(shared, st, c), url))
}
