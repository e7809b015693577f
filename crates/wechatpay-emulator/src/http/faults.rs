//! Faults on demand (in the http room, as the server applies them to answers): a plan of rules, each matching an operation (method and catalogue
//! template), a path pattern or a notification's event type, and doing one thing to it: answer
//! a documented error, delay the answer, drop the connection, hang; drop, delay, duplicate or
//! reorder a notification. For the next N matching calls, or with a probability drawn from a
//! seeded generator (the same seed, the same calls fire). Set by [`EmulatorConfig::fault`]
//! (crate::EmulatorConfig::fault), [`Emulator::fault`](crate::Emulator::fault), `POST
//! /emulator/faults` and `wechatpay serve --fault SPEC`.
//!
//! A rule applies to what the platform would have taken: a request that passed the guard and
//! the platform's checks (an APIv3 signature and `Wechatpay-Serial`; an APIv2 certificate,
//! `sign` and merchant). A request refused there is refused as usual and uses up no rule.
//!
//! An error of status 5xx or a pending answer (202, `USERPAYING`) leaves the outcome unknown,
//! as on the platform: the sandbox carries the call out and answers the error instead of its
//! answer, so that a query finds what happened. Any other error (4xx) refuses the call and
//! nothing is done. A delayed, dropped or hung call is carried out too: only its answer is
//! late, lost or never sent.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::http::answer::Answer;
use crate::util::{lock, Counted};
use wechatpay_chain::Error;

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultTarget {
    /// One operation of the catalogue: its method and path template
    /// (`POST v3/pay/transactions/jsapi`, `GET v3/pay/transactions/id/{transaction_id}`,
    /// `POST v2/pay/micropay`).
    Operation {
        /// `GET`, `POST` …
        method: String,
        /// The catalogue's template, without a leading `/`.
        template: String,
    },
    /// Every call whose path (without its query and leading `/`; APIv2 paths as `v2/…`)
    /// matches this glob, any method: `*` any run of characters (`/` too), `?` one.
    Path(String),
    /// Notifications of this event type (`TRANSACTION.SUCCESS`; `*` every one).
    Notification(String),
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answers the platform's error: `{"code","message"}` with this status, signed (an APIv2
    /// call: `result_code` FAIL with this `err_code`, signed in the request's sign type).
    Error {
        /// The HTTP status (an APIv2 answer is 200 whatever it says).
        status: u16,
        /// The platform's code: `SYSTEM_ERROR`, `FREQUENCY_LIMITED`, `USERPAYING` …
        code: String,
        /// The message.
        message: String,
    },
    /// Answers (or sends the notification) this much later.
    Delay(Duration),
    /// A call: closes the connection without answering, once the request is read. A
    /// notification: never sent (none of its attempts).
    Drop,
    /// A call: never answers, until the client gives up (or the sandbox stops).
    Hang,
    /// A notification: delivered again (same body, same `id`) once it has been accepted.
    Duplicate,
    /// A notification: held back until the next notification has had its first attempt
    /// (at most [`REORDER_HOLD`]), so that it arrives after a later one.
    Reorder,
}

/// The longest a reordered notification waits for the next one.
pub const REORDER_HOLD: Duration = Duration::from_secs(10);

/// The platform's common error codes, with the status and message they come with. The
/// documentation pages of the operations (docs-site) list no error codes; these are the
/// platform's published common errors (APIv3 codes, then APIv2 `err_code`s).
const KNOWN: &[(&str, u16, &str)] = &[
    ("SYSTEM_ERROR", 500, "系统错误"),
    ("SERVICE_UNAVAILABLE", 503, "服务不可用，请稍后重试"),
    ("BANK_ERROR", 500, "银行系统异常"),
    ("FREQUENCY_LIMITED", 429, "频率超限"),
    ("NO_AUTH", 403, "无权限"),
    ("NOAUTH", 403, "商户无此接口权限"),
    ("TRADE_ERROR", 403, "交易错误"),
    ("RULE_LIMIT", 403, "业务规则限制"),
    ("NOT_ENOUGH", 403, "余额不足"),
    ("PARAM_ERROR", 400, "参数错误"),
    ("INVALID_REQUEST", 400, "无效请求"),
    ("SIGN_ERROR", 401, "签名错误"),
    ("ORDER_NOT_EXIST", 404, "订单不存在"),
    ("USERPAYING", 202, "用户支付中，需要输入密码"),
    ("SYSTEMERROR", 500, "系统超时"),
    ("BANKERROR", 500, "银行系统异常"),
    ("NOTENOUGH", 403, "余额不足"),
    ("ORDERPAID", 400, "商户订单已支付"),
    ("ORDERCLOSED", 400, "订单已关闭"),
    (
        "AUTHCODEEXPIRE",
        400,
        "二维码已过期，请用户在微信上刷新后再试",
    ),
];

