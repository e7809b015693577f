//! Notifications (回调通知): the resource encrypted with AES-256-GCM under the APIv3 key, the
//! envelope signed with the platform key like an answer, POSTed to the `notify_url` until the
//! merchant answers 2xx, with a bounded number of retries. APIv2 notifications (XML, made by
//! their operation) go out the same way, and are accepted only by a `return_code` SUCCESS.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{json, Value};

use crate::http::client::Pool;
use crate::http::faults::{FaultAction, Subject, REORDER_HOLD};
use crate::state::rfc3339;
use crate::util::keep;

use crate::state::records::Delivery;
use crate::state::records::Outcome;
use crate::state::shared::Shared;
use crate::util::random_hex;
use wechatpay_chain::formatter;
use wechatpay_chain::transformer;
use wechatpay_chain::Error;
use wechatpay_chain::Scheme;

/// The platform's schedule of retries after a failed notification (the default of
/// [`EmulatorConfig::notify_retries`](crate::EmulatorConfig::notify_retries)): 15 more attempts over
/// about a day (15 s, 15 s, 30 s, 3 min, 10 min, 20 min, 30 min ×3, 1 h, 3 h ×3, 6 h ×2).
pub const PLATFORM_RETRY_SCHEDULE: [std::time::Duration; 15] = [
    std::time::Duration::from_secs(15),
    std::time::Duration::from_secs(15),
    std::time::Duration::from_secs(30),
    std::time::Duration::from_secs(180),
    std::time::Duration::from_secs(600),
    std::time::Duration::from_secs(1200),
    std::time::Duration::from_secs(1800),
    std::time::Duration::from_secs(1800),
    std::time::Duration::from_secs(1800),
    std::time::Duration::from_secs(3600),
    std::time::Duration::from_secs(10800),
    std::time::Duration::from_secs(10800),
    std::time::Duration::from_secs(10800),
    std::time::Duration::from_secs(21600),
    std::time::Duration::from_secs(21600),
];

/// Whether notifications may go to `url`: http(s), and a loopback host unless allowed.
fn destination(url: &str, allow_remote: bool) -> Result<http::Uri, String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err("only http and https URLs are notified".into());
    }
    let host = uri.host().unwrap_or("");
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback && !allow_remote {
        return Err(format!(
            "{host} is not a loopback host (EmulatorConfig::allow_remote_notify)"
        ));
    }
    Ok(uri)
}

/// A UUID-shaped notification id.
fn notification_id() -> String {
    uuid_shaped(&random_hex(16))
}

/// 32 hex digits (16 bytes) as a UUID-shaped notification id, in lower case:
/// `8-4-4-4-12`.
pub(crate) fn uuid_shaped(hex: &str) -> String {
    let h = hex.to_ascii_lowercase();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// How a notification goes out and what answer ends its attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// APIv3: a JSON envelope signed in `Wechatpay-*` headers; any 2xx accepts it.
    V3,
    /// APIv2: an XML document, no signature headers; accepted by a 2xx whose body is XML with
    /// `return_code` SUCCESS (`notify_v2::reply_success`), anything else is retried.
    V2,
}

/// A notification on its way: where, what, and how.
struct Outgoing {
    url: String,
    event_type: String,
    id: String,
    protocol: Protocol,
}

impl Outgoing {
    fn record(&self, shared: &Shared, attempt: u32, outcome: Outcome) {
        self.record_at(shared, attempt, shared.clock.now(), outcome);
    }

    /// Records attempt `attempt`, made at `at` (clock seconds).
    fn record_at(&self, shared: &Shared, attempt: u32, at: i64, outcome: Outcome) {
        keep(
            &shared.deliveries,
            Delivery {
                url: self.url.clone(),
                event_type: self.event_type.clone(),
                id: self.id.clone(),
                attempt,
                at,
                outcome,
            },
        );
    }
}

