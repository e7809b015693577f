//! APIv2, as wechatpay-php's `ClientXmlTrait`: XML bodies signed with MD5 or HMAC-SHA256
//! under the APIv2 key, some calls over mutual TLS, answers verified by their `sign`.
//!
//! Signing and verifying are pure functions over maps (like [`client_json`](crate::client_json)
//! for APIv3), so every rule is unit-testable with no network; `Core::begin_v2`/`finish_v2`
//! only wire them to the request and the answer.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use http::Method;
use serde_json::{Map, Value};

use crate::crypto::hash;
use crate::error::Error;
use crate::formatter;
use crate::request::{flag, object, Draft, Pending, Protocol};
use crate::response::Response;
use crate::transformer;
use crate::uri;
use crate::Core;

/// `Accept` of APIv2 calls, as wechatpay-php sends it.
pub const ACCEPT_V2: &str = "text/xml, text/plain, application/x-gzip";
/// `Content-Type` of APIv2 bodies.
pub const CONTENT_TYPE_V2: &str = "text/xml; charset=utf-8";

pub use crate::crypto::hash::SignType;

/// The answers the platform sends unsigned by design, as wechatpay-php's
/// `$noneSignatureRespond`, with its two bank transfer paths corrected to `/mmpaysptrans/…`.
pub const UNSIGNED_ANSWERS: &[&str] = &[
    "/mchrisk/querymchrisk",
    "/mchrisk/setmchriskcallback",
    "/mchrisk/syncmchriskresult",
    "/mmpaymkttransfers/gethbinfo",
    "/mmpaymkttransfers/gettransferinfo",
    "/mmpaymkttransfers/promotion/paywwsptrans2pocket",
    "/mmpaymkttransfers/promotion/querywwsptrans2pocket",
    "/mmpaymkttransfers/promotion/transfers",
    "/mmpaymkttransfers/sendgroupredpack",
    "/mmpaymkttransfers/sendminiprogramhb",
    "/mmpaymkttransfers/sendredpack",
    "/mmpaysptrans/pay_bank",
    "/mmpaysptrans/query_bank",
    "/papay/entrustweb",
    "/papay/h5entrustweb",
    "/papay/partner/entrustweb",
    "/papay/partner/h5entrustweb",
    "/pay/downloadbill",
    "/pay/downloadfundflow",
    "/payitil/report",
    "/risk/getpublickey",
    "/risk/getviolation",
    "/sandboxnew/pay/downloadbill",
    "/sandboxnew/pay/getsignkey",
    "/secapi/mch/submchmanage",
    "/xdc/apiv2getsignkey/sign/getsignkey",
];

/// Whether the answer to `path` comes unsigned by design. The path may carry a query and a
/// base path before the documented one (`/sandboxnew/pay/downloadbill` under a base of
/// `…/sandboxnew/` still matches `/pay/downloadbill`).
pub fn is_unsigned(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or(path);
    // `…/orderquery;/pay/downloadbill` and dot segments name another API than they end with.
    if !crate::client_json::plain_path(p) {
        return false;
    }
    UNSIGNED_ANSWERS.iter().any(|u| {
        p == *u
            || p.strip_suffix(u)
                .is_some_and(|prefix| prefix.starts_with('/') && !prefix.ends_with('/'))
    })
}

