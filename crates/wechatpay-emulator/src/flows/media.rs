//! Image upload (`v3/merchant/media/upload`): a `multipart/form-data` body with a `meta` JSON
//! part (`filename`, `sha256`) and a `file` part. The request signature covers the meta JSON,
//! not the multipart bytes, so the server reads the parts before checking it; the file must
//! hash to `meta.sha256`.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::http::answer::Answer;
use crate::http::multipart::Parts;
use crate::http::validate::{self, req, Field, Kind};
use crate::state::shared::Shared;
use crate::util::lock;
use wechatpay_chain::crypto::hash::sha256_hex;
use wechatpay_chain::formatter;

/// Largest image the platform takes.
const MAX_IMAGE: usize = 2 * 1024 * 1024;

const META: &[Field] = &[req("filename", Kind::Str), req("sha256", Kind::Str)];

/// `POST v3/merchant/media/upload`: answers a `media_id`.
pub(crate) fn upload(shared: &Arc<Shared>, parts: Option<Parts>) -> Answer {
    let Some(parts) = parts else {
        return Answer::param_error(
            "/",
            "body",
            "the upload must be multipart/form-data with a meta part and a file part",
            Value::Null,
        );
    };
    let meta = match validate::object_at(&parts.meta, "/meta")
        .and_then(|m| validate::check_under(&m, META, "/meta").map(|_| m))
    {
        Ok(m) => m,
        Err(a) => return a,
    };
    let Some((_, file)) = parts.file else {
        return Answer::missing("/file", "body");
    };
    let filename = validate::text(&meta, "filename");
    let lower = filename.to_ascii_lowercase();
    if ![".jpg", ".jpeg", ".png", ".bmp"]
        .iter()
        .any(|ext| lower.ends_with(ext))
    {
        return Answer::param_error(
            "/meta/filename",
            "body",
            "only JPG, PNG and BMP images are taken",
            Value::from(filename),
        );
    }
    if file.len() > MAX_IMAGE {
        return Answer::param_error(
            "/file",
            "body",
            "the image is larger than 2 MiB",
            Value::from(file.len()),
        );
    }
    let claimed = validate::text(&meta, "sha256");
    if !sha256_hex(&file).eq_ignore_ascii_case(claimed.trim()) {
        return Answer::param_error(
            "/meta/sha256",
            "body",
            "meta.sha256 is not the SHA-256 of the file",
            Value::from(claimed),
        );
    }
    let media_id = formatter::nonce(64);
    lock(&shared.state)
        .media
        .insert(media_id.clone(), (filename.to_string(), file.len()));
    Answer::ok(json!({"media_id": media_id}))
}
