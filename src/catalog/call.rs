//! Validation before sending: what the client does with [`Validation`] (the hook is in the
//! decorator, before the args become a request).

use serde_json::Value;

use super::{find, suggest, Validation};
use crate::error::Error;

/// What a refusal by validation adds: how to send the call anyway.
const SEND_ANYWAY: &str =
    "to send it anyway: \"validate\": false in the args, or validation warn (CLI --validate warn)";

/// What to say of a path the catalogue does not know for `method` (any case): the methods it
/// is documented for, else "did you mean" with the nearest documented templates
/// ([`suggest`]), else that nothing is near. One line, no final stop.
///
/// ```
/// use wechatpay_chain::catalog;
///
/// let s = catalog::unknown_path("post", "v3/pay/transaction/native");
/// assert!(s.contains("did you mean POST v3/pay/transactions/native"), "{s}");
/// let s = catalog::unknown_path("PUT", "v3/pay/transactions/native");
/// assert!(s.ends_with("documented for POST only"), "{s}");
/// ```
pub fn unknown_path(method: &str, path: &str) -> String {
    let clean = path.split(['?', '#']).next().unwrap_or(path);
    let clean = clean.trim_start_matches('/');
    let others: Vec<&str> = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        .into_iter()
        .filter(|m| !m.eq_ignore_ascii_case(method) && find(m, clean).is_some())
        .collect();
    let method = method.to_ascii_uppercase();
    if !others.is_empty() {
        return format!(
            "{method} {clean} is not a documented operation: the path is documented for {} only",
            others.join(", ")
        );
    }
    let near = suggest(&method, clean);
    if near.is_empty() {
        return format!(
            "{method} {clean} is not a documented operation, and no documented path is near it (docs/operations.md lists them)"
        );
    }
    let listed: Vec<String> = near
        .iter()
        .map(|op| format!("{} {} ({})", op.method, op.template, op.label))
        .collect();
    format!(
        "{method} {clean} is not a documented operation; did you mean {}?",
        listed.join(", or ")
    )
}

/// Checks a call of `m` on the chain path `template` under `mode`: `Ok` to send (after logging
/// each finding at WARN under [`Validation::Warn`]), an [`Error::InvalidArgument`] listing the
/// findings under [`Validation::Strict`]. `upload`: the call carries a multipart body.
pub(crate) fn check_call(
    mode: Validation,
    m: &str,
    template: &str,
    args: &Value,
    upload: bool,
) -> Result<(), Error> {
    if mode == Validation::Off {
        return Ok(());
    }
    let Some(op) = find(m, template) else {
        let text = unknown_path(m, template);
        if mode == Validation::Strict {
            let stop = if text.ends_with('?') { "" } else { "." };
            return Err(Error::InvalidArgument(format!(
                "{text}{stop} Nothing was sent ({SEND_ANYWAY})"
            )));
        }
        tracing::warn!(
            method = m,
            path = template,
            "{text}; sent anyway (validation: warn)"
        );
        return Ok(());
    };
    if mode == Validation::Strict {
        if let Some(why) = reshaped(template, op.template, args) {
            return Err(Error::InvalidArgument(format!(
                "{m} {} ({}) is not called as documented, nothing was sent: {why} ({SEND_ANYWAY})",
                op.template, op.label
            )));
        }
    }
    // What the call sends besides its args: the query written in the path, an upload's
    // multipart body.
    let in_path = template.contains('?') && args.get("query").is_none_or(Value::is_null);
    let no_body = upload && args.get("body").is_none_or(Value::is_null);
    // a placeholder named otherwise than on the page (`v3/refund/domestic/refunds/{no}`)
    let path = template.split(['?', '#']).next().unwrap_or(template);
    let path = path.trim_start_matches('/');
    let renamed: Vec<(&str, &str)> = if path.split('/').count() == op.template.split('/').count() {
        let name = |s: &'static str| {
            s.strip_prefix('{')
                .and_then(|s| s.strip_suffix('}'))
                .map(|s| s.trim_start_matches('+'))
        };
        path.split('/')
            .zip(op.template.split('/'))
            .filter_map(|(p, t)| {
                let given = p
                    .strip_prefix('{')?
                    .strip_suffix('}')?
                    .trim_start_matches('+');
                let documented = name(t)?;
                (given != documented).then_some((given, documented))
            })
            .collect()
    } else {
        Vec::new()
    };
    let findings = match args {
        Value::Object(a) if in_path || no_body || !renamed.is_empty() => {
            let mut a = a.clone();
            for (given, documented) in &renamed {
                if let Some(v) = a.remove(*given) {
                    a.insert((*documented).to_string(), v);
                }
            }
            if in_path {
                let q = template.split_once('?').map_or("", |(_, q)| q);
                a.insert("query".into(), Value::String(q.to_string()));
            }
            if no_body {
                a.insert("body".into(), Value::String("(the upload)".into()));
            }
            op.validate_at(template, &Value::Object(a))
        }
        _ => op.validate_at(template, args),
    };
    if findings.is_empty() {
        return Ok(());
    }
    if mode == Validation::Warn {
        for f in &findings {
            tracing::warn!(
                method = m,
                template = op.template,
                "not as documented: {f}; sent anyway (validation: warn)"
            );
        }
        return Ok(());
    }
    const SHOWN: usize = 20;
    let mut listed: Vec<String> = findings
        .iter()
        .take(SHOWN)
        .map(ToString::to_string)
        .collect();
    if findings.len() > SHOWN {
        listed.push(format!("and {} more", findings.len() - SHOWN));
    }
    Err(Error::InvalidArgument(format!(
        "{m} {} ({}) is not called as documented, nothing was sent: {} ({SEND_ANYWAY})",
        op.template,
        op.label,
        listed.join("; ")
    )))
}

