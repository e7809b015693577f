//! APIv2 notifications (payment results, refund results …) as a merchant's server receives
//! them: parse the XML safely, verify its `sign`, decrypt a refund's `req_info`, and build the
//! `<xml><return_code>SUCCESS</return_code>…</xml>` (or FAIL) reply the platform waits for.
//!
//! ```
//! use wechatpay_chain::{client_xml, notify_v2, transformer};
//! # let secret = "192006250b4c09247ec02edce69f6a2d";
//! # let mut m = serde_json::json!({"return_code": "SUCCESS", "result_code": "SUCCESS",
//! #     "out_trade_no": "1217752501201407033233368018", "total_fee": "1"}).as_object().unwrap().clone();
//! # let sign = client_xml::sign(&m, secret, client_xml::SignType::Md5).unwrap();
//! # m.insert("sign".into(), sign.into());
//! # let body = transformer::to_xml(&m).unwrap();
//! // in the handler of notify_url, with the body as received:
//! let reply = match notify_v2::verify(body.as_bytes(), secret) {
//!     Ok(n) => {
//!         assert_eq!(n.get("out_trade_no"), Some("1217752501201407033233368018"));
//!         notify_v2::reply_success()
//!     }
//!     Err(e) => notify_v2::reply_fail(&e.to_string()),
//! };
//! assert_eq!(reply, "<xml><return_code>SUCCESS</return_code><return_msg>OK</return_msg></xml>");
//! ```

use serde_json::{Map, Value};

use crate::client_xml;
use crate::crypto::AesEcb;
use crate::error::Error;
use crate::transformer;

/// A verified APIv2 notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationV2 {
    fields: Vec<(String, String)>,
    req_info: Option<Vec<(String, String)>>,
}

impl NotificationV2 {
    /// Its fields, in document order (`req_info` still encrypted among them).
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// One field's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The decrypted fields of `req_info` (refund notifications), in document order.
    pub fn req_info(&self) -> Option<&[(String, String)]> {
        self.req_info.as_deref()
    }

