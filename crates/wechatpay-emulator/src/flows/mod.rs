//! Room 6, flows: one module per modelled flow (payments, combined and partner orders,
//! refunds, transfers, profit sharing, bills, certificates, media, brand points, discount
//! cards, sensitive fields, request payment, the control actions on orders) and APIv2
//! ([`v2`]). Flows may import each other and every room below: util, http, state,
//! documented, notify.

pub(crate) mod actions;
pub(crate) mod bills;
pub(crate) mod brand;
pub(crate) mod certificates;
pub(crate) mod combine;
pub(crate) mod discount_card;
pub(crate) mod expiry;
pub(crate) mod media;
pub(crate) mod partner;
pub(crate) mod pay;
pub(crate) mod profitsharing;
pub(crate) mod refund;
pub(crate) mod request_payment;
pub(crate) mod resume;
pub(crate) mod scope;
pub(crate) mod sensitive;
pub(crate) mod transfer;
pub(crate) mod v2;
