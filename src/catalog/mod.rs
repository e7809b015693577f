//! The operation catalogue: every documented APIv3 and APIv2 operation and webhook event,
//! known offline (cargo feature `catalog`).
//!
//! The data (`operations.jsonl`, `events.jsonl` next to this file) is generated from the public
//! documentation pages by `crates/catalog-gen` and holds facts only: method, path template,
//! placeholders, whether the merchant certificate is needed (APIv2 `security`), whether the
//! answer comes unsigned (downloads), and the request and response fields as trees (name, JSON
//! type, required, enumerated values, encryption, a short label). docs/operations.md lists it.
//!
//! Nothing is parsed up front: the first lookup reads `index.txt` (method, template, offset and
//! label of each operation, 100 kB) and hashes its templates; the first lookup of a concrete path
//! builds a tree of their segments; each operation is decoded the first time it is asked for,
//! then kept.
//!
//! ```
//! use serde_json::json;
//! use wechatpay_chain::catalog;
//!
//! let op = catalog::find("PATCH", "v3/discount-card/orders/{out_order_no}").unwrap();
//! assert_eq!(op.placeholders(), ["out_order_no"]);
//! // a concrete path finds its template
//! let same = catalog::find("patch", "/v3/discount-card/orders/1234").unwrap();
//! assert!(std::ptr::eq(op, same));
//!
//! // the forgotten `json` wrapper
//! let findings = op.validate(&json!({"out_order_no": "1234", "rewards": []}));
//! assert!(findings.iter().any(|f| f.kind == catalog::FindingKind::BodyMissing));
//!
//! // a typo gets the nearest templates
//! assert!(catalog::find("POST", "v3/pay/transaction/native").is_none());
//! let near = catalog::suggest("POST", "v3/pay/transaction/native");
//! assert_eq!(near[0].template, "v3/pay/transactions/native");
//! ```

mod call;
mod validate;

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

pub use crate::request::Protocol;
pub(crate) use call::check_call;
pub use call::unknown_path;
pub use validate::{Finding, FindingKind};

/// Whether a client checks each call's args against the catalogue before sending
/// ([`crate::Builder::validation`]; per call, `"validate": false` in the args skips it and
/// `"validate": true` asks for it, strictly when the client's mode is `Off`).
///
/// What is checked and what each finding means: [`Operation::validate_at`] and
/// docs/catalog.md. A path the catalogue does not know is a finding too, with the nearest
/// documented templates ([`suggest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Validation {
    /// Nothing is checked (the library's default).
    #[default]
    Off,
    /// Each finding is logged with `tracing` at WARN and the call is sent.
    Warn,
    /// A call with any finding is refused with [`crate::Error::InvalidArgument`] naming each
    /// field by its JSON pointer and what the page expects; nothing is sent (the CLI's default).
    Strict,
}

impl std::str::FromStr for Validation {
    type Err = crate::Error;

    /// `off`, `warn` or `strict` (any case).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" => Ok(Validation::Off),
            "warn" => Ok(Validation::Warn),
            "strict" => Ok(Validation::Strict),
            _ => Err(crate::Error::InvalidArgument(format!(
                "validation {s:?}: use off, warn or strict"
            ))),
        }
    }
}

static OPERATIONS: &str = include_str!("operations.jsonl");
static INDEX_TEXT: &str = include_str!("index.txt");
static EVENTS: &str = include_str!("events.jsonl");

/// The JSON type a field is documented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Type {
    /// `string`
    String,
    /// `integer`
    Integer,
    /// `number`
    Number,
    /// `boolean`
    Boolean,
    /// `object`
    Object,
    /// `object[]`: a list of objects, each with the field's children.
    ObjectArray,
    /// `string[]`
    StringArray,
    /// `integer[]`
    IntegerArray,
    /// `number[]`
    NumberArray,
    /// The literal `true` (APIv2 `security`, `nonceless`).
    True,
    /// The page states no JSON type: anything is accepted.
    Any,
}

