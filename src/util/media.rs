//! Media uploads, as wechatpay-php's `Util\MediaUtil`: images and videos go up as
//! `multipart/form-data` with a `meta` part (`{"filename":…,"sha256":…}` JSON) and a `file`
//! part. The APIv3 signature covers the meta JSON, not the multipart bytes, so the meta is
//! serialized once and the very same bytes are signed and sent.
//!
//! Works for `v3/merchant/media/upload`, `v3/merchant/media/video_upload`,
//! `v3/marketing/favor/media/image-upload`, `v3/merchant-service/images/upload` and the other
//! upload endpoints, through [`Chain::upload`](crate::Chain::upload):
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
//! use serde_json::json;
//! use wechatpay_chain::util::media::Media;
//!
//! let media = Media::from_path("/path/to/logo.png")?;
//! let res = client.chain("v3/merchant/media/upload").upload(&media, json!({}))?;
//! println!("{}", res.json::<serde_json::Value>()?["media_id"]);
//!
//! // Endpoints whose meta has more fields:
//! let media = Media::from_path("/path/to/cards.csv")?.with_meta(json!({"bank_type": "CITIC_CREDIT"}))?;
//! # Ok(()) }
//! ```
//!
//! The file is held in memory: the platform's upload limits (2 MiB images, 5 MiB videos) keep
//! that small.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::error::Error;
use crate::formatter;

/// A file ready to upload: its meta JSON (signed) and the multipart body (sent).
#[derive(Clone)]
pub struct Media {
    filename: String,
    file: Bytes,
    sha256: String,
    meta: String,
    boundary: String,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media")
            .field("meta", &self.meta)
            .field("len", &self.file.len())
            .finish()
    }
}

/// The `Content-Type` of the file part, by extension (as Guzzle guesses it for PHP).
fn guess_type(filename: &str) -> &'static str {
    let ext = filename
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "bmp" => "image/bmp",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" | "m4v" | "f4v" => "video/mp4",
        "avi" => "video/x-msvideo",
        "wmv" => "video/x-ms-wmv",
        "mpeg" | "mpg" => "video/mpeg",
        "mov" => "video/quicktime",
        "mkv" => "video/x-matroska",
        "flv" => "video/x-flv",
        "rmvb" => "application/vnd.rn-realmedia-vbr",
        "csv" => "text/csv",
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The file name without directories, as PHP's `basename`; refused when empty or when it holds
/// control characters (they cannot be sent in a part header).
fn basename(name: &str) -> Result<String, Error> {
    let base = name
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(name)
        .trim()
        .to_string();
    if base.is_empty() || base == "." || base == ".." {
        return Err(Error::arg(format!(
            "media file name {:?} has no base name",
            crate::error::one_line(name)
        )));
    }
    if base.chars().any(char::is_control) {
        return Err(Error::arg(
            "media file name must not contain control characters",
        ));
    }
    Ok(base)
}

/// A part header's quoted value, escaped as browsers do (WHATWG): `"` as `%22`.
fn quoted(s: &str) -> String {
    s.replace('"', "%22")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack.len() >= needle.len()
        && haystack
            .windows(needle.len())
            .any(|w| w[0] == needle[0] && w == needle)
}

impl Media {
    /// A file given by name and content; the name's directories are dropped.
    pub fn new(filename: &str, content: impl Into<Bytes>) -> Result<Media, Error> {
        let file: Bytes = content.into();
        if file.is_empty() {
            return Err(Error::arg("media file is empty"));
        }
        let filename = basename(filename)?;
        let sha256 = crate::crypto::hash::sha256_hex(&file);
        let mut m = Media {
            filename,
            file,
            sha256,
            meta: String::new(),
            boundary: String::new(),
        };
        m.set_meta(Map::new())?;
        Ok(m)
    }

