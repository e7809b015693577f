//! What every APIv2 call goes through, and a documented answer for each APIv2 operation of the
//! catalogue the emulator does not model (`v2` models `pay/micropay`, `pay/orderquery`,
//! `secapi/pay/refund` and `pay/refundquery`).
//!
//! The checks come in the platform's order: the merchant certificate for the catalogue's
//! `security` operations (mutual TLS, before the body is read), the document (XML, or the
//! query of a GET), the `sign` in the request's `sign_type`, the merchant id the operation
//! documents (`mch_id`, `mchid` or `combine_mch_id`), then the catalogue's request fields
//! (required, types, enumerations, through `Operation::validate_at`). A refusal before the
//! sign is checked is `return_code` FAIL, unsigned; a field refused is `PARAM_ERROR`, signed.
//!
//! The answer is XML holding every documented required field (the request's value where it
//! names the same field, else a value of the field's type and enumeration, made by the APIv3
//! documented answers' generator), `return_code` and `result_code` SUCCESS, signed in the
//! request's sign type unless the catalogue marks the answer unsigned (red packets,
//! transfers …). Bills are the CSV of the day's payments and refunds, the same as the APIv3
//! bills (gzip when asked); browser pages (`papay/entrustweb`, `appauth/authindex`) a small
//! HTML page; `appauth/getaccesstoken` JSON, as documented.
//!
//! Same request, same answer: generated values derive from a SHA-256 of the method, the path
//! and the request's fields without `nonce_str`, `sign` and `sign_type` (so both sign types
//! see the same fields).

use crate::http::merchants::with_signer;
use std::sync::Arc;

use http::Method;
use serde_json::{Map, Value};
use wechatpay_chain::catalog::{self, Field, FindingKind, Operation, Protocol, Type};
use wechatpay_chain::client_xml::{self, SignType};
use wechatpay_chain::crypto::hash::md5_hex;
use wechatpay_chain::{formatter, transformer};

use crate::documented::Gen;
use crate::flows::bills;
use crate::flows::v2::xml::{business, fail, sealed, text};
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::state::shared::Shared;

/// A refusal: the answer, and why (for the request record).
pub(crate) type Refused = (Answer, Option<String>);

/// The names a request gives the merchant's id by.
const MERCHANT_FIELDS: [&str; 3] = ["mch_id", "mchid", "combine_mch_id"];

/// The answer's protocol fields, which are set here rather than generated.
const PROTOCOL_FIELDS: [&str; 7] = [
    "return_code",
    "return_msg",
    "result_code",
    "err_code",
    "err_code_des",
    "nonce_str",
    "sign",
];

/// The catalogue's APIv2 operation on the request's method and path (which the client sends
/// without its `v2/`).
pub(crate) fn operation(req: &Req) -> Option<&'static Operation> {
    let path = req.target.split(['?', '#']).next().unwrap_or("");
    let op = catalog::find(req.method.as_str(), &format!("v2{path}"))?;
    (op.protocol == Protocol::V2).then_some(op)
}

/// A request that passed [`admit`]: its sign type, its fields and, for a multipart upload,
/// the file (`media`), which the sign does not cover.
pub(crate) struct Admitted {
    /// The merchant the request names and whose APIv2 key signed it.
    pub mchid: String,
    pub kind: SignType,
    pub data: Map<String, Value>,
    pub media: Option<bytes::Bytes>,
}

/// The request's fields and an upload's file.
type Data = (Map<String, Value>, Option<bytes::Bytes>);

/// The request's fields: the XML document, the query of a GET, or the parts of a multipart
/// upload (`secapi/mch/uploadmedia`: text parts as fields, the `media` part apart).
fn data_of(req: &Req, op: &Operation) -> Result<Data, Refused> {
    if req.method == Method::GET {
        let mut m = Map::new();
        for (k, v) in &req.query {
            m.entry(k.clone())
                .or_insert_with(|| Value::String(v.clone()));
        }
        return Ok((m, None));
    }
    if op.request.iter().any(|f| f.name == "body") {
        return multipart(req).map_err(|why| (fail("multipart格式错误"), Some(why)));
    }
    transformer::to_array(&req.body)
        .map(|m| (m, None))
        .map_err(|e| {
            (
                fail("XML格式错误"),
                Some(format!("not an APIv2 XML document: {e}")),
            )
        })
}