/// What the accepted SPECs look like, for errors.
const GRAMMAR: &str = "TARGET=ACTION[*N][@P[,seed=S]], TARGET one of `METHOD TEMPLATE` \
    (POST v3/pay/transactions/jsapi), a path glob (v3/refund/*) or notify:EVENT \
    (notify:TRANSACTION.SUCCESS, notify:*)";
const CALL_ACTIONS: &str = "[STATUS:]CODE[:MESSAGE] (500:SYSTEM_ERROR, FREQUENCY_LIMITED), \
    delay:DURATION (delay:3s, delay:250ms), drop, hang";
const NOTIFY_ACTIONS: &str = "drop, delay:DURATION (delay:3s), duplicate, reorder";

impl FaultAction {
    /// The platform's error `code` with its documented status and message (`SYSTEM_ERROR`:
    /// 500; `FREQUENCY_LIMITED`: 429; `NOAUTH`: 403; `PARAM_ERROR`: 400; `USERPAYING`: 202 …);
    /// `None` for a code the sandbox does not know (give its status with
    /// [`FaultAction::Error`]).
    pub fn error(code: &str) -> Option<FaultAction> {
        let (code, status, message) = KNOWN.iter().find(|(c, _, _)| *c == code)?;
        Some(FaultAction::Error {
            status: *status,
            code: code.to_string(),
            message: message.to_string(),
        })
    }

    /// Whether the call is carried out before the answer is spoiled (5xx and pending errors,
    /// delays, drops, hangs) rather than refused.
    fn runs(&self) -> bool {
        match self {
            FaultAction::Error { status, .. } => *status >= 500 || *status == 202,
            _ => true,
        }
    }

    fn for_notifications(&self) -> bool {
        matches!(
            self,
            FaultAction::Drop
                | FaultAction::Delay(_)
                | FaultAction::Duplicate
                | FaultAction::Reorder
        )
    }
}

/// One rule of a fault plan. Written and read as a SPEC (its [`Display`](fmt::Display) and
/// [`FromStr`]): `TARGET=ACTION[*N][@P[,seed=S]]`, e.g.
/// `POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2`, `v3/refund/*=delay:3s@0.5,seed=7`,
/// `notify:TRANSACTION.SUCCESS=drop*1` (see docs/emulator.md, "Faults").
///
/// ```
/// use wechatpay_emulator::{Fault, FaultAction};
/// let f: Fault = "POST v3/pay/transactions/jsapi=SYSTEM_ERROR*2".parse().unwrap();
/// assert_eq!(f.to_string(), "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2");
/// let g = Fault::operation("POST", "v3/pay/transactions/jsapi", FaultAction::error("SYSTEM_ERROR").unwrap())
///     .unwrap()
///     .times(2);
/// assert_eq!(f, g);
/// assert!("POST v3/pay/transactions/jsapii=drop".parse::<Fault>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    target: FaultTarget,
    action: FaultAction,
    times: Option<u64>,
    chance: Option<(f64, u64)>,
}

fn invalid(spec: &str, what: String) -> Error {
    Error::InvalidArgument(format!("fault {spec:?}: {what}"))
}

impl Fault {
    /// A rule for operation `method` `template` of the catalogue (an unknown one is an error
    /// that says so). `action` must be one for calls.
    pub fn operation(method: &str, template: &str, action: FaultAction) -> Result<Fault, Error> {
        let spec = format!("{method} {template}");
        operation(method, template)
            .and_then(|t| Fault::new(t, action))
            .map_err(|e| invalid(&spec, e))
    }

    /// A rule for every call whose path matches `glob` (`*`, `?`; any method).
    pub fn path(glob: &str, action: FaultAction) -> Result<Fault, Error> {
        path(glob)
            .and_then(|t| Fault::new(t, action))
            .map_err(|e| invalid(glob, e))
    }

    /// A rule for the notifications of `event_type` (`*`: all).
    pub fn notification(event_type: &str, action: FaultAction) -> Result<Fault, Error> {
        notification(event_type)
            .and_then(|t| Fault::new(t, action))
            .map_err(|e| invalid(event_type, e))
    }

