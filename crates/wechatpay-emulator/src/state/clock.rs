//! The sandbox's clock, and what happens on it (in the state room: the flows, notifications
//! and documented answers below the control API read it; `Emulator` moves it).
//!
//! The clock runs with real time unless it is set (to an instant) or advanced (by a duration),
//! and it can be frozen. Everything business-related reads it: creation and success times,
//! ids, order expiry, refund and transfer ends, notification retries, which days have bills.
//! Signatures are checked against real time (see docs/emulator.md, "Clock"): the merchant's
//! client signs with its own clock, as the platform compares with its own.
//!
//! What is due at a clock time waits in one time-ordered queue ([`Clock::at`]). A background
//! task runs it when the clock reaches it in real time; setting or advancing the clock runs at
//! once, in order, everything that became due.

pub(crate) use crate::util::parse_duration;
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::http::answer::Answer;
use crate::state::rfc3339;
use crate::state::shared::Shared;
use crate::util::lock;

/// Something to do at a clock time.
pub(crate) type Job = Box<dyn FnOnce(&Arc<Shared>) + Send>;

struct Entry {
    due: i64,
    seq: u64,
    job: Job,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// How the clock reads: real time moved by `offset`, or stopped at `frozen_at` (milliseconds).
#[derive(Debug, Clone, Copy)]
struct Reading {
    offset: i64,
    frozen_at: Option<i64>,
}

/// Real time, in Unix milliseconds.
fn real_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Real time, in Unix milliseconds (for the state file's clock offset).
pub(crate) fn real_now_ms() -> i64 {
    real_ms()
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The clock and its queue of due jobs.
pub(crate) struct Clock {
    reading: Mutex<Reading>,
    queue: Mutex<BinaryHeap<Reverse<Entry>>>,
    seq: AtomicU64,
    wake: tokio::sync::Notify,
    /// Held while due jobs run, so that whoever moved the clock returns only once the jobs
    /// the background task took meanwhile have run too.
    running: Mutex<()>,
    /// The earliest due time of the jobs queued or taken and not yet run (`i64::MAX` with
    /// none): a request finds nothing due without taking the two locks above (two threads
    /// taking a lock per request pass its line between cores).
    next_due: AtomicI64,
}

impl Clock {
    /// A clock reading `start` (Unix milliseconds; real time when `None`), frozen or running.
    pub(crate) fn new(start: Option<i64>, frozen: bool) -> Clock {
        let real = real_ms();
        let at = start.unwrap_or(real);
        Clock {
            reading: Mutex::new(Reading {
                offset: at.saturating_sub(real),
                frozen_at: frozen.then_some(at),
            }),
            queue: Mutex::new(BinaryHeap::new()),
            seq: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            running: Mutex::new(()),
            next_due: AtomicI64::new(i64::MAX),
        }
    }

    /// The clock's time, Unix milliseconds.
    pub(crate) fn now_ms(&self) -> i64 {
        let r = *lock(&self.reading);
        r.frozen_at
            .unwrap_or_else(|| real_ms().saturating_add(r.offset))
    }

    /// The clock's time, Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn frozen(&self) -> bool {
        lock(&self.reading).frozen_at.is_some()
    }

    /// Moves the clock to `to(now)`, frozen or running as `frozen` says (unchanged when `None`).
    pub(crate) fn change(&self, to: impl FnOnce(i64) -> i64, frozen: Option<bool>) {
        let mut r = lock(&self.reading);
        let real = real_ms();
        let now = r.frozen_at.unwrap_or_else(|| real.saturating_add(r.offset));
        let at = to(now);
        let freeze = frozen.unwrap_or(r.frozen_at.is_some());
        *r = Reading {
            offset: at.saturating_sub(real),
            frozen_at: freeze.then_some(at),
        };
        drop(r);
        self.wake.notify_one();
    }

    /// Runs `job` when the clock reaches `due` (Unix milliseconds).
    pub(crate) fn at(&self, due: i64, job: Job) {
        let seq = self.seq.fetch_add(1, AtomicOrdering::Relaxed);
        let mut q = lock(&self.queue);
        q.push(Reverse(Entry { due, seq, job }));
        self.next_due.fetch_min(due, AtomicOrdering::AcqRel);
        drop(q);
        self.wake.notify_one();
    }

    /// Runs `job` when `delay` of clock time has passed.
    pub(crate) fn after(&self, delay: Duration, job: Job) {
        self.at(self.now_ms().saturating_add(millis(delay)), job);
    }

    /// The earliest job due by now, taken off the queue.
    fn take_due(&self) -> Option<Job> {
        self.take_due_entry().map(|e| e.job)
    }

    fn take_due_entry(&self) -> Option<Entry> {
        let now = self.now_ms();
        let mut q = lock(&self.queue);
        match q.peek() {
            Some(Reverse(e)) if e.due <= now => q.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// How long in real time until the next job is due: `None` with nothing queued or a frozen
    /// clock (then only a change of the clock or a new job wakes the runner).
    fn until_next(&self) -> Option<Duration> {
        if self.frozen() {
            return None;
        }
        let due = lock(&self.queue).peek().map(|Reverse(e)| e.due)?;
        let wait = due.saturating_sub(self.now_ms()).max(0);
        Some(Duration::from_millis(u64::try_from(wait).unwrap_or(0)))
    }

    /// Whether no job is due by now (none queued, and none taken that has not run).
    fn nothing_due(&self) -> bool {
        self.next_due.load(AtomicOrdering::Acquire) > self.now_ms()
    }

    /// After the due jobs have run: the earliest of those left.
    fn settle_next_due(&self) {
        let q = lock(&self.queue);
        let next = q.peek().map_or(i64::MAX, |Reverse(e)| e.due);
        self.next_due.store(next, AtomicOrdering::Release);
    }

    fn pending(&self) -> usize {
        lock(&self.queue).len()
    }
}

/// Runs every job due by the clock's time, earliest first (jobs may queue more).
pub(crate) fn run_due(shared: &Arc<Shared>) -> bool {
    if shared.clock.nothing_due() {
        return false;
    }
    let _running = lock(&shared.clock.running);
    let mut ran = false;
    while let Some(job) = shared.clock.take_due() {
        job(shared);
        ran = true;
    }
    shared.clock.settle_next_due();
    ran
}

/// The background task: runs jobs as real time brings them due, until the emulator stops.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        if run_due(&shared) {
            crate::state::store::flush(&shared);
        }
        // At most a day at a time (a job years ahead, a time_expire of 9999, then waits in
        // steps); with nothing to wait for, a changed clock or a new job wakes the task.
        let day = Duration::from_secs(86_400);
        let wait = shared.clock.until_next().map_or(day, |w| w.min(day));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.clock.wake.notified() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// What the clock reads ([`Emulator::clock`](crate::Emulator::clock), `GET /emulator/clock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockReading {
    /// The sandbox's time, Unix milliseconds.
    pub unix_millis: i64,
    /// How far the sandbox's clock is from real time, in milliseconds (positive: ahead).
    pub offset_millis: i64,
    /// Whether the clock is stopped (it moves only when set or advanced).
    pub frozen: bool,
    /// Jobs waiting for their time: order expiries, refund and transfer ends, retries.
    pub pending: usize,
}

impl ClockReading {
    /// The sandbox's time, Unix seconds.
    pub fn unix(&self) -> i64 {
        self.unix_millis.div_euclid(1000)
    }

    /// The sandbox's time as an instant.
    pub fn time(&self) -> SystemTime {
        instant(self.unix_millis)
    }

    /// The sandbox's time in RFC 3339, Beijing time, as the platform writes times.
    pub fn rfc3339(&self) -> String {
        rfc3339(self.unix())
    }

    fn to_json(self) -> Value {
        json!({"now": self.rfc3339(), "unix": self.unix(), "unix_millis": self.unix_millis,
               "offset_seconds": self.offset_millis.div_euclid(1000),
               "frozen": self.frozen, "pending": self.pending})
    }
}

pub(crate) fn reading(shared: &Shared) -> ClockReading {
    let c = &shared.clock;
    let now = c.now_ms();
    ClockReading {
        unix_millis: now,
        offset_millis: now.saturating_sub(real_ms()),
        frozen: c.frozen(),
        pending: c.pending(),
    }
}

/// Unix milliseconds of an instant.
pub(crate) fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => millis(d),
        Err(e) => millis(e.duration()).saturating_neg(),
    }
}

