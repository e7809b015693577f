//! Several merchants in one sandbox: direct merchants and service providers with their
//! sub-merchants, each with its own mchid, key and serial, APIv3 key and APIv2 key. The first
//! merchant stays in [`Settings`]' own fields (a sandbox without more is the one merchant of
//! old); the others are [`Merchant`]s in [`Settings::merchants`].
//!
//! The signature check knows who signed a request; the flows need it deep down to check a
//! body's `mchid` / `sp_mchid`. It travels as a task-local set around the dispatch
//! ([`with_signer`]), so the flows' signatures stay as they are.

use serde_json::{json, Value};
use wechatpay_chain::crypto::{PrivateKey, PublicKey};
use wechatpay_chain::Error;

use crate::http::settings::Settings;
use crate::util::random_hex;

tokio::task_local! {
    static SIGNER: String;
}

/// A merchant of the sandbox, beyond the first: [`EmulatorConfig::merchant`] and
/// [`EmulatorConfig::service_provider`] (its sub-merchants are merchants too).
///
/// [`EmulatorConfig::merchant`]: crate::EmulatorConfig::merchant
/// [`EmulatorConfig::service_provider`]: crate::EmulatorConfig::service_provider
#[derive(Clone)]
pub struct MerchantConfig {
    mchid: String,
    private_key: Option<PrivateKey>,
    serial: Option<String>,
    apiv3_key: Option<String>,
    apiv2_key: Option<String>,
    scheme: Option<wechatpay_chain::Scheme>,
    sub_merchants: Vec<MerchantConfig>,
}

impl std::fmt::Debug for MerchantConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MerchantConfig")
            .field("mchid", &self.mchid)
            .field("serial", &self.serial)
            .field("sub_merchants", &self.sub_merchants)
            .finish_non_exhaustive()
    }
}

impl MerchantConfig {
    /// Merchant `mchid`, with a fresh key, serial, APIv3 key and APIv2 key.
    pub fn new(mchid: impl Into<String>) -> Self {
        MerchantConfig {
            mchid: mchid.into(),
            private_key: None,
            serial: None,
            apiv3_key: None,
            apiv2_key: None,
            scheme: None,
            sub_merchants: Vec::new(),
        }
    }

    /// Its merchant private key (the sandbox checks signatures with its public half).
    pub fn private_key(mut self, key: PrivateKey) -> Self {
        self.private_key = Some(key);
        self
    }

    /// Its merchant certificate serial.
    pub fn serial(mut self, serial: impl Into<String>) -> Self {
        self.serial = Some(serial.into());
        self
    }

    /// Its APIv3 key (32 bytes): its notifications are encrypted with it.
    pub fn apiv3_key(mut self, key: impl Into<String>) -> Self {
        self.apiv3_key = Some(key.into());
        self
    }

    /// Its APIv2 key.
    pub fn apiv2_key(mut self, key: impl Into<String>) -> Self {
        self.apiv2_key = Some(key.into());
        self
    }

    /// The scheme it signs in (the sandbox's by default): an RSA and an SM2 merchant can share
    /// one sandbox, which then holds a platform key of each kind.
    pub fn scheme(mut self, scheme: wechatpay_chain::Scheme) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// A sub-merchant of this merchant, which makes it a service provider.
    pub fn sub_merchant(mut self, sub: MerchantConfig) -> Self {
        self.sub_merchants.push(sub);
        self
    }
}

/// What a merchant is to the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MerchantRole {
    /// Orders for itself (`v3/pay/transactions/…`).
    Direct,
    /// Orders for its sub-merchants (`v3/pay/partner/transactions/…`) as `sp_mchid`.
    ServiceProvider {
        /// Its sub-merchants' numbers.
        sub_mchids: Vec<String>,
    },
    /// A sub-merchant of service provider `sp_mchid`.
    SubMerchant {
        /// Its service provider's number.
        sp_mchid: String,
    },
}

/// A merchant of the running sandbox, with what a client needs to act as it
/// ([`Emulator::merchants`](crate::Emulator::merchants),
/// [`Emulator::builder_for`](crate::Emulator::builder_for)).
#[derive(Clone)]
pub struct Merchant {
    pub(crate) mchid: String,
    pub(crate) serial: String,
    pub(crate) public_key: PublicKey,
    pub(crate) private_key: Option<PrivateKey>,
    pub(crate) apiv3_key: String,
    pub(crate) apiv2_key: String,
    pub(crate) role: MerchantRole,
    pub(crate) scheme: wechatpay_chain::Scheme,
}

impl std::fmt::Debug for Merchant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Merchant")
            .field("mchid", &self.mchid)
            .field("serial", &self.serial)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

