//! `wechatpay trigger EVENT_TYPE --to URL`: sends a documented event's notification, made and
//! signed as the platform makes it (`wechatpay_emulator::events`), to a merchant's handler,
//! and checks its answer: a genuine notification must be accepted, a faulty one refused.

use std::io::Write;

use clap::Args;
use serde_json::Value;
use wechatpay_chain::Error;
use wechatpay_emulator::events::{self, Fault, Keys, Sender, Trigger, Wire};

use crate::common::printable;

const AFTER_HELP: &str = "\
The notification is made as the platform makes it: every required resource field filled,
an APIv3 resource encrypted with the APIv3 key and signed with the platform private key
(APIv2: XML signed with the APIv2 key, a refund's req_info encrypted with it). After
`source $DIR/env` of `wechatpay serve`, `wechatpay trigger TRANSACTION.SUCCESS
--use-env-secrets --to http://127.0.0.1:8080/notify` needs nothing else: the APIv3 and APIv2
keys are taken from WECHATPAY_APIV3_KEY and WECHATPAY_SECRET only with --use-env-secrets (in
another shell they may be the production keys, which would sign a notification a production
handler accepts). Each AES-GCM encryption has a random nonce. It prints what it sent
(headers, the resource in clear as JSON), then each answer (without control characters).
Accepted means a 2xx (APIv2: and XML return_code SUCCESS).

Exit status: 0 the handler accepted the genuine notification (each time, with --replay) or
refused the faulty one (--probe, --stale, --wrong-serial, --bad-signature); 1 it accepted
what it must refuse or refused what it must accept; 2 bad arguments (an unknown event type,
a --set, a fault APIv2 has no place for); 3 keys or configuration; 4 no answer (connection
refused, timeout).";

/// `wechatpay trigger`.
#[derive(Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub struct TriggerArgs {
    /// The event type, as `wechatpay events` lists it: TRANSACTION.SUCCESS, REFUND.SUCCESS,
    /// refund-processed (APIv2) …
    #[arg(value_name = "EVENT_TYPE")]
    pub event: String,
    /// The handler's URL (http:// or https://).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Sets a resource field: a dotted path into objects and lists and a value typed as the
    /// page documents it (amount.total=100, promotion_detail.0.coupon_id=C1); path:=JSON sets
    /// any JSON. Repeatable.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Send the platform's signature probe (Wechatpay-Signature: WECHATPAY/SIGNTEST/…): the
    /// handler must refuse it.
    #[arg(long, group = "fault")]
    pub probe: bool,
    /// Send a Wechatpay-Timestamp 600 s old (outside ±300 s), correctly signed: the handler
    /// must refuse it.
    #[arg(long, group = "fault")]
    pub stale: bool,
    /// Name a platform key serial the handler does not know: it must refuse it.
    #[arg(long, group = "fault")]
    pub wrong_serial: bool,
    /// Send a signature that does not verify (APIv2: a sign or req_info made with another
    /// key): the handler must refuse it.
    #[arg(long, group = "fault")]
    pub bad_signature: bool,
    /// Send the same notification N times: handlers must be idempotent, and answer each alike.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub replay: u32,
    /// The APIv2 event of a type both protocols document (TRANSACTION.SUCCESS, …): without it
    /// the APIv3 one.
    #[arg(long)]
    pub v2: bool,
    /// The platform private key notifications are signed with (path; `wechatpay serve` writes
    /// the sandbox's).
    #[arg(
        long,
        value_name = "PATH",
        env = "WECHATPAY_SANDBOX_PLATFORM_PRIVATE_KEY"
    )]
    pub platform_private_key: Option<String>,
    /// The serial (or PUB_KEY_ID_…) the platform key is named by in Wechatpay-Serial.
    #[arg(long, value_name = "SERIAL", env = "WECHATPAY_SANDBOX_PLATFORM_SERIAL")]
    pub platform_serial: Option<String>,
    /// APIv3 key (encrypts the resource; WECHATPAY_APIV3_KEY only with --use-env-secrets).
    #[arg(long, env = "WECHATPAY_APIV3_KEY", hide_env_values = true)]
    pub apiv3_key: Option<String>,
    /// APIv2 key (signs APIv2 notifications, encrypts req_info; WECHATPAY_SECRET only with
    /// --use-env-secrets).
    #[arg(long, env = "WECHATPAY_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Take the APIv3 key and the APIv2 key from WECHATPAY_APIV3_KEY and WECHATPAY_SECRET
    /// (as after sourcing the env file of `wechatpay serve`). Without it, a key found only
    /// there is refused: it may be a production key; --apiv3-key and --secret on the command
    /// line are always used.
    #[arg(long)]
    pub use_env_secrets: bool,
    /// The merchant id the notification is about.
    #[arg(long, env = "WECHATPAY_MCHID")]
    pub mchid: Option<String>,
    /// Seconds to wait for each answer (default 10).
    #[arg(long, env = "WECHATPAY_TIMEOUT")]
    pub timeout: Option<f64>,
}

