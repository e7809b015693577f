//! `wechatpay serve`: runs the emulator until interrupted, writes the keys a client needs to a
//! directory with an `env` file to source, and prints each request as it is checked.
//!
//! The directory holds private keys and a file the user sources into a shell, so it must be
//! nobody else's: by default a fresh one with a random name and mode 0700 (removed when serve
//! stops), or a `--keys-dir` that is the user's own and that nobody else can write. Each file is
//! created new (never opened through a link, never replacing what is there) with mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    /// Where to write the keys and the env file, kept after serve stops: created (mode 0700)
    /// if missing, refused unless it is yours and not writable by group or others; files
    /// already there are not overwritten. By default a fresh private temporary directory,
    /// removed when serve stops (Ctrl-C, SIGTERM).
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Take the APIv3 key and the APIv2 key from WECHATPAY_APIV3_KEY and WECHATPAY_SECRET.
    /// Without it those variables are ignored (they may hold production keys, which would
    /// end up in the env file); --apiv3-key and --secret on the command line are always used.
    #[arg(long)]
    use_env_secrets: bool,
    /// Serve HTTPS with a CA of its own, and issue the merchant certificate that APIv2 calls
    /// with "security": true present (mutual TLS); writes ca.pem and apiclient_cert.pem.
    #[arg(long)]
    tls: bool,
}

/// A global option's value, and whether it came from its environment variable.
pub struct Global<'a> {
    pub value: Option<&'a str>,
    pub from_env: bool,
}

/// The global options that apply.
pub struct Globals<'a> {
    pub mchid: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub apiv3_key: Global<'a>,
    pub secret: Global<'a>,
}

/// Where the keys go: a private temporary directory (removed when dropped) or `--keys-dir`.
enum KeysDir {
    Temp(tempfile::TempDir),
    Given(PathBuf),
}

impl KeysDir {
    fn path(&self) -> &Path {
        match self {
            KeysDir::Temp(t) => t.path(),
            KeysDir::Given(p) => p,
        }
    }

    /// A fresh directory with a random name and mode 0700 in the system temp directory.
    fn temp() -> Result<KeysDir, Error> {
        let mut b = tempfile::Builder::new();
        b.prefix("wechatpay-emulator-");
        #[cfg(unix)]
        b.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = b.tempdir().map_err(|e| {
            Error::config_from(
                format!(
                    "cannot create a keys directory in {} (set TMPDIR, or pass --keys-dir)",
                    std::env::temp_dir().display()
                ),
                e,
            )
        })?;
        Ok(KeysDir::Temp(dir))
    }

    /// `--keys-dir`: created with mode 0700 if missing; used only if it is the user's own and
    /// nobody else can add, remove or replace files in it.
    fn given(dir: &Path) -> Result<KeysDir, Error> {
        let shown = dir.display();
        if std::fs::symlink_metadata(dir).is_err() {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            b.create(dir)
                .map_err(|e| Error::config_from(format!("cannot create --keys-dir {shown}"), e))?;
        }
        // Checked and used from here on through its real path, so that a link swapped later
        // does not move the writes.
        let real = dir
            .canonicalize()
            .map_err(|e| Error::config_from(format!("cannot use --keys-dir {shown}"), e))?;
        let meta = std::fs::metadata(&real)
            .map_err(|e| Error::config_from(format!("cannot use --keys-dir {shown}"), e))?;
        if !meta.is_dir() {
            return Err(Error::config(format!(
                "--keys-dir {shown} is not a directory"
            )));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            if meta.uid() != me {
                return Err(Error::config(format!(
                    "--keys-dir {shown} is owned by uid {}, not by you (uid {me}): the keys \
                     would be readable and replaceable by its owner; use a directory of your \
                     own, or leave --keys-dir out for a private temporary one",
                    meta.uid()
                )));
            }
            if meta.mode() & 0o022 != 0 {
                return Err(Error::config(format!(
                    "--keys-dir {shown} is writable by {} (mode {:o}): others could replace \
                     the keys or the env file you source; run chmod 700 on it, or use another \
                     directory",
                    if meta.mode() & 0o002 != 0 {
                        "everyone"
                    } else {
                        "its group"
                    },
                    meta.mode() & 0o7777
                )));
            }
        }
        Ok(KeysDir::Given(real))
    }
}

/// Writes a new file readable by its owner only (it may hold a private key or the APIv3
/// key): created exclusively with mode 0600, never through a symbolic link, never over a file
/// that is already there.
fn write(path: &Path, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::config(format!(
                "{} already exists: serve writes only new files; remove what an earlier run \
                 left there, or choose another --keys-dir",
                path.display()
            ))
        } else {
            Error::config_from(format!("cannot write {}", path.display()), e)
        }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    let mut f = options.open(path).map_err(fail)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(fail)
}

