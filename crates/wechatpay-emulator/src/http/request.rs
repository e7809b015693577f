//! A request as the server read it ([`Req`]), and what the platform answers it with
//! ([`Responded`]).

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::http::answer::Answer;
use crate::http::diagnosis::SignatureRefusal;
use crate::http::faults::Fired;
use crate::http::tls::ClientCertificate;

/// A request read whole.
pub(crate) struct Req {
    pub method: Method,
    /// Path and query as received (what the request's signature covers).
    pub target: String,
    /// `target` without a documented base's path prefix ([`BASE_PREFIXES`]): the operation's
    /// own path, which routes it.
    pub route: String,
    /// The authority of an absolute request target (`GET http://host:port/… HTTP/1.1`).
    pub authority: Option<String>,
    /// Percent-decoded path segments of `route`.
    pub segments: Vec<String>,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// What the connection's client presented (TLS mode).
    pub client: ClientCertificate,
}

impl Req {
    /// The first query value named `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The answer, its kind, why the request was refused (if it was), for a refused signature the
/// diagnosis, and the fault that fired on it (what it still does to the answer).
pub(crate) type Responded = (
    Answer,
    Kind,
    Option<String>,
    Option<SignatureRefusal>,
    Option<Fired>,
);

/// Which rules an answer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    V3,
    V2,
    Control,
}
