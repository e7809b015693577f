//! `wechatpay serve --merchants N --service-provider --sub-merchants N`: several merchants in
//! one sandbox, and an env file for each beyond the first (`env.<mchid>`, beside `env`).

use std::path::Path;

use clap::Args;
use wechatpay_chain::Error;
use wechatpay_emulator::{private_key_pem, Emulator, EmulatorConfig, MerchantConfig, MerchantRole};

#[derive(Args, Debug, Clone)]
pub struct MerchantArgs {
    /// Direct merchants in the sandbox, the first (--mchid) included; the others are numbered
    /// after it, each with its own keys and an env file `env.<MCHID>` beside `env`.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    merchants: u16,
    /// Add a service provider (服务商) numbered after the direct merchants, with
    /// --sub-merchants sub-merchants after it; it orders for them only.
    #[arg(long)]
    service_provider: bool,
    /// Sub-merchants of the --service-provider.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "service_provider", value_parser = clap::value_parser!(u16).range(1..=100))]
    sub_merchants: u16,
    /// Of the direct merchants beyond the first, the last N speak the 国密 scheme
    /// (WECHATPAY2-SM2-WITH-SM3) in an RSA sandbox: their env files say WECHATPAY_SCHEME=sm2
    /// and name the sandbox's SM2 platform key.
    #[arg(long, value_name = "N", default_value_t = 0)]
    sm2_merchants: u16,
}

/// The merchant numbers after `first`: the next numbers when it is one, else after 1900000001.
fn numbers_after(first: &str) -> impl Iterator<Item = String> {
    let base = first.parse::<u64>().unwrap_or(1_900_000_001);
    (1..).map(move |i| (base + i).to_string())
}

/// `config` with the merchants the options ask for beyond the first (`first`, its mchid).
pub fn configure(
    a: &MerchantArgs,
    mut config: EmulatorConfig,
    first: &str,
) -> Result<EmulatorConfig, Error> {
    let mut numbers = numbers_after(first);
    let mut next = || numbers.next().unwrap_or_default();
    #[cfg(not(feature = "shangmi"))]
    if a.sm2_merchants > 0 {
        return Err(Error::config(
            "--sm2-merchants: this wechatpay was built without the 国密 scheme; install it with \
             `--features shangmi`",
        ));
    }
    if a.sm2_merchants >= a.merchants {
        return Err(Error::config(format!(
            "--sm2-merchants {} needs more merchants: --merchants {} counts the first (of \
             --scheme) too, so at most {} can speak SM2",
            a.sm2_merchants,
            a.merchants,
            a.merchants - 1
        )));
    }
    for i in 1..a.merchants {
        config = config.merchant(in_scheme(a, i, MerchantConfig::new(next())));
    }
    if a.service_provider {
        let sp = MerchantConfig::new(next());
        let subs: Vec<MerchantConfig> = (0..a.sub_merchants)
            .map(|_| MerchantConfig::new(next()))
            .collect();
        config = config.service_provider(sp, subs);
    }
    Ok(config)
}

/// Direct merchant `i` (the first is 0), in SM2 when one of the last `--sm2-merchants`.
#[cfg(feature = "shangmi")]
fn in_scheme(a: &MerchantArgs, i: u16, m: MerchantConfig) -> MerchantConfig {
    match i >= a.merchants - a.sm2_merchants {
        true => m.scheme(wechatpay_chain::Scheme::Sm2),
        false => m,
    }
}

#[cfg(not(feature = "shangmi"))]
fn in_scheme(_: &MerchantArgs, _: u16, m: MerchantConfig) -> MerchantConfig {
    m
}

/// Writes `env.<mchid>` for each merchant beyond the first: the first's variables (`env`)
/// with the merchant's own number, serial, private key (`apiclient_key.<mchid>.pem`), APIv3
/// key and APIv2 key, and what it is (`WECHATPAY_SANDBOX_ROLE`, `WECHATPAY_SP_MCHID` for a
/// sub-merchant). The TLS merchant certificate stays the first merchant's, so it is left out.
/// `write` writes a private file; `render` makes an env file's text.
pub fn write_env_files(
    emu: &Emulator,
    dir: &Path,
    first_env: &[(&str, String)],
    write: impl Fn(&Path, &str) -> Result<(), Error>,
    render: impl Fn(&[(&str, String)]) -> String,
) -> Result<Vec<String>, Error> {
    let mut written = Vec::new();
    for m in emu.merchants().iter().skip(1) {
        let mchid = m.mchid();
        let mut env: Vec<(&str, String)> = first_env
            .iter()
            .filter(|(k, _)| !matches!(*k, "WECHATPAY_MERCHANT_CERT" | "WECHATPAY_MERCHANT_KEY"))
            .cloned()
            .collect();
        let mut set = |k: &'static str, v: String| match env.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        };
        set("WECHATPAY_MCHID", mchid.to_string());
        set("WECHATPAY_SERIAL", m.serial().to_string());
        if let Some(k) = m.private_key() {
            let p = dir.join(format!("apiclient_key.{mchid}.pem"));
            write(&p, &private_key_pem(k)?)?;
            set("WECHATPAY_PRIVATE_KEY", p.display().to_string());
        }
        set("WECHATPAY_APIV3_KEY", m.apiv3_key().to_string());
        set("WECHATPAY_SECRET", m.apiv2_key().to_string());
        let role = match m.role() {
            MerchantRole::Direct => "direct".to_string(),
            MerchantRole::ServiceProvider { .. } => "service-provider".to_string(),
            MerchantRole::SubMerchant { sp_mchid } => {
                set("WECHATPAY_SP_MCHID", sp_mchid.clone());
                "sub-merchant".to_string()
            }
        };
        set("WECHATPAY_SANDBOX_ROLE", role);
        if m.scheme() != emu.scheme() {
            crate::serve_schemes::second_platform_env(emu, dir, &write, &mut env)?;
        }
        let name = format!("env.{mchid}");
        write(&dir.join(&name), &render(&env))?;
        written.push(name);
    }
    Ok(written)
}
