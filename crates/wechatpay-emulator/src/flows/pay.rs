//! Payments (基础支付): Native, JSAPI, APP and H5 orders, queries by `out-trade-no` and `id`, close, and
//! the simulated user payment that turns an order `SUCCESS` and notifies `TRANSACTION.SUCCESS`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::flows::actions::{self, PaymentAction};
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::validate::{self, opt, req, Field, Kind};
use crate::state::shared::Shared;
use crate::state::{Party, Transaction};
use crate::util::lock;
use crate::util::random_hex;
use wechatpay_chain::formatter;

const AMOUNT: &[Field] = &[req("total", Kind::Int), opt("currency", Kind::Str)];
const PAYER: &[Field] = &[req("openid", Kind::Str)];

/// The fields every order has, whatever the client (Native, JSAPI, APP, H5).
const ORDER: &[Field] = &[
    req("appid", Kind::Str),
    req("mchid", Kind::Str),
    req("description", Kind::Str),
    req("out_trade_no", Kind::Str),
    opt("time_expire", Kind::Str),
    opt("attach", Kind::Str),
    req("notify_url", Kind::Str),
    opt("goods_tag", Kind::Str),
    opt("support_fapiao", Kind::Bool),
    req("amount", Kind::Obj(AMOUNT)),
    opt("detail", Kind::Any),
    opt("settle_info", Kind::Any),
];

/// Native and APP: the scene is optional.
const ANY_SCENE: &[Field] = &[opt("scene_info", Kind::Any)];

/// JSAPI: the payer is known.
const JSAPI: &[Field] = &[req("payer", Kind::Obj(PAYER)), opt("scene_info", Kind::Any)];

const H5_INFO: &[Field] = &[
    req("type", Kind::Str),
    opt("app_name", Kind::Str),
    opt("app_url", Kind::Str),
    opt("bundle_id", Kind::Str),
    opt("package_name", Kind::Str),
];
const H5_SCENE: &[Field] = &[
    req("payer_client_ip", Kind::Str),
    opt("device_id", Kind::Str),
    opt("store_info", Kind::Any),
    req("h5_info", Kind::Obj(H5_INFO)),
];

/// H5: the payer's IP and the page it pays from.
const H5: &[Field] = &[req("scene_info", Kind::Obj(H5_SCENE))];

const CLOSE: &[Field] = &[req("mchid", Kind::Str)];