/// Sends `event_type` about `resource` to `url` in the background (APIv3).
pub(crate) fn notify(
    shared: &Arc<Shared>,
    url: String,
    event_type: &str,
    summary: &str,
    original_type: &str,
    resource: &Value,
) {
    let out = Outgoing {
        url,
        event_type: event_type.to_string(),
        id: notification_id(),
        protocol: Protocol::V3,
    };
    let body = envelope(shared, &out, summary, original_type, resource);
    send(shared, out, body);
}

/// The APIv3 notification's JSON: `resource` encrypted under the APIv3 key.
fn envelope(
    shared: &Shared,
    out: &Outgoing,
    summary: &str,
    original_type: &str,
    resource: &Value,
) -> Result<Bytes, String> {
    let sealed = Sealed {
        id: &out.id,
        create_time: &rfc3339(shared.clock.now()),
        event_type: &out.event_type,
        summary,
        original_type,
        nonce: &formatter::nonce(12),
    };
    let body = sealed
        .envelope(
            scheme_for(shared, resource),
            &resource.to_string(),
            apiv3_key_for(shared, resource),
        )
        .map_err(|e| format!("cannot encrypt: {e}"))?;
    Ok(Bytes::from(body.to_string()))
}

/// The scheme of the merchant a notification is for (as [`apiv3_key_for`] finds it).
fn scheme_for(shared: &Shared, resource: &Value) -> wechatpay_chain::Scheme {
    ["sp_mchid", "mchid", "combine_mchid"]
        .iter()
        .find_map(|f| resource.get(*f).and_then(Value::as_str))
        .map_or(shared.settings.scheme, |m| shared.settings.scheme_of(m))
}

/// The APIv3 key of the merchant a notification is for: the one its resource names
/// (`sp_mchid`, `mchid`, `combine_mchid`, a transfer's `mch_id`), the first merchant's by
/// default.
fn apiv3_key_for<'a>(shared: &'a Shared, resource: &Value) -> &'a str {
    let named = ["sp_mchid", "mchid", "combine_mchid", "mch_id"]
        .iter()
        .find_map(|f| resource.get(*f).and_then(Value::as_str));
    named.map_or(shared.settings.apiv3_key.as_str(), |m| {
        shared.settings.apiv3_key_of(m)
    })
}

/// What an APIv3 notification's envelope says around its encrypted resource.
pub(crate) struct Sealed<'a> {
    pub(crate) id: &'a str,
    pub(crate) create_time: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) summary: &'a str,
    /// `resource.original_type`, also its associated data.
    pub(crate) original_type: &'a str,
    /// The AES-GCM nonce.
    pub(crate) nonce: &'a str,
}

impl Sealed<'_> {
    /// The envelope with `plaintext` encrypted under the APIv3 key (AEAD_AES_256_GCM, or
    /// AEAD_SM4_GCM in the 国密 scheme).
    pub(crate) fn envelope(
        &self,
        scheme: Scheme,
        plaintext: &str,
        apiv3_key: &str,
    ) -> Result<Value, Error> {
        let ciphertext = crate::http::scheme::seal(
            scheme,
            plaintext,
            apiv3_key,
            self.nonce,
            self.original_type,
        )?;
        Ok(json!({
            "id": self.id,
            "create_time": self.create_time,
            "resource_type": "encrypt-resource",
            "event_type": self.event_type,
            "summary": self.summary,
            "resource": {
                "original_type": self.original_type,
                "algorithm": scheme.aead(),
                "ciphertext": ciphertext,
                "associated_data": self.original_type,
                "nonce": self.nonce,
            },
        }))
    }
}

