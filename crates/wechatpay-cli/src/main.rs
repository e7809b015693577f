//! `wechatpay`: the command line for the same calls as the library.
//!
//! `wechatpay [OPTIONS] <METHOD> <URI> [ARGS]`; see `wechatpay --help`.
#![warn(missing_docs)]
// The doc comments of this binary are clap's `--help` text, written for a terminal.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{Map, Value};
use wechatpay_chain::{Builder, Error, Placeholders, Rsa};

mod bill;

mod certificates;

mod demo;

mod serve;

/// Calls WeChat Pay APIv3/APIv2 with signed requests and verified answers.
///
/// URI is a template with `/` (v3/discount-card/orders/{out_order_no}) or chain segments joined
/// by dots (v3.discountCard.orders._out_order_no_). ARGS is the JSON args object: inline,
/// @file, or - for standard input. On a verified 2xx answer the body goes to stdout and the exit
/// status is 0; otherwise one line goes to stderr and the status is non-zero.
// Not `args_conflicts_with_subcommands`: it counts global options (`--timeout 5 demo`) as the
// call's arguments and reads the subcommand as METHOD; `call_args_with` refuses real mixes.
#[derive(Parser)]
#[command(name = "wechatpay", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    call: CallArgs,

    #[command(flatten)]
    conf: Conf,
}

#[derive(Subcommand)]
enum Command {
    /// Plays the documented story against a local platform emulator: no account, no
    /// configuration, no network. Exits non-zero if any step fails.
    Demo,
    /// Runs the local platform emulator on loopback until interrupted.
    Serve(serve::ServeArgs),
    /// Downloads the platform certificates, decrypts them, verifies the answer with them and
    /// saves each as wechatpay_<serial>.pem (wechatpay-php's CertificateDownloader).
    Certificates(certificates::CertArgs),
    /// Downloads a bill: GET its listing (v3/bill/tradebill, fundflowbill,
    /// sub-merchant-fundflowbill …), then the file it names, gunzipped, decrypted when in
    /// encrypted parts, every digest checked.
    Bill(bill::BillArgs),
}

#[derive(Args, Debug)]
struct CallArgs {
    /// get, post, put, patch or delete (any case).
    #[arg(value_name = "METHOD")]
    method: Option<String>,
    /// The path: a template with `/`, or dot-joined chain segments.
    #[arg(value_name = "URI")]
    uri: Option<String>,
    /// The args object: inline JSON, @file, or - for stdin.
    #[arg(value_name = "ARGS")]
    args: Option<String>,
    /// Print the status line and headers before the body.
    #[arg(short = 'i', long)]
    include: bool,
    /// As wechatpay-php: a `{placeholder}` missing from ARGS expands to empty and an ARGS key
    /// that is neither a request option nor a placeholder is ignored, each with a warning. By
    /// default both are refused (exit 2, naming it) and nothing is sent.
    #[arg(long, alias = "php-compatible")]
    lenient: bool,
    /// The default now (kept so that existing scripts still run).
    #[arg(long, hide = true, conflicts_with = "lenient")]
    strict_placeholders: bool,
    /// Upload this file with POST as multipart/form-data, signed over its meta
    /// (v3/merchant/media/upload, v3/marketing/favor/media/image-upload …).
    #[arg(long, value_name = "PATH")]
    file: Option<String>,
    /// Fields to add to (or override in) the upload's meta JSON, e.g. '{"bank_type":"…"}'.
    #[arg(long, value_name = "JSON", requires = "file")]
    meta: Option<String>,
}

