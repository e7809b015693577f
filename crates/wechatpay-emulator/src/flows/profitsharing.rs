//! Profit sharing (分账, `v3/profitsharing/…`): receivers added and deleted, orders that share
//! a paid payment's frozen funds among added receivers (the payment must have been made with
//! `settle_info.profit_sharing` true), the query, unfreezing what is left, return orders and
//! their query, and the amount still to share.
//!
//! An order or return order is answered `PROCESSING` (receivers `PENDING`) and is `FINISHED`
//! (`SUCCESS`) for every later look: the emulator settles it as it answers, so that what a
//! query sees does not depend on timing. Then each receiver's share is notified
//! (`PROFITSHARING.SUCCESS`) and each return (`PROFITSHARING.RETURN`). The platform sends these
//! to the URL a receiver set up on the merchant platform; the API has no notify URL of its own,
//! so the emulator sends them to the `notify_url` the payment was made with.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::documented;
use crate::flows::sensitive;
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::validate;
use crate::notify::webhooks;
use crate::state::records::{Order, Receiver};
use crate::state::shared::Shared;
use crate::state::{numeric_id, rfc3339, State};
use crate::util::lock;

/// What the platform answers for a time not reached yet (`finish_time` of a pending share).
const NOT_YET: i64 = 0;

fn no_record(what: &str, no: &str) -> Answer {
    Answer::error(
        404,
        "RESOURCE_NOT_EXISTS",
        format!("记录不存在 (no {what} {no})"),
    )
}

fn invalid(message: String) -> Answer {
    Answer::error(400, "INVALID_REQUEST", message)
}

fn sub_mchid(obj: &Map<String, Value>, m: &mut Map<String, Value>) {
    if let Some(s) = obj.get("sub_mchid").filter(|v| v.is_string()) {
        m.insert("sub_mchid".into(), s.clone());
    }
}

/// A paid payment made for profit sharing, as the sharing needs it.
struct Paid {
    /// Its total less refunds.
    left: i64,
    notify_url: String,
    /// When it was paid (the notifications' `success_time`).
    success_time: String,
}