impl TriggerArgs {
    fn fault(&self) -> Option<Fault> {
        [
            (self.probe, Fault::Probe),
            (self.stale, Fault::Stale),
            (self.wrong_serial, Fault::WrongSerial),
            (self.bad_signature, Fault::BadSignature),
        ]
        .into_iter()
        .find_map(|(on, f)| on.then_some(f))
    }
}

/// Which of the keys came from their environment variable rather than the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct FromEnv {
    /// `--apiv3-key` from WECHATPAY_APIV3_KEY.
    pub apiv3_key: bool,
    /// `--secret` from WECHATPAY_SECRET.
    pub secret: bool,
}

/// Sends the notification; `Ok(false)` when the handler answered as it must not.
pub fn run(
    a: &TriggerArgs,
    from_env: FromEnv,
    key_source: impl Fn(&str) -> String,
) -> Result<bool, Error> {
    let event = events::find(&a.event, a.v2)?;
    let mut trigger = Trigger::new(event);
    for s in &a.set {
        trigger = trigger.set_text(s)?;
    }
    if let Some(f) = a.fault() {
        trigger = trigger.fault(f);
    }
    let keys = keys(a, trigger.wire(), from_env, key_source)?;
    let timeout = crate::common::timeout(a.timeout)?;
    let sent = trigger.build(&keys)?;
    let mut out = std::io::stdout().lock();
    let protocol = if sent.wire.is_v2() { "APIv2" } else { "APIv3" };
    let fault = sent
        .fault
        .map(|f| format!(", fault {f}: must be refused"))
        .unwrap_or_else(|| ", must be accepted".into());
    let _ = writeln!(out, "→ POST {} ({} {protocol}{fault})", a.to, event.kind);
    for (k, v) in &sent.headers {
        let _ = writeln!(out, "{}: {}", title(k.as_str()), v.to_str().unwrap_or("…"));
    }
    let _ = writeln!(out, "resource (in clear):");
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(&sent.resource).unwrap_or_default()
    );
    if sent.wire.is_v2() {
        let _ = writeln!(
            out,
            "body:\n{}",
            printable(&String::from_utf8_lossy(&sent.body), true)
        );
    }
    let _ = out.flush();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sender = Sender::new()?;
    let mut right = true;
    for i in 1..=a.replay {
        let answer = rt.block_on(sender.post(&a.to, &sent.headers, sent.body.clone(), timeout))?;
        let accepted = sent.accepted_by(answer.status, &answer.body);
        let ok = accepted == sent.must_accept();
        right &= ok;
        let verdict = match (accepted, ok) {
            (true, true) => "accepted, as it must be".to_string(),
            (false, true) => "refused, as it must be".to_string(),
            (true, false) => format!(
                "ACCEPTED, but it must be refused ({})",
                sent.fault.map(why).unwrap_or("")
            ),
            (false, false) => "REFUSED, but it is genuine and must be accepted".to_string(),
        };
        let nth = if a.replay > 1 {
            format!(" [{i}/{}]", a.replay)
        } else {
            String::new()
        };
        let _ = writeln!(out, "← {}{nth}: {verdict}", answer.status);
        let body = String::from_utf8_lossy(&answer.body);
        if !body.trim().is_empty() {
            // JSON is printed with its control characters escaped, other text without them
            let shown: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
            match shown {
                Value::Null => {
                    let _ = writeln!(out, "{}", printable(body.trim_end(), true));
                }
                v => {
                    let _ = writeln!(out, "{v}");
                }
            }
        }
        let _ = out.flush();
    }
    if !right {
        eprintln!(
            "wechatpay trigger: the handler at {} answered {} as it must not (see above)",
            a.to, event.kind
        );
    }
    Ok(right)
}