impl Type {
    fn parse(s: &str) -> Type {
        match s {
            "" | "string" => Type::String,
            "integer" => Type::Integer,
            "number" => Type::Number,
            "boolean" => Type::Boolean,
            "object" => Type::Object,
            "object[]" => Type::ObjectArray,
            "string[]" => Type::StringArray,
            "integer[]" => Type::IntegerArray,
            "number[]" => Type::NumberArray,
            "true" => Type::True,
            _ => Type::Any,
        }
    }

    /// The type as the documentation writes it (`string`, `object[]`, …; `any` when unstated).
    pub fn as_str(self) -> &'static str {
        match self {
            Type::String => "string",
            Type::Integer => "integer",
            Type::Number => "number",
            Type::Boolean => "boolean",
            Type::Object => "object",
            Type::ObjectArray => "object[]",
            Type::StringArray => "string[]",
            Type::IntegerArray => "integer[]",
            Type::NumberArray => "number[]",
            Type::True => "true",
            Type::Any => "any",
        }
    }
}

impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One documented field, with its children for objects and lists of objects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Field {
    /// The field's name; APIv2 numbered names keep their `$n` (`coupon_type_$n`).
    pub name: String,
    /// Its JSON type.
    pub ty: Type,
    /// Whether the page marks it required; a member of a group of [`Field::alternatives`] of
    /// its object is not (the group is).
    pub required: bool,
    /// The few words naming it on the page (may be empty).
    pub label: String,
    /// The values it may take, when the page enumerates them (empty: any value).
    pub enumeration: Vec<String>,
    /// How the field is encrypted, as the page marks it: `by-rsa-pubkey` (the platform's public
    /// key, see [`crate::Encryptor`]), `by-aes-gcm`, `by-aes-ecb`.
    pub encrypted: Option<String>,
    /// The fields inside an object or a list of objects.
    pub children: Vec<Field>,
    /// Groups of the children of which a call gives one (or at least one), such as APIv2
    /// `transaction_id` and `out_trade_no`: their members are not required each.
    pub alternatives: Vec<OneOf>,
}

/// A group of an object's fields of which the platform takes one: at least one, or exactly
/// one. From the catalogue's reviewed table (`catalog/alternatives.tsv`, with its sources).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OneOf {
    /// Exactly one (two at once are refused); otherwise at least one.
    pub exclusive: bool,
    /// The fields' names, as the page orders them in the table.
    pub members: Vec<String>,
}

impl OneOf {
    fn decode(v: &Value) -> Option<OneOf> {
        let a = v.as_array()?;
        let exclusive = match a.first()?.as_str()? {
            "one" => true,
            "any" => false,
            _ => return None,
        };
        let members = a[1..]
            .iter()
            .filter_map(|m| m.as_str().map(str::to_string))
            .collect();
        Some(OneOf { exclusive, members })
    }

    /// `one of a, b` or `exactly one of a, b`.
    pub fn describe(&self) -> String {
        let which = if self.exclusive { "exactly one" } else { "one" };
        format!("{which} of {}", self.members.join(", "))
    }
}

impl Field {
    fn decode(v: &Value) -> Option<Field> {
        let a = v.as_array()?;
        let text = |i: usize| a.get(i).and_then(Value::as_str).unwrap_or("");
        Some(Field {
            name: a.first()?.as_str()?.to_string(),
            ty: Type::parse(text(1)),
            required: a.get(2).and_then(Value::as_u64) == Some(1),
            label: text(3).to_string(),
            enumeration: match a.get(4) {
                Some(Value::Array(e)) => e
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            },
            encrypted: a.get(5).and_then(Value::as_str).map(str::to_string),
            children: fields(a.get(6)),
            alternatives: match a.get(7) {
                Some(Value::Array(g)) => g.iter().filter_map(OneOf::decode).collect(),
                _ => Vec::new(),
            },
        })
    }

