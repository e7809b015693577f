//! The state file (`serve --state FILE`, [`EmulatorConfig::state_file`](crate::EmulatorConfig::state_file)):
//! the platform's records and keys in one SQLite database, so that a restarted sandbox is the
//! same platform with the same orders.
//!
//! The in-memory [`State`] stays the working set. After each request (and each clock step) the
//! records are written as JSON rows keyed by kind and id, only the rows that changed, in one
//! transaction. One connection behind a mutex: SQLite has one writer at a time anyway, and
//! requests finishing together share one write (a request whose change an earlier write took
//! in returns at once). WAL with `synchronous=NORMAL`: no fsync per write, a write survives the
//! process being killed (not the machine losing power mid-checkpoint).
//!
//! A file that is not SQLite, belongs to another application, has a newer schema, fails
//! `quick_check`, or can be read by others is refused and left as it was.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Map, Value};
use wechatpay_chain::crypto::PrivateKey;
use wechatpay_chain::Error;

use crate::state::records::{Bill, Combine, Delivery, Ledger, Order, Outcome, Receiver};
use crate::state::shared::Shared;
use crate::state::tracked::{Touched, Tracked};
use crate::state::{Card, Party, Refund, RefundNotify, State, Transaction};
use crate::util::lock;

/// `PRAGMA application_id` of a sandbox state file: "WCPS".
pub const APPLICATION_ID: i32 = 0x5743_5053;
/// `PRAGMA user_version`: the schema this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The keys a restarted sandbox must keep to stay the same platform for the merchant.
#[derive(Clone)]
pub(crate) struct Keys {
    pub platform_key: PrivateKey,
    /// The merchant's private key when the sandbox made it.
    pub merchant_key: Option<PrivateKey>,
    pub merchant_serial: String,
    /// The public key id (public-key mode) or `None`.
    pub public_key_id: Option<String>,
    pub apiv3_key: String,
    pub apiv2_key: String,
}

/// What a state file held.
#[derive(Default)]
pub(crate) struct Loaded {
    pub state: State,
    pub deliveries: Vec<Delivery>,
    pub keys: Option<Keys>,
    /// The other merchants' keys by mchid: private key, serial, APIv3 key, APIv2 key.
    pub merchants: HashMap<String, (PrivateKey, String, String, String)>,
    /// The clock as last written: its time (Unix ms), offset from real time, whether frozen.
    pub clock: Option<(i64, i64, bool)>,
}

/// The settings a state file fills in when the configuration leaves them unset.
pub(crate) struct Unset<'a> {
    pub platform_key: &'a mut Option<PrivateKey>,
    /// `None` when the merchant's key is not the sandbox's to make.
    pub merchant_key: Option<&'a mut Option<PrivateKey>>,
    pub merchant_serial: &'a mut Option<String>,
    pub public_key_id: &'a mut Option<String>,
    pub apiv3_key: &'a mut Option<String>,
    pub apiv2_key: &'a mut Option<String>,
    pub clock_start: &'a mut Option<i64>,
    pub clock_frozen: &'a mut bool,
}

impl Loaded {
    /// The keys merchant `mchid` (not the first) had.
    pub(crate) fn merchant(&self, mchid: &str) -> Option<(PrivateKey, String, String, String)> {
        self.merchants.get(mchid).cloned()
    }

    /// Fills in what `unset` leaves unset from the file: the same keys, and the clock where
    /// it was (a frozen clock at its time, a running one with its offset from real time).
    pub(crate) fn fill(&self, unset: &mut Unset<'_>) {
        if let Some(k) = &self.keys {
            unset
                .platform_key
                .get_or_insert_with(|| k.platform_key.clone());
            if let (Some(m), Some(key)) = (unset.merchant_key.as_mut(), &k.merchant_key) {
                m.get_or_insert_with(|| key.clone());
            }
            unset
                .merchant_serial
                .get_or_insert_with(|| k.merchant_serial.clone());
            if unset.public_key_id.is_none() {
                unset.public_key_id.clone_from(&k.public_key_id);
            }
            unset.apiv3_key.get_or_insert_with(|| k.apiv3_key.clone());
            unset.apiv2_key.get_or_insert_with(|| k.apiv2_key.clone());
        }
        if let (Some((at, offset, frozen)), None) = (self.clock, &unset.clock_start) {
            *unset.clock_start = Some(if frozen {
                at
            } else {
                crate::state::clock::real_now_ms().saturating_add(offset)
            });
            *unset.clock_frozen |= frozen;
        }
    }
}