/// What a handler that accepts a faulty notification fails to check.
fn why(f: Fault) -> &'static str {
    match f {
        Fault::Stale => "Wechatpay-Timestamp is outside ±300 s",
        Fault::WrongSerial => "Wechatpay-Serial names no key of the platform's",
        Fault::BadSignature => "the signature does not verify",
        Fault::Probe => "it is the platform's signature probe WECHATPAY/SIGNTEST/",
        _ => "",
    }
}

/// `wechatpay-serial` as `Wechatpay-Serial`.
fn title(name: &str) -> String {
    name.split('-')
        .map(|w| match w {
            "id" => "ID".to_string(),
            _ => {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

fn keys(
    a: &TriggerArgs,
    wire: Wire,
    from_env: FromEnv,
    key_source: impl Fn(&str) -> String,
) -> Result<Keys, Error> {
    const HINT: &str =
        "source the env file `wechatpay serve` writes and pass --use-env-secrets, or give the option";
    // A key found only in the environment is most likely the shell's production one: a
    // notification signed or encrypted with it is one a production handler accepts.
    let key = |value: &Option<String>, env: bool, var: &str, option: &str| match value {
        Some(_) if env && !a.use_env_secrets => Err(Error::config(format!(
            "{var} is set in the environment and may be your production key: trigger signs \
             and encrypts with it only when asked; pass --use-env-secrets if it is the \
             sandbox's (after `source $DIR/env` of `wechatpay serve`), or give {option}"
        ))),
        v => Ok(v.clone().unwrap_or_default()),
    };
    let v3_needed = wire == Wire::V3 || wire == Wire::V2Sealed;
    let apiv3 = match v3_needed {
        true => key(
            &a.apiv3_key,
            from_env.apiv3_key,
            "WECHATPAY_APIV3_KEY",
            "--apiv3-key",
        )?,
        false => String::new(),
    };
    let apiv2 = match wire.is_v2() {
        true => key(&a.secret, from_env.secret, "WECHATPAY_SECRET", "--secret")?,
        false => String::new(),
    };
    if v3_needed && apiv3.len() != 32 {
        return Err(Error::config(if apiv3.is_empty() {
            format!("the APIv3 key is missing (--apiv3-key, WECHATPAY_APIV3_KEY): {HINT}")
        } else {
            format!("the APIv3 key must be 32 bytes, it has {}", apiv3.len())
        }));
    }
    if wire.is_v2() && apiv2.is_empty() {
        return Err(Error::config(format!(
            "an APIv2 notification needs the APIv2 key (--secret, WECHATPAY_SECRET): {HINT}"
        )));
    }
    // APIv2 notifications are not signed with the platform key: it is read only for APIv3
    let mut keys = if wire == Wire::V3 {
        let path = a.platform_private_key.as_deref().ok_or_else(|| {
            Error::config(format!(
                "the platform private key is missing (--platform-private-key, \
                 WECHATPAY_SANDBOX_PLATFORM_PRIVATE_KEY): {HINT}"
            ))
        })?;
        let serial = a.platform_serial.clone().ok_or_else(|| {
            Error::config(format!(
                "the platform key's serial is missing (--platform-serial, \
                 WECHATPAY_SANDBOX_PLATFORM_SERIAL): {HINT}"
            ))
        })?;
        let key = crate::scheme::private_key(&key_source(path))
            .map_err(|e| e.prefixed(format_args!("--platform-private-key {path}")))?;
        Keys::new(key, serial, apiv3)
    } else {
        let mut k = Keys::apiv2(apiv2);
        k.apiv3_key = apiv3;
        k
    };
    if let Some(m) = &a.mchid {
        keys.mchid = m.clone();
    }
    Ok(keys)
}
