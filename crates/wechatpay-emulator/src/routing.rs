//! Room 8, routing: which flow answers which request (the dispatch table the server is given
//! as [`Platform::respond`]). It may import every room below it.

use std::future::Future;
use std::sync::Arc;

use wechatpay_chain::formatter;

use crate::control;
use crate::documented;
use crate::flows::{
    bills, brand, certificates, combine, discount_card, media, partner, pay, profitsharing, refund,
    scope, transfer, v2,
};
use crate::http::answer::Answer;
use crate::http::auth;
use crate::http::base::Platform;
use crate::http::faults;
use crate::http::merchants::with_signer;
use crate::http::multipart;
use crate::http::request::{Kind, Req, Responded};
use crate::state::shared::Shared;

impl Platform for Shared {
    fn respond(this: &Arc<Self>, req: &Req) -> impl Future<Output = Responded> + Send {
        kept(this, req)
    }
}

/// The answer to `req`, its change written to the state file (if any) before it goes out, so
/// that an answered change survives a restart; a GET changes nothing but what the clock
/// brought due.
async fn kept(shared: &Arc<Shared>, req: &Req) -> Responded {
    let due = crate::state::clock::run_due(shared);
    let answered = respond(shared, req).await;
    if due || req.method != http::Method::GET {
        crate::state::store::flush(shared);
    }
    answered
}

/// The answer to `req` ([`kept`] has run what the clock brought due: a query at an order's
/// `time_expire` sees it closed even if the background task has not woken for it yet).
async fn respond(shared: &Arc<Shared>, req: &Req) -> Responded {
    let first = req.segments.first().map(String::as_str);
    match first {
        Some("emulator") => {
            let a = control::handle(shared, req);
            (a, Kind::Control, None, None, None)
        }
        Some("v3") => {
            let multipart = match multipart::parse(&req.headers, &req.body).await {
                Ok(m) => m,
                Err(a) => {
                    let why = Some("unreadable multipart body".into());
                    return (a, Kind::V3, why, None, None);
                }
            };
            let signed: &[u8] = match &multipart {
                Some(m) => &m.meta,
                None => &req.body,
            };
            let signer = match auth::check(
                shared,
                req.method.as_str(),
                &req.target,
                req.header("authorization"),
                signed,
                formatter::timestamp(),
            ) {
                Ok(signer) => signer,
                Err(refused) => {
                    let why = format!("{}: {}", refused.check, refused.reason);
                    return (
                        Answer::sign_error(&refused.reason),
                        Kind::V3,
                        Some(why),
                        Some(refused),
                        None,
                    );
                }
            };
            // A request carrying fields encrypted for the platform names its key.
            if let Some(serial) = req.header("wechatpay-serial") {
                if !shared.settings.knows_serial(serial) {
                    let a = Answer::param_error(
                        "/Wechatpay-Serial",
                        "header",
                        "平台证书序列号Wechatpay-Serial错误 (not the platform's key)",
                        serde_json::Value::from(serial),
                    );
                    return (a, Kind::V3, None, None, None);
                }
            }
            // the platform took the call: a fault may spoil it now
            let path = req.route.split('?').next().unwrap_or("");
            let effect = faults::on_call(
                &shared.faults,
                req.method.as_str(),
                path.trim_start_matches('/'),
                |status, code, message| Answer::error(status, code, message),
            );
            let (answer, fired) = faults::apply(effect, || {
                with_signer(signer, || dispatch(shared, req, multipart))
            });
            (answer, Kind::V3, None, None, fired)
        }
        _ => {
            let effect = v2_fault(shared, req);
            let (mut kind, mut refusal) = (Kind::V2, None);
            let (answer, fired) = faults::apply(effect, || match v2::handle(shared, req) {
                Some((answer, why)) => {
                    refusal = why;
                    answer
                }
                None => {
                    kind = Kind::V3;
                    not_found(req)
                }
            });
            (answer, kind, refusal, None, fired)
        }
    }
}

/// The fault of an APIv2 call the platform takes (its certificate, sign and merchant
/// admitted), its error answered as `result_code` FAIL signed in the request's sign type.
fn v2_fault(shared: &Arc<Shared>, req: &Req) -> Option<(faults::Effect, String)> {
    let path = format!("v2{}", req.route.split('?').next().unwrap_or(""));
    let method = req.method.as_str();
    let subject = faults::Subject::Call {
        method,
        path: &path,
    };
    if !shared.faults.any_for(&subject) {
        return None;
    }
    let op = v2::documented::operation(req)?;
    let admitted = v2::documented::admit(shared, req, op).ok()?;
    faults::on_call(&shared.faults, method, &path, |_, code, message| {
        v2::xml::business(shared, admitted.kind, &admitted.data, code, message)
    })
}

