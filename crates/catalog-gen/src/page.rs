//! Reading one documentation page: its method sections, their request and response tables, and
//! the facts of each table row.

use serde_json::{Map, Value};

/// Something the generator could not read, or read with a correction.
pub struct Issue {
    pub page: String,
    pub what: String,
}

pub enum Outcome {
    /// A page with no operation or event (an index, a redirect).
    Skipped(String),
    Read {
        operations: Vec<Operation>,
        event: Option<Event>,
        sections: usize,
        failed: Vec<Issue>,
        notes: Vec<Issue>,
    },
}

#[derive(Clone)]
pub struct Field {
    pub name: String,
    pub ty: String,
    pub required: bool,
    pub label: String,
    pub enums: Vec<String>,
    pub encrypted: Option<String>,
    pub children: Vec<Field>,
    /// One-of groups of the children (from `catalog/alternatives.tsv`).
    pub groups: Vec<crate::alternatives::Group>,
    /// Whether the description says the field is one of several (二选一…).
    pub worded: bool,
}

impl Field {
    /// `[name, type, required, label, enumeration, encrypted, children, groups]`, the trailing
    /// defaults left out: type `""` is `string`, `"any"` is a type the page does not state;
    /// required is 1 or 0; no enumeration, no encryption are 0; a group is `["any"|"one",
    /// member, …]` (at least one, exactly one of the children named).
    fn to_json(&self) -> Value {
        let ty = match self.ty.as_str() {
            "string" => "",
            "" => "any",
            t => t,
        };
        let mut a: Vec<Value> = vec![
            self.name.clone().into(),
            ty.into(),
            u8::from(self.required).into(),
            self.label.clone().into(),
            if self.enums.is_empty() {
                0.into()
            } else {
                self.enums.clone().into()
            },
            match &self.encrypted {
                Some(x) => x.clone().into(),
                None => 0.into(),
            },
            fields_json(&self.children),
            Value::Array(
                self.groups
                    .iter()
                    .map(|g| {
                        let mut a: Vec<Value> = vec![g.kind.as_str().into()];
                        a.extend(g.members.iter().map(|m| Value::from(m.clone())));
                        Value::Array(a)
                    })
                    .collect(),
            ),
        ];
        while a.len() > 1 {
            let last = &a[a.len() - 1];
            let default = match last {
                Value::Number(n) => n.as_u64() == Some(0),
                Value::String(s) => s.is_empty(),
                Value::Array(v) => v.is_empty(),
                _ => false,
            };
            if !default {
                break;
            }
            a.pop();
        }
        Value::Array(a)
    }
}

fn fields_json(f: &[Field]) -> Value {
    Value::Array(f.iter().map(Field::to_json).collect())
}

pub struct Operation {
    pub protocol: u8,
    pub method: &'static str,
    pub template: String,
    pub label: String,
    pub security: bool,
    pub unsigned: bool,
    pub request: Vec<Field>,
    pub response: Vec<Field>,
}

impl Operation {
    /// One line of `operations.jsonl`. `m` and `p` come first: the library indexes the lines by
    /// reading only that prefix.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("m".into(), self.method.into());
        m.insert("p".into(), self.template.clone().into());
        m.insert("v".into(), self.protocol.into());
        m.insert("l".into(), self.label.clone().into());
        if self.security {
            m.insert("sec".into(), true.into());
        }
        if self.unsigned {
            m.insert("uns".into(), true.into());
        }
        m.insert("req".into(), fields_json(&self.request));
        m.insert("res".into(), fields_json(&self.response));
        Value::Object(m)
    }
}

pub struct Event {
    pub protocol: u8,
    pub kind: String,
    pub label: String,
    pub resource_type: Option<String>,
    pub encrypted: Option<String>,
    pub resources: Vec<Vec<Field>>,
}

impl Event {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), self.kind.clone().into());
        m.insert("v".into(), self.protocol.into());
        m.insert("l".into(), self.label.clone().into());
        if let Some(r) = &self.resource_type {
            m.insert("rt".into(), r.clone().into());
        }
        if let Some(x) = &self.encrypted {
            m.insert("x".into(), x.clone().into());
        }
        m.insert(
            "res".into(),
            Value::Array(self.resources.iter().map(|r| fields_json(r)).collect()),
        );
        Value::Object(m)
    }
}

/// A table row: the name cell's marks, the type cell and its marks, the description.
struct Row {
    name: String,
    ty: String,
    required: bool,
    indent: usize,
    encrypted: Option<String>,
    desc: String,
    separator: bool,
    /// Whether the name cell states its `data-indent` (a row without one is at the top).
    indented: bool,
    /// A string holding JSON (`data-encoded=by-json_encode`): a table of the JSON's fields may
    /// follow it, after a separator.
    encoded: bool,
}

