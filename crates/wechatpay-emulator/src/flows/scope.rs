//! With several merchants: the flows that keep state for the first merchant only (combined
//! orders, profit sharing, discount cards, brand points) answer another
//! merchant `403 NO_AUTH`, rather than show it the first merchant's state.

use crate::http::answer::Answer;
use crate::state::shared::Shared;

/// `403 NO_AUTH` when a merchant beyond the first calls a flow kept for the first (`segs`:
/// the path after `v3/`); `None` otherwise.
pub(crate) fn first_merchants_only(shared: &Shared, segs: &[&str]) -> Option<Answer> {
    let signer = shared.settings.signing_merchant();
    let first = &shared.settings.mchid;
    let kept = matches!(
        segs,
        ["combine-transactions", ..]
            | ["profitsharing", ..]
            | ["discount-card", ..]
            | ["brand", ..]
    );
    (kept && signer != *first).then(|| {
        Answer::error(
            403,
            "NO_AUTH",
            format!(
                "商户无权限 (the sandbox keeps v3/{} for its first merchant {first} only, not \
                 for {signer}: see \"Several merchants\" in docs/emulator.md)",
                segs.first().unwrap_or(&"")
            ),
        )
    })
}
