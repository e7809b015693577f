//! Why a request's signature was refused (`401 SIGN_ERROR`), kept with the request in the log
//! ([`Received::signature`](crate::http::received::Received::signature)), listed by `GET /emulator/requests`
//! and printed by `wechatpay serve`: which of the platform's checks failed and, when the
//! signature itself did not verify, the exact string the sandbox expected to be signed, so that
//! a merchant can compare it with what their code signed. Nothing secret is kept: the string
//! signed holds no key, and the signature is not repeated.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// Which of the platform's checks of a request's signature failed, in the order they are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignatureCheck {
    /// No `Authorization` header.
    NoAuthorization,
    /// An `Authorization` header that is not `WECHATPAY2-SHA256-RSA2048` with its five quoted
    /// fields, each once (or a multipart body whose signed `meta` part cannot be read).
    Malformed,
    /// `mchid` is not the sandbox's merchant.
    WrongMchid,
    /// `serial_no` is not the merchant certificate's serial the sandbox knows.
    UnknownSerial,
    /// `timestamp` is not a number, or more than 300 s away from real time (the merchant signs
    /// with its own clock: moving the sandbox's clock does not move this window).
    StaleTimestamp,
    /// `nonce_str` was already used by a request that passed (a replay).
    ReusedNonce,
    /// The signature does not verify with the merchant key over the string the sandbox built
    /// from the request ([`SignatureRefusal::expected`]).
    SignatureMismatch,
}

impl SignatureCheck {
    /// The check's name as logged and listed: `NO_AUTHORIZATION`, `MALFORMED`, `WRONG_MCHID`,
    /// `UNKNOWN_SERIAL`, `STALE_TIMESTAMP`, `REUSED_NONCE`, `SIGNATURE_MISMATCH`.
    pub fn as_str(self) -> &'static str {
        match self {
            SignatureCheck::NoAuthorization => "NO_AUTHORIZATION",
            SignatureCheck::Malformed => "MALFORMED",
            SignatureCheck::WrongMchid => "WRONG_MCHID",
            SignatureCheck::UnknownSerial => "UNKNOWN_SERIAL",
            SignatureCheck::StaleTimestamp => "STALE_TIMESTAMP",
            SignatureCheck::ReusedNonce => "REUSED_NONCE",
            SignatureCheck::SignatureMismatch => "SIGNATURE_MISMATCH",
        }
    }
}

impl std::fmt::Display for SignatureCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The string the sandbox expected a request's signature over: its five lines
/// `METHOD\nPATH?QUERY\nTIMESTAMP\nNONCE\nBODY\n`, the body told by its length and SHA-256
/// and shown up to the log's body prefix
/// ([`EmulatorConfig::log_body_prefix`](crate::EmulatorConfig::log_body_prefix)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedMessage {
    /// The HTTP method, as received.
    pub method: String,
    /// The path and query, exactly as received (percent-encoding and all).
    pub target: String,
    /// The `timestamp` of the `Authorization` header.
    pub timestamp: String,
    /// The `nonce_str` of the `Authorization` header.
    pub nonce: String,
    /// The length of the body signed (the `meta` part of an upload), in bytes.
    pub body_len: usize,
    /// The SHA-256 of the body signed, lowercase hex.
    pub body_sha256: String,
    /// The body signed, as text (invalid UTF-8 replaced), up to the log's body prefix.
    pub body: String,
    /// Whether `body` is only the first bytes of it.
    pub body_truncated: bool,
}

/// Makes control characters visible on one line: `\n`, `\r`, `\t`, `\\`, others as `\u{…}`.
pub fn visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

impl ExpectedMessage {
    /// The string on one line with its line feeds made visible:
    /// `POST\n/v3/pay/transactions/native\n1700000000\nNONCE\n{"appid":…}\n` (a body cut at the
    /// log's prefix ends in `…`).
    pub fn one_line(&self) -> String {
        format!(
            "{}\\n{}\\n{}\\n{}\\n{}{}\\n",
            visible(&self.method),
            visible(&self.target),
            visible(&self.timestamp),
            visible(&self.nonce),
            visible(&self.body),
            if self.body_truncated { "…" } else { "" }
        )
    }

