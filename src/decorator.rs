//! The client decorator, as wechatpay-php's `ClientDecorator`: turns a chain path and the
//! call's args into an HTTP request, picks APIv3 (JSON, RSA) or APIv2 (XML, MD5/HMAC) by the
//! path's first segment, and checks the answer the way that protocol requires.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{Method, Uri};
use serde_json::{Map, Value};

use crate::client_json;
use crate::error::Error;
use crate::formatter;
use crate::request::{object, Draft, Pending, Protocol};
use crate::response::Response;
use crate::transport::Limits;
use crate::uri::{self, Base, Placeholders};
use crate::util::media::Media;
use crate::Core;

/// `Accept` sent by default, as wechatpay-php sends it.
pub const DEFAULT_ACCEPT: &str =
    "application/json, text/plain, application/x-gzip, application/pdf, image/png, image/*;q=0.5";

/// The request options the args may carry, exactly the keys the client reads; every other
/// top-level key must be a placeholder of the path (see [`check_keys`]). `xml`, `security` and
/// `nonceless` are read by APIv2 calls only, `json` and `body` by APIv3 calls only.
pub const OPTION_KEYS: &[&str] = &[
    "json",
    "query",
    "body",
    "headers",
    "base_uri",
    "xml",
    "security",
    "nonceless",
    "timeout",
    "retry",
    "placeholders",
    "validate",
];

/// Why an APIv3 call is refused when nothing could verify its answer.
const NO_PLATFORM_KEY: &str = "no way to verify APIv3 answers, so nothing was sent: configure \
the platform's key with Builder::platform_public_key (PUB_KEY_ID_… and pub_key.pem; CLI \
--public-key/WECHATPAY_PUBLIC_KEY and --public-key-id/WECHATPAY_PUBLIC_KEY_ID), \
Builder::platform_certificate (CLI --platform-cert/WECHATPAY_PLATFORM_CERT), or \
Builder::auto_certificates (the APIv3 key) to download the platform certificates";

/// Refuses (under [`Placeholders::Strict`]) a top-level key of `args` that is neither a request
/// option nor a placeholder of `template`: it would silently do nothing (a forgotten `json`
/// wrapper sends an empty body, a misspelt placeholder leaves the path wrong). The error names
/// the keys and suggests the nearest placeholder or option, else the wrapper. Under
/// [`Placeholders::Lenient`] they are ignored with a warning, as wechatpay-php ignores them.
pub(crate) fn check_keys(
    template: &str,
    args: &Map<String, Value>,
    mode: Placeholders,
) -> Result<(), Error> {
    let v2 = template == "v2" || template.starts_with("v2/");
    let names = uri::placeholders(template);
    let unknown: Vec<&str> = args
        .keys()
        .map(String::as_str)
        .filter(|k| !OPTION_KEYS.contains(k) && !names.contains(k))
        .collect();
    let Some(first) = unknown.first() else {
        return Ok(());
    };
    let listed = unknown
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    if mode == Placeholders::Lenient {
        tracing::warn!(
            keys = %listed,
            template,
            "args keys that are neither request options nor placeholders are ignored, as wechatpay-php does"
        );
        return Ok(());
    }
    let nearest = |candidates: &[&str]| {
        candidates
            .iter()
            .map(|c| (strsim::levenshtein(first, c), *c))
            .filter(|(d, c)| *d <= (c.len() / 3).max(2))
            .min()
            .map(|(_, c)| c.to_string())
    };
    let hint = if let Some(p) = nearest(&names) {
        format!("did you mean the placeholder {p:?}?")
    } else if let Some(o) = nearest(OPTION_KEYS) {
        format!("did you mean the request option {o:?}?")
    } else {
        let wrapper = if v2 { "xml" } else { "json" };
        format!(
            "request fields go inside {wrapper:?} (e.g. {{\"{wrapper}\": {{{first:?}: …}}}}), query fields inside \"query\""
        )
    };
    let placeholders = match names.is_empty() {
        true => format!("{template:?} has no placeholders"),
        false => format!("the placeholders of {template:?} are {}", names.join(", ")),
    };
    Err(Error::InvalidArgument(format!(
        "args {listed}: neither a request option nor a placeholder: {hint} ({placeholders}; the options are {}; the lenient mode ignores unknown keys, as wechatpay-php does)",
        OPTION_KEYS.join(", ")
    )))
}

