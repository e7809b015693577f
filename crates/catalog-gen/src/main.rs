//! Regenerates the operation catalogue from the documentation pages (`openapi/**`, `webhook/**`).
//!
//! ```text
//! cargo run --manifest-path crates/catalog-gen/Cargo.toml -- [DOCS_DIR] [--check]
//! ```
//!
//! Writes `src/catalog/operations.jsonl` (and its `index.txt`), `src/catalog/events.jsonl`, `catalog/report.md` and
//! `docs/operations.md`; `--check` writes nothing and exits 1 when a committed file differs.
//! Only facts are kept (methods, paths, field names, types, required marks, enumerations,
//! encryption marks, short labels); prose and code samples are not.

mod alternatives;
mod explained;
mod page;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use page::{Event, Issue, Operation, Outcome};

fn main() -> ExitCode {
    let mut check = false;
    let mut docs: Option<PathBuf> = None;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: wechatpay-catalog-gen [DOCS_DIR] [--check]");
                println!("DOCS_DIR defaults to ../shared/docs-site next to the repository root");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!(
                    "unknown option {s:?}; usage: wechatpay-catalog-gen [DOCS_DIR] [--check]"
                );
                return ExitCode::from(2);
            }
            s => docs = Some(PathBuf::from(s)),
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().unwrap_or(root);
    let docs = docs.unwrap_or_else(|| root.join("../shared/docs-site"));
    if !docs.join("openapi").is_dir() || !docs.join("webhook").is_dir() {
        eprintln!(
            "{} has no openapi/ and webhook/ directories: pass the documentation site's directory",
            docs.display()
        );
        return ExitCode::from(2);
    }
    let outputs = match generate(&docs, &root) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("reading {}: {e}", docs.display());
            return ExitCode::from(2);
        }
    };
    let mut differ = Vec::new();
    for (rel, text) in &outputs.files {
        let path = root.join(rel);
        if check {
            if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
                differ.push(rel.clone());
            }
        } else {
            if let Some(dir) = path.parent() {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    eprintln!("creating {}: {e}", dir.display());
                    return ExitCode::from(2);
                }
            }
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("writing {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    print!("{}", outputs.counts);
    if !outputs.unexplained.is_empty() {
        eprintln!(
            "what the generator could not read, with no explanation in catalog/explained.tsv (add a line `page<TAB>kind<TAB>why` once understood, or fix the generator):\n{}",
            outputs.unexplained.join("\n")
        );
        return ExitCode::from(1);
    }
    if !differ.is_empty() {
        eprintln!(
            "the committed catalogue differs from the pages in {}: {}\nregenerate it with `cargo run --manifest-path crates/catalog-gen/Cargo.toml -- {}` and commit the result",
            docs.display(),
            differ.join(", "),
            docs.display()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

struct Outputs {
    files: Vec<(String, String)>,
    counts: String,
    /// Issues no rule or entry of `catalog/explained.tsv` explains, and entries explaining
    /// nothing, one line each.
    unexplained: Vec<String>,
}

/// Every `*.md` under `dir`, sorted, as paths relative to `base` with `/` separators.
fn markdown_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if e.file_type()?.is_dir() {
            markdown_files(base, &p, out)?;
        } else if p.extension().is_some_and(|x| x == "md") {
            let rel = p.strip_prefix(base).unwrap_or(&p);
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(rel.join("/"));
        }
    }
    Ok(())
}

/// The rows whose description words them as one of several (二选一…) while no group of their
/// object holds them: (where, field).
fn unexplained_wording(ops: &[Operation]) -> Vec<Issue> {
    fn walk(
        fields: &[page::Field],
        groups: &[alternatives::Group],
        at: &str,
        out: &mut Vec<Issue>,
    ) {
        for f in fields {
            let here = format!("{at}/{}", f.name);
            if f.worded && !groups.iter().any(|g| g.members.contains(&f.name)) {
                out.push(Issue {
                    page: at.split('#').next().unwrap_or(at).to_string(),
                    what: format!("`{here}` is worded as one of several, and no group in catalog/alternatives.tsv holds it"),
                });
            }
            walk(&f.children, &f.groups, &here, out);
        }
    }
    let mut out = Vec::new();
    for op in ops {
        walk(
            &op.request,
            &[],
            &format!("{} {}#", op.method, op.template),
            &mut out,
        );
    }
    out
}

/// A committed table of `catalog/` read with `parse` (none: empty), its errors naming it.
fn table<T>(
    root: &Path,
    name: &str,
    parse: fn(&str) -> Result<Vec<T>, String>,
) -> std::io::Result<Vec<T>> {
    let text = match std::fs::read_to_string(root.join("catalog").join(name)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    parse(&text).map_err(|e| std::io::Error::other(format!("catalog/{name}: {e}")))
}

fn generate(docs: &Path, root: &Path) -> std::io::Result<Outputs> {
    let alternatives = table(root, "alternatives.tsv", alternatives::parse)?;
    let corrections = table(root, "corrections.tsv", alternatives::parse_corrections)?;
    let allowed = table(root, "explained.tsv", explained::parse)?;
    let mut files = Vec::new();
    markdown_files(docs, &docs.join("openapi"), &mut files)?;
    markdown_files(docs, &docs.join("webhook"), &mut files)?;
    let mut ops: Vec<Operation> = Vec::new();
    let mut events: Vec<Event> = Vec::new();
    let mut unreadable: Vec<Issue> = Vec::new();
    let mut notes: Vec<Issue> = Vec::new();
    let mut skipped: Vec<Issue> = Vec::new();
    let mut sections = 0usize;
    for rel in &files {
        let text = std::fs::read_to_string(docs.join(rel))?;
        let outcome = if rel.starts_with("openapi/") {
            page::read_openapi(rel, &text)
        } else {
            page::read_webhook(rel, &text)
        };
        match outcome {
            Outcome::Skipped(why) => skipped.push(Issue {
                page: rel.clone(),
                what: why,
            }),
            Outcome::Read {
                operations,
                event,
                sections: n,
                failed,
                notes: mut more,
            } => {
                sections += n;
                ops.extend(operations);
                events.extend(event);
                unreadable.extend(failed);
                notes.append(&mut more);
            }
        }
    }
    // by segments, then method: a template's methods are adjacent (the library relies on it)
    ops.sort_by(|a, b| {
        a.template
            .split('/')
            .cmp(b.template.split('/'))
            .then(a.method.cmp(b.method))
    });
    let before = ops.len();
    ops.dedup_by(|a, b| a.template == b.template && a.method == b.method);
    if ops.len() != before {
        notes.push(Issue {
            page: "(all)".into(),
            what: format!(
                "{} operations documented twice; the first page read was kept",
                before - ops.len()
            ),
        });
    }
    alternatives::apply(&alternatives, &mut ops).map_err(std::io::Error::other)?;
    alternatives::correct(&corrections, &mut ops).map_err(std::io::Error::other)?;
    let wording = unexplained_wording(&ops);
    // APIv3 first: `TRANSACTION.SUCCESS` is documented for both
    events.sort_by(|a, b| (b.protocol, &a.kind).cmp(&(a.protocol, &b.kind)));

    let mut op_lines = String::new();
    // the library's index: `METHOD template start label` per line, so that a lookup or a search
    // touches neither the operations' bytes nor their JSON until one is asked for
    let mut index_lines = String::new();
    for op in &ops {
        let _ = writeln!(
            index_lines,
            "{} {} {} {}",
            op.method,
            op.template,
            op_lines.len(),
            op.label.replace(['\n', '\r'], " ")
        );
        op_lines.push_str(&serde_json::to_string(&op.to_json()).expect("json"));
        op_lines.push('\n');
    }
    let mut ev_lines = String::new();
    for ev in &events {
        ev_lines.push_str(&serde_json::to_string(&ev.to_json()).expect("json"));
        ev_lines.push('\n');
    }

    let mut by: BTreeMap<(u8, &str), usize> = BTreeMap::new();
    for op in &ops {
        *by.entry((op.protocol, op.method)).or_default() += 1;
    }
    let mut counts = String::new();
    let _ = writeln!(
        counts,
        "operations: {} ({} sections read of {}, {} unreadable)",
        ops.len(),
        sections - unreadable.len(),
        sections,
        unreadable.len()
    );
    for p in [3u8, 2] {
        let total: usize = by
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|(_, n)| n)
            .sum();
        let parts: Vec<String> = by
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|((_, m), n)| format!("{m} {n}"))
            .collect();
        let _ = writeln!(counts, "  APIv{p}: {total} ({})", parts.join(", "));
    }
    let v3e = events.iter().filter(|e| e.protocol == 3).count();
    let _ = writeln!(
        counts,
        "events: {} (APIv3 {}, APIv2 {})",
        events.len(),
        v3e,
        events.len() - v3e
    );

    let groups: usize = alternatives.len();
    let _ = writeln!(
        counts,
        "one-of groups: {groups} in {} operations ({} at least one, {} exactly one)",
        {
            let mut o: Vec<(&str, &str)> = alternatives
                .iter()
                .map(|e| (e.method.as_str(), e.template.as_str()))
                .collect();
            o.dedup();
            o.len()
        },
        alternatives
            .iter()
            .filter(|e| e.group.kind == alternatives::Kind::Any)
            .count(),
        alternatives
            .iter()
            .filter(|e| e.group.kind == alternatives::Kind::One)
            .count(),
    );
    let all: Vec<&Issue> = unreadable
        .iter()
        .chain(&skipped)
        .chain(&notes)
        .chain(&wording)
        .collect();
    let verdict = explained::judge(&all, &allowed);
    let mut unexplained: Vec<String> = verdict
        .unexplained
        .iter()
        .map(|(k, i)| {
            format!(
                "  {}\t{k}\t({})",
                i.page.split('#').next().unwrap_or(&i.page),
                i.what
            )
        })
        .collect();
    unexplained.extend(verdict.stale.iter().map(|e| {
        format!(
            "  catalog/explained.tsv: `{}` {} explains nothing any more: remove the line",
            e.page, e.kind
        )
    }));
    let _ = writeln!(
        counts,
        "not read as written: {} ({} by a rule, {} explained in catalog/explained.tsv, {} unexplained)",
        all.len(),
        verdict.kinds.iter().filter(|k| k.1).map(|k| k.2).sum::<usize>(),
        verdict.kinds.iter().filter(|k| !k.1).map(|k| k.3).sum::<usize>(),
        verdict.unexplained.len()
    );
    let mut report = report_md(
        sections,
        &unreadable,
        &notes,
        &skipped,
        &counts,
        &alternatives,
        &wording,
    );
    let _ = writeln!(
        report,
        "\n## Types corrected from another source (catalog/corrections.tsv, {})\n",
        corrections.len()
    );
    for c in &corrections {
        let _ = writeln!(
            report,
            "- `{} {}` {} /{}: {} ({})",
            c.method,
            c.template,
            if c.answer { "answer" } else { "request" },
            c.pointer.join("/"),
            c.ty,
            c.source
        );
    }
    report.push_str(&crosscheck_md(root));
    report.push_str("\n## What was not read as written, by kind\n\n");
    report.push_str("| kind | issues | explained | how |\n| --- | --- | --- | --- |\n");
    for (kind, rule, n, ok) in &verdict.kinds {
        let _ = writeln!(
            report,
            "| {kind} | {n} | {ok} | {} |",
            if *rule {
                "a rule of the generator (docs/catalog.md)"
            } else {
                "catalog/explained.tsv"
            }
        );
    }
    let _ = writeln!(
        report,
        "\n## Explained (catalog/explained.tsv, {})\n",
        allowed.len()
    );
    for e in &allowed {
        let _ = writeln!(report, "- `{}` {}: {}", e.page, e.kind, e.why);
    }
    let _ = writeln!(report, "\n## Unexplained ({})\n", verdict.unexplained.len());
    if verdict.unexplained.is_empty() {
        report.push_str("None.\n");
    }
    for (k, i) in &verdict.unexplained {
        let _ = writeln!(report, "- `{}` {k}: {}", i.page, i.what);
    }
    let operations_md = operations_md(&ops, &events, &counts);
    Ok(Outputs {
        files: vec![
            ("src/catalog/operations.jsonl".into(), op_lines),
            ("src/catalog/index.txt".into(), index_lines),
            ("src/catalog/events.jsonl".into(), ev_lines),
            ("catalog/report.md".into(), report),
            ("docs/operations.md".into(), operations_md),
        ],
        counts,
        unexplained,
    })
}