/// Splits a `{…}` attribute list at the end of a cell: (text, attributes).
fn split_attrs(cell: &str) -> (&str, Vec<(String, Option<String>)>) {
    let cell = cell.trim();
    let Some(open) = cell.find('{') else {
        return (cell, Vec::new());
    };
    if !cell.ends_with('}') {
        return (cell, Vec::new());
    }
    let inner = &cell[open + 1..cell.len() - 1];
    let mut attrs = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut toks = Vec::new();
    for ch in inner.chars() {
        match ch {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    toks.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        toks.push(cur);
    }
    for t in toks {
        match t.split_once('=') {
            Some((k, v)) => attrs.push((k.to_string(), Some(v.to_string()))),
            None => attrs.push((t, None)),
        }
    }
    (cell[..open].trim(), attrs)
}

/// The cells of a table line, split at `|` not escaped as `\|`.
fn cells(line: &str) -> Vec<String> {
    let body = line.trim().strip_prefix('|').unwrap_or(line);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'|') {
            cur.push('|');
            chars.next();
        } else if c == '|' {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    out.push(cur);
    // a row ends without a `|`; a description with an unescaped `|` is joined back
    if out.len() > 3 {
        let rest = out.split_off(2).join("|");
        out.push(rest);
    }
    out
}

const TYPES: &[&str] = &[
    "string",
    "integer",
    "number",
    "boolean",
    "object",
    "object[]",
    "string[]",
    "integer[]",
    "number[]",
    "true",
];

fn parse_row(line: &str, notes: &mut Vec<String>) -> Option<Row> {
    let c = cells(line);
    let (name, attrs) = split_attrs(c.first().map(String::as_str).unwrap_or(""));
    let separator = attrs.iter().any(|(k, _)| k == ".im-table-line");
    // a row across the table saying the answer has no fields (an empty body, a file, a redirect)
    let spans = attrs.iter().any(|(k, _)| k == "colspan");
    if spans && !separator && c.len() == 1 {
        return None;
    }
    if separator {
        return Some(Row {
            name: String::new(),
            ty: String::new(),
            required: false,
            indent: 0,
            encrypted: None,
            desc: String::new(),
            separator,
            indented: false,
            encoded: false,
        });
    }
    if c.len() < 2 {
        notes.push(format!(
            "row `{}` has {} cell, not 3: left out",
            short(line),
            c.len()
        ));
        return None;
    }
    let mut required = false;
    let mut indent = 0;
    let mut indented = false;
    for (k, v) in &attrs {
        match (k.as_str(), v) {
            ("data-required", _) => required = true,
            ("data-indent", Some(n)) => match n.parse() {
                Ok(n) => {
                    indent = n;
                    indented = true;
                }
                Err(_) => notes.push(format!("row `{name}`: indent {n:?} is not a number")),
            },
            _ => {}
        }
    }
    let mut name = name.to_string();
    if name.contains(char::is_whitespace) {
        let fixed: String = name.chars().filter(|c| !c.is_whitespace()).collect();
        notes.push(format!("field name `{name}` read as `{fixed}`"));
        name = fixed;
    }
    if name.is_empty() {
        notes.push(format!("row `{}` names no field: left out", short(line)));
        return None;
    }
    let (ty, tattrs) = split_attrs(&c[1]);
    let encrypted = tattrs
        .iter()
        .find(|(k, _)| k == "data-encrypted")
        .and_then(|(_, v)| v.clone());
    let encoded = tattrs.iter().any(|(k, _)| k == "data-encoded");
    let ty = ty.trim().trim_matches('`');
    let desc = c.get(2).map(|d| d.trim().to_string()).unwrap_or_default();
    let ty = match ty {
        // a number the page says is in fen, or whole: the platform takes an integer
        "number" | "number[]" if in_fen(&desc) => {
            notes.push(format!(
                "field `{name}`: type `{ty}` read as `{}`: its description says fen or whole",
                ty.replace("number", "integer")
            ));
            ty.replace("number", "integer")
        }
        // an amount the page types `number` without a unit: the platform's amounts are
        // integers in fen (its pages say so where they state a unit; the Go SDK's models type
        // them int64), so `1.5` is refused before it is sent
        "number" | "number[]" if is_amount(&name, &desc) => {
            notes.push(format!(
                "field `{name}`: type `{ty}` read as `{}`: an amount, in fen",
                ty.replace("number", "integer")
            ));
            ty.replace("number", "integer")
        }
        t if TYPES.contains(&t) => t.to_string(),
        "float" => "number".to_string(),
        "" | "--" => String::new(),
        other => {
            notes.push(format!(
                "field `{name}`: type `{}` is not a JSON type, read as any",
                short(other)
            ));
            String::new()
        }
    };
    Some(Row {
        name,
        ty,
        required,
        indent,
        encrypted,
        desc,
        separator,
        indented,
        encoded,
    })
}

/// Whether a description says its number is in fen (单位为分, 单位：分, （分）) or whole
/// (只能为整数): minutes (分钟) are not fen.
fn in_fen(desc: &str) -> bool {
    const WORDS: &[&str] = &[
        "单位为分",
        "单位：分",
        "单位:分",
        "单位分",
        "以分为单位",
        "（分）",
        "(分)",
        "只能为整数",
    ];
    WORDS.iter().any(|w| {
        desc.match_indices(w)
            .any(|(i, _)| !desc[i + w.len()..].starts_with('钟'))
    })
}

/// Whether a `number` field is an amount of money: its description names one (金额, 价格,
/// 单价, 原价, 出资), or its name does (`amount`, `total`, `refund`, `price`, `*_amount`,
/// `*_fee`, …) and its description counts nothing (数, 笔, 条, 次, 量). Never one whose
/// description speaks of yuan (元), a rate or a ratio (率, 比例, 百分, 折扣): those stay
/// numbers as the page types them.
fn is_amount(name: &str, desc: &str) -> bool {
    const NOT: &[&str] = &["元", "率", "比例", "百分", "折扣"];
    const SAYS: &[&str] = &["金额", "价格", "单价", "原价", "出资"];
    const COUNTS: &[&str] = &["数", "笔", "条", "次", "量"];
    const NAMES: &[&str] = &["amount", "total", "refund", "price", "advance"];
    const ENDS: &[&str] = &[
        "_amount",
        "_amt",
        "_fee",
        "_price",
        "_total",
        "_refund",
        "_contribute",
    ];
    if NOT.iter().any(|w| desc.contains(w)) {
        return false;
    }
    let named = NAMES.contains(&name) || ENDS.iter().any(|e| name.ends_with(e));
    SAYS.iter().any(|w| desc.contains(w)) || (named && !COUNTS.iter().any(|w| desc.contains(w)))
}

fn short(s: &str) -> String {
    let t: String = s.chars().take(60).collect();
    t.replace('`', "'")
}

/// Markdown and HTML out of a description piece: code marks, emphasis, links, tags.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(['<', '[']) {
        out.push_str(&rest[..i]);
        let r = &rest[i..];
        if r.starts_with('<') {
            match r.find('>') {
                Some(j) => rest = &r[j + 1..],
                None => {
                    rest = "";
                }
            }
        } else {
            // [text](link) -> text
            match (r.find(']'), r.find("](")) {
                (Some(j), Some(k)) if j == k => {
                    out.push_str(&r[1..j]);
                    rest = match r[j..].find(')') {
                        Some(e) => &r[j + e + 1..],
                        None => "",
                    };
                }
                _ => {
                    out.push('[');
                    rest = &r[1..];
                }
            }
        }
    }
    out.push_str(rest);
    out.replace(['`', '*'], "").trim().to_string()
}