    /// Reads a file from disk.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Media, Error> {
        let path = path.as_ref();
        let content = std::fs::read(path).map_err(|e| {
            Error::io_context(format!("cannot read media file {}", path.display()), e)
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Media::new(&name, content)
    }

    /// Adds fields to the meta JSON, or overrides `filename`/`sha256` (a new `filename` names
    /// the file part too): e.g. `{"bank_type": "…"}` for the endpoints that want it. Fields keep
    /// their order: `filename`, `sha256`, then the added ones.
    pub fn with_meta(mut self, fields: Value) -> Result<Media, Error> {
        match fields {
            Value::Object(m) => {
                self.set_meta(m)?;
                Ok(self)
            }
            Value::Null => Ok(self),
            other => Err(Error::arg(format!(
                "media meta must be a JSON object, got {}",
                crate::uri::kind(&other)
            ))),
        }
    }

    fn set_meta(&mut self, fields: Map<String, Value>) -> Result<(), Error> {
        let mut meta = Map::new();
        meta.insert("filename".into(), Value::String(self.filename.clone()));
        meta.insert("sha256".into(), Value::String(self.sha256.clone()));
        if let Ok(Value::Object(old)) = serde_json::from_str::<Value>(&self.meta) {
            meta.extend(old);
        }
        meta.extend(fields);
        match meta.get("filename") {
            Some(Value::String(f)) => self.filename = basename(f)?,
            _ => return Err(Error::arg("media meta filename must be a string")),
        }
        self.meta = serde_json::to_string(&Value::Object(meta))
            .map_err(|e| Error::arg(format!("media meta cannot be encoded: {e}")))?;
        // A boundary that appears nowhere in the parts.
        loop {
            let b = format!("wechatpay-chain-{}", formatter::nonce(24));
            if !contains(&self.file, b.as_bytes()) && !self.meta.contains(&b) {
                self.boundary = b;
                return Ok(());
            }
        }
    }

    /// The meta JSON: exactly the bytes that are signed and sent in the `meta` part.
    pub fn meta(&self) -> &str {
        &self.meta
    }

    /// The file name sent (in the meta and the `file` part).
    pub fn filename(&self) -> &str {
        &self.filename
    }

    /// Lowercase hex SHA-256 of the file.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The file's content.
    pub fn content(&self) -> &Bytes {
        &self.file
    }

    /// The multipart boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The request's `Content-Type`: `multipart/form-data; boundary=…`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The `Content-Type` of the `file` part, guessed from the file name's extension.
    pub fn file_content_type(&self) -> &'static str {
        guess_type(&self.filename)
    }

