//! Room 5, notify: notifications (回调通知) built, signed and delivered with their retries
//! ([`webhooks`]), the APIv2 refund notification ([`v2_refund`]), and the documented notification events ([`events`], which fills example
//! resources from the documented answers, so this room sits above documented).
//! May import: util, http, state, documented.

pub mod events;
pub(crate) mod v2_refund;
pub(crate) mod webhooks;
