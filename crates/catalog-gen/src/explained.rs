//! What the generator could not read, or read with a correction, sorted by kind, and the
//! committed allow-list of the explained ones (`catalog/explained.tsv`): `--check` fails when a
//! page adds one that no entry explains, or an entry explains nothing any more.

use crate::page::Issue;

/// The kind of an issue, from its wording; `true`: a reading by a rule of the generator
/// (documented in docs/catalog.md), explained without an entry.
pub fn kind_of(what: &str) -> (&'static str, bool) {
    const KINDS: &[(&str, &str, bool)] = &[
        ("redirects to", "redirect", true),
        ("an index page", "index", false),
        ("an amount, in fen", "integer-amount", true),
        ("read as `integer", "integer-by-wording", true),
        ("no `chain(", "no-sample", false),
        ("field name", "name-with-space", false),
        ("fields of the JSON inside", "json-table", false),
        ("states no indent", "no-indent", false),
        ("shapes of the resource", "shapes", false),
        ("skips a nesting level", "nesting", false),
        ("is not a JSON type", "type", false),
        ("names no field", "no-name", false),
        ("cell, not 3", "cells", false),
        ("is not a number", "indent", false),
        ("a second table", "second-table", false),
        ("no response table", "no-response", false),
        ("event_type lists", "event-type", false),
        ("documented twice", "duplicate", false),
        ("no notification table", "no-notification", false),
        ("no request table", "unreadable", false),
        ("samples name several paths", "unreadable", false),
        ("is neither v3/", "unreadable", false),
        ("has a quote", "unreadable", false),
        ("is worded as one of several", "worded", false),
    ];
    KINDS
        .iter()
        .find(|(w, _, _)| what.contains(w))
        .map_or(("other", false), |(_, k, rule)| (*k, *rule))
}

/// An entry of the allow-list: every issue of `kind` on `page` is explained by `why`.
pub struct Entry {
    pub page: String,
    pub kind: String,
    pub why: String,
}

/// Reads `catalog/explained.tsv`: `page<TAB>kind<TAB>why`, `#` comments and blank lines aside.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != 3 || cols[2].trim().is_empty() {
            return Err(format!(
                "line {}: page, kind and why, tab-separated, the why not empty",
                i + 1
            ));
        }
        out.push(Entry {
            page: cols[0].to_string(),
            kind: cols[1].to_string(),
            why: cols[2].trim().to_string(),
        });
    }
    Ok(out)
}

/// The page an issue is about (`openapi/x.md#post` is `openapi/x.md`).
fn page_of(i: &Issue) -> &str {
    i.page.split('#').next().unwrap_or(&i.page)
}

/// What the allow-list leaves unexplained, and the entries that explain nothing.
pub struct Verdict<'a> {
    /// (kind, issue) of each issue no rule or entry explains.
    pub unexplained: Vec<(&'static str, &'a Issue)>,
    /// The entries no issue matches any more.
    pub stale: Vec<&'a Entry>,
    /// Per kind: (kind, by rule, issues, explained).
    pub kinds: Vec<(&'static str, bool, usize, usize)>,
}

pub fn judge<'a>(issues: &[&'a Issue], entries: &'a [Entry]) -> Verdict<'a> {
    let mut v = Verdict {
        unexplained: Vec::new(),
        stale: Vec::new(),
        kinds: Vec::new(),
    };
    let mut used = vec![false; entries.len()];
    for i in issues {
        let (kind, rule) = kind_of(&i.what);
        let entry = entries
            .iter()
            .position(|e| e.kind == kind && e.page == page_of(i));
        if let Some(n) = entry {
            used[n] = true;
        }
        let explained = rule || entry.is_some();
        match v.kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.2 += 1;
                k.3 += usize::from(explained);
            }
            None => v.kinds.push((kind, rule, 1, usize::from(explained))),
        }
        if !explained {
            v.unexplained.push((kind, i));
        }
    }
    v.kinds.sort();
    v.stale = entries
        .iter()
        .zip(used)
        .filter(|(_, u)| !u)
        .map(|(e, _)| e)
        .collect();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issue_is_explained_by_a_rule_or_an_entry_of_its_page_and_kind() {
        let issues = [
            Issue {
                page: "openapi/a.md#post".into(),
                what: "field name `a b` read as `ab`".into(),
            },
            Issue {
                page: "openapi/b.md#get".into(),
                what: "field name `c d` read as `cd`".into(),
            },
            Issue {
                page: "openapi/c.md".into(),
                what: "redirects to /x".into(),
            },
        ];
        let refs: Vec<&Issue> = issues.iter().collect();
        let entries = parse(
            "# c\nopenapi/a.md\tname-with-space\ta typo of the page\nopenapi/z.md\tshapes\tgone\n",
        )
        .unwrap();
        let v = judge(&refs, &entries);
        assert_eq!(v.unexplained.len(), 1);
        assert_eq!(v.unexplained[0].1.page, "openapi/b.md#get");
        assert_eq!(v.stale.len(), 1);
        assert_eq!(v.stale[0].page, "openapi/z.md");
        assert!(parse("a\tb\t\n").is_err());
    }
}
