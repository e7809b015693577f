//! One-of groups ("at least one of", "exactly one of") of request fields: read from the
//! reviewed table `catalog/alternatives.tsv` (each entry says where the fact comes from) and
//! applied to the operations read from the pages. A group's members lose their own required
//! mark: the group is what is required.
//!
//! The pages mark both `transaction_id` and `out_trade_no` of `v2/pay/orderquery`
//! `data-required` where the platform takes either; their descriptions say nothing of it, so
//! the table carries the fact, and a row whose description does say it (二选一, 任选其一…)
//! without an entry is reported as unexplained.

use crate::page::{Field, Operation};

/// How many members of a group a call gives.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// At least one (`any`): the platform takes each, and picks by priority when several come.
    Any,
    /// Exactly one (`one`): the platform refuses two at once.
    One,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Any => "any",
            Kind::One => "one",
        }
    }
}

/// One group of fields of one object.
#[derive(Clone)]
pub struct Group {
    pub kind: Kind,
    pub members: Vec<String>,
}

/// An entry of the table: where the group goes and where the fact comes from.
pub struct Entry {
    pub line: usize,
    pub method: String,
    pub template: String,
    /// The object the members sit in, as field names from the request's top (`xml`,
    /// `query`, `json/payer`).
    pub object: Vec<String>,
    pub group: Group,
    pub source: String,
}

/// Reads `catalog/alternatives.tsv`: `METHOD<TAB>template<TAB>object<TAB>any|one<TAB>a,b,…<TAB>source`,
/// `#` comments and blank lines aside.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 6 {
            return Err(format!(
                "line {n}: {} tab-separated columns, not 6 (method, template, object, any|one, members, source)",
                cols.len()
            ));
        }
        let kind = match cols[3] {
            "any" => Kind::Any,
            "one" => Kind::One,
            k => {
                return Err(format!(
                    "line {n}: kind {k:?}: use any (at least one) or one (exactly one)"
                ))
            }
        };
        let members: Vec<String> = cols[4]
            .split(',')
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        if members.len() < 2 {
            return Err(format!("line {n}: a group needs two members or more"));
        }
        if cols[5].trim().is_empty() {
            return Err(format!(
                "line {n}: no source: say where the fact comes from"
            ));
        }
        out.push(Entry {
            line: n,
            method: cols[0].to_string(),
            template: cols[1].to_string(),
            object: cols[2].split('/').map(str::to_string).collect(),
            group: Group { kind, members },
            source: cols[5].trim().to_string(),
        });
    }
    Ok(out)
}

fn object_mut<'a>(fields: &'a mut [Field], path: &[String]) -> Option<&'a mut Field> {
    let (first, rest) = path.split_first()?;
    let f = fields.iter_mut().find(|f| f.name == *first)?;
    if rest.is_empty() {
        Some(f)
    } else {
        object_mut(&mut f.children, rest)
    }
}

/// Puts each entry's group on its object and clears its members' required marks. An entry
/// that names no documented operation, object or member is an error: the table is stale.
pub fn apply(entries: &[Entry], ops: &mut [Operation]) -> Result<(), String> {
    for e in entries {
        let Some(op) = ops
            .iter_mut()
            .find(|o| o.method == e.method && o.template == e.template)
        else {
            return Err(format!(
                "catalog/alternatives.tsv line {}: no operation {} {} on the pages",
                e.line, e.method, e.template
            ));
        };
        let Some(obj) = object_mut(&mut op.request, &e.object) else {
            return Err(format!(
                "catalog/alternatives.tsv line {}: {} {} has no request object {}",
                e.line,
                e.method,
                e.template,
                e.object.join("/")
            ));
        };
        for m in &e.group.members {
            let Some(f) = obj.children.iter_mut().find(|f| f.name == *m) else {
                return Err(format!(
                    "catalog/alternatives.tsv line {}: {} {} documents no field {m} in {}",
                    e.line,
                    e.method,
                    e.template,
                    e.object.join("/")
                ));
            };
            f.required = false;
        }
        obj.groups.push(e.group.clone());
    }
    Ok(())
}

