//! Room 3, state: the platform's state and clock formats, the records it keeps for the flows
//! ([`records`]), and [`shared::Shared`], everything the running platform holds.
//! May import: util, http.
//!
//! The emulated platform's memory: cards, orders, points, transactions, refunds and media, the
//! serial numbers already used (for idempotency), and the time and id formats the platform
//! answers with.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::http::answer::Answer;
use crate::state::tracked::Tracked;

pub(crate) mod clock;
pub(crate) mod records;
pub(crate) mod shared;
pub(crate) mod store;
pub(crate) mod tracked;

/// Everything the operations remember, behind one mutex held only briefly.
#[derive(Default)]
pub(crate) struct State {
    /// Discount cards by `out_card_code`.
    pub cards: Tracked<String, Card>,
    /// Discount-card orders by `out_order_no`.
    pub dc_orders: Tracked<String, Map<String, Value>>,
    /// Serial numbers used, by scope and serial, with the content first sent.
    pub serials: Tracked<String, Value>,
    /// Point balances by `brand_id/card_id/user_card_code`.
    pub points: Tracked<String, i64>,
    /// Transactions by `out_trade_no` (a partner order by [`partner_key`]).
    pub transactions: Tracked<String, Transaction>,
    /// Combined orders by `combine_out_trade_no`.
    pub combines: Tracked<String, records::Combine>,
    /// `transaction_id` → the key in `transactions`.
    pub transaction_ids: HashMap<String, String>,
    /// Refunds by `out_refund_no` (another merchant's than the first by
    /// [`Settings::order_key`](crate::http::settings::Settings::order_key)).
    pub refunds: Tracked<String, Refund>,
    /// Uploaded media by `media_id`: file name and size.
    pub media: Tracked<String, (String, usize)>,
    /// APIv2 micropay orders by `out_trade_no`: the request (without `sign`, `nonce_str` and
    /// `sign_type`) and the fields answered; the order itself is in `transactions` (trade
    /// type `MICROPAY`), where APIv3 sees it.
    pub v2_orders: Tracked<String, (Map<String, Value>, V2Fields)>,
    /// Merchant transfer bills.
    pub transfers: records::Transfers,
    /// Profit-sharing receivers, orders and returns.
    pub sharing: records::Sharing,
    /// A counter for ids.
    pub seq: u64,
}

/// The fields of an APIv2 answer, in order.
pub(crate) type V2Fields = Vec<(&'static str, Value)>;

/// A discount card prepared with `v3/discount-card/cards`.
pub(crate) struct Card {
    pub request: Map<String, Value>,
    pub prepare_card_token: String,
    /// The order made when the user took the card.
    pub out_order_no: Option<String>,
}

/// A payment order.
pub(crate) struct Transaction {
    /// The creation request, to compare a repeated one with.
    pub request: Map<String, Value>,
    /// `NATIVE`, `JSAPI`, `APP` or `MWEB` (H5).
    pub trade_type: &'static str,
    /// `NOTPAY`, `SUCCESS`, `CLOSED`, `REFUND`, `PAYERROR`.
    pub trade_state: &'static str,
    /// `code_url` or `prepay_id` answer.
    pub created: Value,
    pub transaction_id: Option<String>,
    pub success_time: Option<String>,
    pub openid: Option<String>,
    pub refunded: i64,
    /// Whose order it is.
    pub party: Party,
}

/// Whose order a transaction is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Party {
    /// The merchant's own (`v3/pay/transactions/…`).
    Merchant,
    /// A service provider's order for sub-merchant `sub_mchid` (`v3/pay/partner/transactions/…`).
    Partner { sub_mchid: String },
    /// A sub-order of a combined order (`v3/combine-transactions/…`).
    Combined {
        combine_out_trade_no: String,
        sub_mchid: Option<String>,
    },
}

impl Party {
    /// The sub-merchant the order is for, if any.
    pub fn sub_mchid(&self) -> Option<&str> {
        match self {
            Party::Merchant => None,
            Party::Partner { sub_mchid } => Some(sub_mchid),
            Party::Combined { sub_mchid, .. } => sub_mchid.as_deref(),
        }
    }
}

/// The key of a partner order in [`State::transactions`]: the sub-merchant and its number,
/// apart from every merchant order number (which has no NUL).
pub(crate) fn partner_key(sub_mchid: &str, out_trade_no: &str) -> String {
    format!("{sub_mchid}\u{0}{out_trade_no}")
}

/// A refund.
pub(crate) struct Refund {
    /// The refund as the query answers it.
    pub answer: Map<String, Value>,
    /// Where its success is notified, and how.
    pub notify: Option<RefundNotify>,
    /// The sub-merchant of a partner refund.
    pub sub_mchid: Option<String>,
    /// The merchant that made it (the service provider of a partner refund): whose it is to
    /// query, whose APIv3 key its notification is under, whose bills list it.
    pub mchid: String,
    /// Its order's key in [`State::transactions`].
    pub order: String,
}

