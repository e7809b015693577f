//! APIv2 `pay/micropay` (付款码支付) and `pay/orderquery`, and what every APIv2 call goes
//! through (`secapi/pay/refund` is in [`refund`], `pay/refundquery` in [`refund_query`], the
//! other documented calls in [`documented`], the answers' XML in [`xml`]): XML read with the library's transformer,
//! the merchant certificate required on the calls that need it, the request's `sign` checked
//! and the answer's made with `client_xml`, as the platform does (`return_code` FAIL for a
//! missing certificate, a bad document or sign, unsigned; business errors as `result_code`
//! FAIL with `err_code`, signed).

pub(crate) mod documented;
pub(crate) mod refund;
pub(crate) mod refund_query;
pub(crate) mod xml;

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::flows::v2::xml::{business, missing, signed, text};
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::state::shared::Shared;
use crate::state::{compact_time, numeric_id, openid, rfc3339, Party, Transaction};
use crate::util::lock;
use wechatpay_chain::client_xml::SignType;

/// An APIv2 operation: the request's sign type and data, checked, to the answer.
type Op = fn(&Arc<Shared>, SignType, &Map<String, Value>) -> Answer;

/// Answers an APIv2 path: a modelled operation, else the catalogue's documented answer
/// (`v2_documented`), or `None` when the catalogue has no APIv2 operation there.
pub(crate) fn handle(shared: &Arc<Shared>, req: &Req) -> Option<(Answer, Option<String>)> {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let op: Op = match (req.method.as_str(), segs.as_slice()) {
        ("POST", ["pay", "micropay"]) => micropay,
        ("POST", ["pay", "orderquery"]) => orderquery,
        ("POST", ["secapi", "pay", "refund"]) => crate::flows::v2::refund::refund,
        ("POST", ["pay", "refundquery"]) => crate::flows::v2::refund_query::refundquery,
        _ => return crate::flows::v2::documented::handle(shared, req),
    };
    // the certificate (the catalogue's `security`), the document, the sign, the merchant
    let documented = crate::flows::v2::documented::operation(req)?;
    match crate::flows::v2::documented::admit(shared, req, documented) {
        Ok(a) => Some((
            crate::http::merchants::with_signer(a.mchid, || op(shared, a.kind, &a.data)),
            None,
        )),
        Err(refused) => Some(refused),
    }
}

fn micropay(shared: &Arc<Shared>, kind: SignType, data: &Map<String, Value>) -> Answer {
    const REQUIRED: &[&str] = &[
        "appid",
        "mch_id",
        "nonce_str",
        "body",
        "out_trade_no",
        "total_fee",
        "spbill_create_ip",
        "auth_code",
    ];
    if let Some(a) = missing(shared, kind, data, REQUIRED) {
        return a;
    }
    let total: i64 = match text(data, "total_fee").parse() {
        Ok(t) if t > 0 => t,
        _ => {
            return business(
                shared,
                kind,
                data,
                "PARAM_ERROR",
                "total_fee must be a positive integer of fen",
            )
        }
    };
    let code = text(data, "auth_code");
    let valid_code = code.len() == 18
        && code.bytes().all(|b| b.is_ascii_digit())
        && matches!(&code[..2], "10" | "11" | "12" | "13" | "14" | "15");
    if !valid_code {
        return business(
            shared,
            kind,
            data,
            "AUTH_CODE_INVALID",
            "授权码检验错误 (payment code is not valid)",
        );
    }
    // The request as content, without what changes between honest retries (a retry may be
    // signed in the other type).
    let mut content = data.clone();
    content.remove("sign");
    content.remove("nonce_str");
    content.remove("sign_type");
    let no = text(data, "out_trade_no").to_string();
    // each merchant its own order numbers, as in APIv3
    let signer = shared.settings.signing_merchant();
    let key = shared.settings.order_key(&signer, &no);
    let mut st = lock(&shared.state);
    if let Some((first, answer)) = st.v2_orders.get(&key) {
        if *first != content {
            return business(shared, kind, data, "OUT_TRADE_NO_USED", "商户订单号重复");
        }
        let answer = answer.clone();
        drop(st);
        return signed(shared, kind, data, answer);
    }
    // one number space with the APIv3 orders
    if st.transactions.contains_key(&key) {
        return business(shared, kind, data, "OUT_TRADE_NO_USED", "商户订单号重复");
    }
    let seq = st.next();
    let now = shared.clock.now();
    let transaction_id = numeric_id("4200", now, seq, 28);
    let mut fields: Vec<(&str, Value)> = vec![
        ("result_code", "SUCCESS".into()),
        ("openid", openid(seq).into()),
        ("is_subscribe", "N".into()),
        ("trade_type", "MICROPAY".into()),
        ("bank_type", "OTHERS".into()),
        ("fee_type", "CNY".into()),
        ("total_fee", total.to_string().into()),
        ("cash_fee", total.to_string().into()),
        ("transaction_id", transaction_id.clone().into()),
        ("out_trade_no", no.clone().into()),
        ("time_end", compact_time(now).into()),
    ];
    if let Some(a) = data.get("attach") {
        fields.push(("attach", a.clone()));
    }
    // The same order, paid, for APIv3: its queries, refunds, closing and bills see it.
    let mut request = Map::new();
    request.insert("appid".into(), text(data, "appid").into());
    request.insert("mchid".into(), signer.into());
    request.insert("out_trade_no".into(), no.clone().into());
    request.insert("description".into(), text(data, "body").into());
    if let Some(a) = data.get("attach") {
        request.insert("attach".into(), a.clone());
    }
    request.insert("amount".into(), json!({"total": total, "currency": "CNY"}));
    st.transactions.insert(
        key.clone(),
        Transaction {
            request,
            trade_type: "MICROPAY",
            trade_state: "SUCCESS",
            created: Value::Null,
            transaction_id: Some(transaction_id.clone()),
            success_time: Some(rfc3339(now)),
            openid: Some(openid(seq)),
            refunded: 0,
            party: Party::Merchant,
        },
    );
    st.transaction_ids.insert(transaction_id, key.clone());
    st.v2_orders.insert(key, (content, fields.clone()));
    drop(st);
    signed(shared, kind, data, fields)
}

