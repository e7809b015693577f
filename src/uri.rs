//! Paths and URIs: segment normalization (wechatpay-php's three rules), RFC 6570 expansion of
//! `{name}` placeholders, PHP `http_build_query` (RFC 3986) query strings, and resolving a
//! relative path against the base URI.

use http::Uri;
use serde_json::{Map, Value};

use crate::error::Error;

/// Normalizes a chain segment (or a whole path) as wechatpay-php does, in order: a leading
/// capital is lowered; every other capital becomes `-` + lowercase; a whole `_name_` becomes
/// `{name}`.
///
/// Two departures keep data intact (PHP would send `out-trade-no/-t1000001`, or
/// `bill_type=-a-l-l`): a query string (`?…`) is never touched, and a segment with capitals
/// that is not a camelCase name (see [`holds_data`]) is kept as written.
///
/// ```
/// use wechatpay_chain::uri::normalize;
/// assert_eq!(normalize("discountCard"), "discount-card");
/// assert_eq!(normalize("complaintsV2"), "complaints-v2");
/// assert_eq!(normalize("ComplaintNotifications"), "complaint-notifications");
/// assert_eq!(normalize("_out_order_no_"), "{out_order_no}");
/// assert_eq!(normalize("pay_bank"), "pay_bank");
/// assert_eq!(
///     normalize("v3/pay/transactions/out-trade-no/T1000001?mchid=1900000001&bill_type=ALL"),
///     "v3/pay/transactions/out-trade-no/T1000001?mchid=1900000001&bill_type=ALL"
/// );
/// ```
pub fn normalize(segment: &str) -> String {
    let (path, query) = match segment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (segment, None),
    };
    let mut out = String::with_capacity(segment.len() + 4);
    for (n, seg) in path.split('/').enumerate() {
        if n != 0 {
            out.push('/');
        }
        if holds_data(seg) {
            out.push_str(seg);
            continue;
        }
        for (i, c) in seg.chars().enumerate() {
            if c.is_ascii_uppercase() {
                // PHP lowers the first character of the whole string without a dash.
                if i != 0 || n != 0 {
                    out.push('-');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
    }
    if out.len() >= 2 && out.starts_with('_') && out.ends_with('_') {
        let inner = &out[1..out.len() - 1];
        out = format!("{{{inner}}}");
    }
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Whether a path segment that PHP's rules would change holds data rather than a name: it has
/// capitals and is neither a `_placeholder_` nor a camelCase name. A camelCase name is ASCII
/// letters and digits, starts with a letter, has no two capitals in a row and no run of three
/// digits (`discountCard`, `complaintsV2`, `h5Presign`, `V3`); `T1000001`, `ALL`,
/// `P20150806125346`, `ORDER-1`, `粤B12345` are data.
///
/// ```
/// use wechatpay_chain::uri::holds_data;
/// assert!(holds_data("T1000001") && holds_data("ALL") && holds_data("P20150806125346"));
/// assert!(!holds_data("complaintsV2") && !holds_data("_out_order_no_") && !holds_data("42"));
/// ```
pub fn holds_data(segment: &str) -> bool {
    let b = segment.as_bytes();
    if !b.iter().any(u8::is_ascii_uppercase) {
        return false;
    }
    if b.len() >= 2 && b[0] == b'_' && b[b.len() - 1] == b'_' {
        return false;
    }
    let camel = b.iter().all(u8::is_ascii_alphanumeric)
        && b[0].is_ascii_alphabetic()
        && !b
            .windows(2)
            .any(|w| w[0].is_ascii_uppercase() && w[1].is_ascii_uppercase())
        && !b.windows(3).any(|w| w.iter().all(u8::is_ascii_digit));
    !camel
}

/// What to do with a `{name}` the args do not provide, and with a top-level args key that is
/// neither a request option nor a placeholder. Set on the Builder, or per call with
/// `"placeholders": "strict"` / `"lenient"` in the args. `{empty}` (the documents' idiom for a
/// trailing slash) expands to nothing in both modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Placeholders {
    /// Refuse the call with [`Error::InvalidArgument`] naming the placeholder or key; nothing
    /// is sent. The default.
    #[default]
    Strict,
    /// Expand a missing placeholder to the empty string and ignore unknown keys, as
    /// wechatpay-php (Guzzle's `UriTemplate`) does, with a warning. For replaying calls byte
    /// for byte as the PHP SDK sends them.
    Lenient,
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn reserved(b: u8) -> bool {
    matches!(
        b,
        b':' | b'/'
            | b'?'
            | b'#'
            | b'['
            | b']'
            | b'@'
            | b'!'
            | b'$'
            | b'&'
            | b'\''
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'='
    )
}

/// Percent-encodes everything but `A-Za-z0-9-._~` (PHP's `rawurlencode`, RFC 3986).
pub fn encode_component(s: &str, out: &mut String) {
    encode(s, out, false)
}

fn encode(s: &str, out: &mut String, keep_reserved: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if unreserved(b) || (keep_reserved && reserved(b)) {
            out.push(b as char);
        } else if keep_reserved
            && b == b'%'
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            // {+var} keeps pct-encoded triplets as they are (RFC 6570 §3.2.3).
            out.push_str(&s[i..i + 3]);
            i += 3;
            continue;
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
        i += 1;
    }
}

/// Expands `{name}` and `{+name}` in `template` from the top-level keys of `args`.
///
/// Values must be strings or numbers; anything else is an [`Error::InvalidArgument`], as is a
/// missing one under [`Placeholders::Strict`].
///
/// ```
/// use serde_json::json;
/// use wechatpay_chain::uri::{expand, Placeholders};
/// let args = json!({"plate_number": "粤B12345", "x": "a*b"});
/// let args = args.as_object().unwrap();
/// assert_eq!(
///     expand("v3/vehicle/{plate_number}/{x}", args, Placeholders::Strict).unwrap(),
///     "v3/vehicle/%E7%B2%A4B12345/a%2Ab"
/// );
/// assert!(expand("v3/orders/{out_order_no}", &Default::default(), Placeholders::Strict).is_err());
/// ```
pub fn expand(
    template: &str,
    args: &Map<String, Value>,
    missing: Placeholders,
) -> Result<String, Error> {
    if !template.contains('{') {
        if template.contains('}') {
            return Err(Error::arg(format!("unbalanced '}}' in path {template:?}")));
        }
        return Ok(template.to_string());
    }
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let literal = &rest[..open];
        if literal.contains('}') {
            return Err(Error::arg(format!("unbalanced '}}' in path {template:?}")));
        }
        out.push_str(literal);
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| Error::arg(format!("unclosed '{{' in path {template:?}")))?;
        let expr = &after[..close];
        let (keep_reserved, name) = match expr.strip_prefix('+') {
            Some(n) => (true, n),
            None => (false, expr),
        };
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        {
            return Err(Error::arg(format!(
                "unsupported placeholder {{{expr}}} in path {template:?}: only {{name}} and {{+name}}"
            )));
        }
        match args.get(name) {
            Some(Value::String(s)) => encode(s, &mut out, keep_reserved),
            Some(Value::Number(n)) => encode(&n.to_string(), &mut out, keep_reserved),
            Some(other) => {
                return Err(Error::arg(format!(
                    "placeholder {{{name}}} must be a string or a number, got {}",
                    kind(other)
                )))
            }
            // `{empty}` is the documents' idiom for a trailing slash: nothing, in every mode.
            None if name == "empty" => {}
            None => match missing {
                Placeholders::Strict => {
                    return Err(Error::arg(format!(
                        "placeholder {{{name}}} of {template:?} has no value in the args: add \"{name}\": \"…\" to them (the lenient mode expands it to empty, as wechatpay-php does)"
                    )))
                }
                Placeholders::Lenient => {
                    tracing::warn!(
                        placeholder = name,
                        template,
                        "placeholder has no value; expanded to empty as wechatpay-php does"
                    );
                }
            },
        }
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(Error::arg(format!("unbalanced '}}' in path {template:?}")));
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder names of a template, in order.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                names.push(after[..close].trim_start_matches('+'));
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    names
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Builds a query string as PHP's `http_build_query($q, '', '&', PHP_QUERY_RFC3986)`: keys in
/// the given order, `null` skipped, `true`/`false` as `1`/`0`, nested objects and lists as
/// `key[sub]` (brackets encoded).
///
/// ```
/// use serde_json::json;
/// use wechatpay_chain::uri::build_query;
/// let q = json!({"limit": 5, "need_query_detail": true, "x": null, "s": "a b+/"});
/// assert_eq!(build_query(q.as_object().unwrap()), "limit=5&need_query_detail=1&s=a%20b%2B%2F");
/// ```
pub fn build_query(query: &Map<String, Value>) -> String {
    let mut out = String::new();
    for (k, v) in query {
        let mut key = String::new();
        encode_component(k, &mut key);
        push_pair(&mut out, key, v);
    }
    out
}

fn push_pair(out: &mut String, key: String, v: &Value) {
    let scalar = match v {
        Value::Null => return,
        Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push_pair(out, format!("{key}%5B{i}%5D"), item);
            }
            return;
        }
        Value::Object(map) => {
            for (k, item) in map {
                let mut sub = String::new();
                encode_component(k, &mut sub);
                push_pair(out, format!("{key}%5B{sub}%5D"), item);
            }
            return;
        }
    };
    if !out.is_empty() {
        out.push('&');
    }
    out.push_str(&key);
    out.push('=');
    encode_component(&scalar, out);
}

