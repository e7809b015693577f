//! `wechatpay serve`: runs the emulator until interrupted, writes the keys a client needs to a
//! directory with an `env` file to source, and prints each request as it is checked.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use wechatpay_chain::{Error, Rsa};
use wechatpay_emulator::{private_key_pem, Emulator, EmulatorConfig, Mode};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Wechatpay-Serial: PUB_KEY_ID_… (v3/certificates answers 404).
    PublicKey,
    /// A self-issued platform certificate, downloadable from v3/certificates.
    Certificate,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// How answers name their signing key.
    #[arg(long, value_enum, default_value_t = ModeArg::PublicKey)]
    mode: ModeArg,
    /// Check requests with this merchant public key or certificate (path) instead of a
    /// generated key pair; --serial names its serial.
    #[arg(long, value_name = "PATH")]
    merchant_public_key: Option<String>,
    /// Where to write the keys and the env file (a new temporary directory by default).
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Serve HTTPS with a CA of its own, and issue the merchant certificate that APIv2 calls
    /// with "security": true present (mutual TLS); writes ca.pem and apiclient_cert.pem.
    #[arg(long)]
    tls: bool,
}

/// The global options that apply.
pub struct Globals<'a> {
    pub mchid: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub apiv3_key: Option<&'a str>,
    pub secret: Option<&'a str>,
}

/// Writes a file readable by its owner only: it may hold a private key or the APIv3 key.
fn write(path: &std::path::Path, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Config(format!("cannot write {}: {e}", path.display()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path).map_err(fail)?;
    std::io::Write::write_all(&mut f, text.as_bytes()).map_err(fail)
}

pub fn run(
    a: &ServeArgs,
    g: Globals<'_>,
    key_source: impl Fn(&str) -> String,
) -> Result<(), Error> {
    let mut config = EmulatorConfig::new()
        .port(a.port)
        .tls(a.tls)
        .mode(match a.mode {
            ModeArg::PublicKey => Mode::PublicKey,
            ModeArg::Certificate => Mode::Certificate,
        });
    if let Some(m) = g.mchid {
        config = config.mchid(m);
    }
    if let Some(s) = g.serial {
        config = config.merchant_serial(s);
    }
    if let Some(k) = g.apiv3_key {
        config = config.apiv3_key(k);
    }
    if let Some(k) = g.secret {
        config = config.apiv2_key(k);
    }
    if let Some(p) = &a.merchant_public_key {
        let text = key_source(p);
        config = match Rsa::from_certificate(&text) {
            Ok(cert) => config.merchant_certificate(cert),
            Err(_) => {
                let serial = g.serial.ok_or_else(|| {
                    Error::InvalidArgument(
                        "--merchant-public-key with a public key needs --serial".into(),
                    )
                })?;
                config.merchant_public_key(serial, Rsa::from_public(&text)?)
            }
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let emu = rt.block_on(Emulator::start(config))?;
    let dir = match &a.keys_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("wechatpay-emulator-{}", emu.addr().port())),
    };
    std::fs::create_dir_all(&dir)?;
    let mut env = vec![
        format!("export WECHATPAY_BASE_URI={}", emu.base_uri()),
        format!("export WECHATPAY_MCHID={}", emu.mchid()),
        format!("export WECHATPAY_SERIAL={}", emu.merchant_serial()),
    ];
    let key_path = dir.join("apiclient_key.pem");
    if let Some(k) = emu.merchant_private_key() {
        write(&key_path, &private_key_pem(k)?)?;
        env.push(format!(
            "export WECHATPAY_PRIVATE_KEY={}",
            key_path.display()
        ));
    }
    if let (Some(ca), Some(cert)) = (emu.ca_certificate_pem(), emu.merchant_certificate_pem()) {
        let ca_path = dir.join("ca.pem");
        write(&ca_path, ca)?;
        // The command line trusts SSL_CERT_FILE (which then stands for the system's roots).
        env.push(format!("export SSL_CERT_FILE={}", ca_path.display()));
        let cert_path = dir.join("apiclient_cert.pem");
        write(&cert_path, cert)?;
        env.push(format!(
            "export WECHATPAY_MERCHANT_CERT={}",
            cert_path.display()
        ));
        if emu.merchant_private_key().is_some() {
            env.push(format!(
                "export WECHATPAY_MERCHANT_KEY={}",
                key_path.display()
            ));
        }
    }
    match emu.platform_certificate() {
        Some(cert) => {
            let p = dir.join(format!("wechatpay_{}.pem", cert.serial()));
            write(&p, &cert.to_pem()?)?;
            env.push(format!("export WECHATPAY_PLATFORM_CERT={}", p.display()));
        }
        None => {
            let p = dir.join("pub_key.pem");
            write(&p, &emu.platform_public_key_pem()?)?;
            env.push(format!("export WECHATPAY_PUBLIC_KEY={}", p.display()));
            env.push(format!(
                "export WECHATPAY_PUBLIC_KEY_ID={}",
                emu.platform_serial()
            ));
        }
    }
    env.push(format!("export WECHATPAY_APIV3_KEY={}", emu.apiv3_key()));
    env.push(format!("export WECHATPAY_SECRET={}", emu.apiv2_key()));
    let env_path = dir.join("env");
    write(&env_path, &(env.join("\n") + "\n"))?;
    let mode = match (emu.mode(), emu.is_tls()) {
        (Mode::PublicKey, false) => "public-key mode",
        (Mode::Certificate, false) => "certificate mode",
        (Mode::PublicKey, true) => "public-key mode, TLS",
        (Mode::Certificate, true) => "certificate mode, TLS",
    };
    // Printing never panics: a closed stdout (a pipe whose reader left) is ignored.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "wechatpay emulator on {} ({mode}, Wechatpay-Serial {})\n  \
         keys and settings: source {}\n  \
         simulate the user: POST /emulator/pay/transactions/out-trade-no/{{out_trade_no}}/pay\n  \
         {:>19}POST /emulator/discount-card/cards/{{out_card_code}}/accept\n  \
         {:>19}POST /emulator/refund/domestic/refunds/{{out_refund_no}}/complete\n  \
         inspect:           GET /emulator/requests, GET /emulator/deliveries\n\
         Ctrl-C stops it.",
        emu.base_uri(),
        emu.platform_serial(),
        env_path.display(),
        "",
        ""
    );
    let mut shown = 0;
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let requests = emu.requests();
        for r in requests.iter().filter(|r| r.seq > shown) {
            let verdict = match &r.refusal {
                None => "checked".to_string(),
                Some(why) => format!("refused: {why}"),
            };
            let _ = writeln!(out, "{} {} → {} {verdict}", r.method, r.target, r.status);
        }
        shown = requests.last().map_or(shown, |r| r.seq);
    }
}