    /// Whether `key` is this field: the same name, or a numbered APIv2 name (`coupon_id_$n`
    /// takes `coupon_id_0`, `coupon_id_1`…).
    pub fn matches(&self, key: &str) -> bool {
        numbered(&self.name, key)
    }
}

/// `pattern` with each `$name` standing for one or more digits.
fn numbered(pattern: &str, key: &str) -> bool {
    let Some(i) = pattern.find('$') else {
        return pattern == key;
    };
    let Some(tail) = key.strip_prefix(&pattern[..i]) else {
        return false;
    };
    let rest = pattern[i + 1..].trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let digits = tail.len() - tail.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    digits > 0 && numbered(rest, &tail[digits..])
}

fn fields(v: Option<&Value>) -> Vec<Field> {
    match v {
        Some(Value::Array(a)) => a.iter().filter_map(Field::decode).collect(),
        _ => Vec::new(),
    }
}

/// One documented operation: a method on a path template.
#[derive(Debug)]
#[non_exhaustive]
pub struct Operation {
    /// APIv3 or APIv2.
    pub protocol: Protocol,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template as the chain names it: `v3/discount-card/orders/{out_order_no}`,
    /// `v2/pay/micropay`.
    pub template: &'static str,
    /// The few words naming the operation on its page.
    pub label: String,
    /// Whether the call needs the merchant certificate (APIv2 `security`).
    pub security: bool,
    /// Whether the platform answers unsigned by design (bill and image downloads, some APIv2
    /// calls).
    pub unsigned: bool,
    /// The top-level args: the placeholders, `json`, `query`, `xml`, `headers`… with the body
    /// fields nested under them.
    pub request: Vec<Field>,
    /// The fields of the answer.
    pub response: Vec<Field>,
}

impl Operation {
    /// The names of the template's `{placeholders}`, in path order.
    pub fn placeholders(&self) -> Vec<&'static str> {
        placeholders(self.template).collect()
    }

    /// Whether the client fills in the request field `name` under the top-level arg `parent`
    /// itself, so that the call's args need not carry it: APIv3's `headers` `Wechatpay-Serial`
    /// (the platform key the client expects answers signed with), and APIv2's `nonce_str` and
    /// `sign` in `xml` (or `query`).
    ///
    /// ```
    /// use wechatpay_chain::catalog;
    /// let op = catalog::find("POST", "v3/profitsharing/receivers/add").unwrap();
    /// assert!(op.client_fills("headers", "Wechatpay-Serial"));
    /// assert!(!op.client_fills("json", "appid"));
    /// ```
    pub fn client_fills(&self, parent: &str, name: &str) -> bool {
        match self.protocol {
            Protocol::V3 => parent == "headers" && name.eq_ignore_ascii_case("Wechatpay-Serial"),
            Protocol::V2 => {
                matches!(parent, "xml" | "query") && validate::XML_MANAGED.contains(&name)
            }
        }
    }
}

