//! APIv2 (`pay/micropay`, `pay/orderquery`): XML bodies with an MD5 or HMAC-SHA256 `sign`.

use std::sync::Arc;

use super::answer::Answer;
use super::server::Req;
use super::Shared;

/// Answers an APIv2 path, or `None` when the path is not one the emulator has.
pub(crate) fn handle(_shared: &Arc<Shared>, _req: &Req) -> Option<(Answer, Option<String>)> {
    None
}