/// How an order is looked up.
pub(crate) enum By<'a> {
    OutTradeNo(&'a str),
    Id(&'a str),
}

/// Checks the `mchid` a body or query names against the caller's.
pub(crate) fn check_mchid(shared: &Shared, mchid: &str, location: &str) -> Result<(), Answer> {
    check_signer(shared, "mchid", "merchant", mchid, location)
}

/// Checks that the merchant number a body or query names in `field` (`mchid`, `sp_mchid`,
/// `combine_mchid`) is the caller's; the error calls the caller `role`.
pub(crate) fn check_signer(
    shared: &Shared,
    field: &str,
    role: &str,
    mchid: &str,
    location: &str,
) -> Result<(), Answer> {
    if mchid != shared.settings.signing_merchant() {
        return Err(Answer::param_error(
            &format!("/{field}"),
            location,
            format!("{field} {mchid} is not the {role} that signed the request"),
            Value::from(mchid),
        ));
    }
    Ok(())
}

/// An order's `amount.total` (0 when absent) and `amount.currency` (`CNY` when absent).
pub(crate) fn order_amount(r: &Map<String, Value>) -> (i64, &str) {
    let amount = r.get("amount");
    let total = amount
        .and_then(|a| a.get("total"))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let currency = amount
        .and_then(|a| a.get("currency"))
        .and_then(Value::as_str)
        .unwrap_or("CNY");
    (total, currency)
}

/// Checks what every new order has, after `signer` (the check of the merchant that orders):
/// its `out_trade_no`, its `notify_url` and a positive `amount.total`; the `out_trade_no`.
pub(crate) fn check_order(
    obj: &Map<String, Value>,
    signer: Result<(), Answer>,
) -> Result<String, Answer> {
    signer?;
    let no = validate::text(obj, "out_trade_no").to_string();
    check_out_no("out_trade_no", &no)?;
    check_notify_url(validate::text(obj, "notify_url"))?;
    check_total(obj)?;
    Ok(no)
}

/// Checks that a new order's `amount.total` is a positive number of fen.
pub(crate) fn check_total(obj: &Map<String, Value>) -> Result<(), Answer> {
    let (total, _) = order_amount(obj);
    if total <= 0 {
        return Err(Answer::param_error(
            "/amount/total",
            "body",
            "amount.total must be a positive number of fen",
            Value::from(total),
        ));
    }
    Ok(())
}

/// Checks a merchant order number: 6 to 32 of `0-9A-Za-z_-|*`.
pub(crate) fn check_out_no(field: &str, no: &str) -> Result<(), Answer> {
    let ok = (6..=32).contains(&no.len())
        && no
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*".contains(&b));
    if !ok {
        return Err(Answer::param_error(
            &format!("/{field}"),
            "body",
            format!("{field} must be 6 to 32 of 0-9, A-Z, a-z, _ - | *"),
            Value::from(no),
        ));
    }
    Ok(())
}

/// Checks a `notify_url`: absolute http(s), no query.
pub(crate) fn check_notify_url(url: &str) -> Result<(), Answer> {
    let ok = match url.parse::<http::Uri>() {
        Ok(u) => {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some()
                && u.query().is_none()
        }
        Err(_) => false,
    };
    if !ok {
        return Err(Answer::param_error(
            "/notify_url",
            "body",
            "notify_url must be an absolute https:// (or http://) URL without a query",
            Value::from(url),
        ));
    }
    Ok(())
}

pub(crate) fn state_desc(state: &str) -> &'static str {
    match state {
        "SUCCESS" => "支付成功",
        "REFUND" => "转入退款",
        "CLOSED" => "已关闭",
        "PAYERROR" => "支付失败",
        _ => "订单未支付",
    }
}

/// The transaction as the query and the notification show it.
pub(crate) fn transaction_json(shared: &Shared, t: &Transaction) -> Value {
    serde_json::to_value(TransactionView::of(shared, t)).unwrap_or(Value::Null)
}

/// A merchant's transaction as the platform shows it, its fields borrowed from the order and
/// in the documented order: the query serializes it straight into the answer's body.
#[derive(serde::Serialize)]
pub(crate) struct TransactionView<'a> {
    appid: &'a str,
    mchid: &'a str,
    out_trade_no: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<&'a str>,
    trade_type: &'a str,
    trade_state: &'a str,
    trade_state_desc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    bank_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attach: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_time: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer: Option<Payer<'a>>,
    amount: Amount<'a>,
}

#[derive(serde::Serialize)]
struct Payer<'a> {
    openid: &'a str,
}

/// An order's `amount` as the platform shows it: `payer_total` once paid.
#[derive(serde::Serialize)]
pub(crate) struct Amount<'a> {
    total: i64,
    currency: &'a str,
    payer_currency: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payer_total: Option<i64>,
}

impl<'a> Amount<'a> {
    pub(crate) fn of(t: &'a Transaction) -> Self {
        let (total, currency) = order_amount(&t.request);
        Amount {
            total,
            currency,
            payer_currency: currency,
            payer_total: t.transaction_id.is_some().then_some(total),
        }
    }
}

impl<'a> TransactionView<'a> {
    pub(crate) fn of(shared: &'a Shared, t: &'a Transaction) -> Self {
        let r = &t.request;
        let paid = t.transaction_id.is_some();
        TransactionView {
            appid: validate::text(r, "appid"),
            mchid: owner(shared, r, "mchid"),
            out_trade_no: validate::text(r, "out_trade_no"),
            transaction_id: t.transaction_id.as_deref(),
            trade_type: t.trade_type,
            trade_state: t.trade_state,
            trade_state_desc: state_desc(t.trade_state),
            bank_type: paid.then_some("OTHERS"),
            attach: r.get("attach"),
            success_time: t.success_time.as_deref(),
            payer: t.openid.as_deref().map(|openid| Payer { openid }),
            amount: Amount::of(t),
        }
    }
}

