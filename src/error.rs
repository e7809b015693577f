//! The one error type of the crate: every failure says what went wrong and where, in one line,
//! and never carries a secret.
//!
//! Each error keeps what caused it: [`std::error::Error::source`] leads to the underlying
//! serde_json, openssl, I/O or hyper error, and each level's `Display` says only its own part
//! (it does not repeat its cause). To show the whole story, walk the chain:
//!
//! ```
//! fn report(e: &dyn std::error::Error) -> String {
//!     let mut line = e.to_string();
//!     let mut next = e.source();
//!     while let Some(cause) = next {
//!         line.push_str(": ");
//!         line.push_str(&cause.to_string());
//!         next = cause.source();
//!     }
//!     line
//! }
//! let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
//! let e = wechatpay_chain::Error::config_from("cannot read the settings", cause);
//! assert_eq!(report(&e), "configuration error: cannot read the settings: no such file");
//! ```

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Map, Value};

/// The boxed cause an [`Error`] keeps (see [`std::error::Error::source`]).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong building a client, preparing a call, or checking its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The call's arguments are wrong; nothing was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The client is not configured for this call (missing or inconsistent settings).
    #[error("configuration error: {message}")]
    #[non_exhaustive]
    Config {
        /// What went wrong, in one line (without the cause's text).
        message: String,
        /// What caused it, when another error did (openssl, I/O …).
        #[source]
        source: Option<BoxError>,
    },

    /// A key, certificate or serial could not be loaded or parsed.
    #[error("key error: {message}")]
    #[non_exhaustive]
    Key {
        /// What went wrong, in one line (without the cause's text).
        message: String,
        /// What caused it, when another error did (openssl, I/O …).
        #[source]
        source: Option<BoxError>,
    },

    /// A cryptographic operation failed (bad ciphertext, wrong key size, …).
    #[error("crypto error: {message}")]
    #[non_exhaustive]
    Crypto {
        /// What went wrong, in one line (without the cause's text).
        message: String,
        /// What caused it, when another error did (openssl, I/O …).
        #[source]
        source: Option<BoxError>,
    },

    /// The answer could not be shown to come from the platform; its body is not handed out.
    #[error("verification failed: {0}")]
    Verification(String),

    /// The platform answered with a non-2xx status (APIv3).
    #[error("{}", api_line(*status, code, message, request_id.as_deref(), *verified))]
    #[non_exhaustive]
    Api {
        /// HTTP status code.
        status: u16,
        /// The platform's error code, e.g. `PARAM_ERROR` (empty when the body had none).
        code: String,
        /// The platform's message.
        message: String,
        /// The platform's `detail` object, when present.
        detail: Option<serde_json::Value>,
        /// The `Request-ID` header, to quote to WeChat Pay support.
        request_id: Option<String>,
        /// The raw body as received.
        body: bytes::Bytes,
        /// Whether the answer's `Wechatpay-*` signature verified. An error answer that carries
        /// them is always checked (a forged one is [`Error::Verification`]); one without any
        /// (a gateway or proxy answering) is handed out unverified: do not act on its code as
        /// the platform's word (query the state first).
        verified: bool,
    },

    /// The platform answered an APIv2 call with `return_code` or `result_code` other than SUCCESS.
    #[error("{}", v2_line(return_code, return_msg.as_deref(), result_code.as_deref(), err_code.as_deref(), err_code_des.as_deref(), *verified))]
    #[non_exhaustive]
    V2 {
        /// `return_code` (communication level).
        return_code: String,
        /// `return_msg`.
        return_msg: Option<String>,
        /// `result_code` (business level), when present.
        result_code: Option<String>,
        /// `err_code`, when present.
        err_code: Option<String>,
        /// `err_code_des`, when present.
        err_code_des: Option<String>,
        /// Whether the answer's `sign` verified. False only for what the platform sends
        /// unsigned (`return_code` FAIL without a `sign`, or a path exempt from signing):
        /// anyone on the path could have written it, so never act on it as on a settled fact
        /// (query the order before charging or refunding again).
        verified: bool,
        /// The raw body as received.
        body: bytes::Bytes,
    },

    /// No answer arrived within the configured timeout.
    #[error("timeout: no answer from {uri} within {after:?}")]
    #[non_exhaustive]
    Timeout {
        /// The URI called.
        uri: String,
        /// The timeout that elapsed.
        after: Duration,
        /// Whether the answer's head had arrived (false: nothing came back at all).
        answered: bool,
    },

    /// The outcome of a money-moving call is unknown (e.g. 429 on a refund or transfer): query
    /// its state before calling again, or the money may move twice.
    #[error("outcome unknown for {path} (query its state before calling again)")]
    #[non_exhaustive]
    OutcomeUnknown {
        /// The request path.
        path: String,
        /// What was received; also its [`source`](std::error::Error::source), which downcasts
        /// to `Box<Error>`.
        #[source]
        source: Box<Error>,
    },

    /// The connection failed or broke before a complete answer arrived.
    #[error("transport error calling {uri}")]
    #[non_exhaustive]
    Transport {
        /// The URI called.
        uri: String,
        /// What the transport reported.
        #[source]
        source: BoxError,
        /// Whether any byte of the answer had arrived (false: safe to retry idempotently).
        answered: bool,
    },

    /// The answer's body exceeded the configured limit.
    #[error("answer from {uri} exceeds the body limit of {limit} bytes")]
    #[non_exhaustive]
    BodyTooLarge {
        /// The URI called.
        uri: String,
        /// The configured limit.
        limit: usize,
    },

    /// A body could not be decoded as the requested type.
    #[error("decode error: {message}")]
    #[non_exhaustive]
    Decode {
        /// What could not be decoded, in one line (without the cause's text).
        message: String,
        /// What caused it, when another error did (serde_json, XML, gzip …).
        #[source]
        source: Option<BoxError>,
    },

    /// A notification (webhook) failed one of its checks; `kind` says which, so a server can
    /// log and count them apart. Answer the platform 4xx/5xx: it will send it again.
    #[error("notification refused ({kind}): {message}")]
    #[non_exhaustive]
    Notification {
        /// Which check failed.
        kind: Refusal,
        /// What exactly, in one line.
        message: String,
        /// What caused it, when another error did (the body's JSON …).
        #[source]
        source: Option<BoxError>,
    },

    /// Reading or writing a local file failed. Its Display is only "io error": the
    /// [`io::Error`](std::io::Error) is its source (with the file named, when the crate knows it).
    #[error("io error")]
    Io(#[from] std::io::Error),
}