/// How a refund's success is notified, by the API that made it.
#[derive(Debug, Clone)]
pub(crate) enum RefundNotify {
    /// `REFUND.SUCCESS` (APIv3, JSON) to this URL.
    V3(String),
    /// The APIv2 refund notification (XML, `req_info` encrypted) to `url`, naming `appid`.
    V2 { url: String, appid: String },
}

impl State {
    /// A number unique within this emulator, for ids.
    pub fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Whether `serial` in `scope` is new: `Ok(true)` the first time, `Ok(false)` when repeated
    /// with the same content (idempotent), 409 when repeated with different content. Nothing is
    /// recorded until [`State::remember`].
    pub fn fresh(
        &self,
        scope: &str,
        field: &str,
        serial: &str,
        content: &Value,
    ) -> Result<bool, Answer> {
        match self.serials.get(&format!("{scope}\u{0}{serial}")) {
            None => Ok(true),
            Some(first) if first == content => Ok(false),
            Some(_) => Err(Answer::conflict(field, serial)),
        }
    }

    /// Records `serial` in `scope` with its content.
    pub fn remember(&mut self, scope: &str, serial: &str, content: &Value) {
        self.serials
            .insert(format!("{scope}\u{0}{serial}"), content.clone());
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `ts` (Unix time) as an RFC 3339 time in Beijing time, as the platform writes them (a
/// notification's `create_time`, an order's `success_time`): `2015-05-20T13:29:35+08:00`.
pub fn rfc3339(ts: i64) -> String {
    let local = ts + 8 * 3600;
    let (y, m, d) = civil(local.div_euclid(86_400));
    let secs = local.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+08:00",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `YYYYMMDD` in Beijing time.
pub(crate) fn date_digits(ts: i64) -> String {
    let (y, m, d) = civil((ts + 8 * 3600).div_euclid(86_400));
    format!("{y:04}{m:02}{d:02}")
}

/// An RFC 3339 time as APIv2 writes it, `YYYY-MM-DD HH:MM:SS` (`2015-05-20 13:29:35`).
pub(crate) fn v2_time(rfc3339: &str) -> String {
    rfc3339.get(..19).unwrap_or_default().replacen('T', " ", 1)
}

/// `YYYYMMDDHHMMSS` in Beijing time (APIv2 `time_end`).
pub(crate) fn compact_time(ts: i64) -> String {
    let local = ts + 8 * 3600;
    let secs = local.rem_euclid(86_400);
    format!(
        "{}{:02}{:02}{:02}",
        date_digits(ts),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// A numeric id of `len` digits: `prefix`, the date, then the sequence number.
pub(crate) fn numeric_id(prefix: &str, ts: i64, seq: u64, len: usize) -> String {
    let head = format!("{prefix}{}", date_digits(ts));
    let width = len.saturating_sub(head.len());
    let tail = format!("{seq:0width$}");
    let tail = &tail[tail.len().saturating_sub(width)..];
    format!("{head}{tail}")
}

/// An `openid`-shaped user id.
pub(crate) fn openid(seq: u64) -> String {
    format!("oUpF8uMuAJO_M2pxb1Q9z{seq:07}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_beijing_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T08:00:00+08:00");
        // 2015-05-20T13:29:35+08:00
        assert_eq!(rfc3339(1_432_099_775), "2015-05-20T13:29:35+08:00");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T08:00:00+08:00");
        assert_eq!(date_digits(1_432_099_775), "20150520");
        assert_eq!(compact_time(1_432_099_775), "20150520132935");
        assert_eq!(v2_time(&rfc3339(1_432_099_775)), "2015-05-20 13:29:35");
        assert_eq!(v2_time("short"), "");
        assert_eq!(
            numeric_id("4200", 1_432_099_775, 7, 28),
            "4200201505200000000000000007"
        );
        assert_eq!(numeric_id("4200", 1_432_099_775, 7, 28).len(), 28);
    }

    #[test]
    fn serials_are_idempotent_or_conflict() {
        let mut s = State::default();
        let a = serde_json::json!({"x": 1});
        assert!(s.fresh("o", "serial_no", "1", &a).unwrap());
        s.remember("o", "1", &a);
        assert!(!s.fresh("o", "serial_no", "1", &a).unwrap());
        assert!(s.fresh("other", "serial_no", "1", &a).unwrap());
        let e = s
            .fresh("o", "serial_no", "1", &serde_json::json!({"x": 2}))
            .unwrap_err();
        assert_eq!(e.status.as_u16(), 409);
    }
}
