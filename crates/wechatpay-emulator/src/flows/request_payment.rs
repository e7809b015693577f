//! What the payer's WeChat client checks before it pays: the front-end parameters a merchant's
//! page passes to `wx.requestPayment` / `WeixinJSBridge` (a JSAPI order) or its app to the APP
//! SDK (an APP order), presented with the `paid` action as `request_payment`.
//!
//! The checks, in order, each refused (400 `PARAM_ERROR`, the field as
//! `/request_payment/<key>`) with the reason, and nothing paid: the order is paid this way at
//! all (JSAPI or APP, not Native or H5); every key of the order's form is there and is a
//! string; `appId` is the order's appid (a partner order's `sp_appid` or `sub_appid`, a
//! combined order's `combine_appid`); `package` is `prepay_id=` and the order's `prepay_id`
//! and `signType` is `RSA` (the sandbox's orders are APIv3 orders); for APP, `partnerid` is the
//! merchant, `prepayid` the order's and `package` `Sign=WXPay`; `timeStamp` is decimal
//! seconds, from [`PAST`] before real time to [`FUTURE`] after it (the page signs with the
//! payer's phone's clock, which the sandbox's clock does not move); `nonceStr` has 1
//! to 32 characters; and `paySign` verifies with the merchant's public key over the documented
//! message, which the refusal shows.

use serde_json::{Map, Value};

use crate::http::answer::Answer;
use crate::http::diagnosis::visible;
use crate::state::shared::Shared;
use wechatpay_chain::formatter;
use wechatpay_chain::Rsa;

/// How old a `timeStamp` may be: two hours, as long as a `prepay_id` lives.
pub(crate) const PAST: i64 = 2 * 3600;
/// How far ahead of real time a `timeStamp` may be (a phone's clock running fast).
pub(crate) const FUTURE: i64 = 300;

/// What the order says the parameters must be.
pub(crate) struct Order<'a> {
    /// The number the action was asked for, to name in refusals.
    pub no: &'a str,
    /// `JSAPI`, `APP`, `NATIVE` or `MWEB`.
    pub trade_type: &'a str,
    /// The creation answer, with the `prepay_id`.
    pub created: &'a Value,
    /// The appids the payer may pay it in.
    pub appids: Vec<&'a str>,
}

/// One form of the parameters: its keys and which of them play which part.
struct Form {
    trade_type: &'static str,
    keys: &'static [&'static str],
    app: &'static str,
    time: &'static str,
    nonce: &'static str,
    sign: &'static str,
    /// The keys whose values the signature's message joins, in order.
    signed: [&'static str; 4],
}

/// `wx.requestPayment` / `WeixinJSBridge`.
const JSAPI: Form = Form {
    trade_type: "JSAPI",
    keys: &[
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ],
    app: "appId",
    time: "timeStamp",
    nonce: "nonceStr",
    sign: "paySign",
    signed: ["appId", "timeStamp", "nonceStr", "package"],
};

/// The APP SDK's.
const APP: Form = Form {
    trade_type: "APP",
    keys: &[
        "appid",
        "partnerid",
        "prepayid",
        "package",
        "noncestr",
        "timestamp",
        "sign",
    ],
    app: "appid",
    time: "timestamp",
    nonce: "noncestr",
    sign: "sign",
    signed: ["appid", "timestamp", "noncestr", "prepayid"],
};

fn refused(key: &str, issue: impl Into<String>, value: Value) -> Answer {
    let field = match key {
        "" => "/request_payment".to_string(),
        k => format!("/request_payment/{k}"),
    };
    Answer::param_error(&field, "body", issue, value)
}

/// The given values of a form's keys, all of them strings.
struct Given<'a>(Vec<(&'static str, &'a str)>);

impl<'a> Given<'a> {
    fn get(&self, key: &str) -> &'a str {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| *v)
    }
}