fn orderquery(shared: &Arc<Shared>, kind: SignType, data: &Map<String, Value>) -> Answer {
    if let Some(a) = missing(shared, kind, data, &["appid", "mch_id", "nonce_str"]) {
        return a;
    }
    let (no, id) = (text(data, "out_trade_no"), text(data, "transaction_id"));
    if no.is_empty() && id.is_empty() {
        return business(
            shared,
            kind,
            data,
            "PARAM_ERROR",
            "transaction_id和out_trade_no至少填一个",
        );
    }
    let st = lock(&shared.state);
    // an APIv3 order (a micropay one too) by either number, the caller's own
    let key = if no.is_empty() {
        st.transaction_ids.get(id).cloned()
    } else {
        Some(
            shared
                .settings
                .order_key(&shared.settings.signing_merchant(), no),
        )
    };
    let order = key
        .as_ref()
        .and_then(|k| st.transactions.get(k))
        .filter(|t| t.party == Party::Merchant && crate::flows::pay::is_signers(shared, t));
    let Some(t) = order else {
        drop(st);
        return business(shared, kind, data, "ORDERNOTEXIST", "此交易订单号不存在");
    };
    let mut fields = match key.and_then(|k| st.v2_orders.get(&k)) {
        Some((_, answer)) => answer.clone(),
        None => v3_order_fields(t),
    };
    fields.push(("trade_state", t.trade_state.into()));
    fields.push((
        "trade_state_desc",
        crate::flows::pay::state_desc(t.trade_state).into(),
    ));
    drop(st);
    signed(shared, kind, data, fields)
}

/// An order made with APIv3 as `pay/orderquery` tells of it: its APIv2 trade type, amounts in
/// fen as text and, once paid, the payment.
fn v3_order_fields(t: &Transaction) -> Vec<(&'static str, Value)> {
    let r = &t.request;
    let total = r
        .get("amount")
        .and_then(|a| a.get("total"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
        .to_string();
    let mut fields: Vec<(&str, Value)> = vec![
        ("result_code", "SUCCESS".into()),
        (
            "out_trade_no",
            crate::http::validate::text(r, "out_trade_no").into(),
        ),
        ("trade_type", t.trade_type.into()),
        ("fee_type", "CNY".into()),
        ("total_fee", total.clone().into()),
    ];
    if let Some(o) = &t.openid {
        fields.push(("openid", o.clone().into()));
        fields.push(("is_subscribe", "N".into()));
    }
    if let (Some(id), Some(at)) = (&t.transaction_id, &t.success_time) {
        fields.push(("transaction_id", id.clone().into()));
        fields.push(("bank_type", "OTHERS".into()));
        fields.push(("cash_fee", total.into()));
        fields.push((
            "time_end",
            at.get(..19)
                .unwrap_or_default()
                .replace(['-', 'T', ':'], "")
                .into(),
        ));
    }
    if let Some(a) = r.get("attach") {
        fields.push(("attach", a.clone()));
    }
    fields
}
