//! `wechatpay`: the command line for the same calls as the library.
//!
//! `wechatpay [OPTIONS] <METHOD> <URI> [ARGS]`; see `wechatpay --help`.
#![warn(missing_docs)]
// The doc comments of this binary are clap's `--help` text, written for a terminal.
#![allow(rustdoc::bare_urls, rustdoc::invalid_html_tags)]

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::{Map, Value};
use wechatpay_chain::{Builder, Error, Placeholders, Validation};

mod bill;

mod certificates;

mod common;

mod completions;

mod demo;

mod describe;

mod events;

mod faults;

mod listen;

mod ops;

mod sandbox;

mod scheme;

mod serve;

mod serve_merchants;

mod trigger;

/// Calls WeChat Pay APIv3/APIv2 with signed requests and verified answers.
///
/// URI is a template with `/` (v3/discount-card/orders/{out_order_no}) or chain segments joined
/// by dots (v3.discountCard.orders._out_order_no_). ARGS is the JSON args object: inline,
/// @file, or - for standard input. On a verified 2xx answer the body goes to stdout and the exit
/// status is 0; otherwise one line goes to stderr, its category in Chinese and English first
/// (参数错误 bad arguments, 配置错误 configuration, 网络错误 transport, 验签失败 verification
/// failed, 平台返回错误 the platform answered an error), and the status is non-zero.
// Not `args_conflicts_with_subcommands`: it counts options before a subcommand (`--mchid 1 serve`)
// as the call's arguments and reads the subcommand as METHOD; `call_args_with` refuses real mixes.
#[derive(Parser)]
#[command(name = "wechatpay", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    // Before the call options, so that `-v` stays under "Options" in every command's help.
    #[command(flatten)]
    log: Verbosity,

    #[command(flatten)]
    scheme: scheme::SchemeArgs,

    #[command(flatten)]
    call: CallArgs,

    #[command(flatten)]
    conf: Conf,
}

const AFTER_HELP: &str = "\
Every call option also reads its WECHATPAY_* variable (shown with each option).
Exit status: 0 ok, 2 bad arguments, 3 configuration or keys, 4 transport or timeout,
5 verification failed, 6 the platform answered an error.
Each subcommand lists its own options: wechatpay <COMMAND> --help.";

/// Logging on stderr, for every command.
#[derive(Args, Debug)]
struct Verbosity {
    /// Log more on stderr: -v info, -vv debug (warnings only by default; WECHATPAY_LOG)
    ///
    /// -v (info) adds what an operator acts on: retries, certificate refreshes, the public-key
    /// mode notice; -vv (debug) every attempt of every call, with its status and time. Each
    /// call is a span `wechatpay.call` with its method and path template, never keys,
    /// signatures or bodies. WECHATPAY_LOG, a tracing EnvFilter directive (e.g.
    /// `wechatpay_chain=debug,hyper=info`), replaces the level when set. No colour unless
    /// stderr is a terminal and NO_COLOR is unset.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
}

