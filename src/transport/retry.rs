//! Retries the platform's way, opt-in: which failures may be tried again, with what backoff and
//! deadline, to which domain; and the loop that runs attempts for blocking and async calls, with
//! a fresh signature each time, all inside one `tracing` span per call.
//!
//! Tracing: every call runs in an INFO span `wechatpay.call` with `method`, `path` (the chain
//! template, placeholders unexpanded: no order numbers, no query), and, recorded as the call
//! goes, `attempt`, `status` (absent when no answer came) and `elapsed_ms` (the whole call so
//! far). Each attempt ends with a DEBUG event; only a retry is an INFO event, since an operator
//! may act on it. Nothing of the request's headers (Authorization), keys or bodies is recorded.

use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};
use tracing::Instrument;

pub use super::policy::RetryPolicy;
use crate::error::Error;
use crate::request::{Pending, Protocol};
use crate::response::Response;
use crate::Core;

/// What to do after an attempt.
enum Next {
    Done,
    Again { backup: bool },
}

fn platform_code(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<Map<String, Value>>(body)
        .ok()?
        .get("code")?
        .as_str()
        .map(str::to_string)
}

/// Classifies one attempt's outcome.
fn classify(outcome: &Result<Response, Error>) -> Next {
    match outcome {
        Ok(r) if r.status().as_u16() == 202 => match platform_code(r.body()) {
            None => Next::Again { backup: false },
            Some(c) if c == "ACCEPTED" => Next::Again { backup: false },
            Some(_) => Next::Done,
        },
        Ok(_) => Next::Done,
        Err(Error::Transport {
            answered: false, ..
        })
        | Err(Error::Timeout {
            answered: false, ..
        }) => Next::Again { backup: true },
        Err(Error::Api { status, code, .. }) if *status >= 500 => {
            if code == "SYSTEM_ERROR"
                || code == "SERVICE_UNAVAILABLE"
                || (code.is_empty() && matches!(status, 502..=504))
            {
                Next::Again { backup: false }
            } else {
                Next::Done
            }
        }
        Err(_) => Next::Done,
    }
}

/// Whether a call moves money, so that a 429 leaves its outcome unknown.
pub(crate) fn moves_money(method: &http::Method, path: &str) -> bool {
    method == http::Method::POST
        && [
            "refund",
            "transfer",
            "withdraw",
            "profitsharing",
            "profit-sharing",
            "redpack",
            "mmpaymkttransfers",
            "mmpaysptrans",
        ]
        .iter()
        .any(|w| path.contains(w))
}

/// Wraps a 429 on a money-moving call so that the caller queries before trying again.
fn surface(path: &str, money: bool, outcome: Result<Response, Error>) -> Result<Response, Error> {
    match outcome {
        Err(e @ Error::Api { status: 429, .. }) if money => Err(Error::OutcomeUnknown {
            path: path.to_string(),
            source: Box::new(e),
        }),
        other => other,
    }
}

impl Core {
    /// A fresh copy of the request for another attempt: re-signed for APIv3, and pointed at the
    /// backup domain when asked.
    fn next_request(
        &self,
        pending: &Pending,
        policy: &RetryPolicy,
        backup: bool,
    ) -> Result<http::Request<Bytes>, Error> {
        let mut req = pending.request.clone();
        if backup && !pending.own_base {
            if let Some(b) = &policy.backup {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/");
                *req.uri_mut() = format!("{}://{}{}", b.scheme, b.authority, pq)
                    .parse()
                    .map_err(|e| {
                        Error::config_from("backup base URI does not make a valid URI", e)
                    })?;
                if let Ok(host) = http::HeaderValue::from_str(&b.authority) {
                    req.headers_mut().insert(http::header::HOST, host);
                }
            }
        }
        if pending.protocol == Protocol::V3 {
            self.sign_v3(&mut req)?;
        }
        Ok(req)
    }

    /// Runs a prepared call: sends, checks, and retries per policy, in the call's span (which
    /// follows the future, so blocking calls driven on another thread keep it too).
    pub(crate) async fn run(&self, pending: Pending) -> Result<Response, Error> {
        let span = call_span(pending.request.method(), &pending.template);
        self.attempts(pending, span.clone()).instrument(span).await
    }

