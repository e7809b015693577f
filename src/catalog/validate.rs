//! Checking a call's args against its operation's documented request fields.

use std::fmt;

use serde_json::{Map, Value};

use super::{distance, Field, OneOf, Operation, Type};

/// What is wrong with a field of a call's args.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FindingKind {
    /// A field the page marks required is absent (or a `{placeholder}` has no value).
    Missing,
    /// The value has another JSON type than the page documents.
    WrongType,
    /// The value is not one of the page's enumerated values.
    NotInEnumeration,
    /// The page documents no such field here.
    Unknown,
    /// A required body (`json`, `xml`, `query`) is absent while its fields sit at the top level
    /// of the args: the forgotten wrapper.
    BodyMissing,
    /// None of a group of alternatives is given (`one of transaction_id, out_trade_no
    /// required`), or more than one of a group that takes exactly one; the pointer names the
    /// object holding them.
    OneOf,
}

/// One problem of a call's args: which field, by JSON pointer into the args object
/// (`/json/amount/total`, `/query/limit`, `/out_order_no`, `/json/goods/0/price`), and what the
/// page expects there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Finding {
    /// What kind of problem.
    pub kind: FindingKind,
    /// The field, as an RFC 6901 JSON pointer into the args (`""`: the args themselves).
    pub pointer: String,
    /// What the page expects there, in words (`integer, got string "100"`).
    pub expected: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            FindingKind::Missing => "required field missing",
            FindingKind::WrongType => "wrong type",
            FindingKind::NotInEnumeration => "value outside the enumeration",
            FindingKind::Unknown => "unknown field",
            FindingKind::BodyMissing => "required body missing",
            FindingKind::OneOf => "",
        };
        let at = if self.pointer.is_empty() {
            "(args)"
        } else {
            &self.pointer
        };
        if what.is_empty() {
            return write!(f, "{at}: {}", self.expected);
        }
        write!(f, "{at}: {what}: {}", self.expected)
    }
}

/// A step of the pointer being checked.
#[derive(Clone, Copy)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct Check<'a> {
    path: Vec<Step<'a>>,
    out: Vec<Finding>,
}

/// The request options every call may carry besides the documented args (the client's own:
/// the request options such as `json`, `query`, `headers`, `retry`, and `validate`).
fn is_option(key: &str) -> bool {
    matches!(key, "validate" | "retry") || crate::decorator::OPTION_KEYS.contains(&key)
}

/// Fields the client fills in an APIv2 `xml` body itself.
pub(super) const XML_MANAGED: &[&str] = &["nonce_str", "sign"];

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let t: String = s.chars().take(37).collect();
        format!("{t}...")
    } else {
        s
    }
}

/// The text an enumeration compares: strings as they are, numbers and booleans as written.
fn scalar_text(v: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match v {
        Value::String(s) => Some(s.as_str().into()),
        Value::Number(n) => Some(n.to_string().into()),
        Value::Bool(b) => Some(if *b { "true" } else { "false" }.into()),
        _ => None,
    }
}

/// Whether a scalar fits `ty`; `lenient` (XML and query strings, where every value travels as
/// text) lets numbers and their text stand for each other.
fn scalar_fits(ty: Type, v: &Value, lenient: bool) -> bool {
    match (ty, v) {
        (Type::Any, _) => true,
        (Type::String, Value::String(_)) => true,
        (Type::String, Value::Number(_)) => lenient,
        (Type::Integer, Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Type::Integer, Value::String(s)) => lenient && s.parse::<i64>().is_ok(),
        (Type::Number, Value::Number(_)) => true,
        (Type::Number, Value::String(s)) => lenient && s.parse::<f64>().is_ok(),
        (Type::Boolean, Value::Bool(_)) => true,
        // `security: false` would send an APIv2 call that needs the certificate without it
        (Type::True, Value::Bool(b)) => *b,
        (Type::Boolean, Value::String(s)) => lenient && matches!(s.as_str(), "true" | "false"),
        (Type::Boolean, Value::Number(n)) => lenient && matches!(n.as_u64(), Some(0 | 1)),
        _ => false,
    }
}