/// The fields a data map signs, sorted by key in byte order: scalars only (null, objects and
/// lists have no text of their own and are left out, as the platform's readers see them).
pub fn signed_pairs(data: &Map<String, Value>) -> Vec<(&str, Cow<'_, str>)> {
    let mut pairs: Vec<(&str, Cow<'_, str>)> = data
        .iter()
        .filter_map(|(k, v)| transformer::scalar(v).map(|s| (k.as_str(), s)))
        .collect();
    formatter::ksort(&mut pairs);
    pairs
}

/// The string to sign: sorted `k=v` joined by `&`, without `sign` or empty values.
pub fn string_to_sign(data: &Map<String, Value>) -> String {
    formatter::query_string_like(&signed_pairs(data))
}

/// Signs `message` (a [`string_to_sign`]) under the APIv2 key: uppercase hex of
/// MD5(`message&key=secret`) or HMAC-SHA256 keyed by the secret over the same text.
///
/// ```
/// use wechatpay_chain::client_xml::{sign_message, SignType};
/// let s = "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA";
/// assert_eq!(sign_message(SignType::Md5, s, "192006250b4c09247ec02edce69f6a2d").unwrap(),
///            "9A0A8659F005D6984697E2CA0A9CF3B7");
/// ```
pub fn sign_message(kind: SignType, message: &str, secret: &str) -> Result<String, Error> {
    // An empty key would make a plain MD5 (or a keyless HMAC) anyone can compute: refused, so
    // nothing is ever signed or verified without the key.
    if secret.is_empty() {
        return Err(empty_key());
    }
    // `Crypto\Hash` appends `&key=SECRET` itself, as the APIv2 rules want.
    let hex = match kind {
        SignType::Md5 => hash::md5(message, secret, false)?,
        SignType::HmacSha256 => hash::hmac(message, secret, "sha256")?,
    };
    Ok(hex.to_ascii_uppercase())
}

fn empty_key() -> Error {
    Error::config(
        "the APIv2 key is empty: set it (Builder::secret, --secret, WECHATPAY_SECRET) to the key of the merchant platform; nothing is signed or verified without it",
    )
}

/// The `sign` of a data map.
pub fn sign(data: &Map<String, Value>, secret: &str, kind: SignType) -> Result<String, Error> {
    sign_message(kind, &string_to_sign(data), secret)
}

/// Checks the `sign` of a received map (an answer or a notification) in constant time, made
/// with `expected`: an answer is signed with its request's `sign_type`, so a sign of the other
/// type (an MD5 sign where HMAC-SHA256 was asked) is refused, never tried. Missing, wrong or
/// of the other type: [`Error::Verification`]. An empty key is [`Error::Config`].
pub fn verify(data: &Map<String, Value>, secret: &str, expected: SignType) -> Result<(), Error> {
    if secret.is_empty() {
        return Err(empty_key());
    }
    let given = match data.get("sign") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) | None => {
            return Err(Error::Verification("the APIv2 document has no sign".into()))
        }
        Some(_) => {
            return Err(Error::Verification(
                "the APIv2 document's sign is not a plain text field".into(),
            ))
        }
    };
    let told = SignType::of_sign(given);
    if told != expected {
        return Err(Error::Verification(format!(
            "the APIv2 document is signed with {} where {} was expected (the request's sign_type, or the type given for notifications)",
            told.as_str(),
            expected.as_str()
        )));
    }
    let calc = sign(data, secret, expected)?;
    if hash::equals(calc.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(Error::Verification(format!(
            "the APIv2 sign does not verify ({} under the APIv2 key)",
            expected.as_str()
        )))
    }
}

/// The fields of a received document that its `sign` covers, which are all it may hand out:
/// every top-level field must be text. A field with child elements (or text mixed with
/// children) has no text of its own, so the platform's string to sign cannot include it:
/// refused with [`Error::Verification`] rather than handed out unsigned. A repeated field is
/// [`Error::Decode`] (see [`transformer::fields`]).
pub fn signed_fields(map: &Map<String, Value>) -> Result<Vec<(String, String)>, Error> {
    let fields = transformer::fields(map)?;
    if let Some(k) = map.keys().find(|k| !map[k.as_str()].is_string()) {
        return Err(Error::Verification(format!(
            "the APIv2 document's field {} has child elements, which its sign does not cover",
            crate::error::one_line(k)
        )));
    }
    Ok(fields)
}

/// Prepares a request's data as wechatpay-php does: checks `mch_id` (else `mchid`, else
/// `combine_mch_id`) against the configured merchant id, adds `nonce_str` when `nonce` is
/// given and the data has none, and sets `sign` (last, or in place). Returns the signed data
/// and its sign type.
pub(crate) fn prepare(
    data: &Map<String, Value>,
    mchid: Option<&str>,
    secret: &str,
    nonce: Option<&str>,
) -> Result<(Map<String, Value>, SignType), Error> {
    if let Some(m) = mchid {
        let given = ["mch_id", "mchid", "combine_mch_id"]
            .iter()
            .find_map(|k| data.get(*k).filter(|v| !v.is_null()));
        let given_text = given.and_then(transformer::scalar);
        if given_text.as_deref() != Some(m) {
            return Err(Error::arg(format!(
                "the xml data's merchant id {:?} (mch_id, mchid or combine_mch_id) does not match the configured mchid {m:?}",
                given_text
                    .as_deref()
                    .map(crate::error::one_line)
                    .unwrap_or_default()
            )));
        }
    }
    let kind = SignType::of_data(data)?;
    let mut data = data.clone();
    if let Some(n) = nonce {
        if data.get("nonce_str").is_none() || data["nonce_str"].is_null() {
            data.insert("nonce_str".into(), Value::String(n.to_string()));
        }
    }
    let s = sign(&data, secret, kind)?;
    data.insert("sign".into(), Value::String(s));
    Ok((data, kind))
}