fn not_found(req: &Req) -> Answer {
    Answer::error(
        404,
        "NOT_FOUND",
        format!(
            "the emulator has no operation {} {}",
            req.method,
            req.target.split('?').next().unwrap_or("")
        ),
    )
}

fn dispatch(shared: &Arc<Shared>, req: &Req, multipart: Option<multipart::Parts>) -> Answer {
    let segs: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let body = &req.body;
    if let Some(refused) = scope::first_merchants_only(shared, &segs[1..]) {
        return refused;
    }
    match (req.method.as_str(), &segs[1..]) {
        ("POST", ["discount-card", "cards"]) => discount_card::create(shared, body),
        ("GET", ["discount-card", "cards", code]) => discount_card::card(shared, code),
        ("POST", ["discount-card", "cards", code, "add-user-records"]) => {
            discount_card::add_user_records(shared, code, body)
        }
        ("PATCH", ["discount-card", "orders", no]) => discount_card::update(shared, no, body),
        ("GET", ["discount-card", "orders", "out-trade-no", no]) => {
            discount_card::query_by_trade_no(shared, no)
        }
        ("GET", ["discount-card", "orders", no]) => discount_card::query(shared, no),
        ("POST", ["brand", "partner", "card-member", "user-points", "sync"]) => {
            brand::sync_points(shared, body)
        }
        ("POST", ["pay", "transactions", kind @ ("native" | "jsapi" | "app" | "h5")]) => {
            pay::create(shared, kind, body)
        }
        ("GET", ["pay", "transactions", "out-trade-no", no]) => {
            pay::query(shared, pay::By::OutTradeNo(no), req)
        }
        ("GET", ["pay", "transactions", "id", id]) => pay::query(shared, pay::By::Id(id), req),
        ("POST", ["pay", "transactions", "out-trade-no", no, "close"]) => {
            pay::close(shared, no, body)
        }
        ("POST", ["refund", "domestic", "refunds"]) => refund::create(shared, body),
        ("GET", ["refund", "domestic", "refunds", no]) => {
            refund::query(shared, no, req.query("sub_mchid"))
        }
        (
            "POST",
            ["pay", "partner", "transactions", kind @ ("native" | "jsapi" | "app" | "h5")],
        ) => partner::create(shared, kind, req),
        ("GET", ["pay", "partner", "transactions", "out-trade-no", no]) => {
            partner::query(shared, partner::By::OutTradeNo(no), req)
        }
        ("GET", ["pay", "partner", "transactions", "id", id]) => {
            partner::query(shared, partner::By::Id(id), req)
        }
        ("POST", ["pay", "partner", "transactions", "out-trade-no", no, "close"]) => {
            partner::close(shared, no, req)
        }
        ("POST", ["combine-transactions", kind @ ("native" | "jsapi" | "app" | "h5")]) => {
            combine::create(shared, kind, req)
        }
        ("GET", ["combine-transactions", "out-trade-no", no]) => combine::query(shared, no),
        ("GET", ["combine-transactions", "id", id]) => combine::query_by_id(shared, id),
        ("POST", ["combine-transactions", "out-trade-no", no, "close"]) => {
            combine::close(shared, no, req)
        }
        ("GET", ["certificates"]) => certificates::list(shared, req),
        ("GET", ["bill", "tradebill"]) => bills::trade_bill(shared, req),
        ("GET", ["bill", "fundflowbill"]) => bills::fund_flow_bill(shared, req),
        ("GET", ["bill", "sub-merchant-fundflowbill"]) => {
            bills::sub_merchant_fund_flow_bill(shared, req)
        }
        ("GET", ["billdownload", "file"]) => bills::download(shared, req),
        ("POST", ["merchant", "media", "upload"]) => media::upload(shared, multipart),
        // the flows routed by their own modules, then every other documented APIv3
        // operation: a documented answer
        _ => transfer::route(shared, req, &segs[1..])
            .or_else(|| profitsharing::route(shared, req, &segs[1..]))
            .or_else(|| documented::answer(shared, req, multipart.as_ref()))
            .unwrap_or_else(|| not_found(req)),
    }
}
