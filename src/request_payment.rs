//! What the merchant's front end needs after an order: the signed parameters of
//! `wx.requestPayment` (mini program), `WeixinJSBridge.invoke('getBrandWCPayRequest', …)`
//! (JSAPI, in WeChat's browser) and the APP SDK's `PayReq` (调起支付).
//!
//! wechatpay-php shows this as a recipe in its README (`Rsa::sign` over
//! `Formatter::joinedByLineFeed(...)`); wechatpay-go and wechatpay-java call it
//! `PrepayWithRequestPayment`. Here it is two types that serialize to exactly the JSON the
//! front-end SDKs take:
//!
//! - [`JsapiPayParams`] (`appId`, `timeStamp`, `nonceStr`, `package`, `signType`, `paySign`),
//!   for orders made with `v3/pay/transactions/jsapi` (also the mini program's), and
//! - [`AppPayParams`] (`appid`, `partnerid`, `prepayid`, `package`, `noncestr`, `timestamp`,
//!   `sign`), for `v3/pay/transactions/app`,
//!
//! each signed with RSA-SHA256 under the merchant API private key (APIv3,
//! [`PaySigner::Rsa`]) or with MD5 / HMAC-SHA256 under the APIv2 key (orders made with APIv2
//! `pay/unifiedorder`, [`PaySigner::V2`]). A [`Client`](crate::Client) holds both keys, so
//! [`Client::jsapi_pay_params`](crate::Client::jsapi_pay_params) and
//! [`Client::app_pay_params`](crate::Client::app_pay_params) need only the appid and the
//! `prepay_id`.
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use serde_json::{json, Value};
//! let order: Value = client["v3/pay/transactions/jsapi"].post(json!({"json": {
//!     "appid": "wxd678efh567hg6787", "mchid": "1900000001", "description": "Image形象店-深圳腾大-QQ公仔",
//!     "out_trade_no": "1217752501201407033233368018", "notify_url": "https://www.weixin.qq.com/wxpay/pay.php",
//!     "amount": {"total": 100}, "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
//! }}))?.json()?;
//! let params = client.jsapi_pay_params("wxd678efh567hg6787", order["prepay_id"].as_str().unwrap_or(""))?;
//! // {"appId":"wxd678efh567hg6787","timeStamp":"1700000000","nonceStr":"…",
//! //  "package":"prepay_id=wx…","signType":"RSA","paySign":"…"}: the page passes it to wx.requestPayment
//! let for_the_page = serde_json::to_string(&params)?;
//! # let _ = for_the_page; Ok(()) }
//! ```
//!
//! `appId` is the appid the order was made with (a partner order's `sp_appid` or `sub_appid`,
//! whichever the payer's openid belongs to); `wx.requestPayment` in a mini program takes no
//! `appId` and ignores it, but the signature covers it all the same. `timeStamp` is seconds
//! since the epoch, as a string; `nonceStr` 32 characters of `0-9A-Za-z`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client_xml::{self, SignType};
use crate::crypto::{PrivateKey, Rsa};
use crate::error::Error;
use crate::formatter;

/// The length of the generated `nonceStr`/`noncestr` (the documented maximum is 32).
pub const NONCE_LEN: usize = 32;

/// The APP SDK's fixed `package` value.
pub const APP_PACKAGE: &str = "Sign=WXPay";

/// How the parameters are signed: APIv3 orders with the merchant API private key (`signType`
/// `RSA`), APIv2 orders with the APIv2 key (`MD5` or `HMAC-SHA256`, the order's `sign_type`).
#[derive(Clone, Copy)]
pub enum PaySigner<'a> {
    /// RSA-SHA256, base64, over the fields joined by line feeds (APIv3).
    Rsa(&'a PrivateKey),
    /// APIv2's `sign`: uppercase hex MD5 or HMAC-SHA256 of the key-sorted `k=v&…&key=KEY`.
    V2 {
        /// MD5 or HMAC-SHA256: the `sign_type` the order was placed with.
        sign_type: SignType,
        /// The APIv2 key.
        secret: &'a str,
    },
}