    fn new(target: FaultTarget, action: FaultAction) -> Result<Fault, String> {
        let notify = matches!(target, FaultTarget::Notification(_));
        let fits = if notify {
            action.for_notifications()
        } else {
            !matches!(action, FaultAction::Duplicate | FaultAction::Reorder)
        };
        if !fits {
            let accepted = if notify { NOTIFY_ACTIONS } else { CALL_ACTIONS };
            return Err(format!(
                "this action does not apply here; accepted: {accepted}"
            ));
        }
        if let FaultAction::Error { status, code, .. } = &action {
            if !(*status == 202 || (400..=599).contains(status)) || code.is_empty() {
                return Err("an error has a status of 202 or 400 to 599 and a code".into());
            }
        }
        Ok(Fault {
            target,
            action,
            times: None,
            chance: None,
        })
    }

    /// Fires on the next `n` matching calls (or notifications) only.
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }

    /// Fires on each matching call with probability `p` (0 to 1), drawn from a generator
    /// seeded with `seed`: the same seed makes the same calls fire, in the same order.
    pub fn chance(mut self, p: f64, seed: u64) -> Fault {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.chance = Some((p, seed));
        self
    }

    /// What it applies to.
    pub fn target(&self) -> &FaultTarget {
        &self.target
    }

    /// What it does.
    pub fn action(&self) -> &FaultAction {
        &self.action
    }

    /// Reads a SPEC (see [`Fault`]); the error names the part that is wrong and what is
    /// accepted there.
    pub fn parse(spec: &str) -> Result<Fault, Error> {
        let s = spec.trim();
        let Some((target, rest)) = s.split_once('=') else {
            return Err(invalid(
                s,
                format!("no `=` between target and action; a fault is {GRAMMAR}"),
            ));
        };
        let (rest, chance) = match rest.split_once('@') {
            Some((r, c)) => (r, Some(chance(c).map_err(|e| invalid(s, e))?)),
            None => (rest, None),
        };
        let (action, times) = match rest.rsplit_once('*') {
            Some((a, n)) => match n.trim().parse::<u64>() {
                Ok(n) if n > 0 => (a, Some(n)),
                _ => {
                    return Err(invalid(
                        s,
                        format!("`*{n}`: the count after * is a whole number above 0 (*2)"),
                    ))
                }
            },
            None => (rest, None),
        };
        let target = target.trim();
        let made = if let Some(event) = target.strip_prefix("notify:") {
            notify_action(action.trim())
                .and_then(|a| notification(event).and_then(|t| Fault::new(t, a)))
        } else {
            call_action(action.trim()).and_then(|a| {
                let t = match target.split_once(' ') {
                    Some((method, template)) => operation(method, template),
                    None => path(target),
                }?;
                Fault::new(t, a)
            })
        };
        let mut f = made.map_err(|e| invalid(s, e))?;
        f.times = times;
        f.chance = chance;
        Ok(f)
    }
}

impl FromStr for Fault {
    type Err = Error;
    fn from_str(s: &str) -> Result<Fault, Error> {
        Fault::parse(s)
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.target {
            FaultTarget::Operation { method, template } => write!(f, "{method} {template}")?,
            FaultTarget::Path(g) => f.write_str(g)?,
            FaultTarget::Notification(e) => write!(f, "notify:{e}")?,
        }
        f.write_str("=")?;
        match &self.action {
            FaultAction::Error {
                status,
                code,
                message,
            } => {
                write!(f, "{status}:{code}")?;
                let known = KNOWN.iter().any(|(c, _, m)| c == code && m == message);
                if !known && !message.is_empty() {
                    write!(f, ":{message}")?;
                }
            }
            FaultAction::Delay(d) => write!(f, "delay:{}ms", d.as_millis())?,
            FaultAction::Drop => f.write_str("drop")?,
            FaultAction::Hang => f.write_str("hang")?,
            FaultAction::Duplicate => f.write_str("duplicate")?,
            FaultAction::Reorder => f.write_str("reorder")?,
        }
        if let Some(n) = self.times {
            write!(f, "*{n}")?;
        }
        if let Some((p, seed)) = self.chance {
            write!(f, "@{p},seed={seed}")?;
        }
        Ok(())
    }
}