fn placeholders(template: &'static str) -> impl Iterator<Item = &'static str> {
    template
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
}

/// A webhook (notification) event type.
#[derive(Debug)]
#[non_exhaustive]
pub struct Event {
    /// The event type: `TRANSACTION.SUCCESS` (APIv3), `refund-processed` (APIv2, the page's
    /// name: APIv2 notifications carry no type).
    pub kind: String,
    /// APIv3 or APIv2.
    pub protocol: Protocol,
    /// The few words naming the event on its page.
    pub label: String,
    /// The resource's `original_type` (APIv3), when the page names one.
    pub resource_type: Option<String>,
    /// How the resource is encrypted: `by-aes-gcm` (APIv3 key), `by-aes-ecb` (APIv2
    /// `req_info`); `None` for a plain notification.
    pub encrypted: Option<String>,
    /// The resource's fields; a page documenting several shapes of resource gives several.
    pub resources: Vec<Vec<Field>>,
}

impl Event {
    /// The fields of the (first documented) resource.
    pub fn resource(&self) -> &[Field] {
        self.resources.first().map(Vec::as_slice).unwrap_or(&[])
    }
}

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn method_index(m: &str) -> Option<usize> {
    METHODS.iter().position(|x| x.eq_ignore_ascii_case(m))
}

struct Entry {
    method: usize,
    template: &'static str,
    label: &'static str,
    /// The operation's line in `operations.jsonl`, sliced only when decoded: touching the 1.5 MB
    /// at first use would cost more than the whole index.
    start: usize,
    end: usize,
    op: OnceLock<Option<Box<Operation>>>,
}

struct Index {
    /// Sorted by template segment by segment, then method, as `index.txt` lists them.
    entries: Vec<Entry>,
    /// A template's first entry (its methods follow it): one hash for a call by template.
    exact: HashMap<&'static str, u32, std::hash::BuildHasherDefault<Fnv>>,
}

/// FNV-1a: the keys are short templates, hashed once each at first use.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut entries: Vec<Entry> = Vec::with_capacity(1200);
        let mut exact = HashMap::with_capacity_and_hasher(1200, Default::default());
        // `METHOD template start label` per line; the next line's start ends this one
        let mut rows = INDEX_TEXT.split_terminator('\n').filter_map(|l| {
            let mut parts = l.splitn(4, ' ');
            let method = method_index(parts.next()?)?;
            let template = parts.next()?;
            let start: usize = parts.next()?.parse().ok()?;
            Some((method, template, start, parts.next().unwrap_or("")))
        });
        let mut next = rows.next();
        while let Some((method, template, start, label)) = next {
            next = rows.next();
            let end = next.map_or(OPERATIONS.len(), |(_, _, s, _)| s);
            exact.entry(template).or_insert(entries.len() as u32);
            entries.push(Entry {
                method,
                template,
                label,
                start,
                end,
                op: OnceLock::new(),
            });
        }
        Index { entries, exact }
    })
}

fn decode(line: &'static str, method: usize, template: &'static str) -> Option<Box<Operation>> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some(Box::new(Operation {
        protocol: if v.get("v").and_then(Value::as_u64) == Some(2) {
            Protocol::V2
        } else {
            Protocol::V3
        },
        method: METHODS[method],
        template,
        label: v.get("l").and_then(Value::as_str).unwrap_or("").to_string(),
        security: v.get("sec").and_then(Value::as_bool).unwrap_or(false),
        unsigned: v.get("uns").and_then(Value::as_bool).unwrap_or(false),
        request: fields(v.get("req")),
        response: fields(v.get("res")),
    }))
}

impl Entry {
    fn get(&'static self) -> Option<&'static Operation> {
        self.op
            .get_or_init(|| {
                let line = OPERATIONS.get(self.start..self.end)?;
                decode(line.trim_end_matches('\n'), self.method, self.template)
            })
            .as_deref()
    }
}

/// The path as the chain names it: no leading `/`, no query or fragment.
fn clean(path: &str) -> &str {
    let p = path.split(['?', '#']).next().unwrap_or(path);
    p.trim_start_matches('/')
}

const NONE: u32 = u32::MAX;

/// A node of the path tree: its placeholder child and its entry per method. Literal children
/// are the edges `(node, segment)` of [`Tree::literal`].
#[derive(Clone, Copy)]
struct Node {
    param: u32,
    ops: [u32; 5],
}

const EMPTY: Node = Node {
    param: NONE,
    ops: [NONE; 5],
};

/// The templates as a tree of segments, for concrete paths; built on the first lookup of one.
struct Tree {
    nodes: Vec<Node>,
    literal: HashMap<(u32, &'static str), u32, std::hash::BuildHasherDefault<Fnv>>,
    /// Templates of the same shape as an earlier one (`v2/secapi/mch/{addinstitutionsub}` and
    /// `…/{queryinstitutionsub}`): (node, method, entry).
    same_shape: Vec<(u32, usize, u32)>,
}

fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let entries = &index().entries;
        let mut t = Tree {
            nodes: Vec::with_capacity(3000),
            literal: HashMap::with_capacity_and_hasher(3000, Default::default()),
            same_shape: Vec::new(),
        };
        t.nodes.push(EMPTY);
        for (e, entry) in entries.iter().enumerate() {
            let mut node = 0u32;
            for seg in entry.template.split('/') {
                let fresh = t.nodes.len() as u32;
                node = if seg.starts_with('{') {
                    match t.nodes[node as usize].param {
                        NONE => {
                            t.nodes[node as usize].param = fresh;
                            t.nodes.push(EMPTY);
                            fresh
                        }
                        n => n,
                    }
                } else {
                    let n = *t.literal.entry((node, seg)).or_insert(fresh);
                    if n == fresh {
                        t.nodes.push(EMPTY);
                    }
                    n
                };
            }
            match &mut t.nodes[node as usize].ops[entry.method] {
                slot if *slot == NONE => *slot = e as u32,
                _ => t.same_shape.push((node, entry.method, e as u32)),
            }
        }
        t
    })
}

