//! The platform's check of an APIv3 request: the `Authorization` scheme and its five fields,
//! the merchant id and certificate serial, the timestamp within ±300 s, a nonce not seen
//! before, and the RSA-SHA256 signature over the exact bytes received, verified with the
//! library's `formatter::request` and `Rsa::verify`.

use crate::http::base::Base;
use crate::http::diagnosis::{ExpectedMessage, SignatureCheck, SignatureRefusal};
use crate::util::lock;
use wechatpay_chain::client_json::MAX_CLOCK_SKEW;
use wechatpay_chain::crypto::hash;
use wechatpay_chain::formatter;

/// The fields of an `Authorization` header.
/// The fields of an `Authorization` header, borrowed from it (parsed on every request).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Authorization<'a> {
    pub mchid: &'a str,
    pub serial_no: &'a str,
    pub timestamp: &'a str,
    pub nonce_str: &'a str,
    pub signature: &'a str,
}

/// Parses `WECHATPAY2-SHA256-RSA2048 mchid="…",serial_no="…",…`; every field once, quoted.
#[cfg(test)]
pub(crate) fn parse(header: &str) -> Result<Authorization<'_>, String> {
    parse_as(header, wechatpay_chain::v3::scheme::RSA)
}

/// [`parse`] for the sandbox's scheme `scheme` (its name); a header of the other scheme is
/// refused, never checked under one it does not claim.
pub(crate) fn parse_as<'a>(header: &'a str, scheme: &str) -> Result<Authorization<'a>, String> {
    let rest = header
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| format!("Authorization must start with {scheme} (the sandbox's scheme)"))?;
    let mut a = Authorization::default();
    let mut seen = [""; 5];
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| "Authorization fields must be key=\"value\"".to_string())?;
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .ok_or_else(|| format!("Authorization field {k} must be quoted"))?;
        let slot = match k {
            "mchid" => &mut a.mchid,
            "serial_no" => &mut a.serial_no,
            "timestamp" => &mut a.timestamp,
            "nonce_str" => &mut a.nonce_str,
            "signature" => &mut a.signature,
            other => return Err(format!("Authorization has an unknown field {other:?}")),
        };
        if seen.contains(&k) {
            return Err(format!("Authorization repeats {k}"));
        }
        // five known names, each at most once: a slot is free
        if let Some(free) = seen.iter_mut().find(|s| s.is_empty()) {
            *free = k;
        }
        *slot = v;
    }
    for (name, v) in [
        ("mchid", a.mchid),
        ("serial_no", a.serial_no),
        ("timestamp", a.timestamp),
        ("nonce_str", a.nonce_str),
        ("signature", a.signature),
    ] {
        if v.is_empty() {
            return Err(format!("Authorization lacks {name}"));
        }
    }
    Ok(a)
}

/// Checks a request as the platform does; `Err` says which check failed and why (401
/// `SIGN_ERROR`), with the string expected to be signed when the signature did not verify. The
/// body shown is at most `body_prefix` bytes of `signed_body`. `Ok` names the merchant that
/// signed.
pub(crate) fn check(
    shared: &Base,
    method: &str,
    target: &str,
    authorization: Option<&str>,
    signed_body: &[u8],
    now: i64,
) -> Result<String, SignatureRefusal> {
    use SignatureCheck::*;
    let refuse = SignatureRefusal::new;
    let header =
        authorization.ok_or_else(|| refuse(NoAuthorization, "no Authorization header".into()))?;
    let s = &shared.settings;
    let named = crate::http::mixed::named_in(header);
    let a = parse_as(header, named.name()).map_err(|why| refuse(Malformed, why))?;
    let Some((serial, key)) = s.merchant_key_of(a.mchid) else {
        return Err(refuse(
            WrongMchid,
            format!(
                "mchid {} is not a merchant of the sandbox ({})",
                a.mchid, s.mchid
            ),
        ));
    };
    if a.serial_no != serial {
        return Err(refuse(
            UnknownSerial,
            format!(
                "serial_no {} is not the merchant certificate {serial} of {}",
                a.serial_no, a.mchid
            ),
        ));
    }
    let ts: i64 = a.timestamp.parse().map_err(|_| {
        refuse(
            StaleTimestamp,
            format!("timestamp {:?} is not a number", a.timestamp),
        )
    })?;
    if now.abs_diff(ts) > MAX_CLOCK_SKEW as u64 {
        return Err(refuse(
            StaleTimestamp,
            format!(
                "timestamp {ts} is {} s away from the platform's clock (limit {MAX_CLOCK_SKEW} s)",
                now.abs_diff(ts)
            ),
        ));
    }
    let message = formatter::request(method, target, a.timestamp, a.nonce_str, signed_body);
    let scheme = s.scheme_of(a.mchid);
    if named != scheme {
        return Err(refuse(
            Malformed,
            format!(
                "Authorization must start with {}: merchant {} signs in that scheme, not {}",
                scheme.name(),
                a.mchid,
                named.name()
            ),
        ));
    }
    if !crate::http::scheme::verify(scheme, &message, a.signature, key) {
        let shown = &signed_body[..signed_body.len().min(s.limits.log_body_prefix)];
        return Err(SignatureRefusal {
            check: SignatureMismatch,
            reason: "signature does not verify with the merchant key over method, target, \
                     timestamp, nonce and body"
                .into(),
            expected: Some(ExpectedMessage {
                method: method.to_string(),
                target: target.to_string(),
                timestamp: a.timestamp.to_string(),
                nonce: a.nonce_str.to_string(),
                body_len: signed_body.len(),
                body_sha256: hash::hex(&openssl::sha::sha256(signed_body)),
                body: String::from_utf8_lossy(shown).into_owned(),
                body_truncated: shown.len() < signed_body.len(),
            }),
        });
    }
    // Only a valid request spends its nonce, so a forged one cannot block a real one.
    if !lock(&shared.nonces).spend(a.nonce_str, now) {
        return Err(refuse(
            ReusedNonce,
            format!("nonce_str {} was already used (replay)", a.nonce_str),
        ));
    }
    Ok(a.mchid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_header_and_refuses_malformed_ones() {
        let header = formatter::authorization("1900000001", "N", "S+/=", "1", "SER");
        let a = parse(&header).unwrap();
        assert_eq!(
            a,
            Authorization {
                mchid: "1900000001",
                serial_no: "SER",
                timestamp: "1",
                nonce_str: "N",
                signature: "S+/=",
            }
        );
        for bad in [
            "",
            "Bearer x",
            "WECHATPAY2-SHA256-RSA2048",
            "WECHATPAY2-SHA256-RSA2048 mchid=1",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\",mchid=\"1\",serial_no=\"S\",timestamp=\"1\",nonce_str=\"N\",signature=\"S\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\",serial_no=\"S\",timestamp=\"1\",nonce_str=\"N\",signature=\"\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\",serial_no=\"S\",timestamp=\"1\",nonce_str=\"N\",signature=\"S\",x=\"1\"",
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\"\",serial_no=\"S\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
