//! The record of one request received, as `GET /emulator/requests` lists it.

use bytes::Bytes;
use serde_json::Value;

use std::collections::VecDeque;

use crate::http::diagnosis::SignatureRefusal;
use crate::util::MAX_RECORDS;

/// A request as the emulator received it, with what it made of it.
#[derive(Debug, Clone)]
pub struct Received {
    /// 1 for the first request received, counting on past the records dropped.
    pub seq: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query as received (what the signature covers).
    pub target: String,
    /// Headers as received, but for a control token (`Authorization: Bearer …`), kept as
    /// `Bearer [redacted]`.
    pub headers: http::HeaderMap,
    /// Body as received: whole up to [`EmulatorConfig::log_body_prefix`](crate::EmulatorConfig::log_body_prefix) bytes, else its
    /// first bytes (see `body_len` and `body_sha256`).
    pub body: Bytes,
    /// Length of the whole body.
    pub body_len: usize,
    /// SHA-256 of the whole body, lowercase hex.
    pub body_sha256: String,
    /// Whether the request passed the platform's checks (signature, or APIv2 `sign`).
    pub verified: bool,
    /// Why it did not, when it did not.
    pub refusal: Option<String>,
    /// For an APIv3 request refused `401 SIGN_ERROR`: which check failed and, for a signature
    /// that does not verify, the string the sandbox expected to be signed.
    pub signature: Option<SignatureRefusal>,
    /// TLS mode: the CN (the mchid) of the client certificate the connection presented, when
    /// it was issued by the emulator's CA.
    pub client_certificate: Option<String>,
    /// The status answered (for a call a fault dropped or hung: the one it would have had).
    pub status: u16,
    /// The SPEC of the fault that fired on it, if one did ([`Fault`](crate::Fault)).
    pub fault: Option<String>,
}

impl Received {
    /// The bytes this record counts against [`EmulatorConfig::max_log_bytes`](crate::EmulatorConfig::max_log_bytes): what it holds
    /// (its body prefix, target, method, digest, refusal and signature diagnosis, client
    /// certificate, header names and values) and the size of its entry in
    /// `GET /emulator/requests` (where the diagnosis's body appears escaped, twice).
    pub fn kept_bytes(&self) -> usize {
        self.held_bytes() + self.listed_bytes()
    }

    /// Its entry in `GET /emulator/requests`.
    pub(crate) fn listing(&self) -> Value {
        serde_json::to_value(self.listed()).unwrap_or(Value::Null)
    }

    /// The bytes of [`Received::listing`] as JSON, counted as it is written, with nothing
    /// made (it is counted for every request received).
    pub(crate) fn listed_bytes(&self) -> usize {
        struct Count(usize);
        impl std::io::Write for Count {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0 += b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut n = Count(0);
        // Writing to a counter cannot fail, nor can serializing these fields.
        let _ = serde_json::to_writer(&mut n, &self.listed());
        n.0
    }

    /// The listing's fields, borrowed, in their order.
    fn listed(&self) -> Listed<'_> {
        Listed {
            seq: self.seq,
            method: &self.method,
            target: &self.target,
            status: self.status,
            body_len: self.body_len,
            body_sha256: &self.body_sha256,
            verified: self.verified,
            refusal: self.refusal.as_deref(),
            signature: self.signature.as_ref().map(SignatureRefusal::to_json),
            client_certificate: self.client_certificate.as_deref(),
            fault: self.fault.as_deref(),
        }
    }

    /// The bytes the record holds in memory (its parts' lengths).
    pub(crate) fn held_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        self.body.len()
            + self.target.len()
            + self.method.len()
            + self.body_sha256.len()
            + self.refusal.as_ref().map_or(0, String::len)
            + self
                .signature
                .as_ref()
                .map_or(0, SignatureRefusal::kept_bytes)
            + self.client_certificate.as_ref().map_or(0, String::len)
            + self.fault.as_ref().map_or(0, String::len)
            + headers
    }
}

