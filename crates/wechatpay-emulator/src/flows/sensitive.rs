//! Fields a merchant encrypts for the platform (`by-rsa-pubkey`: names of transfer payees and
//! profit-sharing receivers), decrypted with the platform private key that the request's
//! `Wechatpay-Serial` names, and the same values encrypted for the merchant in answers.

use serde_json::Value;
use wechatpay_chain::util::pem::same_serial;
use wechatpay_chain::PrivateKey;

use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::scheme;
use crate::http::settings::Settings;

/// The platform private key behind `serial`: the current key, the public key alongside the
/// certificate, or a rotated certificate's.
fn platform_key(s: &Settings, serial: &str) -> Option<PrivateKey> {
    if same_serial(serial, &s.platform_serial) {
        return Some(s.platform_key.clone());
    }
    if let Some((id, key, _)) = &s.alongside {
        if same_serial(serial, id) {
            return Some(key.clone());
        }
    }
    s.rotations
        .lock()
        .iter()
        .find(|(_, issued)| same_serial(issued.certificate.serial(), serial))
        .map(|(key, _)| key.clone())
}

/// Decrypts `ciphertext`, the body field at `pointer` (`/user_name`, `/receivers/0/name`), as
/// the platform does: with the key the request names in `Wechatpay-Serial` (required when a
/// request carries an encrypted field). What does not decrypt to text is refused with the
/// platform's `PARAM_ERROR`; the value is not echoed (it may be a name in the clear).
pub(crate) fn decrypt(
    settings: &Settings,
    req: &Req,
    pointer: &str,
    ciphertext: &str,
) -> Result<String, Answer> {
    let Some(serial) = req
        .headers
        .get("wechatpay-serial")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(Answer::param_error(
            "Wechatpay-Serial",
            "header",
            format!(
                "{} is encrypted: name the platform key it was encrypted with in the Wechatpay-Serial header",
                pointer.trim_start_matches('/')
            ),
            Value::Null,
        ));
    };
    // The server refused unknown serials before dispatch; a key that went away since is the
    // same mistake.
    let plain = platform_key(settings, serial)
        .and_then(|key| scheme::decrypt_field(settings.scheme, ciphertext, &key).ok())
        .and_then(|p| String::from_utf8(p).ok())
        .filter(|p| !p.trim().is_empty());
    plain.ok_or_else(|| {
        Answer::param_error(
            pointer,
            "body",
            format!(
                "请确认待处理的消息是否为加密后的密文 ({} must be the base64 of the ciphertext (RSA-OAEP, or SM2 in the 国密 scheme) made with the platform public key {serial})",
                pointer.trim_start_matches('/')
            ),
            Value::Null,
        )
    })
}

/// `plain` encrypted for merchant `mchid` (the key its requests are checked with), as the
/// platform returns encrypted fields.
pub(crate) fn for_merchant(settings: &Settings, mchid: &str, plain: &str) -> Value {
    let key = settings.public_key_of(mchid);
    match scheme::encrypt_field(settings.scheme, plain.as_bytes(), key) {
        Ok(c) => Value::String(c),
        // too long for the key: nothing rather than the name in the clear
        Err(_) => Value::Null,
    }
}