fn looks_like_xml(body: &[u8]) -> bool {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    body.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'<')
}

fn text<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

/// Checks an APIv2 answer to `path`, whose request was signed with `expected` (`None`: either
/// type, read off the sign's length, as wechatpay-php does; see
/// [`Builder::v2_either_sign_type`](crate::Builder::v2_either_sign_type)), and returns
/// its fields (`None`: a download that is not XML, such as a CSV or gzip bill, handed out as
/// raw bytes).
///
/// Outside [`UNSIGNED_ANSWERS`], the `sign` is checked whatever the codes say (with
/// `expected`, see [`verify`]), and only the fields it covers are handed out
/// ([`signed_fields`]); missing, wrong or of the other type is [`Error::Verification`]. The
/// one exception is what the platform sends unsigned: `return_code` other than SUCCESS with no
/// `sign` at all (a communication failure such as a signature error) is
/// [`Error::V2`] with `verified: false` and only `return_code`/`return_msg`, never a
/// business `err_code`. A verified `return_code` or `result_code` other than SUCCESS is
/// [`Error::V2`] with `verified: true`. On [`UNSIGNED_ANSWERS`] paths nothing is verified
/// and their errors say `verified: false`. What is not an APIv2 XML document is
/// [`Error::Decode`]; an empty key is [`Error::Config`].
pub(crate) fn check_answer(
    path: &str,
    body: &Bytes,
    secret: &str,
    expected: Option<SignType>,
) -> Result<Option<Vec<(String, String)>>, Error> {
    if secret.is_empty() {
        return Err(empty_key());
    }
    let unsigned = is_unsigned(path);
    if !looks_like_xml(body) {
        if unsigned {
            return Ok(None);
        }
        return Err(Error::decode(
            "the APIv2 answer is not XML (and so carries no sign)",
        ));
    }
    let map = transformer::to_array(body)?;
    let return_code = text(&map, "return_code")
        .ok_or_else(|| Error::decode("the answer has no return_code: it is not an APIv2 answer"))?;
    let failed =
        return_code != "SUCCESS" || text(&map, "result_code").is_some_and(|r| r != "SUCCESS");
    let v2_error = |verified: bool, business: bool| {
        let opt = |k: &str| text(&map, k).map(str::to_string);
        let biz = |k: &str| if business { opt(k) } else { None };
        Error::V2 {
            return_code: return_code.to_string(),
            return_msg: opt("return_msg"),
            result_code: biz("result_code"),
            err_code: biz("err_code"),
            err_code_des: biz("err_code_des"),
            verified,
            body: body.clone(),
        }
    };
    if unsigned {
        let fields = transformer::fields(&map)?;
        if failed {
            return Err(v2_error(false, true));
        }
        return Ok(Some(fields));
    }
    if return_code != "SUCCESS" && !map.contains_key("sign") {
        // The platform's own communication failures come unsigned: passed on as such, without
        // the business fields an unsigned document could make up.
        return Err(v2_error(false, false));
    }
    let fields = signed_fields(&map)?;
    let expected = expected.unwrap_or_else(|| SignType::of_sign(text(&map, "sign").unwrap_or("")));
    verify(&map, secret, expected)?;
    if failed {
        return Err(v2_error(true, true));
    }
    Ok(Some(fields))
}

/// The query string of a GET: the signed fields, URL-encoded (flat fields only).
fn query_of(data: &Map<String, Value>) -> Result<String, Error> {
    let mut flat = Map::new();
    for (k, v) in data {
        match v {
            Value::Object(_) | Value::Array(_) => {
                return Err(Error::arg(format!(
                    "query field {k} is an {}: an APIv2 query carries flat fields only",
                    uri::kind(v)
                )))
            }
            Value::Null => {}
            other => {
                let s = transformer::scalar(other).unwrap_or_default();
                flat.insert(k.clone(), Value::String(s.into_owned()));
            }
        }
    }
    Ok(uri::build_query(&flat))
}

