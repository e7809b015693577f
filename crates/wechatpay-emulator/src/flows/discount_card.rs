//! 微信先享卡 (discount card), with the fields of the seed pages: prepare a card
//! (`v3/discount-card/cards`), the user takes it (simulated, which makes its order), add user
//! records (`cards/{out_card_code}/add-user-records`, 204), update the order
//! (`orders/{out_order_no}` PATCH) and query it by order number or by `out_trade_no`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::http::answer::Answer;
use crate::http::validate::{self, opt, req, Field, Kind};
use crate::state::shared::Shared;
use crate::state::{numeric_id, openid, rfc3339, Card};
use crate::util::lock;
use crate::util::random_hex;

const CREATE: &[Field] = &[
    req("out_card_code", Kind::Str),
    req("card_template_id", Kind::Str),
    req("appid", Kind::Str),
    req("notify_url", Kind::Str),
];

const OBJECTIVE_COMPLETION: &[Field] = &[
    req("objective_completion_serial_no", Kind::Str),
    req("objective_id", Kind::Str),
    req("completion_time", Kind::Str),
    req("completion_type", Kind::Str),
    req("description", Kind::Str),
    req("completion_count", Kind::Int),
    opt("remark", Kind::Str),
];

const REWARD_USAGE: &[Field] = &[
    req("reward_usage_serial_no", Kind::Str),
    req("reward_id", Kind::Str),
    req("usage_time", Kind::Str),
    req("usage_type", Kind::Str),
    req("description", Kind::Str),
    req("usage_count", Kind::Int),
    req("amount", Kind::Int),
    opt("remark", Kind::Str),
];

const ADD_USER_RECORDS: &[Field] = &[
    req("card_template_id", Kind::Str),
    opt(
        "objective_completion_records",
        Kind::List(OBJECTIVE_COMPLETION),
    ),
    opt("reward_usage_records", Kind::List(REWARD_USAGE)),
];

const OBJECTIVE: &[Field] = &[
    req("objective_serial_no", Kind::Str),
    req("objective_id", Kind::Int),
    req("performance_description", Kind::Str),
    req("performance_type", Kind::Str),
    req("count", Kind::Int),
    req("performance_time", Kind::Str),
    opt("remark", Kind::Str),
];

const REWARD: &[Field] = &[
    req("reward_serial_no", Kind::Str),
    req("reward_id", Kind::Int),
    req("description", Kind::Str),
    req("reward_type", Kind::Str),
    req("count", Kind::Int),
    req("amount", Kind::Int),
    req("reward_time", Kind::Str),
    opt("remark", Kind::Str),
];

const UPDATE: &[Field] = &[
    opt("objectives", Kind::List(OBJECTIVE)),
    opt("rewards", Kind::List(REWARD)),
];

fn no_card(out_card_code: &str) -> Answer {
    Answer::error(
        404,
        "RESOURCE_NOT_EXISTS",
        format!("先享卡不存在 (no discount card {out_card_code})"),
    )
}

/// `POST v3/discount-card/cards`: answers `prepare_card_token`; the same `out_card_code` with
/// the same content answers the same token, with other content 409.
pub(crate) fn create(shared: &Arc<Shared>, body: &[u8]) -> Answer {
    let obj = match validate::object(body).and_then(|o| validate::check(&o, CREATE).map(|_| o)) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let code = validate::text(&obj, "out_card_code").to_string();
    let mut st = lock(&shared.state);
    if let Some(card) = st.cards.get(&code) {
        if card.request == obj {
            return Answer::ok(json!({"prepare_card_token": card.prepare_card_token}));
        }
        return Answer::conflict("out_card_code", &code);
    }
    let token = format!("AASP3pABAAABAAAAAAD{}", random_hex(24));
    st.cards.insert(
        code,
        Card {
            request: obj,
            prepare_card_token: token.clone(),
            out_order_no: None,
        },
    );
    Answer::ok(json!({"prepare_card_token": token}))
}