impl<'a> Check<'a> {
    fn pointer(&self) -> String {
        let mut s = String::new();
        for step in &self.path {
            s.push('/');
            match step {
                Step::Key(k) => s.push_str(&k.replace('~', "~0").replace('/', "~1")),
                Step::Index(i) => s.push_str(&i.to_string()),
            }
        }
        s
    }

    fn find(&mut self, kind: FindingKind, expected: String) {
        let pointer = self.pointer();
        self.out.push(Finding {
            kind,
            pointer,
            expected,
        });
    }

    fn at<F: FnOnce(&mut Self)>(&mut self, step: Step<'a>, f: F) {
        self.path.push(step);
        f(self);
        self.path.pop();
    }

    fn enumeration(&mut self, field: &Field, v: &Value) {
        if field.enumeration.is_empty() {
            return;
        }
        if let Some(t) = scalar_text(v) {
            if !field.enumeration.iter().any(|e| *e == t) {
                self.find(
                    FindingKind::NotInEnumeration,
                    format!("one of {}, got {}", field.enumeration.join(" | "), shown(v)),
                );
            }
        }
    }

    fn value(&mut self, field: &'a Field, v: &'a Value, lenient: bool) {
        if v.is_null() {
            if field.required {
                self.find(
                    FindingKind::WrongType,
                    format!("{} (required), got null", field.ty),
                );
            }
            return;
        }
        let elem = match field.ty {
            Type::Object => {
                match v {
                    Value::Object(m) => {
                        self.object(&field.children, m, lenient, &[]);
                        self.one_of(&field.alternatives, m);
                    }
                    // wechatpay-php sends an empty PHP array as `[]`
                    Value::Array(a) if a.is_empty() => {}
                    _ => self.find(
                        FindingKind::WrongType,
                        format!("object, got {} {}", kind_of(v), shown(v)),
                    ),
                }
                return;
            }
            Type::ObjectArray => None,
            Type::StringArray => Some(Type::String),
            Type::IntegerArray => Some(Type::Integer),
            Type::NumberArray => Some(Type::Number),
            ty => {
                if scalar_fits(ty, v, lenient) {
                    self.enumeration(field, v);
                } else {
                    self.find(
                        FindingKind::WrongType,
                        format!("{ty}, got {} {}", kind_of(v), shown(v)),
                    );
                }
                return;
            }
        };
        if let (true, Some(ty), Value::String(text)) = (lenient, elem, v) {
            // a list in a query travels as its comma-joined text
            for piece in text.split(',') {
                let item = Value::String(piece.to_string());
                if !scalar_fits(ty, &item, true) {
                    self.find(
                        FindingKind::WrongType,
                        format!("{} (a list), got {}", field.ty, shown(v)),
                    );
                    return;
                }
                self.enumeration(field, &item);
            }
            return;
        }
        let Value::Array(items) = v else {
            self.find(
                FindingKind::WrongType,
                format!("{} (a list), got {} {}", field.ty, kind_of(v), shown(v)),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            self.at(Step::Index(i), |c| match elem {
                None => match item {
                    Value::Object(m) => {
                        c.object(&field.children, m, lenient, &[]);
                        c.one_of(&field.alternatives, m);
                    }
                    _ => c.find(
                        FindingKind::WrongType,
                        format!("object, got {} {}", kind_of(item), shown(item)),
                    ),
                },
                Some(ty) => {
                    if scalar_fits(ty, item, lenient) {
                        c.enumeration(field, item);
                    } else {
                        c.find(
                            FindingKind::WrongType,
                            format!("{ty}, got {} {}", kind_of(item), shown(item)),
                        );
                    }
                }
            });
        }
    }

    /// An object's groups of alternatives: one of each given (exactly one of an exclusive
    /// group); a member present as null or `""` is not given.
    #[inline]
    fn one_of(&mut self, groups: &[OneOf], m: &Map<String, Value>) {
        // most objects have no group: the check stays out of the walk's way
        if !groups.is_empty() {
            self.groups(groups, m);
        }
    }

    #[inline(never)]
    fn groups(&mut self, groups: &[OneOf], m: &Map<String, Value>) {
        for g in groups {
            let given: Vec<&str> = g
                .members
                .iter()
                .map(String::as_str)
                .filter(|k| {
                    !matches!(m.get(*k), None | Some(Value::Null))
                        && m.get(*k) != Some(&Value::String(String::new()))
                })
                .collect();
            if given.is_empty() {
                self.find(FindingKind::OneOf, format!("{} required", g.describe()));
            } else if g.exclusive && given.len() > 1 {
                self.find(
                    FindingKind::OneOf,
                    format!("{} allowed, got {}", g.describe(), given.join(" and ")),
                );
            }
        }
    }

    /// An object's fields against the documented ones; nothing is known of an object the page
    /// documents without fields.
    fn object(
        &mut self,
        fields: &'a [Field],
        m: &'a Map<String, Value>,
        lenient: bool,
        managed: &[&str],
    ) {
        if fields.is_empty() {
            return;
        }
        for f in fields {
            if f.name.contains('$') {
                for (k, v) in m.iter().filter(|(k, _)| f.matches(k)) {
                    self.at(Step::Key(k), |c| c.value(f, v, lenient));
                }
                continue;
            }
            match m.get(&f.name) {
                Some(v) => self.at(Step::Key(&f.name), |c| c.value(f, v, lenient)),
                None if f.required => self.at(Step::Key(&f.name), |c| {
                    c.find(FindingKind::Missing, expected_of(f))
                }),
                None => {}
            }
        }
        for k in m.keys() {
            if managed.contains(&k.as_str()) || fields.iter().any(|f| f.matches(k)) {
                continue;
            }
            let hint = nearest(fields, k);
            self.at(Step::Key(k), |c| c.find(FindingKind::Unknown, hint));
        }
    }
}

fn expected_of(f: &Field) -> String {
    let mut s = f.ty.to_string();
    if !f.label.is_empty() {
        s = format!("{s} ({})", f.label);
    }
    if !f.enumeration.is_empty() {
        s = format!("{s}, one of {}", f.enumeration.join(" | "));
    }
    s
}

/// "did you mean" among the documented names, or the list of them.
fn nearest(fields: &[Field], key: &str) -> String {
    let best = fields
        .iter()
        .map(|f| (distance(key, &f.name), f.name.as_str()))
        .min();
    match best {
        Some((d, name)) if d <= 2.max(key.len() / 4) => {
            format!("not documented here; did you mean `{name}`?")
        }
        _ => {
            let names: Vec<&str> = fields.iter().take(12).map(|f| f.name.as_str()).collect();
            let more = if fields.len() > 12 { ", …" } else { "" };
            format!(
                "not documented here; documented: {}{more}",
                names.join(", ")
            )
        }
    }
}

impl Operation {
    /// Checks a call's args (`{"out_order_no": …, "json": {…}, "query": {…}, "xml": {…}}`, the
    /// PHP-style args) as they go with the template itself: every `{placeholder}` must have a
    /// value. See [`Operation::validate_at`] for a call on a concrete path.
    ///
    /// ```
    /// use serde_json::json;
    /// use wechatpay_chain::catalog::{self, FindingKind};
    ///
    /// let op = catalog::find("PATCH", "v3/discount-card/orders/{out_order_no}").unwrap();
    /// let args = json!({"out_order_no": "1", "json": {"rewards": [{"count": "2"}]}});
    /// let f = op.validate(&args);
    /// assert!(f.iter().any(|f| f.kind == FindingKind::WrongType && f.pointer == "/json/rewards/0/count"));
    /// assert!(f.iter().any(|f| f.kind == FindingKind::Missing && f.pointer == "/json/rewards/0/reward_id"));
    /// ```
    pub fn validate(&self, args: &Value) -> Vec<Finding> {
        self.validate_at(self.template, args)
    }

