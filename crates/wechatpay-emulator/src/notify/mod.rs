//! Room 5, notify: notifications (回调通知) built, signed and delivered with their retries
//! ([`webhooks`]), and the documented notification events ([`events`], which fills example
//! resources from the documented answers, so this room sits above documented).
//! May import: util, http, state, documented.

pub mod events;
pub(crate) mod webhooks;