/// Whether a row's description says the field is one of several (二选一, 三选一, 任选其一,
/// 必填其一…): such a row needs an entry in the table (or the allow-list of the report).
pub fn worded(desc: &str) -> bool {
    const WORDS: &[&str] = &[
        "二选一",
        "三选一",
        "四选一",
        "五选一",
        "多选一",
        "任选其一",
        "任选一",
        "必填其一",
        "择一",
        "至少填写一",
        "至少传一",
        "至少填一",
        "不能同时为空",
    ];
    WORDS.iter().any(|w| desc.contains(w))
}

/// A type, or an enumeration (`enum=A|B`), corrected from another official source
/// (`catalog/corrections.tsv`).
pub struct Correction {
    pub line: usize,
    pub method: String,
    pub template: String,
    pub answer: bool,
    pub pointer: Vec<String>,
    pub ty: String,
    pub source: String,
}

/// Reads `catalog/corrections.tsv`: `METHOD<TAB>template<TAB>request|answer<TAB>pointer<TAB>type<TAB>source`.
pub fn parse_corrections(text: &str) -> Result<Vec<Correction>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let c: Vec<&str> = line.split('\t').collect();
        if c.len() != 6 || c[5].trim().is_empty() {
            return Err(format!(
                "line {n}: 6 tab-separated columns, the source not empty"
            ));
        }
        let answer = match c[2] {
            "request" => false,
            "answer" => true,
            w => return Err(format!("line {n}: {w:?}: request or answer")),
        };
        if !matches!(
            c[4],
            "integer" | "number" | "string" | "boolean" | "integer[]"
        ) && !c[4].starts_with("enum=")
        {
            return Err(format!(
                "line {n}: type {:?} is not one the corrections take",
                c[4]
            ));
        }
        out.push(Correction {
            line: n,
            method: c[0].to_string(),
            template: c[1].to_string(),
            answer,
            pointer: c[3]
                .trim_start_matches('/')
                .split('/')
                .map(str::to_string)
                .collect(),
            ty: c[4].to_string(),
            source: c[5].trim().to_string(),
        });
    }
    Ok(out)
}

/// Sets each correction's type; one naming no documented field is an error (the table is stale).
pub fn correct(corrections: &[Correction], ops: &mut [Operation]) -> Result<(), String> {
    for c in corrections {
        let op = ops
            .iter_mut()
            .find(|o| o.method == c.method && o.template == c.template)
            .ok_or_else(|| {
                format!(
                    "catalog/corrections.tsv line {}: no operation {} {}",
                    c.line, c.method, c.template
                )
            })?;
        let fields = if c.answer {
            &mut op.response
        } else {
            &mut op.request
        };
        let f = object_mut(fields, &c.pointer).ok_or_else(|| {
            format!(
                "catalog/corrections.tsv line {}: {} {} documents no field /{}",
                c.line,
                c.method,
                c.template,
                c.pointer.join("/")
            )
        })?;
        match c.ty.strip_prefix("enum=") {
            Some(values) => f.enums = values.split('|').map(str::to_string).collect(),
            None => f.ty = c.ty.clone(),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_read_strictly() {
        let t = "# c\n\nPOST\tv2/pay/orderquery\txml\tany\ttransaction_id,out_trade_no\twiki 9_2\n";
        let e = parse(t).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].object, ["xml"]);
        assert_eq!(e[0].group.members, ["transaction_id", "out_trade_no"]);
        assert!(parse("POST\tv2/x\txml\tall\ta,b\ts\n").is_err());
        assert!(parse("POST\tv2/x\txml\tany\ta\ts\n").is_err());
        assert!(parse("POST\tv2/x\txml\tany\ta,b\t \n").is_err());
        assert!(parse("POST\tv2/x\txml\tany\ta,b\n").is_err());
    }

    #[test]
    fn wording_is_recognised() {
        assert!(worded("商户订单号，与transaction_id二选一"));
        assert!(worded("四选一"));
        assert!(!worded("商户订单号"));
    }
}