#[derive(Subcommand)]
enum Command {
    /// Plays the documented story against a local platform emulator: no account, no
    /// configuration, no network. Exits non-zero if any step fails.
    Demo,
    /// Runs the local platform emulator on loopback until interrupted.
    Serve(serve::ServeArgs),
    /// Acts as the payer or the platform in a running sandbox (wechatpay serve): a payment
    /// paid, failed or closed, a refund succeeded, closed or abnormal; prints the new state
    /// and the sandbox sends the notification. `sandbox clock` shows, sets or advances its clock.
    Sandbox(sandbox::SandboxArgs),
    /// Downloads the platform certificates, decrypts them, verifies the answer with them and
    /// saves each as wechatpay_<serial>.pem (wechatpay-php's CertificateDownloader).
    Certificates(certificates::CertArgs),
    /// Downloads a bill: GET its listing (v3/bill/tradebill, fundflowbill,
    /// sub-merchant-fundflowbill …), then the file it names, gunzipped, decrypted when in
    /// encrypted parts, every digest checked.
    Bill(bill::BillArgs),
    /// Lists the documented operations whose path template or label holds every word:
    /// method, template, label (the catalogue, offline).
    Ops(ops::OpsArgs),
    /// Prints what the documentation says of one operation: its placeholders and its request
    /// and response fields as trees, with types, required marks, enumerations and encryption.
    Describe(describe::DescribeArgs),
    /// Lists the documented webhook (notification) event types with their labels.
    Events(events::EventsArgs),
    /// Sends a documented event's notification, signed as the platform signs it, to a
    /// handler, and checks that it accepts it (or refuses it, with a fault).
    Trigger(trigger::TriggerArgs),
    /// Receives notifications on loopback: verifies, decrypts and prints each, answers the
    /// platform's way, and can forward them to the merchant's handler.
    Listen(listen::ListenArgs),
    /// Prints a completion script for bash, zsh or fish: subcommands, options, methods and the
    /// documented paths.
    Completions(completions::CompletionsArgs),
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
    /// default both are refused (exit 2, naming it) and nothing is sent. Validation then
    /// warns (unless --validate says otherwise).
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
    /// Check the call against the documentation before sending (the operation catalogue):
    /// strict refuses a path that is not documented (naming the nearest documented ones) or
    /// args that do not match its page: a required field missing, a wrong JSON type, a value
    /// outside its enumeration, an unknown field, the forgotten json wrapper (exit 2, each
    /// field named by its JSON path, nothing sent); warn prints them on stderr and sends; off
    /// sends as given. The args may also say "validate": false. [default: strict; warn with
    /// --lenient]
    #[arg(
        long,
        value_enum,
        env = "WECHATPAY_VALIDATE",
        ignore_case = true,
        value_name = "MODE"
    )]
    validate: Option<ValidateMode>,
}

/// `--validate`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ValidateMode {
    Off,
    Warn,
    Strict,
}

/// The options of a call, also taken by `bill` (and in part by `certificates` and `serve`);
/// given before a subcommand (`wechatpay --mchid 1900000001 serve`), they go to it when it
/// takes them and are refused, naming the subcommand, when it does not.
#[derive(Args, Clone)]
#[command(next_help_heading = "Call options")]
pub struct Conf {
    /// Endpoint, https://api.mch.weixin.qq.com/ by default.
    #[arg(long, env = "WECHATPAY_BASE_URI")]
    base_uri: Option<String>,
    /// Merchant id.
    #[arg(long, env = "WECHATPAY_MCHID")]
    mchid: Option<String>,
    /// Merchant API certificate serial number.
    #[arg(long, env = "WECHATPAY_SERIAL")]
    serial: Option<String>,
    /// Merchant API private key (path).
    #[arg(long, env = "WECHATPAY_PRIVATE_KEY")]
    private_key: Option<String>,
    /// Platform public key (path), with --public-key-id.
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY")]
    public_key: Option<String>,
    /// Platform public key id (PUB_KEY_ID_…).
    #[arg(long, env = "WECHATPAY_PUBLIC_KEY_ID")]
    public_key_id: Option<String>,
    /// Platform certificate (path); repeatable, or comma-separated in the variable.
    #[arg(long, env = "WECHATPAY_PLATFORM_CERT", value_delimiter = ',')]
    platform_cert: Vec<String>,
    /// Timeout of a call in seconds (default 30).
    #[arg(long, env = "WECHATPAY_TIMEOUT")]
    timeout: Option<f64>,
    /// APIv2 key.
    #[arg(long, env = "WECHATPAY_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Accept an APIv2 answer signed with MD5 or HMAC-SHA256 whatever the request's sign_type,
    /// as wechatpay-php does. Off by default (an MD5 sign never stands in for HMAC-SHA256); for
    /// test platforms that always answer MD5.
    #[arg(long, env = "WECHATPAY_V2_EITHER_SIGN_TYPE")]
    v2_either_sign_type: bool,
    /// Merchant certificate for APIv2 mutual TLS (path).
    #[arg(long, env = "WECHATPAY_MERCHANT_CERT")]
    merchant_cert: Option<String>,
    /// Merchant private key for APIv2 mutual TLS (path).
    #[arg(long, env = "WECHATPAY_MERCHANT_KEY")]
    merchant_key: Option<String>,
    /// APIv3 key (decrypting notifications and certificates).
    #[arg(long, env = "WECHATPAY_APIV3_KEY", hide_env_values = true)]
    apiv3_key: Option<String>,
    /// The key options whose value came from their variable, so that an error names what the
    /// user set (`WECHATPAY_PRIVATE_KEY`, not `--private-key`).
    #[arg(skip)]
    from_env: Vec<&'static str>,
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

/// Names the option (or its variable) in a key error: which of several keys to fix. The error
/// names the file itself; a value that is not a path (PEM text) is never shown.
fn key_option(name: &str) -> impl FnOnce(Error) -> Error + '_ {
    move |e| match e {
        e @ Error::Key { .. } => e.prefixed(name),
        other => other,
    }
}

