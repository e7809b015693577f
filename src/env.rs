//! [`Builder::from_env`]: a builder from the `WECHATPAY_*` variables that the `wechatpay`
//! command reads and that `wechatpay serve` writes to its `env` file, so that
//! `. "$dir/env" && cargo run` configures a program as it configures the command line.

use std::path::Path;
use std::time::Duration;

use crate::crypto::Rsa;
use crate::error::Error;
use crate::Builder;

/// The endpoint (`https://api.mch.weixin.qq.com/` when unset).
const BASE_URI: &str = "WECHATPAY_BASE_URI";
/// The merchant id.
const MCHID: &str = "WECHATPAY_MCHID";
/// The merchant API certificate's serial number.
const SERIAL: &str = "WECHATPAY_SERIAL";
/// The merchant API private key: a path (`apiclient_key.pem`), or any form
/// [`Rsa::from_private`] takes (`file://…`, PEM text).
const PRIVATE_KEY: &str = "WECHATPAY_PRIVATE_KEY";
/// The platform public key: a path (`pub_key.pem`), or any form [`Rsa::from_public`] takes.
const PUBLIC_KEY: &str = "WECHATPAY_PUBLIC_KEY";
/// The platform public key's id, `PUB_KEY_ID_…`.
const PUBLIC_KEY_ID: &str = "WECHATPAY_PUBLIC_KEY_ID";
/// Platform certificates: paths, comma-separated.
const PLATFORM_CERT: &str = "WECHATPAY_PLATFORM_CERT";
/// Seconds a call may take (30 when unset).
const TIMEOUT: &str = "WECHATPAY_TIMEOUT";
/// The APIv2 key.
const SECRET: &str = "WECHATPAY_SECRET";
/// `true` to accept an APIv2 answer signed MD5 or HMAC-SHA256 whatever was asked.
const V2_EITHER_SIGN_TYPE: &str = "WECHATPAY_V2_EITHER_SIGN_TYPE";
/// The merchant certificate for APIv2 mutual TLS (a path).
const MERCHANT_CERT: &str = "WECHATPAY_MERCHANT_CERT";
/// The merchant private key for APIv2 mutual TLS (a path).
const MERCHANT_KEY: &str = "WECHATPAY_MERCHANT_KEY";

/// What to set, said by every error about the merchant's own settings.
const WHAT_TO_SET: &str = "set WECHATPAY_MCHID, WECHATPAY_SERIAL and WECHATPAY_PRIVATE_KEY (the \
merchant id, its API certificate's serial number and the path of apiclient_key.pem) for APIv3, \
WECHATPAY_SECRET for APIv2, or source the env file `wechatpay serve` writes";

/// The variable's name before a key error: which of several to fix. (The message names the
/// file when there is one; a value that is not a path is never shown.)
fn named(var: &'static str) -> impl FnOnce(Error) -> Error {
    move |e| e.prefixed(var)
}

/// A key variable's value loaded with `load` (`Rsa::from_private` …) as the command line
/// takes it: a plain path, unless it is already a `file://`, `private.pkcs8://` … form or PEM
/// text.
fn load_key<T>(
    var: &'static str,
    value: &str,
    load: fn(&str) -> Result<T, Error>,
) -> Result<T, Error> {
    let value = value.trim();
    let result = if value.contains("://") || value.contains("-----BEGIN") {
        load(value)
    } else {
        load(&format!("file://{value}"))
    };
    result.map_err(named(var))
}

/// PEM text for [`Builder::merchant_identity`]: the file's, or the value itself when it is PEM.
fn pem_text(var: &'static str, value: &str) -> Result<String, Error> {
    if value.contains("-----BEGIN") {
        return Ok(value.to_string());
    }
    let path = Path::new(value.strip_prefix("file://").unwrap_or(value));
    std::fs::read_to_string(path)
        .map_err(|e| Error::config_from(format!("{var}: cannot read {}", path.display()), e))
}