    async fn attempts(&self, mut pending: Pending, span: tracing::Span) -> Result<Response, Error> {
        let start = Instant::now();
        let mut attempt = 1u32;
        let method = pending.request.method().clone();
        // Kept for re-sending only when it may be re-sent.
        let mut request = if pending.retry.is_some() {
            pending.request.clone()
        } else {
            std::mem::take(&mut pending.request)
        };
        let money = moves_money(&method, &pending.path);
        loop {
            let t0 = Instant::now();
            let sent = match self.transport.send(request, pending.secure, pending.limits) {
                Ok(exchange) => exchange.await,
                Err(e) => Err(e),
            };
            let outcome = match sent {
                Ok(res) => self.checked(&pending, res).await,
                Err(e) => Err(e),
            };
            let status = match &outcome {
                Ok(r) => Some(r.status().as_u16()),
                Err(e) => e.status(),
            };
            record(&span, attempt, status, start);
            tracing::debug!(
                attempt,
                status,
                elapsed_ms = millis(t0),
                error = outcome.as_ref().err().map(traced),
                "attempt done"
            );
            let Some(policy) = &pending.retry else {
                return surface(&pending.path, money, outcome);
            };
            let backup = match classify(&outcome) {
                Next::Done => return surface(&pending.path, money, outcome),
                Next::Again { backup } => backup,
            };
            if attempt >= policy.max_attempts {
                return surface(&pending.path, money, outcome);
            }
            let wait = policy.backoff_for(attempt);
            if start.elapsed() + wait >= policy.deadline {
                return surface(&pending.path, money, outcome);
            }
            tracing::info!(
                attempt,
                status,
                error = outcome.as_ref().err().map(traced),
                wait_ms = wait.as_millis() as u64,
                backup_domain = backup && !pending.own_base && policy.backup.is_some(),
                "retrying: attempt {attempt} of {} failed",
                policy.max_attempts
            );
            self.transport.sleep(wait).await?;
            attempt += 1;
            request = self.next_request(&pending, policy, backup)?;
        }
    }
}

/// The span of one call (see the module's docs): `method` and the chain `path` template now,
/// `attempt`, `status` and `elapsed_ms` recorded as the call goes.
pub(crate) fn call_span(method: &http::Method, template: &str) -> tracing::Span {
    tracing::info_span!(
        "wechatpay.call",
        method = %method,
        path = %template,
        attempt = tracing::field::Empty,
        status = tracing::field::Empty,
        elapsed_ms = tracing::field::Empty,
    )
}

/// Records an attempt's outcome on the call's span.
pub(crate) fn record(span: &tracing::Span, attempt: u32, status: Option<u16>, start: Instant) {
    span.record("attempt", attempt);
    if let Some(s) = status {
        span.record("status", s);
    }
    span.record("elapsed_ms", millis(start));
}

fn millis(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs a call made of one attempt (a certificate or file download) in its own span, the
/// answer's status recorded by the call itself (see [`answered`]) or taken from its error.
pub(crate) async fn spanned<T>(
    method: &http::Method,
    template: &str,
    call: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let span = call_span(method, template);
    let start = Instant::now();
    let out = call.instrument(span.clone()).await;
    record(&span, 1, out.as_ref().err().and_then(Error::status), start);
    tracing::debug!(
        parent: &span,
        attempt = 1,
        elapsed_ms = millis(start),
        error = out.as_ref().err().map(traced),
        "attempt done"
    );
    out
}

/// Records the answer's status on the current call's span.
pub(crate) fn answered(status: http::StatusCode) {
    tracing::Span::current().record("status", status.as_u16());
}

/// An error as traced: its message with the query of any URI in it cut (a download URL's
/// query carries its token), so that logs keep what is needed to act and nothing to replay.
fn traced(e: &Error) -> String {
    redact_queries(&e.chain_text())
}

fn redact_queries(text: &str) -> String {
    text.split(' ')
        .map(|word| match (word.find("://"), word.find('?')) {
            (Some(scheme), Some(q)) if q > scheme => {
                let colon = if word.ends_with(':') { ":" } else { "" };
                format!("{}?…{colon}", &word[..q])
            }
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::redact_queries;

    #[test]
    fn traced_errors_keep_no_query() {
        let m = "transport error calling https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO: tcp connect error";
        let r = redact_queries(m);
        assert_eq!(
            r,
            "transport error calling https://api.mch.weixin.qq.com/v3/billdownload/file?…: tcp connect error"
        );
        assert_eq!(redact_queries("what? no uri here"), "what? no uri here");
    }
}
