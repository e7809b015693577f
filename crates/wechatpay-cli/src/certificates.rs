//! `wechatpay certificates`: the CertificateDownloader of wechatpay-php. Downloads the platform
//! certificates, decrypts them, verifies the answer with them and saves each as
//! `wechatpay_<serial>.pem`; for a merchant in public-key mode it explains what to do instead.

/// `println!` that ignores a closed stdout instead of panicking.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($t)*);
    }};
}

use std::path::PathBuf;

use clap::Args;
use wechatpay_chain::{Builder, Error};

/// The options of the call form, spelt the same (`--mchid`, `--serial`, `--private-key`,
/// `--apiv3-key`, `--base-uri`, and their WECHATPAY_* variables), with wechatpay-php's
/// CertificateDownloader letters (-k -m -s -f -o -u) and its long names (`--key`, `--serialno`,
/// `--privatekey`, `--baseuri`) kept as aliases for existing scripts.
#[derive(Args)]
pub struct CertArgs {
    /// Merchant id.
    #[arg(short = 'm', long, env = "WECHATPAY_MCHID", value_name = "MCHID")]
    pub mchid: Option<String>,
    /// Merchant API certificate serial number.
    #[arg(
        short = 's',
        long,
        env = "WECHATPAY_SERIAL",
        value_name = "SERIAL",
        alias = "serialno"
    )]
    pub serial: Option<String>,
    /// Merchant API private key (path).
    #[arg(
        short = 'f',
        long,
        env = "WECHATPAY_PRIVATE_KEY",
        value_name = "PATH",
        alias = "privatekey"
    )]
    pub private_key: Option<String>,
    /// APIv3 key, to decrypt the certificates.
    #[arg(
        short = 'k',
        long,
        env = "WECHATPAY_APIV3_KEY",
        hide_env_values = true,
        value_name = "KEY",
        alias = "key"
    )]
    pub apiv3_key: Option<String>,
    /// Endpoint, https://api.mch.weixin.qq.com/ by default.
    #[arg(
        short = 'u',
        long,
        env = "WECHATPAY_BASE_URI",
        value_name = "URI",
        alias = "baseuri"
    )]
    pub base_uri: Option<String>,
    /// Where to save the certificates (current directory by default).
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Timeout of the download in seconds (default 30).
    #[arg(long, env = "WECHATPAY_TIMEOUT", value_name = "SECONDS")]
    pub timeout: Option<f64>,
}

fn need<'a>(v: Option<&'a str>, what: &str) -> Result<&'a str, Error> {
    v.ok_or_else(|| Error::InvalidArgument(format!("certificates needs {what}")))
}

const PUBLIC_KEY_HELP: &str = "\
This merchant verifies the platform with a WeChat Pay public key (微信支付公钥), not with
platform certificates, so there is no certificate to download. Set the public key up once:
  1. In the merchant platform (商户平台) → 账户中心 → API安全 → 微信支付公钥, download
     pub_key.pem and note its id, PUB_KEY_ID_….
  2. Give both to the client:
       Builder::new()….platform_public_key(\"PUB_KEY_ID_…\", Rsa::from_public(\"file:///path/to/pub_key.pem\")?)
     or on the command line: --public-key pub_key.pem --public-key-id PUB_KEY_ID_…
     (WECHATPAY_PUBLIC_KEY, WECHATPAY_PUBLIC_KEY_ID).
Answers then carry Wechatpay-Serial: PUB_KEY_ID_… and verify with that key.";

pub fn run(a: &CertArgs, key_source: impl Fn(&str) -> String) -> Result<(), Error> {
    let mchid = need(a.mchid.as_deref(), "-m/--mchid (WECHATPAY_MCHID)")?;
    let serial = need(a.serial.as_deref(), "-s/--serial (WECHATPAY_SERIAL)")?;
    let key = need(
        a.private_key.as_deref(),
        "-f/--private-key (WECHATPAY_PRIVATE_KEY)",
    )?;
    let apiv3 = need(
        a.apiv3_key.as_deref(),
        "-k/--apiv3-key (WECHATPAY_APIV3_KEY)",
    )?;
    // The option named, as the call options' key errors do (the error names the file).
    let private_key = crate::scheme::private_key(&key_source(key)).map_err(|e| match e {
        e @ Error::Key { .. } => e.prefixed("-f/--private-key (WECHATPAY_PRIVATE_KEY)"),
        other => other,
    })?;
    let mut b = Builder::new()
        .scheme(crate::scheme::get())
        .mchid(mchid)
        .serial(serial)
        .private_key(private_key);
    if let Some(u) = a.base_uri.as_deref() {
        b = b.base_uri(u);
    }
    if let Some(t) = a.timeout {
        b = b.timeout(crate::common::seconds(t, "--timeout")?);
    }
    let client = b.build()?;
    let certs = match client.download_certificates(apiv3) {
        Ok(c) => c,
        Err(
            e @ Error::Api {
                status: 403 | 404, ..
            },
        ) => {
            eprintln!("wechatpay: 无平台证书 no platform certificates for merchant {mchid}: {e}\n");
            eprintln!("{PUBLIC_KEY_HELP}");
            return Err(Error::config(
                "no platform certificates: the merchant is in public-key mode (see above)",
            ));
        }
        Err(e) => return Err(e),
    };
    let dir = a.output.clone().unwrap_or_else(|| PathBuf::from("."));
    std::fs::create_dir_all(&dir)?;
    say!("The answer's signature verified with the downloaded certificate.");
    for (i, c) in certs.iter().enumerate() {
        let path = dir.join(format!("wechatpay_{}.pem", c.serial));
        std::fs::write(&path, &c.pem)?;
        let x = c.certificate.as_openssl();
        say!("Certificate #{i} {{");
        say!("    Serial Number: {}", c.serial);
        say!("    Not Before: {} ({})", x.not_before(), c.effective_time);
        say!("    Not After: {} ({})", x.not_after(), c.expire_time);
        say!("    Saved to: {}", path.display());
        say!("}}");
    }
    Ok(())
}
