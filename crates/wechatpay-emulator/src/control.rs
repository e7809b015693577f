//! Control endpoints under `/emulator/…`, for what a user does on the phone and for tests in
//! other languages (`wechatpay serve`): pay an order, take a discount card, finish a refund,
//! end a merchant transfer (`transfers/{out_bill_no}/succeeded|failed`),
//! list the requests received and the notifications sent. They need no signature (the server
//! is loopback only) and are not part of the platform's API.

use std::sync::Arc;

use serde_json::{json, Value};

use super::actions;
use super::answer::Answer;
use super::server::Req;
use super::{discount_card, lock, pay, refund, transfer, Outcome, Shared};

fn optional_body(req: &Req) -> Result<serde_json::Map<String, Value>, Answer> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    super::validate::object(&req.body)
}

fn text<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

pub(crate) fn handle(shared: &Arc<Shared>, req: &Req) -> Answer {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let body = match optional_body(req) {
        Ok(b) => b,
        Err(a) => return a,
    };
    let done = |r: Result<Value, Answer>| r.map(Answer::ok).unwrap_or_else(|a| a);
    match (req.method.as_str(), &segs[1..]) {
        ("POST", ["pay", "transactions", "out-trade-no", no, "pay"]) => {
            done(pay::settle(shared, no, text(&body, "openid")))
        }
        ("POST", ["discount-card", "cards", code, "accept"]) => done(discount_card::accept(
            shared,
            code,
            text(&body, "out_order_no"),
            text(&body, "openid"),
        )),
        ("POST", ["refund", "domestic", "refunds", no, "complete"]) => {
            done(refund::complete(shared, no))
        }
        ("POST", ["transfers", no, "succeeded"]) => {
            done(transfer::finish(shared, no, transfer::End::Succeeded))
        }
        ("POST", ["transfers", no, "failed"]) => match body.get("reason") {
            None | Some(Value::Null | Value::String(_)) => done(transfer::finish(
                shared,
                no,
                transfer::End::Failed(text(&body, "reason")),
            )),
            Some(other) => Answer::param_error(
                "/reason",
                "body",
                "reason must be a string, one of the documented fail_reason values",
                other.clone(),
            ),
        },
        ("POST", [kind @ ("payments" | "refunds"), no, action]) => {
            done(actions::control(shared, kind, no, action, &body))
        }
        ("GET", ["requests"]) => {
            let list: Vec<Value> = lock(&shared.received)
                .iter()
                .map(|r| {
                    json!({"method": r.method, "target": r.target, "status": r.status,
                           "body_len": r.body_len, "body_sha256": r.body_sha256,
                           "verified": r.verified, "refusal": r.refusal,
                           "signature": r.signature.as_ref().map(|s| s.to_json()),
                           "client_certificate": r.client_certificate})
                })
                .collect();
            Answer::ok(json!({"data": list}))
        }
        ("GET", ["deliveries"]) => {
            let list: Vec<Value> = lock(&shared.deliveries)
                .iter()
                .map(|d| {
                    let (outcome, detail) = match &d.outcome {
                        Outcome::Accepted(s) => ("ACCEPTED", json!(s)),
                        Outcome::Refused(s) => ("REFUSED", json!(s)),
                        Outcome::Failed(e) => ("FAILED", json!(e)),
                        Outcome::Skipped(e) => ("SKIPPED", json!(e)),
                    };
                    json!({"id": d.id, "url": d.url, "event_type": d.event_type,
                           "attempt": d.attempt, "outcome": outcome, "detail": detail})
                })
                .collect();
            Answer::ok(json!({"data": list}))
        }
        ("GET", []) => {
            let s = &shared.settings;
            Answer::ok(json!({
                "mchid": s.mchid, "merchant_serial": s.merchant_serial,
                "mode": format!("{:?}", s.mode), "platform_serial": s.platform_serial,
            }))
        }
        _ => Answer::error(
            404,
            "NOT_FOUND",
            format!("no emulator control {} {}", req.method, req.target),
        ),
    }
}
