//! What ends by itself when the sandbox's clock reaches its time: an unpaid order at its
//! `time_expire` (`CLOSED`, as the platform closes it, with no notification), and a merchant
//! transfer the user has not confirmed within a day (`FAIL`, `OVERDUE_CLOSE`, notified).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::state::clock;
use crate::state::shared::Shared;
use crate::util::lock;

/// How long an order without `time_expire` stays payable. The documentation pages say nothing
/// of a default; the sandbox takes the two hours a `prepay_id` lives.
pub(crate) const DEFAULT_ORDER_LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// How long a transfer bill waits for the user to confirm it (the 24 hours the transfer pages
/// give the user) before it fails with `OVERDUE_CLOSE`.
pub(crate) const CONFIRM_WITHIN: Duration = Duration::from_secs(24 * 3600);

/// When an order created now with `request` expires (Unix milliseconds of the clock): its
/// `time_expire`, else [`DEFAULT_ORDER_LIFETIME`] from now. A `time_expire` the sandbox cannot
/// read counts as absent (the request was checked before).
pub(crate) fn deadline(shared: &Shared, request: &Map<String, Value>) -> i64 {
    request
        .get("time_expire")
        .and_then(Value::as_str)
        .and_then(clock::parse_time)
        .unwrap_or_else(|| {
            shared
                .clock
                .now_ms()
                .saturating_add(DEFAULT_ORDER_LIFETIME.as_millis() as i64)
        })
}

/// Closes the orders under `keys` (in `transactions`: an order, or a combined order's
/// sub-orders) that are still `NOTPAY` when the clock reaches their deadline.
pub(crate) fn orders(shared: &Shared, keys: Vec<String>, request: &Map<String, Value>) {
    let due = deadline(shared, request);
    shared.clock.at(
        due,
        Box::new(move |s: &Arc<Shared>| {
            let mut st = lock(&s.state);
            for k in &keys {
                if let Some(t) = st.transactions.get_mut(k) {
                    if t.trade_state == "NOTPAY" {
                        t.trade_state = "CLOSED";
                    }
                }
            }
        }),
    );
}
