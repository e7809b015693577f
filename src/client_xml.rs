//! APIv2: XML bodies signed with MD5 or HMAC-SHA256, some calls over mutual TLS.

use bytes::Bytes;
use http::Method;

use crate::decorator::{Draft, Pending};
use crate::error::Error;
use crate::response::Response;
use crate::Core;

/// How an APIv2 `sign` is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignType {
    /// Uppercase hex MD5 (the default).
    Md5,
    /// Uppercase hex HMAC-SHA256.
    HmacSha256,
}

impl Core {
    pub(crate) fn begin_v2(&self, _method: Method, _d: Draft<'_>) -> Result<Pending, Error> {
        Err(Error::Config(
            "APIv2 (paths starting with v2/) is not supported yet".into(),
        ))
    }

    pub(crate) fn finish_v2(
        &self,
        _pending: &Pending,
        _res: http::Response<Bytes>,
    ) -> Result<Response, Error> {
        Err(Error::Config(
            "APIv2 (paths starting with v2/) is not supported yet".into(),
        ))
    }
}