    /// Checks a call's args for a call on `path` (template or concrete path): the placeholders
    /// the path already fills need no value in the args.
    ///
    /// What is checked: the documented top-level args (placeholders, `json`, `query`, `xml`,
    /// `security`, `base_uri`…) and every field under `json`, `query` and `xml`: required
    /// fields present, JSON types, enumerated values, no undocumented field (the client's own
    /// options and, in `xml`, `nonce_str` and `sign` it adds itself, are not undocumented).
    /// In `xml` and `query`, where every value travels as text, a number and its text stand
    /// for each other. `headers` are type-checked only (the client adds `Wechatpay-Serial`
    /// itself); `body` (uploads) is not looked into. A placeholder takes a string or a number.
    pub fn validate_at(&self, path: &str, args: &Value) -> Vec<Finding> {
        let empty = Map::new();
        let mut c = Check {
            path: Vec::new(),
            out: Vec::new(),
        };
        let top = match args {
            Value::Object(m) => m,
            Value::Null => &empty,
            other => {
                c.find(
                    FindingKind::WrongType,
                    format!("an object of args, got {} {}", kind_of(other), shown(other)),
                );
                return c.out;
            }
        };
        // the placeholders the path fills
        let tsegs = self.template.split('/');
        let psegs = super::clean(path).split('/');
        let bound: Vec<&str> =
            if super::clean(path).split('/').count() == self.template.split('/').count() {
                tsegs
                    .zip(psegs)
                    .filter(|(t, p)| t.starts_with('{') && !p.starts_with('{'))
                    .map(|(t, _)| &t[1..t.len() - 1])
                    .collect()
            } else {
                Vec::new()
            };
        let placeholders = self.placeholders();
        let mut stray: Vec<&str> = Vec::new();
        for f in &self.request {
            let is_ph = placeholders.contains(&f.name.as_str());
            let v = top.get(&f.name).filter(|v| !v.is_null());
            let Some(v) = v else {
                if is_ph && bound.contains(&f.name.as_str()) || f.name == "headers" {
                    continue;
                }
                if !(f.required || is_ph) {
                    continue;
                }
                let at_top: Vec<&str> = if matches!(f.name.as_str(), "json" | "xml" | "query") {
                    top.keys()
                        .map(String::as_str)
                        .filter(|k| {
                            !is_option(k)
                                && !placeholders.contains(k)
                                && !self.request.iter().any(|r| r.matches(k))
                                && f.children.iter().any(|ch| ch.matches(k))
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                c.at(Step::Key(&f.name), |c| {
                    if at_top.is_empty() {
                        c.find(FindingKind::Missing, expected_of(f));
                    } else {
                        c.find(
                            FindingKind::BodyMissing,
                            format!(
                                "the body's fields go inside `{}`, found at the top level: {}; write {{\"{}\": {{…}}}}",
                                f.name,
                                at_top.join(", "),
                                f.name
                            ),
                        );
                    }
                });
                stray.extend(at_top);
                continue;
            };
            c.at(Step::Key(&f.name), |c| match f.name.as_str() {
                "headers" => match v {
                    Value::Object(h) => {
                        for (k, hv) in h {
                            if let Some(doc) =
                                f.children.iter().find(|d| d.name.eq_ignore_ascii_case(k))
                            {
                                c.at(Step::Key(k), |c| c.value(doc, hv, true));
                            }
                        }
                    }
                    _ => c.find(
                        FindingKind::WrongType,
                        format!("object of headers, got {} {}", kind_of(v), shown(v)),
                    ),
                },
                "body" => {}
                // a query given as its encoded text
                "query" if v.is_string() => {}
                "xml" => match v {
                    Value::Object(m) => {
                        c.object(&f.children, m, true, XML_MANAGED);
                        c.one_of(&f.alternatives, m);
                    }
                    _ => c.value(f, v, true),
                },
                "query" => c.value(f, v, true),
                _ if is_ph => {
                    if matches!(v, Value::String(_) | Value::Number(_)) {
                        c.enumeration(f, v);
                    } else {
                        c.find(
                            FindingKind::WrongType,
                            format!(
                                "a string or number for the path's {{{}}}, got {} {}",
                                f.name,
                                kind_of(v),
                                shown(v)
                            ),
                        );
                    }
                }
                _ => c.value(f, v, false),
            });
        }
        // a placeholder the page's table does not list (`{empty}`, the trailing `/` of
        // `v3/ecommerce/applyments/{empty}`) is left to the client's placeholder check
        for k in top.keys() {
            let k = k.as_str();
            if is_option(k)
                || placeholders.contains(&k)
                || stray.contains(&k)
                || self.request.iter().any(|f| f.matches(k))
            {
                continue;
            }
            let hint = format!(
                "neither a placeholder of {} nor a documented arg or request option ({})",
                self.template,
                nearest(&self.request, k).trim_start_matches("not documented here; ")
            );
            c.at(Step::Key(k), |c| c.find(FindingKind::Unknown, hint));
        }
        c.out
    }
}
