//! The emulator's answers: JSON, empty or XML bodies, the platform's error shape
//! (`{"code","message","detail"}`), and the signature every APIv3 answer carries, made with the
//! library's own formatter and RSA functions.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use http_body_util::Full;
use serde_json::{json, Value};

use crate::http::scheme;
use crate::http::settings::Forgery;
use crate::http::settings::Settings;
use crate::util::random_hex;
use wechatpay_chain::formatter;
use wechatpay_chain::Error;

/// What a handler answers, before signing.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
    pub content_type: Option<&'static str>,
    /// Sent without `Wechatpay-*` headers even on the APIv3 side, as the platform sends the
    /// bill files of `v3/billdownload/file` (the digest in the bill's listing proves them).
    pub unsigned: bool,
}

const JSON: &str = "application/json; charset=utf-8";

impl Answer {
    /// A JSON answer: a `Value`, or a borrowed view serialized straight into the body.
    pub fn json(status: u16, value: &impl serde::Serialize) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            content_type: Some(JSON),
            unsigned: false,
        }
    }

    pub fn ok(value: Value) -> Answer {
        Answer::json(200, &value)
    }

    pub fn no_content() -> Answer {
        Answer {
            status: StatusCode::NO_CONTENT,
            body: Bytes::new(),
            content_type: None,
            unsigned: false,
        }
    }

    pub fn xml(body: String) -> Answer {
        Answer {
            status: StatusCode::OK,
            body: Bytes::from(body),
            content_type: Some("text/xml; charset=utf-8"),
            unsigned: false,
        }
    }

    /// 200 with a downloaded file's bytes, `application/octet-stream`, unsigned (the only
    /// APIv3 answer the platform does not sign).
    pub fn file(body: Bytes) -> Answer {
        Answer {
            status: StatusCode::OK,
            body,
            content_type: Some("application/octet-stream"),
            unsigned: true,
        }
    }

    /// The platform's error body.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Answer {
        Answer::json(status, &json!({"code": code, "message": message.into()}))
    }

    /// 400 `PARAM_ERROR` naming the field at fault, as the platform's `detail` does: `location`
    /// is where it was sent (`body`, `query`, `path`, `header`) and `field` its JSON pointer
    /// there (`/amount/total`, `/limit`, `/out_trade_no`, `/Wechatpay-Serial`; `/` for the
    /// whole body), the one form of every error the emulator makes ([`pointer`]). The message
    /// names the source as the platform does: `/body/amount/total`.
    pub fn param_error(
        field: &str,
        location: &str,
        issue: impl Into<String>,
        value: Value,
    ) -> Answer {
        let issue = issue.into();
        let field = pointer(field);
        let source = match field.as_str() {
            "/" => format!("/{location}"),
            f => format!("/{location}{f}"),
        };
        Answer::json(
            400,
            &json!({
                "code": "PARAM_ERROR",
                "message": format!("{issue} (输入源“{source}”校验失败)"),
                "detail": {"location": location, "field": field, "value": value, "issue": issue},
            }),
        )
    }

    /// 400 `PARAM_ERROR` for a required field that is absent.
    pub fn missing(field: &str, location: &str) -> Answer {
        Answer::param_error(
            field,
            location,
            format!("missing required field {}", field.trim_start_matches('/')),
            Value::Null,
        )
    }

    /// 404 `ORDER_NOT_EXIST`.
    pub fn no_order() -> Answer {
        Answer::error(404, "ORDER_NOT_EXIST", "订单不存在 (order does not exist)")
    }

    /// 409: a serial number reused with different content.
    pub fn conflict(field: &str, serial: &str) -> Answer {
        Answer::json(
            409,
            &json!({
                "code": "RESOURCE_ALREADY_EXISTS",
                "message": format!("{field} {serial} was already used with different content"),
                "detail": {"location": "body", "field": pointer(field), "value": serial,
                           "issue": "serial number reused with different content"},
            }),
        )
    }

    /// 401 `SIGN_ERROR`.
    pub fn sign_error(why: &str) -> Answer {
        Answer::error(
            401,
            "SIGN_ERROR",
            format!("签名错误 (signature check failed: {why})"),
        )
    }

    /// The answer as the library's API error, for the handle's methods (made here, not
    /// received: it carries no signature, so it reads as unverified).
    pub fn into_error(self) -> Error {
        Error::from_answer(
            http::Response::builder()
                .status(self.status)
                .body(self.body)
                .unwrap_or_default(),
        )
    }
}

