//! The retry policy: how often and how long a call is tried again, with what backoff, to which
//! domain; set on the Builder or per call. The loop that applies it is
//! [`retry`](super::retry).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::Error;
use crate::uri::Base;

/// When and how often a call is tried again. Off unless set with
/// [`Builder::retry`](crate::Builder::retry) or per call with the `retry` arg.
///
/// Retried: transport failures before any byte of the answer arrived (connect refused, reset,
/// timeouts with no answer), 5xx answers whose code is `SYSTEM_ERROR` or `SERVICE_UNAVAILABLE`
/// (or a 502/503/504 with no platform code, a gateway failing before the platform), and a
/// verified 202 that asks to be called again with the same parameters (`ACCEPTED` or no code).
/// Never retried: any 4xx. Every attempt has the same method, path and body and a fresh
/// signature.
///
/// ```
/// use std::time::Duration;
/// use wechatpay_chain::RetryPolicy;
/// let policy = RetryPolicy::new()
///     .max_attempts(4)
///     .deadline(Duration::from_secs(20))
///     .backup_base_uri("https://api2.wechatpay.cn/");
/// # let _ = policy;
/// ```
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub(crate) max_attempts: u32,
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) deadline: Duration,
    pub(crate) backup: Option<Base>,
    pub(crate) backup_error: Option<String>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(3),
            deadline: Duration::from_secs(30),
            backup: None,
            backup_error: None,
        }
    }
}

impl RetryPolicy {
    /// Three attempts, 200 ms initial backoff doubling up to 3 s with full jitter, 30 s in all.
    pub fn new() -> Self {
        Self::default()
    }

    /// Attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The first backoff; each next one doubles, up to `max`. The actual wait is drawn
    /// uniformly between half of it and all of it (jitter), so clients don't retry in step.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The time all attempts and waits together may take; no attempt starts after it.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// A domain to send the attempt after a transport failure to, as wechatpay-java does with
    /// `api2.wechatpay.cn`. Not used for calls that name their own `base_uri`.
    pub fn backup_base_uri(mut self, uri: &str) -> Self {
        match Base::parse(uri) {
            Ok(b) => self.backup = Some(b),
            Err(e) => self.backup_error = Some(e.to_string()),
        }
        self
    }

    /// Reads the per-call `retry` arg: `false` turns retries off, `true` uses the client's
    /// policy (or the default one), an object overrides `max_attempts` and `deadline` (seconds).
    pub(crate) fn for_call(
        client: Option<&RetryPolicy>,
        args: &Map<String, Value>,
    ) -> Result<Option<RetryPolicy>, Error> {
        match args.get("retry") {
            None | Some(Value::Null) => Ok(client.cloned()),
            Some(Value::Bool(false)) => Ok(None),
            Some(Value::Bool(true)) => Ok(Some(client.cloned().unwrap_or_default())),
            Some(Value::Object(o)) => {
                let mut p = client.cloned().unwrap_or_default();
                for (k, v) in o {
                    match (k.as_str(), v.as_f64()) {
                        ("max_attempts", Some(n)) if (1.0..=100.0).contains(&n) && n.fract() == 0.0 => p.max_attempts = n as u32,
                        ("deadline", Some(s)) if s > 0.0 && s < 86_400.0 => p.deadline = Duration::from_secs_f64(s),
                        _ => return Err(Error::arg(format!("retry.{k} is not a valid setting (max_attempts: 1-100, deadline: seconds)"))),
                    }
                }
                Ok(Some(p))
            }
            Some(other) => Err(Error::arg(format!(
                "retry must be true, false or an object, got {}",
                crate::uri::kind(other)
            ))),
        }
    }

    pub(crate) fn backoff_for(&self, attempt: u32) -> Duration {
        let exp = self
            .initial_backoff
            .saturating_mul(1u32 << (attempt - 1).min(16));
        let cap = exp.min(self.max_backoff);
        let mut b = [0u8; 4];
        let r = if openssl::rand::rand_bytes(&mut b).is_ok() {
            u32::from_le_bytes(b)
        } else {
            u32::MAX / 2
        };
        // Between half and all of the capped backoff.
        cap / 2 + cap.mul_f64(f64::from(r) / f64::from(u32::MAX) / 2.0)
    }
}