    /// One field of the decrypted `req_info`.
    pub fn req_info_get(&self, key: &str) -> Option<&str> {
        self.req_info
            .as_ref()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Decrypts a refund notification's `req_info` (base64 AES-256-ECB under the lowercase hex
/// MD5 of the APIv2 key) and reads the XML inside.
pub fn decrypt_req_info(req_info: &str, secret: &str) -> Result<Vec<(String, String)>, Error> {
    let key = AesEcb::key_from_secret(secret)?;
    let plain = AesEcb::decrypt(req_info, key.as_bytes())?;
    let map = transformer::to_array(&plain)?;
    transformer::fields(&map)
}

/// Parses and verifies a notification's body under the APIv2 key `secret`.
///
/// A notification that carries a `sign` must verify (MD5 or HMAC-SHA256, told by its length).
/// Refund notifications carry no `sign`: theirs is `req_info`, which must decrypt under the
/// key and read as XML. A notification with neither is refused, as is anything that is not a
/// well-formed APIv2 XML document.
pub fn verify(body: &[u8], secret: &str) -> Result<NotificationV2, Error> {
    if secret.is_empty() {
        return Err(Error::Config(
            "verifying an APIv2 notification needs the APIv2 key".into(),
        ));
    }
    let map = transformer::to_array(body)?;
    let fields = transformer::fields(&map)?;
    let req_info = match map.get("req_info") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    match (map.contains_key("sign"), req_info) {
        (true, _) => client_xml::verify(&map, secret)?,
        (false, Some(_)) => {}
        (false, None) => {
            return Err(Error::Verification(
                "the notification has no sign (nor an encrypted req_info)".into(),
            ))
        }
    }
    let req_info = match req_info {
        Some(ct) => Some(decrypt_req_info(ct, secret).map_err(|e| {
            Error::Verification(format!("the notification's req_info does not decrypt: {e}"))
        })?),
        None => None,
    };
    Ok(NotificationV2 { fields, req_info })
}

fn reply(code: &str, msg: &str) -> String {
    let mut m = Map::new();
    m.insert("return_code".into(), Value::String(code.into()));
    m.insert("return_msg".into(), Value::String(msg.into()));
    // Only characters XML cannot carry at all can fail; they are dropped from the message.
    transformer::to_xml(&m).unwrap_or_else(|_| {
        let clean: String = msg
            .chars()
            .filter(|c| !c.is_control() || matches!(c, '\t' | '\n'))
            .collect();
        m.insert("return_msg".into(), Value::String(clean));
        transformer::to_xml(&m).unwrap_or_default()
    })
}

/// The reply that tells the platform the notification was handled.
pub fn reply_success() -> String {
    reply("SUCCESS", "OK")
}

/// The reply that asks the platform to send the notification again later.
pub fn reply_fail(msg: &str) -> String {
    reply("FAIL", msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_xml::SignType;
    use serde_json::json;

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    fn signed(v: Value, kind: SignType) -> String {
        let mut m = v.as_object().unwrap().clone();
        let s = client_xml::sign(&m, KEY, kind).unwrap();
        m.insert("sign".into(), json!(s));
        transformer::to_xml(&m).unwrap()
    }

    fn pay() -> Value {
        json!({"appid": "wx2421b1c4370ec43b", "mch_id": "10000100", "nonce_str": "n",
               "out_trade_no": "1409811653", "result_code": "SUCCESS", "return_code": "SUCCESS",
               "total_fee": "1", "attach": "a<b&c"})
    }

    #[test]
    fn payment_notification_verifies_with_either_sign_type() {
        for kind in [SignType::Md5, SignType::HmacSha256] {
            let n = verify(signed(pay(), kind).as_bytes(), KEY).unwrap();
            assert_eq!(n.get("out_trade_no"), Some("1409811653"));
            assert_eq!(n.get("attach"), Some("a<b&c"));
            assert!(n.req_info().is_none());
        }
    }

    #[test]
    fn tampered_unsigned_or_wrong_key_is_refused() {
        let body = signed(pay(), SignType::Md5).replace("<total_fee>1<", "<total_fee>100<");
        assert!(matches!(
            verify(body.as_bytes(), KEY),
            Err(Error::Verification(_))
        ));
        let mut m = pay().as_object().unwrap().clone();
        m.remove("sign");
        let body = transformer::to_xml(&m).unwrap();
        assert!(matches!(
            verify(body.as_bytes(), KEY),
            Err(Error::Verification(_))
        ));
        let body = signed(pay(), SignType::Md5);
        assert!(matches!(
            verify(body.as_bytes(), "other"),
            Err(Error::Verification(_))
        ));
        assert!(matches!(verify(body.as_bytes(), ""), Err(Error::Config(_))));
        assert!(matches!(
            verify(b"<!DOCTYPE x><xml/>", KEY),
            Err(Error::Decode(_))
        ));
    }

    #[test]
    fn refund_notification_req_info_is_decrypted() {
        let inner = "<root><out_refund_no><![CDATA[131811191610442717309]]></out_refund_no>\
                     <refund_fee><![CDATA[3960]]></refund_fee><refund_status><![CDATA[SUCCESS]]></refund_status></root>";
        let key = AesEcb::key_from_secret(KEY).unwrap();
        let ct = AesEcb::encrypt(inner, key.as_bytes()).unwrap();
        let body = format!(
            "<xml><return_code>SUCCESS</return_code><appid><![CDATA[wx2421b1c4370ec43b]]></appid>\
             <mch_id><![CDATA[10000100]]></mch_id><nonce_str><![CDATA[TeqClE3i0mvn3DrK]]></nonce_str>\
             <req_info><![CDATA[{ct}]]></req_info></xml>"
        );
        let n = verify(body.as_bytes(), KEY).unwrap();
        assert_eq!(n.req_info_get("refund_fee"), Some("3960"));
        assert_eq!(n.req_info().unwrap().len(), 3);
        // under another key it does not decrypt (or not to XML)
        assert!(matches!(
            verify(body.as_bytes(), "another-key"),
            Err(Error::Verification(_))
        ));
        let forged = body.replace(&ct, "AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(verify(forged.as_bytes(), KEY).is_err());
    }

    #[test]
    fn replies() {
        assert_eq!(
            reply_success(),
            "<xml><return_code>SUCCESS</return_code><return_msg>OK</return_msg></xml>"
        );
        assert_eq!(
            reply_fail("sign <bad>"),
            "<xml><return_code>FAIL</return_code><return_msg><![CDATA[sign <bad>]]></return_msg></xml>"
        );
        assert_eq!(
            reply_fail("x\u{1}y"),
            "<xml><return_code>FAIL</return_code><return_msg>xy</return_msg></xml>"
        );
    }
}