/// The payment behind `transaction_id`, checked to be paid and made for profit sharing.
fn payment(st: &State, transaction_id: &str) -> Result<Paid, Answer> {
    let Some(t) = st
        .transaction_ids
        .get(transaction_id)
        .and_then(|no| st.transactions.get(no))
    else {
        return Err(Answer::no_order());
    };
    if !matches!(t.trade_state, "SUCCESS" | "REFUND") {
        return Err(invalid("订单未支付 (the payment is not paid)".into()));
    }
    let sharing = t
        .request
        .get("settle_info")
        .and_then(|s| s.get("profit_sharing"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if !sharing {
        return Err(invalid(
            "订单不支持分账 (the payment was made without settle_info.profit_sharing = true)"
                .into(),
        ));
    }
    let total = t
        .request
        .get("amount")
        .and_then(|a| a.get("total"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    Ok(Paid {
        left: total - t.refunded,
        notify_url: validate::text(&t.request, "notify_url").to_string(),
        success_time: t.success_time.clone().unwrap_or_default(),
    })
}

/// What is left to share of `transaction_id` (whose payment left `left` after refunds).
fn unsplit(st: &State, transaction_id: &str, left: i64) -> i64 {
    match st.sharing.ledgers.get(transaction_id) {
        Some(l) if l.finished => 0,
        Some(l) => (left - l.shared).max(0),
        None => left.max(0),
    }
}

/// The request with its encrypted names replaced by their plaintext, for comparing a repeat
/// (RSA-OAEP makes a new ciphertext each time).
fn decrypted_receivers(
    shared: &Shared,
    req: &Req,
    obj: &mut Map<String, Value>,
) -> Result<(), Answer> {
    let Some(Value::Array(items)) = obj.get_mut("receivers") else {
        return Ok(());
    };
    for (i, item) in items.iter_mut().enumerate() {
        let Some(r) = item.as_object_mut() else {
            continue;
        };
        let amount = r.get("amount").and_then(Value::as_i64).unwrap_or(0);
        if amount <= 0 {
            return Err(Answer::param_error(
                &format!("/receivers/{i}/amount"),
                "body",
                "amount must be a positive number of fen",
                r.get("amount").cloned().unwrap_or(Value::Null),
            ));
        }
        if let Some(Value::String(c)) = r.get("name") {
            let name =
                sensitive::decrypt(&shared.settings, req, &format!("/receivers/{i}/name"), c)?;
            r.insert("name".into(), json!(name));
        }
    }
    Ok(())
}

/// A receiver as the order shows it.
fn share(
    r: &Map<String, Value>,
    detail_id: String,
    result: &str,
    created: &str,
    finished: &str,
) -> Value {
    json!({
        "amount": r.get("amount"), "description": r.get("description"),
        "type": r.get("type"), "account": r.get("account"),
        "result": result, "detail_id": detail_id,
        "create_time": created, "finish_time": finished,
    })
}

/// The pending view of a finished order: what create and unfreeze answer.
fn pending(answer: &Map<String, Value>) -> Value {
    let mut m = answer.clone();
    m.insert("state".into(), json!("PROCESSING"));
    if let Some(Value::Array(rs)) = m.get_mut("receivers") {
        for r in rs.iter_mut() {
            r["result"] = json!("PENDING");
            r["finish_time"] = json!(rfc3339(NOT_YET));
        }
    }
    Value::Object(m)
}

/// An order recorded (finished), with the notifications to send.
struct Recorded {
    answer: Map<String, Value>,
    notices: Vec<(String, Value)>,
}

/// Records order `out_order_no` of `transaction_id`: `shares` (request receivers) and, when
/// `unfreeze`, the rest unfrozen to the merchant itself.
fn record(
    shared: &Shared,
    st: &mut State,
    obj: &Map<String, Value>,
    shares: &[Map<String, Value>],
    unfreeze: bool,
    paid: Paid,
) -> Recorded {
    let transaction_id = validate::text(obj, "transaction_id").to_string();
    let out_order_no = validate::text(obj, "out_order_no").to_string();
    let now = shared.clock.now();
    let time = rfc3339(now);
    let seq = st.next();
    let order_id = numeric_id("3008", now, seq, 28);
    let sum: i64 = shares
        .iter()
        .map(|r| r.get("amount").and_then(Value::as_i64).unwrap_or(0))
        .sum();
    let rest = unsplit(st, &transaction_id, paid.left) - sum;
    let mut receivers = Vec::new();
    let mut notices = Vec::new();
    for r in shares {
        let detail_id = numeric_id("3601", now, st.next(), 28);
        receivers.push(share(r, detail_id, "SUCCESS", &time, &time));
        let resource = json!({
            "mchid": shared.settings.mchid, "transaction_id": transaction_id,
            "order_id": order_id, "out_order_no": out_order_no,
            "receiver": {"type": r.get("type"), "account": r.get("account"),
                         "amount": r.get("amount"), "description": r.get("description")},
            "success_time": paid.success_time,
        });
        notices.push((paid.notify_url.clone(), resource));
    }
    if unfreeze && rest > 0 {
        let detail_id = numeric_id("3601", now, st.next(), 28);
        let own = json!({"type": "MERCHANT_ID", "account": shared.settings.mchid, "amount": rest,
                         "description": validate::text(obj, "description")});
        if let Value::Object(own) = own {
            receivers.push(share(&own, detail_id, "SUCCESS", &time, &time));
        }
    }
    let ledger = st
        .sharing
        .ledgers
        .entry(transaction_id.clone())
        .or_default();
    ledger.shared += sum;
    ledger.finished |= unfreeze;
    let mut answer = Map::new();
    sub_mchid(obj, &mut answer);
    answer.insert("transaction_id".into(), json!(transaction_id));
    answer.insert("out_order_no".into(), json!(out_order_no));
    answer.insert("order_id".into(), json!(order_id));
    answer.insert("state".into(), json!("FINISHED"));
    answer.insert("receivers".into(), Value::Array(receivers));
    st.sharing.order_ids.insert(order_id, out_order_no.clone());
    st.sharing.orders.insert(
        out_order_no,
        Order {
            transaction_id,
            answer: answer.clone(),
            returned: HashMap::new(),
        },
    );
    Recorded { answer, notices }
}

fn send(shared: &Arc<Shared>, kind: &str, notices: Vec<(String, Value)>) {
    let summary = match kind {
        "PROFITSHARING.RETURN" => "分账回退",
        _ => "分账动账",
    };
    for (url, resource) in notices {
        if !url.is_empty() {
            webhooks::notify(shared, url, kind, summary, "profitsharing", &resource);
        }
    }
}

/// The idempotency check of an order number: `Some(answer)` for a repeat of the same request.
fn repeat(
    st: &State,
    scope: &str,
    field: &str,
    no: &str,
    request: &Value,
) -> Result<Option<Value>, Answer> {
    if st.fresh(scope, field, no, request)? {
        return Ok(None);
    }
    let found = match scope {
        "profitsharing-return" => st.sharing.returns.get(no).map(|r| Value::Object(r.clone())),
        _ => st
            .sharing
            .orders
            .get(no)
            .map(|o| Value::Object(o.answer.clone())),
    };
    Ok(found)
}

/// The answer to the operations modelled here (`segs`: the path after `v3/`), or `None`.
pub(crate) fn route(shared: &Arc<Shared>, req: &Req, segs: &[&str]) -> Option<Answer> {
    let ["profitsharing", rest @ ..] = segs else {
        return None;
    };
    Some(match (req.method.as_str(), rest) {
        ("POST", ["orders"]) => create(shared, req),
        ("POST", ["orders", "unfreeze"]) => unfreeze(shared, req),
        ("GET", ["orders", no]) => query(shared, req, no),
        ("POST", ["return-orders"]) => create_return(shared, req),
        ("GET", ["return-orders", no]) => query_return(shared, req, no),
        ("POST", ["receivers", "add"]) => add_receiver(shared, req),
        ("POST", ["receivers", "delete"]) => delete_receiver(shared, req),
        ("GET", ["transactions", id, "amounts"]) => amounts(shared, id),
        _ => return None,
    })
}

/// How a new order (a share or an unfreezing) on a payment begins.
enum Opening {
    /// The same request again: what it answered then.
    Repeated(Value),
    /// A new order on this payment.
    New(Paid),
}

/// The same `out_order_no` again answers what it answered; a new one needs the payment paid
/// and not finished (`finished`: the refusal's text when it is).
fn open(
    st: &State,
    out_order_no: &str,
    request: &Value,
    transaction_id: &str,
    finished: &str,
) -> Result<Opening, Answer> {
    if let Some(a) = repeat(st, "profitsharing", "out_order_no", out_order_no, request)? {
        return Ok(Opening::Repeated(a));
    }
    let pay = payment(st, transaction_id)?;
    if st
        .sharing
        .ledgers
        .get(transaction_id)
        .is_some_and(|l| l.finished)
    {
        return Err(invalid(finished.into()));
    }
    Ok(Opening::New(pay))
}

/// `POST v3/profitsharing/orders`.
fn create(shared: &Arc<Shared>, req: &Req) -> Answer {
    create_checked(shared, req).unwrap_or_else(|a| a)
}

fn create_checked(shared: &Arc<Shared>, req: &Req) -> Result<Answer, Answer> {
    documented::check(req)?;
    let mut obj = validate::object(&req.body)?;
    let out_order_no = validate::text(&obj, "out_order_no").to_string();
    crate::flows::pay::check_out_no("out_order_no", &out_order_no)?;
    decrypted_receivers(shared, req, &mut obj)?;
    let request = Value::Object(obj.clone());
    let transaction_id = validate::text(&obj, "transaction_id").to_string();
    let unfreeze = obj
        .get("unfreeze_unsplit")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let shares: Vec<Map<String, Value>> = match obj.get("receivers") {
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).cloned().collect(),
        _ => Vec::new(),
    };
    let mut st = lock(&shared.state);
    let pay = match open(
        &st,
        &out_order_no,
        &request,
        &transaction_id,
        "订单已完结分账 (the rest of this payment was unfrozen: nothing is left to share)",
    )? {
        Opening::Repeated(a) => return Ok(Answer::ok(a)),
        Opening::New(pay) => pay,
    };
    if shares.is_empty() && !unfreeze {
        return Err(Answer::param_error(
            "/receivers",
            "body",
            "receivers is empty: name at least one receiver, or set unfreeze_unsplit to true",
            Value::Null,
        ));
    }
    for (i, r) in shares.iter().enumerate() {
        let key = (
            validate::text(r, "type").to_string(),
            validate::text(r, "account").to_string(),
        );
        let Some(known) = st.sharing.receivers.get(&key) else {
            return Err(invalid(format!(
                "分账接收方不存在 (receivers/{i}: {} {} was not added with v3/profitsharing/receivers/add)",
                key.0, key.1
            )));
        };
        if let (Some(given), Some(added)) = (r.get("name").and_then(Value::as_str), &known.name) {
            if given != added {
                return Err(invalid(format!(
                    "分账接收方姓名不匹配 (receivers/{i}: the name is not the one the receiver was added with)"
                )));
            }
        }
    }
    let sum: i128 = shares
        .iter()
        .map(|r| i128::from(r.get("amount").and_then(Value::as_i64).unwrap_or(0)))
        .sum();
    let left = unsplit(&st, &transaction_id, pay.left);
    if sum > i128::from(left) {
        return Err(Answer::error(
            403,
            "NOT_ENOUGH",
            format!("分账金额不足 (the receivers' amounts add up to {sum}; {left} fen are left to share)"),
        ));
    }
    let rec = record(shared, &mut st, &obj, &shares, unfreeze, pay);
    st.remember("profitsharing", &out_order_no, &request);
    drop(st);
    send(shared, "PROFITSHARING.SUCCESS", rec.notices);
    Ok(Answer::ok(pending(&rec.answer)))
}

/// `GET v3/profitsharing/orders/{out_order_no}?transaction_id=`.
fn query(shared: &Arc<Shared>, req: &Req, out_order_no: &str) -> Answer {
    if let Err(a) = documented::check(req) {
        return a;
    }
    let transaction_id = req.query("transaction_id").unwrap_or_default();
    let st = lock(&shared.state);
    match st.sharing.orders.get(out_order_no) {
        Some(o) if o.transaction_id == transaction_id => {
            Answer::ok(Value::Object(o.answer.clone()))
        }
        _ => no_record("profit-sharing order", out_order_no),
    }
}

/// `POST v3/profitsharing/orders/unfreeze`: what is left of the payment goes to the merchant
/// (shown as its own receiver entry) and nothing more can be shared.
fn unfreeze(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = || -> Result<Answer, Answer> {
        documented::check(req)?;
        let obj = validate::object(&req.body)?;
        let out_order_no = validate::text(&obj, "out_order_no").to_string();
        crate::flows::pay::check_out_no("out_order_no", &out_order_no)?;
        let request = Value::Object(obj.clone());
        let transaction_id = validate::text(&obj, "transaction_id").to_string();
        let mut st = lock(&shared.state);
        let pay = match open(
            &st,
            &out_order_no,
            &request,
            &transaction_id,
            "订单已完结分账 (the rest of this payment was already unfrozen)",
        )? {
            Opening::Repeated(a) => return Ok(Answer::ok(a)),
            Opening::New(pay) => pay,
        };
        let rec = record(shared, &mut st, &obj, &[], true, pay);
        st.remember("profitsharing", &out_order_no, &request);
        Ok(Answer::ok(pending(&rec.answer)))
    };
    checked().unwrap_or_else(|a| a)
}

/// `POST v3/profitsharing/return-orders`: takes back (part of) what a `MERCHANT_ID` receiver
/// got from an order.
fn create_return(shared: &Arc<Shared>, req: &Req) -> Answer {
    create_return_checked(shared, req).unwrap_or_else(|a| a)
}

fn create_return_checked(shared: &Arc<Shared>, req: &Req) -> Result<Answer, Answer> {
    documented::check(req)?;
    let obj = validate::object(&req.body)?;
    let out_return_no = validate::text(&obj, "out_return_no").to_string();
    crate::flows::pay::check_out_no("out_return_no", &out_return_no)?;
    let amount = validate::int(&obj, "amount");
    if amount <= 0 {
        return Err(Answer::param_error(
            "/amount",
            "body",
            "amount must be a positive number of fen",
            obj.get("amount").cloned().unwrap_or(Value::Null),
        ));
    }
    let by_no = obj
        .get("out_order_no")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let by_id = obj
        .get("order_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    if by_no.is_none() && by_id.is_none() {
        return Err(Answer::param_error(
            "/out_order_no",
            "body",
            "missing required field: one of order_id and out_order_no",
            Value::Null,
        ));
    }
    let request = Value::Object(obj.clone());
    let mut st = lock(&shared.state);
    if let Some(a) = repeat(
        &st,
        "profitsharing-return",
        "out_return_no",
        &out_return_no,
        &request,
    )? {
        return Ok(Answer::ok(a));
    }
    let out_order_no = match (by_no, by_id) {
        (Some(no), _) => no.to_string(),
        (None, Some(id)) => st.sharing.order_ids.get(id).cloned().unwrap_or_default(),
        (None, None) => String::new(),
    };
    let named = by_no.or(by_id).unwrap_or_default().to_string();
    let return_mchid = validate::text(&obj, "return_mchid").to_string();
    let own = shared.settings.mchid.clone();
    let (order_id, transaction_id, got, already) = {
        let Some(o) = st.sharing.orders.get(&out_order_no) else {
            return Err(no_record("profit-sharing order", &named));
        };
        let order_id = validate::text(&o.answer, "order_id").to_string();
        if by_id.is_some_and(|id| id != order_id) {
            return Err(no_record("profit-sharing order", &named));
        }
        let got: i64 = match o.answer.get("receivers") {
            Some(Value::Array(rs)) => rs
                .iter()
                .filter(|r| {
                    r["type"] == "MERCHANT_ID"
                        && r["account"] == return_mchid.as_str()
                        && r["result"] == "SUCCESS"
                        && return_mchid != own
                })
                .filter_map(|r| r["amount"].as_i64())
                .sum(),
            _ => 0,
        };
        let already = o.returned.get(&return_mchid).copied().unwrap_or(0);
        (order_id, o.transaction_id.clone(), got, already)
    };
    if got == 0 {
        return Err(invalid(format!(
            "回退商户号不是该分账单的分账接收方 (merchant {return_mchid} received nothing from order {named})"
        )));
    }
    if i128::from(already) + i128::from(amount) > i128::from(got) {
        return Err(invalid(format!(
            "回退金额超过可回退金额 (merchant {return_mchid} received {got} fen, {already} of which were returned)"
        )));
    }
    let (url, paid_at) = st
        .transaction_ids
        .get(&transaction_id)
        .and_then(|no| st.transactions.get(no))
        .map(|t| {
            let url = validate::text(&t.request, "notify_url").to_string();
            (url, t.success_time.clone().unwrap_or_default())
        })
        .unwrap_or_default();
    let now = shared.clock.now();
    let time = rfc3339(now);
    let seq = st.next();
    let return_id = numeric_id("3008", now, seq, 28);
    let mut answer = Map::new();
    sub_mchid(&obj, &mut answer);
    answer.insert("order_id".into(), json!(order_id));
    answer.insert("out_order_no".into(), json!(out_order_no));
    answer.insert("out_return_no".into(), json!(out_return_no));
    answer.insert("return_id".into(), json!(return_id));
    answer.insert("return_mchid".into(), json!(return_mchid));
    answer.insert("amount".into(), json!(amount));
    answer.insert(
        "description".into(),
        json!(validate::text(&obj, "description")),
    );
    answer.insert("result".into(), json!("SUCCESS"));
    answer.insert("create_time".into(), json!(time));
    answer.insert("finish_time".into(), json!(time));
    if let Some(o) = st.sharing.orders.get_mut(&out_order_no) {
        *o.returned.entry(return_mchid.clone()).or_default() += amount;
    }
    st.sharing
        .returns
        .insert(out_return_no.clone(), answer.clone());
    st.remember("profitsharing-return", &out_return_no, &request);
    drop(st);
    let resource = json!({
        "mchid": shared.settings.mchid, "transaction_id": transaction_id,
        "order_id": return_id, "out_order_no": out_return_no,
        "receiver": {"type": "MERCHANT_ID", "account": return_mchid, "amount": amount,
                     "description": validate::text(&obj, "description")},
        "success_time": paid_at,
    });
    send(shared, "PROFITSHARING.RETURN", vec![(url, resource)]);
    let mut processing = answer;
    processing.insert("result".into(), json!("PROCESSING"));
    processing.insert("finish_time".into(), json!(rfc3339(NOT_YET)));
    Ok(Answer::ok(Value::Object(processing)))
}

/// `GET v3/profitsharing/return-orders/{out_return_no}?out_order_no=`.
fn query_return(shared: &Arc<Shared>, req: &Req, out_return_no: &str) -> Answer {
    if let Err(a) = documented::check(req) {
        return a;
    }
    let out_order_no = req.query("out_order_no").unwrap_or_default();
    match lock(&shared.state).sharing.returns.get(out_return_no) {
        Some(r) if validate::text(r, "out_order_no") == out_order_no => {
            Answer::ok(Value::Object(r.clone()))
        }
        _ => no_record("return order", out_return_no),
    }
}

/// `POST v3/profitsharing/receivers/add`: adding a receiver again updates it.
fn add_receiver(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = || -> Result<Answer, Answer> {
        documented::check(req)?;
        let obj = validate::object(&req.body)?;
        let ty = validate::text(&obj, "type").to_string();
        let account = validate::text(&obj, "account").to_string();
        let relation_type = validate::text(&obj, "relation_type").to_string();
        let custom_relation = obj
            .get("custom_relation")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if relation_type == "CUSTOM" && custom_relation.is_none() {
            return Err(Answer::missing("/custom_relation", "body"));
        }
        let name = match obj.get("name") {
            Some(Value::String(c)) => Some(sensitive::decrypt(&shared.settings, req, "/name", c)?),
            _ => None,
        };
        if ty == "MERCHANT_ID" && name.is_none() {
            return Err(Answer::param_error(
                "/name",
                "body",
                "name (the merchant's full name, encrypted with the platform public key) is required for a MERCHANT_ID receiver",
                Value::Null,
            ));
        }
        let mut answer = Map::new();
        sub_mchid(&obj, &mut answer);
        answer.insert("type".into(), json!(ty));
        answer.insert("account".into(), json!(account));
        if let Some(n) = &name {
            let sealed = sensitive::for_merchant(&shared.settings, &shared.settings.mchid, n);
            if !sealed.is_null() {
                answer.insert("name".into(), sealed);
            }
        }
        answer.insert("relation_type".into(), json!(relation_type));
        if let Some(c) = custom_relation {
            answer.insert("custom_relation".into(), json!(c));
        }
        lock(&shared.state)
            .sharing
            .receivers
            .insert((ty, account), Receiver { name });
        Ok(Answer::ok(Value::Object(answer)))
    };
    checked().unwrap_or_else(|a| a)
}

/// `POST v3/profitsharing/receivers/delete`.
fn delete_receiver(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = || -> Result<Answer, Answer> {
        documented::check(req)?;
        let obj = validate::object(&req.body)?;
        let ty = validate::text(&obj, "type").to_string();
        let account = validate::text(&obj, "account").to_string();
        let removed = lock(&shared.state)
            .sharing
            .receivers
            .remove(&(ty.clone(), account.clone()));
        if removed.is_none() {
            return Err(no_record("receiver", &format!("{ty} {account}")));
        }
        let mut answer = Map::new();
        sub_mchid(&obj, &mut answer);
        answer.insert("type".into(), json!(ty));
        answer.insert("account".into(), json!(account));
        Ok(Answer::ok(Value::Object(answer)))
    };
    checked().unwrap_or_else(|a| a)
}

/// `GET v3/profitsharing/transactions/{transaction_id}/amounts`: what is left to share (0 for a
/// payment made without profit sharing: nothing of it is frozen).
fn amounts(shared: &Arc<Shared>, transaction_id: &str) -> Answer {
    let st = lock(&shared.state);
    let unsplit_amount = match payment(&st, transaction_id) {
        Ok(paid) => unsplit(&st, transaction_id, paid.left),
        Err(a) if a.status.as_u16() == 404 => return a,
        Err(_) => 0,
    };
    Answer::ok(json!({"transaction_id": transaction_id, "unsplit_amount": unsplit_amount}))
}