impl Merchant {
    /// Its merchant number.
    pub fn mchid(&self) -> &str {
        &self.mchid
    }
    /// Its merchant certificate serial (`serial_no` of its `Authorization`).
    pub fn serial(&self) -> &str {
        &self.serial
    }
    /// Its private key, when the sandbox made it or was given it.
    pub fn private_key(&self) -> Option<&PrivateKey> {
        self.private_key.as_ref()
    }
    /// Its APIv3 key: its notifications decrypt with it, and only with it.
    pub fn apiv3_key(&self) -> &str {
        &self.apiv3_key
    }
    /// Its APIv2 key.
    pub fn apiv2_key(&self) -> &str {
        &self.apiv2_key
    }
    /// The scheme it signs in.
    pub fn scheme(&self) -> wechatpay_chain::Scheme {
        self.scheme
    }
    /// Direct merchant, service provider or sub-merchant.
    pub fn role(&self) -> &MerchantRole {
        &self.role
    }
}

/// Fills in the keys `configs` leave unset from `stored` (by mchid: private key, serial,
/// APIv3 key, APIv2 key), sub-merchants included: a restarted sandbox's merchants keep theirs.
pub(crate) fn fill(
    configs: &mut [MerchantConfig],
    stored: &impl Fn(&str) -> Option<(PrivateKey, String, String, String)>,
) {
    for c in configs {
        if let Some((key, serial, v3, v2)) = stored(&c.mchid) {
            c.private_key.get_or_insert(key);
            c.serial.get_or_insert(serial);
            c.apiv3_key.get_or_insert(v3);
            c.apiv2_key.get_or_insert(v2);
        }
        fill(&mut c.sub_merchants, stored);
    }
}

/// The merchants `configs` name, keys made where none is given; an mchid used twice (or the
/// first merchant's, `first`) is refused.
/// Keys made here are of `scheme`'s kind (SM2 in the 国密 scheme).
pub(crate) fn build(
    configs: &[MerchantConfig],
    first: &str,
    scheme: wechatpay_chain::Scheme,
) -> Result<Vec<Merchant>, Error> {
    let mut out: Vec<Merchant> = Vec::new();
    for c in configs {
        let subs: Vec<String> = c.sub_merchants.iter().map(|s| s.mchid.clone()).collect();
        let role = if subs.is_empty() {
            MerchantRole::Direct
        } else {
            MerchantRole::ServiceProvider { sub_mchids: subs }
        };
        out.push(one(c, role, scheme)?);
        for s in &c.sub_merchants {
            if !s.sub_merchants.is_empty() {
                return Err(Error::config(format!(
                    "sub-merchant {} cannot have sub-merchants of its own",
                    s.mchid
                )));
            }
            let role = MerchantRole::SubMerchant {
                sp_mchid: c.mchid.clone(),
            };
            out.push(one(s, role, scheme)?);
        }
    }
    let mut seen = vec![first];
    for m in &out {
        if m.mchid.is_empty() || !m.mchid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::config(format!(
                "merchant number {:?} must be digits",
                m.mchid
            )));
        }
        if seen.contains(&m.mchid.as_str()) {
            return Err(Error::config(format!(
                "merchant number {} is used twice: give each merchant its own",
                m.mchid
            )));
        }
        seen.push(&m.mchid);
    }
    Ok(out)
}

fn one(
    c: &MerchantConfig,
    role: MerchantRole,
    scheme: wechatpay_chain::Scheme,
) -> Result<Merchant, Error> {
    let scheme = c.scheme.unwrap_or(scheme);
    let private = match &c.private_key {
        Some(k) => k.clone(),
        None => crate::http::scheme::generate_key(scheme)?,
    };
    let serial = match &c.serial {
        Some(s) => wechatpay_chain::util::pem::normalize_serial(s)?,
        None => random_hex(20),
    };
    let apiv3_key = c.apiv3_key.clone().unwrap_or_else(|| random_hex(16));
    if apiv3_key.len() != wechatpay_chain::crypto::aes_gcm::KEY_LEN {
        return Err(Error::config(format!(
            "the APIv3 key of merchant {} must be 32 bytes",
            c.mchid
        )));
    }
    Ok(Merchant {
        mchid: c.mchid.clone(),
        serial,
        public_key: private.public_key()?,
        private_key: Some(private),
        apiv3_key,
        apiv2_key: c.apiv2_key.clone().unwrap_or_else(|| random_hex(16)),
        role,
        scheme,
    })
}

/// Runs `f` as a request signed by merchant `mchid`.
pub(crate) fn with_signer<R>(mchid: String, f: impl FnOnce() -> R) -> R {
    SIGNER.sync_scope(mchid, f)
}

impl Settings {
    /// The merchant that signed the request being answered: the first merchant outside one
    /// (a control request acts for it).
    pub(crate) fn signing_merchant(&self) -> String {
        SIGNER
            .try_with(Clone::clone)
            .unwrap_or_else(|_| self.mchid.clone())
    }

    /// Merchant `mchid`'s certificate serial and public key, if the sandbox has it.
    pub(crate) fn merchant_key_of(&self, mchid: &str) -> Option<(&str, &PublicKey)> {
        if mchid == self.mchid {
            return Some((&self.merchant_serial, &self.merchant_key));
        }
        self.other(mchid)
            .map(|m| (m.serial.as_str(), &m.public_key))
    }

    /// Merchant `mchid`'s public key, what the platform encrypts for it (the first merchant's
    /// for one the sandbox does not have).
    pub(crate) fn public_key_of(&self, mchid: &str) -> &PublicKey {
        self.merchant_key_of(mchid)
            .map_or(&self.merchant_key, |(_, k)| k)
    }