/// The short label naming a field: the description's first words, up to the first break or
/// punctuation; nothing when that is still a sentence.
fn label_of(desc: &str) -> String {
    let first = desc.split("<br/>").next().unwrap_or("");
    let first = first.split("<br>").next().unwrap_or("");
    let text = plain(first);
    let cut = text
        .find([
            '，', '。', '；', '：', ',', ';', ':', '（', '(', '、', '！', '？',
        ])
        .unwrap_or(text.len());
    let label = text[..cut].trim();
    if label.chars().count() > 24 || label.contains("枚举值") {
        String::new()
    } else {
        label.to_string()
    }
}

/// The enumerated values a description states as `` `A` \| `B` 枚举值之一 `` or `` `A` 枚举值 ``.
fn enums_of(desc: &str) -> Vec<String> {
    for piece in desc.split("<br/>") {
        let p = piece.trim();
        let Some(head) = p
            .strip_suffix("枚举值之一")
            .or_else(|| p.strip_suffix("枚举值"))
        else {
            continue;
        };
        let Some(start) = head.find('`') else {
            continue;
        };
        let mut values = Vec::new();
        let mut rest = &head[start..];
        let mut ok = true;
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            if let Some(r) = rest.strip_prefix("\\|").or_else(|| rest.strip_prefix('|')) {
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix('`') {
                match r.find('`') {
                    Some(e) => {
                        values.push(r[..e].to_string());
                        rest = &r[e + 1..];
                    }
                    None => {
                        ok = false;
                        break;
                    }
                }
                continue;
            }
            ok = false;
            break;
        }
        if ok && !values.is_empty() {
            return values;
        }
    }
    Vec::new()
}