/// The node and entry `method` has at the end of `segs` from `node`: literal segments before
/// placeholders.
fn walk(t: &Tree, node: u32, segs: &[&str], method: usize) -> Option<(u32, u32)> {
    let Some((first, rest)) = segs.split_first() else {
        let e = t.nodes[node as usize].ops[method];
        return (e != NONE).then_some((node, e));
    };
    // a `{name}` given in the path is a placeholder, never a literal
    if !first.starts_with('{') {
        if let Some(n) = t.literal.get(&(node, *first)) {
            if let Some(found) = walk(t, *n, rest, method) {
                return Some(found);
            }
        }
    }
    match t.nodes[node as usize].param {
        NONE => None,
        p => walk(t, p, rest, method),
    }
}

/// The operation `method` (any case) on `path`: a template (`v3/pay/transactions/id/{transaction_id}`)
/// or a concrete path (`/v3/pay/transactions/id/4200…?mchid=1`), literal segments winning over
/// placeholders. A template costs one hash, a concrete path one per segment.
pub fn find(method: &str, path: &str) -> Option<&'static Operation> {
    let m = method_index(method)?;
    let idx = index();
    let path = clean(path);
    if let Some(first) = idx.exact.get(path) {
        let same = idx.entries[*first as usize..]
            .iter()
            .take_while(|e| e.template == path);
        if let Some(e) = same.into_iter().find(|e| e.method == m) {
            return e.get();
        }
    }
    let t = tree();
    let segs: Vec<&str> = path.split('/').collect();
    let (node, first) = walk(t, 0, &segs, m)?;
    let mut i = first;
    if t.same_shape.iter().any(|(n, mm, _)| *n == node && *mm == m) {
        // same shape: the one whose placeholder the segment spells
        let spelled = |e: u32| {
            let tpl = idx.entries[e as usize].template;
            tpl.split('/').zip(&segs).all(|(a, s)| {
                a == *s
                    || a.strip_prefix('{')
                        .and_then(|a| a.strip_suffix('}'))
                        .is_some_and(|n| n.eq_ignore_ascii_case(s))
            })
        };
        if !spelled(first) {
            if let Some((_, _, e)) = t
                .same_shape
                .iter()
                .find(|(n, mm, e)| *n == node && *mm == m && spelled(*e))
            {
                i = *e;
            }
        }
    }
    idx.entries[i as usize].get()
}

/// An operation's method, template and label, read from the index without decoding the
/// operation: for listings and shell completions (decoding all 1,147 costs about 20 ms).
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: &'static str,
    /// The path template, as [`Operation::template`].
    pub template: &'static str,
    /// The few words naming it, as [`Operation::label`].
    pub label: &'static str,
    entry: u32,
}

impl Summary {
    /// The whole operation (decoded on first use).
    pub fn operation(&self) -> Option<&'static Operation> {
        index().entries.get(self.entry as usize)?.get()
    }
}

