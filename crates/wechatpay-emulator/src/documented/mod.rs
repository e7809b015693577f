//! Room 4, documented: the documented answers for the APIv3 operations no flow models, and
//! the value generator ([`Gen`]) the APIv2 documented answers and the notification events
//! share. May import: util, http, state.
//!
//! Documented answers for the APIv3 operations the emulator does not model: the request is
//! checked against the catalogue's request fields (required, JSON types, enumerations:
//! `400 PARAM_ERROR` naming the field in `detail`, as the modelled operations do), and the
//! answer holds every documented required response field with a value of its type and a
//! plausible shape, echoing the request's values for fields of the same name.
//!
//! Generated values are coherent: times placed around the sandbox's clock in their order
//! (creation, then a change of state, an expiry ahead), counts counting the list beside them,
//! amounts adding up, a state from its page's enumeration (or the nearest page's), never a
//! field's label.
//!
//! Same request, same values but for the times: every generated value derives from a SHA-256
//! of the method, the path and query, and the body; an enumerated one (a state) from the
//! identifiers of the object the request names, so the object keeps its state whichever
//! request asks. The exception is what RSA-OAEP makes random by design: a field documented as
//! encrypted (`by-rsa-pubkey`) is encrypted with the merchant's public key (the one the
//! emulator checks request signatures with), and its ciphertext differs from call to call
//! while its plaintext does not.

use std::sync::Arc;

use serde_json::{Map, Number, Value};
use wechatpay_chain::catalog::{self, Field, FindingKind, Operation, Protocol, Type};

use crate::http::answer::Answer;
use crate::http::multipart;
use crate::http::request::Req;
use crate::http::scheme;
use crate::http::validate;
use crate::state::rfc3339;
use crate::state::shared::Shared;

/// The documented answer to `req`, or `None` when no APIv3 operation of the catalogue has its
/// method and path (the caller answers 404).
pub(crate) fn answer(
    shared: &Arc<Shared>,
    req: &Req,
    multipart: Option<&multipart::Parts>,
) -> Option<Answer> {
    let raw_path = req.route.split(['?', '#']).next().unwrap_or("");
    let op = catalog::find(req.method.as_str(), raw_path)?;
    if op.protocol != Protocol::V3 {
        return None;
    }
    // an empty segment where the template has a documented placeholder (a client expanding a
    // missing placeholder to nothing) routes nowhere on the platform; `{empty}`, which gives a
    // few templates their trailing `/`, is no documented field
    let empty_placeholder = op
        .template
        .split('/')
        .zip(raw_path.trim_start_matches('/').split('/'))
        .find_map(|(t, p)| {
            let name = t.strip_prefix('{')?.strip_suffix('}')?;
            (p.is_empty() && op.request.iter().any(|f| f.name == name)).then_some(name)
        });
    if let Some(name) = empty_placeholder {
        return Some(Answer::error(
            404,
            "NOT_FOUND",
            format!(
                "the emulator has no operation {} {raw_path}: the segment of {{{name}}} in {} is empty (give \"{name}\" in the args)",
                req.method, op.template
            ),
        ));
    }
    Some(respond(shared, req, op, raw_path, multipart).unwrap_or_else(|a| a))
}

/// The catalogue's checks of a request to a modelled operation, as the documented answers make
/// them (required fields, JSON types, enumerations): `Err` with the `PARAM_ERROR` to answer.
pub(crate) fn check(req: &Req) -> Result<(), Answer> {
    let raw_path = req.route.split(['?', '#']).next().unwrap_or("");
    let Some(op) = catalog::find(req.method.as_str(), raw_path) else {
        return Ok(());
    };
    let args = args_of(req, op, raw_path, None)?;
    refusal(op, &args).map_or(Ok(()), Err)
}

