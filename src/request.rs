//! A request on its way: what the decorator made of a call's args (the signed HTTP request,
//! its protocol, limits and retry policy) and what its answer must be checked against. Shared
//! by the decorator, both protocols' rooms and the retry loop, so that none of them needs
//! another's file.

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::crypto::hash::SignType;
use crate::error::Error;
use crate::transport::policy::RetryPolicy;
use crate::transport::Limits;
use crate::uri::{self, Base};

/// Which protocol a path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// JSON over RSA-signed requests.
    V3,
    /// XML with MD5/HMAC-SHA256 `sign` fields.
    V2,
}

/// A request ready to send, and what its answer must be checked against.
pub(crate) struct Pending {
    pub request: http::Request<Bytes>,
    pub protocol: Protocol,
    pub secure: bool,
    pub limits: Limits,
    /// Request path, to find the answers the platform leaves unsigned.
    pub path: String,
    /// The chain path as written (placeholders unexpanded), for the call's tracing span.
    pub template: String,
    /// APIv2: the sign type the answer is expected to use.
    pub v2_sign_type: Option<SignType>,
    /// The retry policy of this call, if any.
    pub retry: Option<RetryPolicy>,
    /// Whether the call names its own `base_uri` (then no backup domain is tried).
    pub own_base: bool,
}

pub(crate) fn object<'a>(
    args: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a Map<String, Value>>, Error> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(other) => Err(Error::arg(format!(
            "{key} must be an object, got {}",
            uri::kind(other)
        ))),
    }
}

pub(crate) fn flag(args: &Map<String, Value>, key: &str) -> Result<bool, Error> {
    match args.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(Error::arg(format!(
            "{key} must be true or false, got {}",
            uri::kind(other)
        ))),
    }
}

/// The shape shared by both protocols: method, expanded path, base, headers and limits.
pub(crate) struct Draft<'a> {
    pub args: &'a Map<String, Value>,
    pub base: Base,
    pub path: String,
    pub headers: http::HeaderMap,
    pub limits: Limits,
    pub retry: Option<RetryPolicy>,
    pub own_base: bool,
}