/// Rows into a tree by their indent. A row deeper than its place allows is kept at that place.
fn tree(rows: &[Row], pos: &mut usize, level: usize, notes: &mut Vec<String>) -> Vec<Field> {
    let mut out: Vec<Field> = Vec::new();
    while *pos < rows.len() {
        let r = &rows[*pos];
        if r.indent < level {
            break;
        }
        if r.indent > level {
            notes.push(format!(
                "field `{}` skips a nesting level (indent {} where at most {level} fits): read at {level}",
                r.name, r.indent
            ));
        }
        *pos += 1;
        let children = if *pos < rows.len() && rows[*pos].indent > r.indent {
            tree(rows, pos, level + 1, notes)
        } else {
            Vec::new()
        };
        out.push(Field {
            name: r.name.clone(),
            ty: r.ty.clone(),
            required: r.required,
            label: label_of(&r.desc),
            enums: enums_of(&r.desc),
            encrypted: r.encrypted.clone(),
            children,
            groups: Vec::new(),
            worded: crate::alternatives::worded(&r.desc),
        });
    }
    out
}

fn fields(rows: &[Row], notes: &mut Vec<String>) -> Vec<Field> {
    let base = rows.iter().map(|r| r.indent).min().unwrap_or(0);
    let rebased: Vec<Row> = rows
        .iter()
        .map(|r| Row {
            name: r.name.clone(),
            ty: r.ty.clone(),
            required: r.required,
            indent: r.indent - base,
            encrypted: r.encrypted.clone(),
            desc: r.desc.clone(),
            separator: false,
            indented: r.indented,
            encoded: r.encoded,
        })
        .collect();
    let mut pos = 0;
    tree(&rebased, &mut pos, 0, notes)
}

/// The front matter's `title:`, and whether the page only redirects elsewhere.
fn front_matter(text: &str) -> (Option<String>, Option<String>) {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("---") {
        return (None, None);
    }
    let mut title = None;
    let mut redirect = None;
    for l in lines {
        if l.trim() == "---" {
            break;
        }
        if let Some(t) = l.strip_prefix("title:") {
            title = Some(t.trim().trim_matches('"').to_string());
        }
        if let Some(i) = l.find("url=") {
            redirect = Some(l[i + 4..].trim().trim_matches('"').to_string());
        }
    }
    (title, redirect)
}

const METHODS: &[(&str, &str)] = &[
    ("get", "GET"),
    ("post", "POST"),
    ("put", "PUT"),
    ("patch", "PATCH"),
    ("delete", "DELETE"),
];

/// A heading line `## text {#anchor}`: (text, anchor).
fn heading(line: &str) -> Option<(&str, &str)> {
    let t = line.trim_end();
    let hashes = t.len() - t.trim_start_matches('#').len();
    if hashes == 0 || hashes > 3 || !t[hashes..].starts_with(' ') {
        return None;
    }
    let t = t.strip_suffix('}')?;
    let i = t.rfind("{#")?;
    Some((t[hashes..i].trim(), &t[i + 2..]))
}

struct Section<'a> {
    method: &'static str,
    heading: &'a str,
    lines: Vec<&'a str>,
}

fn sections(text: &str) -> (Vec<Section<'_>>, Option<&str>) {
    let mut out: Vec<Section> = Vec::new();
    let mut fence = false;
    let mut top = None;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fence = !fence;
        }
        if !fence {
            if let Some((h, anchor)) = heading(line) {
                if let Some((_, m)) = METHODS.iter().find(|(a, _)| *a == anchor) {
                    out.push(Section {
                        method: m,
                        heading: h,
                        lines: Vec::new(),
                    });
                    continue;
                }
                if anchor == "mix" && top.is_none() {
                    top = Some(h);
                }
            }
        }
        if let Some(s) = out.last_mut() {
            s.lines.push(line);
        }
    }
    (out, top)
}

/// What a section holds: its request and response table rows, and the `chain('…')` templates of
/// its code samples.
struct Parts {
    request: Option<Vec<Row>>,
    response: Option<Vec<Row>>,
    chains: Vec<String>,
    notes: Vec<String>,
}