/// A `multipart/form-data` body's text parts, and its `media` part.
fn multipart(req: &Req) -> Result<Data, String> {
    use futures_util::FutureExt;
    let ct = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary =
        multer::parse_boundary(ct).map_err(|e| format!("not multipart/form-data: {e}"))?;
    let body = req.body.clone();
    let stream =
        futures_util::stream::once(std::future::ready(Ok::<_, std::convert::Infallible>(body)));
    let mut parts = multer::Multipart::new(stream, boundary);
    let (mut fields, mut media) = (Map::new(), None);
    // the whole body is in memory: every step is ready at once
    let whole = || "the multipart body is not whole".to_string();
    while let Some(field) = parts
        .next_field()
        .now_or_never()
        .ok_or_else(whole)?
        .map_err(|e| e.to_string())?
    {
        let name = field.name().unwrap_or_default().to_string();
        let data = field
            .bytes()
            .now_or_never()
            .ok_or_else(whole)?
            .map_err(|e| e.to_string())?;
        if name == "media" {
            media = Some(data);
        } else {
            let text = String::from_utf8(data.to_vec())
                .map_err(|_| format!("part {name} is not UTF-8"))?;
            fields.insert(name, Value::String(text));
        }
    }
    Ok((fields, media))
}

/// The checks before an operation runs: the certificate when `op` is a `security` one, the
/// document, the sign in the request's sign type, the merchant id the operation documents.
/// The request's sign type and fields, or the refusal.
pub(crate) fn admit(shared: &Shared, req: &Req, op: &Operation) -> Result<Admitted, Refused> {
    // The certificate comes first: the platform checks it in the TLS layer, before the body.
    if op.security {
        if let Err(why) = req.client.require(&shared.settings.mchid) {
            return Err((fail(&format!("证书错误 ({why})")), Some(why)));
        }
    }
    let (data, media) = data_of(req, op)?;
    let kind = SignType::of_data(&data)
        .map_err(|_| (fail("sign_type参数错误"), Some("unknown sign_type".into())))?;
    // The merchant the request names (`mch_id` …), when it is one of the sandbox's: its
    // APIv2 key checks the sign; else the first merchant's, whose number it must then be.
    let named = merchant_field(op)
        .map(|f| text(&data, f))
        .filter(|m| shared.settings.merchant_key_of(m).is_some());
    let mchid = named.unwrap_or(&shared.settings.mchid).to_string();
    // As the platform: the request's sign is checked with the type its sign_type names.
    if let Err(e) = client_xml::verify(&data, shared.settings.apiv2_key_of(&mchid), kind) {
        return Err((fail("签名错误"), Some(e.to_string())));
    }
    if let Some(field) = merchant_field(op) {
        if text(&data, field) != mchid {
            return Err((
                fail(&format!("{field}参数格式错误")),
                Some(format!("{field} is not the merchant's")),
            ));
        }
    }
    // the certificate is the merchant's own (the sandbox issues the first merchant's only)
    if op.security && mchid != shared.settings.mchid {
        if let Err(why) = req.client.require(&mchid) {
            return Err((fail(&format!("证书错误 ({why})")), Some(why)));
        }
    }
    Ok(Admitted {
        mchid,
        kind,
        data,
        media,
    })
}

/// The field the operation names the calling merchant by.
fn merchant_field(op: &Operation) -> Option<&'static str> {
    let body = op
        .request
        .iter()
        .find(|f| f.name == "xml" || f.name == "query")?;
    MERCHANT_FIELDS
        .into_iter()
        .find(|m| body.children.iter().any(|f| f.name == *m))
}