fn api_line(
    status: u16,
    code: &str,
    message: &str,
    request_id: Option<&str>,
    verified: bool,
) -> String {
    let mut s = format!("HTTP {status}");
    if !code.is_empty() {
        s.push(' ');
        s.push_str(code);
    }
    if !message.is_empty() {
        s.push_str(": ");
        s.push_str(&one_line(message));
    }
    if let Some(id) = request_id {
        s.push_str(" (Request-ID ");
        s.push_str(&one_line(id));
        s.push(')');
    }
    if !verified {
        s.push_str(" (unverified)");
    }
    s
}

fn v2_line(
    return_code: &str,
    return_msg: Option<&str>,
    result_code: Option<&str>,
    err_code: Option<&str>,
    err_code_des: Option<&str>,
    verified: bool,
) -> String {
    let mut s = format!("APIv2 return_code={}", one_line(return_code));
    if let Some(m) = return_msg.filter(|m| !m.is_empty()) {
        s.push_str(&format!(" return_msg={}", one_line(m)));
    }
    if let Some(r) = result_code {
        s.push_str(&format!(" result_code={}", one_line(r)));
    }
    if let Some(e) = err_code {
        s.push_str(&format!(" err_code={}", one_line(e)));
    }
    if let Some(d) = err_code_des {
        s.push_str(&format!(" err_code_des={}", one_line(d)));
    }
    if !verified {
        s.push_str(" (unsigned answer: not authenticated)");
    }
    s
}