fn parts(lines: &[&str]) -> Parts {
    let mut p = Parts {
        request: None,
        response: None,
        chains: Vec::new(),
        notes: Vec::new(),
    };
    let mut fence = false;
    let mut pending: Vec<&str> = Vec::new();
    for line in lines {
        let t = line.trim();
        if t.starts_with("```") {
            fence = !fence;
            pending.clear();
            continue;
        }
        if fence {
            let mut rest = *line;
            while let Some(i) = rest.find("chain('") {
                let r = &rest[i + 7..];
                match r.find('\'') {
                    Some(e) => {
                        let c = r[..e].to_string();
                        if !p.chains.contains(&c) {
                            p.chains.push(c);
                        }
                        rest = &r[e..];
                    }
                    None => break,
                }
            }
            continue;
        }
        if t.starts_with('|') {
            pending.push(t);
            continue;
        }
        if t.is_empty() {
            continue;
        }
        if !pending.is_empty() {
            let slot = if t.contains(".im-table") && t.contains("#request") {
                Some(&mut p.request)
            } else if t.contains(".im-table") && t.contains("#response") {
                Some(&mut p.response)
            } else {
                None
            };
            if let Some(slot) = slot {
                let mut rows = Vec::new();
                // the header and the `| --- |` line come first
                for l in pending.iter().skip(2) {
                    if let Some(r) = parse_row(l, &mut p.notes) {
                        rows.push(r);
                    }
                }
                if slot.is_some() {
                    p.notes
                        .push("a second table of the same kind: left out".into());
                } else {
                    *slot = Some(rows);
                }
            }
        }
        pending.clear();
    }
    p
}

/// The answers the platform leaves unsigned, as the library's `client_json::is_unsigned` and
/// `client_xml::UNSIGNED_ANSWERS` know them (the catalogue test checks they agree).
fn is_unsigned(template: &str) -> bool {
    const V2: &[&str] = &[
        "/mchrisk/querymchrisk",
        "/mchrisk/setmchriskcallback",
        "/mchrisk/syncmchriskresult",
        "/mmpaymkttransfers/gethbinfo",
        "/mmpaymkttransfers/gettransferinfo",
        "/mmpaymkttransfers/promotion/paywwsptrans2pocket",
        "/mmpaymkttransfers/promotion/querywwsptrans2pocket",
        "/mmpaymkttransfers/promotion/transfers",
        "/mmpaymkttransfers/sendgroupredpack",
        "/mmpaymkttransfers/sendminiprogramhb",
        "/mmpaymkttransfers/sendredpack",
        "/mmpaysptrans/pay_bank",
        "/mmpaysptrans/query_bank",
        "/papay/entrustweb",
        "/papay/h5entrustweb",
        "/papay/partner/entrustweb",
        "/papay/partner/h5entrustweb",
        "/pay/downloadbill",
        "/pay/downloadfundflow",
        "/payitil/report",
        "/risk/getpublickey",
        "/risk/getviolation",
        "/sandboxnew/pay/downloadbill",
        "/sandboxnew/pay/getsignkey",
        "/secapi/mch/submchmanage",
        "/xdc/apiv2getsignkey/sign/getsignkey",
    ];
    if let Some(p) = template.strip_prefix("v2") {
        return V2.iter().any(|u| {
            p == *u
                || p.strip_suffix(u)
                    .is_some_and(|pre| pre.starts_with('/') && !pre.ends_with('/'))
        });
    }
    match template.strip_prefix("v3/") {
        Some(
            "billdownload/file" | "transferdownload/signfile" | "transferdownload/elecvoucherfile",
        ) => true,
        Some(p) => p
            .strip_prefix("merchant-service/images/")
            .or_else(|| p.strip_prefix("global/merchant-service/images/"))
            .is_some_and(|r| !r.is_empty() && r != "upload"),
        None => false,
    }
}