/// The merchant an order names in `field` (`mchid`, `sp_mchid`): the one that made it.
pub(crate) fn owner<'a>(shared: &'a Shared, r: &'a Map<String, Value>, field: &str) -> &'a str {
    match validate::text(r, field) {
        "" => &shared.settings.mchid,
        mchid => mchid,
    }
}

/// Whether order `t` is the signing merchant's: its own (`mchid`), a partner order it made
/// (`sp_mchid`), or a combined order's (the first merchant's, who alone makes them).
pub(crate) fn is_signers(shared: &Shared, t: &Transaction) -> bool {
    let signer = shared.settings.signing_merchant();
    match &t.party {
        Party::Merchant => owner(shared, &t.request, "mchid") == signer,
        Party::Partner { .. } => owner(shared, &t.request, "sp_mchid") == signer,
        Party::Combined { .. } => signer == shared.settings.mchid,
    }
}

/// Inserts an order's `trade_type`, `trade_state` and `trade_state_desc`.
pub(crate) fn insert_state(m: &mut Map<String, Value>, t: &Transaction) {
    m.insert("trade_type".into(), json!(t.trade_type));
    m.insert("trade_state".into(), json!(t.trade_state));
    m.insert("trade_state_desc".into(), json!(state_desc(t.trade_state)));
}

/// Inserts what an order shows last: `attach`, `success_time` once paid, the `payer` given
/// and the `amount` (`payer_total` once paid).
pub(crate) fn insert_outcome(m: &mut Map<String, Value>, t: &Transaction, payer: Option<Value>) {
    let r = &t.request;
    if let Some(a) = r.get("attach") {
        m.insert("attach".into(), a.clone());
    }
    if let Some(s) = &t.success_time {
        m.insert("success_time".into(), json!(s));
    }
    if let Some(payer) = payer {
        m.insert("payer".into(), payer);
    }
    m.insert(
        "amount".into(),
        serde_json::to_value(Amount::of(t)).unwrap_or(Value::Null),
    );
}