#[derive(Args, Clone)]
struct Conf {
    /// Endpoint, https://api.mch.weixin.qq.com/ by default.
    #[arg(long, env = "WECHATPAY_BASE_URI", global = true)]
    base_uri: Option<String>,
    /// Merchant id.
    #[arg(long, env = "WECHATPAY_MCHID", global = true)]
    mchid: Option<String>,
    /// Merchant API certificate serial number.
    #[arg(long, env = "WECHATPAY_SERIAL", global = true)]
    serial: Option<String>,
    /// Merchant API private key (path).
    #[arg(long, env = "WECHATPAY_PRIVATE_KEY", global = true)]
    private_key: Option<String>,
    /// Platform public key (path), with --public-key-id.
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY", global = true)]
    public_key: Option<String>,
    /// Platform public key id (PUB_KEY_ID_…).
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY_ID", global = true)]
    public_key_id: Option<String>,
    /// Platform certificate (path); repeatable, or comma-separated in the variable.
    #[arg(
        long,
        env = "WECHATPAY_PLATFORM_CERT",
        value_delimiter = ',',
        global = true
    )]
    platform_cert: Vec<String>,
    /// Timeout of a call in seconds (default 30).
    #[arg(long, env = "WECHATPAY_TIMEOUT", global = true)]
    timeout: Option<f64>,
    /// APIv2 key.
    #[arg(long, env = "WECHATPAY_SECRET", hide_env_values = true, global = true)]
    secret: Option<String>,
    /// Accept an APIv2 answer signed with MD5 or HMAC-SHA256 whatever the request's sign_type,
    /// as wechatpay-php does. Off by default (an MD5 sign never stands in for HMAC-SHA256); for
    /// test platforms that always answer MD5.
    #[arg(long, env = "WECHATPAY_V2_EITHER_SIGN_TYPE", global = true)]
    v2_either_sign_type: bool,
    /// Merchant certificate for APIv2 mutual TLS (path).
    #[arg(long, env = "WECHATPAY_MERCHANT_CERT", global = true)]
    merchant_cert: Option<String>,
    /// Merchant private key for APIv2 mutual TLS (path).
    #[arg(long, env = "WECHATPAY_MERCHANT_KEY", global = true)]
    merchant_key: Option<String>,
    /// APIv3 key (decrypting notifications and certificates).
    #[arg(
        long,
        env = "WECHATPAY_APIV3_KEY",
        hide_env_values = true,
        global = true
    )]
    apiv3_key: Option<String>,
}

/// Exit statuses, so that scripts can tell failures apart.
mod exit {
    pub const USAGE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const TRANSPORT: u8 = 4;
    pub const VERIFICATION: u8 = 5;
    pub const API: u8 = 6;
    pub const OTHER: u8 = 1;
}

fn status_of(e: &Error) -> u8 {
    match e {
        Error::InvalidArgument(_) => exit::USAGE,
        Error::Config { .. } | Error::Key { .. } | Error::Io(_) => exit::CONFIG,
        Error::Transport { .. } | Error::Timeout { .. } | Error::BodyTooLarge { .. } => {
            exit::TRANSPORT
        }
        Error::Verification(_) => exit::VERIFICATION,
        Error::Api { .. } | Error::V2 { .. } => exit::API,
        _ => exit::OTHER,
    }
}

/// A key argument: a path, unless it is already a `file://`, `private.pkcs8://` … form or PEM.
fn key_source(s: &str) -> String {
    if s.contains("://") || s.contains("-----BEGIN") {
        s.to_string()
    } else {
        format!("file://{s}")
    }
}

/// Names the option and the file in a key error: which of several keys to fix.
fn key_option<'a>(option: &'a str, path: &'a str) -> impl FnOnce(Error) -> Error + 'a {
    move |e| match e {
        e @ Error::Key { .. } => e.prefixed(format_args!("{option} {path}")),
        other => other,
    }
}

fn read_file(path: &str, what: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::config_from(format!("cannot read {what} {path}"), e))
}

impl Conf {
    fn builder(&self) -> Result<Builder, Error> {
        let mut b = Builder::new();
        if let Some(u) = &self.base_uri {
            b = b.base_uri(u);
        }
        if let Some(m) = &self.mchid {
            b = b.mchid(m);
        }
        if let Some(s) = &self.serial {
            b = b.serial(s);
        }
        if let Some(k) = &self.private_key {
            let key = Rsa::from_private(&key_source(k)).map_err(key_option("--private-key", k))?;
            b = b.private_key(key);
        }
        match (&self.public_key, &self.public_key_id) {
            (Some(k), Some(id)) => b = b.platform_public_key(id, Rsa::from_public(&key_source(k))?),
            (Some(_), None) => {
                return Err(Error::config(
                    "--public-key needs --public-key-id (WECHATPAY_PUBLIC_KEY_ID)",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "--public-key-id needs --public-key (WECHATPAY_PUBLIC_KEY)",
                ))
            }
            (None, None) => {}
        }
        for c in &self.platform_cert {
            if !c.trim().is_empty() {
                b = b.platform_certificate(Rsa::from_certificate(&key_source(c.trim()))?);
            }
        }
        if let Some(s) = &self.secret {
            b = b.secret(s);
        }
        b = b.v2_either_sign_type(self.v2_either_sign_type);
        match (&self.merchant_cert, &self.merchant_key) {
            (Some(c), Some(k)) => {
                let cert = read_file(c, "merchant certificate (--merchant-cert)")?;
                let key = read_file(k, "merchant key (--merchant-key)")?;
                // The loader's guard (an encrypted key refused, never a pass-phrase prompt),
                // with the option and the file named.
                Rsa::from_private(&key).map_err(key_option("--merchant-key", k))?;
                b = b.merchant_identity(&cert, &key);
            }
            (Some(_), None) => {
                return Err(Error::config(
                    "--merchant-cert needs --merchant-key (WECHATPAY_MERCHANT_KEY)",
                ))
            }
            (None, Some(_)) => {
                return Err(Error::config(
                    "--merchant-key needs --merchant-cert (WECHATPAY_MERCHANT_CERT)",
                ))
            }
            (None, None) => {}
        }
        if let Some(t) = self.timeout {
            if !(t > 0.0 && t.is_finite() && t < 86_400.0) {
                return Err(Error::config(format!(
                    "timeout {t} must be a positive number of seconds"
                )));
            }
            b = b.timeout(Duration::from_secs_f64(t));
        }
        Ok(b)
    }
}

