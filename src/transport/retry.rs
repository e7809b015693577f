//! Retries the platform's way, opt-in: which failures may be tried again, with what backoff and
//! deadline, to which domain; and the loop that runs attempts for blocking and async calls, with
//! a fresh signature each time and a `tracing` event per attempt.

use std::time::Instant;

use bytes::Bytes;
use serde_json::{Map, Value};

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

    /// Runs a prepared call: sends, checks, and retries per policy.
    pub(crate) async fn run(&self, mut pending: Pending) -> Result<Response, Error> {
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
                Ok(r) => r.status().as_u16(),
                Err(e) => e.status().unwrap_or(0),
            };
            tracing::info!(
                method = %method,
                path = %pending.path,
                status,
                attempt,
                elapsed_ms = t0.elapsed().as_millis() as u64,
                error = outcome.as_ref().err().map(Error::chain_text),
                "wechatpay call"
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
            crate::transport::sleep(wait).await?;
            attempt += 1;
            request = self.next_request(&pending, policy, backup)?;
        }
    }
}