/// A path pattern.
fn path(glob: &str) -> Result<FaultTarget, String> {
    let glob = glob.trim().trim_start_matches('/');
    if glob.is_empty() || glob.contains(char::is_whitespace) {
        return Err(format!("`{glob}` is not a target; a fault is {GRAMMAR}"));
    }
    Ok(FaultTarget::Path(glob.to_string()))
}

/// An event type, or `*`.
fn notification(event: &str) -> Result<FaultTarget, String> {
    let e = event.trim();
    if e.is_empty() || e.contains(char::is_whitespace) {
        return Err(format!(
            "`{e}` is not an event type: one word such as TRANSACTION.SUCCESS, or * for every notification"
        ));
    }
    Ok(FaultTarget::Notification(e.to_string()))
}

/// `METHOD TEMPLATE` as a catalogue operation.
fn operation(method: &str, template: &str) -> Result<FaultTarget, String> {
    let method = method.trim().to_ascii_uppercase();
    if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
        return Err(format!(
            "`{method}` is not a method: GET, POST, PUT, PATCH or DELETE, then the operation's \
             template (POST v3/pay/transactions/jsapi)"
        ));
    }
    let template = template.trim().trim_start_matches('/');
    match wechatpay_chain::catalog::find(&method, template) {
        Some(op) if op.template == template => Ok(FaultTarget::Operation {
            method,
            template: template.to_string(),
        }),
        Some(op) => Err(format!(
            "`{template}` is not an operation's template; the catalogue's is `{}` (or match \
             a concrete path with a path pattern, without the method)",
            op.template
        )),
        None => Err(format!(
            "the catalogue has no operation {method} {template} (`wechatpay ops WORDS` lists \
             them; templates are written like v3/pay/transactions/id/{{transaction_id}})"
        )),
    }
}

/// `P[,seed=S]`.
fn chance(s: &str) -> Result<(f64, u64), String> {
    let (p, seed) = match s.split_once(',') {
        Some((p, seed)) => {
            let n = seed
                .trim()
                .strip_prefix("seed=")
                .and_then(|n| n.parse::<u64>().ok());
            match n {
                Some(n) => (p, n),
                None => {
                    return Err(format!(
                    "`{seed}`: after the probability comes seed=S, S a whole number (@0.5,seed=7)"
                ))
                }
            }
        }
        None => (s, 0),
    };
    let p = p.trim();
    let value = match p.strip_suffix('%') {
        Some(pc) => pc.parse::<f64>().map(|v| v / 100.0),
        None => p.parse::<f64>(),
    };
    match value {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok((v, seed)),
        _ => Err(format!(
            "`@{p}`: the probability is a number above 0 and at most 1, or a percentage (@0.5, @25%)"
        )),
    }
}

/// A duration of at most a day, as the clock reads one: seconds (`1.5`), or parts with units
/// (`250ms`, `3s`, `2m`, `1h`, `1h30m`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    match crate::util::parse_duration(s) {
        Some(ms) if ms <= 86_400_000 => Ok(Duration::from_millis(ms as u64)),
        _ => Err(format!(
            "`{s}` is not a duration: at most a day, such as 250ms, 3s, 2m, 1h30m or 1.5 (seconds)"
        )),
    }
}

fn delay(spec: &str) -> Result<FaultAction, String> {
    parse_duration(spec).map(FaultAction::Delay)
}

/// A call's action.
fn call_action(a: &str) -> Result<FaultAction, String> {
    match a {
        "drop" => return Ok(FaultAction::Drop),
        "hang" => return Ok(FaultAction::Hang),
        "duplicate" | "reorder" => {
            return Err(format!(
                "`{a}` is for notifications (notify:EVENT={a}); a call's action is {CALL_ACTIONS}"
            ))
        }
        _ => {}
    }
    if let Some(d) = a.strip_prefix("delay:") {
        return delay(d);
    }
    let bad = || format!("`{a}` is not an action; a call's action is {CALL_ACTIONS}");
    let (status, rest) = match a.split_once(':') {
        Some((s, rest)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(s.parse::<u16>().map_err(|_| bad())?), rest)
        }
        _ => (None, a),
    };
    let (code, message) = match rest.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (rest, None),
    };
    if code.is_empty()
        || !code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(bad());
    }
    let known = FaultAction::error(code);
    let (status, known_message) = match (status, known) {
        (Some(s), Some(FaultAction::Error { message, .. })) => (s, message),
        (Some(s), _) => (s, String::new()),
        (
            None,
            Some(FaultAction::Error {
                status, message, ..
            }),
        ) => (status, message),
        (None, _) => {
            return Err(format!(
                "`{code}` is not a code the sandbox knows the status of: give it, as 500:{code}"
            ))
        }
    };
    Ok(FaultAction::Error {
        status,
        code: code.to_string(),
        message: message.map_or(known_message, str::to_string),
    })
}