/// A value for the env file, quoted for the shell unless it is plainly safe as is.
fn shell_value(v: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:@%+=,".contains(c);
    if !v.is_empty() && v.chars().all(safe) {
        v.to_string()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

pub fn run<'a>(
    a: &ServeArgs,
    g: Globals<'a>,
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
    // A key from the environment is most likely the production one of the shell: it is not
    // copied into the emulator (and its env file) unless asked for.
    for (name, g) in [
        ("WECHATPAY_APIV3_KEY", &g.apiv3_key),
        ("WECHATPAY_SECRET", &g.secret),
    ] {
        if g.value.is_some() && g.from_env && !a.use_env_secrets {
            eprintln!(
                "wechatpay serve: {name} in the environment is ignored (the emulator makes its \
                 own key); pass --use-env-secrets to use it"
            );
        }
    }
    let use_env = a.use_env_secrets;
    let usable = |g: &Global<'a>| g.value.filter(|_| !g.from_env || use_env);
    if let Some(k) = usable(&g.apiv3_key) {
        config = config.apiv3_key(k);
    }
    if let Some(k) = usable(&g.secret) {
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
    let stop = Stop::new(&rt)?;
    let keys_dir = match &a.keys_dir {
        Some(d) => KeysDir::given(d)?,
        None => KeysDir::temp()?,
    };
    let emu = rt.block_on(Emulator::start_async(config))?;
    let dir = keys_dir.path();
    let mut env: Vec<(&str, String)> = vec![
        ("WECHATPAY_BASE_URI", emu.base_uri().to_string()),
        ("WECHATPAY_MCHID", emu.mchid().to_string()),
        ("WECHATPAY_SERIAL", emu.merchant_serial().to_string()),
    ];
    let key_path = dir.join("apiclient_key.pem");
    if let Some(k) = emu.merchant_private_key() {
        write(&key_path, &private_key_pem(k)?)?;
        env.push(("WECHATPAY_PRIVATE_KEY", key_path.display().to_string()));
    }
    if let (Some(ca), Some(cert)) = (emu.ca_certificate_pem(), emu.merchant_certificate_pem()) {
        let ca_path = dir.join("ca.pem");
        write(&ca_path, ca)?;
        // The command line trusts SSL_CERT_FILE (which then stands for the system's roots).
        env.push(("SSL_CERT_FILE", ca_path.display().to_string()));
        let cert_path = dir.join("apiclient_cert.pem");
        write(&cert_path, cert)?;
        env.push(("WECHATPAY_MERCHANT_CERT", cert_path.display().to_string()));
        if emu.merchant_private_key().is_some() {
            env.push(("WECHATPAY_MERCHANT_KEY", key_path.display().to_string()));
        }
    }
    match emu.platform_certificate() {
        Some(cert) => {
            let p = dir.join(format!("wechatpay_{}.pem", cert.serial()));
            write(&p, &cert.to_pem()?)?;
            env.push(("WECHATPAY_PLATFORM_CERT", p.display().to_string()));
        }
        None => {
            let p = dir.join("pub_key.pem");
            write(&p, &emu.platform_public_key_pem()?)?;
            env.push(("WECHATPAY_PUBLIC_KEY", p.display().to_string()));
            env.push(("WECHATPAY_PUBLIC_KEY_ID", emu.platform_serial().to_string()));
        }
    }
    env.push(("WECHATPAY_APIV3_KEY", emu.apiv3_key().to_string()));
    env.push(("WECHATPAY_SECRET", emu.apiv2_key().to_string()));
    let env_path = dir.join("env");
    let text: String = env
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_value(v)))
        .collect();
    write(&env_path, &text)?;
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
        shell_value(&env_path.display().to_string()),
        "",
        ""
    );
    // Stopped by a signal, serve returns, and the temporary keys directory is removed.
    rt.block_on(watch(&emu, stop, &mut out));
    drop(emu);
    drop(keys_dir);
    Ok(())
}

/// The signals that stop serve: SIGINT (Ctrl-C), SIGTERM, SIGHUP. Their handlers are set up
/// before anything is written, so that none of them ends the process with the keys left behind.
struct Stop {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 3],
}

impl Stop {
    fn new(rt: &tokio::runtime::Runtime) -> Result<Stop, Error> {
        let _guard = rt.enter();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let fail = |e: std::io::Error| Error::config_from("cannot handle the stop signals", e);
            Ok(Stop {
                signals: [
                    signal(SignalKind::interrupt()).map_err(fail)?,
                    signal(SignalKind::terminate()).map_err(fail)?,
                    signal(SignalKind::hangup()).map_err(fail)?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        {
            let [int, term, hup] = &mut self.signals;
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Prints each request as it is checked, until a stop signal.
async fn watch(emu: &Emulator, mut stop: Stop, out: &mut impl Write) {
    let mut shown = 0;
    loop {
        tokio::select! {
            _ = stop.recv() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
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