fn matches_words(e: &Entry, words: &[String]) -> bool {
    let t = e.template.to_lowercase();
    let l = e.label.to_lowercase();
    words
        .iter()
        .all(|w| t.contains(w.as_str()) || l.contains(w.as_str()))
}

/// The [`Summary`] of each operation whose template or label holds every one of `words`
/// (case-insensitive; no words: all of them), in [`operations`] order, nothing decoded.
///
/// ```
/// use wechatpay_chain::catalog;
///
/// let all: Vec<_> = catalog::summaries::<&str>(&[]).collect();
/// assert!(all.iter().any(|s| s.method == "PATCH" && s.template == "v3/discount-card/orders/{out_order_no}"));
/// let op = all[0].operation().unwrap();
/// assert_eq!(op.template, all[0].template);
/// ```
pub fn summaries<'w, S: AsRef<str>>(words: &'w [S]) -> impl Iterator<Item = Summary> + 'w {
    let words: Vec<String> = words.iter().map(|w| w.as_ref().to_lowercase()).collect();
    index()
        .entries
        .iter()
        .enumerate()
        .filter(move |(_, e)| matches_words(e, &words))
        .map(|(i, e)| Summary {
            method: METHODS[e.method],
            template: e.template,
            label: e.label,
            entry: i as u32,
        })
}

/// Every operation, sorted by template (segment by segment) then method. Decodes each on first use.
pub fn operations() -> impl Iterator<Item = &'static Operation> {
    index().entries.iter().filter_map(Entry::get)
}

/// The operations whose template or label holds every one of `words` (case-insensitive; no
/// words: all of them).
///
/// ```
/// use wechatpay_chain::catalog;
///
/// let refunds: Vec<_> = catalog::search(&["v3/refund/domestic"]).collect();
/// assert!(refunds.iter().any(|op| op.method == "POST" && op.template == "v3/refund/domestic/refunds"));
/// ```
pub fn search<'w, S: AsRef<str>>(words: &'w [S]) -> impl Iterator<Item = &'static Operation> + 'w {
    let words: Vec<String> = words.iter().map(|w| w.as_ref().to_lowercase()).collect();
    // matched on the index; only the operations found are decoded
    index()
        .entries
        .iter()
        .filter(move |e| matches_words(e, &words))
        .filter_map(Entry::get)
}

fn events_all() -> &'static [Event] {
    static EVENTS_LIST: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS_LIST.get_or_init(|| {
        EVENTS
            .split_terminator('\n')
            .filter_map(|line| {
                let v: Value = serde_json::from_str(line).ok()?;
                let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
                Some(Event {
                    kind: text("type")?,
                    protocol: if v.get("v").and_then(Value::as_u64) == Some(2) {
                        Protocol::V2
                    } else {
                        Protocol::V3
                    },
                    label: text("l").unwrap_or_default(),
                    resource_type: text("rt"),
                    encrypted: text("x"),
                    resources: match v.get("res") {
                        Some(Value::Array(a)) => a.iter().map(|r| fields(Some(r))).collect(),
                        _ => Vec::new(),
                    },
                })
            })
            .collect()
    })
}

/// Every documented webhook event, APIv3 then APIv2, each by type.
pub fn events() -> impl Iterator<Item = &'static Event> {
    events_all().iter()
}

/// The event of type `kind` (`TRANSACTION.SUCCESS`; APIv2: `refund-processed`); the APIv3 one
/// when both protocols document the type.
///
/// ```
/// use wechatpay_chain::catalog;
///
/// let e = catalog::event("REFUND.SUCCESS").unwrap();
/// assert_eq!(e.encrypted.as_deref(), Some("by-aes-gcm"));
/// assert!(e.resource().iter().any(|f| f.name == "out_refund_no"));
/// ```
pub fn event(kind: &str) -> Option<&'static Event> {
    events_all().iter().find(|e| e.kind == kind)
}