/// A notification's action.
fn notify_action(a: &str) -> Result<FaultAction, String> {
    match a {
        "drop" => Ok(FaultAction::Drop),
        "duplicate" => Ok(FaultAction::Duplicate),
        "reorder" => Ok(FaultAction::Reorder),
        _ => match a.strip_prefix("delay:") {
            Some(d) => delay(d),
            None => Err(format!(
                "`{a}` is not a notification's action; accepted: {NOTIFY_ACTIONS}"
            )),
        },
    }
}

/// Whether `text` matches `glob` (`*` any run, `?` one character).
fn glob_matches(glob: &str, text: &str) -> bool {
    let (g, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut gi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == t[ti]) {
            gi += 1;
            ti += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ti));
            gi += 1;
        } else if let Some((sg, st)) = star {
            gi = sg + 1;
            ti = st + 1;
            star = Some((sg, st + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|c| *c == '*')
}

/// A rule of the running plan, with its counts.
#[derive(Debug, Clone)]
pub struct FaultStatus {
    /// Its number in this sandbox (1 for the first rule ever added).
    pub id: u64,
    /// The rule.
    pub fault: Fault,
    /// How many calls (or notifications) it matched.
    pub matched: u64,
    /// How many of them it fired on.
    pub fired: u64,
}

impl FaultStatus {
    /// Its entry in `GET /emulator/faults`.
    pub(crate) fn to_json(&self) -> Value {
        json!({"id": self.id, "spec": self.fault.to_string(), "matched": self.matched,
               "fired": self.fired,
               "remaining": self.fault.times.map(|n| n.saturating_sub(self.fired))})
    }
}

/// A fault that fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredFault {
    /// The rule's id ([`FaultStatus::id`]).
    pub rule: u64,
    /// The rule's SPEC.
    pub spec: String,
    /// On what: `POST /v3/pay/transactions/jsapi` (the path, without its query), or
    /// `notify TRANSACTION.SUCCESS {id}`.
    pub on: String,
}

/// What a call or notification is, for matching.
pub(crate) enum Subject<'a> {
    /// A call: its method and its path (`v3/…`, `v2/…`), without query or leading `/`.
    Call {
        method: &'a str,
        path: &'a str,
    },
    Notification(&'a str),
}

struct Rule {
    status: FaultStatus,
    /// The generator's state (splitmix64), from the seed.
    draws: u64,
}

impl Rule {
    fn matches(&self, s: &Subject<'_>) -> bool {
        match (&self.status.fault.target, s) {
            (FaultTarget::Operation { method, template }, Subject::Call { method: m, path }) => {
                method.eq_ignore_ascii_case(m)
                    && wechatpay_chain::catalog::find(m, path)
                        .is_some_and(|op| op.template == template)
            }
            (FaultTarget::Path(g), Subject::Call { path, .. }) => glob_matches(g, path),
            (FaultTarget::Notification(e), Subject::Notification(t)) => e == "*" || e == t,
            _ => false,
        }
    }