impl<'a> PaySigner<'a> {
    /// APIv2: `sign_type` under the APIv2 key `secret`.
    pub fn v2(sign_type: SignType, secret: &'a str) -> Self {
        PaySigner::V2 { sign_type, secret }
    }

    /// The `signType` of the JSAPI form: `RSA`, `MD5` or `HMAC-SHA256`.
    pub fn sign_type(&self) -> &'static str {
        match self {
            PaySigner::Rsa(_) => "RSA",
            PaySigner::V2 { sign_type, .. } => sign_type.as_str(),
        }
    }
}

impl<'a> From<&'a PrivateKey> for PaySigner<'a> {
    fn from(key: &'a PrivateKey) -> Self {
        PaySigner::Rsa(key)
    }
}

impl std::fmt::Debug for PaySigner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaySigner::Rsa(key) => f.debug_tuple("Rsa").field(key).finish(),
            PaySigner::V2 { sign_type, .. } => f
                .debug_struct("V2")
                .field("sign_type", sign_type)
                .field("secret", &"redacted")
                .finish(),
        }
    }
}

/// The parameters of `wx.requestPayment` (mini program) and of `WeixinJSBridge`'s
/// `getBrandWCPayRequest` (JSAPI), in the order the SDKs document them.
///
/// ```
/// use wechatpay_chain::request_payment::JsapiPayParams;
/// use wechatpay_chain::{PrivateKey, Rsa};
/// # let key = PrivateKey::from_openssl(openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap());
/// let p = JsapiPayParams::with_nonce("wxd678efh567hg6787", "wx201410272009395522657a690389285100",
///                                    1414561699, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", &key)?;
/// assert_eq!(p.package, "prepay_id=wx201410272009395522657a690389285100");
/// assert_eq!(
///     serde_json::to_string(&p)?,
///     format!(r#"{{"appId":"wxd678efh567hg6787","timeStamp":"1414561699","nonceStr":"5K8264ILTKCH16CQ2502SI8ZNMTM67VS","package":"prepay_id=wx201410272009395522657a690389285100","signType":"RSA","paySign":"{}"}}"#, p.pay_sign),
/// );
/// // paySign: RSA-SHA256 over appId, timeStamp, nonceStr and package, each followed by "\n".
/// assert!(Rsa::verify(p.message(), &p.pay_sign, &key.public_key()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JsapiPayParams {
    /// `appId`: the appid the order was made with.
    #[serde(rename = "appId")]
    pub app_id: String,
    /// `timeStamp`: seconds since the epoch, as a string.
    #[serde(rename = "timeStamp")]
    pub time_stamp: String,
    /// `nonceStr`: a random string of at most 32 characters.
    #[serde(rename = "nonceStr")]
    pub nonce_str: String,
    /// `package`: `prepay_id=` and the order's `prepay_id`.
    pub package: String,
    /// `signType`: `RSA` (APIv3), `MD5` or `HMAC-SHA256` (APIv2).
    #[serde(rename = "signType")]
    pub sign_type: String,
    /// `paySign`: base64 RSA-SHA256 (APIv3) or uppercase hex (APIv2).
    #[serde(rename = "paySign")]
    pub pay_sign: String,
}