/// The documented event types nearest to `kind`, for a "did you mean": at most three,
/// nearest first, compared in any case (a type that contains `kind`, of four or more
/// characters, counts as near); empty when nothing is near.
///
/// ```
/// use wechatpay_chain::catalog;
///
/// let near = catalog::suggest_event("TRANSACTION.SUCESS");
/// assert_eq!(near[0].kind, "TRANSACTION.SUCCESS");
/// assert!(catalog::suggest_event("NOTHING_LIKE_IT_AT_ALL_0000000000").is_empty());
/// ```
pub fn suggest_event(kind: &str) -> Vec<&'static Event> {
    let k = kind.to_ascii_uppercase();
    let mut scored: Vec<(usize, &'static Event)> = events()
        .map(|e| {
            let upper = e.kind.to_ascii_uppercase();
            let d = distance(&k, &upper);
            let d = if upper.contains(&k) && k.len() >= 4 {
                d.min(3)
            } else {
                d
            };
            (d, e)
        })
        .filter(|(d, e)| *d <= (e.kind.len() / 3).max(3))
        .collect();
    scored.sort_by(|a, b| (a.0, &a.1.kind).cmp(&(b.0, &b.1.kind)));
    let mut out: Vec<&'static Event> = Vec::new();
    for (_, e) in scored {
        if !out.iter().any(|o| o.kind == e.kind) {
            out.push(e);
        }
        if out.len() == 3 {
            break;
        }
    }
    out
}

/// Edit distance between two segments, in characters (bytes for ASCII, without allocating).
fn distance(a: &str, b: &str) -> usize {
    if a.is_ascii() && b.is_ascii() && b.len() < 64 {
        let mut row = [0usize; 64];
        return levenshtein(a.bytes(), b.as_bytes(), &mut row[..=b.len()]);
    }
    let b: Vec<char> = b.chars().collect();
    let mut row = vec![0; b.len() + 1];
    levenshtein(a.chars(), &b, &mut row)
}

/// The edit distance of `a` to `b`, one row of the table (`b.len() + 1` long) kept in `row`.
fn levenshtein<T: PartialEq>(a: impl Iterator<Item = T>, b: &[T], row: &mut [usize]) -> usize {
    for (j, r) in row.iter_mut().enumerate() {
        *r = j;
    }
    for (i, ca) in a.enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

/// How far `path` is from a template's segments, segment by segment: a placeholder
/// (`u32::MAX`) takes any segment, a literal costs its edit distance (`cost(path index,
/// literal)`), a missing or extra segment costs its length (`len(literal)`).
fn path_distance(
    path: &[&str],
    template: &[u32],
    mut cost: impl FnMut(usize, u32) -> usize,
    len: impl Fn(u32) -> usize,
) -> usize {
    let seg_len = |s: u32| if s == u32::MAX { 1 } else { len(s).max(1) };
    let mut row: Vec<usize> = Vec::with_capacity(template.len() + 1);
    row.push(0);
    for s in template {
        let last = row[row.len() - 1];
        row.push(last + seg_len(*s));
    }
    for (i, p) in path.iter().enumerate() {
        let mut prev = row[0];
        row[0] += p.len().max(1);
        for (j, s) in template.iter().enumerate() {
            let cur = row[j + 1];
            let c = if *s == u32::MAX { 0 } else { cost(i, *s) };
            row[j + 1] = (prev + c)
                .min(cur + p.len().max(1))
                .min(row[j] + seg_len(*s));
            prev = cur;
        }
    }
    row[template.len()]
}

/// The templates' segments as numbers, for [`suggest`]: each distinct literal is measured
/// once per call.
struct Shapes {
    literals: Vec<&'static str>,
    /// Per entry, its segments: an index into `literals`, or `u32::MAX` for a placeholder.
    segments: Vec<Vec<u32>>,
}

fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| {
        let mut ids: HashMap<&'static str, u32> = HashMap::new();
        let mut literals = Vec::new();
        let segments = index()
            .entries
            .iter()
            .map(|e| {
                e.template
                    .split('/')
                    .map(|s| {
                        if s.starts_with('{') {
                            u32::MAX
                        } else {
                            *ids.entry(s).or_insert_with(|| {
                                literals.push(s);
                                (literals.len() - 1) as u32
                            })
                        }
                    })
                    .collect()
            })
            .collect();
        Shapes { literals, segments }
    })
}