/// The per-call `validate` option: `None` (absent: the client's mode), `false`/`"off"`,
/// `true` (the client's mode, or strict when it is off), `"warn"`, `"strict"`.
fn validate_option(args: &Value) -> Result<Option<&'static str>, Error> {
    match args.get("validate") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(false)) => Ok(Some("off")),
        Some(Value::Bool(true)) => Ok(Some("on")),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Some("off")),
            "warn" => Ok(Some("warn")),
            "strict" => Ok(Some("strict")),
            _ => Err(Error::arg(format!(
                "validate {s:?}: use false, true, \"off\", \"warn\" or \"strict\""
            ))),
        },
        Some(other) => Err(Error::arg(format!(
            "validate must be a boolean or \"off\", \"warn\", \"strict\", got {}",
            uri::kind(other)
        ))),
    }
}

fn header_value(name: &str, v: &Value) -> Result<Vec<HeaderValue>, Error> {
    let one = |s: String| {
        HeaderValue::from_str(&s)
            .map_err(|_| Error::arg(format!("header {name} has a value that cannot be sent")))
    };
    match v {
        Value::String(s) => Ok(vec![one(s.clone())?]),
        Value::Number(n) => Ok(vec![one(n.to_string())?]),
        Value::Array(items) => items
            .iter()
            .map(|i| header_value(name, i).map(|mut v| v.remove(0)))
            .collect(),
        other => Err(Error::arg(format!(
            "header {name} must be a string or a number, got {}",
            uri::kind(other)
        ))),
    }
}

impl Core {
    /// Parses the args and builds the signed request for `method` on the chain path `template`.
    pub(crate) fn begin(
        &self,
        method: Method,
        template: &str,
        args: &Value,
    ) -> Result<Pending, Error> {
        self.begin_with(method, template, args, None)
    }

    /// [`Core::begin`] with a media upload as the body: multipart sent, its meta signed. An
    /// APIv3 call is refused when its answer could not be verified (no platform key, no
    /// automatic certificates): better nothing sent than a refund carried out unverifiable.
    pub(crate) fn begin_with(
        &self,
        method: Method,
        template: &str,
        args: &Value,
        upload: Option<&Media>,
    ) -> Result<Pending, Error> {
        self.validate_call(&method, template, args, upload.is_some())?;
        let pending = self.prepare(method, template, args, upload)?;
        if pending.protocol == Protocol::V3 && self.auto.is_none() && self.keyring.is_empty() {
            return Err(Error::config(NO_PLATFORM_KEY));
        }
        Ok(pending)
    }

    /// Checks the call's args against the catalogue ([`crate::Builder::validation`], the
    /// args' `validate`): refuses it under strict, logs each finding under warn. A concrete
    /// path (`v3/pay/transactions/out-trade-no/T1`) fills its placeholders.
    #[cfg(feature = "catalog")]
    fn validate_call(
        &self,
        method: &Method,
        template: &str,
        args: &Value,
        upload: bool,
    ) -> Result<(), Error> {
        use crate::catalog::Validation;
        let mode = match validate_option(args)? {
            None => self.validation,
            Some("off") => Validation::Off,
            Some("warn") => Validation::Warn,
            Some("strict") => Validation::Strict,
            Some(_) => match self.validation {
                Validation::Off => Validation::Strict,
                m => m,
            },
        };
        crate::catalog::check_call(mode, method.as_str(), template, args, upload)
    }

    /// Without the catalogue nothing can be checked: a call asking for it is refused.
    #[cfg(not(feature = "catalog"))]
    fn validate_call(
        &self,
        _method: &Method,
        _template: &str,
        args: &Value,
        _upload: bool,
    ) -> Result<(), Error> {
        match validate_option(args)? {
            None | Some("off") => Ok(()),
            Some(_) => Err(Error::arg(
                "validate: checking a call against its documentation needs the cargo feature `catalog` of wechatpay-chain",
            )),
        }
    }