pub fn read_openapi(rel: &str, text: &str) -> Outcome {
    let (title, redirect) = front_matter(text);
    if let Some(to) = redirect {
        return Outcome::Skipped(format!("redirects to {to}"));
    }
    let (secs, top) = sections(text);
    if secs.is_empty() {
        return Outcome::Skipped("no method section (`{#get}`, `{#post}`…): an index page".into());
    }
    let path_template = {
        let p = rel
            .strip_prefix("openapi/")
            .unwrap_or(rel)
            .strip_suffix(".md")
            .unwrap_or(rel);
        match p.strip_suffix("/index") {
            Some(dir) => format!("{dir}/"),
            None => p.to_string(),
        }
    };
    let mut operations = Vec::new();
    let mut failed = Vec::new();
    let mut notes = Vec::new();
    let n = secs.len();
    for s in &secs {
        let where_ = format!("{rel}#{}", s.method.to_lowercase());
        let mut p = parts(&s.lines);
        for note in p.notes.drain(..) {
            notes.push(Issue {
                page: where_.clone(),
                what: note,
            });
        }
        let Some(req) = p.request.take() else {
            failed.push(Issue {
                page: where_,
                what: "no request table (`{.im-table #request}`)".into(),
            });
            continue;
        };
        let template = match p.chains.len() {
            0 => {
                notes.push(Issue {
                    page: where_.clone(),
                    what: "no `chain(…)` sample: the template is the page's path".into(),
                });
                path_template.clone()
            }
            1 => p.chains[0].clone(),
            _ => {
                failed.push(Issue {
                    page: where_,
                    what: format!("its samples name several paths: {}", p.chains.join(", ")),
                });
                continue;
            }
        };
        let protocol = match template.split('/').next() {
            Some("v3") => 3,
            Some("v2") => 2,
            _ => {
                failed.push(Issue {
                    page: where_,
                    what: format!("template `{template}` is neither v3/… nor v2/…"),
                });
                continue;
            }
        };
        if template.contains(['"', '\\', ' ']) {
            failed.push(Issue {
                page: where_,
                what: format!("template `{template}` has a quote, a backslash or a space"),
            });
            continue;
        }
        let mut row_notes = Vec::new();
        let request = fields(
            &req.into_iter().filter(|r| !r.separator).collect::<Vec<_>>(),
            &mut row_notes,
        );
        let response = match p.response.take() {
            Some(rows) => fields(
                &rows
                    .into_iter()
                    .filter(|r| !r.separator)
                    .collect::<Vec<_>>(),
                &mut row_notes,
            ),
            None => {
                row_notes.push("no response table: the answer's fields are unknown".into());
                Vec::new()
            }
        };
        for note in row_notes {
            notes.push(Issue {
                page: where_.clone(),
                what: note,
            });
        }
        let heading = if s.heading.contains("$frontmatter.title") {
            title.as_deref().unwrap_or("")
        } else {
            s.heading
        };
        let _ = top;
        let label = plain(heading);
        let security = request.iter().any(|f| f.name == "security");
        let unsigned = is_unsigned(&template);
        operations.push(Operation {
            protocol,
            method: s.method,
            template,
            label,
            security,
            unsigned,
            request,
            response,
        });
    }
    Outcome::Read {
        operations,
        event: None,
        sections: n,
        failed,
        notes,
    }
}

/// A notification table's rows cut at its separators: the notification, then the resource's
/// pieces. Two readings of the pages' layout: a separator right after a string holding JSON
/// (`data-encoded`) opens the table of that JSON's fields, which are left out (the field is a
/// string) and the piece goes on after them; and a row without `data-indent` among indented
/// rows of a resource piece sits at the piece's top level.
fn segments_of(rows: Vec<Row>, notes: &mut Vec<String>) -> Vec<Vec<Row>> {
    let mut segments: Vec<Vec<Row>> = vec![Vec::new()];
    // the indent of the encoded field whose JSON's rows are being skipped
    let mut inside: Option<(usize, String, usize)> = None;
    let mut after_encoded: Option<(usize, String)> = None;
    for r in rows {
        if r.separator {
            if let Some((indent, name)) = after_encoded.take() {
                inside = Some((indent, name, 0));
                continue;
            }
            if let Some((_, name, n)) = inside.take() {
                notes.push(format!("the {n} fields of the JSON inside `{name}` are left out: the field is a string"));
            }
            segments.push(Vec::new());
            continue;
        }
        if let Some((indent, name, n)) = &mut inside {
            if r.indented && r.indent > *indent {
                *n += 1;
                continue;
            }
            notes.push(format!(
                "the {n} fields of the JSON inside `{name}` are left out: the field is a string"
            ));
            inside = None;
        }
        after_encoded = r.encoded.then(|| (r.indent, r.name.clone()));
        if let Some(last) = segments.last_mut() {
            last.push(r);
        }
    }
    if let Some((_, name, n)) = inside {
        notes.push(format!(
            "the {n} fields of the JSON inside `{name}` are left out: the field is a string"
        ));
    }
    for seg in segments.iter_mut().skip(1) {
        let Some(top) = seg.iter().filter(|r| r.indented).map(|r| r.indent).min() else {
            continue;
        };
        for r in seg.iter_mut().filter(|r| !r.indented && top > 0) {
            notes.push(format!(
                "row `{}` states no indent among rows indented {top}: read at {top}, the resource's top level",
                r.name
            ));
            r.indent = top;
            r.indented = true;
        }
    }
    segments
}

