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
//! let reply = match notify_v2::verify(body.as_bytes(), secret, client_xml::SignType::Md5) {
//!     Ok(n) => {
//!         assert_eq!(n.get("out_trade_no"), Some("1217752501201407033233368018"));
//!         notify_v2::reply_success()
//!     }
//!     Err(e) => notify_v2::reply_fail(&e.to_string()),
//! };
//! assert_eq!(reply, "<xml><return_code>SUCCESS</return_code><return_msg>OK</return_msg></xml>");
//! ```

use serde_json::{Map, Value};

use crate::client_xml::{self, SignType};
use crate::crypto::AesEcb;
use crate::error::Error;
use crate::transformer;

/// Which kind of APIv2 notification, and so what authenticates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KindV2 {
    /// A signed notification (payment results …): every field is covered by its `sign`.
    Signed,
    /// A refund result: only the encrypted `req_info` comes from the key holder; the platform
    /// does not sign the plain-text fields around it.
    Refund,
}

/// A verified APIv2 notification. [`get`](Self::get) and [`fields`](Self::fields) read only
/// what the APIv2 key authenticates: a signed notification's fields, or a refund
/// notification's decrypted `req_info`. A refund's plain-text outer fields (`return_code`,
/// `appid`, `mch_id` …), which anyone could have written, are reachable only through
/// [`unauthenticated_outer`](Self::unauthenticated_outer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationV2 {
    kind: KindV2,
    fields: Vec<(String, String)>,
    outer: Option<Vec<(String, String)>>,
}

impl NotificationV2 {
    /// Whether it is a signed notification or a refund result.
    pub fn kind(&self) -> KindV2 {
        self.kind
    }

    /// The authenticated fields in document order: a signed notification's fields (`sign`
    /// among them), or a refund notification's decrypted `req_info`.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// One authenticated field (see [`fields`](Self::fields)): `out_trade_no` of a payment,
    /// `refund_status` of a refund.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A refund notification's plain-text fields around `req_info`, as received: nothing
    /// authenticates them, so never decide on them (read the same facts from
    /// [`get`](Self::get)). `None` for a signed notification.
    pub fn unauthenticated_outer(&self) -> Option<&[(String, String)]> {
        self.outer.as_deref()
    }
}

/// Decrypts a refund notification's `req_info` (base64 AES-256-ECB under the lowercase hex
/// MD5 of the APIv2 key) and reads the XML inside, whose fields must all be text.
pub fn decrypt_req_info(req_info: &str, secret: &str) -> Result<Vec<(String, String)>, Error> {
    if secret.is_empty() {
        return Err(Error::config(
            "decrypting req_info needs the APIv2 key, which is empty",
        ));
    }
    let key = AesEcb::key_from_secret(secret)?;
    let plain = AesEcb::decrypt(req_info, key.as_bytes())?;
    let map = transformer::to_array(&plain)?;
    client_xml::signed_fields(&map)
}

/// Parses and verifies a notification's body under the APIv2 key `secret`.
///
/// `expected` is the sign type of the requests whose results are notified (their
/// `sign_type`; MD5 when they name none): a `sign` of the other type is refused, so an
/// HMAC-SHA256 merchant never accepts an MD5 sign. A merchant whose requests use both types
/// gives each its own `notify_url` and verifies each with its type.
///
/// A notification that carries a `sign` must verify, and then every field must be text (a
/// field with child elements is outside what the sign covers, [`Error::Verification`]).
/// Refund notifications carry no `sign`: theirs is `req_info`, which must decrypt under the
/// key and read as XML; they come back as [`KindV2::Refund`], whose
/// [`get`](NotificationV2::get) reads `req_info`. A notification with neither is refused,
/// as is anything that is not a well-formed APIv2 XML document and an empty key
/// ([`Error::Config`]).
pub fn verify(body: &[u8], secret: &str, expected: SignType) -> Result<NotificationV2, Error> {
    if secret.is_empty() {
        return Err(Error::config(
            "verifying an APIv2 notification needs the APIv2 key, which is empty",
        ));
    }
    let map = transformer::to_array(body)?;
    let req_info = match map.get("req_info") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.as_str()),
        _ => None,
    };
    let signed = map.contains_key("sign");
    if signed {
        client_xml::verify(&map, secret, expected)?;
    }
    match req_info {
        Some(ct) => {
            let fields = decrypt_req_info(ct, secret).map_err(|e| {
                Error::Verification(format!(
                    "the notification's req_info does not decrypt ({})",
                    e.chain_text()
                ))
            })?;
            let outer = if signed {
                client_xml::signed_fields(&map)?
            } else {
                transformer::fields(&map)?
            };
            Ok(NotificationV2 {
                kind: KindV2::Refund,
                fields,
                outer: Some(outer),
            })
        }
        None if signed => Ok(NotificationV2 {
            kind: KindV2::Signed,
            fields: client_xml::signed_fields(&map)?,
            outer: None,
        }),
        None => Err(Error::Verification(
            "the notification has no sign (nor an encrypted req_info)".into(),
        )),
    }
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

