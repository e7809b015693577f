//! The platform certificate: issued by the emulator itself (openssl's X509 builder) in
//! certificate mode, and handed out by `v3/certificates` encrypted with the APIv3 key
//! (AEAD_AES_256_GCM, associated data `certificate`), as documented. In public-key mode the
//! endpoint answers 404, as the platform does for merchants with platform public keys.

use std::sync::Arc;

use serde_json::json;

use crate::http::answer::Answer;
use crate::http::issued::Issued;
use crate::http::request::Req;
use crate::http::settings::Mode;
use crate::state::rfc3339;
use crate::state::shared::Shared;
use wechatpay_chain::formatter;

/// `GET v3/certificates`: the certificates of `algorithm_type` (`RSA` by default, `SM2`,
/// `ALL`), sealed in the asking merchant's scheme with its APIv3 key.
pub(crate) fn list(shared: &Arc<Shared>, req: &Req) -> Answer {
    let s = &shared.settings;
    let asked = match crate::http::mixed::algorithm_type(req.query("algorithm_type")) {
        Ok(a) => a,
        Err(a) => return a,
    };
    let signer = s.signing_merchant();
    let (scheme, apiv3_key) = (s.scheme_of(&signer), s.apiv3_key_of(&signer));
    let issued = match (&s.mode, &s.platform_cert) {
        (Mode::Certificate, Some(c)) => c,
        _ => {
            let (status, code) = match s.no_certificates_status {
                403 => (403, "NO_AUTH"),
                _ => (404, "NOT_FOUND"),
            };
            return Answer::error(
                status,
                code,
                "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥 (no platform \
                 certificate: this merchant verifies with a platform public key, PUB_KEY_ID_…)",
            );
        }
    };
    // After a rotation the old and the new certificate are both listed (they overlap).
    let rotated: Vec<Arc<Issued>> = s.rotations.lock().iter().map(|(_, i)| i.clone()).collect();
    let mut data = Vec::with_capacity(2 + rotated.len());
    let own = std::iter::once(issued).chain(rotated.iter().map(|i| &**i));
    let own = own.filter(|_| asked.is_none_or(|a| a == s.scheme.algorithm_type()));
    let other = s.other_platform.as_ref();
    let other = other.filter(|o| asked.is_none_or(|a| a == o.scheme.algorithm_type()));
    for issued in own.chain(other.and_then(|o| o.cert.as_ref())) {
        let nonce = formatter::nonce(12);
        let Ok(ciphertext) =
            crate::http::scheme::seal(scheme, &issued.pem, apiv3_key, &nonce, "certificate")
        else {
            return Answer::error(
                500,
                "SYSTEM_ERROR",
                "the certificate could not be encrypted",
            );
        };
        data.push(json!({
            "serial_no": issued.certificate.serial(),
            "effective_time": rfc3339(issued.not_before),
            "expire_time": rfc3339(issued.not_after),
            "encrypt_certificate": {
                "algorithm": scheme.aead(),
                "nonce": nonce,
                "associated_data": "certificate",
                "ciphertext": ciphertext,
            },
        }));
    }
    Answer::ok(json!({ "data": data }))
}