impl JsapiPayParams {
    /// The parameters for order `prepay_id` of `appid`, signed by `signer` (a
    /// [`&PrivateKey`](PrivateKey) for an APIv3 order, [`PaySigner::v2`] for an APIv2 one),
    /// with the time now and a fresh nonce.
    pub fn new<'a>(
        appid: &str,
        prepay_id: &str,
        signer: impl Into<PaySigner<'a>>,
    ) -> Result<Self, Error> {
        Self::with_nonce(
            appid,
            prepay_id,
            formatter::timestamp(),
            &formatter::nonce(NONCE_LEN),
            signer,
        )
    }

    /// As [`new`](Self::new) with a given `timeStamp` (seconds) and `nonceStr`, for tests and
    /// for a front end that fixes them itself.
    pub fn with_nonce<'a>(
        appid: &str,
        prepay_id: &str,
        time_stamp: i64,
        nonce_str: &str,
        signer: impl Into<PaySigner<'a>>,
    ) -> Result<Self, Error> {
        let signer = signer.into();
        check("appid", appid)?;
        check_prepay_id(prepay_id)?;
        check("nonce_str", nonce_str)?;
        let mut p = JsapiPayParams {
            app_id: appid.to_string(),
            time_stamp: time_stamp.to_string(),
            nonce_str: nonce_str.to_string(),
            package: format!("prepay_id={prepay_id}"),
            sign_type: signer.sign_type().to_string(),
            pay_sign: String::new(),
        };
        p.pay_sign = signature(
            signer,
            &p.message(),
            [
                ("appId", &p.app_id),
                ("timeStamp", &p.time_stamp),
                ("nonceStr", &p.nonce_str),
                ("package", &p.package),
                ("signType", &p.sign_type),
            ],
        )?;
        Ok(p)
    }

    /// What an RSA `paySign` signs: `appId\ntimeStamp\nnonceStr\npackage\n`.
    pub fn message(&self) -> Vec<u8> {
        formatter::joined_by_line_feed([
            &self.app_id,
            &self.time_stamp,
            &self.nonce_str,
            &self.package,
        ])
    }
}

/// The parameters of the APP SDK's payment request (`PayReq`: `appId`, `partnerId`,
/// `prepayId`, `packageValue`, `nonceStr`, `timeStamp`, `sign`), under the keys the server
/// hands them out with and APIv2 signs.
///
/// ```
/// use wechatpay_chain::request_payment::AppPayParams;
/// use wechatpay_chain::{PrivateKey, Rsa};
/// # let key = PrivateKey::from_openssl(openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap());
/// let p = AppPayParams::with_nonce("wxd678efh567hg6787", "1900000109", "wx201410272009395522657a690389285100",
///                                  1414561699, "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", &key)?;
/// assert_eq!(
///     serde_json::to_string(&p)?,
///     format!(r#"{{"appid":"wxd678efh567hg6787","partnerid":"1900000109","prepayid":"wx201410272009395522657a690389285100","package":"Sign=WXPay","noncestr":"5K8264ILTKCH16CQ2502SI8ZNMTM67VS","timestamp":"1414561699","sign":"{}"}}"#, p.sign),
/// );
/// // sign: RSA-SHA256 over appid, timestamp, noncestr and prepayid, each followed by "\n".
/// assert!(Rsa::verify(p.message(), &p.sign, &key.public_key()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPayParams {
    /// `appid`: the mobile application's appid the order was made with.
    pub appid: String,
    /// `partnerid`: the merchant id (`mchid`; a service provider's `sp_mchid`).
    pub partnerid: String,
    /// `prepayid`: the order's `prepay_id`.
    pub prepayid: String,
    /// `package`: always `Sign=WXPay`.
    pub package: String,
    /// `noncestr`: a random string of at most 32 characters.
    pub noncestr: String,
    /// `timestamp`: seconds since the epoch, as a string.
    pub timestamp: String,
    /// `sign`: base64 RSA-SHA256 (APIv3) or uppercase hex (APIv2).
    pub sign: String,
}