    fn other(&self, mchid: &str) -> Option<&Merchant> {
        self.merchants.iter().find(|m| m.mchid == mchid)
    }

    /// The APIv3 key of merchant `mchid` (the first merchant's for one the sandbox does not
    /// have: a sub-merchant of the first merchant, who is a service provider to any).
    pub(crate) fn apiv3_key_of(&self, mchid: &str) -> &str {
        self.other(mchid)
            .map_or(self.apiv3_key.as_str(), |m| m.apiv3_key.as_str())
    }

    /// The APIv2 key of merchant `mchid` (the first merchant's for one the sandbox does not
    /// have).
    pub(crate) fn apiv2_key_of(&self, mchid: &str) -> &str {
        self.other(mchid)
            .map_or(self.apiv2_key.as_str(), |m| m.apiv2_key.as_str())
    }

    /// Whether service provider `sp` may act for sub-merchant `sub`: a configured service
    /// provider for its own sub-merchants only; the first merchant (who names no sub-merchants,
    /// as before several merchants) for any number that is not one of the sandbox's merchants.
    pub(crate) fn may_act_for(&self, sp: &str, sub: &str) -> bool {
        match self.other(sp).map(|m| &m.role) {
            Some(MerchantRole::ServiceProvider { sub_mchids }) => {
                sub_mchids.iter().any(|s| s == sub)
            }
            Some(_) => false,
            None => sp == self.mchid && sub != self.mchid && self.other(sub).is_none(),
        }
    }

    /// The key of merchant `mchid`'s own order `no` in the state: the number itself for the
    /// first merchant (as before several merchants), `mchid` and the number for another.
    pub(crate) fn order_key(&self, mchid: &str, no: &str) -> String {
        if mchid == self.mchid {
            no.to_string()
        } else {
            format!("{mchid}\u{1}{no}")
        }
    }

    /// The key, among `keys` (kept by [`Settings::order_key`]), of number `no` for a control
    /// request, which no merchant signs: merchant `mchid`'s when given; else the first
    /// merchant's, else the one other merchant's with that number.
    pub(crate) fn control_key<'a>(
        &self,
        mut keys: impl Iterator<Item = &'a String>,
        no: &str,
        mchid: Option<&str>,
    ) -> Found {
        if let Some(m) = mchid {
            let key = self.order_key(m, no);
            return match keys.any(|k| *k == key) {
                true => Found::One(key),
                false => Found::None,
            };
        }
        let mut theirs = Vec::new();
        for k in keys {
            if k == no {
                return Found::One(k.clone());
            }
            if number_of(k) == no && k.contains('\u{1}') {
                theirs.push(k);
            }
        }
        match theirs.as_slice() {
            [one] => Found::One((*one).clone()),
            [] => Found::None,
            _ => Found::Several,
        }
    }

    /// Every merchant, the first one first.
    pub(crate) fn all_merchants(&self, first_private: Option<&PrivateKey>) -> Vec<Merchant> {
        let first = Merchant {
            mchid: self.mchid.clone(),
            serial: self.merchant_serial.clone(),
            public_key: self.merchant_key.clone(),
            private_key: first_private.cloned(),
            apiv3_key: self.apiv3_key.clone(),
            apiv2_key: self.apiv2_key.clone(),
            role: MerchantRole::Direct,
            scheme: self.scheme,
        };
        std::iter::once(first)
            .chain(self.merchants.iter().cloned())
            .collect()
    }
}

/// What [`Settings::control_key`] finds.
pub(crate) enum Found {
    One(String),
    None,
    /// Several merchants have the number: the request must name one.
    Several,
}

/// The number as its merchant knows it, of a key made by [`Settings::order_key`].
pub(crate) fn number_of(key: &str) -> &str {
    key.rsplit('\u{1}').next().unwrap_or(key)
}

/// 400 asking a control request to name the merchant of number `no` (`what`: which kind).
pub(crate) fn name_the_merchant(what: &str, no: &str) -> crate::http::answer::Answer {
    crate::http::answer::Answer::param_error(
        "/mchid",
        "body",
        format!("several merchants have a {what} {no}: name the merchant with mchid"),
        Value::from(no),
    )
}

/// The merchants as `GET /emulator` lists them: number, serial and role, no secrets.
pub(crate) fn listed(merchants: &[Merchant]) -> Value {
    let one = |m: &Merchant| {
        let mut v = json!({"mchid": m.mchid, "merchant_serial": m.serial});
        match &m.role {
            MerchantRole::Direct => v["role"] = json!("direct"),
            MerchantRole::ServiceProvider { sub_mchids } => {
                v["role"] = json!("service_provider");
                v["sub_mchids"] = json!(sub_mchids);
            }
            MerchantRole::SubMerchant { sp_mchid } => {
                v["role"] = json!("sub_merchant");
                v["sp_mchid"] = json!(sp_mchid);
            }
        }
        v
    };
    Value::Array(merchants.iter().map(one).collect())
}
