//! A verified answer: status, headers and body, plus the parsed fields of an APIv2 answer.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::Error;

/// An answer whose origin was verified (or that the platform sends unsigned by design, such as
/// bill file downloads).
#[derive(Debug, Clone)]
pub struct Response {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    pub(crate) xml: Option<Vec<(String, String)>>,
}

impl Response {
    pub(crate) fn new(res: http::Response<Bytes>) -> Self {
        let (parts, body) = res.into_parts();
        Response {
            status: parts.status,
            headers: parts.headers,
            body,
            xml: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The HTTP headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body as received.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body as shared bytes (no copy).
    pub fn bytes(&self) -> Bytes {
        self.body.clone()
    }

    /// The body as text; invalid UTF-8 is replaced by U+FFFD.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON into any `T` (`serde_json::Value` for a free-form view). An APIv2
    /// answer is offered as a JSON object of its fields.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        if let Some(fields) = &self.xml {
            let map: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect();
            return serde_json::from_value(serde_json::Value::Object(map))
                .map_err(|e| Error::decode_from("APIv2 fields do not fit the requested type", e));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::decode_from("answer is not the expected JSON", e))
    }

    /// The fields of an APIv2 XML answer, in document order (`None` for APIv3 answers and for
    /// APIv2 downloads that are not XML).
    pub fn xml_map(&self) -> Option<&[(String, String)]> {
        self.xml.as_deref()
    }

    /// The platform's `Request-ID`, to quote to support.
    pub fn request_id(&self) -> Option<&str> {
        self.headers.get("request-id").and_then(|v| v.to_str().ok())
    }
}