    /// The string as `wechatpay serve` prints it: each of its five lines labelled and ending in
    /// a visible `\n`, indented by `indent`, then the body's length and digest. The body is
    /// shown up to `max_body` characters.
    pub fn lines(&self, indent: &str, max_body: usize) -> String {
        let mut body = visible(&self.body);
        let mut cut = self.body_truncated;
        if body.chars().count() > max_body {
            body = body.chars().take(max_body).collect();
            cut = true;
        }
        let mut out = String::new();
        for (label, value) in [
            ("method", visible(&self.method)),
            ("path?query", visible(&self.target)),
            ("timestamp", visible(&self.timestamp)),
            ("nonce", visible(&self.nonce)),
            ("body", format!("{body}{}", if cut { "…" } else { "" })),
        ] {
            let _ = writeln!(out, "{indent}{label:<11}{value}\\n");
        }
        let _ = writeln!(
            out,
            "{indent}{:<11}({} bytes, SHA-256 {})",
            "", self.body_len, self.body_sha256
        );
        out
    }

    /// As `GET /emulator/requests` lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "method": self.method, "target": self.target, "timestamp": self.timestamp,
            "nonce": self.nonce, "body_len": self.body_len, "body_sha256": self.body_sha256,
            "body": self.body, "body_truncated": self.body_truncated,
            "message": self.one_line(),
        })
    }
}

/// Why the sandbox refused a request's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureRefusal {
    /// The check that failed.
    pub check: SignatureCheck,
    /// What it found, in words (also the answer's `message`).
    pub reason: String,
    /// For [`SignatureCheck::SignatureMismatch`]: the string the signature should have been
    /// made over.
    pub expected: Option<ExpectedMessage>,
}

impl SignatureRefusal {
    pub(crate) fn new(check: SignatureCheck, reason: String) -> SignatureRefusal {
        SignatureRefusal {
            check,
            reason,
            expected: None,
        }
    }

    /// The diagnosis in a few lines, as `wechatpay serve` prints it under the request (each
    /// line starting with `indent`; the body shown up to `max_body` characters).
    pub fn report(&self, indent: &str, max_body: usize) -> String {
        let mut out = format!("{indent}check failed: {} ({})\n", self.check, self.reason);
        if let Some(e) = &self.expected {
            let _ = writeln!(
                out,
                "{indent}the sandbox expected the signature over these 5 lines, each ending in \\n:"
            );
            out.push_str(&e.lines(&format!("{indent}  "), max_body));
            let _ = writeln!(
                out,
                "{indent}compare them with the string your code signed: the path with its query \
                 exactly as sent, the body byte for byte, the key of the serial_no sent"
            );
        }
        out
    }

    /// As `GET /emulator/requests` lists it.
    pub fn to_json(&self) -> Value {
        json!({
            "check": self.check.as_str(),
            "reason": self.reason,
            "expected": self.expected.as_ref().map(ExpectedMessage::to_json),
        })
    }

    /// Bytes counted against the log's size.
    pub(crate) fn kept_bytes(&self) -> usize {
        self.reason.len()
            + self.expected.as_ref().map_or(0, |e| {
                e.method.len()
                    + e.target.len()
                    + e.timestamp.len()
                    + e.nonce.len()
                    + e.body_sha256.len()
                    + e.body.len()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_feeds_and_control_characters_are_visible() {
        assert_eq!(visible("a\nb\r\t\\\u{1}"), "a\\nb\\r\\t\\\\\\u{1}");
        let e = ExpectedMessage {
            method: "POST".into(),
            target: "/v3/x?a=1".into(),
            timestamp: "1".into(),
            nonce: "N".into(),
            body_len: 9,
            body_sha256: "ab".into(),
            body: "{\"a\":\n1}".into(),
            body_truncated: false,
        };
        assert_eq!(e.one_line(), "POST\\n/v3/x?a=1\\n1\\nN\\n{\"a\":\\n1}\\n");
        let lines = e.lines("  ", 3);
        assert!(lines.contains("  body       {\"a…\\n\n"), "{lines}");
        assert!(lines.contains("  method     POST\\n\n"), "{lines}");
        assert!(lines.ends_with("(9 bytes, SHA-256 ab)\n"), "{lines}");
        assert_eq!(lines.lines().count(), 6, "{lines}");
    }
}