/// A section of the report: its heading, then each issue, or "None.".
fn issues(s: &mut String, heading: &str, list: &[Issue]) {
    let _ = writeln!(s, "{heading}\n");
    if list.is_empty() {
        s.push_str("None.\n");
    }
    for i in list {
        let _ = writeln!(s, "- `{}`: {}", i.page, i.what);
    }
}

fn report_md(
    sections: usize,
    unreadable: &[Issue],
    notes: &[Issue],
    skipped: &[Issue],
    counts: &str,
    alternatives: &[alternatives::Entry],
    wording: &[Issue],
) -> String {
    let mut s = String::new();
    s.push_str("# Catalogue report\n\n");
    s.push_str("Generated by `crates/catalog-gen` from the documentation pages; do not edit.\n\n");
    s.push_str("```text\n");
    s.push_str(counts);
    s.push_str("```\n\n");
    issues(
        &mut s,
        &format!(
            "## Unreadable operation sections ({} of {sections})",
            unreadable.len()
        ),
        unreadable,
    );
    let _ = writeln!(
        s,
        "\n## Pages without an operation or event ({})\n",
        skipped.len()
    );
    for i in skipped {
        let _ = writeln!(s, "- `{}`: {}", i.page, i.what);
    }
    let _ = writeln!(
        s,
        "\n## Rows read with a correction or left out ({})\n",
        notes.len()
    );
    for i in notes {
        let _ = writeln!(s, "- `{}`: {}", i.page, i.what);
    }
    let _ = writeln!(
        s,
        "\n## One-of groups ({}, from catalog/alternatives.tsv)\n",
        alternatives.len()
    );
    for e in alternatives {
        let _ = writeln!(
            s,
            "- `{} {}` {}: {} of {} ({})",
            e.method,
            e.template,
            e.object.join("/"),
            match e.group.kind {
                alternatives::Kind::Any => "at least one",
                alternatives::Kind::One => "exactly one",
            },
            e.group.members.join(", "),
            e.source
        );
    }
    issues(
        &mut s,
        &format!(
            "\n## Rows worded as one of several without a group ({})",
            wording.len()
        ),
        wording,
    );
    s
}