fn read_file(path: &str, what: &str) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::config_from(format!("{what}: cannot read {path}"), e))
}

/// The key options of [`Conf`]: id, option, variable.
const KEY_OPTIONS: [(&str, &str, &str); 5] = [
    ("private_key", "--private-key", "WECHATPAY_PRIVATE_KEY"),
    ("public_key", "--public-key", "WECHATPAY_PUBLIC_KEY"),
    (
        "platform_cert",
        "--platform-cert",
        "WECHATPAY_PLATFORM_CERT",
    ),
    (
        "merchant_cert",
        "--merchant-cert",
        "WECHATPAY_MERCHANT_CERT",
    ),
    ("merchant_key", "--merchant-key", "WECHATPAY_MERCHANT_KEY"),
];

impl Conf {
    /// Notes which key options took their value from their variable (`top`: the command
    /// line before a subcommand; `sub`: the subcommand's, or `top` again for a call).
    fn note_sources(&mut self, top: &ArgMatches, sub: &ArgMatches) {
        self.from_env = KEY_OPTIONS
            .iter()
            .filter(|(id, _, _)| from_env(top, sub, id))
            .map(|(id, _, _)| *id)
            .collect();
    }

    /// What an error calls key option `id`: its variable when the value came from there,
    /// else its option.
    fn name(&self, id: &str) -> &'static str {
        let (_, option, var) = KEY_OPTIONS
            .iter()
            .find(|(i, _, _)| *i == id)
            .copied()
            .unwrap_or(("", "", ""));
        if self.from_env.contains(&id) {
            var
        } else {
            option
        }
    }

    fn builder(&self) -> Result<Builder, Error> {
        let mut b = Builder::new().scheme(scheme::get());
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
            let key = scheme::private_key(&key_source(k))
                .map_err(key_option(self.name("private_key")))?;
            b = b.private_key(key);
        }
        if let Some((id, key)) = common::public_key(
            self.public_key.as_deref(),
            self.public_key_id.as_deref(),
            key_source,
        )
        .map_err(key_option(self.name("public_key")))?
        {
            b = b.platform_public_key(id, key);
        }
        for c in &self.platform_cert {
            if !c.trim().is_empty() {
                let cert = scheme::certificate(&key_source(c.trim()))
                    .map_err(key_option(self.name("platform_cert")))?;
                b = b.platform_certificate(cert);
            }
        }
        if let Some(s) = &self.secret {
            b = b.secret(s);
        }
        b = b.v2_either_sign_type(self.v2_either_sign_type);
        match (&self.merchant_cert, &self.merchant_key) {
            (Some(c), Some(k)) => {
                let cert = read_file(c, self.name("merchant_cert"))?;
                let key = read_file(k, self.name("merchant_key"))?;
                // The loader's guard (an encrypted key refused, never a pass-phrase prompt),
                // with the option and the file named; an SM2 key in the 国密 scheme.
                scheme::private_key(&key)
                    .map_err(|e| e.prefixed(format_args!("key file {k}")))
                    .map_err(key_option(self.name("merchant_key")))?;
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
            b = b.timeout(common::seconds(t, "timeout")?);
        }
        Ok(b)
    }
}