    /// A uniform draw in [0, 1) (splitmix64).
    fn draw(&mut self) -> f64 {
        self.draws = self.draws.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.draws;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The most fired faults remembered.
const MAX_FIRED: usize = 1000;

/// The running fault plan.
#[derive(Default)]
pub(crate) struct Faults {
    /// The plan: an empty one (nearly always) is seen without the lock.
    rules: Counted<Vec<Rule>>,
    next_id: Mutex<u64>,
    fired: Mutex<std::collections::VecDeque<FiredFault>>,
    /// Reordered notifications waiting for the next one.
    held: Mutex<Vec<oneshot::Sender<()>>>,
    /// Those held, by the notification whose first attempt releases them.
    releasing: Mutex<std::collections::HashMap<String, Vec<oneshot::Sender<()>>>>,
    /// Notifications to deliver again once accepted, by id.
    duplicates: Mutex<std::collections::HashSet<String>>,
}

impl Faults {
    pub fn new(plan: &[Fault]) -> Faults {
        let f = Faults::default();
        for rule in plan {
            f.add(rule.clone());
        }
        f
    }

    pub fn add(&self, fault: Fault) -> u64 {
        let id = {
            let mut n = lock(&self.next_id);
            *n += 1;
            *n
        };
        let draws = fault.chance.map_or(0, |(_, seed)| seed);
        self.rules.lock().push(Rule {
            status: FaultStatus {
                id,
                fault,
                matched: 0,
                fired: 0,
            },
            draws,
        });
        id
    }

    pub fn clear(&self) {
        self.rules.lock().clear();
    }

    pub fn list(&self) -> Vec<FaultStatus> {
        self.rules.lock().iter().map(|r| r.status.clone()).collect()
    }

    pub fn fired(&self) -> Vec<FiredFault> {
        lock(&self.fired).iter().cloned().collect()
    }

    /// Whether a rule might apply to `s` (without counting it).
    pub fn any_for(&self, s: &Subject<'_>) -> bool {
        !self.rules.is_empty() && self.rules.lock().iter().any(|r| r.matches(s))
    }

    /// The action and SPEC of the first rule that fires on `s`, counting it; rules used up
    /// are passed over, and a rule whose draw misses lets the next one try.
    pub fn pick(
        &self,
        s: &Subject<'_>,
        on: impl FnOnce() -> String,
    ) -> Option<(FaultAction, String)> {
        if self.rules.is_empty() {
            return None;
        }
        let mut rules = self.rules.lock();
        for r in rules.iter_mut() {
            if r.status.fault.times.is_some_and(|n| r.status.fired >= n) || !r.matches(s) {
                continue;
            }
            r.status.matched += 1;
            if let Some((p, _)) = r.status.fault.chance {
                if r.draw() >= p {
                    continue;
                }
            }
            r.status.fired += 1;
            let fired = FiredFault {
                rule: r.status.id,
                spec: r.status.fault.to_string(),
                on: on(),
            };
            tracing::debug!(rule = fired.rule, on = %fired.on, "fault fired: {}", fired.spec);
            let spec = fired.spec.clone();
            let mut log = lock(&self.fired);
            log.push_back(fired);
            if log.len() > MAX_FIRED {
                log.pop_front();
            }
            return Some((r.status.fault.action.clone(), spec));
        }
        None
    }

    /// Holds a reordered notification: it goes once the next notification has had its first
    /// attempt.
    pub fn hold(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.held).push(tx);
        rx
    }

    /// The notifications held until now go once notification `id` has had its first attempt.
    pub fn pass_held_to(&self, id: &str) {
        let held = std::mem::take(&mut *lock(&self.held));
        if !held.is_empty() {
            lock(&self.releasing).insert(id.to_string(), held);
        }
    }

    /// Notification `id` has had its first attempt: those held for it go.
    pub fn release(&self, id: &str) {
        let Some(held) = lock(&self.releasing).remove(id) else {
            return;
        };
        for next in held {
            let _ = next.send(());
        }
    }

    /// Notification `id` is to be delivered again once accepted.
    pub fn duplicate(&self, id: &str) {
        lock(&self.duplicates).insert(id.to_string());
    }

    /// Whether accepted notification `id` is to be delivered again (once).
    pub fn take_duplicate(&self, id: &str) -> bool {
        lock(&self.duplicates).remove(id)
    }
}

/// What a fault does to a call.
pub(crate) enum Effect {
    /// Answer this instead; the call is not carried out.
    Instead(Answer),
    /// Carry the call out, then answer this instead of its answer.
    Replace(Answer),
    /// Carry the call out; then wait, drop the connection or hang.
    After(FaultAction),
}

/// A fault that fired on a call: its SPEC (for the request log), and what is left to do to
/// the answer.
pub(crate) struct Fired {
    pub spec: String,
    pub after: Option<FaultAction>,
}

/// For an admitted call (`v3`/`v2` `path`): what its fault does, if one fires. `error` makes
/// the answer of an error action in the call's protocol.
pub(crate) fn on_call(
    faults: &Faults,
    method: &str,
    path: &str,
    error: impl FnOnce(u16, &str, &str) -> Answer,
) -> Option<(Effect, String)> {
    let s = Subject::Call { method, path };
    let (action, spec) = faults.pick(&s, || format!("{method} /{path}"))?;
    let effect = match &action {
        FaultAction::Error {
            status,
            code,
            message,
        } => {
            let a = error(*status, code, message);
            if action.runs() {
                Effect::Replace(a)
            } else {
                Effect::Instead(a)
            }
        }
        _ => Effect::After(action),
    };
    Some((effect, spec))
}

/// Runs a call under the fault that fired on it, if one did: its answer (or the fault's), and
/// the fault.
pub(crate) fn apply(
    effect: Option<(Effect, String)>,
    run: impl FnOnce() -> Answer,
) -> (Answer, Option<Fired>) {
    let Some((effect, spec)) = effect else {
        return (run(), None);
    };
    let (answer, after) = match effect {
        Effect::Instead(a) => (a, None),
        Effect::Replace(a) => {
            let _ = run();
            (a, None)
        }
        Effect::After(action) => (run(), Some(action)),
    };
    (answer, Some(Fired { spec, after }))
}

/// `/emulator/faults`: `GET` lists the rules with their counts and what fired; `POST`
/// `{"spec": SPEC}` (or `{"specs": [SPEC, …]}`, all or none) adds rules and lists them;
/// `DELETE` removes every rule.
pub(crate) fn control(
    faults: &Faults,
    method: &str,
    body: &serde_json::Map<String, Value>,
) -> Answer {
    use Answer;
    let listed =
        |rules: &[FaultStatus]| -> Vec<Value> { rules.iter().map(FaultStatus::to_json).collect() };
    match method {
        "GET" => {
            let fired: Vec<Value> = faults
                .fired()
                .iter()
                .map(|f| json!({"rule": f.rule, "spec": f.spec, "on": f.on}))
                .collect();
            Answer::ok(json!({"data": listed(&faults.list()), "fired": fired}))
        }
        "DELETE" => {
            faults.clear();
            Answer::no_content()
        }
        _ => {
            let specs: Vec<&Value> =
                match (body.get("spec"), body.get("specs")) {
                    (Some(one), None) => vec![one],
                    (None, Some(Value::Array(many))) if !many.is_empty() => many.iter().collect(),
                    _ => return Answer::param_error(
                        "/spec",
                        "body",
                        "give the fault as {\"spec\": SPEC} or {\"specs\": [SPEC, …]}, SPEC as \
                         `wechatpay serve --fault` takes it (docs/emulator.md, Faults)",
                        Value::Null,
                    ),
                };
            let mut parsed = Vec::new();
            for v in specs {
                let made = match v.as_str() {
                    Some(text) => Fault::parse(text).map_err(|e| e.to_string()),
                    None => Err("a SPEC is a string".to_string()),
                };
                match made {
                    Ok(f) => parsed.push(f),
                    Err(why) => return Answer::param_error("/spec", "body", why, v.clone()),
                }
            }
            let ids: Vec<u64> = parsed.into_iter().map(|f| faults.add(f)).collect();
            let added: Vec<FaultStatus> = faults
                .list()
                .into_iter()
                .filter(|r| ids.contains(&r.id))
                .collect();
            Answer::ok(json!({"data": listed(&added)}))
        }
    }
}

/// The connection is dropped without an answer (a [`FaultAction::Drop`]): hyper closes it.
#[derive(Debug)]
pub(crate) struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the connection was dropped by a fault")
    }
}

