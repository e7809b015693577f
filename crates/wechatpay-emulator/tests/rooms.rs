//! The emulator's rooms (docs/emulator.md, "Rooms"): every file of src/ belongs to a room, and
//! a room imports only rooms below it. This reads the source tree, resolves each `crate::…` and
//! `super::…` path that leaves its file's room, and names the file, line and import of every
//! one that goes up, and every file at the top of src/ that is not a room.
//!
//! `ROOMS_SRC=/some/src cargo test -p wechatpay-emulator --test rooms` checks another tree
//! (an older checkout, say).

use std::fs;
use std::path::{Path, PathBuf};

/// The rooms, lowest first: a room may import those before it, never those after it.
const ROOMS: &[&str] = &[
    "util",
    "http",
    "state",
    "documented",
    "notify",
    "flows",
    "control",
    "routing",
    "lib",
];

/// The rooms that are one file at the top of src/ (the others are folders).
const TOP_FILES: &[&str] = &["lib.rs", "control.rs", "routing.rs"];

fn rank(room: &str) -> usize {
    ROOMS.iter().position(|r| *r == room).unwrap_or(ROOMS.len())
}

/// A room import that goes the wrong way, or a file that is in no room.
#[derive(Debug, PartialEq)]
struct Breach {
    file: String,
    line: usize,
    what: String,
}

impl std::fmt::Display for Breach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.what)
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under src/: `flows/v2/refund.rs` is `[flows, v2, refund]`,
/// `flows/v2/mod.rs` is `[flows, v2]`, `lib.rs` is `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The room a module path lies in: its first segment, or `lib` for the crate root.
fn room_of(path: &[String]) -> String {
    path.first().cloned().unwrap_or_else(|| "lib".into())
}

/// The room `crate::<first>` names: a room by its name, any other item lives in lib.rs.
fn room_named(first: &str) -> String {
    if ROOMS.contains(&first) {
        first.to_string()
    } else {
        "lib".into()
    }
}