    /// [`Core::begin_with`] without the keyring check: for the certificate download, which
    /// verifies its answer with the certificates it brings.
    pub(crate) fn prepare(
        &self,
        method: Method,
        template: &str,
        args: &Value,
        upload: Option<&Media>,
    ) -> Result<Pending, Error> {
        let empty = Map::new();
        let args = match args {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                return Err(Error::arg(format!(
                    "args must be a JSON object, got {}",
                    uri::kind(other)
                )))
            }
        };
        let protocol = if template == "v2" || template.starts_with("v2/") {
            Protocol::V2
        } else {
            Protocol::V3
        };
        let relative = match protocol {
            Protocol::V2 => template
                .strip_prefix("v2")
                .unwrap_or(template)
                .trim_start_matches('/'),
            Protocol::V3 => template,
        };
        let mode = match args.get("placeholders") {
            None | Some(Value::Null) => self.placeholders,
            Some(Value::String(s)) if s == "strict" => Placeholders::Strict,
            Some(Value::String(s)) if s == "lenient" => Placeholders::Lenient,
            Some(other) => {
                return Err(Error::arg(format!(
                    "placeholders must be \"strict\" or \"lenient\", got {other}"
                )))
            }
        };
        check_keys(template, args, mode)?;
        let expanded = uri::expand(relative, args, mode)?;
        let base = match args.get("base_uri") {
            None | Some(Value::Null) => self.base.clone(),
            Some(Value::String(s)) => Base::parse(s)?,
            Some(other) => {
                return Err(Error::arg(format!(
                    "base_uri must be a string, got {}",
                    uri::kind(other)
                )))
            }
        };
        let timeout = match args.get("timeout") {
            None | Some(Value::Null) => self.timeout,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() && s < 86_400.0 => Duration::from_secs_f64(s),
                _ => return Err(Error::arg("timeout must be a positive number of seconds")),
            },
            Some(other) => {
                return Err(Error::arg(format!(
                    "timeout must be a number, got {}",
                    uri::kind(other)
                )))
            }
        };
        let mut headers = http::HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(DEFAULT_ACCEPT));
        headers.insert(USER_AGENT, self.user_agent.clone());
        let own_base = !matches!(args.get("base_uri"), None | Some(Value::Null));
        let retry = crate::RetryPolicy::for_call(self.retry.as_ref(), args)?;
        let draft = Draft {
            args,
            base,
            path: expanded,
            headers,
            limits: Limits {
                timeout,
                body_limit: self.body_limit,
            },
            retry,
            own_base,
        };
        let mut pending = match protocol {
            Protocol::V3 => self.begin_v3(method, draft, upload)?,
            Protocol::V2 if upload.is_some() => {
                return Err(Error::arg(
                    "media uploads are APIv3 calls (multipart with a signed meta)",
                ))
            }
            Protocol::V2 => self.begin_v2(method, draft)?,
        };
        pending.template = template.to_string();
        Ok(pending)
    }

    fn begin_v3(
        &self,
        method: Method,
        mut d: Draft<'_>,
        upload: Option<&Media>,
    ) -> Result<Pending, Error> {
        for k in ["xml", "security", "nonceless"] {
            if d.args.get(k).is_some_and(|v| !v.is_null()) {
                return Err(Error::arg(format!(
                    "{k} is an APIv2 option (paths under v2/): an APIv3 call takes its fields in json, or query"
                )));
            }
        }
        let (path, template_query) = match d.path.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (d.path.clone(), None),
        };
        let query = match d.args.get("query") {
            None | Some(Value::Null) => template_query.unwrap_or_default(),
            Some(Value::Object(q)) => uri::build_query(q),
            Some(Value::String(s)) => s.trim_start_matches('?').to_string(),
            Some(other) => {
                return Err(Error::arg(format!(
                    "query must be an object or a string, got {}",
                    uri::kind(other)
                )))
            }
        };
        let body: Bytes = match (d.args.get("json"), d.args.get("body"), upload) {
            (j, b, Some(media)) => {
                if j.is_some_and(|v| !v.is_null()) || b.is_some_and(|v| !v.is_null()) {
                    return Err(Error::arg(
                        "an upload carries its own body: drop json and body from the args",
                    ));
                }
                let ct = HeaderValue::from_str(&media.content_type())
                    .map_err(|_| Error::arg("the multipart boundary cannot be sent"))?;
                d.headers.insert(CONTENT_TYPE, ct);
                media.to_multipart()
            }
            (Some(j), Some(_), None) if !j.is_null() => {
                return Err(Error::arg("json and body cannot both be given"))
            }
            (Some(j), _, None) if !j.is_null() => {
                d.headers
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                serde_json::to_vec(j)
                    .map_err(|e| Error::arg(format!("json cannot be encoded: {e}")))?
                    .into()
            }
            (_, Some(Value::String(s)), None) => Bytes::from(s.clone()),
            (_, None | Some(Value::Null), None) => Bytes::new(),
            (_, Some(other), None) => {
                return Err(Error::arg(format!(
                    "body must be a string, got {}",
                    uri::kind(other)
                )))
            }
        };
        let full_path = uri::merge_path(&d.base.path, &path);
        self.apply_headers(&mut d)?;
        let mut request =
            self.build_request(method, &d.base, &full_path, &query, d.headers, body)?;
        if let Some(serial) = self.takes_serial(d.args, request.body())? {
            match request.headers().get("wechatpay-serial") {
                None => {
                    if let Ok(v) = HeaderValue::from_str(&serial) {
                        request.headers_mut().insert("wechatpay-serial", v);
                    }
                }
                Some(v) if v.as_bytes() != serial.as_bytes() => tracing::warn!(
                    encrypted_for = &*serial,
                    "the args name another Wechatpay-Serial than the key the fields were encrypted with; the args win"
                ),
                Some(_) => {}
            }
        }
        // Names the platform key the merchant expects (public-key migration, as wechatpay-go
        // and wechatpay-java do), unless the args or encrypted fields named one.
        if !request.headers().contains_key("wechatpay-serial") {
            let expected = self
                .wechatpay_serial
                .clone()
                .or_else(|| self.keyring.preferred().map(|(s, _)| s));
            if let Some(v) = expected.and_then(|s| HeaderValue::from_str(&s).ok()) {
                request.headers_mut().insert("wechatpay-serial", v);
            }
        }
        if let Some(media) = upload {
            // The platform checks the signature over the meta JSON, not the multipart bytes.
            request
                .extensions_mut()
                .insert(client_json::SignedBody(Bytes::from(
                    media.meta().to_owned(),
                )));
        }
        self.sign_v3(&mut request)?;
        Ok(Pending {
            request,
            protocol: Protocol::V3,
            secure: false,
            limits: d.limits,
            path: full_path,
            template: String::new(),
            v2_sign_type: None,
            retry: d.retry,
            own_base: d.own_base,
        })
    }

    /// Signs (or re-signs, for another attempt) an APIv3 request with a fresh nonce.
    pub(crate) fn sign_v3(&self, request: &mut http::Request<Bytes>) -> Result<(), Error> {
        let cred = self.credentials.as_ref().ok_or_else(|| {
            // The builder takes an id alone (an APIv2 client), else all three or none.
            let missing = match self.mchid {
                Some(_) => "the serial and the private key",
                None => "all three",
            };
            Error::config(format!(
                "APIv3 calls need the merchant id, its API certificate's serial and its private \
                 key ({missing} missing): set --mchid/WECHATPAY_MCHID, --serial/WECHATPAY_SERIAL \
                 and --private-key/WECHATPAY_PRIVATE_KEY (a path); in code Builder::mchid, \
                 serial and private_key, or Builder::from_env"
            ))
        })?;
        client_json::sign_request(request, cred)
    }

    /// The serial a call must name in `Wechatpay-Serial` because its JSON body carries fields
    /// made by this client's [`Encryptor`](crate::sensitive::Encryptor), if any.
    fn takes_serial(
        &self,
        args: &Map<String, Value>,
        body: &[u8],
    ) -> Result<Option<std::sync::Arc<str>>, Error> {
        if !self.sealed.in_use() {
            return Ok(None);
        }
        match args.get("json") {
            Some(j) if !j.is_null() => self.sealed.serial_for(j),
            _ if body.first().is_some_and(|b| matches!(b, b'{' | b'[')) => {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => self.sealed.serial_for(&v),
                    Err(_) => Ok(None),
                }
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn apply_headers(&self, d: &mut Draft<'_>) -> Result<(), Error> {
        if let Some(h) = object(d.args, "headers")? {
            for (name, value) in h {
                let hn = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| Error::arg(format!("{name:?} is not a valid header name")))?;
                let values = header_value(name, value)?;
                d.headers.remove(&hn);
                for v in values {
                    d.headers.append(hn.clone(), v);
                }
            }
        }
        Ok(())
    }

    pub(crate) fn build_request(
        &self,
        method: Method,
        base: &Base,
        path: &str,
        query: &str,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<http::Request<Bytes>, Error> {
        let target = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let uri: Uri = format!("{}://{}{}", base.scheme, base.authority, target)
            .parse()
            .map_err(|_| {
                Error::arg(format!(
                    "{target:?} is not a valid request target (unencoded characters in the path?)"
                ))
            })?;
        let mut request = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| Error::arg(format!("cannot build the request: {e}")))?;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Checks an answer by its protocol's rules and hands it out only when trusted.
    pub(crate) fn finish(
        &self,
        pending: &Pending,
        res: http::Response<Bytes>,
    ) -> Result<Response, Error> {
        match pending.protocol {
            Protocol::V3 => self.finish_v3(pending, res),
            Protocol::V2 => self.finish_v2(pending, res),
        }
    }

    fn finish_v3(&self, pending: &Pending, res: http::Response<Bytes>) -> Result<Response, Error> {
        let status = res.status();
        if status.is_success() {
            if !client_json::is_unsigned(&pending.path) {
                client_json::verify_response(&res, &self.keyring, formatter::timestamp())?;
            }
            return Ok(Response::new(res));
        }
        // An error answer that looks signed is checked like any other: a forged "order does
        // not exist" must not pass for the platform's. One with no `Wechatpay-*` header at all
        // is a gateway's, handed out marked unverified.
        if client_json::has_signature_headers(res.headers()) {
            client_json::verify_response(&res, &self.keyring, formatter::timestamp())?;
            return Err(Error::from_answer_as(res, true));
        }
        Err(Error::from_answer(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_read_options_and_placeholders_pass() {
        let t = "v3/orders/{out_order_no}";
        for k in OPTION_KEYS.iter().chain(&["out_order_no"]) {
            let args: Map<String, Value> = [(k.to_string(), Value::Null)].into_iter().collect();
            check_keys(t, &args, Placeholders::Strict).unwrap();
        }
        // `sink` (Guzzle's) was listed but never read; `retry` is read.
        assert!(OPTION_KEYS.contains(&"retry") && !OPTION_KEYS.contains(&"sink"));
        let e = check_keys(t, &keys(json!({"sink": "f"})), Placeholders::Strict).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("\"sink\""));
        check_keys(t, &keys(json!({"sink": "f"})), Placeholders::Lenient).unwrap();
    }

    #[test]
    fn the_validate_option_takes_booleans_and_the_three_modes() {
        let of = |v: Value| validate_option(&json!({ "validate": v }));
        assert_eq!(validate_option(&json!({})).unwrap(), None);
        assert_eq!(of(json!(false)).unwrap(), Some("off"));
        assert_eq!(of(json!(true)).unwrap(), Some("on"));
        assert_eq!(of(json!("Strict")).unwrap(), Some("strict"));
        assert_eq!(of(json!("warn")).unwrap(), Some("warn"));
        assert!(of(json!("maybe"))
            .unwrap_err()
            .to_string()
            .contains("\"warn\""));
        assert!(of(json!(1)).unwrap_err().to_string().contains("boolean"));
    }

    #[test]
    fn refusals_name_the_key_and_the_likely_fix() {
        let s = Placeholders::Strict;
        let t = "v3/pay/transactions/out-trade-no/{out_trade_no}";
        let e = check_keys(t, &keys(json!({"out_trade_num": "1"})), s).unwrap_err();
        assert!(
            e.to_string()
                .contains("did you mean the placeholder \"out_trade_no\""),
            "{e}"
        );
        let e = check_keys("v3/x", &keys(json!({"jsn": {}})), s).unwrap_err();
        assert!(
            e.to_string()
                .contains("did you mean the request option \"json\""),
            "{e}"
        );
        let e = check_keys("v3/x", &keys(json!({"appid": "wx", "amount": {}})), s).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("\"appid\", \"amount\"") && m.contains("inside \"json\""),
            "{m}"
        );
        let e = check_keys("v2/pay/micropay", &keys(json!({"appid": "wx"})), s).unwrap_err();
        assert!(e.to_string().contains("inside \"xml\""), "{e}");
    }
}