/// Resolves a relative reference against a base URI's path (RFC 3986 §5.2.3 merge): a path
/// starting with `/` replaces the base path; otherwise it is appended after the base path's
/// last `/`, so `https://apihk.mch.weixin.qq.com/global/` keeps its `/global/` prefix.
pub fn merge_path(base_path: &str, relative: &str) -> String {
    if relative.starts_with('/') {
        return relative.to_string();
    }
    let prefix = match base_path.rfind('/') {
        Some(i) => &base_path[..=i],
        None => "/",
    };
    format!("{prefix}{relative}")
}

/// An absolute base URI split into its parts.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    pub scheme: String,
    pub authority: String,
    pub path: String,
}

impl Base {
    pub(crate) fn parse(s: &str) -> Result<Base, Error> {
        let uri: Uri = s
            .trim()
            .parse()
            .map_err(|_| Error::arg(format!("base_uri {s:?} is not a valid URI")))?;
        let scheme = match uri.scheme_str() {
            Some(s @ ("http" | "https")) => s.to_string(),
            _ => {
                return Err(Error::arg(format!(
                    "base_uri {s:?} must start with https:// or http://"
                )))
            }
        };
        let authority = uri
            .authority()
            .ok_or_else(|| Error::arg(format!("base_uri {s:?} has no host")))?
            .to_string();
        if uri.query().is_some() {
            return Err(Error::arg(format!("base_uri {s:?} must not carry a query")));
        }
        Ok(Base {
            scheme,
            authority,
            path: uri.path().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalization_follows_php() {
        for (a, b) in [
            ("v3", "v3"),
            ("discountCard", "discount-card"),
            ("complaintsV2", "complaints-v2"),
            ("ComplaintNotifications", "complaint-notifications"),
            ("_out_order_no_", "{out_order_no}"),
            ("pay_bank", "pay_bank"),
            ("{openid}", "{openid}"),
            ("V3", "v3"),
            ("addUserRecords", "add-user-records"),
            ("_", "_"),
            ("__", "{}"),
            ("_empty_", "{empty}"),
            (
                "v3/discount-card/orders/{out_order_no}",
                "v3/discount-card/orders/{out_order_no}",
            ),
            (
                "v3/merchantService/complaintsV2",
                "v3/merchant-service/complaints-v2",
            ),
            // Data (a plate number), not a name: kept as written (PHP: "粤-b").
            ("粤B", "粤B"),
        ] {
            assert_eq!(normalize(a), b, "{a}");
        }
    }

    #[test]
    fn data_in_a_path_is_never_rewritten() {
        for (a, b) in [
            (
                "v3/pay/transactions/out-trade-no/T1000001?mchid=1900000001",
                "v3/pay/transactions/out-trade-no/T1000001?mchid=1900000001",
            ),
            (
                "v3/bill/tradebill?bill_date=2024-06-01&bill_type=ALL",
                "v3/bill/tradebill?bill_date=2024-06-01&bill_type=ALL",
            ),
            (
                "v3/profitsharing/orders/P20150806125346",
                "v3/profitsharing/orders/P20150806125346",
            ),
            ("v3/vehicle/粤B12345", "v3/vehicle/粤B12345"),
            ("v3/x/ORDER-1", "v3/x/ORDER-1"),
            // Names next to data are still normalized; a query never is.
            (
                "v3/discountCard/T1000001?a=Bc",
                "v3/discount-card/T1000001?a=Bc",
            ),
            (
                "v3/merchantService/complaintsV2?x=ALL",
                "v3/merchant-service/complaints-v2?x=ALL",
            ),
            ("h5Presign", "h5-presign"),
        ] {
            assert_eq!(normalize(a), b, "{a}");
            // Normalizing twice changes nothing (the CLI's dot form is normalized, then chained).
            assert_eq!(normalize(b), b, "{b}");
        }
    }

    #[test]
    fn empty_expands_to_nothing_in_every_mode() {
        for mode in [Placeholders::Strict, Placeholders::Lenient] {
            assert_eq!(expand("v3/a/{empty}", &Map::new(), mode).unwrap(), "v3/a/");
        }
    }

    #[test]
    fn expansion_encodes_per_rfc6570() {
        let args = json!({"a": "粤B12345", "b": "*", "c": 12, "d": "x/y?z", "e": "a%20b", "f": ""});
        let args = args.as_object().unwrap();
        assert_eq!(
            expand("{a}", args, Placeholders::Strict).unwrap(),
            "%E7%B2%A4B12345"
        );
        assert_eq!(expand("{b}", args, Placeholders::Strict).unwrap(), "%2A");
        assert_eq!(
            expand("p/{c}/q", args, Placeholders::Strict).unwrap(),
            "p/12/q"
        );
        assert_eq!(
            expand("{d}", args, Placeholders::Strict).unwrap(),
            "x%2Fy%3Fz"
        );
        assert_eq!(expand("{+d}", args, Placeholders::Strict).unwrap(), "x/y?z");
        assert_eq!(expand("{+e}", args, Placeholders::Strict).unwrap(), "a%20b");
        assert_eq!(
            expand("{e}", args, Placeholders::Strict).unwrap(),
            "a%2520b"
        );
        assert_eq!(
            expand("a/{f}/b", args, Placeholders::Strict).unwrap(),
            "a//b"
        );
        assert_eq!(
            expand("a-._~", args, Placeholders::Strict).unwrap(),
            "a-._~"
        );
    }

    #[test]
    fn expansion_refuses_what_php_would_send_wrong() {
        let s = Placeholders::Strict;
        for args in [
            json!({}),
            json!({"x": null}),
            json!({"x": {"a": 1}}),
            json!({"x": [1]}),
            json!({"x": true}),
        ] {
            let e = expand("v3/{x}", args.as_object().unwrap(), s).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{args}");
            assert!(e.to_string().contains("{x}"), "{e}");
        }
        assert_eq!(
            expand("v3/{x}/y", &Map::new(), Placeholders::Lenient).unwrap(),
            "v3//y"
        );
        // Lenient is only about absence: wrong types are still refused.
        assert!(expand(
            "v3/{x}",
            json!({"x": [1]}).as_object().unwrap(),
            Placeholders::Lenient
        )
        .is_err());
        for t in ["v3/{x", "v3/x}", "v3/{}", "v3/{a,b}", "v3/{#x}", "}{"] {
            assert!(
                expand(t, json!({"x": "1"}).as_object().unwrap(), s).is_err(),
                "{t}"
            );
        }
    }

    #[test]
    fn query_strings_match_http_build_query() {
        let q = json!({
            "out_batch_no": "plfk2020042013", "need_query_detail": true, "offset": 0, "f": false,
            "encrypted": "vvy+wRh/fb==", "empty": "", "n": null, "cn": "中", "list": ["a", "b"],
            "obj": {"k": "v"}
        });
        assert_eq!(
            build_query(q.as_object().unwrap()),
            "out_batch_no=plfk2020042013&need_query_detail=1&offset=0&f=0&encrypted=vvy%2BwRh%2Ffb%3D%3D&empty=&cn=%E4%B8%AD&list%5B0%5D=a&list%5B1%5D=b&obj%5Bk%5D=v"
        );
        assert_eq!(build_query(&Map::new()), "");
    }

    #[test]
    fn paths_merge_like_guzzle() {
        assert_eq!(merge_path("/", "v3/a"), "/v3/a");
        assert_eq!(merge_path("", "v3/a"), "/v3/a");
        assert_eq!(merge_path("/global/", "v3/a"), "/global/v3/a");
        assert_eq!(merge_path("/global", "v3/a"), "/v3/a");
        assert_eq!(merge_path("/global/", "/v3/a"), "/v3/a");
    }

    #[test]
    fn placeholder_names() {
        assert_eq!(placeholders("a/{x}/b/{+y}"), vec!["x", "y"]);
        assert!(placeholders("a/b").is_empty());
    }
}
