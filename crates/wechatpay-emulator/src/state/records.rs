//! The records the platform's state keeps for the flows that own them (their behaviour stays
//! with the flow, in `impl` blocks there): here so that the state imports no flow.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use crate::state::tracked::Tracked;
use serde_json::{Map, Value};

/// A combined order.
pub(crate) struct Combine {
    /// The creation request, to compare a repeated one with.
    pub request: Map<String, Value>,
    /// `JSAPI`, `APP`, `MWEB` or `NATIVE`, for every sub-order.
    pub trade_type: &'static str,
    /// The creation answer (`prepay_id`, `h5_url` or `code_url`).
    pub created: Value,
    pub combine_transaction_id: String,
    /// The sub-orders' keys in `State::transactions` (their `out_trade_no`), in request order.
    pub sub_orders: Vec<String>,
}

/// The bills, by `out_bill_no` (another merchant's than the first by
/// [`Settings::order_key`](crate::http::settings::Settings::order_key)), and
/// `transfer_bill_no` → that key.
#[derive(Default)]
pub(crate) struct Transfers {
    pub(crate) bills: Tracked<String, Bill>,
    pub(crate) ids: HashMap<String, String>,
}

/// One transfer bill.
pub(crate) struct Bill {
    /// The merchant that made it.
    pub(crate) mchid: String,
    /// The creation request with `user_name` decrypted: what a repeat is compared with (the
    /// ciphertext of the same name differs on each encryption).
    pub(crate) request: Map<String, Value>,
    pub(crate) transfer_bill_no: String,
    pub(crate) state: &'static str,
    pub(crate) fail_reason: Option<String>,
    /// The payee's name, decrypted.
    pub(crate) user_name: Option<String>,
    pub(crate) package_info: String,
    pub(crate) create_time: String,
    pub(crate) update_time: String,
}

/// Profit sharing's memory.
#[derive(Default)]
pub(crate) struct Sharing {
    /// Receivers by `(type, account)`.
    pub(crate) receivers: Tracked<(String, String), Receiver>,
    /// Orders (and unfreezings) by `out_order_no`.
    pub(crate) orders: Tracked<String, Order>,
    /// `order_id` → `out_order_no`.
    pub(crate) order_ids: Tracked<String, String>,
    /// Return orders by `out_return_no`.
    pub(crate) returns: Tracked<String, Map<String, Value>>,
    /// By `transaction_id`: shared so far, and whether the rest was unfrozen (nothing more can
    /// be shared).
    pub(crate) ledgers: Tracked<String, Ledger>,
}

#[derive(Default)]
pub(crate) struct Ledger {
    pub(crate) shared: i64,
    pub(crate) finished: bool,
}

pub(crate) struct Receiver {
    /// The name, decrypted, that orders naming the receiver must match.
    pub(crate) name: Option<String>,
}

pub(crate) struct Order {
    pub(crate) transaction_id: String,
    /// The order as it is (`FINISHED`): what queries and repeated requests get.
    pub(crate) answer: Map<String, Value>,
    /// Returned so far, by receiver account.
    pub(crate) returned: HashMap<String, i64>,
}

/// Bill files by download token, oldest first.
#[derive(Default)]
pub(crate) struct Files {
    pub(crate) by_token: HashMap<String, (Bytes, Instant)>,
    pub(crate) order: VecDeque<String>,
}

/// What became of one notification attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx: no more attempts.
    Accepted(u16),
    /// The receiver answered something else (for an APIv2 notification: anything but XML with
    /// `return_code` SUCCESS, whatever the status): retried if attempts remain.
    Refused(u16),
    /// No answer (connection, timeout): retried if attempts remain.
    Failed(String),
    /// Not sent (the URL is not loopback, or not http/https).
    Skipped(String),
}

/// One notification attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The `notify_url` posted to.
    pub url: String,
    /// `TRANSACTION.SUCCESS`, `REFUND.SUCCESS` …, or [`V2_REFUND_EVENT`](crate::V2_REFUND_EVENT) for the APIv2 refund
    /// notification (which has no event type of its own).
    pub event_type: String,
    /// The notification's `id` (an APIv2 notification has none in its body: this one is the
    /// emulator's, the same for every attempt).
    pub id: String,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When it was made, Unix seconds on the sandbox's clock.
    pub at: i64,
    /// What happened.
    pub outcome: Outcome,
}