/// The first thing the catalogue refuses in the request's fields (a required field missing, a
/// value of the wrong type or outside its enumeration), as `err_code_des`.
pub(crate) fn refusal(op: &Operation, req: &Req, data: &Map<String, Value>) -> Option<String> {
    let path = req.target.split(['?', '#']).next().unwrap_or("");
    let body = if req.method == Method::GET {
        "query"
    } else {
        "xml"
    };
    let mut args = Map::new();
    args.insert(body.into(), Value::Object(data.clone()));
    let findings = op.validate_at(&format!("v2{path}"), &Value::Object(args));
    let prefix = format!("/{body}/");
    let f = findings.iter().find(|f| {
        matches!(
            f.kind,
            FindingKind::Missing | FindingKind::WrongType | FindingKind::NotInEnumeration
        ) && f.pointer.starts_with(&prefix)
    })?;
    let field = &f.pointer[prefix.len()..];
    Some(match f.kind {
        FindingKind::Missing => format!("缺少参数{field} (missing {field}: {})", f.expected),
        _ => format!("{field}参数错误 ({field}: expected {})", f.expected),
    })
}

/// Answers an APIv2 request the emulator does not model, or `None` when the catalogue has no
/// APIv2 operation on its method and path (the caller answers 404).
pub(crate) fn handle(shared: &Arc<Shared>, req: &Req) -> Option<Refused> {
    let op = operation(req)?;
    let Admitted {
        mchid,
        kind,
        data,
        media,
    } = match admit(shared, req, op) {
        Ok(a) => a,
        Err(r) => return Some(r),
    };
    with_signer(mchid, || admitted(shared, req, op, kind, &data, media))
}

/// [`handle`] of a request [`admit`] let through, as its merchant.
fn admitted(
    shared: &Arc<Shared>,
    req: &Req,
    op: &Operation,
    kind: SignType,
    data: &Map<String, Value>,
    media: Option<bytes::Bytes>,
) -> Option<Refused> {
    let data = data.clone();
    let refused = refusal(op, req, &data).or_else(|| upload_refusal(op, &data, media.as_deref()));
    if let Some(des) = refused {
        let a = if op.unsigned {
            unsigned_error(&data, "PARAM_ERROR", &des)
        } else {
            business(shared, kind, &data, "PARAM_ERROR", &des)
        };
        return Some((a, Some(des)));
    }
    Some((answer(shared, req, op, kind, &data), None))
}

/// What an upload's parts lack, by the catalogue's `body` (which the validator does not look
/// into): a required part, or a `media_hash` that is not the file's MD5.
fn upload_refusal(
    op: &Operation,
    data: &Map<String, Value>,
    media: Option<&[u8]>,
) -> Option<String> {
    let body = op.request.iter().find(|f| f.name == "body")?;
    let absent = body.children.iter().find(|f| {
        f.required
            && if f.name == "media" {
                media.is_none()
            } else {
                !data.contains_key(&f.name)
            }
    });
    if let Some(f) = absent {
        return Some(format!("缺少参数{0} (missing part {0})", f.name));
    }
    let hash = media.and_then(|m| md5_hex(m).ok()).unwrap_or_default();
    (body.children.iter().any(|f| f.name == "media_hash")
        && !text(data, "media_hash").eq_ignore_ascii_case(&hash))
    .then(|| "media_hash参数错误 (media_hash is not the MD5 of media)".to_string())
}