fn respond(
    shared: &Arc<Shared>,
    req: &Req,
    op: &'static Operation,
    raw_path: &str,
    multipart: Option<&multipart::Parts>,
) -> Result<Answer, Answer> {
    let args = args_of(req, op, raw_path, multipart)?;
    if let Some(a) = refusal(op, &args) {
        return Err(a);
    }
    if op.unsigned {
        // the one undocumented-shape download (`v3/merchant-service/images/{media_id}`): an
        // image, unsigned as the platform sends it
        return Ok(Answer::file(bytes::Bytes::from_static(PNG_1X1)));
    }
    if op.response.is_empty() {
        return Ok(Answer::no_content());
    }
    let seed = openssl::sha::sha256(
        &[
            req.method.as_str().as_bytes(),
            b"\n",
            req.target.as_bytes(),
            b"\n",
            match multipart {
                Some(m) => &m.meta,
                None => &req.body,
            },
        ]
        .concat(),
    );
    let mut echo = Map::new();
    for key in ["placeholders", "query", "json"] {
        if let Some(v) = args.get(key) {
            collect(v, &mut echo);
        }
    }
    let identity = identity(&echo);
    let g = Gen {
        mchid: &shared.settings.mchid,
        answering: Some((shared, req)),
        seed,
        identity,
        echo,
        now: shared.clock.now(),
        template: op.template,
    };
    let context = args.get("json").and_then(Value::as_object);
    Ok(Answer::ok(Value::Object(g.object(
        &op.response,
        context,
        "",
    ))))
}

/// The request as the catalogue's args: placeholders (from the path), `query` and `json` (or
/// `body` for an upload), each only when the operation documents it.
fn args_of(
    req: &Req,
    op: &Operation,
    raw_path: &str,
    multipart: Option<&multipart::Parts>,
) -> Result<Map<String, Value>, Answer> {
    let mut args = Map::new();
    let mut placeholders = Map::new();
    let tsegs = op.template.split('/');
    let psegs = raw_path.trim_start_matches('/').split('/');
    for (t, p) in tsegs.zip(psegs) {
        if let Some(name) = t.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
            let v = crate::http::server::decode(p, false).unwrap_or_else(|| p.to_string());
            args.insert(name.to_string(), Value::String(v.clone()));
            if !v.is_empty() {
                placeholders.insert(name.to_string(), Value::String(v));
            }
        }
    }
    let documents = |name: &str| op.request.iter().any(|f| f.name == name);
    if documents("query") {
        let documented = op.request.iter().find(|f| f.name == "query");
        let boolean = |k: &str| {
            documented
                .and_then(|q| q.children.iter().find(|f| f.name == k))
                .is_some_and(|f| f.ty == Type::Boolean)
        };
        let mut q = Map::new();
        for (k, v) in &req.query {
            // a boolean travels as `1`/`0` from PHP's http_build_query (wechatpay-php)
            let v = match v.as_str() {
                "1" if boolean(k) => Value::Bool(true),
                "0" if boolean(k) => Value::Bool(false),
                _ => Value::String(v.clone()),
            };
            q.entry(k.clone()).or_insert(v);
        }
        args.insert("query".into(), Value::Object(q));
    }
    if documents("json") {
        let json = if let Some(m) = multipart {
            validate::object(&m.meta)?
        } else if req.body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            validate::object(&req.body)?
        };
        args.insert("json".into(), Value::Object(json));
    }
    if let Some(body) = op.request.iter().find(|f| f.name == "body") {
        if let Some(m) = multipart {
            upload(body, m)?;
            args.insert("body".into(), Value::Object(Map::new()));
        } else if !req.body.is_empty() {
            args.insert("body".into(), Value::Object(Map::new()));
        }
    }
    let mut all = args;
    all.insert("placeholders".into(), Value::Object(placeholders));
    Ok(all)
}