fn read_args(arg: Option<&str>) -> Result<Value, Error> {
    read_object(arg, "ARGS")
}

/// A JSON object given as inline JSON, `@file` or `-` (stdin), named `what` in errors; none
/// (or only blanks) is the empty object.
pub(crate) fn read_object(arg: Option<&str>, what: &str) -> Result<Value, Error> {
    let text = match arg {
        None => return Ok(Value::Object(Map::new())),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                Error::InvalidArgument(format!("cannot read {what} from stdin: {e}"))
            })?;
            s
        }
        Some(a) if a.starts_with('@') => std::fs::read_to_string(&a[1..]).map_err(|e| {
            Error::InvalidArgument(format!("cannot read {what} file {}: {e}", &a[1..]))
        })?,
        Some(a) => a.to_string(),
    };
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Error::InvalidArgument(format!("{what} is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a JSON object"
        )));
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
    let validation = match c.validate {
        Some(ValidateMode::Off) => Validation::Off,
        Some(ValidateMode::Warn) => Validation::Warn,
        Some(ValidateMode::Strict) => Validation::Strict,
        // sent as wechatpay-php sends it, the findings on stderr
        None if c.lenient => Validation::Warn,
        None => Validation::Strict,
    };
    let client = conf
        .builder()?
        .placeholders(mode)
        .validation(validation)
        .build()?;
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
    out.write_all(&body)?;
    // A text answer ends its line, so that the shell's prompt (or the next output) starts on
    // a line of its own; a file (a bill, an image) goes out byte for byte.
    if !body.is_empty() && !body.ends_with(b"\n") && is_text(res) {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Whether an answer is text to read (JSON, XML, text/*), not a file to save.
fn is_text(res: &wechatpay_chain::Response) -> bool {
    let kind = res
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    kind.starts_with("text/") || kind.contains("json") || kind.contains("xml")
}

/// What a bare `wechatpay` prints: the call form and each command with the first clause of
/// its description, and where the rest is.
fn overview(cmd: &clap::Command) -> String {
    let mut text = String::from(
        "wechatpay: WeChat Pay calls, signed, with verified answers; and a local sandbox.\n\n\
         Usage: wechatpay [OPTIONS] <METHOD> <URI> [ARGS]   a call: get, post, put, patch, delete\n\
         \x20      wechatpay <COMMAND> [OPTIONS]            a command below\n\n\
         Example: wechatpay get v3/certificates (keys from the options or WECHATPAY_* variables)\n\n\
         Commands:\n",
    );
    let commands: Vec<(&str, String)> = cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .map(|s| {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            (s.get_name(), first_clause(&about).to_string())
        })
        .collect();
    let width = commands.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, about) in commands {
        text.push_str(&format!("  {name:width$}  {about}\n"));
    }
    text.push_str(
        "\nwechatpay --help: the call options and their variables; wechatpay <COMMAND> --help: \
         a command's.\n",
    );
    text
}

/// A description's first clause: up to its first `:`, `;`, `.` or `,` (a comma within a list,
/// "bash, zsh or fish", does not end it).
fn first_clause(about: &str) -> &str {
    let mut end = about.len();
    for (i, _) in about.match_indices([':', ';', '.', ',']) {
        let rest = &about[i + 1..];
        if !rest.is_empty() && !rest.starts_with(' ') {
            continue; // wechatpay_<serial>.pem
        }
        let next = rest.find([':', ';', '.', ',']).unwrap_or(rest.len());
        let listed = rest[..next].contains(" or ") || rest[..next].contains(" and ");
        if about[i..].starts_with(',') && listed {
            continue;
        }
        end = i;
        break;
    }
    &about[..end]
}

/// The call's own arguments given beside a subcommand (`wechatpay get v3/x demo`), which clap
/// accepts once subcommands may follow options: named, so that the usage error says which.
fn call_args_with(cli: &Cli, matches: &ArgMatches) -> Option<(&'static str, &'static str)> {
    let c = &cli.call;
    let sub = match cli.command.as_ref()? {
        Command::Demo => "demo",
        Command::Serve(_) => "serve",
        Command::Sandbox(_) => "sandbox",
        Command::Certificates(_) => "certificates",
        Command::Bill(_) => "bill",
        Command::Ops(_) => "ops",
        Command::Describe(_) => "describe",
        Command::Events(_) => "events",
        Command::Trigger(_) => "trigger",
        Command::Listen(_) => "listen",
        Command::Completions(_) => "completions",
    };
    let given = [
        ("METHOD", c.method.is_some()),
        ("URI", c.uri.is_some()),
        ("ARGS", c.args.is_some()),
        ("--include", c.include),
        ("--strict-placeholders", c.strict_placeholders),
        ("--file", c.file.is_some()),
        ("--meta", c.meta.is_some()),
        ("--validate", given(matches, "validate")),
    ];
    given
        .iter()
        .find(|(_, on)| *on)
        .map(|(what, _)| (*what, sub))
}

/// A category of error, in Chinese then English, so that a reader of either finds it first.
fn category(e: &Error) -> &'static str {
    match e {
        Error::Timeout { .. } => "网络超时 timeout",
        Error::OutcomeUnknown { .. } => "结果未知 outcome unknown",
        _ => match status_of(e) {
            exit::USAGE => "参数错误 bad arguments",
            exit::CONFIG => "配置错误 configuration",
            exit::TRANSPORT => "网络错误 transport",
            exit::VERIFICATION => "验签失败 verification failed",
            exit::API => "平台返回错误 the platform answered an error",
            _ => "错误 error",
        },
    }
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
    common::printable(&line, false)
}

/// A usage error, on one line with its category, and exit status 2. Help and version requests
/// are printed as clap prints them.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let e = misplaced_after(&e).unwrap_or(e);
    let text = e.render().to_string();
    let text = text.trim_end();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    eprintln!("wechatpay: 参数错误 bad arguments: {text}");
    std::process::exit(i32::from(exit::USAGE))
}

/// Whether `id` was given on the command line of `m` (not read from its variable).
fn given(m: &ArgMatches, id: &str) -> bool {
    m.try_get_raw(id).is_ok_and(|v| v.is_some())
        && m.value_source(id) == Some(ValueSource::CommandLine)
}

/// Call options given before the subcommand `name`: refused unless `name` takes them.
fn check_placement(top: &ArgMatches, name: &str) -> Result<(), clap::Error> {
    let cmd = Cli::command();
    let Some(sub) = cmd.find_subcommand(name) else {
        return Ok(());
    };
    let conf = Conf::augment_args(clap::Command::new("conf"));
    for arg in conf.get_arguments() {
        let id = arg.get_id().as_str();
        if given(top, id) && !sub.get_arguments().any(|a| a.get_id() == id) {
            return Err(misplaced(arg.get_long().unwrap_or(id), name));
        }
    }
    Ok(())
}

/// The error for the call option `--long` given to the subcommand `name`, which does not take
/// it: which commands do.
fn misplaced(long: &str, name: &str) -> clap::Error {
    let cmd = Cli::command();
    let takers: Vec<&str> = cmd
        .get_subcommands()
        .filter(|s| s.get_arguments().any(|a| a.get_long() == Some(long)))
        .map(|s| s.get_name())
        .collect();
    let also = match takers.is_empty() {
        true => String::new(),
        false => format!(" and of {}", takers.join(", ")),
    };
    // Built, so that the usage shown is the subcommand's (`wechatpay serve [OPTIONS]`).
    let mut built = Cli::command();
    built.build();
    let sub = built.find_subcommand_mut(name);
    let usage = match sub {
        Some(s) => s,
        None => &mut built,
    };
    usage.error(
        clap::error::ErrorKind::ArgumentConflict,
        format!(
            "--{long} does not apply to `wechatpay {name}`: it is an option of calls \
             (wechatpay [OPTIONS] <METHOD> <URI>){also}; see wechatpay {name} --help"
        ),
    )
}

/// Clap's "unexpected argument" for a call option given after a subcommand that does not take
/// it (`wechatpay demo --timeout 5`), said as [`misplaced`] says it.
fn misplaced_after(e: &clap::Error) -> Option<clap::Error> {
    use clap::error::{ContextKind, ContextValue};
    if e.kind() != clap::error::ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split('=').next()?;
    let conf = Conf::augment_args(clap::Command::new("conf"));
    conf.get_arguments().find(|a| a.get_long() == Some(long))?;
    let cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    let name = std::env::args().skip(1).find(|a| names.contains(a))?;
    Some(misplaced(long, &name))
}

/// Copies the call options given before a subcommand into the subcommand's own (same names),
/// unless the subcommand's command line gives them too: its command line wins, then the one
/// before it, then the variable.
macro_rules! take_from_top {
    ($sub:expr, $sub_m:expr, $top:expr, $top_m:expr, [$($f:ident),* $(,)?]) => {{
        $(
            if given($top_m, stringify!($f)) && !given($sub_m, stringify!($f)) {
                $sub.$f = $top.$f.clone();
            }
        )*
    }};
}

/// Whether the value a subcommand ends up with for `id` came from its variable.
fn from_env(top: &ArgMatches, sub: &ArgMatches, id: &str) -> bool {
    !given(top, id) && sub.value_source(id) == Some(ValueSource::EnvVariable)
}

/// Logs to stderr at the level of `-v` (or WECHATPAY_LOG), coloured only on a terminal.
fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn".to_string(),
        1 => "warn,wechatpay=info".to_string(),
        _ => "warn,wechatpay=debug".to_string(),
    };
    let filter = match std::env::var("WECHATPAY_LOG") {
        Ok(d) if !d.trim().is_empty() => EnvFilter::try_new(&d).unwrap_or_else(|e| {
            eprintln!(
                "wechatpay: WECHATPAY_LOG {d:?} is not a filter directive ({e}); using {default:?}"
            );
            EnvFilter::new(&default)
        }),
        _ => EnvFilter::new(&default),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && !no_color)
        .without_time()
        .try_init();
}

fn main() -> ExitCode {
    let matches = Cli::command()
        .try_get_matches()
        .unwrap_or_else(|e| usage_error(e));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e));
    if let Some((what, sub)) = call_args_with(&cli, &matches) {
        usage_error(Cli::command().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "{what} is for a call (wechatpay [OPTIONS] <METHOD> <URI> [ARGS]) and cannot \
                 be given with the {sub} subcommand"
            ),
        ));
    }
    cli.conf.note_sources(&matches, &matches);
    if let Err(why) = scheme::set(cli.scheme.scheme) {
        usage_error(Cli::command().error(clap::error::ErrorKind::InvalidValue, why));
    }
    if let Some((name, sub_m)) = matches.subcommand() {
        if let Err(e) = check_placement(&matches, name) {
            usage_error(e);
        }
        let top = cli.conf.clone();
        match &mut cli.command {
            Some(Command::Serve(a)) => {
                take_from_top!(a, sub_m, top, &matches, [mchid, serial, apiv3_key, secret])
            }
            Some(Command::Sandbox(a)) => {
                take_from_top!(a, sub_m, top, &matches, [base_uri, timeout])
            }
            Some(Command::Certificates(a)) => take_from_top!(
                a,
                sub_m,
                top,
                &matches,
                [mchid, serial, private_key, apiv3_key, base_uri, timeout]
            ),
            Some(Command::Trigger(a)) => {
                take_from_top!(a, sub_m, top, &matches, [mchid, apiv3_key, secret, timeout])
            }
            Some(Command::Listen(a)) => take_from_top!(
                a,
                sub_m,
                top,
                &matches,
                [
                    public_key,
                    public_key_id,
                    platform_cert,
                    apiv3_key,
                    secret,
                    timeout
                ]
            ),
            Some(Command::Bill(a)) => take_from_top!(
                a.conf,
                sub_m,
                top,
                &matches,
                [
                    base_uri,
                    mchid,
                    serial,
                    private_key,
                    public_key,
                    public_key_id,
                    platform_cert,
                    timeout,
                    secret,
                    v2_either_sign_type,
                    merchant_cert,
                    merchant_key,
                    apiv3_key,
                ]
            ),
            _ => {}
        }
        if let Some(Command::Bill(a)) = &mut cli.command {
            a.conf.note_sources(&matches, sub_m);
        }
    }
    init_logging(cli.log.verbose);
    let sub_m = matches.subcommand().map(|(_, m)| m);
    let result = match &cli.command {
        Some(Command::Demo) => match demo::run() {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::OTHER),
            Err(e) => Err(e),
        },
        Some(Command::Serve(a)) => {
            let sub_m = sub_m.unwrap_or(&matches);
            serve::run(
                a,
                serve::Globals {
                    mchid: a.mchid.as_deref(),
                    serial: a.serial.as_deref(),
                    apiv3_key: serve::Global {
                        value: a.apiv3_key.as_deref(),
                        from_env: from_env(&matches, sub_m, "apiv3_key"),
                    },
                    secret: serve::Global {
                        value: a.secret.as_deref(),
                        from_env: from_env(&matches, sub_m, "secret"),
                    },
                },
                key_source,
            )
        }
        Some(Command::Certificates(a)) => certificates::run(a, key_source),
        Some(Command::Sandbox(a)) => match sandbox::run(a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::API),
            Err(e) => Err(e),
        },
        Some(Command::Ops(a)) => match ops::run(a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::OTHER),
            // `wechatpay ops | head`
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(Command::Events(a)) => match events::run(a) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(exit::OTHER),
            // `wechatpay events | head`
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(e.into()),
        },
        Some(Command::Describe(a)) => describe::run(a, &chain_path(&a.uri)),
        Some(Command::Trigger(a)) => {
            let sub_m = sub_m.unwrap_or(&matches);
            let from_env = trigger::FromEnv {
                apiv3_key: from_env(&matches, sub_m, "apiv3_key"),
                secret: from_env(&matches, sub_m, "secret"),
            };
            match trigger::run(a, from_env, key_source) {
                Ok(true) => Ok(()),
                // the handler answered as it must not
                Ok(false) => return ExitCode::from(exit::OTHER),
                Err(e) => Err(e),
            }
        }
        Some(Command::Listen(a)) => listen::run(a, key_source),
        Some(Command::Completions(a)) => {
            completions::run(a, Cli::command());
            Ok(())
        }
        Some(Command::Bill(a)) => read_args(a.args.as_deref()).and_then(|args| {
            let client = a.conf.builder()?.build()?;
            bill::run(a, &client, &chain_path(&a.uri), args)
        }),
        // a bare `wechatpay`: what it does, as clap's arg_required_else_help answers (on
        // stderr, status 2)
        None if cli.call.method.is_none() => {
            eprint!("{}", overview(&Cli::command()));
            return ExitCode::from(exit::USAGE);
        }
        None => call(&cli.call, &cli.conf),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The category says what the message's own English prefix would.
            let text = chain_line(&e);
            let text = [
                "invalid argument: ",
                "configuration error: ",
                "verification failed: ",
                "timeout: ",
                "transport error ",
            ]
            .iter()
            .find_map(|p| text.strip_prefix(p))
            .unwrap_or(&text);
            // serve often runs in the background of a shell: its line says that it stopped.
            let who = match cli.command {
                Some(Command::Serve(_)) => "wechatpay serve stopped",
                _ => "wechatpay",
            };
            eprintln!("{who}: {}: {text}", category(&e));
            ExitCode::from(status_of(&e))
        }
    }
}
