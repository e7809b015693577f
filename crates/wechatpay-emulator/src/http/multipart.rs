//! `multipart/form-data` bodies (uploads): read before the signature check, which covers
//! their `meta` part only.

use std::convert::Infallible;

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

use crate::http::answer::Answer;

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