/// The resource's documented shapes from its pieces. A piece of one object field is one
/// option of that field (`detail` of `RECHARGE.FUND_RETURNED`: a bank transfer's or an online
/// bank's); the other pieces are common to every shape. Each shape is the common fields with
/// one option of each such field; options named `original_data` with nothing common are the
/// whole resource (`MCHWITHDRAW.CHANGE`: the platform's, a sub-merchant's…), read without
/// the wrapper.
fn variants(pieces: Vec<Vec<Field>>, notes: &mut Vec<String>) -> Vec<Vec<Field>> {
    if pieces.len() < 2 {
        return pieces;
    }
    let option = |p: &Vec<Field>| p.len() == 1 && !p[0].children.is_empty();
    let mut common: Vec<Field> = Vec::new();
    let mut groups: Vec<(String, Vec<Field>)> = Vec::new();
    for (i, p) in pieces.into_iter().enumerate() {
        if i > 0 && option(&p) || i == 0 && option(&p) && p[0].name == "original_data" {
            let f = p.into_iter().next().expect("one field");
            match groups.iter_mut().find(|(n, _)| *n == f.name) {
                Some((_, v)) => v.push(f),
                None => groups.push((f.name.clone(), vec![f])),
            }
        } else {
            common.extend(p);
        }
    }
    if groups.is_empty() {
        return vec![common];
    }
    let n = groups.iter().map(|(_, v)| v.len()).max().unwrap_or(1);
    let unwrap = common.is_empty() && groups.len() == 1 && groups[0].0 == "original_data";
    notes.push(format!(
        "{n} shapes of the resource: {}{}",
        groups
            .iter()
            .map(|(name, v)| format!("{} options of `{name}`", v.len()))
            .collect::<Vec<_>>()
            .join(", "),
        if unwrap {
            ", each the whole resource (read without the `original_data` wrapper)"
        } else {
            ""
        }
    ));
    (0..n)
        .map(|i| {
            if unwrap {
                return groups[0].1[i].children.clone();
            }
            let mut shape = common.clone();
            for (_, v) in &groups {
                shape.push(v[i.min(v.len() - 1)].clone());
            }
            shape
        })
        .collect()
}

fn find_encrypted(fields: &[Field]) -> Option<String> {
    for f in fields {
        if let Some(x) = &f.encrypted {
            return Some(x.clone());
        }
        if let Some(x) = find_encrypted(&f.children) {
            return Some(x);
        }
    }
    None
}

fn find_field<'a>(fields: &'a [Field], path: &[&str]) -> Option<&'a Field> {
    let (first, rest) = path.split_first()?;
    let f = fields.iter().find(|f| f.name == *first)?;
    if rest.is_empty() {
        Some(f)
    } else {
        find_field(&f.children, rest)
    }
}

