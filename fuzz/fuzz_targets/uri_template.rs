//! URI template expansion and query building never panic, and what they produce is a valid
//! request target or a clean error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wechatpay_chain::uri::{build_query, expand, Placeholders};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let (template, args) = s.split_once('\n').unwrap_or((s, "{}"));
    let args: serde_json::Value = serde_json::from_str(args).unwrap_or_else(|_| serde_json::json!({"a": args}));
    let Some(map) = args.as_object() else { return };
    for mode in [Placeholders::Strict, Placeholders::Lenient] {
        if let Ok(out) = expand(template, map, mode) {
            // Whatever a placeholder held is encoded: no raw control characters or spaces appear
            // that were not in the template itself.
            if !template.contains(' ') && !template.chars().any(char::is_control) {
                assert!(!out.contains(' ') && !out.chars().any(char::is_control), "{out:?}");
            }
        }
    }
    let q = build_query(map);
    assert!(!q.contains(' ') && !q.contains('#'), "{q:?}");
});