/// The summary of the cross-check with the Go SDK's models (`catalog/crosscheck-go.tsv`,
/// written by `crosscheck/go_models.py`): its counts and the disagreements by resolution.
fn crosscheck_md(root: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(root.join("catalog/crosscheck-go.tsv")) else {
        return String::new();
    };
    let mut s =
        String::from("\n## Cross-check with the Go SDK's models (catalog/crosscheck-go.tsv)\n\n");
    for l in text.lines().take(2) {
        let _ = writeln!(s, "{}  ", l.trim_start_matches("# "));
    }
    let mut by: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let c: Vec<&str> = l.split('\t').collect();
        if c.len() >= 8 {
            *by.entry((c[1].to_string(), c[3].to_string(), c[6].to_string()))
                .or_default() += 1;
        }
    }
    s.push_str("\n| where | aspect | followed | disagreements |\n| --- | --- | --- | --- |\n");
    for ((w, a, f), n) in &by {
        let _ = writeln!(s, "| {w} | {a} | {f} | {n} |");
    }
    s
}

/// The group of a template: its protocol and first segment (`v3/pay`), with a second segment for
/// the big families (`v3/marketing/busifavor`).
fn group_of(template: &str) -> String {
    let segs: Vec<&str> = template.split('/').collect();
    let deep = matches!(
        segs.get(1).copied(),
        Some("marketing" | "pay" | "payscore" | "ecommerce" | "brand" | "merchant-service")
    );
    let n = if deep && segs.len() > 3 { 3 } else { 2 };
    let n = n.min(segs.len().saturating_sub(1)).max(1);
    segs[..n].join("/")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn operations_md(ops: &[Operation], events: &[Event], counts: &str) -> String {
    let mut s = String::new();
    s.push_str("# Operations and events\n\n");
    s.push_str(
        "Every documented operation and webhook event the catalogue knows (cargo feature \
         `catalog`). Generated by `crates/catalog-gen`; do not edit.\n\n",
    );
    s.push_str("```text\n");
    s.push_str(counts);
    s.push_str("```\n");
    let mut groups: BTreeMap<String, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        groups.entry(group_of(&op.template)).or_default().push(op);
    }
    // APIv3 first, then APIv2.
    let mut order: Vec<&String> = groups.keys().collect();
    order.sort_by_key(|g| (!g.starts_with("v3"), (*g).clone()));
    for g in order {
        let list = &groups[g];
        let _ = writeln!(s, "\n## {g}\n");
        s.push_str("| Method | Path | Label |\n| --- | --- | --- |\n");
        for op in list {
            let mut flags = Vec::new();
            if op.security {
                flags.push("merchant certificate");
            }
            if op.unsigned {
                flags.push("unsigned answer");
            }
            let extra = if flags.is_empty() {
                String::new()
            } else {
                format!(" ({})", flags.join(", "))
            };
            let _ = writeln!(
                s,
                "| {} | `{}` | {}{} |",
                op.method,
                op.template,
                cell(&op.label),
                extra
            );
        }
    }
    s.push_str("\n## Webhook events\n\n");
    s.push_str("| Protocol | Event type | Resource type | Label |\n| --- | --- | --- | --- |\n");
    for e in events {
        let _ = writeln!(
            s,
            "| APIv{} | `{}` | {} | {} |",
            e.protocol,
            e.kind,
            e.resource_type.as_deref().unwrap_or("-"),
            cell(&e.label)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documentation site: `SHARED` (as .ci/run takes it) or `../shared` beside the
    /// repository; `None` (the test skips) when neither is there.
    fn docs() -> Option<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let shared =
            std::env::var_os("SHARED").map_or_else(|| root.join("../shared"), PathBuf::from);
        let d = shared.join("docs-site");
        if d.join("webhook").is_dir() {
            Some(d)
        } else {
            eprintln!("skipped: no {}", d.display());
            None
        }
    }

    fn names(fields: &[page::Field], out: &mut Vec<String>) {
        for f in fields {
            if f.required {
                out.push(f.name.clone());
            }
            names(&f.children, out);
        }
    }

    /// Every event page, read flat (no tree): each `data-required` row of the resource (the
    /// rows after the first separator, but for the table of a JSON-encoded string's fields) is
    /// a required field of a shape of the event, and each shape keeps the rows common to all.
    #[test]
    fn every_required_resource_row_of_every_event_page_is_in_the_catalogue() {
        let Some(docs) = docs() else { return };
        let mut files = Vec::new();
        markdown_files(&docs, &docs.join("webhook"), &mut files).unwrap();
        let mut pages = 0;
        for rel in files {
            let text = std::fs::read_to_string(docs.join(&rel)).unwrap();
            let page::Outcome::Read {
                event: Some(event), ..
            } = page::read_webhook(&rel, &text)
            else {
                continue;
            };
            if event.encrypted.as_deref() != Some("by-aes-gcm") {
                continue;
            }
            pages += 1;
            // the flat reading: (piece, indent, required, name) of each resource row
            let mut rows: Vec<(usize, Option<usize>, bool, String)> = Vec::new();
            let (mut piece, mut encoded_at, mut skipping) = (0usize, None::<usize>, None::<usize>);
            for line in text.lines().map(str::trim) {
                if line.starts_with("{.im-table") {
                    break;
                }
                if !line.starts_with('|') || line.starts_with("| ---") {
                    continue;
                }
                if line.contains(".im-table-line") {
                    // after a JSON-encoded string: the table of its JSON, not a new piece
                    match encoded_at.take() {
                        Some(i) => skipping = Some(i),
                        None => piece += 1,
                    }
                    continue;
                }
                let indent = line
                    .split("data-indent=")
                    .nth(1)
                    .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse::<usize>().ok());
                if let (Some(i), Some(at)) = (indent, skipping) {
                    if i > at {
                        continue;
                    }
                }
                skipping = None;
                encoded_at = line.contains("data-encoded").then_some(indent.unwrap_or(0));
                if piece > 0 {
                    let name = line
                        .trim_start_matches('|')
                        .split(['{', '|'])
                        .next()
                        .unwrap()
                        .trim();
                    rows.push((
                        piece,
                        indent,
                        line.contains("data-required"),
                        name.to_string(),
                    ));
                }
            }
            let shapes: Vec<(Vec<String>, Vec<String>)> = event
                .resources
                .iter()
                .map(|r| {
                    let mut all = Vec::new();
                    names(r, &mut all);
                    let top = r
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name.clone())
                        .collect();
                    (top, all)
                })
                .collect();
            for (p, indent, required, name) in &rows {
                if !required {
                    continue;
                }
                let top = rows.iter().filter(|r| r.0 == *p).filter_map(|r| r.1).min();
                let at_top = indent.is_none() || *indent == top;
                // the first piece is in the shape sent (the first); a later one in some shape
                let candidates: Vec<&(Vec<String>, Vec<String>)> = if *p == 1 {
                    shapes.iter().take(1).collect()
                } else {
                    shapes.iter().collect()
                };
                let found = candidates.iter().any(|(_, all)| all.contains(name));
                assert!(found, "{rel}: required row {name} (piece {p}) is in no shape of the event that should hold it");
                // a top-level row of the common piece is at the top of the shape sent (a
                // shape read without its wrapper has the wrapper's fields there)
                if at_top && *p == 1 {
                    assert!(
                        shapes[0].0.contains(name),
                        "{rel}: {name} is not at the top of the shape sent"
                    );
                }
            }
        }
        assert!(pages >= 95, "{pages} event pages");
    }
}