/// Why the path a call sends would not be the one validation judges, if it would not: the
/// catalogue matched the written path `path` to `documented`, segment by segment, but a
/// `{+name}` value holding `/`, `?` or `#` (reserved expansion keeps them) carries the path on
/// past its segment, or starts a query or a fragment; and a whole segment expanded to nothing,
/// `.` or `..` is another path once a server resolves it. Names the placeholder and what to
/// write instead. Only strings can do this (a number has none of these characters).
fn reshaped(path: &str, documented: &str, args: &Value) -> Option<String> {
    if !path.contains('{') {
        return None;
    }
    let written = path.split(['?', '#']).next().unwrap_or(path);
    let written = written.trim_start_matches('/');
    let aligned = written.split('/').count() == documented.split('/').count();
    let mut doc_segs = documented.split('/');
    for seg in written.split('/') {
        let doc_seg = doc_segs.next().filter(|_| aligned);
        let mut rest = seg;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let expr = &rest[open + 1..open + close];
            rest = &rest[open + close + 1..];
            let name = expr.trim_start_matches('+');
            let Some(Value::String(v)) = args.get(name) else {
                continue;
            };
            let here = match doc_seg {
                Some(d) if d.starts_with('{') => format!("the documented {d}"),
                Some(d) => format!("the documented segment `{d}`"),
                None => "its own segment".to_string(),
            };
            let sent = || {
                args.as_object()
                    .and_then(|a| {
                        crate::uri::expand(written, a, crate::uri::Placeholders::Lenient).ok()
                    })
                    .map_or_else(String::new, |p| format!(" (the request would go to {p})"))
            };
            if expr.starts_with('+') {
                if let Some(c) = v.chars().find(|c| matches!(c, '/' | '?' | '#')) {
                    return Some(format!(
                        "{{{expr}}}: {v:?} holds '{c}', which reserved expansion keeps, so the path sent is not {here}{}; write {{{name}}} to send the value percent-encoded as one segment, or write out the path of the operation meant",
                        sent()
                    ));
                }
            }
            if seg == format!("{{{expr}}}")
                && name != "empty"
                && matches!(v.as_str(), "" | "." | "..")
            {
                return Some(format!(
                    "{{{expr}}}: {v:?} as a whole segment is not {here}{}: an empty segment is another path, and a server resolves \".\" and \"..\" away; give the value the page documents",
                    sent()
                ));
            }
        }
    }
    None
}