    /// The request body: the `meta` part, then the `file` part.
    pub fn to_multipart(&self) -> Bytes {
        let b = &self.boundary;
        let name = quoted(&self.filename);
        let mut out = BytesMut::with_capacity(self.file.len() + self.meta.len() + 400);
        out.put_slice(format!("--{b}\r\n").as_bytes());
        out.put_slice(b"Content-Disposition: form-data; name=\"meta\"\r\n");
        out.put_slice(b"Content-Type: application/json\r\n\r\n");
        out.put_slice(self.meta.as_bytes());
        out.put_slice(format!("\r\n--{b}\r\n").as_bytes());
        out.put_slice(
            format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n")
                .as_bytes(),
        );
        out.put_slice(format!("Content-Type: {}\r\n\r\n", self.file_content_type()).as_bytes());
        out.put_slice(&self.file);
        out.put_slice(format!("\r\n--{b}--\r\n").as_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Splits a multipart body into (headers, content) parts, checking the framing.
    fn parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
        let delim = format!("--{boundary}");
        let text = body;
        assert!(text.starts_with(format!("{delim}\r\n").as_bytes()));
        assert!(text.ends_with(format!("\r\n{delim}--\r\n").as_bytes()));
        let sep = format!("\r\n{delim}");
        let inner = &text[delim.len() + 2..text.len() - (sep.len() + 4)];
        let mut out = Vec::new();
        let mut rest = inner;
        loop {
            let end = rest
                .windows(sep.len())
                .position(|w| w == sep.as_bytes())
                .unwrap_or(rest.len());
            let part = &rest[..end];
            let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            out.push((
                String::from_utf8(part[..split].to_vec()).unwrap(),
                part[split + 4..].to_vec(),
            ));
            if end == rest.len() {
                break;
            }
            rest = &rest[end + sep.len() + 2..];
        }
        out
    }

    #[test]
    fn meta_is_signed_and_sent_byte_for_byte() {
        let png = b"\x89PNG\r\n\x1a\n\x00\x00fake image bytes \r\n--not-a-boundary\r\n".to_vec();
        let m = Media::new("/tmp/dir/logo.png", png.clone()).unwrap();
        assert_eq!(m.filename(), "logo.png");
        assert_eq!(m.sha256(), crate::crypto::hash::sha256_hex(&png));
        assert_eq!(
            m.meta(),
            format!(
                "{{\"filename\":\"logo.png\",\"sha256\":\"{}\"}}",
                m.sha256()
            )
        );
        assert_eq!(
            m.content_type(),
            format!("multipart/form-data; boundary={}", m.boundary())
        );
        let body = m.to_multipart();
        let p = parts(&body, m.boundary());
        assert_eq!(p.len(), 2);
        assert_eq!(
            p[0].0,
            "Content-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json"
        );
        assert_eq!(p[0].1, m.meta().as_bytes());
        assert_eq!(
            p[1].0,
            "Content-Disposition: form-data; name=\"file\"; filename=\"logo.png\"\r\nContent-Type: image/png"
        );
        assert_eq!(p[1].1, png);
        assert!(format!("{m:?}").contains("logo.png"));
    }

    #[test]
    fn meta_can_be_extended_and_overridden() {
        let m = Media::new("a.csv", &b"1,2\n"[..])
            .unwrap()
            .with_meta(json!({"bank_type": "CITIC_CREDIT"}))
            .unwrap();
        let v: Value = serde_json::from_str(m.meta()).unwrap();
        assert_eq!(
            v.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["filename", "sha256", "bank_type"]
        );
        assert_eq!(v["bank_type"], "CITIC_CREDIT");
        assert_eq!(m.file_content_type(), "text/csv");
        // Overrides keep the earlier additions and rename the file part.
        let m = m.with_meta(json!({"filename": "b.jpg"})).unwrap();
        let v: Value = serde_json::from_str(m.meta()).unwrap();
        assert_eq!(v["filename"], "b.jpg");
        assert_eq!(v["bank_type"], "CITIC_CREDIT");
        assert_eq!(m.filename(), "b.jpg");
        let body = m.to_multipart();
        assert!(parts(&body, m.boundary())[1]
            .0
            .contains("filename=\"b.jpg\""));
        assert!(m.clone().with_meta(Value::Null).is_ok());
        for bad in [
            json!([1]),
            json!("x"),
            json!({"filename": 1}),
            json!({"filename": "a\r\nb"}),
        ] {
            assert!(
                matches!(
                    m.clone().with_meta(bad.clone()),
                    Err(Error::InvalidArgument(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn names_are_escaped_and_bad_files_refused() {
        let m = Media::new("C:\\photos\\我的\"图\".JPG", &b"x"[..]).unwrap();
        assert_eq!(m.filename(), "我的\"图\".JPG");
        assert_eq!(m.file_content_type(), "image/jpeg");
        let body = m.to_multipart();
        let p = parts(&body, m.boundary());
        assert!(
            p[1].0.contains("filename=\"我的%22图%22.JPG\""),
            "{}",
            p[1].0
        );
        // The meta keeps the real name, JSON-escaped.
        assert!(m.meta().contains(r#""filename":"我的\"图\".JPG""#));
        assert!(Media::new("a.mp4", &b""[..]).is_err());
        assert!(Media::new("dir/", &b"x"[..]).is_err());
        assert!(Media::new("a\nb.png", &b"x"[..]).is_err());
        assert!(matches!(
            Media::from_path("/nonexistent/x.png"),
            Err(Error::Io(_))
        ));
        assert_eq!(guess_type("x.MP4"), "video/mp4");
        assert_eq!(guess_type("noext"), "application/octet-stream");
    }

    #[test]
    fn boundary_never_appears_in_the_file() {
        assert!(contains(b"abcdef", b"cde"));
        assert!(!contains(b"abc", b"abcd"));
        assert!(!contains(b"abc", b""));
        for _ in 0..20 {
            let m = Media::new("x.bin", &b"payload"[..]).unwrap();
            assert!(!contains(m.content(), m.boundary().as_bytes()));
            assert!(m.boundary().starts_with("wechatpay-chain-"));
        }
        let dir = std::env::temp_dir().join(format!("wcp-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("v.mp4");
        std::fs::write(&path, b"video").unwrap();
        let m = Media::from_path(&path).unwrap();
        assert_eq!(m.filename(), "v.mp4");
        assert_eq!(m.content().as_ref(), b"video");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