/// The documented operations nearest to `path`, for a "did you mean": at most five, those of
/// `method` first (the method is rarely what is wrong), each group nearest first; empty when
/// nothing is close.
///
/// ```
/// use wechatpay_chain::catalog;
/// let near = catalog::suggest("POST", "v3/pay/transaction/native");
/// let methods: Vec<&str> = near.iter().map(|op| op.method).collect();
/// let posts = methods.iter().take_while(|m| **m == "POST").count();
/// assert!(methods[posts..].iter().all(|m| *m != "POST"), "{methods:?}");
/// ```
pub fn suggest(method: &str, path: &str) -> Vec<&'static Operation> {
    let m = method_index(method);
    let segs: Vec<&str> = clean(path).split('/').collect();
    // no documented path comes near one this long; and the work stays bounded
    if segs.len() > 32 || path.len() > 1024 {
        return Vec::new();
    }
    let size: usize = segs.iter().map(|s| s.len()).sum();
    let limit = (size / 4).max(3);
    let sh = shapes();
    let n = segs.len();
    // distance of path segment p to literal l, measured on first need
    let mut memo: Vec<u32> = vec![u32::MAX; sh.literals.len() * n];
    let mut near: Vec<(bool, usize, u32)> = Vec::new();
    for (i, (e, tsegs)) in index().entries.iter().zip(&sh.segments).enumerate() {
        let d = path_distance(
            &segs,
            tsegs,
            |p, l| {
                let slot = &mut memo[l as usize * n + p];
                if *slot == u32::MAX {
                    *slot = distance(segs[p], sh.literals[l as usize]) as u32;
                }
                *slot as usize
            },
            |l| sh.literals[l as usize].len(),
        );
        if d <= limit {
            near.push((Some(e.method) != m, d, i as u32));
        }
    }
    near.sort();
    near.truncate(5);
    near.into_iter()
        .filter_map(|(_, _, i)| index().entries[i as usize].get())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_names_take_digits_only() {
        let f = Field {
            name: "coupon_refund_fee_$n".into(),
            ty: Type::Integer,
            required: false,
            label: String::new(),
            enumeration: Vec::new(),
            encrypted: None,
            children: Vec::new(),
            alternatives: Vec::new(),
        };
        assert!(f.matches("coupon_refund_fee_0"));
        assert!(f.matches("coupon_refund_fee_12"));
        assert!(!f.matches("coupon_refund_fee_"));
        assert!(!f.matches("coupon_refund_fee_x"));
        let g = Field {
            name: "coupon_id_$n_$m".into(),
            ..f
        };
        assert!(!g.matches("coupon_id_1"));
        assert!(g.matches("coupon_id_1_0"));
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("transaction", "transactions"), 1);
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("商户号", "商户"), 1);
        assert_eq!(distance("kitten", "sitting"), 3);
    }

    #[test]
    fn path_distance_lets_placeholders_take_any_segment() {
        fn d(p: &[&str], t: &str) -> usize {
            let lits: Vec<&str> = t.split('/').collect();
            let ids: Vec<u32> = lits
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    if s.starts_with('{') {
                        u32::MAX
                    } else {
                        i as u32
                    }
                })
                .collect();
            path_distance(
                p,
                &ids,
                |i, l| distance(p[i], lits[l as usize]),
                |l| lits[l as usize].len(),
            )
        }
        let p = ["v3", "pay", "transactions", "id", "42"];
        assert_eq!(d(&p, "v3/pay/transactions/id/{transaction_id}"), 0);
        assert_eq!(d(&["v3", "pay", "transaction"], "v3/pay/transactions"), 1);
        assert_eq!(d(&["v3", "pay"], "v3/pay/transactions"), 12);
    }
}