/// The `Wechatpay-*` headers of an APIv3 notification of `body`, signed with `key` in its
/// scheme (an SM2 key signs `WECHATPAY2-SM2-WITH-SM3`).
pub(crate) fn signature_headers(
    key: &wechatpay_chain::PrivateKey,
    serial: &str,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> Result<[(&'static str, String); 5], Error> {
    let scheme = Scheme::of_key(key);
    let message = formatter::response(timestamp, nonce, body);
    let signature = crate::http::scheme::sign(scheme, &message, key)?;
    Ok([
        ("Wechatpay-Timestamp", timestamp.to_string()),
        ("Wechatpay-Nonce", nonce.to_string()),
        ("Wechatpay-Serial", serial.to_string()),
        ("Wechatpay-Signature", signature),
        ("Wechatpay-Signature-Type", scheme.name().to_string()),
    ])
}

/// Sends the APIv2 XML document `body` (made by the caller, or why it could not be) to `url`
/// in the background, recorded as `event_type`.
pub(crate) fn notify_v2(
    shared: &Arc<Shared>,
    url: String,
    event_type: &str,
    body: Result<String, String>,
) {
    let out = Outgoing {
        url,
        event_type: event_type.to_string(),
        id: notification_id(),
        protocol: Protocol::V2,
    };
    send(shared, out, body.map(Bytes::from));
}

/// Posts `body` to `out.url` until accepted, once and then after each of the configured
/// delays in the sandbox's clock time (each counted from when the previous attempt was due, so
/// that moving the clock a day on runs every retry due by then); every attempt is recorded,
/// and one that cannot be made is recorded as skipped. A notification fault
/// ([`faults`](crate::http::faults)) drops it, delays its first attempt (in clock time), sends
/// it again once accepted, or holds it back until the next notification's first attempt.
fn send(shared: &Arc<Shared>, out: Outgoing, body: Result<Bytes, String>) {
    let uri = match destination(&out.url, shared.settings.allow_remote_notify) {
        Ok(u) => u,
        Err(why) => return out.record(shared, 1, Outcome::Skipped(why)),
    };
    let body = match body {
        Ok(b) => b,
        Err(why) => return out.record(shared, 1, Outcome::Skipped(why)),
    };
    let subject = Subject::Notification(&out.event_type);
    let fault = shared
        .faults
        .pick(&subject, || format!("notify {} {}", out.event_type, out.id));
    let now = shared.clock.now_ms();
    let pending = Arc::new((out, uri, body));
    match fault.map(|(action, _)| action) {
        Some(FaultAction::Drop) => {
            let why = "dropped by a fault: the platform never delivers it".to_string();
            pending.0.record(shared, 1, Outcome::Skipped(why));
        }
        Some(FaultAction::Delay(d)) => {
            let due = now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let job = move |s: &Arc<Shared>| deliver(s, pending, 0, due);
            shared.clock.at(due, Box::new(job));
        }
        Some(FaultAction::Reorder) => {
            let next = shared.faults.hold();
            let (task, mut stop) = (shared.clone(), shared.stop.clone());
            shared.runtime.spawn(async move {
                tokio::select! {
                    _ = next => {}
                    _ = tokio::time::sleep(REORDER_HOLD) => {}
                    _ = stop.changed() => return,
                }
                let due = task.clock.now_ms();
                deliver(&task, pending, 0, due);
            });
        }
        other => {
            if other == Some(FaultAction::Duplicate) {
                shared.faults.duplicate(&pending.0.id);
            }
            // those held back go once this one has had its first attempt
            shared.faults.pass_held_to(&pending.0.id);
            deliver(shared, pending, 0, now);
        }
    }
}

/// Attempt `i + 1` of a notification, due at `due` (clock milliseconds); a refused one queues
/// the next on the clock.
fn deliver(shared: &Arc<Shared>, pending: Arc<(Outgoing, http::Uri, Bytes)>, i: usize, due: i64) {
    let shared = shared.clone();
    let task = shared.clone();
    shared.runtime.spawn(async move {
        let shared = task;
        if *shared.stop.borrow() {
            return;
        }
        let (out, uri, body) = &*pending;
        let at = shared.clock.now();
        let outcome = attempt(&shared, uri, body, out.protocol).await;
        let accepted = matches!(outcome, Outcome::Accepted(_));
        // Recorded before the next attempt is queued, so that attempts are recorded in order.
        out.record_at(&shared, i as u32 + 1, at, outcome);
        if i == 0 {
            shared.faults.release(&out.id);
        }
        if accepted && shared.faults.take_duplicate(&out.id) {
            deliver(&shared, pending.clone(), 0, shared.clock.now_ms());
        }
        let wait = shared.settings.notify_retries.get(i).filter(|_| !accepted);
        if let Some(w) = wait {
            let next = due.saturating_add(i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
            shared.clock.at(
                next,
                Box::new(move |s: &Arc<Shared>| deliver(s, pending, i + 1, next)),
            );
        }
    });
}

/// The POST of one attempt: APIv3 signed with the platform key, APIv2 as XML.
fn request(
    shared: &Shared,
    uri: &http::Uri,
    body: &Bytes,
    protocol: Protocol,
) -> Result<http::Request<Full<Bytes>>, String> {
    // Every notification names itself in `Request-ID`, as the platform's do (each attempt anew).
    let b = http::Request::post(uri.clone())
        .header(
            http::header::USER_AGENT,
            "Mozilla/4.0 (wechatpay-chain emulator)",
        )
        .header("Request-ID", random_hex(16));
    let b = match protocol {
        Protocol::V2 => b.header(http::header::CONTENT_TYPE, "text/xml"),
        Protocol::V3 => {
            let ts = formatter::timestamp().to_string();
            let nonce = formatter::nonce(32);
            // signed in the scheme the body was sealed in (its merchant's)
            let sealed = crate::http::mixed::sealed_in(body);
            let (key, serial) = sealed
                .and_then(|scheme| shared.settings.other_signer(scheme))
                .unwrap_or_else(|| shared.settings.signer());
            let Ok(signed) = signature_headers(&key, &serial, &ts, &nonce, body) else {
                return Err("the emulator could not sign the notification".into());
            };
            signed.into_iter().fold(
                b.header(http::header::CONTENT_TYPE, "application/json"),
                |b, (k, v)| b.header(k, v),
            )
        }
    };
    b.body(Full::new(body.clone()))
        .map_err(|_| "the notification could not be built".into())
}

/// Whether an APIv2 merchant's answer says the notification was handled: XML with
/// `return_code` SUCCESS.
pub(crate) fn v2_accepted(answer: &[u8]) -> bool {
    transformer::to_array(answer)
        .map(|m| m.get("return_code").and_then(Value::as_str) == Some("SUCCESS"))
        .unwrap_or(false)
}

/// One POST of the notification.
async fn attempt(shared: &Shared, uri: &http::Uri, body: &Bytes, protocol: Protocol) -> Outcome {
    let req = match request(shared, uri, body, protocol) {
        Ok(r) => r,
        Err(why) => return Outcome::Failed(why),
    };
    let s = &shared.settings;
    let exchange = async {
        let res = shared
            .pool()
            .request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        // Read (a bounded part of) the answer, also so that the connection can be reused.
        let answer = Limited::new(res.into_body(), 64 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok::<_, String>((status, answer))
    };
    match tokio::time::timeout(s.notify_timeout, exchange).await {
        Ok(Ok((status, answer)))
            if (200..300).contains(&status)
                && (protocol == Protocol::V3 || v2_accepted(&answer)) =>
        {
            Outcome::Accepted(status)
        }
        Ok(Ok((status, _))) => Outcome::Refused(status),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_) => Outcome::Failed(format!("no answer within {:?}", s.notify_timeout)),
    }
}

impl Shared {
    fn pool(&self) -> &Pool {
        &self.notifier.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_unless_allowed() {
        for ok in [
            "http://127.0.0.1:8080/notify",
            "http://localhost/n",
            "https://[::1]:9/n",
            "http://127.8.9.10/n",
        ] {
            assert!(destination(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "https://www.weixin.qq.com/wxpay/pay.php",
            "http://10.0.0.1/n",
            "ftp://127.0.0.1/",
            "::",
        ] {
            assert!(destination(bad, false).is_err(), "{bad}");
        }
        assert!(destination("https://www.weixin.qq.com/wxpay/pay.php", true).is_ok());
        let id = notification_id();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