struct Db {
    /// `None` once the sandbox has stopped ([`close`]).
    conn: Option<Connection>,
    /// A hash of each row as last written, by kind and id.
    written: HashMap<String, HashMap<String, u64>>,
    /// The last change ticket a write took in.
    done: u64,
    /// The next write takes every record (the marks of what changed went with a failed one).
    whole_next: bool,
    /// The notification attempts as last written: how many, and the last one's id.
    deliveries: Option<(usize, String)>,
}

/// An open state file.
pub(crate) struct Store {
    path: PathBuf,
    db: Mutex<Db>,
    asked: AtomicU64,
}

fn refused(path: &Path, why: impl std::fmt::Display) -> Error {
    Error::config(format!(
        "the state file {} {why}; it was left as it is: move it away or pass another --state",
        path.display()
    ))
}

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::config(format!("the state file {}: {e}", path.display()))
}

impl Store {
    /// Opens (or creates, 0600) the state file at `path` and reads what it holds.
    pub(crate) fn open(path: &Path) -> Result<(Store, Loaded), Error> {
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(refused(path, "is not a file")),
            Ok(m) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = m.permissions().mode();
                    if mode & 0o077 != 0 {
                        return Err(Error::config(format!(
                            "the state file {} holds private keys but can be read by others (mode {:o}); it was left as it is: `chmod 600 {}` and start again",
                            path.display(),
                            mode & 0o777,
                            path.display()
                        )));
                    }
                }
                #[cfg(not(unix))]
                let _ = m;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_private(path)?,
            Err(e) => return Err(failed(path, e)),
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failed(path, e))?;
        let not_sqlite = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
                refused(path, "is in use (is another sandbox running on it?)")
            }
            Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                refused(path, format!("is damaged ({e})"))
            }
            _ => refused(
                path,
                format!("is not a sandbox state file (not SQLite: {e})"),
            ),
        };
        let pragma = |name: &str| -> Result<i64, Error> {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0))
                .map_err(not_sqlite)
        };
        let app = pragma("application_id")?;
        let version = pragma("user_version")?;
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .map_err(not_sqlite)?;
        let new = app == 0 && version == 0 && tables == 0;
        if !new && app != i64::from(APPLICATION_ID) {
            return Err(refused(
                path,
                format!("belongs to another application (application_id {app:#x}, not a sandbox state file)"),
            ));
        }
        if version > i64::from(SCHEMA_VERSION) {
            return Err(refused(
                path,
                format!("was written by a newer sandbox (schema {version}; this one reads up to {SCHEMA_VERSION}): use that version"),
            ));
        }
        let check: Vec<String> = conn
            .prepare("PRAGMA quick_check")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()
            })
            .map_err(|e| refused(path, format!("is damaged ({e})")))?;
        if check != ["ok"] {
            return Err(refused(
                path,
                format!("is damaged (quick_check: {})", check.join("; ")),
            ));
        }
        // Checked: from here on the file is ours to write.
        conn.execute_batch(
            "PRAGMA locking_mode=EXCLUSIVE; PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        )
        .map_err(|e| failed(path, e))?;
        if new {
            conn.execute_batch(&format!(
                "BEGIN;
                 CREATE TABLE objects(kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                      PRIMARY KEY(kind, id)) WITHOUT ROWID;
                 PRAGMA application_id={APPLICATION_ID};
                 PRAGMA user_version={SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(|e| failed(path, e))?;
        }
        let mut rows: Vec<(String, String, String)> = Vec::new();
        {
            let mut stmt = conn
                .prepare("SELECT kind, id, body FROM objects")
                .map_err(|e| failed(path, e))?;
            let it = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| failed(path, e))?;
            for row in it {
                rows.push(row.map_err(|e| failed(path, e))?);
            }
        }
        let mut written = HashMap::new();
        let mut loaded = Loaded::default();
        for (kind, id, body) in rows {
            let value: Value = serde_json::from_str(&body)
                .map_err(|e| refused(path, format!("has a damaged {kind} record {id} ({e})")))?;
            let key: String = serde_json::from_str(&id)
                .map_err(|e| refused(path, format!("has a damaged {kind} record id {id} ({e})")))?;
            load_row(&mut loaded, &kind, key, &value).ok_or_else(|| {
                refused(
                    path,
                    format!("has a {kind} record {id} this sandbox cannot read"),
                )
            })?;
            written
                .entry(kind)
                .or_insert_with(HashMap::new)
                .insert(id, digest(&body));
        }
        loaded
            .deliveries
            .sort_by(|a, b| (a.at, &a.id, a.attempt).cmp(&(b.at, &b.id, b.attempt)));
        for (k, t) in &loaded.state.transactions {
            if let Some(id) = &t.transaction_id {
                loaded.state.transaction_ids.insert(id.clone(), k.clone());
            }
        }
        for (no, b) in &loaded.state.transfers.bills {
            loaded
                .state
                .transfers
                .ids
                .insert(b.transfer_bill_no.clone(), no.clone());
        }
        let store = Store {
            path: path.to_path_buf(),
            db: Mutex::new(Db {
                conn: Some(conn),
                written,
                done: 0,
                whole_next: false,
                deliveries: None,
            }),
            asked: AtomicU64::new(0),
        };
        Ok((store, loaded))
    }

    /// Writes the keys (at start).
    pub(crate) fn save_keys(&self, keys: &Keys) -> Result<(), Error> {
        let body = json!({
            "platform_key": pem(&keys.platform_key)?,
            "merchant_key": keys.merchant_key.as_ref().map(pem).transpose()?,
            "merchant_serial": keys.merchant_serial,
            "public_key_id": keys.public_key_id,
            "apiv3_key": keys.apiv3_key,
            "apiv2_key": keys.apiv2_key,
        });
        let mut db = lock(&self.db);
        write(
            &mut db,
            Rows {
                rows: vec![row("keys", "platform", &body)],
                ..Rows::default()
            },
        )
        .map_err(|e| failed(&self.path, e))
    }
}

/// A private key as PKCS#8 PEM, for the state file.
fn pem(k: &PrivateKey) -> Result<String, Error> {
    let der = k
        .as_openssl()
        .private_key_to_pem_pkcs8()
        .map_err(|e| Error::config(format!("cannot encode a key for the state file: {e}")))?;
    String::from_utf8(der).map_err(|_| Error::config("a PEM encoding is not text"))
}

impl Store {
    /// Writes another merchant's keys (at start).
    pub(crate) fn save_merchant(
        &self,
        mchid: &str,
        key: &PrivateKey,
        serial: &str,
        apiv3_key: &str,
        apiv2_key: &str,
    ) -> Result<(), Error> {
        let body = json!({"key": pem(key)?, "serial": serial, "apiv3_key": apiv3_key,
                          "apiv2_key": apiv2_key});
        let mut db = lock(&self.db);
        write(
            &mut db,
            Rows {
                rows: vec![row("merchant", mchid, &body)],
                ..Rows::default()
            },
        )
        .map_err(|e| failed(&self.path, e))
    }
}

/// Writes what changed since the last write: after a request, a clock step, or at stop.
/// Only the records marked as touched since then are serialized ([`Tracked`]), so a write
/// costs what the request changed, not what the sandbox holds; the notification attempts
/// (at most [`MAX_RECORDS`](crate::util::MAX_RECORDS)) are written whole when one was added.
/// A failure is logged (the answer has gone out already) and everything is tried again next
/// time.
pub(crate) fn flush(shared: &Shared) {
    let Some(store) = &shared.store else { return };
    let ticket = store.asked.fetch_add(1, Ordering::SeqCst) + 1;
    let mut db = lock(&store.db);
    if db.done >= ticket {
        return;
    }
    let upto = store.asked.load(Ordering::SeqCst);
    let whole = std::mem::take(&mut db.whole_next);
    let mut out = {
        let mut st = lock(&shared.state);
        rows_of(&mut st, whole)
    };
    let deliveries = {
        let list = lock(&shared.deliveries);
        let seen = (list.len(), list.last().map(delivery_id).unwrap_or_default());
        if whole || db.deliveries.as_ref() != Some(&seen) {
            let ids = out.whole.entry("delivery".into()).or_default();
            for d in list.iter() {
                let r = row("delivery", &delivery_id(d), &delivery_json(d));
                ids.insert(r.1.clone());
                out.rows.push(r);
            }
        }
        seen
    };
    let c = crate::state::clock::reading(shared);
    out.rows.push(row(
        "clock",
        "clock",
        &json!([c.unix_millis, c.offset_millis, c.frozen]),
    ));
    match write(&mut db, out) {
        Ok(()) => {
            db.done = upto;
            db.deliveries = Some(deliveries);
        }
        Err(e) => {
            db.whole_next = true;
            tracing::error!(file = %store.path.display(), error = %e, "cannot write the state file")
        }
    }
}

fn delivery_id(d: &Delivery) -> String {
    format!("{}\u{0}{}\u{0}{}", d.id, d.attempt, d.at)
}

/// Writes what is left and closes the file (SQLite folds its write-ahead log back into it), so
/// that a sandbox started next on it, in this process or another, finds it whole.
pub(crate) fn close(shared: &Shared) {
    flush(shared);
    if let Some(store) = &shared.store {
        lock(&store.db).conn.take();
    }
}

type Row = (String, String, String);

fn id_of(id: &str) -> String {
    Value::String(id.to_owned()).to_string()
}

fn row(kind: &str, id: &str, body: &Value) -> Row {
    (kind.to_owned(), id_of(id), body.to_string())
}

fn digest(body: &str) -> u64 {
    let mut h = DefaultHasher::new();
    body.hash(&mut h);
    h.finish()
}

/// Rows to write: `rows`; those gone (`gone`, by kind and id); and the kinds written whole
/// (`whole`: kind → the ids written), whose other rows in the file are gone too.
#[derive(Default)]
struct Rows {
    rows: Vec<Row>,
    gone: Vec<(String, String)>,
    whole: HashMap<String, HashSet<String>>,
}

/// Upserts the rows that differ from what was written and deletes those gone, in one
/// transaction.
fn write(db: &mut Db, out: Rows) -> rusqlite::Result<()> {
    let written = &db.written;
    let was = |kind: &str, id: &str| written.get(kind).and_then(|ids| ids.get(id)).copied();
    let changed: Vec<(Row, u64)> = out
        .rows
        .into_iter()
        .filter_map(|r| {
            let d = digest(&r.2);
            (was(&r.0, &r.1) != Some(d)).then_some((r, d))
        })
        .collect();
    let mut gone: Vec<(String, String)> = out
        .gone
        .into_iter()
        .filter(|(kind, id)| was(kind, id).is_some())
        .collect();
    for (kind, kept) in &out.whole {
        if let Some(ids) = written.get(kind) {
            gone.extend(
                ids.keys()
                    .filter(|id| !kept.contains(*id))
                    .map(|id| (kind.clone(), id.clone())),
            );
        }
    }
    if changed.is_empty() && gone.is_empty() {
        return Ok(());
    }
    let Some(conn) = db.conn.as_mut() else {
        return Ok(());
    };
    let tx = conn.transaction()?;
    {
        let mut up = tx.prepare_cached(
            "INSERT INTO objects(kind, id, body) VALUES (?1, ?2, ?3)
             ON CONFLICT(kind, id) DO UPDATE SET body = excluded.body",
        )?;
        for ((kind, id, body), _) in &changed {
            up.execute((kind, id, body))?;
        }
        let mut del = tx.prepare_cached("DELETE FROM objects WHERE kind = ?1 AND id = ?2")?;
        for (kind, id) in &gone {
            del.execute((kind, id))?;
        }
    }
    tx.commit()?;
    for ((kind, id, _), d) in changed {
        db.written.entry(kind).or_default().insert(id, d);
    }
    for (kind, id) in gone {
        if let Some(ids) = db.written.get_mut(&kind) {
            ids.remove(&id);
        }
    }
    Ok(())
}

/// The rows of `map`'s records of kind `kind` that changed since its marks were last taken
/// (all of them when it says so, or `whole`); `id` names a record's key as the file does.
fn emit<K: Hash + Eq + Clone, V>(
    out: &mut Rows,
    map: &mut Tracked<K, V>,
    whole: bool,
    kind: &str,
    id: impl Fn(&K) -> String,
    body: impl Fn(&V) -> Value,
) {
    match (map.take(), whole) {
        (Touched::Keys(keys), false) => {
            for k in keys {
                match map.get(&k) {
                    Some(v) => out.rows.push(row(kind, &id(&k), &body(v))),
                    None => out.gone.push((kind.to_string(), id_of(&id(&k)))),
                }
            }
        }
        _ => {
            let ids = out.whole.entry(kind.to_string()).or_default();
            for (k, v) in map.iter() {
                let r = row(kind, &id(k), &body(v));
                ids.insert(r.1.clone());
                out.rows.push(r);
            }
        }
    }
}

/// The rows of the state's records that changed (every record with `whole`), and the seq.
fn rows_of(st: &mut State, whole: bool) -> Rows {
    let mut out = Rows::default();
    let o = &mut out;
    let key = |k: &String| k.clone();
    emit(
        o,
        &mut st.transactions,
        whole,
        "transaction",
        key,
        transaction_json,
    );
    emit(o, &mut st.refunds, whole, "refund", key, |r| {
        let notify = match &r.notify {
            None => Value::Null,
            Some(RefundNotify::V3(url)) => json!({"v3": url}),
            Some(RefundNotify::V2 { url, appid }) => json!({"v2": {"url": url, "appid": appid}}),
        };
        json!({"answer": r.answer, "notify": notify, "sub_mchid": r.sub_mchid,
               "mchid": r.mchid, "order": r.order})
    });
    emit(o, &mut st.combines, whole, "combine", key, |c| {
        json!({"request": c.request, "trade_type": c.trade_type, "created": c.created,
               "combine_transaction_id": c.combine_transaction_id, "sub_orders": c.sub_orders})
    });
    emit(o, &mut st.cards, whole, "card", key, |c| {
        json!({"request": c.request, "prepare_card_token": c.prepare_card_token,
               "out_order_no": c.out_order_no})
    });
    emit(o, &mut st.dc_orders, whole, "dc_order", key, |v| {
        Value::Object(v.clone())
    });
    emit(o, &mut st.serials, whole, "serial", key, Value::clone);
    emit(o, &mut st.points, whole, "points", key, |v| json!(v));
    emit(o, &mut st.media, whole, "media", key, |(name, size)| {
        json!([name, size])
    });
    emit(
        o,
        &mut st.v2_orders,
        whole,
        "v2_order",
        key,
        |(req, fields)| {
            let fields: Vec<Value> = fields.iter().map(|(f, v)| json!([f, v])).collect();
            json!([req, fields])
        },
    );
    emit(o, &mut st.transfers.bills, whole, "transfer", key, |b| {
        json!({"mchid": b.mchid, "request": b.request, "transfer_bill_no": b.transfer_bill_no,
               "state": b.state, "fail_reason": b.fail_reason, "user_name": b.user_name,
               "package_info": b.package_info, "create_time": b.create_time,
               "update_time": b.update_time})
    });
    let sh = &mut st.sharing;
    emit(
        o,
        &mut sh.receivers,
        whole,
        "receiver",
        |(kind, account)| Value::from(vec![kind.clone(), account.clone()]).to_string(),
        |r| json!({"name": r.name}),
    );
    emit(
        o,
        &mut sh.orders,
        whole,
        "sharing_order",
        key,
        |o| json!({"transaction_id": o.transaction_id, "answer": o.answer, "returned": o.returned}),
    );
    emit(o, &mut sh.order_ids, whole, "sharing_order_id", key, |v| {
        json!(v)
    });
    emit(o, &mut sh.returns, whole, "sharing_return", key, |v| {
        Value::Object(v.clone())
    });
    emit(
        o,
        &mut sh.ledgers,
        whole,
        "sharing_ledger",
        key,
        |l| json!({"shared": l.shared, "finished": l.finished}),
    );
    out.rows.push(row("seq", "seq", &json!(st.seq)));
    out
}

fn transaction_json(t: &Transaction) -> Value {
    let party = match &t.party {
        Party::Merchant => json!("merchant"),
        Party::Partner { sub_mchid } => json!({"partner": sub_mchid}),
        Party::Combined {
            combine_out_trade_no,
            sub_mchid,
        } => json!({"combined": combine_out_trade_no, "sub_mchid": sub_mchid}),
    };
    json!({"request": t.request, "trade_type": t.trade_type, "trade_state": t.trade_state,
           "created": t.created, "transaction_id": t.transaction_id,
           "success_time": t.success_time, "openid": t.openid, "refunded": t.refunded,
           "party": party})
}

fn delivery_json(d: &Delivery) -> Value {
    let outcome = match &d.outcome {
        Outcome::Accepted(s) => json!({"accepted": s}),
        Outcome::Refused(s) => json!({"refused": s}),
        Outcome::Failed(w) => json!({"failed": w}),
        Outcome::Skipped(w) => json!({"skipped": w}),
    };
    json!({"url": d.url, "event_type": d.event_type, "id": d.id, "attempt": d.attempt,
           "at": d.at, "outcome": outcome})
}

/// A word the records keep as `&'static str` (states, trade types, APIv2 field names): the
/// ones the sandbox writes come back as they are; another (from a file written by a later
/// build) is kept once for the process.
fn word(s: &str) -> &'static str {
    static KNOWN: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut known = lock(&KNOWN);
    let set = known.get_or_insert_with(HashSet::new);
    if let Some(w) = set.get(s) {
        return w;
    }
    let w: &'static str = Box::leak(s.to_owned().into_boxed_str());
    set.insert(w);
    w
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)?.as_str().map(str::to_owned)
}

