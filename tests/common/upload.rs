//! A loopback platform for uploads: checks the signature over the meta part as the platform does.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use wechatpay_chain::{formatter, Rsa};

use super::{Keys, Recorded, Reply, Server, MCHID, SERIAL};

/// The `multipart/form-data` parts of a request: name → (part headers, content).
pub fn multipart(rec: &Recorded) -> HashMap<String, (String, Vec<u8>)> {
    let ct = rec.headers["content-type"].to_str().unwrap();
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .expect("a multipart content type");
    let delim = format!("--{boundary}");
    let body = &rec.body[..];
    let mut out = HashMap::new();
    let mut pos = 0;
    let find = |from: usize, needle: &[u8]| {
        body[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    assert!(body.starts_with(delim.as_bytes()));
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--\r\n") {
            assert_eq!(pos + 4, body.len(), "nothing after the closing delimiter");
            break;
        }
        assert!(body[pos..].starts_with(b"\r\n"));
        pos += 2;
        let head_end = find(pos, b"\r\n\r\n").unwrap();
        let head = String::from_utf8(body[pos..head_end].to_vec()).unwrap();
        let next = find(head_end, format!("\r\n{delim}").as_bytes()).unwrap();
        let content = body[head_end + 4..next].to_vec();
        let name = head
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        out.insert(name, (head, content));
        pos = next + 2;
    }
    out
}

/// What the platform checks on an upload: the signature covers the meta part, byte for byte,
/// and the meta's sha256 is the file's.
pub fn platform_checks_upload(rec: &Recorded, keys: &Keys) -> Result<Value, String> {
    let parts = multipart(rec);
    let (_, meta) = parts.get("meta").ok_or("no meta part")?;
    let (file_head, file) = parts.get("file").ok_or("no file part")?;
    let auth = rec.headers["authorization"].to_str().unwrap();
    let field = |k: &str| {
        auth.split(&format!("{k}=\""))
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string()
    };
    if field("mchid") != MCHID || field("serial_no") != SERIAL {
        return Err("wrong mchid or serial_no".into());
    }
    let msg = formatter::request(
        &rec.method,
        &rec.target,
        &field("timestamp"),
        &field("nonce_str"),
        meta,
    );
    if !Rsa::verify(&msg, &field("signature"), &keys.merchant_public) {
        return Err("signature does not cover the meta".into());
    }
    let meta: Value = serde_json::from_slice(meta).map_err(|e| e.to_string())?;
    let sha = wechatpay_chain::crypto::hash::sha256_hex(file);
    if meta["sha256"] != sha {
        return Err("sha256 of the file does not match the meta".into());
    }
    if !file_head.contains(&format!(
        "filename=\"{}\"",
        meta["filename"].as_str().unwrap_or("")
    )) {
        return Err("file part name differs from the meta".into());
    }
    Ok(meta)
}

pub fn upload_platform() -> Server {
    let keys = Keys::shared().clone();
    Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| {
            if r.method != "POST" {
                return Reply::json(405, json!({"code": "METHOD", "message": r.method}));
            }
            match platform_checks_upload(r, &keys) {
                Ok(meta) => Reply::json(
                    200,
                    json!({"media_id": format!("MEDIA-{}", meta["sha256"].as_str().unwrap()), "meta": meta}),
                ),
                Err(e) => Reply::json(400, json!({"code": "SIGN_ERROR", "message": e})),
            }
        }),
    )
}
