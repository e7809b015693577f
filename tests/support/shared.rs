//! The project's shared files for the tests that compare with them (included by path from
//! every crate's tests): `$SHARED`, else `../shared` beside the repository. A clone from a
//! public host has nothing beside it, so each such test runs on what the repository carries
//! instead, or skips with one printed line; `.ci/run` sets `SHARED`, and then a missing file
//! fails the test rather than skipping it.
//!
//! `tests/fixtures/corpus.sample.jsonl` is 20 lines copied unchanged from the conformance corpus
//! (`conformance/corpus.dev.jsonl`): documented calls as data (method, template, args, what
//! goes on the wire): 17 APIv3 calls of every method, four of them transfers and profit
//! sharing, three APIv2 calls, and two samples that contradict their page (one of each).

#![allow(dead_code)]

use std::path::Path;

/// The repository's root: the folder above the including crate that holds this file.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|a| a.join("tests/support/shared.rs").is_file())
        .expect("the repository root is above the crate")
}

/// The file `rel` of the shared folder, if there: `None` when `SHARED` is not set and there is
/// no `../shared`, or it lacks the file. With `SHARED` set, a missing file is a failure.
pub fn read(rel: &str) -> Option<String> {
    let (dir, asked) = match std::env::var_os("SHARED") {
        Some(s) => (root().join(s), true),
        None => (root().join("../shared"), false),
    };
    let path = dir.join(rel);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if asked => panic!(
            "SHARED is set but {} is not readable ({e}): point SHARED at the shared folder, or unset it to run on what the repository carries",
            path.display()
        ),
        Err(_) => None,
    }
}

/// Which corpus a test replays.
pub struct Corpus {
    /// Its lines (JSON objects), blank ones left out.
    pub text: String,
    /// Whether it is the whole conformance corpus (else the sample the repository carries).
    pub full: bool,
}

impl Corpus {
    /// The non-blank lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines().filter(|l| !l.trim().is_empty())
    }
}

/// The conformance corpus if it is there, else the repository's sample of it (saying so on one
/// line).
pub fn corpus() -> Corpus {
    if let Some(text) = read("conformance/corpus.dev.jsonl") {
        return Corpus { text, full: true };
    }
    let sample = root().join("tests/fixtures/corpus.sample.jsonl");
    eprintln!(
        "no conformance corpus (SHARED or ../shared): replaying its sample {} instead",
        sample.display()
    );
    Corpus {
        text: std::fs::read_to_string(&sample).unwrap(),
        full: false,
    }
}

/// A seed page (`seeds/NAME`), or `None` with one printed line naming what is skipped.
pub fn seed(name: &str, skipped: &str) -> Option<String> {
    let text = read(&format!("seeds/{name}"));
    if text.is_none() {
        eprintln!("skipped: {skipped}: no seed pages (SHARED or ../shared)");
    }
    text
}