fn opt_text(v: &Value, k: &str) -> Option<Option<String>> {
    match v.get(k) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        _ => None,
    }
}

fn object(v: &Value, k: &str) -> Option<Map<String, Value>> {
    v.get(k)?.as_object().cloned()
}

/// Puts one row back; `None` when it cannot be read.
fn load_row(l: &mut Loaded, kind: &str, id: String, v: &Value) -> Option<()> {
    let st = &mut l.state;
    match kind {
        "transaction" => {
            let party = match v.get("party")? {
                Value::String(s) if s == "merchant" => Party::Merchant,
                p if p.get("partner").is_some() => Party::Partner {
                    sub_mchid: text(p, "partner")?,
                },
                p => Party::Combined {
                    combine_out_trade_no: text(p, "combined")?,
                    sub_mchid: opt_text(p, "sub_mchid")?,
                },
            };
            st.transactions.insert(
                id,
                Transaction {
                    request: object(v, "request")?,
                    trade_type: word(&text(v, "trade_type")?),
                    trade_state: word(&text(v, "trade_state")?),
                    created: v.get("created")?.clone(),
                    transaction_id: opt_text(v, "transaction_id")?,
                    success_time: opt_text(v, "success_time")?,
                    openid: opt_text(v, "openid")?,
                    refunded: v.get("refunded")?.as_i64()?,
                    party,
                },
            );
        }
        "refund" => {
            let notify = match v.get("notify")? {
                Value::Null => None,
                n if n.get("v3").is_some() => Some(RefundNotify::V3(text(n, "v3")?)),
                n => {
                    let v2 = n.get("v2")?;
                    Some(RefundNotify::V2 {
                        url: text(v2, "url")?,
                        appid: text(v2, "appid")?,
                    })
                }
            };
            st.refunds.insert(
                id,
                Refund {
                    answer: object(v, "answer")?,
                    notify,
                    sub_mchid: opt_text(v, "sub_mchid")?,
                    mchid: text(v, "mchid")?,
                    order: text(v, "order")?,
                },
            );
        }
        "combine" => {
            let sub_orders = v
                .get("sub_orders")?
                .as_array()?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?;
            st.combines.insert(
                id,
                Combine {
                    request: object(v, "request")?,
                    trade_type: word(&text(v, "trade_type")?),
                    created: v.get("created")?.clone(),
                    combine_transaction_id: text(v, "combine_transaction_id")?,
                    sub_orders,
                },
            );
        }
        "card" => {
            st.cards.insert(
                id,
                Card {
                    request: object(v, "request")?,
                    prepare_card_token: text(v, "prepare_card_token")?,
                    out_order_no: opt_text(v, "out_order_no")?,
                },
            );
        }
        "dc_order" => {
            st.dc_orders.insert(id, v.as_object()?.clone());
        }
        "serial" => {
            st.serials.insert(id, v.clone());
        }
        "points" => {
            st.points.insert(id, v.as_i64()?);
        }
        "media" => {
            let a = v.as_array()?;
            let size = usize::try_from(a.get(1)?.as_u64()?).ok()?;
            st.media.insert(id, (a.first()?.as_str()?.to_owned(), size));
        }
        "v2_order" => {
            let a = v.as_array()?;
            let fields = a
                .get(1)?
                .as_array()?
                .iter()
                .map(|f| Some((word(f.get(0)?.as_str()?), f.get(1)?.clone())))
                .collect::<Option<Vec<_>>>()?;
            st.v2_orders
                .insert(id, (a.first()?.as_object()?.clone(), fields));
        }
        "transfer" => {
            st.transfers.bills.insert(
                id,
                Bill {
                    mchid: text(v, "mchid")?,
                    request: object(v, "request")?,
                    transfer_bill_no: text(v, "transfer_bill_no")?,
                    state: word(&text(v, "state")?),
                    fail_reason: opt_text(v, "fail_reason")?,
                    user_name: opt_text(v, "user_name")?,
                    package_info: text(v, "package_info")?,
                    create_time: text(v, "create_time")?,
                    update_time: text(v, "update_time")?,
                },
            );
        }
        "receiver" => {
            let key: Vec<String> = serde_json::from_str(&id).ok()?;
            let [kind, account] = <[String; 2]>::try_from(key).ok()?;
            st.sharing.receivers.insert(
                (kind, account),
                Receiver {
                    name: opt_text(v, "name")?,
                },
            );
        }
        "sharing_order" => {
            let returned = v
                .get("returned")?
                .as_object()?
                .iter()
                .map(|(k, n)| Some((k.clone(), n.as_i64()?)))
                .collect::<Option<HashMap<_, _>>>()?;
            st.sharing.orders.insert(
                id,
                Order {
                    transaction_id: text(v, "transaction_id")?,
                    answer: object(v, "answer")?,
                    returned,
                },
            );
        }
        "sharing_order_id" => {
            st.sharing.order_ids.insert(id, v.as_str()?.to_owned());
        }
        "sharing_return" => {
            st.sharing.returns.insert(id, v.as_object()?.clone());
        }
        "sharing_ledger" => {
            st.sharing.ledgers.insert(
                id,
                Ledger {
                    shared: v.get("shared")?.as_i64()?,
                    finished: v.get("finished")?.as_bool()?,
                },
            );
        }
        "seq" => st.seq = v.as_u64()?,
        "delivery" => {
            let o = v.get("outcome")?;
            let status = |k: &str| -> Option<u16> { u16::try_from(o.get(k)?.as_u64()?).ok() };
            let outcome = if o.get("accepted").is_some() {
                Outcome::Accepted(status("accepted")?)
            } else if o.get("refused").is_some() {
                Outcome::Refused(status("refused")?)
            } else if o.get("failed").is_some() {
                Outcome::Failed(text(o, "failed")?)
            } else {
                Outcome::Skipped(text(o, "skipped")?)
            };
            l.deliveries.push(Delivery {
                url: text(v, "url")?,
                event_type: text(v, "event_type")?,
                id: text(v, "id")?,
                attempt: u32::try_from(v.get("attempt")?.as_u64()?).ok()?,
                at: v.get("at")?.as_i64()?,
                outcome,
            });
        }
        "clock" => {
            let a = v.as_array()?;
            l.clock = Some((
                a.first()?.as_i64()?,
                a.get(1)?.as_i64()?,
                a.get(2)?.as_bool()?,
            ));
        }
        "merchant" => {
            let key = openssl::pkey::PKey::private_key_from_pem(text(v, "key")?.as_bytes())
                .ok()
                .map(PrivateKey::from_openssl)?;
            l.merchants.insert(
                id,
                (
                    key,
                    text(v, "serial")?,
                    text(v, "apiv3_key")?,
                    text(v, "apiv2_key")?,
                ),
            );
        }
        "keys" => {
            let key = |k: &str| -> Option<PrivateKey> {
                let pem = text(v, k)?;
                openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
                    .ok()
                    .map(PrivateKey::from_openssl)
            };
            let merchant_key = match v.get("merchant_key")? {
                Value::Null => None,
                _ => Some(key("merchant_key")?),
            };
            l.keys = Some(Keys {
                platform_key: key("platform_key")?,
                merchant_key,
                merchant_serial: text(v, "merchant_serial")?,
                public_key_id: opt_text(v, "public_key_id")?,
                apiv3_key: text(v, "apiv3_key")?,
                apiv2_key: text(v, "apiv2_key")?,
            });
        }
        _ => return None,
    }
    Some(())
}