/// `GET /emulator/clock`, and `POST /emulator/clock` with `{"set": TIME}` or
/// `{"advance": DURATION}` and/or `{"frozen": BOOL}`: the clock as it reads then.
pub(crate) fn control(shared: &Arc<Shared>, method: &str, body: &Map<String, Value>) -> Answer {
    if method == "GET" {
        return Answer::ok(reading(shared).to_json());
    }
    let change = match parse_change(body) {
        Ok(c) => c,
        Err(a) => return a,
    };
    let frozen = change.frozen;
    match change.to {
        To::At(at) => shared.clock.change(|_| at, frozen),
        To::By(by) => shared.clock.change(|now| now.saturating_add(by), frozen),
    }
    run_due(shared);
    Answer::ok(reading(shared).to_json())
}

enum To {
    At(i64),
    By(i64),
}

struct Change {
    to: To,
    frozen: Option<bool>,
}

fn bad(field: &str, why: impl Into<String>, given: &Value) -> Answer {
    Answer::param_error(&format!("/{field}"), "body", why, given.clone())
}

fn parse_change(body: &Map<String, Value>) -> Result<Change, Answer> {
    if let Some(k) = body
        .keys()
        .find(|k| !matches!(k.as_str(), "set" | "advance" | "frozen"))
    {
        return Err(bad(
            k,
            format!("{k} is not a clock setting: give set (a time), advance (a duration) and/or frozen (true or false)"),
            &body[k.as_str()],
        ));
    }
    let frozen = match body.get("frozen") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(bad("frozen", "frozen must be true or false", other)),
    };
    let to = match (body.get("set"), body.get("advance")) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "advance",
                "give set or advance, not both",
                &body["advance"],
            ))
        }
        (Some(v), None) => To::At(match v {
            Value::Number(n) => n
                .as_i64()
                .and_then(|s| s.checked_mul(1000))
                .ok_or_else(|| bad("set", "set must be Unix seconds or an RFC 3339 time", v))?,
            Value::String(s) => parse_time(s).ok_or_else(|| {
                bad(
                    "set",
                    "set must be an RFC 3339 time such as 2026-12-07T10:00:00+08:00, or Unix seconds",
                    v,
                )
            })?,
            _ => return Err(bad("set", "set must be a time", v)),
        }),
        (None, Some(v)) => {
            let by = match v {
                Value::Number(n) => n.as_f64().map(|s| (s * 1000.0) as i64),
                Value::String(s) => parse_duration(s),
                _ => None,
            };
            match by {
                Some(ms) if ms >= 0 => To::By(ms),
                _ => {
                    return Err(bad(
                        "advance",
                        "advance must be a duration forward: seconds (15), or 500ms, 15s, 10m, 2h, 1d, 1h30m",
                        v,
                    ))
                }
            }
        }
        (None, None) if frozen.is_some() => To::By(0),
        (None, None) => {
            return Err(Answer::param_error(
                "/",
                "body",
                "give set (a time), advance (a duration) or frozen (true or false)",
                Value::Object(body.clone()),
            ))
        }
    };
    Ok(Change { to, frozen })
}