pub fn read_webhook(rel: &str, text: &str) -> Outcome {
    let (title, redirect) = front_matter(text);
    if let Some(to) = redirect {
        return Outcome::Skipped(format!("redirects to {to}"));
    }
    let protocol = if rel.starts_with("webhook/v3/") {
        3
    } else if rel.starts_with("webhook/v2/") {
        2
    } else {
        return Outcome::Skipped("not under webhook/v3 or webhook/v2: an index page".into());
    };
    let kind = rel
        .rsplit('/')
        .next()
        .unwrap_or(rel)
        .strip_suffix(".md")
        .unwrap_or(rel)
        .to_string();
    let all: Vec<&str> = text.lines().collect();
    let p = parts(&all);
    let mut notes: Vec<Issue> = p
        .notes
        .iter()
        .map(|n| Issue {
            page: rel.to_string(),
            what: n.clone(),
        })
        .collect();
    let Some(req) = p.request else {
        return Outcome::Read {
            operations: Vec::new(),
            event: None,
            sections: 0,
            failed: Vec::new(),
            notes: vec![Issue {
                page: rel.to_string(),
                what: "no notification table (`{.im-table #request}`): no event read".into(),
            }],
        };
    };
    let mut row_notes = Vec::new();
    let segments = segments_of(req, &mut row_notes);
    let request = fields(&segments[0], &mut row_notes);
    let read: Vec<Vec<Field>> = segments[1..]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| fields(s, &mut row_notes))
        .collect();
    let mut resources = variants(read, &mut row_notes);
    let encrypted = find_encrypted(&request);
    if resources.is_empty() && encrypted.is_none() {
        // a plain notification: its body is the resource
        if let Some(body) = find_field(&request, &["body"]) {
            resources.push(body.children.clone());
        }
    }
    for n in row_notes {
        notes.push(Issue {
            page: rel.to_string(),
            what: n,
        });
    }
    let one = |f: Option<&Field>| f.filter(|f| f.enums.len() == 1).map(|f| f.enums[0].clone());
    let resource_type = one(find_field(&request, &["body", "resource", "original_type"]))
        .or_else(|| one(find_field(&request, &["body", "resource_type"])));
    if protocol == 3 {
        if let Some(f) = find_field(&request, &["body", "event_type"]) {
            if !f.enums.is_empty() && !f.enums.contains(&kind) {
                notes.push(Issue {
                    page: rel.to_string(),
                    what: format!(
                        "event_type lists {} but the page is {kind}",
                        f.enums.join(", ")
                    ),
                });
            }
        }
    }
    let label = title
        .as_deref()
        .map(|t| {
            let t = plain(t);
            let cut = t.find(['(', '（']).unwrap_or(t.len());
            t[..cut].trim().to_string()
        })
        .unwrap_or_default();
    Outcome::Read {
        operations: Vec::new(),
        event: Some(Event {
            protocol,
            kind,
            label,
            resource_type,
            encrypted,
            resources,
        }),
        sections: 0,
        failed: Vec::new(),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerations_are_read_from_both_forms_only() {
        assert_eq!(
            enums_of("签名类型<br/>`MD5` \\| `HMAC-SHA256` 枚举值之一"),
            ["MD5", "HMAC-SHA256"]
        );
        assert_eq!(enums_of("x<br/>`MD5` | `HMAC` 枚举值之一"), ["MD5", "HMAC"]);
        assert_eq!(enums_of("原始回调类型`coupon` 枚举值"), ["coupon"]);
        assert!(enums_of("`SUCCESS`：支付成功<br/>`FAIL`：失败").is_empty());
        assert!(enums_of("并非枚举值").is_empty());
    }

    #[test]
    fn rows_keep_marks_and_escaped_bars() {
        let mut n = Vec::new();
        let r = parse_row(
            "| name {data-required data-indent=2} | string {data-tooltip=\"a b\" data-encrypted=by-rsa-pubkey} | 姓名<br/>`A` \\| `B` 枚举值之一",
            &mut n,
        )
        .unwrap();
        assert_eq!(
            (r.name.as_str(), r.ty.as_str(), r.required, r.indent),
            ("name", "string", true, 2)
        );
        assert_eq!(r.encrypted.as_deref(), Some("by-rsa-pubkey"));
        assert_eq!(enums_of(&r.desc), ["A", "B"]);
        assert_eq!(label_of(&r.desc), "姓名");
        assert!(n.is_empty());
    }

    #[test]
    fn amounts_are_integers_unless_in_yuan_or_a_rate() {
        assert!(is_amount("transfer_amount", "转账金额"));
        assert!(is_amount("total", "总金额"));
        assert!(is_amount("unit_price", "商品单价"));
        assert!(is_amount("wechatpay_contribute", "微信出资"));
        assert!(is_amount("refund_fee", ""));
        assert!(!is_amount("total_num", "总笔数"));
        assert!(!is_amount("total", "总条数"));
        assert!(!is_amount("tax_rate", "税率"));
        assert!(!is_amount("settlement_rate", "结算汇率"));
        assert!(!is_amount("amount", "金额，单位为元"));
        assert!(!is_amount("discount_total", "折扣"));
        assert!(!is_amount("count", "菜品数量"));
        assert!(!is_amount("limit", "分页大小"));
    }

    #[test]
    fn numbers_in_fen_are_integers() {
        assert!(in_fen("总金额，单位为分，只能为整数。"));
        assert!(in_fen("金额（分）"));
        assert!(in_fen("退款金额，币种的最小单位，只能为整数"));
        assert!(!in_fen("有效期，单位分钟"));
        assert!(!in_fen("分账金额"));
        let mut n = Vec::new();
        let r = parse_row(
            "| total {data-indent=1} | number | 总金额，单位为分",
            &mut n,
        )
        .unwrap();
        assert_eq!(r.ty, "integer");
        assert_eq!(n.len(), 1);
        let r = parse_row("| rate {data-indent=1} | number | 费率", &mut n).unwrap();
        assert_eq!(r.ty, "number");
    }

    #[test]
    fn labels_stop_at_punctuation_and_drop_sentences() {
        assert_eq!(label_of("商户订单号，只能是数字"), "商户订单号");
        assert_eq!(
            label_of("声明请求的`JSON`数据结构"),
            "声明请求的JSON数据结构"
        );
        assert_eq!(label_of("[链接](/x)说明"), "链接说明");
        assert_eq!(label_of(&"很".repeat(30)), "");
    }
}
