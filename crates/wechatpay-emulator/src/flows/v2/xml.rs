//! APIv2 answers as XML: `return_code` FAIL, signed answers and business errors. Shared by
//! the modelled APIv2 calls and the documented ones, so that neither imports the other.

use serde_json::{Map, Value};

use crate::http::answer::Answer;
use crate::state::shared::Shared;
use wechatpay_chain::client_xml::{self, SignType};
use wechatpay_chain::formatter;
use wechatpay_chain::transformer;

/// `return_code` FAIL: the document could not be taken at all; not signed.
pub(crate) fn fail(msg: &str) -> Answer {
    let mut m = Map::new();
    m.insert("return_code".into(), "FAIL".into());
    m.insert("return_msg".into(), msg.into());
    Answer::xml(transformer::to_xml(&m).unwrap_or_default())
}

/// A signed answer: `return_code` SUCCESS, a fresh `nonce_str`, then `sign`.
pub(crate) fn signed(
    shared: &Shared,
    kind: SignType,
    request: &Map<String, Value>,
    fields: Vec<(&str, Value)>,
) -> Answer {
    let mut m = Map::new();
    m.insert("return_code".into(), "SUCCESS".into());
    m.insert("return_msg".into(), "OK".into());
    for k in ["appid", "mch_id", "sub_mch_id", "device_info"] {
        if let Some(v) = request.get(k) {
            m.insert(k.into(), v.clone());
        }
    }
    m.insert("nonce_str".into(), formatter::nonce(16).into());
    for (k, v) in fields {
        m.insert(k.into(), v);
    }
    sealed(shared, kind, m)
}

/// `m` with its `sign` (of `kind`, made with the calling merchant's APIv2 key) added last, as
/// XML.
pub(crate) fn sealed(shared: &Shared, kind: SignType, mut m: Map<String, Value>) -> Answer {
    let mchid = shared.settings.signing_merchant();
    match client_xml::sign(&m, shared.settings.apiv2_key_of(&mchid), kind) {
        Ok(s) => {
            m.insert("sign".into(), s.into());
            Answer::xml(transformer::to_xml(&m).unwrap_or_default())
        }
        Err(_) => fail("SYSTEM_ERROR"),
    }
}

/// A business error (`result_code` FAIL), signed.
pub(crate) fn business(
    shared: &Shared,
    kind: SignType,
    request: &Map<String, Value>,
    code: &str,
    des: &str,
) -> Answer {
    signed(
        shared,
        kind,
        request,
        vec![
            ("result_code", "FAIL".into()),
            ("err_code", code.into()),
            ("err_code_des", des.into()),
        ],
    )
}

pub(crate) fn text<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or("")
}

/// `PARAM_ERROR` naming the first of `fields` that is absent or empty.
pub(crate) fn missing(
    shared: &Shared,
    kind: SignType,
    data: &Map<String, Value>,
    fields: &[&str],
) -> Option<Answer> {
    let absent = fields.iter().find(|f| text(data, f).is_empty())?;
    Some(business(
        shared,
        kind,
        data,
        "PARAM_ERROR",
        &format!("缺少参数{absent} (missing {absent})"),
    ))
}