/// Whether `c` may be part of an identifier.
fn ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The paths a line mentions: each `crate::…` or `super::…` (with `{a, b}` groups opened, as
/// far as the line goes), as the segments after `crate` or the `super`s.
fn paths_in(code: &str) -> Vec<(usize, Vec<String>)> {
    let mut found = Vec::new();
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..].iter().collect();
        let starts = (rest.starts_with("crate::") || rest.starts_with("super::"))
            && (i == 0 || !ident(bytes[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        // (supers, segments)
        let mut supers = 0;
        let mut j = i;
        let is_crate = rest.starts_with("crate::");
        if is_crate {
            j += "crate::".len();
        } else {
            while code_at(&bytes, j).starts_with("super::") {
                supers += 1;
                j += "super::".len();
            }
        }
        let mut segs = Vec::new();
        let seg: String = bytes[j..].iter().take_while(|c| ident(**c)).collect();
        if !seg.is_empty() {
            segs.push(seg);
            found.push((if is_crate { usize::MAX } else { supers }, segs));
        } else if bytes.get(j) == Some(&'{') {
            // a group: each item's first segment
            let group: String = bytes[j + 1..].iter().take_while(|c| **c != '}').collect();
            for item in group.split(',') {
                let first: String = item.trim().chars().take_while(|c| ident(*c)).collect();
                if !first.is_empty() && first != "self" {
                    found.push((if is_crate { usize::MAX } else { supers }, vec![first]));
                }
            }
        }
        i = j.max(i + 1);
    }
    found
}

fn code_at(chars: &[char], at: usize) -> String {
    chars[at.min(chars.len())..].iter().take(7).collect()
}

/// The code of a line, without a trailing `//` comment (doc links are not imports).
fn code_of(line: &str) -> &str {
    let t = line.trim_start();
    if t.starts_with("//") {
        return "";
    }
    match line.find("//") {
        // `//` inside a string (a URL) is left in: a path there is not an import either
        Some(k) if !line[..k].contains('"') => &line[..k],
        _ => line,
    }
}

/// Every breach of the rooms in the tree at `src`.
fn breaches(src: &Path) -> Vec<Breach> {
    let mut out = Vec::new();
    for e in fs::read_dir(src).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let allowed = if p.is_dir() {
            ROOMS.contains(&name.as_str()) && !TOP_FILES.contains(&format!("{name}.rs").as_str())
        } else {
            TOP_FILES.contains(&name.as_str())
        };
        if !allowed {
            out.push(Breach {
                file: name.clone(),
                line: 0,
                what: format!(
                    "`{name}` sits at the top of src/ but is no room: move it into one of {:?}",
                    ROOMS
                ),
            });
        }
    }
    let mut files = Vec::new();
    rust_files(src, &mut files);
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let shown = rel.display().to_string();
        let base = module_path(rel);
        let room = room_of(&base);
        let text = fs::read_to_string(&file).expect("a source file is text");
        // inline modules (`mod tests {`): their indentation and name, innermost last
        let mut inline: Vec<(usize, String)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let indent = line.len() - line.trim_start().len();
            if let Some((at, _)) = inline.last() {
                if line.trim() == "}" && indent == *at {
                    inline.pop();
                    continue;
                }
            }
            let t = line.trim_start();
            let decl = t.strip_prefix("pub(crate) ").unwrap_or(t);
            if let Some(rest) = decl.strip_prefix("mod ") {
                if let Some(name) = rest.strip_suffix(" {") {
                    inline.push((indent, name.trim().to_string()));
                    continue;
                }
            }
            let mut here = base.clone();
            here.extend(inline.iter().map(|(_, m)| m.clone()));
            for (supers, segs) in paths_in(code_of(line)) {
                let target = if supers == usize::MAX {
                    room_named(&segs[0])
                } else if supers > here.len() {
                    // `super` beyond the crate root does not compile anyway
                    continue;
                } else {
                    let mut to = here[..here.len() - supers].to_vec();
                    if to.is_empty() {
                        room_named(&segs[0])
                    } else {
                        to.truncate(1);
                        room_of(&to)
                    }
                };
                if target != room && rank(&target) > rank(&room) {
                    out.push(Breach {
                        file: shown.clone(),
                        line: n + 1,
                        what: format!(
                            "room `{room}` imports the higher room `{target}`: `{}`",
                            line.trim()
                        ),
                    });
                }
            }
        }
    }
    out
}

fn src_dir() -> PathBuf {
    match std::env::var_os("ROOMS_SRC") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

#[test]
fn rooms_import_only_lower_rooms() {
    let found = breaches(&src_dir());
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert!(
        found.is_empty(),
        "{} import(s) against the rooms (docs/emulator.md, \"Rooms\"):\n{}",
        found.len(),
        list.join("\n")
    );
}

/// The checker itself: a small tree with one import up, one down, one file in no room.
#[test]
fn the_checker_names_an_import_up_and_a_file_in_no_room() {
    let root = std::env::temp_dir().join(format!("emulator-rooms-{}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let write = |rel: &str, text: &str| {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    };
    write("lib.rs", "mod http;\nmod flows;\n");
    write(
        "http/mod.rs",
        "//! may name crate::flows in a comment\nuse crate::util::lock;\nuse crate::{flows, util};\n",
    );
    write(
        "flows/pay.rs",
        "use crate::http::answer::Answer;\nuse super::super::Emulator;\n#[cfg(test)]\nmod tests {\n    use super::*;\n}\n",
    );
    write("stray.rs", "");
    let found = breaches(&root);
    let _ = fs::remove_dir_all(&root);
    let at: Vec<(String, usize)> = found.iter().map(|b| (b.file.clone(), b.line)).collect();
    assert!(at.contains(&("http/mod.rs".into(), 3)), "{found:#?}");
    assert!(at.contains(&("flows/pay.rs".into(), 2)), "{found:#?}");
    assert!(at.contains(&("stray.rs".into(), 0)), "{found:#?}");
    assert_eq!(found.len(), 3, "{found:#?}");
}