/// A business error of an operation whose answers are unsigned.
fn unsigned_error(data: &Map<String, Value>, code: &str, des: &str) -> Answer {
    let mut m = Map::new();
    m.insert("return_code".into(), "SUCCESS".into());
    m.insert("return_msg".into(), "OK".into());
    for k in MERCHANT_FIELDS {
        if let Some(v) = data.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("result_code".into(), "FAIL".into());
    m.insert("err_code".into(), code.into());
    m.insert("err_code_des".into(), des.into());
    Answer::xml(transformer::to_xml(&m).unwrap_or_default())
}

/// The documented answer to an admitted request.
fn answer(
    shared: &Shared,
    req: &Req,
    op: &Operation,
    kind: SignType,
    data: &Map<String, Value>,
) -> Answer {
    let path = op.template.trim_start_matches("v2/");
    if matches!(path, "pay/downloadbill" | "pay/downloadfundflow") {
        return bill(shared, path == "pay/downloadfundflow", data);
    }
    let documents = |name: &str| op.response.iter().any(|f| f.name == name);
    if op.response.is_empty() && req.method == Method::GET {
        // a page the merchant sends the user's browser to
        let mut a = Answer::file(bytes::Bytes::from(format!(
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{}</title></head>\
             <body><p>wechatpay-emulator: {}</p></body></html>",
            op.label, op.template
        )));
        a.content_type = Some("text/html; charset=utf-8");
        return a;
    }
    let fields = generated(shared, req, op, data);
    if !documents("return_code") && documents("retcode") {
        // `appauth/getaccesstoken` answers JSON
        let mut out = fields;
        out.insert("retcode".into(), Value::from(0));
        out.insert("retmsg".into(), "OK".into());
        return Answer::ok(Value::Object(out));
    }
    let mut m = Map::new();
    m.insert("return_code".into(), "SUCCESS".into());
    m.insert("return_msg".into(), "OK".into());
    if documents("result_code") || op.response.is_empty() {
        m.insert("result_code".into(), "SUCCESS".into());
    }
    for (k, v) in fields {
        m.insert(k, v);
    }
    if documents("nonce_str") || !op.unsigned {
        m.insert("nonce_str".into(), formatter::nonce(16).into());
    }
    if op.unsigned {
        return Answer::xml(transformer::to_xml(&m).unwrap_or_default());
    }
    sealed(shared, kind, m)
}

/// `pay/downloadbill` and `pay/downloadfundflow`: the day's CSV (gzip with `tar_type` GZIP),
/// or the platform's `No Bill Exist`.
fn bill(shared: &Shared, fund_flow: bool, data: &Map<String, Value>) -> Answer {
    let day = text(data, "bill_date");
    let date = match (day.len(), day.bytes().all(|b| b.is_ascii_digit())) {
        (8, true) => format!("{}-{}-{}", &day[..4], &day[4..6], &day[6..]),
        _ => return fail("invalid bill_date"),
    };
    if !bills::ended(shared, &date) {
        return fail("No Bill Exist");
    }
    let csv = if fund_flow {
        let account = text(data, "account_type").to_ascii_uppercase();
        bills::fund_flow_csv_of(shared, &date, &account)
    } else {
        bills::trade_csv_of(shared, &date, text(data, "bill_type"))
    };
    let Some(csv) = csv else {
        return fail("No Bill Exist");
    };
    if text(data, "tar_type") != "GZIP" {
        let mut a = Answer::file(bytes::Bytes::from(csv));
        a.content_type = Some("text/plain; charset=utf-8");
        return a;
    }
    match bills::gzip(csv.as_bytes()) {
        Ok(gz) => {
            let mut a = Answer::file(bytes::Bytes::from(gz));
            a.content_type = Some("application/x-gzip");
            a
        }
        Err(_) => fail("SYSTEM_ERROR"),
    }
}

/// The documented fields of the answer (the protocol's aside), in the page's order.
fn generated(
    shared: &Shared,
    req: &Req,
    op: &Operation,
    data: &Map<String, Value>,
) -> Map<String, Value> {
    let mut content = data.clone();
    for k in ["nonce_str", "sign", "sign_type"] {
        content.remove(k);
    }
    let seed = openssl::sha::sha256(
        &[
            req.method.as_str().as_bytes(),
            b"\n",
            op.template.as_bytes(),
            b"\n",
            &serde_json::to_vec(&content).unwrap_or_default(),
        ]
        .concat(),
    );
    // `coupon_id_$n`: one of each, numbered 0
    let fields: Vec<Field> = op
        .response
        .iter()
        .filter(|f| !PROTOCOL_FIELDS.contains(&f.name.as_str()))
        .map(|f| {
            let mut f = f.clone();
            f.name = f.name.replace("$n", "0").replace("$m", "0");
            f
        })
        .collect();
    let g = Gen {
        mchid: &shared.settings.signing_merchant(),
        answering: None,
        seed,
        identity: None,
        echo: content.clone(),
        now: shared.clock.now(),
        template: op.template,
    };
    let mut out = g.object(&fields, Some(&content), "");
    let made: Vec<String> = out
        .iter()
        .filter(|(k, v)| content.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect();
    for f in &fields {
        let Some(v) = out.get_mut(&f.name) else {
            continue;
        };
        if !made.contains(&f.name) {
            continue;
        }
        if !f.children.is_empty() && !matches!(f.ty, Type::Object | Type::ObjectArray) {
            // a field documented as a JSON string of its children
            let inner = g.object(&f.children, None, &format!("/{}", f.name));
            *v = Value::String(Value::Object(inner).to_string());
        } else if v.is_object() || v.is_array() {
            if !op.unsigned {
                // a signed answer's fields are flat: nested ones travel as JSON text
                *v = Value::String(v.to_string());
            }
        } else if let Value::String(s) = v {
            *s = apiv2_time(s);
        }
    }
    coherent(&mut out, &made, op);
    out
}

/// A generated RFC 3339 time or date as APIv2 writes them: `20260107123000`, `20260107`.
fn apiv2_time(s: &str) -> String {
    // digits where the shape has them, its separators elsewhere
    let shaped = |shape: &str| {
        s.len() == shape.len()
            && s.bytes().zip(shape.bytes()).all(|(c, p)| match p {
                b'9' => c.is_ascii_digit(),
                _ => c == p,
            })
    };
    if shaped("9999-99-99T99:99:99+08:00") {
        return s[..19].replace(['-', 'T', ':'], "");
    }
    if shaped("9999-99-99") {
        return s.replace('-', "");
    }
    s.to_string()
}

/// Generated figures made to agree: cash and settlement amounts equal the order's (no
/// discount), a refund no larger than the order; counts of numbered fields (`refund_count`
/// beside `refund_id_0`) counting what the answer holds.
fn coherent(out: &mut Map<String, Value>, made: &[String], op: &Operation) {
    let int = |out: &Map<String, Value>, k: &str| -> Option<i64> {
        match out.get(k)? {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        }
    };
    let made_here = |k: &str| made.iter().any(|m| m == k);
    let set = |out: &mut Map<String, Value>, k: &str, n: i64| {
        if let Some(v) = out.get_mut(k) {
            *v = match v {
                Value::String(_) => Value::String(n.to_string()),
                _ => Value::from(n),
            };
        }
    };
    if let (Some(total), Some(refund)) = (int(out, "total_fee"), int(out, "refund_fee")) {
        if refund > total && made_here("refund_fee") {
            set(out, "refund_fee", total);
        }
    }
    for (k, of) in [
        ("cash_fee", "total_fee"),
        ("settlement_total_fee", "total_fee"),
        ("cash_refund_fee", "refund_fee"),
        ("settlement_refund_fee", "refund_fee"),
        ("settlement_refund_fee_0", "refund_fee_0"),
    ] {
        if let (true, Some(v)) = (made_here(k), int(out, of)) {
            set(out, k, v);
        }
    }
    if !op.response.iter().any(|f| f.name.contains('$')) {
        return;
    }
    let counts: Vec<String> = made
        .iter()
        .filter(|k| k.ends_with("_count") || k.ends_with("_count_0"))
        .cloned()
        .collect();
    for c in counts {
        let group = c
            .trim_end_matches("_0")
            .trim_end_matches("_count")
            .to_string();
        let held = out
            .keys()
            .any(|k| *k != c && k.starts_with(&group) && k.ends_with("_0"));
        set(out, &c, i64::from(held));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_times_are_written_as_apiv2_writes_them() {
        assert_eq!(apiv2_time("2026-01-07T12:30:00+08:00"), "20260107123000");
        assert_eq!(apiv2_time("2026-01-07"), "20260107");
        assert_eq!(apiv2_time("2026-01-0x"), "2026-01-0x");
        assert_eq!(apiv2_time("SUCCESS"), "SUCCESS");
    }
}