impl Core {
    pub(crate) fn begin_v2(&self, method: Method, mut d: Draft<'_>) -> Result<Pending, Error> {
        let secret = self.secret.as_deref().ok_or_else(|| {
            Error::config(
                "APIv2 calls need the APIv2 key: set --secret/WECHATPAY_SECRET (in code \
                 Builder::secret, or Builder::from_env)",
            )
        })?;
        let nonceless = flag(d.args, "nonceless")?;
        let secure = flag(d.args, "security")?;
        if secure && !self.transport.has_identity() {
            return Err(Error::config(
                "this call needs the merchant certificate (security: true): set \
                 --merchant-cert/WECHATPAY_MERCHANT_CERT and --merchant-key/WECHATPAY_MERCHANT_KEY \
                 (paths; in code Builder::merchant_identity, or Builder::from_env)",
            ));
        }
        for k in ["json", "body"] {
            if d.args.get(k).is_some_and(|v| !v.is_null()) {
                return Err(Error::arg(format!(
                    "an APIv2 call takes its fields in xml (or query for GET), not {k}"
                )));
            }
        }
        let is_get = method == Method::GET;
        let xml = object(d.args, "xml")?;
        let query = match d.args.get("query") {
            None | Some(Value::Null) => None,
            Some(Value::Object(q)) => Some(q),
            Some(Value::String(_)) if !is_get => None,
            Some(other) => {
                return Err(Error::arg(format!(
                    "query must be an object for an APIv2 call, got {}",
                    uri::kind(other)
                )))
            }
        };
        let (path, template_query) = match d.path.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (d.path.clone(), String::new()),
        };
        let empty = Map::new();
        let data = if is_get {
            if xml.is_some() && query.is_some() {
                return Err(Error::arg(
                    "a GET APIv2 call takes its fields in query or xml, not both",
                ));
            }
            query.or(xml).unwrap_or(&empty)
        } else {
            xml.unwrap_or(&empty)
        };
        let nonce = (!nonceless).then(|| formatter::nonce(32));
        let (signed, kind) = prepare(data, self.mchid.as_deref(), secret, nonce.as_deref())?;
        let mut extra = Vec::new();
        if !template_query.is_empty() {
            extra.push(template_query);
        }
        let body = if is_get {
            extra.push(query_of(&signed)?);
            Bytes::new()
        } else {
            match d.args.get("query") {
                Some(Value::Object(q)) => extra.push(uri::build_query(q)),
                Some(Value::String(s)) => extra.push(s.trim_start_matches('?').to_string()),
                _ => {}
            }
            d.headers
                .insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_V2));
            Bytes::from(transformer::to_xml(&signed)?)
        };
        d.headers
            .insert(ACCEPT, HeaderValue::from_static(ACCEPT_V2));
        let query: String = extra
            .into_iter()
            .filter(|q| !q.is_empty())
            .collect::<Vec<_>>()
            .join("&");
        let full_path = uri::merge_path(&d.base.path, &path);
        self.apply_headers(&mut d)?;
        let request = self.build_request(method, &d.base, &full_path, &query, d.headers, body)?;
        Ok(Pending {
            request,
            protocol: Protocol::V2,
            secure,
            limits: d.limits,
            path: full_path,
            template: String::new(),
            v2_sign_type: Some(kind),
            retry: d.retry,
            own_base: d.own_base,
        })
    }

    pub(crate) fn finish_v2(
        &self,
        pending: &Pending,
        res: http::Response<Bytes>,
    ) -> Result<Response, Error> {
        if !res.status().is_success() {
            return Err(Error::from_answer(res));
        }
        let secret = self.secret.as_deref().unwrap_or_default();
        // Always set by `begin_v2`; without it no sign type could be trusted.
        let expected = pending.v2_sign_type.ok_or_else(|| {
            Error::Verification("the APIv2 request's sign type is unknown".into())
        })?;
        let expected = (!self.v2_either_sign_type).then_some(expected);
        let fields =
            check_answer(&pending.path, res.body(), secret, expected).inspect_err(|e| {
                if matches!(e, Error::Verification(_)) {
                    tracing::debug!(
                        path = %pending.path,
                        request_sign_type = pending.v2_sign_type.map(SignType::as_str),
                        "APIv2 answer failed verification"
                    );
                }
            })?;
        let mut response = Response::new(res);
        response.xml = fields;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    fn vector() -> Map<String, Value> {
        json!({
            "appid": "wxd930ea5d5a258f4f",
            "mch_id": "10000100",
            "device_info": "1000",
            "body": "test",
            "nonce_str": "ibuaiVcKdpRxkhJA",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn fixed_vectors() {
        let data = vector();
        assert_eq!(
            string_to_sign(&data),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA"
        );
        assert_eq!(
            sign(&data, KEY, SignType::Md5).unwrap(),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign(&data, KEY, SignType::HmacSha256).unwrap(),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn string_to_sign_skips_sign_null_empty_and_nested_and_sorts_by_bytes() {
        let data = json!({
            "b": "2", "a_b": "x", "ab": "y", "a": "1", "B": "u", "10": "t", "9": "n",
            "sign": "S", "empty": "", "null": null, "obj": {"k": "v"}, "list": [1],
            "num": 5, "flag": true,
        });
        assert_eq!(
            string_to_sign(data.as_object().unwrap()),
            "10=t&9=n&B=u&a=1&a_b=x&ab=y&b=2&flag=true&num=5"
        );
    }

    #[test]
    fn prepare_adds_nonce_and_sign_and_checks_mchid() {
        let mut data = vector();
        data.remove("nonce_str");
        data.insert("sign_type".into(), json!("HMAC-SHA256"));
        let (signed, kind) = prepare(&data, Some("10000100"), KEY, Some("N")).unwrap();
        assert_eq!(kind, SignType::HmacSha256);
        let keys: Vec<&str> = signed.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "appid",
                "mch_id",
                "device_info",
                "body",
                "sign_type",
                "nonce_str",
                "sign"
            ]
        );
        assert_eq!(signed["nonce_str"], "N");
        assert_eq!(signed["sign"].as_str().unwrap().len(), 64);
        verify(&signed, KEY, SignType::HmacSha256).unwrap();

        // nonceless: nothing added; a nonce_str given is kept
        let (signed, kind) = prepare(&vector(), None, KEY, None).unwrap();
        assert_eq!(kind, SignType::Md5);
        assert_eq!(signed["sign"], "9A0A8659F005D6984697E2CA0A9CF3B7");
        let (signed, _) = prepare(&vector(), None, KEY, Some("OTHER")).unwrap();
        assert_eq!(signed["nonce_str"], "ibuaiVcKdpRxkhJA");

        // mchid: mch_id, else mchid, else combine_mch_id; numbers compare as text
        for field in ["mch_id", "mchid", "combine_mch_id"] {
            let d = json!({ field: "10000100" });
            assert!(prepare(d.as_object().unwrap(), Some("10000100"), KEY, None).is_ok());
        }
        let d = json!({"mch_id": 10000100});
        assert!(prepare(d.as_object().unwrap(), Some("10000100"), KEY, None).is_ok());
        let d = json!({"mch_id": "999", "mchid": "10000100"});
        match prepare(d.as_object().unwrap(), Some("10000100"), KEY, None) {
            Err(Error::InvalidArgument(m)) => {
                assert!(m.contains("\"999\"") && m.contains("\"10000100\""), "{m}")
            }
            other => panic!("{other:?}"),
        }
        let d = json!({"appid": "x"});
        assert!(matches!(
            prepare(d.as_object().unwrap(), Some("10000100"), KEY, None),
            Err(Error::InvalidArgument(_))
        ));
        let d = json!({"sign_type": "SHA1"});
        assert!(matches!(
            prepare(d.as_object().unwrap(), None, KEY, None),
            Err(Error::InvalidArgument(_))
        ));
    }

    const MD5_SIGN: &str = "9A0A8659F005D6984697E2CA0A9CF3B7";
    const HMAC_SIGN: &str = "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6";

    #[test]
    fn verify_checks_the_expected_type_and_refuses_missing_or_wrong() {
        use SignType::{HmacSha256, Md5};
        let mut data = vector();
        data.insert("sign".into(), json!(MD5_SIGN));
        verify(&data, KEY, Md5).unwrap();
        data.insert("sign".into(), json!(HMAC_SIGN));
        verify(&data, KEY, HmacSha256).unwrap();
        assert!(matches!(
            verify(&data, "wrong", HmacSha256),
            Err(Error::Verification(_))
        ));
        data.insert("sign".into(), json!("9a0a8659f005d6984697e2ca0a9cf3b7"));
        assert!(matches!(
            verify(&data, KEY, Md5),
            Err(Error::Verification(_))
        ));
        data.insert("sign".into(), json!(""));
        assert!(matches!(
            verify(&data, KEY, Md5),
            Err(Error::Verification(_))
        ));
        data.remove("sign");
        assert!(matches!(
            verify(&data, KEY, Md5),
            Err(Error::Verification(_))
        ));
        data.insert("sign".into(), json!({"x": "1"}));
        assert!(matches!(
            verify(&data, KEY, Md5),
            Err(Error::Verification(_))
        ));
    }

    #[test]
    fn a_valid_sign_of_the_other_type_is_refused() {
        let mut data = vector();
        data.insert("sign".into(), json!(MD5_SIGN));
        match verify(&data, KEY, SignType::HmacSha256) {
            Err(Error::Verification(m)) => {
                assert!(m.contains("MD5") && m.contains("HMAC-SHA256"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        data.insert("sign".into(), json!(HMAC_SIGN));
        assert!(matches!(
            verify(&data, KEY, SignType::Md5),
            Err(Error::Verification(_))
        ));
    }

    #[test]
    fn an_empty_key_never_signs_or_verifies() {
        // What a keyless MD5/HMAC would be: anyone can compute it.
        let mut data = vector();
        let keyless = hash::md5(string_to_sign(&data), "", false)
            .unwrap()
            .to_ascii_uppercase();
        data.insert("sign".into(), json!(keyless));
        assert!(matches!(
            verify(&data, "", SignType::Md5),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            sign(&vector(), "", SignType::HmacSha256),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            prepare(&vector(), None, "", None),
            Err(Error::Config { .. })
        ));
        let body = Bytes::from(
            transformer::to_xml(
                json!({"return_code": "SUCCESS", "result_code": "SUCCESS", "x": "1"})
                    .as_object()
                    .unwrap(),
            )
            .unwrap(),
        );
        let mut m = transformer::to_array(&body).unwrap();
        let keyless = hash::md5(string_to_sign(&m), "", false)
            .unwrap()
            .to_ascii_uppercase();
        m.insert("sign".into(), json!(keyless));
        let body = Bytes::from(transformer::to_xml(&m).unwrap());
        match check_answer("/pay/orderquery", &body, "", Some(SignType::Md5)) {
            Err(Error::Config { message: msg, .. }) => {
                assert!(msg.contains("Builder::secret"), "{msg}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsigned_list_has_the_fixed_bank_paths() {
        for p in [
            "/mmpaysptrans/pay_bank",
            "/mmpaysptrans/query_bank",
            "/pay/downloadbill",
            "/pay/downloadbill?x=1",
            "/sandboxnew/pay/downloadbill",
            "/prefix/risk/getpublickey",
            "/mmpaymkttransfers/gethbinfo",
        ] {
            assert!(is_unsigned(p), "{p}");
        }
        for p in [
            "/mmpaymkttransfers/pay_bank",
            "/mmpaymkttransfers/query_bank",
            "/pay/orderquery",
            "/pay/downloadbillx",
            "/xpay/downloadbill",
            "pay/downloadbill",
            "/",
        ] {
            assert!(!is_unsigned(p), "{p}");
        }
    }

    fn answer(fields: Value, secret: &str, kind: Option<SignType>) -> Bytes {
        let mut m = fields.as_object().unwrap().clone();
        if let Some(k) = kind {
            let s = sign(&m, secret, k).unwrap();
            m.insert("sign".into(), json!(s));
        }
        Bytes::from(transformer::to_xml(&m).unwrap())
    }

    #[test]
    fn check_answer_rules() {
        let ok = json!({"return_code": "SUCCESS", "result_code": "SUCCESS", "x": "1"});
        for kind in [SignType::Md5, SignType::HmacSha256] {
            let f = check_answer(
                "/pay/orderquery",
                &answer(ok.clone(), KEY, Some(kind)),
                KEY,
                Some(kind),
            )
            .unwrap()
            .unwrap();
            assert_eq!(f[2], ("x".to_string(), "1".to_string()));
        }
        // missing sign, wrong key
        let unsigned = answer(ok.clone(), KEY, None);
        assert!(matches!(
            check_answer("/pay/orderquery", &unsigned, KEY, Some(SignType::Md5)),
            Err(Error::Verification(_))
        ));
        assert!(matches!(
            check_answer(
                "/pay/orderquery",
                &answer(ok.clone(), "other", Some(SignType::Md5)),
                KEY,
                Some(SignType::Md5)
            ),
            Err(Error::Verification(_))
        ));
        // exempt paths pass unsigned
        assert!(check_answer(
            "/mmpaysptrans/query_bank",
            &unsigned,
            KEY,
            Some(SignType::Md5)
        )
        .unwrap()
        .is_some());
        // FAIL at either level
        let fail = answer(
            json!({"return_code": "FAIL", "return_msg": "签名错误"}),
            KEY,
            None,
        );
        match check_answer("/pay/orderquery", &fail, KEY, Some(SignType::Md5)) {
            Err(e @ Error::V2 { .. }) => {
                assert_eq!(e.code(), Some("FAIL"));
                assert!(e.to_string().contains("签名错误"));
            }
            other => panic!("{other:?}"),
        }
        let biz = answer(
            json!({"return_code": "SUCCESS", "result_code": "FAIL", "err_code": "ORDERNOTEXIST", "err_code_des": "no"}),
            KEY,
            Some(SignType::Md5),
        );
        match check_answer("/pay/orderquery", &biz, KEY, Some(SignType::Md5)) {
            Err(e @ Error::V2 { .. }) => assert_eq!(e.code(), Some("ORDERNOTEXIST")),
            other => panic!("{other:?}"),
        }
        // bills: raw bytes on exempt paths only
        let csv = Bytes::from_static("交易时间,公众账号ID\n`2024-01-01,`wx1\n".as_bytes());
        assert_eq!(
            check_answer("/pay/downloadbill", &csv, KEY, Some(SignType::Md5)).unwrap(),
            None
        );
        let gz = Bytes::from_static(b"\x1f\x8b\x08\x00\x00\x00\x00\x00");
        assert_eq!(
            check_answer("/pay/downloadfundflow", &gz, KEY, Some(SignType::Md5)).unwrap(),
            None
        );
        assert!(matches!(
            check_answer("/pay/orderquery", &csv, KEY, Some(SignType::Md5)),
            Err(Error::Decode { .. })
        ));
        // not an APIv2 answer
        assert!(matches!(
            check_answer(
                "/pay/orderquery",
                &Bytes::from_static(b"<xml><a>1</a></xml>"),
                KEY,
                Some(SignType::Md5)
            ),
            Err(Error::Decode { .. })
        ));
    }
    /// A signed answer of `fields` with `extra` inserted raw before `</xml>`.
    fn injected(fields: Value, kind: SignType, extra: &str) -> Bytes {
        let xml = String::from_utf8(answer(fields, KEY, Some(kind)).to_vec()).unwrap();
        Bytes::from(xml.replace("</xml>", &format!("{extra}</xml>")))
    }

    #[test]
    fn only_what_the_sign_covers_is_handed_out() {
        let ok = json!({"return_code": "SUCCESS", "result_code": "SUCCESS", "total_fee": "1"});
        let check = |b: &Bytes| check_answer("/pay/orderquery", b, KEY, Some(SignType::Md5));
        for extra in [
            "<coupon_fee><forged>9999</forged></coupon_fee>",
            "<coupon_fee>1<forged>9999</forged></coupon_fee>",
            "<coupon_fee><![CDATA[1]]><forged>9999</forged></coupon_fee>",
        ] {
            match check(&injected(ok.clone(), SignType::Md5, extra)) {
                Err(Error::Verification(m)) => assert!(m.contains("coupon_fee"), "{m}"),
                other => panic!("{extra}: {other:?}"),
            }
        }
        // a repeated field: which one was signed is ambiguous
        assert!(matches!(
            check(&injected(
                ok.clone(),
                SignType::Md5,
                "<total_fee>9999</total_fee>"
            )),
            Err(Error::Decode { .. })
        ));
        // text split by CDATA or a comment is one value, signed and handed out alike
        let split = Bytes::from(
            String::from_utf8(answer(ok.clone(), KEY, Some(SignType::Md5)).to_vec())
                .unwrap()
                .replace(
                    "<total_fee>1</total_fee>",
                    "<total_fee><![CDATA[]]>1<!-- c --></total_fee>",
                ),
        );
        let f = check(&split).unwrap().unwrap();
        assert!(f.contains(&("total_fee".to_string(), "1".to_string())));
        let split = Bytes::from(
            String::from_utf8(answer(ok.clone(), KEY, Some(SignType::Md5)).to_vec())
                .unwrap()
                .replace(
                    "<total_fee>1</total_fee>",
                    "<total_fee>1<![CDATA[0]]></total_fee>",
                ),
        );
        assert!(matches!(check(&split), Err(Error::Verification(_))));
        // attributes are never handed out
        let attr = Bytes::from(
            String::from_utf8(answer(ok.clone(), KEY, Some(SignType::Md5)).to_vec())
                .unwrap()
                .replace("<total_fee>", "<total_fee forged=\"9999\">"),
        );
        let f = check(&attr).unwrap().unwrap();
        assert!(!format!("{f:?}").contains("9999"), "{f:?}");
        // unsigned-by-design paths keep their nested documents (nothing is signed there)
        let hb = injected(
            ok,
            SignType::Md5,
            "<hblist><hbinfo><amount>1</amount></hbinfo></hblist>",
        );
        assert!(check_answer(
            "/mmpaymkttransfers/gethbinfo",
            &hb,
            KEY,
            Some(SignType::Md5)
        )
        .is_ok());
    }

    #[test]
    fn error_answers_are_verified_and_only_unsigned_return_code_fail_passes_as_such() {
        let check = |b: &Bytes| check_answer("/pay/orderquery", b, KEY, Some(SignType::Md5));
        let biz = json!({"return_code": "SUCCESS", "result_code": "FAIL",
                         "err_code": "ORDERNOTEXIST", "err_code_des": "no"});
        // a business error, unsigned or badly signed: forged until shown otherwise
        assert!(matches!(
            check(&answer(biz.clone(), KEY, None)),
            Err(Error::Verification(_))
        ));
        assert!(matches!(
            check(&answer(biz.clone(), "forger", Some(SignType::Md5))),
            Err(Error::Verification(_))
        ));
        match check(&answer(biz, KEY, Some(SignType::Md5))) {
            Err(e @ Error::V2 { verified: true, .. }) => {
                assert_eq!(e.code(), Some("ORDERNOTEXIST"));
                assert!(!e.to_string().contains("not authenticated"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // return_code FAIL without a sign is the platform's unsigned communication failure:
        // passed on as unauthenticated, without the business codes it could make up
        let fail = json!({"return_code": "FAIL", "return_msg": "签名错误",
                          "result_code": "FAIL", "err_code": "ORDERNOTEXIST"});
        match check(&answer(fail.clone(), KEY, None)) {
            Err(
                e @ Error::V2 {
                    verified: false,
                    result_code: None,
                    err_code: None,
                    ..
                },
            ) => {
                assert_eq!(e.code(), Some("FAIL"));
                assert!(e.to_string().contains("not authenticated"), "{e}");
            }
            other => panic!("{other:?}"),
        }
        // … but a sign it carries is checked
        assert!(matches!(
            check(&answer(fail.clone(), "forger", Some(SignType::Md5))),
            Err(Error::Verification(_))
        ));
        assert!(matches!(
            check(&answer(fail, KEY, Some(SignType::Md5))),
            Err(Error::V2 { verified: true, .. })
        ));
        // unsigned-by-design paths: errors say they are not verified
        let biz = json!({"return_code": "SUCCESS", "result_code": "FAIL", "err_code": "NOTENOUGH"});
        match check_answer(
            "/mmpaymkttransfers/sendredpack",
            &answer(biz, KEY, None),
            KEY,
            Some(SignType::Md5),
        ) {
            Err(
                e @ Error::V2 {
                    verified: false, ..
                },
            ) => assert_eq!(e.code(), Some("NOTENOUGH")),
            other => panic!("{other:?}"),
        }
    }
}