fn read_args(arg: Option<&str>) -> Result<Value, Error> {
    let text = match arg {
        None => return Ok(Value::Object(Map::new())),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::InvalidArgument(format!("cannot read ARGS from stdin: {e}")))?;
            s
        }
        Some(a) if a.starts_with('@') => std::fs::read_to_string(&a[1..]).map_err(|e| {
            Error::InvalidArgument(format!("cannot read ARGS file {}: {e}", &a[1..]))
        })?,
        Some(a) => a.to_string(),
    };
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidArgument(format!("ARGS is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::InvalidArgument("ARGS must be a JSON object".into()));
    }
    Ok(v)
}

/// Turns the URI argument into a chain path: a template as is, or dot-joined segments, each
/// normalized as a chain name. A query (`?…`) is kept as written in both forms, and so is a
/// segment holding data (`T1000001`: see `uri::holds_data`).
fn chain_path(uri: &str) -> String {
    if uri.contains('/') {
        return uri.to_string();
    }
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let mut out = path
        .split('.')
        .map(wechatpay_chain::uri::normalize)
        .collect::<Vec<_>>()
        .join("/");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Takes wechatpay-php's (Guzzle's) `sink` out of the args: the CLI writes the verified body
/// there as well as to stdout (the library has no such option and would refuse it).
fn take_sink(args: &mut Value) -> Result<Option<String>, Error> {
    match args.as_object_mut().and_then(|m| m.remove("sink")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(Error::InvalidArgument(
            "sink must be the path of a file to write the answer body to".into(),
        )),
    }
}