/// `field` in the one form `detail.field` takes: a JSON pointer into its location (`/amount/total`),
/// whether the caller wrote `amount.total`, `amount/total` or `/amount/total`; `/` for the whole.
pub(crate) fn pointer(field: &str) -> String {
    let f = field.trim();
    if f.starts_with('/') {
        return f.to_string();
    }
    // a dotted path names nested fields: `amount.total` is `/amount/total`
    format!("/{}", f.replace('.', "/"))
}

// The names of the headers every answer carries, made once (a name given as text is parsed,
// and one HTTP does not define is allocated, on every answer).
const REQUEST_ID: HeaderName = HeaderName::from_static("request-id");
const TIMESTAMP: HeaderName = HeaderName::from_static("wechatpay-timestamp");
const NONCE: HeaderName = HeaderName::from_static("wechatpay-nonce");
const SERIAL: HeaderName = HeaderName::from_static("wechatpay-serial");
const SIGNATURE: HeaderName = HeaderName::from_static("wechatpay-signature");
const SIGNATURE_TYPE: HeaderName = HeaderName::from_static("wechatpay-signature-type");

/// Renders an answer; APIv3 answers get `Wechatpay-*` headers signed with the platform key
/// over `TIMESTAMP\nNONCE\nBODY\n`, spoiled as `forgery` asks, unless the answer is
/// [`Answer::unsigned`].
pub(crate) fn render(
    settings: &Settings,
    answer: Answer,
    sign: bool,
    forgery: Option<Forgery>,
) -> http::Response<Full<Bytes>> {
    render_for(settings, answer, sign, forgery, None)
}

/// [`render`] for a request that names the key it expects in `Wechatpay-Serial` (`named`).
pub(crate) fn render_for(
    settings: &Settings,
    answer: Answer,
    sign: bool,
    forgery: Option<Forgery>,
    named: Option<&str>,
) -> http::Response<Full<Bytes>> {
    rendered(settings, answer, sign, forgery, named).unwrap_or_else(|| {
        plain(
            500,
            "SYSTEM_ERROR",
            "the emulator could not build its answer",
        )
    })
}

fn rendered(
    settings: &Settings,
    answer: Answer,
    sign: bool,
    forgery: Option<Forgery>,
    named: Option<&str>,
) -> Option<http::Response<Full<Bytes>>> {
    // Made directly, not through `Response::builder` (every answer comes through here).
    let mut headers = http::HeaderMap::with_capacity(8);
    headers.insert(REQUEST_ID, text_value(random_hex(16))?);
    if let Some(ct) = answer.content_type {
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let mut body = answer.body;
    if sign && !answer.unsigned {
        let mut ts = formatter::timestamp();
        if forgery == Some(Forgery::StaleTimestamp) {
            ts -= 600;
        }
        let ts = ts.to_string();
        let nonce = crate::util::nonce(32);
        let message = formatter::response(&ts, &nonce, &body);
        let (key, current_serial) = settings.signer_for(named);
        let signing = settings.signing_scheme();
        let signature = match forgery {
            Some(Forgery::WrongKey) => {
                scheme::generate_key(signing).and_then(|k| scheme::sign(signing, &message, &k))
            }
            _ => scheme::sign(signing, &message, &key),
        };
        let Ok(signature) = signature else {
            return Some(plain(
                500,
                "SYSTEM_ERROR",
                "the emulator could not sign its answer",
            ));
        };
        let serial = match forgery {
            Some(Forgery::UnknownSerial) => "PUB_KEY_ID_0000000000FORGED00000000000000",
            _ => &current_serial,
        };
        headers.insert(TIMESTAMP, text_value(ts)?);
        headers.insert(NONCE, text_value(nonce)?);
        headers.insert(SERIAL, HeaderValue::from_str(serial).ok()?);
        headers.insert(SIGNATURE, text_value(signature)?);
        // the platform names the scheme on every signed answer, as on its notifications;
        // some SDKs (wechatpayv3) refuse an answer without it
        headers.insert(
            SIGNATURE_TYPE,
            HeaderValue::from_static(scheme::named(signing, forgery)),
        );
        if forgery == Some(Forgery::TamperedBody) {
            let mut v = body.to_vec();
            v.push(b' ');
            body = Bytes::from(v);
        }
    }
    let mut res = http::Response::new(Full::new(body));
    *res.status_mut() = answer.status;
    *res.headers_mut() = headers;
    Some(res)
}

/// A header value of text the sandbox made (ids, times, Base64): `None` if it could not be one.
fn text_value(text: String) -> Option<HeaderValue> {
    HeaderValue::try_from(text).ok()
}

fn plain(status: u16, code: &str, message: &str) -> http::Response<Full<Bytes>> {
    let a = Answer::error(status, code, message);
    let mut res = http::Response::new(Full::new(a.body));
    *res.status_mut() = a.status;
    res
}