/// Keeps a Display on one line whatever the platform sent.
pub(crate) fn one_line(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

/// Which check a notification failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// A `Wechatpay-Timestamp/-Nonce/-Serial/-Signature` header is missing, empty, not ASCII, or
    /// (the timestamp) not a number.
    Header,
    /// `Wechatpay-Timestamp` is more than 300 s away from now: a replay, or a clock to fix.
    Stale,
    /// `Wechatpay-Serial` names no key in the keyring: refresh the platform certificates or
    /// configure the platform public key.
    UnknownSerial,
    /// The signature does not verify over the body as received: forged or altered.
    BadSignature,
    /// The (authentic) body is not a notification: not JSON, or a field is missing.
    Malformed,
    /// `resource.algorithm` is not `AEAD_AES_256_GCM`.
    UnsupportedAlgorithm,
    /// `resource` does not decrypt: wrong APIv3 key, or bad ciphertext, nonce or associated data.
    Decryption,
    /// `Wechatpay-Signature` starts with `WECHATPAY/SIGNTEST/`: a deliberately bad signature
    /// the platform sends to check that the merchant verifies. Nothing is wrong: answer it
    /// non-2xx (as any refusal) and do not alarm anyone.
    SignatureProbe,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Header => "header",
            Refusal::Stale => "stale",
            Refusal::UnknownSerial => "unknown serial",
            Refusal::BadSignature => "bad signature",
            Refusal::Malformed => "malformed",
            Refusal::UnsupportedAlgorithm => "unsupported algorithm",
            Refusal::Decryption => "decryption",
            Refusal::SignatureProbe => "signature probe",
        })
    }
}