/// `POST v3/pay/transactions/{native,jsapi,app,h5}`.
pub(crate) fn create(shared: &Arc<Shared>, kind: &str, body: &[u8]) -> Answer {
    let extra = match kind {
        "jsapi" => JSAPI,
        "h5" => H5,
        _ => ANY_SCENE,
    };
    let obj = match validate::object(body).and_then(|o| {
        validate::check(&o, ORDER)
            .and_then(|_| validate::check(&o, extra))
            .map(|_| o)
    }) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let signer = check_mchid(shared, validate::text(&obj, "mchid"), "body");
    let no = match check_order(&obj, signer) {
        Ok(no) => no,
        Err(a) => return a,
    };
    let openid = obj
        .get("payer")
        .and_then(|p| p.get("openid"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let key = shared
        .settings
        .order_key(validate::text(&obj, "mchid"), &no);
    open_order(shared, key, obj, kind, openid, Party::Merchant)
}

/// Keeps a new order under `key` (`NOTPAY`) and answers its prepay; the same request again
/// answers the same, another under the same key answers a conflict.
pub(crate) fn open_order(
    shared: &Shared,
    key: String,
    obj: Map<String, Value>,
    kind: &str,
    openid: Option<String>,
    party: Party,
) -> Answer {
    let mut st = lock(&shared.state);
    if let Some(t) = st.transactions.get(&key) {
        if t.request == obj {
            return Answer::ok(t.created.clone());
        }
        return Answer::conflict("out_trade_no", validate::text(&obj, "out_trade_no"));
    }
    let (trade_type, created) = prepay(kind, shared.clock.now());
    super::expiry::orders(shared, vec![key.clone()], &obj);
    st.transactions.insert(
        key,
        Transaction {
            request: obj,
            trade_type,
            trade_state: "NOTPAY",
            created: created.clone(),
            transaction_id: None,
            success_time: None,
            openid,
            refunded: 0,
            party,
        },
    );
    Answer::ok(created)
}

/// The trade type and the creation answer of an order paid by `kind` (`jsapi`, `app`, `h5`,
/// `native`): a `prepay_id`, an `h5_url` or a `code_url`.
pub(crate) fn prepay(kind: &str, now: i64) -> (&'static str, Value) {
    let prepay_id = || {
        format!(
            "wx{}{}",
            crate::state::compact_time(now),
            random_hex(10).to_ascii_lowercase()
        )
    };
    match kind {
        "jsapi" => ("JSAPI", json!({"prepay_id": prepay_id()})),
        "app" => ("APP", json!({"prepay_id": prepay_id()})),
        "h5" => (
            "MWEB",
            json!({"h5_url": format!(
                "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id={}&package={}",
                prepay_id(),
                u32::from_str_radix(&random_hex(4), 16).unwrap_or(2_056_162_962)
            )}),
        ),
        _ => (
            "NATIVE",
            json!({"code_url": format!("weixin://wxpay/bizpayurl?pr={}", formatter::nonce(7))}),
        ),
    }
}

/// `GET v3/pay/transactions/out-trade-no/{out_trade_no}` and `…/id/{transaction_id}`, with
/// `?mchid=`.
pub(crate) fn query(shared: &Arc<Shared>, by: By<'_>, req: &Req) -> Answer {
    let Some(mchid) = req.query("mchid") else {
        return Answer::missing("/mchid", "query");
    };
    if let Err(a) = check_mchid(shared, mchid, "query") {
        return a;
    }
    let st = lock(&shared.state);
    let key = match by {
        By::OutTradeNo(no) => Some(shared.settings.order_key(mchid, no)),
        By::Id(id) => st.transaction_ids.get(id).cloned(),
    };
    // Another merchant's order is not there, as on the platform.
    match key.and_then(|k| st.transactions.get(&k)) {
        Some(t) if t.party == Party::Merchant && owner(shared, &t.request, "mchid") == mchid => {
            Answer::json(200, &TransactionView::of(shared, t))
        }
        _ => Answer::no_order(),
    }
}

/// `POST v3/pay/transactions/out-trade-no/{out_trade_no}/close`: 204.
pub(crate) fn close(shared: &Arc<Shared>, no: &str, body: &[u8]) -> Answer {
    let obj = match validate::object(body).and_then(|o| validate::check(&o, CLOSE).map(|_| o)) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let mchid = validate::text(&obj, "mchid");
    if let Err(a) = check_mchid(shared, mchid, "body") {
        return a;
    }
    let key = shared.settings.order_key(mchid, no);
    let mut st = lock(&shared.state);
    let Some(t) = st
        .transactions
        .get_mut(&key)
        .filter(|t| t.party == Party::Merchant)
    else {
        return Answer::no_order();
    };
    close_order(t)
}

/// Closes an unpaid order (204); a paid one answers `ORDERPAID`.
pub(crate) fn close_order(t: &mut Transaction) -> Answer {
    match t.trade_state {
        "NOTPAY" | "CLOSED" => {
            t.trade_state = "CLOSED";
            Answer::no_content()
        }
        _ => Answer::error(400, "ORDERPAID", "订单已支付，不能关闭 (the order is paid)"),
    }
}

/// The user pays order `no`: `SUCCESS`, then `TRANSACTION.SUCCESS` to its `notify_url`.
/// Paying a paid order again answers it as it is and notifies nothing (the control endpoint
/// `/emulator/pay/…/pay` of old; `/emulator/payments/…/paid` refuses it instead).
pub(crate) fn settle(shared: &Arc<Shared>, no: &str, user: Option<&str>) -> Result<Value, Answer> {
    {
        let st = lock(&shared.state);
        match st.transactions.get(no) {
            Some(t) if t.party == Party::Merchant => match t.trade_state {
                "NOTPAY" => {}
                "CLOSED" => {
                    return Err(Answer::error(
                        400,
                        "ORDER_CLOSED",
                        "订单已关闭 (the order is closed)",
                    ))
                }
                _ => return Ok(transaction_json(shared, t)),
            },
            _ => return Err(Answer::no_order()),
        }
    }
    actions::payment(shared, no, PaymentAction::Paid, None, user, None)
}
