//! Segment normalization never panics, is idempotent, and lowers every capital of a part written
//! as a name; a part that holds data (`T1000001`, `ALL`, `粤B12345`) and the query are kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::uri::{holds_data, normalize};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let once = normalize(s);
    let (path, query) = s.split_once('?').map_or((s, None), |(p, q)| (p, Some(q)));
    let (got, got_query) = once
        .split_once('?')
        .map_or((once.as_str(), None), |(p, q)| (p, Some(q)));
    assert_eq!(got_query, query, "{s:?} -> {once:?}");
    // `_name_` (the whole path) is the chain's spelling of the placeholder `{name}`.
    let unwrapped;
    let got = if path.starts_with('_') && got.starts_with('{') && got.ends_with('}') {
        unwrapped = format!("_{}_", &got[1..got.len() - 1]);
        unwrapped.as_str()
    } else {
        got
    };
    let parts: Vec<&str> = got.split('/').collect();
    assert_eq!(parts.len(), path.split('/').count(), "{s:?} -> {once:?}");
    for (orig, part) in path.split('/').zip(parts) {
        if holds_data(orig) {
            assert_eq!(part, orig, "{s:?} -> {once:?}");
        } else {
            assert!(!part.bytes().any(|b| b.is_ascii_uppercase()), "{s:?} -> {once:?}");
        }
    }
    // A second pass may only rewrite a `_x_` that the first pass could not have produced.
    if !once.starts_with('_') {
        assert_eq!(normalize(&once), once);
    }
});