/// A record's entry in `GET /emulator/requests`: one shape for the listing and for counting it.
#[derive(serde::Serialize)]
struct Listed<'a> {
    seq: u64,
    method: &'a str,
    target: &'a str,
    status: u16,
    body_len: usize,
    body_sha256: &'a str,
    verified: bool,
    refusal: Option<&'a str>,
    signature: Option<Value>,
    client_certificate: Option<&'a str>,
    fault: Option<&'a str>,
}

/// The requests received, in the order of their `seq`, bounded in count ([`MAX_RECORDS`]) and
/// in bytes ([`Received::kept_bytes`], which counts the record's listing too).
#[derive(Default)]
pub(crate) struct RequestLog {
    items: VecDeque<Logged>,
    bytes: usize,
    /// The `seq` of the last record pushed.
    last: u64,
}

/// A record with its sizes, counted once.
struct Logged {
    record: Received,
    /// [`Received::kept_bytes`].
    kept: usize,
    /// [`Received::listed_bytes`].
    listed: usize,
}

impl RequestLog {
    /// Numbers `r` (so that the log stays in `seq` order whichever handler gets here first),
    /// appends it, then drops the oldest records until both bounds hold.
    pub fn push(&mut self, mut r: Received, max_bytes: usize) {
        self.last += 1;
        r.seq = self.last;
        let listed = r.listed_bytes();
        let kept = r.held_bytes() + listed;
        self.bytes += kept;
        self.items.push_back(Logged {
            record: r,
            kept,
            listed,
        });
        while self.items.len() > MAX_RECORDS || self.bytes > max_bytes {
            match self.items.pop_front() {
                Some(old) => self.bytes -= old.kept,
                None => break,
            }
        }
    }

    /// The records numbered after `seq`.
    pub fn after(&self, seq: u64) -> Vec<Received> {
        let start = self.items.partition_point(|l| l.record.seq <= seq);
        self.items
            .range(start..)
            .map(|l| l.record.clone())
            .collect()
    }

    /// A page of the listing: the records numbered after `seq`, at most `limit` of them and,
    /// past the first, at most `max_bytes` of listing; and whether more follow.
    pub fn page(&self, seq: u64, limit: usize, max_bytes: usize) -> (Vec<Received>, bool) {
        let start = self.items.partition_point(|l| l.record.seq <= seq);
        let (mut page, mut bytes) = (Vec::new(), 0);
        for l in self.items.range(start..) {
            if page.len() == limit || (!page.is_empty() && bytes + l.listed > max_bytes) {
                return (page, true);
            }
            bytes += l.listed;
            page.push(l.record.clone());
        }
        (page, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::diagnosis::SignatureCheck;

    fn record(refused: bool) -> Received {
        Received {
            seq: 7,
            method: "POST".into(),
            target: "/v3/refund/domestic/refunds?x=\"1\"".into(),
            headers: http::HeaderMap::new(),
            body: Bytes::from_static(b"{}"),
            body_len: 2,
            body_sha256: "44136fa3".into(),
            verified: !refused,
            refusal: refused.then(|| "nonce_str \"N\" was already used".to_string()),
            signature: refused
                .then(|| SignatureRefusal::new(SignatureCheck::ReusedNonce, "replay\n".into())),
            client_certificate: Some("1900000001".into()),
            status: if refused { 401 } else { 200 },
            fault: None,
        }
    }

    #[test]
    fn the_listing_is_counted_byte_for_byte_in_its_documented_order() {
        for refused in [false, true] {
            let r = record(refused);
            let listed = serde_json::to_vec(&r.listing()).unwrap();
            assert_eq!(
                r.listed_bytes(),
                listed.len(),
                "{}",
                String::from_utf8_lossy(&listed)
            );
            let keys: Vec<String> = r.listing().as_object().unwrap().keys().cloned().collect();
            assert_eq!(
                keys,
                [
                    "seq",
                    "method",
                    "target",
                    "status",
                    "body_len",
                    "body_sha256",
                    "verified",
                    "refusal",
                    "signature",
                    "client_certificate",
                    "fault"
                ]
            );
        }
        assert_eq!(record(true).listing()["signature"]["check"], "REUSED_NONCE");
        assert_eq!(
            record(true).listing()["refusal"],
            "nonce_str \"N\" was already used"
        );
        assert!(record(false).listing()["refusal"].is_null());
    }
}