/// The user takes the card: its order is made, `CREATED`, with `out_trade_no` = the card code.
pub(crate) fn accept(
    shared: &Arc<Shared>,
    out_card_code: &str,
    out_order_no: Option<&str>,
    user: Option<&str>,
) -> Result<Value, Answer> {
    let mut st = lock(&shared.state);
    let seq = st.next();
    let card = st
        .cards
        .get(out_card_code)
        .ok_or_else(|| no_card(out_card_code))?;
    if let Some(no) = &card.out_order_no {
        return Ok(Value::Object(
            st.dc_orders.get(no).cloned().unwrap_or_default(),
        ));
    }
    let no = match out_order_no {
        Some(no) if !no.is_empty() => no.to_string(),
        _ => random_hex(16).to_ascii_lowercase(),
    };
    if st.dc_orders.contains_key(&no) {
        return Err(Answer::conflict("out_order_no", &no));
    }
    let now = shared.clock.now();
    let r = &card.request;
    let mut order = Map::new();
    for (k, v) in [
        ("out_order_no", json!(no)),
        (
            "discount_card_id",
            json!(validate::text(r, "card_template_id")),
        ),
        ("out_trade_no", json!(out_card_code)),
        ("appid", json!(validate::text(r, "appid"))),
        ("service_id", json!("500001")),
        ("order_id", json!(numeric_id("1564", now, seq, 20))),
        (
            "openid",
            json!(user.map(str::to_string).unwrap_or_else(|| openid(seq))),
        ),
        ("card_begin_time", json!(rfc3339(now))),
        ("card_end_time", json!(rfc3339(now + 30 * 86_400))),
        ("card_name", json!("微信先享卡")),
        ("objective_description", json!("购买商品 3 次")),
        ("reward_description", json!("每次减 5 元")),
        ("estimated_reward_amount", json!(1500)),
        ("online_instructions", json!("仅限商户 APP 使用")),
        ("state", json!("CREATED")),
        ("total_amount", json!(0)),
        ("deduction_amount", json!(0)),
        ("settlement_amount", json!(0)),
        ("create_time", json!(rfc3339(now))),
        ("objectives", json!([])),
        ("rewards", json!([])),
    ] {
        order.insert(k.into(), v);
    }
    if let Some(card) = st.cards.get_mut(out_card_code) {
        card.out_order_no = Some(no.clone());
    }
    st.dc_orders.insert(no, order.clone());
    Ok(Value::Object(order))
}

/// Appends records to an order's `objectives` and `rewards` and recomputes its amounts.
fn apply(order: &mut Map<String, Value>, objectives: Vec<Value>, rewards: Vec<Value>) {
    let push = |order: &mut Map<String, Value>, key: &str, items: Vec<Value>| {
        if let Some(Value::Array(list)) = order.get_mut(key) {
            list.extend(items);
        }
    };
    push(order, "objectives", objectives);
    push(order, "rewards", rewards);
    let total: i64 = match order.get("rewards") {
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|r| r.get("amount").and_then(Value::as_i64))
            .fold(0i64, i64::saturating_add),
        _ => 0,
    };
    let deduction = order
        .get("deduction_amount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    order.insert("total_amount".into(), json!(total));
    order.insert(
        "settlement_amount".into(),
        json!(total.saturating_sub(deduction)),
    );
}

/// Items of an optional list field (checked already).
fn items(obj: &Map<String, Value>, key: &str) -> Vec<Map<String, Value>> {
    match obj.get(key) {
        Some(Value::Array(list)) => list.iter().filter_map(|v| v.as_object().cloned()).collect(),
        _ => Vec::new(),
    }
}

/// Keeps the items of the body's list `name` whose serial (`field`) is new; 409 when one is
/// reused with other content, naming it by its pointer (`/rewards/1/reward_serial_no`).
fn fresh_items(
    st: &crate::state::State,
    scope: &str,
    name: &str,
    field: &str,
    list: &[Map<String, Value>],
) -> Result<Vec<Map<String, Value>>, Answer> {
    let mut out: Vec<Map<String, Value>> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let at = format!("/{name}/{i}/{field}");
        let serial = validate::text(item, field);
        let content = Value::Object(item.clone());
        let seen_here = out
            .iter()
            .find(|o| validate::text(o, field) == serial)
            .map(|o| Value::Object(o.clone()));
        match seen_here {
            Some(same) if same == content => continue,
            Some(_) => return Err(Answer::conflict(&at, serial)),
            None => {}
        }
        if st.fresh(scope, &at, serial, &content)? {
            out.push(item.clone());
        }
    }
    Ok(out)
}