/// `a` and `b` set together, or neither.
fn pair<'a>(
    (a, va): (&str, Option<&'a str>),
    (b, vb): (&str, Option<&'a str>),
) -> Result<Option<(&'a str, &'a str)>, Error> {
    match (va, vb) {
        (Some(x), Some(y)) => Ok(Some((x, y))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::config(format!(
            "{a} is set but {b} is not: set both"
        ))),
        (None, Some(_)) => Err(Error::config(format!(
            "{b} is set but {a} is not: set both"
        ))),
    }
}

impl Builder {
    /// A builder from the environment's `WECHATPAY_*` variables: the ones the `wechatpay`
    /// command reads and `wechatpay serve` writes to its `env` file, so that a program run
    /// in a shell that sourced it talks to the sandbox as the command line does. Key
    /// variables hold paths (`WECHATPAY_PRIVATE_KEY=/etc/wechatpay/apiclient_key.pem`), or any
    /// form [`Rsa::from_private`] / [`Rsa::from_public`] takes (`file://…`, PEM text).
    ///
    /// | variable | sets |
    /// |---|---|
    /// | `WECHATPAY_BASE_URI` | [`Builder::base_uri`] |
    /// | `WECHATPAY_MCHID`, `WECHATPAY_SERIAL`, `WECHATPAY_PRIVATE_KEY` | [`Builder::mchid`], [`Builder::serial`], [`Builder::private_key`] (serial and key together, with the id) |
    /// | `WECHATPAY_PUBLIC_KEY`, `WECHATPAY_PUBLIC_KEY_ID` | [`Builder::platform_public_key`] (both or neither) |
    /// | `WECHATPAY_PLATFORM_CERT` | [`Builder::platform_certificate`], for each comma-separated path |
    /// | `WECHATPAY_TIMEOUT` | [`Builder::timeout`], in seconds |
    /// | `WECHATPAY_SECRET` | [`Builder::secret`] (APIv2) |
    /// | `WECHATPAY_V2_EITHER_SIGN_TYPE` | [`Builder::v2_either_sign_type`] (`true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`) |
    /// | `WECHATPAY_MERCHANT_CERT`, `WECHATPAY_MERCHANT_KEY` | [`Builder::merchant_identity`] (paths; both or neither) |
    ///
    /// An empty variable counts as unset. `WECHATPAY_APIV3_KEY` is not read here: it is for
    /// [`Client::notifier`](crate::Client::notifier) (or [`Builder::auto_certificates`]).
    /// The result is a builder, to add to before [`Builder::build`].
    ///
    /// A variable that cannot be used is an error that names it and says what to set
    /// ([`Error::Config`], or [`Error::Key`] for a key: a file that cannot be read or
    /// holds no key); so is an environment that sets none of `WECHATPAY_MCHID` and
    /// `WECHATPAY_SECRET` (a shell that has not sourced the env file), and a serial or key
    /// without the other two. Secrets are never in an error.
    ///
    /// ```no_run
    /// use serde_json::json;
    /// use wechatpay_chain::Builder;
    ///
    /// # fn main() -> Result<(), wechatpay_chain::Error> {
    /// // dir=$(mktemp -d); wechatpay serve --keys-dir "$dir" & … ; . "$dir/env"; cargo run
    /// let client = Builder::from_env()?.build()?;
    /// let res = client["v3/pay/transactions/native"].post(json!({"json": {
    ///     "appid": "wxd678efh567hg6787", "mchid": std::env::var("WECHATPAY_MCHID").unwrap(),
    ///     "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "1217752501201407033233368018",
    ///     "notify_url": "https://www.weixin.qq.com/wxpay/pay.php", "amount": {"total": 1},
    /// }}))?;
    /// println!("{}", res.text());
    /// # Ok(()) }
    /// ```
    pub fn from_env() -> Result<Builder, Error> {
        Self::from_env_with(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// [`Builder::from_env`] with the variables looked up by `var` (its name in, its value
    /// out, `None` when unset): for tests, or settings kept elsewhere under the same names.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use wechatpay_chain::Builder;
    ///
    /// let vars = HashMap::from([("WECHATPAY_MCHID", "1900000001"), ("WECHATPAY_SERIAL", "5157F09E")]);
    /// let e = Builder::from_env_with(|k| vars.get(k).map(|v| v.to_string())).unwrap_err();
    /// assert!(e.to_string().contains("WECHATPAY_PRIVATE_KEY is not set"), "{e}");
    /// ```
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Result<Builder, Error> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let [base_uri, mchid, serial, key, public, public_id, certs, timeout, secret, either, mcert, mkey] =
            [
                BASE_URI,
                MCHID,
                SERIAL,
                PRIVATE_KEY,
                PUBLIC_KEY,
                PUBLIC_KEY_ID,
                PLATFORM_CERT,
                TIMEOUT,
                SECRET,
                V2_EITHER_SIGN_TYPE,
                MERCHANT_CERT,
                MERCHANT_KEY,
            ]
            .map(get);
        if mchid.is_none() && secret.is_none() {
            return Err(Error::config(format!(
                "none of the merchant's WECHATPAY_* variables is set: {WHAT_TO_SET}"
            )));
        }
        // The merchant's signing settings: all three, or an APIv2 client's id alone.
        if serial.is_some() || key.is_some() || secret.is_none() {
            let unset: Vec<&str> = [(MCHID, &mchid), (SERIAL, &serial), (PRIVATE_KEY, &key)]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(n, _)| *n)
                .collect();
            if !unset.is_empty() {
                return Err(Error::config(format!(
                    "{} {} not set: {WHAT_TO_SET}",
                    unset.join(" and "),
                    if unset.len() == 1 { "is" } else { "are" }
                )));
            }
        }
        let mut b = Builder::new();
        if let Some(u) = base_uri {
            b = b.base_uri(u.trim());
        }
        if let Some(m) = &mchid {
            b = b.mchid(m);
        }
        if let Some(s) = &serial {
            b = b.serial(s);
        }
        if let Some(k) = &key {
            b = b.private_key(load_key(PRIVATE_KEY, k, Rsa::from_private)?);
        }
        if let Some((k, id)) = pair(
            (PUBLIC_KEY, public.as_deref()),
            (PUBLIC_KEY_ID, public_id.as_deref()),
        )? {
            b = b.platform_public_key(id, load_key(PUBLIC_KEY, k, Rsa::from_public)?);
        }
        for c in certs.iter().flat_map(|c| c.split(',')) {
            if !c.trim().is_empty() {
                b = b.platform_certificate(load_key(PLATFORM_CERT, c, Rsa::from_certificate)?);
            }
        }
        if let Some(t) = timeout {
            b = b.timeout(seconds(&t)?);
        }
        if let Some(s) = &secret {
            b = b.secret(s);
        }
        if let Some(e) = either {
            b = b.v2_either_sign_type(flag(&e)?);
        }
        if let Some((c, k)) = pair(
            (MERCHANT_CERT, mcert.as_deref()),
            (MERCHANT_KEY, mkey.as_deref()),
        )? {
            let key = pem_text(MERCHANT_KEY, k.trim())?;
            // the loader's guard (an encrypted key refused, never a prompt), with the name
            Rsa::from_private(&key).map_err(named(MERCHANT_KEY))?;
            b = b.merchant_identity(&pem_text(MERCHANT_CERT, c.trim())?, &key);
        }
        Ok(b)
    }
}

/// `WECHATPAY_TIMEOUT`: seconds, more than 0 and less than a day.
fn seconds(value: &str) -> Result<Duration, Error> {
    match value.trim().parse::<f64>() {
        Ok(t) if t > 0.0 && t < 86_400.0 => Ok(Duration::from_secs_f64(t)),
        _ => Err(Error::config(format!(
            "{TIMEOUT} {value:?} is not a number of seconds between 0 and 86400 (30 when unset)"
        ))),
    }
}

/// `WECHATPAY_V2_EITHER_SIGN_TYPE`: a yes or a no.
fn flag(value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::config(format!(
            "{V2_EITHER_SIGN_TYPE} {value:?} is not true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Builder, Error> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Builder::from_env_with(|k| vars.get(k).cloned())
    }

    fn message(r: Result<Builder, Error>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn nothing_set_says_what_to_set() {
        let m = message(from(&[]));
        assert!(
            m.contains("WECHATPAY_MCHID") && m.contains("env file"),
            "{m}"
        );
        // empty counts as unset
        let m = message(from(&[(MCHID, " "), (SECRET, "")]));
        assert!(m.contains("none of"), "{m}");
    }

    #[test]
    fn each_missing_or_bad_variable_is_named() {
        let m = message(from(&[(MCHID, "1900000001")]));
        assert!(
            m.contains("WECHATPAY_SERIAL and WECHATPAY_PRIVATE_KEY are not set"),
            "{m}"
        );
        let m = message(from(&[(SERIAL, "5157F09E"), (SECRET, "k")]));
        assert!(
            m.contains("WECHATPAY_MCHID and WECHATPAY_PRIVATE_KEY"),
            "{m}"
        );
        let base = [(MCHID, "1900000001"), (SERIAL, "5157F09E")];
        let with = |more: &[(&str, &str)]| {
            let mut v = base.to_vec();
            v.extend_from_slice(more);
            message(from(&v))
        };
        let m = with(&[(PRIVATE_KEY, "/nowhere/apiclient_key.pem")]);
        assert!(m.starts_with("key error: WECHATPAY_PRIVATE_KEY: "), "{m}");
        assert_eq!(m.matches("/nowhere/apiclient_key.pem").count(), 1, "{m}");
        // PEM text in the variable that is not a key: named, never shown
        let secretish = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----";
        let m = with(&[(PRIVATE_KEY, secretish)]);
        assert!(
            m.contains("WECHATPAY_PRIVATE_KEY") && !m.contains("c2VjcmV0"),
            "{m}"
        );
        let m = message(from(&[(SECRET, "k"), (PUBLIC_KEY, "/nowhere/pub_key.pem")]));
        assert!(m.contains("WECHATPAY_PUBLIC_KEY_ID"), "{m}");
        let m = message(from(&[(SECRET, "k"), (PUBLIC_KEY_ID, "PUB_KEY_ID_01")]));
        assert!(m.contains("but WECHATPAY_PUBLIC_KEY is not"), "{m}");
        let m = message(from(&[(SECRET, "k"), (PLATFORM_CERT, "/nowhere/a.pem")]));
        assert!(
            m.contains("WECHATPAY_PLATFORM_CERT") && m.contains("/nowhere/a.pem"),
            "{m}"
        );
        let m = message(from(&[(SECRET, "k"), (TIMEOUT, "soon")]));
        assert!(m.contains("WECHATPAY_TIMEOUT"), "{m}");
        let m = message(from(&[(SECRET, "k"), (V2_EITHER_SIGN_TYPE, "maybe")]));
        assert!(m.contains("WECHATPAY_V2_EITHER_SIGN_TYPE"), "{m}");
        let m = message(from(&[(SECRET, "k"), (MERCHANT_CERT, "/nowhere/c.pem")]));
        assert!(m.contains("WECHATPAY_MERCHANT_KEY"), "{m}");
    }

    #[test]
    fn an_apiv2_client_needs_only_its_key() {
        let b = from(&[
            (SECRET, "0123456789abcdef0123456789abcdef"),
            (TIMEOUT, "2.5"),
        ])
        .unwrap();
        assert!(b.build().is_ok());
        let b = from(&[
            (MCHID, "1900000001"),
            (SECRET, "k"),
            (V2_EITHER_SIGN_TYPE, "yes"),
        ]);
        assert!(b.unwrap().build().is_ok());
    }
}