/// An RFC 3339 time (`2026-12-07T10:00:00+08:00`) as an instant, for
/// [`EmulatorConfig::clock_start`](crate::EmulatorConfig::clock_start); `None` when it is
/// not one.
pub fn time_from_rfc3339(s: &str) -> Option<SystemTime> {
    parse_time(s).map(instant)
}

fn instant(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 time (`2026-12-07T10:00:00+08:00`, `…Z`, fractions of a second allowed; a
/// second of 60 as the platform's samples write it is the next minute) as Unix milliseconds.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let p = s.get(r)?;
        p.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| p.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac_ms = 0i64;
    if let Some(f) = rest.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let ms: String = f[..digits].chars().chain("000".chars()).take(3).collect();
        frac_ms = ms.parse().ok()?;
        rest = &f[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let t = rest.get(1..)?.as_bytes();
            if t.len() != 5 || t[2] != b':' {
                return None;
            }
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6)?.parse::<i64>().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    Some(secs * 1000 + frac_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_the_platform_writes_them() {
        assert_eq!(parse_time("1970-01-01T08:00:00+08:00"), Some(0));
        assert_eq!(
            parse_time("2015-05-20T13:29:35+08:00"),
            Some(1_432_099_775_000)
        );
        assert_eq!(parse_time("2015-05-20T05:29:35Z"), Some(1_432_099_775_000));
        assert_eq!(
            parse_time("2015-05-20T05:29:35.250Z"),
            Some(1_432_099_775_250)
        );
        assert_eq!(
            parse_time("2024-02-29T23:59:59+08:00"),
            Some(1_709_222_399_000)
        );
        // the platform's samples write a second of 60: the next minute
        assert_eq!(
            parse_time("2019-12-31T15:59:60+08:00"),
            parse_time("2019-12-31T16:00:00+08:00")
        );
        for bad in [
            "2015-05-20",
            "2015-13-20T13:29:35+08:00",
            "2015-05-20T13:29:35",
            "2015-05-20T13:29:35+0800",
            "20150520T13:29:35+08:00",
            "2015-05-20T13:29:35.+08:00",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for ts in [0, 1_432_099_775, 1_709_222_399, 1_800_000_000] {
            assert_eq!(parse_time(&rfc3339(ts)), Some(ts * 1000));
        }
    }

    #[test]
    fn hostile_times_and_durations_are_refused_not_panicked_on() {
        for bad in [
            "2015-05-20T13:29:35+08:0é",
            "２０１５-05-20T13:29:35+08:00",
            "2015-05-20T13:29:35é08:00",
            "2015-05-20T13:29:35.é",
            "9999-99-99T99:99:99+99:99",
            "2015-05-20T13:29:35+08:00trailing",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for bad in ["1é", "é", "99999999999999999999d", "1h1é", "inf", "1e400"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations_have_units_or_are_seconds() {
        assert_eq!(parse_duration("15"), Some(15_000));
        assert_eq!(parse_duration("1.5"), Some(1_500));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("15s"), Some(15_000));
        assert_eq!(parse_duration("10m"), Some(600_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        for bad in ["", "-5", "5x", "h", "1h30", "nan"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_frozen_clock_moves_only_when_told_and_jobs_run_in_time_order() {
        let c = Clock::new(Some(1_000_000), true);
        assert_eq!(c.now_ms(), 1_000_000);
        c.change(|now| now + 15_000, None);
        assert_eq!(c.now_ms(), 1_015_000);
        assert!(c.frozen());
        for due in [1_030_000, 1_016_000, 1_020_000, 1_016_000] {
            c.at(due, Box::new(|_| {}));
        }
        assert!(c.take_due().is_none(), "nothing is due yet");
        assert_eq!(c.until_next(), None, "a frozen clock waits to be moved");
        c.change(|now| now + 5_000, None);
        let mut ran = Vec::new();
        while let Some(e) = c.take_due_entry() {
            ran.push((e.due, e.seq));
        }
        assert_eq!(
            ran,
            vec![(1_016_000, 1), (1_016_000, 3), (1_020_000, 2)],
            "the jobs due by 1_020_000, by time, then in the order queued"
        );
        assert_eq!(c.pending(), 1);
        c.change(|now| now, Some(false));
        assert!(!c.frozen());
        assert!(c.until_next().is_some());
    }

    #[test]
    fn a_request_skips_the_queue_only_when_no_job_is_due_or_still_running() {
        let c = Clock::new(Some(1_000_000), true);
        assert!(c.nothing_due(), "an empty queue");
        c.at(1_010_000, Box::new(|_| {}));
        c.at(1_020_000, Box::new(|_| {}));
        assert!(c.nothing_due(), "queued, not yet due");
        c.change(|now| now + 10_000, None);
        assert!(!c.nothing_due(), "due now");
        assert!(c.take_due_entry().is_some());
        // taken by a runner and not yet run: a request must wait for it (the slow path)
        assert!(
            !c.nothing_due(),
            "a taken job counts until the runner settles"
        );
        c.settle_next_due();
        assert!(c.nothing_due(), "the next job is 10 s away");
        c.at(1_005_000, Box::new(|_| {}));
        assert!(!c.nothing_due(), "a job queued in the past is due at once");
        assert!(c.take_due_entry().is_some());
        c.change(|now| now + 10_000, None);
        assert!(c.take_due_entry().is_some());
        c.settle_next_due();
        assert!(c.nothing_due(), "nothing left");
        assert_eq!(c.next_due.load(AtomicOrdering::Acquire), i64::MAX);
    }
}