/// Checks `given` as the payer's client would for `order`, at time `now`.
pub(crate) fn check(
    shared: &Shared,
    order: &Order<'_>,
    given: &Map<String, Value>,
    now: i64,
) -> Result<(), Answer> {
    let (form, other) = match order.trade_type {
        "JSAPI" => (&JSAPI, &APP),
        "APP" => (&APP, &JSAPI),
        kind => {
            let from = if kind == "NATIVE" {
                "code_url"
            } else {
                "h5_url"
            };
            return Err(refused(
                "",
                format!(
                    "order {} is {kind}: it is paid from its {from}, not with front-end parameters (those are for JSAPI, mini-program and APP orders)",
                    order.no
                ),
                Value::Object(given.clone()),
            ));
        }
    };
    let v = strings(form, other, given)?;
    let app_id = v.get(form.app);
    if !order.appids.contains(&app_id) {
        return Err(refused(
            form.app,
            format!(
                "{} {app_id} is not the appid order {} was made with ({}): the payer pays in that app",
                form.app,
                order.no,
                order.appids.join(" or ")
            ),
            Value::from(app_id),
        ));
    }
    let prepay_id = order
        .created
        .get("prepay_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let package = format!("prepay_id={prepay_id}");
    let fixed: Vec<(&str, &str, String)> = if form.trade_type == "JSAPI" {
        vec![
            ("package", &package, format!("prepay_id= and the prepay_id order {} was answered with", order.no)),
            ("signType", "RSA", format!("order {} was made with APIv3, whose front-end parameters are signed with RSA (MD5 and HMAC-SHA256 are APIv2's)", order.no)),
        ]
    } else {
        vec![
            (
                "partnerid",
                &shared.settings.mchid,
                format!("the merchant of order {}", order.no),
            ),
            (
                "prepayid",
                prepay_id,
                format!("the prepay_id order {} was answered with", order.no),
            ),
            ("package", "Sign=WXPay", "fixed for APP orders".to_string()),
        ]
    };
    for (key, want, why) in fixed {
        let got = v.get(key);
        if got != want {
            return Err(refused(
                key,
                format!("{key} must be {want}, not {got:?}: {why}"),
                Value::from(got),
            ));
        }
    }
    let stamp = v.get(form.time);
    timestamp(stamp, now).map_err(|issue| {
        refused(
            form.time,
            format!("{}: {issue}", form.time),
            Value::from(stamp),
        )
    })?;
    let nonce = v.get(form.nonce);
    if nonce.is_empty() || nonce.chars().count() > 32 {
        return Err(refused(
            form.nonce,
            format!("{} must have 1 to 32 characters", form.nonce),
            Value::from(nonce),
        ));
    }
    let message = formatter::joined_by_line_feed(form.signed.map(|k| v.get(k)));
    let sign = v.get(form.sign);
    if !Rsa::verify(&message, sign, &shared.settings.merchant_key) {
        return Err(refused(
            form.sign,
            format!(
                "支付验证签名失败 {} does not verify with the merchant's public key: it must be base64 RSA-SHA256, under the merchant API private key, of {} ({}, each followed by a line feed)",
                form.sign,
                visible(&String::from_utf8_lossy(&message)),
                form.signed.join(", "),
            ),
            Value::from(sign),
        ));
    }
    Ok(())
}

/// The form's values: every key there and a string, else refused naming what is missing (and
/// that the keys are the other form's, when they are).
fn strings<'a>(
    form: &Form,
    other: &Form,
    given: &'a Map<String, Value>,
) -> Result<Given<'a>, Answer> {
    let missing: Vec<&str> = form
        .keys
        .iter()
        .copied()
        .filter(|k| given.get(*k).is_none_or(Value::is_null))
        .collect();
    if let Some(first) = missing.first() {
        let theirs = other
            .keys
            .iter()
            .any(|k| !form.keys.contains(k) && given.contains_key(*k));
        let hint = if theirs {
            format!(" (the keys given are the {} form's)", other.trade_type)
        } else {
            String::new()
        };
        return Err(refused(
            first,
            format!(
                "request_payment lacks {}: a {} order is paid with {}{hint}",
                missing.join(", "),
                form.trade_type,
                form.keys.join(", "),
            ),
            Value::Null,
        ));
    }
    form.keys
        .iter()
        .map(|k| match &given[*k] {
            Value::String(s) => Ok((*k, s.as_str())),
            v => Err(refused(
                k,
                format!("{k} must be a string, as the SDKs take it (a time too: \"1700000000\")"),
                v.clone(),
            )),
        })
        .collect::<Result<_, _>>()
        .map(Given)
}

/// A time as the client takes it: decimal seconds, not older than [`PAST`] nor further ahead
/// than [`FUTURE`].
fn timestamp(stamp: &str, now: i64) -> Result<(), String> {
    let secs = Some(stamp)
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or("must be decimal seconds since 1970 (\"1700000000\")")?;
    if secs > now + FUTURE {
        return Err(if stamp.len() >= 13 {
            "milliseconds where seconds are due (Math.floor(Date.now() / 1000))".to_string()
        } else {
            format!("{} s ahead of real time (at most {FUTURE} s)", secs - now)
        });
    }
    if secs < now - PAST {
        return Err(format!(
            "{} s old: a prepay_id lives two hours, make fresh parameters",
            now - secs
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_decimal_seconds_within_the_window() {
        let now = 1_800_000_000;
        for ok in [now, now + FUTURE, now - PAST] {
            assert_eq!(timestamp(&ok.to_string(), now), Ok(()), "{ok}");
        }
        let refused = |s: &str| timestamp(s, now).unwrap_err();
        assert!(refused(&(now + FUTURE + 1).to_string()).contains("ahead"));
        assert!(refused(&(now - PAST - 1).to_string()).contains("two hours"));
        assert!(refused(&(now * 1000).to_string()).contains("milliseconds"));
        for bad in ["", "-1", "1.8e9", " 1800000000", "99999999999999999999999"] {
            assert!(refused(bad).contains("decimal seconds"), "{bad:?}");
        }
    }
}
