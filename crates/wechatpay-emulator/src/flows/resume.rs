//! What the clock must still do for records read back from a state file: the queue of due
//! jobs holds closures and is not written, so it is derived again from the records at start.
//! Unpaid orders expire at their deadline (an order without `time_expire` gets the default
//! lifetime from the restart), refunds still `PROCESSING` end after the refund delay, transfer
//! bills waiting for the user close a day after their `create_time`. Notification retries
//! that were pending when the sandbox stopped are not sent again (docs/emulator.md, "Limits").

use std::sync::Arc;

use crate::state::clock::{self, millis};
use crate::state::shared::Shared;
use crate::state::Party;
use crate::util::lock;

/// Queues the jobs of every record that still waits for the clock.
pub(crate) fn jobs(shared: &Arc<Shared>) {
    let (orders, refunds, bills) = {
        let st = lock(&shared.state);
        let orders: Vec<_> = st
            .transactions
            .iter()
            .filter(|(_, t)| t.trade_state == "NOTPAY")
            .map(|(k, t)| {
                let request = match &t.party {
                    Party::Combined {
                        combine_out_trade_no,
                        ..
                    } => st
                        .combines
                        .get(combine_out_trade_no)
                        .map_or_else(|| t.request.clone(), |c| c.request.clone()),
                    _ => t.request.clone(),
                };
                (k.clone(), request)
            })
            .collect();
        let refunds: Vec<String> = st
            .refunds
            .iter()
            .filter(|(_, r)| r.answer.get("status").and_then(|s| s.as_str()) == Some("PROCESSING"))
            .map(|(k, _)| k.clone())
            .collect();
        let bills: Vec<(String, String)> = st
            .transfers
            .bills
            .iter()
            .filter(|(_, b)| b.state == "WAIT_USER_CONFIRM")
            .map(|(k, b)| (k.clone(), b.create_time.clone()))
            .collect();
        (orders, refunds, bills)
    };
    for (key, request) in orders {
        super::expiry::orders(shared, vec![key], &request);
    }
    for no in refunds {
        super::refund::schedule(shared, no);
    }
    for (no, created) in bills {
        let due = clock::parse_time(&created)
            .unwrap_or_else(|| shared.clock.now_ms())
            .saturating_add(millis(super::expiry::CONFIRM_WITHIN));
        shared.clock.at(
            due,
            Box::new(move |s: &Arc<Shared>| super::transfer::overdue_close(s, &no)),
        );
    }
}
