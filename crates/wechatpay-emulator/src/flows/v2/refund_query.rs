//! APIv2 `pay/refundquery` (查询退款), no certificate needed: the refunds of an order, or one
//! refund, found by `refund_id`, `out_refund_no`, `transaction_id` or `out_trade_no` (the
//! first given in that order, as the platform takes them), whichever API made them (the
//! emulator keeps one set of refunds), up to 10 from `offset`, each as `…_$n` fields counted
//! from 0. `REFUNDNOTEXIST` when there is none.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::flows::v2::xml::{business, missing, signed, text};
use crate::http::answer::Answer;
use crate::notify::v2_refund::{amount, described};
use crate::state::shared::Shared;
use crate::util::lock;
use wechatpay_chain::client_xml::SignType;

/// The identifiers a refund is found by, the platform's order of preference first.
const KEYS: &[&str] = &[
    "refund_id",
    "out_refund_no",
    "transaction_id",
    "out_trade_no",
];

/// The most refunds one answer lists (the platform's page).
const PAGE: usize = 10;

/// The fields of `described` the answer carries for each refund, as `name_$n`.
const PER_REFUND: &[&str] = &[
    "out_refund_no",
    "refund_id",
    "refund_fee",
    "settlement_refund_fee",
    "refund_status",
    "refund_account",
    "refund_recv_accout",
];

/// `POST pay/refundquery`.
pub(crate) fn refundquery(
    shared: &Arc<Shared>,
    kind: SignType,
    data: &Map<String, Value>,
) -> Answer {
    if let Some(a) = missing(shared, kind, data, &["appid", "mch_id", "nonce_str"]) {
        return a;
    }
    let param = |des: &str| business(shared, kind, data, "PARAM_ERROR", des);
    let offset = match text(data, "offset") {
        "" => None,
        o => match o.parse::<usize>() {
            Ok(n) => Some(n),
            Err(_) => return param("offset must be a non-negative integer"),
        },
    };
    let by = KEYS.iter().find_map(|k| {
        let v = text(data, k);
        (!v.is_empty()).then_some((*k, v))
    });
    let Some((key, value)) = by else {
        return param(
            "refund_id、out_refund_no、transaction_id、out_trade_no至少填一个 (one of them is \
             required)",
        );
    };
    let (order, refunds) = {
        let st = lock(&shared.state);
        let mut found: Vec<&Map<String, Value>> = st
            .refunds
            .values()
            // the caller's own
            .filter(|r| r.mchid == shared.settings.signing_merchant())
            .map(|r| &r.answer)
            .filter(|a| a.get(key).and_then(Value::as_str) == Some(value))
            .collect();
        // A refund_id is the date and a sequence number: in order of creation.
        found.sort_by_key(|a| a.get("refund_id").and_then(Value::as_str).unwrap_or(""));
        let order = found.first().map(|a| {
            (
                amount(a, "payer_total"),
                a.get("transaction_id").cloned().unwrap_or_default(),
                a.get("out_trade_no").cloned().unwrap_or_default(),
            )
        });
        let refunds: Vec<_> = found.into_iter().map(|a| described(a)).collect();
        (order, refunds)
    };
    let Some((cash_fee, transaction_id, out_trade_no)) = order else {
        return business(
            shared,
            kind,
            data,
            "REFUNDNOTEXIST",
            &format!("退款订单查询失败 (no refund for this {key})"),
        );
    };
    let start = offset.unwrap_or(0);
    if start >= refunds.len() {
        return param("offset is beyond the order's refunds");
    }
    let first = &refunds[0];
    let order_field = |k: &str| {
        first
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut fields: Vec<(String, Value)> = vec![
        ("result_code".into(), "SUCCESS".into()),
        ("transaction_id".into(), transaction_id),
        ("out_trade_no".into(), out_trade_no),
        ("total_fee".into(), order_field("total_fee")),
        (
            "settlement_total_fee".into(),
            order_field("settlement_total_fee"),
        ),
        ("fee_type".into(), "CNY".into()),
        ("cash_fee".into(), cash_fee),
    ];
    if offset.is_some() || refunds.len() > PAGE {
        fields.push((
            "total_refund_count".into(),
            refunds.len().to_string().into(),
        ));
    }
    let page = &refunds[start..refunds.len().min(start + PAGE)];
    fields.push(("refund_count".into(), page.len().to_string().into()));
    for (n, refund) in page.iter().enumerate() {
        fields.push((format!("refund_channel_{n}"), "ORIGINAL".into()));
        for (k, v) in refund {
            if PER_REFUND.contains(k) {
                fields.push((format!("{k}_{n}"), v.clone()));
            } else if *k == "success_time" {
                fields.push((format!("refund_success_time_{n}"), v.clone()));
            }
        }
    }
    let fields = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    signed(shared, kind, data, fields)
}