impl std::error::Error for Dropped {}

/// Applies a fault's after-effect to an answer ready to go: waits (until the sandbox stops),
/// drops the connection, or hangs until the client leaves or the sandbox stops.
pub(crate) async fn after<T>(
    action: Option<FaultAction>,
    answer: T,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<T, Dropped> {
    match action {
        Some(FaultAction::Delay(d)) => {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = stop.changed() => {}
            }
            Ok(answer)
        }
        Some(FaultAction::Drop) => Err(Dropped),
        Some(FaultAction::Hang) => {
            // hyper drops this future when the client closes the connection
            while !*stop.borrow() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
            Err(Dropped)
        }
        _ => Ok(answer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_plan_is_seen_without_the_lock_and_a_rule_added_or_cleared_is_seen_at_once() {
        let call = Subject::Call {
            method: "POST",
            path: "v3/pay/transactions/jsapi",
        };
        let f = Faults::new(&[]);
        assert!(f.rules.is_empty());
        assert!(!f.any_for(&call));
        assert!(f.pick(&call, String::new).is_none());
        f.add(
            "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*1"
                .parse()
                .unwrap(),
        );
        assert!(f.any_for(&call));
        assert!(f.pick(&call, String::new).is_some(), "the rule fires");
        assert!(f.pick(&call, String::new).is_none(), "once");
        f.clear();
        assert!(f.rules.is_empty());
        assert!(!f.any_for(&call));
        let planned = Faults::new(&["v3/refund/*=SYSTEM_ERROR".parse().unwrap()]);
        assert!(!planned.rules.is_empty(), "a plan given at start");
    }

    #[test]
    fn specs_read_and_write_back() {
        for (spec, canonical) in [
            (
                "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2",
                "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2",
            ),
            (
                "post /v3/pay/transactions/jsapi=FREQUENCY_LIMITED",
                "POST v3/pay/transactions/jsapi=429:FREQUENCY_LIMITED",
            ),
            (
                "v3/refund/*=delay:3s@0.5,seed=7",
                "v3/refund/*=delay:3000ms@0.5,seed=7",
            ),
            (
                "notify:TRANSACTION.SUCCESS=drop*1",
                "notify:TRANSACTION.SUCCESS=drop*1",
            ),
            (
                "v2/pay/micropay=USERPAYING",
                "v2/pay/micropay=202:USERPAYING",
            ),
            (
                "GET v3/pay/transactions/id/{transaction_id}=503:BUSY:try later@25%",
                "GET v3/pay/transactions/id/{transaction_id}=503:BUSY:try later@0.25,seed=0",
            ),
            ("notify:*=reorder", "notify:*=reorder"),
            ("v3/*=hang*1", "v3/*=hang*1"),
        ] {
            let f = Fault::parse(spec).unwrap();
            assert_eq!(f.to_string(), canonical, "{spec}");
            assert_eq!(Fault::parse(canonical).unwrap(), f, "{canonical}");
        }
    }

    #[test]
    fn bad_specs_name_the_part_at_fault() {
        for (spec, says) in [
            ("POST v3/pay/transactions/jsapi", "no `=`"),
            ("POST v3/pay/transactions/jsapii=drop", "no operation"),
            (
                "GET v3/pay/transactions/id/42=drop",
                "not an operation's template",
            ),
            ("FETCH v3/x=drop", "not a method"),
            ("v3/x=MY_CODE", "give it, as 500:MY_CODE"),
            ("v3/x=explode", "not an action"),
            ("v3/x=duplicate", "for notifications"),
            (
                "notify:TRANSACTION.SUCCESS=hang",
                "not a notification's action",
            ),
            ("v3/x=drop*0", "count after *"),
            ("v3/x=drop@1.5", "probability"),
            ("v3/x=drop@0.5,sead=1", "seed=S"),
            ("v3/x=delay:forever", "not a duration"),
            ("v3/x=200:OK", "status of 202 or 400 to 599"),
        ] {
            let e = Fault::parse(spec).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(e.contains(spec.split('=').next().unwrap()), "{spec}: {e}");
        }
    }

    #[test]
    fn globs_match_paths() {
        assert!(glob_matches("v3/refund/*", "v3/refund/domestic/refunds"));
        assert!(glob_matches("v3/*/refunds/?", "v3/domestic/refunds/1"));
        assert!(glob_matches("*", "v2/pay/micropay"));
        assert!(!glob_matches("v3/refund/*", "v3/pay/transactions/jsapi"));
        assert!(!glob_matches("v3/refund", "v3/refund/domestic"));
    }

    #[test]
    fn counts_and_seeded_chances_are_deterministic() {
        let call = Subject::Call {
            method: "POST",
            path: "v3/pay/transactions/jsapi",
        };
        let fired = |plan: &[Fault]| {
            let f = Faults::new(plan);
            (0..200)
                .map(|_| f.pick(&call, String::new).is_some())
                .collect::<Vec<_>>()
        };
        let twice = Fault::parse("POST v3/pay/transactions/jsapi=SYSTEM_ERROR*2").unwrap();
        assert_eq!(fired(&[twice]).iter().filter(|f| **f).count(), 2);
        let half = Fault::parse("v3/pay/*=drop@0.5,seed=7").unwrap();
        let (a, b) = (fired(std::slice::from_ref(&half)), fired(&[half]));
        assert_eq!(a, b);
        let n = a.iter().filter(|f| **f).count();
        assert!((70..=130).contains(&n), "{n} of 200");
        let other = fired(&[Fault::parse("v3/pay/*=drop@0.5,seed=8").unwrap()]);
        assert_ne!(a, other);
    }
}