/// Creates an empty file only its owner can read, failing if one appeared meanwhile.
fn create_private(path: &Path) -> Result<(), Error> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map(drop).map_err(|e| {
        Error::config(format!(
            "cannot create the state file {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::records::Receiver;

    fn db() -> Db {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE objects(kind TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,
                                  PRIMARY KEY(kind, id)) WITHOUT ROWID;",
        )
        .unwrap();
        Db {
            conn: Some(conn),
            written: HashMap::new(),
            done: 0,
            whole_next: false,
            deliveries: None,
        }
    }

    fn in_file(db: &Db, kind: &str) -> Vec<(String, String)> {
        let conn = db.conn.as_ref().unwrap();
        let mut q = conn
            .prepare("SELECT id, body FROM objects WHERE kind = ?1 ORDER BY id")
            .unwrap();
        let rows = q.query_map([kind], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    }

    #[test]
    fn a_write_after_the_first_serializes_only_the_records_touched() {
        let (mut st, mut db) = (State::default(), db());
        for i in 0..1_000 {
            st.points.insert(format!("card{i:04}"), i);
        }
        let account = ("MERCHANT_ID".to_string(), "190000".to_string());
        st.sharing
            .receivers
            .insert(account.clone(), Receiver { name: None });
        // the first write takes everything (a new or loaded state is written whole once)
        let first = rows_of(&mut st, false);
        assert_eq!(
            first.rows.len(),
            1_000 + 1 + 1,
            "points, the receiver, the seq"
        );
        write(&mut db, first).unwrap();
        assert_eq!(in_file(&db, "points").len(), 1_000);

        // one point changed, one added, one receiver removed: three records, not a thousand
        *st.points.get_mut("card0007").unwrap() = -7;
        st.points.insert("card9999".into(), 9_999);
        st.sharing.receivers.remove(&account);
        let second = rows_of(&mut st, false);
        let kinds: Vec<&str> = second.rows.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "points").count(),
            2,
            "{kinds:?}"
        );
        assert_eq!(second.rows.len(), 3, "two points and the seq");
        assert_eq!(second.gone.len(), 1);
        write(&mut db, second).unwrap();
        let points = in_file(&db, "points");
        assert_eq!(points.len(), 1_001);
        assert!(points.contains(&(id_of("card0007"), "-7".into())));
        assert!(points.contains(&(id_of("card9999"), "9999".into())));
        assert!(
            in_file(&db, "receiver").is_empty(),
            "the removed receiver is gone"
        );

        // nothing touched: nothing but the seq, which is unchanged and not written again
        let third = rows_of(&mut st, false);
        assert_eq!((third.rows.len(), third.gone.len()), (1, 0));

        // after a failed write everything is taken again, and rows no longer held are deleted
        db.conn
            .as_ref()
            .unwrap()
            .execute(
                "INSERT INTO objects(kind, id, body) VALUES ('points', '\"stale\"', '1')",
                [],
            )
            .unwrap();
        db.written
            .get_mut("points")
            .unwrap()
            .insert(id_of("stale"), 0);
        let whole = rows_of(&mut st, true);
        assert_eq!(whole.rows.len(), 1_001 + 1);
        write(&mut db, whole).unwrap();
        assert_eq!(in_file(&db, "points").len(), 1_001, "the stale row deleted");
    }
}