impl AppPayParams {
    /// The parameters for order `prepay_id` of `appid` and merchant `mchid`, signed by
    /// `signer`, with the time now and a fresh nonce.
    pub fn new<'a>(
        appid: &str,
        mchid: &str,
        prepay_id: &str,
        signer: impl Into<PaySigner<'a>>,
    ) -> Result<Self, Error> {
        Self::with_nonce(
            appid,
            mchid,
            prepay_id,
            formatter::timestamp(),
            &formatter::nonce(NONCE_LEN),
            signer,
        )
    }

    /// As [`new`](Self::new) with a given `timestamp` (seconds) and `noncestr`.
    pub fn with_nonce<'a>(
        appid: &str,
        mchid: &str,
        prepay_id: &str,
        timestamp: i64,
        noncestr: &str,
        signer: impl Into<PaySigner<'a>>,
    ) -> Result<Self, Error> {
        check("appid", appid)?;
        check("mchid", mchid)?;
        check_prepay_id(prepay_id)?;
        check("nonce_str", noncestr)?;
        let mut p = AppPayParams {
            appid: appid.to_string(),
            partnerid: mchid.to_string(),
            prepayid: prepay_id.to_string(),
            package: APP_PACKAGE.to_string(),
            noncestr: noncestr.to_string(),
            timestamp: timestamp.to_string(),
            sign: String::new(),
        };
        p.sign = signature(
            signer.into(),
            &p.message(),
            [
                ("appid", &p.appid),
                ("partnerid", &p.partnerid),
                ("prepayid", &p.prepayid),
                ("package", &p.package),
                ("noncestr", &p.noncestr),
                ("timestamp", &p.timestamp),
            ],
        )?;
        Ok(p)
    }

    /// What an RSA `sign` signs: `appid\ntimestamp\nnoncestr\nprepayid\n`.
    pub fn message(&self) -> Vec<u8> {
        formatter::joined_by_line_feed([
            &self.appid,
            &self.timestamp,
            &self.noncestr,
            &self.prepayid,
        ])
    }
}

/// The front-end parameters signed with the keys this client holds, so that they need not be
/// kept twice: the merchant API private key and `mchid` for APIv3 orders, the APIv2 key for
/// APIv2 ones.
impl crate::Client {
    /// [`JsapiPayParams`] for an APIv3 JSAPI or mini-program order (`v3/pay/transactions/jsapi`,
    /// `v3/pay/partner/transactions/jsapi`): `appid` as the order has it, its `prepay_id`,
    /// signed with the merchant API private key (`signType` `RSA`).
    pub fn jsapi_pay_params(&self, appid: &str, prepay_id: &str) -> Result<JsapiPayParams, Error> {
        JsapiPayParams::new(appid, prepay_id, &self.front_end_credentials()?.key)
    }

    /// [`AppPayParams`] for an APIv3 APP order (`v3/pay/transactions/app`, a partner's too):
    /// `partnerid` is this client's `mchid`, the sign RSA under its private key.
    pub fn app_pay_params(&self, appid: &str, prepay_id: &str) -> Result<AppPayParams, Error> {
        let m = self.front_end_credentials()?;
        AppPayParams::new(appid, &m.mchid, prepay_id, &m.key)
    }

    /// [`JsapiPayParams`] for an APIv2 order (`pay/unifiedorder`, `trade_type` `JSAPI`),
    /// signed with the APIv2 key and the order's `sign_type`.
    pub fn jsapi_pay_params_v2(
        &self,
        appid: &str,
        prepay_id: &str,
        sign_type: SignType,
    ) -> Result<JsapiPayParams, Error> {
        JsapiPayParams::new(
            appid,
            prepay_id,
            PaySigner::v2(sign_type, self.front_end_secret()?),
        )
    }

    /// [`AppPayParams`] for an APIv2 order (`trade_type` `APP`): `partnerid` is this client's
    /// `mchid`, the sign the APIv2 key's with the order's `sign_type`.
    pub fn app_pay_params_v2(
        &self,
        appid: &str,
        prepay_id: &str,
        sign_type: SignType,
    ) -> Result<AppPayParams, Error> {
        let mchid = self.core().mchid.as_deref().ok_or_else(|| {
            Error::config("the APP parameters name the merchant (partnerid): set Builder::mchid")
        })?;
        AppPayParams::new(
            appid,
            mchid,
            prepay_id,
            PaySigner::v2(sign_type, self.front_end_secret()?),
        )
    }

    fn front_end_credentials(&self) -> Result<&crate::client_json::Credentials, Error> {
        self.core().credentials.as_ref().ok_or_else(|| {
            Error::config(
                "the front-end parameters of an APIv3 order are signed with the merchant API private key: \
                 configure Builder::mchid, serial and private_key (for an APIv2 order use the _v2 form)",
            )
        })
    }