fn call(c: &CallArgs, conf: &Conf) -> Result<(), Error> {
    let (Some(method), Some(uri)) = (c.method.as_deref(), c.uri.as_deref()) else {
        return Err(Error::InvalidArgument(
            "usage: wechatpay [OPTIONS] <METHOD> <URI> [ARGS] (see --help)".into(),
        ));
    };
    let mut args = read_args(c.args.as_deref())?;
    let sink = take_sink(&mut args)?;
    let path = chain_path(uri);
    let names = wechatpay_chain::uri::placeholders(&path);
    let empty = args.as_object().is_none_or(|m| m.is_empty());
    if !names.is_empty() && empty {
        return Err(Error::InvalidArgument(format!(
            "{path} needs {} in ARGS",
            names
                .iter()
                .map(|n| format!("{{{n}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mode = if c.lenient {
        Placeholders::Lenient
    } else {
        Placeholders::Strict
    };
    let client = conf.builder()?.placeholders(mode).build()?;
    let chain = client.chain(&path);
    if let Some(file) = &c.file {
        if !method.eq_ignore_ascii_case("post") {
            return Err(Error::InvalidArgument(
                "--file uploads with POST: use post as METHOD".into(),
            ));
        }
        let mut media = wechatpay_chain::util::media::Media::from_path(file)?;
        if let Some(meta) = &c.meta {
            let fields: Value = serde_json::from_str(meta)
                .map_err(|e| Error::InvalidArgument(format!("--meta is not JSON: {e}")))?;
            media = media.with_meta(fields)?;
        }
        let res = chain.upload(&media, args)?;
        return save(sink.as_deref(), &res).and_then(|_| print(c, &res));
    }
    let res = match method.to_ascii_lowercase().as_str() {
        "get" => chain.get(args),
        "post" => chain.post(args),
        "put" => chain.put(args),
        "patch" => chain.patch(args),
        "delete" => chain.delete(args),
        other => {
            return Err(Error::InvalidArgument(format!(
                "unknown METHOD {other:?}: use get, post, put, patch or delete"
            )))
        }
    }?;
    save(sink.as_deref(), &res)?;
    print(c, &res)
}

/// Writes a verified answer's body to the args' `sink`, if any.
fn save(sink: Option<&str>, res: &wechatpay_chain::Response) -> Result<(), Error> {
    match sink {
        Some(path) => std::fs::write(path, res.body())
            .map_err(|e| Error::config_from(format!("cannot write the answer to sink {path}"), e)),
        None => Ok(()),
    }
}

fn print(c: &CallArgs, res: &wechatpay_chain::Response) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    if c.include {
        let _ = writeln!(out, "{:?} {}", http::Version::HTTP_11, res.status());
        for (k, v) in res.headers() {
            let _ = writeln!(out, "{}: {}", k, String::from_utf8_lossy(v.as_bytes()));
        }
        let _ = writeln!(out);
    }
    let body: Vec<u8> = match res.xml_map() {
        Some(fields) => {
            let m: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let mut v = serde_json::to_vec_pretty(&Value::Object(m)).unwrap_or_default();
            v.push(b'\n');
            v
        }
        None => res.body().to_vec(),
    };
    out.write_all(&body).and_then(|_| out.flush())?;
    Ok(())
}

/// The call's own arguments given beside a subcommand (`wechatpay get v3/x demo`), which clap
/// accepts once subcommands may follow options: named, so that the usage error says which.
fn call_args_with(cli: &Cli) -> Option<(&'static str, &'static str)> {
    let c = &cli.call;
    let sub = match cli.command.as_ref()? {
        Command::Demo => "demo",
        Command::Serve(_) => "serve",
        Command::Certificates(_) => "certificates",
        Command::Bill(_) => "bill",
    };
    let given = [
        ("METHOD", c.method.is_some()),
        ("URI", c.uri.is_some()),
        ("ARGS", c.args.is_some()),
        ("--include", c.include),
        ("--strict-placeholders", c.strict_placeholders),
        ("--file", c.file.is_some()),
        ("--meta", c.meta.is_some()),
    ];
    given
        .iter()
        .find(|(_, on)| *on)
        .map(|(what, _)| (*what, sub))
}

/// Whether a global option's value came from its environment variable (wherever the option
/// stands, globals are propagated to the subcommand's matches).
fn from_env(m: &ArgMatches, id: &str) -> bool {
    let sub = m.subcommand().map(|(_, s)| s);
    [Some(m), sub]
        .into_iter()
        .flatten()
        .any(|m| m.value_source(id) == Some(ValueSource::EnvVariable))
}

/// An error and its causes on one line, each level once: "transport error calling … : client
/// error (Connect): tcp connect error: Connection refused (os error 111)". A level whose text
/// the line already holds (a wrapper that repeats its cause) is skipped; control characters
/// (a platform message, a path) become spaces, so the line stays one line.
pub(crate) fn chain_line(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if let Some((what, sub)) = call_args_with(&cli) {
        Cli::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                format!(
                    "{what} is for a call (wechatpay [OPTIONS] <METHOD> <URI> [ARGS]) and cannot \
                     be given with the {sub} subcommand; global options such as --mchid or \
                     --timeout may stand before or after {sub}"
                ),
            )
            .exit();
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("WECHATPAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
    let result = match &cli.command {
        Some(Command::Demo) => match demo::run() {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::OTHER),
            Err(e) => Err(e),
        },
        Some(Command::Serve(a)) => serve::run(
            a,
            serve::Globals {
                mchid: cli.conf.mchid.as_deref(),
                serial: cli.conf.serial.as_deref(),
                apiv3_key: serve::Global {
                    value: cli.conf.apiv3_key.as_deref(),
                    from_env: from_env(&matches, "apiv3_key"),
                },
                secret: serve::Global {
                    value: cli.conf.secret.as_deref(),
                    from_env: from_env(&matches, "secret"),
                },
            },
            key_source,
        ),
        Some(Command::Certificates(a)) => certificates::run(
            a,
            certificates::Globals {
                mchid: cli.conf.mchid.as_deref(),
                serial: cli.conf.serial.as_deref(),
                private_key: cli.conf.private_key.as_deref(),
                apiv3_key: cli.conf.apiv3_key.as_deref(),
                base_uri: cli.conf.base_uri.as_deref(),
            },
            key_source,
        ),
        Some(Command::Bill(a)) => read_args(a.args.as_deref()).and_then(|args| {
            let client = cli.conf.builder()?.build()?;
            bill::run(a, &client, &chain_path(&a.uri), args)
        }),
        None => call(&cli.call, &cli.conf),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wechatpay: {}", chain_line(&e));
            ExitCode::from(status_of(&e))
        }
    }
}