/// `objective_id` "123456" as the order's integer, when it is one.
fn as_int(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => s.parse::<i64>().map(Value::from).unwrap_or(json!(s)),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// `POST v3/discount-card/cards/{out_card_code}/add-user-records`: 204.
pub(crate) fn add_user_records(shared: &Arc<Shared>, out_card_code: &str, body: &[u8]) -> Answer {
    let obj = match validate::object(body)
        .and_then(|o| validate::check(&o, ADD_USER_RECORDS).map(|_| o))
    {
        Ok(o) => o,
        Err(a) => return a,
    };
    let mut st = lock(&shared.state);
    let Some(card) = st.cards.get(out_card_code) else {
        return no_card(out_card_code);
    };
    let template = validate::text(&card.request, "card_template_id");
    if validate::text(&obj, "card_template_id") != template {
        return Answer::param_error(
            "/card_template_id",
            "body",
            "card_template_id is not the template of this card",
            obj.get("card_template_id").cloned().unwrap_or_default(),
        );
    }
    let Some(no) = card.out_order_no.clone() else {
        return Answer::error(
            400,
            "INVALID_REQUEST",
            "用户尚未领卡 (the user has not taken this card yet: Emulator::accept_card)",
        );
    };
    let scope = format!("card/{out_card_code}");
    let objectives = items(&obj, "objective_completion_records");
    let rewards = items(&obj, "reward_usage_records");
    let new_objectives = match fresh_items(
        &st,
        &scope,
        "objective_completion_records",
        "objective_completion_serial_no",
        &objectives,
    ) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let new_rewards = match fresh_items(
        &st,
        &scope,
        "reward_usage_records",
        "reward_usage_serial_no",
        &rewards,
    ) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let mut objectives_out = Vec::new();
    for o in &new_objectives {
        st.remember(
            &scope,
            validate::text(o, "objective_completion_serial_no"),
            &Value::Object(o.clone()),
        );
        let mut m = json!({
            "objective_serial_no": o.get("objective_completion_serial_no"),
            "objective_id": as_int(o.get("objective_id")),
            "performance_description": o.get("description"),
            "performance_type": o.get("completion_type"),
            "count": o.get("completion_count"),
            "performance_time": o.get("completion_time"),
        });
        if let Some(r) = o.get("remark") {
            m["remark"] = r.clone();
        }
        objectives_out.push(m);
    }
    let mut rewards_out = Vec::new();
    for r in &new_rewards {
        st.remember(
            &scope,
            validate::text(r, "reward_usage_serial_no"),
            &Value::Object(r.clone()),
        );
        let mut m = json!({
            "reward_serial_no": r.get("reward_usage_serial_no"),
            "reward_id": as_int(r.get("reward_id")),
            "description": r.get("description"),
            "reward_type": r.get("usage_type"),
            "count": r.get("usage_count"),
            "amount": r.get("amount"),
            "reward_time": r.get("usage_time"),
        });
        if let Some(x) = r.get("remark") {
            m["remark"] = x.clone();
        }
        rewards_out.push(m);
    }
    if let Some(order) = st.dc_orders.get_mut(&no) {
        apply(order, objectives_out, rewards_out);
    }
    Answer::no_content()
}

/// `PATCH v3/discount-card/orders/{out_order_no}`: answers `out_order_no` and `order_id`.
pub(crate) fn update(shared: &Arc<Shared>, out_order_no: &str, body: &[u8]) -> Answer {
    let obj = match validate::object(body).and_then(|o| validate::check(&o, UPDATE).map(|_| o)) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let mut st = lock(&shared.state);
    if !st.dc_orders.contains_key(out_order_no) {
        return Answer::no_order();
    }
    let scope = format!("order/{out_order_no}");
    let objectives = match fresh_items(
        &st,
        &scope,
        "objectives",
        "objective_serial_no",
        &items(&obj, "objectives"),
    ) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let rewards = match fresh_items(
        &st,
        &scope,
        "rewards",
        "reward_serial_no",
        &items(&obj, "rewards"),
    ) {
        Ok(v) => v,
        Err(a) => return a,
    };
    for o in &objectives {
        st.remember(
            &scope,
            validate::text(o, "objective_serial_no"),
            &Value::Object(o.clone()),
        );
    }
    for r in &rewards {
        st.remember(
            &scope,
            validate::text(r, "reward_serial_no"),
            &Value::Object(r.clone()),
        );
    }
    let Some(order) = st.dc_orders.get_mut(out_order_no) else {
        return Answer::no_order();
    };
    apply(
        order,
        objectives.into_iter().map(Value::Object).collect(),
        rewards.into_iter().map(Value::Object).collect(),
    );
    Answer::ok(json!({"out_order_no": out_order_no, "order_id": order.get("order_id")}))
}

/// `GET v3/discount-card/orders/{out_order_no}`.
pub(crate) fn query(shared: &Arc<Shared>, out_order_no: &str) -> Answer {
    match lock(&shared.state).dc_orders.get(out_order_no) {
        Some(order) => Answer::ok(Value::Object(order.clone())),
        None => Answer::no_order(),
    }
}

/// `GET v3/discount-card/orders/out-trade-no/{out_trade_no}`.
pub(crate) fn query_by_trade_no(shared: &Arc<Shared>, out_trade_no: &str) -> Answer {
    let st = lock(&shared.state);
    match st
        .dc_orders
        .values()
        .find(|o| o.get("out_trade_no").and_then(Value::as_str) == Some(out_trade_no))
    {
        Some(order) => Answer::ok(Value::Object(order.clone())),
        None => Answer::no_order(),
    }
}

/// `GET v3/discount-card/cards/{out_card_code}`: the card the user took, with the documented
/// fields (its period, state, amounts, and the records added, by objective and by reward);
/// 404 `NOT_FOUND` for a card never prepared, or not taken yet (the platform knows a card
/// once the user has it).
pub(crate) fn card(shared: &Arc<Shared>, out_card_code: &str) -> Answer {
    let st = lock(&shared.state);
    let not_found = |why: String| Answer::error(404, "NOT_FOUND", why);
    let Some(card) = st.cards.get(out_card_code) else {
        return not_found(format!("先享卡不存在 (no discount card {out_card_code})"));
    };
    let Some(order) = card
        .out_order_no
        .as_ref()
        .and_then(|no| st.dc_orders.get(no))
    else {
        return not_found(format!(
            "用户尚未领卡 (the user has not taken card {out_card_code} yet: POST \
             /emulator/discount-card/cards/{out_card_code}/accept)"
        ));
    };
    let r = &card.request;
    let get = |k: &str| order.get(k).cloned().unwrap_or_default();
    let list = |k: &str| match order.get(k) {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    Answer::ok(json!({
        "card_id": get("order_id"),
        "card_template_id": validate::text(r, "card_template_id"),
        "out_card_code": out_card_code,
        "appid": validate::text(r, "appid"),
        "mchid": shared.settings.mchid,
        "time_range": {"begin_time": get("card_begin_time"), "end_time": get("card_end_time")},
        // the card's agreement runs from when the user takes it until its end
        "state": "ONGOING",
        "total_amount": get("total_amount"),
        "create_time": get("create_time"),
        "objectives": card_objectives(&list("objectives")),
        "rewards": card_rewards(&list("rewards")),
    }))
}

/// A string id for the card's lists (the order keeps integer ids where it was given them).
fn id_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The order's objective records grouped by `objective_id`, as the card tells of them.
fn card_objectives(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in records {
        let id = id_text(r.get("objective_id"));
        let record = json!({
            "objective_completion_serial_no": r.get("objective_serial_no"),
            "objective_id": id,
            "completion_time": r.get("performance_time"),
            "completion_type": r.get("performance_type"),
            "description": r.get("performance_description"),
            "completion_count": r.get("count"),
        });
        let count = r.get("count").and_then(Value::as_i64).unwrap_or(0);
        match out.iter_mut().find(|o| o["objective_id"] == id.as_str()) {
            Some(o) => {
                let n = o["count"].as_i64().unwrap_or(0).saturating_add(count);
                o["count"] = json!(n);
                if let Some(Value::Array(list)) = o.get_mut("objective_completion_records") {
                    list.push(record);
                }
            }
            None => out.push(json!({
                "objective_id": id, "name": format!("目标 {id}"), "count": count,
                "unit": "次", "objective_completion_records": [record],
            })),
        }
    }
    out
}

/// The order's reward records grouped by `reward_id`, as the card tells of them.
fn card_rewards(records: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for r in records {
        let id = id_text(r.get("reward_id"));
        let record = json!({
            "reward_usage_serial_no": r.get("reward_serial_no"),
            "reward_id": id,
            "usage_time": r.get("reward_time"),
            "usage_type": r.get("reward_type"),
            "description": r.get("description"),
            "usage_count": r.get("count"),
            "amount": r.get("amount"),
        });
        let count = r.get("count").and_then(Value::as_i64).unwrap_or(0);
        let amount = r.get("amount").and_then(Value::as_i64).unwrap_or(0);
        match out.iter_mut().find(|o| o["reward_id"] == id.as_str()) {
            Some(o) => {
                o["count"] = json!(o["count"].as_i64().unwrap_or(0).saturating_add(count));
                o["amount"] = json!(o["amount"].as_i64().unwrap_or(0).saturating_add(amount));
                if let Some(Value::Array(list)) = o.get_mut("reward_usage_records") {
                    list.push(record);
                }
            }
            None => out.push(json!({
                "reward_id": id, "name": format!("优惠 {id}"), "count_type": "COUNT_LIMIT",
                "count": count, "unit": "次", "amount": amount,
                "reward_usage_records": [record],
            })),
        }
    }
    out
}