impl Error {
    /// The platform's error code (`PARAM_ERROR`, `SYSTEM_ERROR`, APIv2 `err_code` …), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } if !code.is_empty() => Some(code),
            Error::V2 {
                err_code: Some(c), ..
            } => Some(c),
            Error::V2 { return_code, .. } => Some(return_code),
            Error::OutcomeUnknown { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::OutcomeUnknown { source, .. } => source.status(),
            _ => None,
        }
    }

    /// An [`Error::Config`] with no underlying cause.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Config`] caused by `cause` (kept as its [`source`](std::error::Error::source)).
    pub fn config_from(message: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Error::Config {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Key`] with no underlying cause.
    pub fn key(message: impl Into<String>) -> Self {
        Error::Key {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Key`] caused by `cause` (kept as its [`source`](std::error::Error::source)).
    pub fn key_from(message: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Error::Key {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Crypto`] with no underlying cause.
    pub fn crypto(message: impl Into<String>) -> Self {
        Error::Crypto {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Crypto`] caused by `cause` (kept as its [`source`](std::error::Error::source)).
    pub fn crypto_from(message: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Error::Crypto {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Decode`] with no underlying cause.
    pub fn decode(message: impl Into<String>) -> Self {
        Error::Decode {
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Decode`] caused by `cause` (kept as its [`source`](std::error::Error::source)).
    pub fn decode_from(message: impl Into<String>, cause: impl Into<BoxError>) -> Self {
        Error::Decode {
            message: message.into(),
            source: Some(cause.into()),
        }
    }

    /// An [`Error::Transport`] for a call to `uri` that failed with `cause`; `answered` says
    /// whether any byte of the answer had arrived.
    pub fn transport(uri: impl Into<String>, cause: impl Into<BoxError>, answered: bool) -> Self {
        Error::Transport {
            uri: uri.into(),
            source: cause.into(),
            answered,
        }
    }

    /// The same error with `prefix` (an option, a file name …) put before its message, its
    /// cause kept: for [`Error::Config`], [`Error::Key`], [`Error::Crypto`], [`Error::Decode`]
    /// and [`Error::InvalidArgument`]; any other error is returned as it is.
    pub fn prefixed(self, prefix: impl std::fmt::Display) -> Self {
        let put = |message: String| format!("{prefix}: {message}");
        match self {
            Error::Config { message, source } => Error::Config {
                message: put(message),
                source,
            },
            Error::Key { message, source } => Error::Key {
                message: put(message),
                source,
            },
            Error::Crypto { message, source } => Error::Crypto {
                message: put(message),
                source,
            },
            Error::Decode { message, source } => Error::Decode {
                message: put(message),
                source,
            },
            Error::InvalidArgument(message) => Error::InvalidArgument(put(message)),
            other => other,
        }
    }

    /// This error and its causes on one line, for a message that cannot hold a source and for
    /// log lines.
    pub(crate) fn chain_text(&self) -> String {
        let mut line = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(cause) = next {
            let text = cause.to_string();
            if !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            next = cause.source();
        }
        line
    }

    pub(crate) fn arg(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    /// An openssl failure as [`Error::Crypto`] saying what was being done; crate-private so
    /// that openssl's error type stays out of the public API (no `From<ErrorStack>`).
    pub(crate) fn openssl(what: &'static str) -> impl FnOnce(openssl::error::ErrorStack) -> Error {
        move |e| Error::crypto_from(what, e)
    }

    /// An I/O failure with context (`message`) in front, the original error kept as the
    /// cause and its kind unchanged.
    pub(crate) fn io_context(message: impl Into<String>, cause: std::io::Error) -> Self {
        Error::Io(std::io::Error::new(
            cause.kind(),
            IoContext {
                message: message.into(),
                source: cause,
            },
        ))
    }
}

/// What [`Error::io_context`] puts inside an `io::Error`: its Display is the context only,
/// its source the original error (an `io::Error` reports the source of its inner error).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct IoContext {
    message: String,
    #[source]
    source: std::io::Error,
}

impl Error {
    /// The error a non-2xx answer becomes: [`Error::Api`] with the platform's `code`, `message`
    /// and `detail` read from its JSON body, marked unverified. For tools that make answers
    /// themselves (a test platform); the client builds it for every non-2xx answer it gets.
    pub fn from_answer(res: http::Response<Bytes>) -> Error {
        Error::from_answer_as(res, false)
    }

    /// [`Error::from_answer`]; `verified` says whether its signature was checked and held.
    pub(crate) fn from_answer_as(res: http::Response<Bytes>, verified: bool) -> Error {
        let status = res.status().as_u16();
        let request_id = res
            .headers()
            .get("request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = res.into_body();
        let parsed: Option<Map<String, Value>> = serde_json::from_slice(&body).ok();
        let text = |k: &str| {
            parsed
                .as_ref()
                .and_then(|m| m.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let code = text("code").unwrap_or_default();
        let message = text("message").unwrap_or_else(|| {
            if parsed.is_none() {
                String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
            } else {
                String::new()
            }
        });
        let detail = parsed.as_ref().and_then(|m| m.get("detail")).cloned();
        Error::Api {
            status,
            code,
            message,
            detail,
            request_id,
            body,
            verified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn outcome_unknown_says_its_part_and_keeps_what_was_received() {
        let inner = Error::from_answer(
            http::Response::builder()
                .status(429)
                .body(Bytes::from_static(
                    br#"{"code":"FREQUENCY_LIMITED","message":"too fast"}"#,
                ))
                .unwrap(),
        );
        let inner_text = inner.to_string();
        let e = Error::OutcomeUnknown {
            path: "/v3/refund/domestic/refunds".into(),
            source: Box::new(inner),
        };
        let top = e.to_string();
        assert!(top.contains("/v3/refund/domestic/refunds"), "{top}");
        assert!(top.contains("query its state"), "{top}");
        assert!(!top.contains(&inner_text), "{top}");
        // The source is the field itself, a `Box<Error>`.
        let cause = e.source().unwrap().downcast_ref::<Box<Error>>().unwrap();
        assert_eq!(cause.status(), Some(429));
        assert_eq!(e.code(), Some("FREQUENCY_LIMITED"));
        assert_eq!(e.status(), Some(429));
        assert_eq!(
            e.chain_text(),
            format!("{top}: {inner_text}"),
            "the chain shows each level once"
        );
    }

    #[test]
    fn openssl_failures_keep_the_error_stack() {
        let stack = openssl::rsa::Rsa::private_key_from_pem(b"not a key").unwrap_err();
        let text = stack.to_string();
        let e = Error::openssl("cannot read the key")(stack);
        assert!(matches!(e, Error::Crypto { .. }));
        assert_eq!(e.to_string(), "crypto error: cannot read the key");
        let cause = e.source().unwrap();
        assert!(cause.downcast_ref::<openssl::error::ErrorStack>().is_some());
        assert_eq!(cause.to_string(), text);
    }

    #[test]
    fn each_kind_keeps_its_cause_and_does_not_repeat_it() {
        let json = || serde_json::from_str::<Value>("{").unwrap_err();
        for e in [
            Error::config_from("c", json()),
            Error::key_from("k", json()),
            Error::crypto_from("x", json()),
            Error::decode_from("d", json()),
            Error::transport("http://127.0.0.1/", json(), false),
        ] {
            let cause = e.source().expect("a source");
            assert!(!e.to_string().contains(&cause.to_string()), "{e}");
            let mut found = false;
            let mut next = Some(cause);
            while let Some(c) = next {
                found |= c.downcast_ref::<serde_json::Error>().is_some();
                next = c.source();
            }
            assert!(found, "{e:?}");
        }
        for e in [
            Error::config("c"),
            Error::key("k"),
            Error::crypto("x"),
            Error::decode("d"),
        ] {
            assert!(e.source().is_none(), "{e:?}");
        }
    }
}