impl crate::Client {
    /// Verifies an APIv2 notification's body under the configured APIv2 key, expecting a
    /// `sign` of type `expected` (see [`notify_v2::verify`](crate::notify_v2::verify));
    /// refunds' `req_info` comes decrypted.
    pub fn verify_notification_v2(
        &self,
        body: &[u8],
        expected: crate::client_xml::SignType,
    ) -> Result<crate::notify_v2::NotificationV2, crate::Error> {
        let secret = self.core().secret.as_deref().ok_or_else(|| {
            crate::Error::config("verifying APIv2 notifications needs Builder::secret")
        })?;
        crate::notify_v2::verify(body, secret, expected)
    }
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
    fn payment_notification_verifies_with_the_expected_sign_type() {
        for kind in [SignType::Md5, SignType::HmacSha256] {
            let n = verify(signed(pay(), kind).as_bytes(), KEY, kind).unwrap();
            assert_eq!(n.kind(), KindV2::Signed);
            assert_eq!(n.get("out_trade_no"), Some("1409811653"));
            assert_eq!(n.get("attach"), Some("a<b&c"));
            assert!(n.unauthenticated_outer().is_none());
        }
    }

    #[test]
    fn a_sign_of_another_type_than_expected_is_refused() {
        let md5 = signed(pay(), SignType::Md5);
        assert!(matches!(
            verify(md5.as_bytes(), KEY, SignType::HmacSha256),
            Err(Error::Verification(_))
        ));
        let hmac = signed(pay(), SignType::HmacSha256);
        assert!(matches!(
            verify(hmac.as_bytes(), KEY, SignType::Md5),
            Err(Error::Verification(_))
        ));
    }

    #[test]
    fn nested_fields_outside_the_sign_are_refused() {
        let body = signed(pay(), SignType::Md5);
        for extra in [
            "<attach2><order_id>X</order_id></attach2>",
            "<coupon_fee>1<forged>9</forged></coupon_fee>",
        ] {
            let forged = body.replace("</xml>", &format!("{extra}</xml>"));
            assert!(
                matches!(
                    verify(forged.as_bytes(), KEY, SignType::Md5),
                    Err(Error::Verification(_))
                ),
                "{extra}"
            );
        }
        // the issue's case: attach absent from what was signed, injected as an element
        let mut m = pay().as_object().unwrap().clone();
        m.remove("attach");
        let body = signed(Value::Object(m), SignType::Md5)
            .replace("</xml>", "<attach><order_id>X</order_id></attach></xml>");
        match verify(body.as_bytes(), KEY, SignType::Md5) {
            Err(Error::Verification(msg)) => assert!(msg.contains("attach"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tampered_unsigned_or_wrong_key_is_refused() {
        let md5 = SignType::Md5;
        let body = signed(pay(), md5).replace("<total_fee>1<", "<total_fee>100<");
        assert!(matches!(
            verify(body.as_bytes(), KEY, md5),
            Err(Error::Verification(_))
        ));
        let mut m = pay().as_object().unwrap().clone();
        m.remove("sign");
        let body = transformer::to_xml(&m).unwrap();
        assert!(matches!(
            verify(body.as_bytes(), KEY, md5),
            Err(Error::Verification(_))
        ));
        let body = signed(pay(), md5);
        assert!(matches!(
            verify(body.as_bytes(), "other", md5),
            Err(Error::Verification(_))
        ));
        assert!(matches!(
            verify(body.as_bytes(), "", md5),
            Err(Error::Config { .. })
        ));
        assert!(matches!(
            verify(b"<!DOCTYPE x><xml/>", KEY, md5),
            Err(Error::Decode { .. })
        ));
    }

    fn refund_body(secret: &str) -> (String, String) {
        let inner = "<root><out_refund_no><![CDATA[131811191610442717309]]></out_refund_no>\
                     <out_trade_no><![CDATA[1409811653]]></out_trade_no>\
                     <refund_fee><![CDATA[3960]]></refund_fee><refund_status><![CDATA[SUCCESS]]></refund_status></root>";
        let key = AesEcb::key_from_secret(secret).unwrap();
        let ct = AesEcb::encrypt(inner, key.as_bytes()).unwrap();
        let body = format!(
            "<xml><return_code>SUCCESS</return_code><appid><![CDATA[wx2421b1c4370ec43b]]></appid>\
             <mch_id><![CDATA[10000100]]></mch_id><nonce_str><![CDATA[TeqClE3i0mvn3DrK]]></nonce_str>\
             <result_code>SUCCESS</result_code><out_trade_no>FORGED</out_trade_no><total_fee>999999</total_fee>\
             <req_info><![CDATA[{ct}]]></req_info></xml>"
        );
        (body, ct)
    }

    #[test]
    fn refund_notification_reads_req_info_and_hides_the_unsigned_outer_fields() {
        let (body, ct) = refund_body(KEY);
        // the expected sign type does not matter: a refund result carries no sign
        let n = verify(body.as_bytes(), KEY, SignType::HmacSha256).unwrap();
        assert_eq!(n.kind(), KindV2::Refund);
        assert_eq!(n.get("refund_fee"), Some("3960"));
        assert_eq!(n.get("out_trade_no"), Some("1409811653"));
        assert_eq!(n.fields().len(), 4);
        // the plain-text fields are not reachable through get() or fields()
        for k in ["result_code", "total_fee", "return_code", "req_info"] {
            assert_eq!(n.get(k), None, "{k}");
        }
        let outer = n.unauthenticated_outer().unwrap();
        assert!(outer.contains(&("total_fee".into(), "999999".into())));
        // under another key it does not decrypt (or not to XML)
        assert!(matches!(
            verify(body.as_bytes(), "another-key", SignType::Md5),
            Err(Error::Verification(_))
        ));
        let forged = body.replace(&ct, "AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(verify(forged.as_bytes(), KEY, SignType::Md5).is_err());
        assert!(matches!(
            verify(body.as_bytes(), "", SignType::Md5),
            Err(Error::Config { .. })
        ));
        // req_info encrypted under the empty key's MD5 never decrypts under an empty key
        assert!(matches!(
            decrypt_req_info(&ct, ""),
            Err(Error::Config { .. })
        ));
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
