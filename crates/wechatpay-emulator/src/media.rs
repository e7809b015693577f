//! Image upload (`v3/merchant/media/upload`): a `multipart/form-data` body with a `meta` JSON
//! part (`filename`, `sha256`) and a `file` part. The request signature covers the meta JSON,
//! not the multipart bytes, so the server reads the parts before checking it; the file must
//! hash to `meta.sha256`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use super::answer::Answer;
use super::validate::{self, req, Field, Kind};
use super::{lock, Shared};
use wechatpay_chain::crypto::hash::sha256_hex;
use wechatpay_chain::formatter;

/// Largest image the platform takes.
const MAX_IMAGE: usize = 2 * 1024 * 1024;

const META: &[Field] = &[req("filename", Kind::Str), req("sha256", Kind::Str)];

/// The parts of an upload.
pub(crate) struct Parts {
    /// The `meta` part as received: what the signature covers.
    pub meta: Bytes,
    /// The `file` part: its file name and bytes.
    pub file: Option<(String, Bytes)>,
}

fn unreadable(why: impl std::fmt::Display) -> Answer {
    Answer::param_error(
        "/",
        "body",
        format!("the multipart body cannot be read: {why}"),
        Value::Null,
    )
}

/// Reads a `multipart/form-data` body; `Ok(None)` for any other content type.
pub(crate) async fn parse(headers: &HeaderMap, body: &Bytes) -> Result<Option<Parts>, Answer> {
    let Some(ct) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(None);
    };
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("multipart/form-data")
    {
        return Ok(None);
    }
    let boundary = multer::parse_boundary(ct).map_err(unreadable)?;
    let stream =
        futures_util::stream::once(std::future::ready(Ok::<Bytes, Infallible>(body.clone())));
    let mut multipart = multer::Multipart::new(stream, boundary);
    let (mut meta, mut file) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(unreadable)? {
        let name = field.name().map(str::to_string);
        let filename = field.file_name().map(str::to_string);
        let data = field.bytes().await.map_err(unreadable)?;
        match name.as_deref() {
            Some("meta") => meta = Some(data),
            Some("file") => file = Some((filename.unwrap_or_default(), data)),
            _ => {}
        }
    }
    let meta = meta.ok_or_else(|| Answer::missing("/meta", "body"))?;
    Ok(Some(Parts { meta, file }))
}

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