    fn front_end_secret(&self) -> Result<&str, Error> {
        self.core().secret.as_deref().ok_or_else(|| {
            Error::config(
                "the front-end parameters of an APIv2 order are signed with the APIv2 key: configure Builder::secret",
            )
        })
    }
}

/// The parameters' signature: RSA over `message` (APIv3), or APIv2's sign of `fields` with the
/// rules of every APIv2 `sign` (sorted by key, `&key=`).
fn signature<const N: usize>(
    signer: PaySigner<'_>,
    message: &[u8],
    fields: [(&str, &String); N],
) -> Result<String, Error> {
    match signer {
        PaySigner::Rsa(key) => Rsa::sign(message, key),
        PaySigner::V2 { sign_type, secret } => {
            let data: Map<String, Value> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), Value::from(v.as_str())))
                .collect();
            client_xml::sign(&data, secret, sign_type)
        }
    }
}

/// A field that goes into the signed message: not empty, and no control character (a line
/// feed would move the lines of the message).
fn check(name: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::arg(format!(
            "the front-end payment parameters need a {name}: it is empty"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::arg(format!(
            "{name} {:?} has a control character: pass it as the order has it",
            crate::error::one_line(value)
        )));
    }
    Ok(())
}

/// The `prepay_id` as the order's answer has it, without `prepay_id=` (added for `package`).
fn check_prepay_id(prepay_id: &str) -> Result<(), Error> {
    check("prepay_id", prepay_id)?;
    if prepay_id.starts_with("prepay_id=") {
        return Err(Error::arg(
            "pass the prepay_id alone (wx…), as the order's answer has it: `prepay_id=` is added for package",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PublicKey;

    const APPID: &str = "wxd678efh567hg6787";
    const PREPAY: &str = "wx201410272009395522657a690389285100";
    const NONCE: &str = "5K8264ILTKCH16CQ2502SI8ZNMTM67VS";
    const TS: i64 = 1_414_561_699;
    // The APIv2 documentation's example key.
    const SECRET: &str = "192006250b4c09247ec02edce69f6a2d";

    fn keys() -> (PrivateKey, PublicKey) {
        let pkey =
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let private = PrivateKey::from_openssl(pkey);
        let public = private.public_key().unwrap();
        (private, public)
    }

    /// The documented message, written out by hand (not with the module's `message`).
    fn verifies(message: &str, sig: &str, key: &PublicKey) -> bool {
        let sig = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, sig).unwrap();
        let mut v =
            openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), key.as_openssl())
                .unwrap();
        v.verify_oneshot(&sig, message.as_bytes()).unwrap()
    }

    #[test]
    fn jsapi_rsa_signs_the_documented_message_and_serializes_as_the_sdks_take_it() {
        let (private, public) = keys();
        let p = JsapiPayParams::with_nonce(APPID, PREPAY, TS, NONCE, &private).unwrap();
        let doc = format!("{APPID}\n1414561699\n{NONCE}\nprepay_id={PREPAY}\n");
        assert!(verifies(&doc, &p.pay_sign, &public), "{p:?}");
        assert_eq!(p.message(), doc.as_bytes());
        // PKCS#1 v1.5 is deterministic: the same inputs sign the same.
        assert_eq!(
            p,
            JsapiPayParams::with_nonce(APPID, PREPAY, TS, NONCE, &private).unwrap()
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(
            json,
            format!(
                "{{\"appId\":\"{APPID}\",\"timeStamp\":\"1414561699\",\"nonceStr\":\"{NONCE}\",\"package\":\"prepay_id={PREPAY}\",\"signType\":\"RSA\",\"paySign\":\"{}\"}}",
                p.pay_sign
            )
        );
        let back: JsapiPayParams = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        // Another field, another signature: the message is what is signed.
        let other =
            JsapiPayParams::with_nonce("wx0000000000000000", PREPAY, TS, NONCE, &private).unwrap();
        assert!(!verifies(&doc, &other.pay_sign, &public));
    }

    #[test]
    fn app_rsa_signs_the_documented_message_and_serializes_as_the_sdks_take_it() {
        let (private, public) = keys();
        let p = AppPayParams::with_nonce(APPID, "1900000109", PREPAY, TS, NONCE, &private).unwrap();
        let doc = format!("{APPID}\n1414561699\n{NONCE}\n{PREPAY}\n");
        assert!(verifies(&doc, &p.sign, &public), "{p:?}");
        assert_eq!(p.message(), doc.as_bytes());
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            format!(
                "{{\"appid\":\"{APPID}\",\"partnerid\":\"1900000109\",\"prepayid\":\"{PREPAY}\",\"package\":\"Sign=WXPay\",\"noncestr\":\"{NONCE}\",\"timestamp\":\"1414561699\",\"sign\":\"{}\"}}",
                p.sign
            )
        );
    }

    // The expected signs were computed independently, with python3:
    //   import hashlib, hmac
    //   m = "&".join(f"{k}={d[k]}" for k in sorted(d)) + "&key=" + key
    //   hashlib.md5(m.encode()).hexdigest().upper()
    //   hmac.new(key.encode(), m.encode(), hashlib.sha256).hexdigest().upper()

    #[test]
    fn jsapi_v2_signs_the_sorted_fields_with_md5_or_hmac_sha256() {
        let md5 = JsapiPayParams::with_nonce(
            APPID,
            PREPAY,
            TS,
            NONCE,
            PaySigner::v2(SignType::Md5, SECRET),
        )
        .unwrap();
        assert_eq!(md5.sign_type, "MD5");
        assert_eq!(md5.pay_sign, "F9F536C7D2EB94E401B419C84D13E046");
        let hmac = JsapiPayParams::with_nonce(
            APPID,
            PREPAY,
            TS,
            NONCE,
            PaySigner::v2(SignType::HmacSha256, SECRET),
        )
        .unwrap();
        assert_eq!(hmac.sign_type, "HMAC-SHA256");
        assert_eq!(
            hmac.pay_sign,
            "843E033AD45A3B87B8150C4D2A1A01C53130140D983227C193EB0DF3F2839E0B"
        );
        assert_eq!(
            serde_json::to_string(&md5).unwrap(),
            format!("{{\"appId\":\"{APPID}\",\"timeStamp\":\"1414561699\",\"nonceStr\":\"{NONCE}\",\"package\":\"prepay_id={PREPAY}\",\"signType\":\"MD5\",\"paySign\":\"F9F536C7D2EB94E401B419C84D13E046\"}}")
        );
    }

    #[test]
    fn app_v2_signs_the_sorted_fields_with_md5_or_hmac_sha256() {
        let sign = |t| {
            AppPayParams::with_nonce(
                APPID,
                "1900000109",
                PREPAY,
                TS,
                NONCE,
                PaySigner::v2(t, SECRET),
            )
            .unwrap()
            .sign
        };
        assert_eq!(sign(SignType::Md5), "DE3E5371CF6EF309F5432A191351B1DB");
        assert_eq!(
            sign(SignType::HmacSha256),
            "8E3643825D88B5C76A74D28552211D881262763C072610D19CDEF08F0F64D71A"
        );
    }

    #[test]
    fn fresh_parameters_are_now_and_random() {
        let (private, public) = keys();
        let before = formatter::timestamp();
        let a = JsapiPayParams::new(APPID, PREPAY, &private).unwrap();
        let b = JsapiPayParams::new(APPID, PREPAY, &private).unwrap();
        let t: i64 = a.time_stamp.parse().unwrap();
        assert!(t >= before && t <= formatter::timestamp());
        assert_eq!(a.nonce_str.len(), NONCE_LEN);
        assert_ne!(a.nonce_str, b.nonce_str);
        assert!(Rsa::verify(a.message(), &a.pay_sign, &public));
        let app = AppPayParams::new(APPID, "1900000109", PREPAY, &private).unwrap();
        assert_eq!(app.noncestr.len(), NONCE_LEN);
        assert!(Rsa::verify(app.message(), &app.sign, &public));
    }

    #[test]
    fn bad_inputs_are_refused_saying_what_to_pass() {
        let (private, _) = keys();
        let e = JsapiPayParams::new(APPID, &format!("prepay_id={PREPAY}"), &private).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)));
        assert!(e.to_string().contains("prepay_id alone"), "{e}");
        let e = JsapiPayParams::new("", PREPAY, &private).unwrap_err();
        assert!(e.to_string().contains("appid"), "{e}");
        let e = AppPayParams::new(APPID, "", PREPAY, &private).unwrap_err();
        assert!(e.to_string().contains("mchid"), "{e}");
        let e = JsapiPayParams::new("wx1\nwx2", PREPAY, &private).unwrap_err();
        assert!(e.to_string().contains("control character"), "{e}");
        assert!(!e.to_string().contains('\n'));
        // An empty APIv2 key signs nothing.
        let e = JsapiPayParams::new(APPID, PREPAY, PaySigner::v2(SignType::Md5, "")).unwrap_err();
        assert!(matches!(e, Error::Config { .. }), "{e:?}");
    }

    #[test]
    fn the_client_signs_with_the_keys_it_holds() {
        let (private, public) = keys();
        let (_, platform) = keys();
        let client = crate::Builder::new()
            .mchid("1900000109")
            .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
            .private_key(private)
            .platform_public_key("PUB_KEY_ID_0119000001092024061100000000", platform.clone())
            .secret(SECRET)
            .build()
            .unwrap();
        let j = client.jsapi_pay_params(APPID, PREPAY).unwrap();
        assert_eq!(j.sign_type, "RSA");
        assert!(Rsa::verify(j.message(), &j.pay_sign, &public));
        let a = client.app_pay_params(APPID, PREPAY).unwrap();
        assert_eq!(a.partnerid, "1900000109");
        assert!(Rsa::verify(a.message(), &a.sign, &public));
        let t = |s: &str| s.parse::<i64>().unwrap();
        let j2 = client
            .jsapi_pay_params_v2(APPID, PREPAY, SignType::HmacSha256)
            .unwrap();
        let again = JsapiPayParams::with_nonce(
            APPID,
            PREPAY,
            t(&j2.time_stamp),
            &j2.nonce_str,
            PaySigner::v2(SignType::HmacSha256, SECRET),
        )
        .unwrap();
        assert_eq!(j2, again);
        let a2 = client
            .app_pay_params_v2(APPID, PREPAY, SignType::Md5)
            .unwrap();
        let again = AppPayParams::with_nonce(
            APPID,
            "1900000109",
            PREPAY,
            t(&a2.timestamp),
            &a2.noncestr,
            PaySigner::v2(SignType::Md5, SECRET),
        )
        .unwrap();
        assert_eq!(a2, again);

        // A client without the key says which setting signs what.
        let v2_only = crate::Builder::new()
            .mchid("1900000109")
            .secret(SECRET)
            .build()
            .unwrap();
        let e = v2_only.jsapi_pay_params(APPID, PREPAY).unwrap_err();
        assert!(e.to_string().contains("private_key"), "{e}");
        assert!(v2_only
            .app_pay_params_v2(APPID, PREPAY, SignType::Md5)
            .is_ok());
        let v3_only = crate::Builder::new()
            .mchid("1900000109")
            .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
            .private_key(keys().0)
            .platform_public_key("PUB_KEY_ID_0119000001092024061100000000", platform)
            .build()
            .unwrap();
        let e = v3_only
            .jsapi_pay_params_v2(APPID, PREPAY, SignType::Md5)
            .unwrap_err();
        assert!(e.to_string().contains("Builder::secret"), "{e}");
    }

    #[test]
    fn the_signer_keeps_its_secret_out_of_debug() {
        let shown = format!("{:?}", PaySigner::v2(SignType::Md5, SECRET));
        assert!(!shown.contains(SECRET), "{shown}");
        let (private, _) = keys();
        assert!(format!("{:?}", PaySigner::from(&private)).contains("redacted"));
    }
}
