//! Room 7, control: the `/emulator/*` control API (not the platform's). May import every
//! room below it: util, http, state, documented, notify, flows.
//!
//! Control endpoints under `/emulator/…`, for what a user does on the phone and for tests in
//! other languages (`wechatpay serve`): pay an order, take a discount card, finish a refund,
//! end a merchant transfer (`transfers/{out_bill_no}/succeeded|failed`), read, set or advance
//! the sandbox's clock (`clock`), set the fault plan (`faults`),
//! list the requests received (a page at a time) and the notifications sent. They are not part
//! of the platform's API and need no signature; [`guard`](crate::http::guard) checks who calls them.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::flows::actions;
use crate::flows::discount_card;
use crate::flows::pay;
use crate::flows::refund;
use crate::flows::transfer;
use crate::http::answer::Answer;
use crate::http::received::Received;
use crate::http::request::Req;
use crate::state::records::Outcome;
use crate::state::shared::Shared;
use crate::util::lock;

fn optional_body(req: &Req) -> Result<serde_json::Map<String, Value>, Answer> {
    if req.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Default::default());
    }
    crate::http::validate::object(&req.body)
}

/// The most records one page of `GET /emulator/requests` lists (and its default).
pub(crate) const LISTING_LIMIT: usize = 1000;

/// The most bytes of records one page lists, unless its first record alone is larger (which
/// [`EmulatorConfig::max_log_bytes`](crate::EmulatorConfig::max_log_bytes) bounds).
pub(crate) const LISTING_PAGE_BYTES: usize = 1 << 20;

/// `GET /emulator/requests[?after=SEQ][&limit=N]`: the records numbered after `after` (0: from
/// the oldest kept), at most `limit` and [`LISTING_PAGE_BYTES`]; `next_after` is the `after`
/// of the next page, `null` on the last.
fn requests(shared: &Shared, req: &Req) -> Answer {
    let most = LISTING_LIMIT as u64;
    let asked = (
        number(
            req,
            "after",
            0..=u64::MAX,
            "the seq of a request (0: the oldest kept)",
        ),
        number(
            req,
            "limit",
            1..=most,
            "how many requests to list, 1 to 1000",
        ),
    );
    let (after, limit) = match asked {
        (Ok(after), Ok(limit)) => (after.unwrap_or(0), limit.unwrap_or(most) as usize),
        (Err(a), _) | (_, Err(a)) => return a,
    };
    let (page, more) = lock(&shared.received).page(after, limit, LISTING_PAGE_BYTES);
    let next = page.last().filter(|_| more).map(|r| r.seq);
    let list: Vec<Value> = page.iter().map(Received::listing).collect();
    Answer::ok(json!({"data": list, "next_after": next}))
}

/// Query parameter `name`, if given, as a whole number in `range` (else 400 saying `what`).
fn number(
    req: &Req,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<Option<u64>, Answer> {
    let Some(given) = req.query(name) else {
        return Ok(None);
    };
    match given.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Answer::param_error(
            &format!("/{name}"),
            "query",
            format!("{name} must be {what}"),
            Value::from(given),
        )),
    }
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
        ("POST", ["refund", "domestic", "refunds", no, "complete"]) => done(
            refund::control_key(shared, no, text(&body, "mchid"))
                .and_then(|key| refund::complete(shared, &key)),
        ),
        ("POST", ["transfers", no, "succeeded"]) => done(transfer::finish(
            shared,
            no,
            text(&body, "mchid"),
            transfer::End::Succeeded,
        )),
        ("POST", ["transfers", no, "failed"]) => match body.get("reason") {
            None | Some(Value::Null | Value::String(_)) => done(transfer::finish(
                shared,
                no,
                text(&body, "mchid"),
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
        (m @ ("GET" | "POST" | "DELETE"), ["faults"]) => {
            crate::http::faults::control(&shared.faults, m, &body)
        }
        (m @ ("GET" | "POST"), ["clock"]) => crate::state::clock::control(shared, m, &body),
        ("GET", ["requests"]) => requests(shared, req),
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
                           "attempt": d.attempt, "outcome": outcome, "detail": detail,
                           "time": crate::state::rfc3339(d.at)})
                })
                .collect();
            Answer::ok(json!({"data": list}))
        }
        ("GET", []) => {
            let s = &shared.settings;
            Answer::ok(json!({
                "mchid": s.mchid, "merchant_serial": s.merchant_serial,
                "mode": format!("{:?}", s.mode), "platform_serial": s.platform_serial,
                "merchants": crate::http::merchants::listed(&s.all_merchants(None)),
            }))
        }
        _ => Answer::error(
            404,
            "NOT_FOUND",
            format!("no emulator control {} {}", req.method, req.target),
        ),
    }
}