/// An upload's parts against the documented ones: a `file` part, and the `meta` JSON with its
/// required fields.
fn upload(body: &Field, m: &multipart::Parts) -> Result<(), Answer> {
    for part in body.children.iter().filter(|f| f.required) {
        match part.name.as_str() {
            "file" if m.file.is_none() => return Err(Answer::missing("/file", "body")),
            "meta" => {
                let meta = validate::object(&m.meta)?;
                for f in part.children.iter().filter(|f| f.required) {
                    if meta.get(&f.name).is_none_or(Value::is_null) {
                        return Err(Answer::missing(&format!("/meta/{}", f.name), "body"));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The first thing the platform refuses in the args: a required field missing, a value of
/// the wrong type or outside its enumeration (undocumented fields are let through, as the
/// platform does).
fn refusal(op: &Operation, args: &Map<String, Value>) -> Option<Answer> {
    let mut checked = args.clone();
    checked.remove("placeholders");
    let checked = Value::Object(checked);
    let findings = op.validate_at(op.template, &checked);
    // what the platform receives: the path, the query and the body (not `base_uri`, which
    // only picks the host; the headers are checked before dispatch)
    let sent = |p: &str| {
        ["/json", "/query", "/body"]
            .iter()
            .any(|w| p == *w || p.starts_with(&format!("{w}/")))
            || op
                .placeholders()
                .iter()
                .any(|ph| p.strip_prefix('/') == Some(ph))
    };
    let f = findings.iter().find(|f| {
        matches!(
            f.kind,
            FindingKind::Missing
                | FindingKind::BodyMissing
                | FindingKind::WrongType
                | FindingKind::NotInEnumeration
                | FindingKind::OneOf
        ) && sent(&f.pointer)
    })?;
    let (location, field) = located(&f.pointer, op);
    Some(match f.kind {
        FindingKind::Missing | FindingKind::BodyMissing => Answer::param_error(
            &field,
            location,
            format!(
                "missing required field {} ({})",
                field.trim_start_matches('/'),
                f.expected
            ),
            Value::Null,
        ),
        // none of a group, or two of an exclusive one: the platform names the group
        FindingKind::OneOf => {
            Answer::param_error(&field, location, f.expected.clone(), Value::Null)
        }
        _ => Answer::param_error(
            &field,
            location,
            format!("{}: expected {}", field.trim_start_matches('/'), f.expected),
            checked.pointer(&f.pointer).cloned().unwrap_or(Value::Null),
        ),
    })
}

/// A finding's pointer into the args as the platform's `detail`: where (`body`, `query`,
/// `path`) and the field's pointer there (`/amount/total`).
fn located(pointer: &str, op: &Operation) -> (&'static str, String) {
    let rest = |p: &str| {
        if p.is_empty() {
            "/".to_string()
        } else {
            p.to_string()
        }
    };
    if let Some(p) = pointer.strip_prefix("/json") {
        ("body", rest(p))
    } else if let Some(p) = pointer.strip_prefix("/body") {
        ("body", rest(p))
    } else if let Some(p) = pointer.strip_prefix("/query") {
        ("query", rest(p))
    } else if op
        .placeholders()
        .iter()
        .any(|ph| pointer.strip_prefix('/') == Some(ph))
    {
        ("path", pointer.to_string())
    } else {
        ("body", rest(pointer))
    }
}

/// The request's values by field name, for the answer to echo: the placeholders, the query,
/// the body's top-level fields, then the fields nested in it (the first of a name wins).
fn collect(v: &Value, out: &mut Map<String, Value>) {
    let Value::Object(m) = v else { return };
    for (k, v) in m {
        if !v.is_object() && !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    for v in m.values() {
        match v {
            Value::Object(_) => collect(v, out),
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
}

/// What names the object a request is about, hashed: the merchant's numbers for it
/// (`out_bill_no`, `out_refund_no` …) when the request has any, else its other identifiers
/// (`transfer_bill_no`, `coupon_id` …: fields ending in `_no` or `_id`, merchant and app ids
/// aside); `None` when it names none (a list, a query by dates).
fn identity(echo: &Map<String, Value>) -> Option<[u8; 32]> {
    let ids = |merchants: bool| -> Vec<String> {
        echo.iter()
            .filter(|(k, _)| {
                (k.ends_with("_no") || k.ends_with("_id"))
                    && !k.contains("mchid")
                    && !k.contains("appid")
                    && (!merchants || k.starts_with("out_"))
            })
            .filter_map(|(k, v)| Some(format!("{k}={}\n", v.as_str()?)))
            .collect()
    };
    let mut named = ids(true);
    if named.is_empty() {
        named = ids(false);
    }
    (!named.is_empty()).then(|| openssl::sha::sha256(named.concat().as_bytes()))
}

/// The value generator of answers, also used for notifications' resources (`events`).
pub(crate) struct Gen<'a> {
    /// The merchant's id, for `mchid` and `sp_mchid`.
    pub(crate) mchid: &'a str,
    /// The request answered, whose keys encrypt the `by-rsa-pubkey` fields; `None` (a
    /// notification) leaves them in clear.
    pub(crate) answering: Option<(&'a Arc<Shared>, &'a Req)>,
    /// Every generated value derives from it…
    pub(crate) seed: [u8; 32],
    /// …but a state or another enumerated value, from the object's identifiers when the
    /// request names one ([`identity`]): the same object is in the same state whichever
    /// request asks (a query with other parameters, another operation on it).
    pub(crate) identity: Option<[u8; 32]>,
    /// Values echoed for fields of the same name.
    pub(crate) echo: Map<String, Value>,
    /// The sandbox's clock (Unix seconds): generated times are placed around it.
    pub(crate) now: i64,
    /// The operation answered (`""` for a notification): a state or type its page does not
    /// enumerate takes the values of the same field on the nearest page that does.
    pub(crate) template: &'a str,
}

/// When a generated time falls, relative to the object's creation and the sandbox's clock.
#[derive(Clone, Copy, PartialEq, Debug)]
enum When {
    /// The creation (or acceptance, submission, start): a little before the clock.
    Created,
    /// An expiry, an end of validity, a deadline: after creation, ahead of the clock.
    Ahead,
    /// Anything else (a success, a change of state): between creation and the clock.
    Since,
}

/// The kind of time a field holds, by its name.
fn when(name: &str) -> When {
    let n = name.to_ascii_lowercase();
    let any = |words: &[&str]| words.iter().any(|w| n.contains(w));
    if any(&[
        "expire",
        "deadline",
        "invalid",
        "end_time",
        "end_date",
        "over_time",
    ]) {
        When::Ahead
    } else if any(&[
        "create",
        "accept",
        "apply",
        "submit",
        "initiate",
        "begin",
        "start",
        "receive",
        "register",
        "upload",
        "complaint",
        "effective",
        "add_time",
        "build",
    ]) {
        When::Created
    } else {
        When::Since
    }
}

impl Gen<'_> {
    /// A number derived from the request and the field's place in the answer.
    fn hash(&self, at: &str) -> u64 {
        let h = openssl::sha::sha256(&[&self.seed[..], at.as_bytes()].concat());
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }

    /// One of `values` for the field at `at`. With the object's identity, the value whose
    /// hash with it ranks highest (rendezvous hashing): two pages enumerating the same state
    /// a little differently still agree on an object's state when it is in both lists.
    fn pick<'v>(&self, values: &'v [String], at: &str) -> &'v String {
        let Some(id) = self.identity else {
            return &values[(self.hash(at) % values.len() as u64) as usize];
        };
        let rank = |v: &String| {
            openssl::sha::sha256(&[&id[..], at.as_bytes(), b"\n", v.as_bytes()].concat())
        };
        values.iter().max_by_key(|v| rank(v)).unwrap_or(&values[0])
    }

    /// When the answer's objects were created: 1 to 60 minutes before the sandbox's clock
    /// (the same offset for the same request).
    fn created(&self) -> i64 {
        self.now - 60 - (self.hash("#created") % 3540) as i64
    }

    /// A time of the kind `when` names, for the field's hash `h`: creation a little before
    /// the clock, a change of state between it and the clock, an expiry 1 to 60 days ahead.
    fn time(&self, when: When, h: u64) -> i64 {
        let created = self.created();
        match when {
            When::Created => created,
            When::Since => created + (h % (self.now - created + 1) as u64) as i64,
            When::Ahead => self.now + 86_400 + (h % (59 * 86_400)) as i64,
        }
    }

    pub(crate) fn object(
        &self,
        fields: &[Field],
        context: Option<&Map<String, Value>>,
        at: &str,
    ) -> Map<String, Value> {
        let mut out = Map::new();
        let mut generated = Vec::new();
        for f in fields {
            if f.name.contains('$') {
                continue;
            }
            let at = format!("{at}/{}", f.name);
            let given = context
                .and_then(|c| c.get(&f.name))
                .or_else(|| self.echo.get(&f.name));
            // only the figures `coherent_amounts` may adjust need to know whether they echo
            if AMOUNT_FIGURES.contains(&f.name.as_str())
                && given.and_then(|g| fitting(f, g)).is_none()
            {
                generated.push(f.name.as_str());
            }
            if let Some(v) = self.field(f, given, &at) {
                out.insert(f.name.clone(), v);
            }
        }
        coherent_amounts(&mut out, &generated);
        self.coherent_counts(fields, &mut out, at);
        out
    }

    /// `total_count` (and `count` beside it or beside `offset`: a page's) and the one list
    /// they count: the list is there (one generated item when nothing was echoed), `count` is
    /// its length, `total_count` that plus `offset` (the items before this page). A `count`
    /// alone is something else's (a reward's, an objective's).
    fn coherent_counts(&self, fields: &[Field], out: &mut Map<String, Value>, at: &str) {
        if !paged(fields) {
            return;
        }
        let mut lists = fields.iter().filter(|f| {
            matches!(
                f.ty,
                Type::ObjectArray | Type::StringArray | Type::IntegerArray | Type::NumberArray
            )
        });
        let (Some(list), None) = (lists.next(), lists.next()) else {
            return;
        };
        if !out.contains_key(&list.name) {
            let mut required = list.clone();
            required.required = true;
            if let Some(v) = self.field(&required, None, &format!("{at}/{}", list.name)) {
                out.insert(list.name.clone(), v);
            }
        }
        let len = out
            .get(&list.name)
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as i64;
        let offset = out.get("offset").and_then(Value::as_i64).unwrap_or(0);
        for (name, n) in [("count", len), ("total_count", offset + len)] {
            if let Some(v) = out.get_mut(name).filter(|v| v.is_number()) {
                *v = Value::from(n);
            }
        }
    }

    /// The value of `f`: the request's value of the same name when it fits, a generated one
    /// for a required field, nothing for an optional one without an echo.
    fn field(&self, f: &Field, given: Option<&Value>, at: &str) -> Option<Value> {
        match f.ty {
            Type::Object => {
                let ctx = given.and_then(Value::as_object);
                if !f.required && ctx.is_none() {
                    return None;
                }
                Some(Value::Object(self.object(&f.children, ctx, at)))
            }
            Type::ObjectArray => {
                let items: Vec<&Map<String, Value>> = match given {
                    Some(Value::Array(a)) => {
                        a.iter().filter_map(Value::as_object).take(10).collect()
                    }
                    _ => Vec::new(),
                };
                if items.is_empty() {
                    if !f.required {
                        return None;
                    }
                    return Some(Value::Array(vec![Value::Object(self.object(
                        &f.children,
                        None,
                        &format!("{at}/0"),
                    ))]));
                }
                Some(Value::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, c)| {
                            Value::Object(self.object(&f.children, Some(c), &format!("{at}/{i}")))
                        })
                        .collect(),
                ))
            }
            _ => {
                if f.encrypted.is_some() {
                    if !f.required && given.is_none() {
                        return None;
                    }
                    return Some(self.encrypted(f, given, at));
                }
                if let Some(v) = given.and_then(|g| fitting(f, g)) {
                    return Some(v);
                }
                f.required.then(|| self.scalar(f, at))
            }
        }
    }

    /// An encrypted field: its plaintext (the request's, decrypted with the platform key when
    /// the request sent it encrypted; else generated) encrypted for the merchant, as the
    /// platform encrypts what it returns.
    fn encrypted(&self, f: &Field, given: Option<&Value>, at: &str) -> Value {
        let Some((shared, req)) = self.answering else {
            return given.cloned().unwrap_or_else(|| self.scalar(f, at));
        };
        let named = req
            .headers
            .get("wechatpay-serial")
            .and_then(|v| v.to_str().ok());
        let (key, _) = shared.settings.signer_for(named);
        let plain = match given {
            Some(Value::String(s)) => {
                match scheme::decrypt_field(shared.settings.scheme, s, &key) {
                    Ok(p) => String::from_utf8(p).unwrap_or_else(|_| s.clone()),
                    Err(_) => s.clone(),
                }
            }
            _ => match self.scalar(f, at) {
                Value::String(s) => s,
                other => other.to_string(),
            },
        };
        let merchant = &shared.settings.merchant_key;
        match scheme::encrypt_field(shared.settings.scheme, plain.as_bytes(), merchant) {
            Ok(c) => Value::String(c),
            // a plaintext too long for the key: the documented plaintext rather than nothing
            Err(_) => Value::String(plain),
        }
    }

    fn scalar(&self, f: &Field, at: &str) -> Value {
        let h = self.hash(at);
        let one = |ty: Type| -> Value {
            if !f.enumeration.is_empty() {
                let e = self.pick(&f.enumeration, at);
                return match ty {
                    Type::Integer => e.parse::<i64>().map(Value::from).unwrap_or(Value::from(0)),
                    Type::Number => number(e).unwrap_or(Value::from(0.0)),
                    Type::Boolean => Value::Bool(e == "true"),
                    _ => Value::String(e.clone()),
                };
            }
            match ty {
                Type::Integer => Value::from(self.integer(f, h)),
                // the pages write `number` for amounts in fen and counts, which the platform
                // sends as integers; only a rate or a coordinate has a fraction
                Type::Number if !fractional(&f.name) => Value::from(self.integer(f, h)),
                Type::Number => Number::from_f64((h % 100_000) as f64 / 100.0)
                    .map(Value::Number)
                    .unwrap_or(Value::from(0.0)),
                Type::Boolean => Value::Bool(h & 1 == 0),
                Type::True => Value::Bool(true),
                _ => Value::String(self.string(f, h, at)),
            }
        };
        match f.ty {
            Type::StringArray => Value::Array(vec![one(Type::String)]),
            Type::IntegerArray => Value::Array(vec![one(Type::Integer)]),
            Type::NumberArray => Value::Array(vec![one(Type::Number)]),
            ty => one(ty),
        }
    }

    /// A string plausible for the field's name and label.
    fn string(&self, f: &Field, h: u64, at: &str) -> String {
        let name = f.name.to_ascii_lowercase();
        let hex = format!("{h:016X}");
        let digits = |n: usize| -> String {
            let mut s = String::with_capacity(n);
            let mut x = h;
            let mut more = self.hash(&name);
            for _ in 0..n {
                if x == 0 {
                    x = more;
                    more = more.rotate_left(17) ^ 0x9E37_79B9_7F4A_7C15;
                }
                s.push(char::from(b'0' + (x % 10) as u8));
                x /= 10;
            }
            s
        };
        if name == "mchid" || name == "sp_mchid" {
            return self.mchid.to_string();
        }
        if name.ends_with("mchid") || name.ends_with("mch_id") {
            return format!("19{}", digits(8));
        }
        if name.ends_with("appid") {
            return format!("wx{}", hex.to_ascii_lowercase());
        }
        if name.ends_with("openid") {
            return format!("o{}", base62(&self.hash(&format!("{name}#openid")), 27));
        }
        if name.ends_with("time") || name.ends_with("_at") {
            return rfc3339(self.time(when(&name), h));
        }
        if name.ends_with("date") || f.label.contains("日期") {
            return rfc3339(self.time(when(&name), h))[..10].to_string();
        }
        if name.ends_with("currency") || f.label.contains("币种") || f.label.contains("货币") {
            return "CNY".into();
        }
        if name.contains("url") {
            return format!("https://pay.weixin.qq.com/sandbox/{name}/{}", &hex[..8]);
        }
        if name.contains("amount") || name.contains("fee") || name.contains("price") {
            return (1 + h % 99_999).to_string();
        }
        if name.contains("phone") || name.contains("mobile") {
            return format!("138{}", digits(8));
        }
        if name.contains("email") {
            return format!("sandbox{}@example.com", &hex[..6].to_ascii_lowercase());
        }
        if name == "transaction_id" {
            return format!("4200{}", digits(24));
        }
        if name.starts_with("out_") {
            return format!("SANDBOX{hex}");
        }
        if name.ends_with("_id") || name.ends_with("_no") || name == "id" {
            return digits(28);
        }
        if name.ends_with("code") || name.ends_with("token") || name.ends_with("key") {
            return hex;
        }
        if coded(&name) {
            // a state or type its page does not enumerate: the values the same field has on
            // the nearest page that does, else a code (never the label, which describes it)
            if let Some(e) = borrowed(&f.name, &f.label, self.template) {
                return self.pick(e, at).clone();
            }
            return if ["state", "status", "result"]
                .iter()
                .any(|w| name.ends_with(w))
            {
                "SUCCESS".into()
            } else {
                name.to_ascii_uppercase()
            };
        }
        format!("{name}_{}", &hex[..8].to_ascii_lowercase())
    }

    /// An integer plausible for the field: amounts in fen, counts and pages small, times
    /// Unix seconds around the sandbox's clock (a time of day, `当天…时间`, seconds in it).
    fn integer(&self, f: &Field, h: u64) -> i64 {
        let n = f.name.to_ascii_lowercase();
        let h = h % 1_000_000_007;
        if n.ends_with("time") || n.contains("timestamp") {
            if f.label.contains("当天") {
                // the start in the morning, the end in the afternoon
                let half = (h % 43_200) as i64;
                return if n.contains("end") {
                    43_200 + half
                } else {
                    half
                };
            }
            return self.time(when(&n), h);
        }
        integer(&n, h)
    }
}

/// The figures of an amount object that [`coherent_amounts`] makes agree.
const AMOUNT_FIGURES: [&str; 4] = ["total", "refund", "payer_total", "payer_refund"];

/// An amount object's generated figures made to agree with each other and with what was echoed:
/// a refund no larger than the total, the payer's figures equal to the order's (no discount).
fn coherent_amounts(out: &mut Map<String, Value>, generated: &[&str]) {
    let int = |out: &Map<String, Value>, k: &str| out.get(k).and_then(Value::as_i64);
    let made = |k: &str| generated.contains(&k);
    if let (Some(total), Some(refund)) = (int(out, "total"), int(out, "refund")) {
        if refund > total {
            if made("refund") {
                out.insert("refund".into(), Value::from(1 + refund % total.max(1)));
            } else if made("total") {
                out.insert("total".into(), Value::from(refund));
            }
        }
    }
    for (payer, of) in [("payer_total", "total"), ("payer_refund", "refund")] {
        if let (true, Some(v)) = (made(payer) && out.contains_key(payer), int(out, of)) {
            out.insert(
                payer.into(),
                Value::from(v.min(int(out, "total").unwrap_or(v))),
            );
        }
    }
}

/// Whether `fields` are a page of a list: a `total_count`, or a `count` beside an `offset`.
fn paged(fields: &[Field]) -> bool {
    let has = |n: &str| fields.iter().any(|f| f.name == n);
    has("total_count") || (has("count") && has("offset"))
}

/// Whether a string field holds a code of a few values (a state, a type, a result), by its
/// name: never free text.
fn coded(name: &str) -> bool {
    ["state", "status", "type", "result", "mode"]
        .iter()
        .any(|w| name.ends_with(w))
}

/// The enumeration of the field named `name` on the page nearest `template` that enumerates
/// it (the same label first, then the most path segments in common, then the closest in
/// length): the catalogue's
/// response fields, indexed once.
fn borrowed(name: &str, label: &str, template: &str) -> Option<&'static [String]> {
    type Index = std::collections::HashMap<&'static str, Vec<(&'static str, &'static Field)>>;
    static INDEX: std::sync::OnceLock<Index> = std::sync::OnceLock::new();
    let index = INDEX.get_or_init(|| {
        fn walk(template: &'static str, fields: &'static [Field], index: &mut Index) {
            for f in fields {
                if !f.enumeration.is_empty() {
                    index.entry(&f.name).or_default().push((template, f));
                }
                walk(template, &f.children, index);
            }
        }
        let mut index = Index::new();
        for op in catalog::operations() {
            walk(op.template, &op.response, &mut index);
        }
        index
    });
    let ours: Vec<&str> = template.split('/').collect();
    // segments in common, then the fewest segments not in common
    let nearness = |t: &str| {
        let shared = t.split('/').filter(|s| ours.contains(s)).count();
        (
            shared,
            std::cmp::Reverse(t.split('/').count().abs_diff(ours.len())),
        )
    };
    index
        .get(name)?
        .iter()
        .max_by_key(|(t, f)| (f.label == label, nearness(t)))
        .map(|(_, f)| f.enumeration.as_slice())
}

/// Whether a `number` field is one with a fraction (a rate, a ratio, a coordinate).
fn fractional(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["rate", "ratio", "percent", "latitude", "longitude", "score"]
        .iter()
        .any(|w| n.contains(w))
}

/// An integer plausible for the field's name: amounts in fen, counts and pages small.
fn integer(n: &str, h: u64) -> i64 {
    let h = (h % 1_000_000_007) as i64;
    if n == "offset" {
        0
    } else if n == "limit" {
        10
    } else if n.contains("count")
        || n.contains("num")
        || n.ends_with("quantity")
        || n.ends_with("times")
    {
        1 + h % 10
    } else {
        1 + h % 99_999
    }
}

/// The request's value for `f` when it has `f`'s type (query values, text, stand for numbers
/// and booleans) and is in `f`'s enumeration.
fn fitting(f: &Field, v: &Value) -> Option<Value> {
    let in_enum = |s: &str| f.enumeration.is_empty() || f.enumeration.iter().any(|e| e == s);
    // a time is echoed only when it is one (`2026-01-07T12:30:00+08:00`)
    let name = f.name.to_ascii_lowercase();
    if f.ty == Type::String && (name.ends_with("time") || name.ends_with("_at")) {
        let s = v.as_str()?;
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !b[..4].iter().all(u8::is_ascii_digit) {
            return None;
        }
    }
    let scalar = |ty: Type, v: &Value| -> Option<Value> {
        let out = match (ty, v) {
            (Type::String | Type::Any, Value::String(_)) => v.clone(),
            (Type::String | Type::Any, Value::Number(n)) => Value::String(n.to_string()),
            (Type::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
            (Type::Integer, Value::String(s)) => Value::from(s.parse::<i64>().ok()?),
            (Type::Number, Value::Number(_)) => v.clone(),
            (Type::Number, Value::String(s)) => number(s)?,
            (Type::Boolean, Value::Bool(_)) => v.clone(),
            (Type::Boolean, Value::String(s)) if s == "true" || s == "false" => {
                Value::Bool(s == "true")
            }
            (Type::True, Value::Bool(true)) => v.clone(),
            _ => return None,
        };
        let text = match &out {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        in_enum(&text).then_some(out)
    };
    let elem = match f.ty {
        Type::StringArray => Type::String,
        Type::IntegerArray => Type::Integer,
        Type::NumberArray => Type::Number,
        ty => return scalar(ty, v),
    };
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        // a list in a query travels as its comma-joined text
        Value::String(s) => s.split(',').map(|p| Value::String(p.to_string())).collect(),
        _ => return None,
    };
    items
        .iter()
        .map(|i| scalar(elem, i))
        .collect::<Option<Vec<_>>>()
        .map(Value::Array)
}

/// A number as written: `1` stays an integer (as an enumeration lists it), `1.5` a float.
fn number(s: &str) -> Option<Value> {
    match s.parse::<i64>() {
        Ok(i) => Some(Value::from(i)),
        Err(_) => Number::from_f64(s.parse::<f64>().ok()?).map(Value::Number),
    }
}

fn base62(seed: &u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut x = *seed;
    (0..n)
        .map(|i| {
            if x < 62 {
                x = seed.rotate_left((i * 7) as u32) | 0x8000_0000_0000_0000;
            }
            let c = ALPHABET[(x % 62) as usize];
            x /= 62;
            char::from(c)
        })
        .collect()
}

/// A 1×1 transparent PNG: the image the emulator hands out for an image download.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_in_china_standard_time() {
        assert_eq!(rfc3339(0), "1970-01-01T08:00:00+08:00");
        // 2024-02-29T23:59:59+08:00, a leap day
        assert_eq!(rfc3339(1_709_222_399), "2024-02-29T23:59:59+08:00");
    }

    #[test]
    fn echoes_only_values_of_the_documented_type_and_enumeration() {
        let op = catalog::find("GET", "v3/marketing/favor/stocks").unwrap();
        let limit = op.response.iter().find(|f| f.name == "limit").unwrap();
        assert_eq!(fitting(limit, &Value::from("20")), Some(Value::from(20)));
        assert_eq!(fitting(limit, &Value::from("x")), None);
        let data = op.response.iter().find(|f| f.name == "data").unwrap();
        let status = data.children.iter().find(|f| f.name == "status").unwrap();
        assert_eq!(
            fitting(status, &Value::from("running")),
            Some(Value::from("running"))
        );
        assert_eq!(fitting(status, &Value::from("RUNNING")), None);
    }
}
