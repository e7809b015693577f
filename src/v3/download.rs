//! Bill and statement downloads: the second step after `v3/bill/tradebill`,
//! `v3/bill/fundflowbill`, `v3/bill/sub-merchant-fundflowbill`'s parts and friends, which
//! answer a `download_url` with a `hash_type`/`hash_value` of the bill.
//!
//! The `download_url` is called signed, through the same client: its path and query go to the
//! client's `base_uri` (a per-call `base_uri` in the args goes elsewhere), so a client pointed at
//! a proxy or a test platform downloads from there too. The platform answers
//! `/v3/billdownload/file` unsigned ([`crate::client_json::is_unsigned`]),
//! so the digest is what proves the file: it is computed over the bill as written (gzip is
//! decompressed, as `hash_value` covers the original bill) and a mismatch is an
//! [`Error::Verification`].
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use serde_json::json;
//! use wechatpay_chain::download::Bill;
//!
//! let bill: Bill = client
//!     .chain("v3/bill/tradebill")
//!     .get(json!({"query": {"bill_date": "2024-06-01", "tar_type": "GZIP"}}))?
//!     .json()?;
//! // Write to a temporary file and keep it only when the digest matched.
//! let mut file = std::fs::File::create("/tmp/tradebill.csv.part")?;
//! let done = client.download_bill(&bill, json!({"timeout": 120}), &mut file)?;
//! std::fs::rename("/tmp/tradebill.csv.part", "/tmp/tradebill.csv")?;
//! println!("{} bytes, sha1 {}", done.bytes, done.digest.unwrap_or_default());
//! # Ok(()) }
//! ```
//!
//! The file streams from the socket to the writer with bounded memory, whatever its size (the
//! client's [`body_limit`](crate::Builder::body_limit) does not apply to it), so bytes reach the
//! writer before the digest is known at the end: on an error, discard what was written (write
//! to a temporary file, rename on success). Streaming downloads are not retried.
//!
//! A sub-merchant fund-flow bill comes in parts ([`BillList`]), possibly encrypted:
//! [`Client::download_bills`](crate::Client::download_bills) joins them in order, each decrypted
//! (AES-256-GCM, its key opened with the merchant's private key) and checked as it streams.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Method, Uri};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client_json;
use crate::crypto::hash::hex;
use crate::error::{one_line, Error};
#[cfg(test)]
use crate::response::Response;
use crate::uri;
use crate::v3::bill_crypto::{BillDigest, BillOpener};

/// What the bill APIs answer: where to download, and the digest the bill must have. A part of
/// `v3/bill/sub-merchant-fundflowbill`'s `download_bill_list` (see [`BillList`]) also carries its
/// `bill_sequence` and, when the bill was asked with `algorithm=AEAD_AES_256_GCM`, the
/// `encrypt_key` and `nonce` it was encrypted with: [`Client::download_bill`](crate::Client::download_bill)
/// then decrypts it as it streams.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Bill {
    /// `https://api.mch.weixin.qq.com/v3/billdownload/file?token=…`, valid for 30 s.
    pub download_url: String,
    /// `SHA1` (or `SHA256`).
    pub hash_type: String,
    /// Hex digest of the original (decompressed, decrypted) bill.
    pub hash_value: String,
    /// Place of this part in a [`BillList`], from 1.
    #[serde(default)]
    pub bill_sequence: Option<u32>,
    /// The file's AES-256-GCM key, encrypted for the merchant's certificate (RSA-OAEP), base64.
    #[serde(default)]
    pub encrypt_key: Option<String>,
    /// The file's AES-256-GCM nonce.
    #[serde(default)]
    pub nonce: Option<String>,
}

impl Bill {
    /// A bill locator from its three fields.
    pub fn new(
        download_url: impl Into<String>,
        hash_type: impl Into<String>,
        hash_value: impl Into<String>,
    ) -> Bill {
        Bill {
            download_url: download_url.into(),
            hash_type: hash_type.into(),
            hash_value: hash_value.into(),
            bill_sequence: None,
            encrypt_key: None,
            nonce: None,
        }
    }

    /// The same locator for a file encrypted with AES-256-GCM under `encrypt_key` (RSA-OAEP
    /// encrypted for the merchant, base64) and `nonce`.
    pub fn encrypted(self, encrypt_key: impl Into<String>, nonce: impl Into<String>) -> Bill {
        Bill {
            encrypt_key: Some(encrypt_key.into()),
            nonce: Some(nonce.into()),
            ..self
        }
    }
}

/// What `v3/bill/sub-merchant-fundflowbill` answers: the bill in parts, to be joined in
/// `bill_sequence` order ([`Client::download_bills`](crate::Client::download_bills) does).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct BillList {
    /// How many parts the platform says there are.
    #[serde(default)]
    pub download_bill_count: Option<u32>,
    /// The parts.
    pub download_bill_list: Vec<Bill>,
}

impl BillList {
    /// A list of parts, e.g. kept from an earlier answer.
    pub fn new(parts: Vec<Bill>) -> BillList {
        BillList {
            download_bill_count: Some(parts.len() as u32),
            download_bill_list: parts,
        }
    }

    /// The parts in `bill_sequence` order, after checking that they are numbered 1 to n with
    /// none missing or repeated, and that n is the `download_bill_count`.
    pub fn in_order(&self) -> Result<Vec<&Bill>, Error> {
        let mut parts: Vec<&Bill> = self.download_bill_list.iter().collect();
        if parts.is_empty() {
            return Err(Error::decode("the bill list has no parts"));
        }
        if parts.len() > 1 || parts[0].bill_sequence.is_some() {
            parts.sort_by_key(|b| b.bill_sequence);
            for (i, b) in parts.iter().enumerate() {
                if b.bill_sequence != Some(i as u32 + 1) {
                    return Err(Error::decode(format!(
                        "the bill parts are not numbered 1 to {} (found {:?} at place {})",
                        parts.len(),
                        b.bill_sequence,
                        i + 1
                    )));
                }
            }
        }
        if let Some(n) = self.download_bill_count {
            if n as usize != parts.len() {
                return Err(Error::decode(format!(
                    "download_bill_count says {n} parts, the list has {}",
                    parts.len()
                )));
            }
        }
        Ok(parts)
    }
}

/// The digests the platform names in `hash_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashType {
    /// `SHA1`, what the bill APIs use today.
    Sha1,
    /// `SHA256`.
    Sha256,
    /// `SM3`, the 国密 scheme's digest (feature `shangmi`).
    #[cfg(feature = "shangmi")]
    Sm3,
}

impl HashType {
    /// Parses `SHA1`/`SHA-1`/`SHA256`/`SHA-256` in any case; anything else is refused rather
    /// than skipped.
    pub fn parse(s: &str) -> Result<HashType, Error> {
        match s.trim().to_ascii_uppercase().replace('-', "").as_str() {
            "SHA1" => Ok(HashType::Sha1),
            "SHA256" => Ok(HashType::Sha256),
            #[cfg(feature = "shangmi")]
            "SM3" => Ok(HashType::Sm3),
            _ => Err(Error::Verification(format!(
                "hash_type {:?} is not supported (SHA1, SHA256{}): the bill cannot be checked",
                one_line(s),
                if cfg!(feature = "shangmi") {
                    ", SM3"
                } else {
                    "; SM3 needs the shangmi feature"
                }
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            HashType::Sha1 => "SHA1",
            HashType::Sha256 => "SHA256",
            #[cfg(feature = "shangmi")]
            HashType::Sm3 => "SM3",
        }
    }
}

/// What a download wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// Bytes written to the writer (after decompression).
    pub bytes: u64,
    /// Whether the answer was gzip (and was decompressed).
    pub gzip: bool,
    /// The digest checked, lowercase hex (`None` for [`Client::download_to`](crate::Client::download_to)).
    pub digest: Option<String>,
}

/// Splits a download URL (absolute, or a path) into the chain path and the query.
pub(crate) fn target_of(url: &str) -> Result<(String, String), Error> {
    let url = url.trim();
    let (path, query) = if url.starts_with("https://") || url.starts_with("http://") {
        let uri: Uri = url.parse().map_err(|_| {
            Error::arg(format!(
                "download_url {:?} is not a valid URL",
                one_line(url)
            ))
        })?;
        (
            uri.path().to_string(),
            uri.query().unwrap_or_default().to_string(),
        )
    } else {
        match url.split_once('?') {
            Some((p, q)) => (p.to_string(), q.to_string()),
            None => (url.to_string(), String::new()),
        }
    };
    let path = path.trim_start_matches('/').to_string();
    if path.is_empty() || path.contains(['{', '}']) {
        return Err(Error::arg(format!(
            "download_url {:?} has no usable path",
            one_line(url)
        )));
    }
    Ok((path, query))
}

/// The args of a download: the caller's (`headers`, `base_uri`, `timeout`) and the URL's query.
fn download_args(args: Value, query: String) -> Result<Value, Error> {
    let mut m = match args {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(Error::arg(format!(
                "args must be a JSON object, got {}",
                uri::kind(&other)
            )))
        }
    };
    for k in ["query", "json", "body"] {
        if m.contains_key(k) {
            return Err(Error::arg(format!(
                "a download takes no {k} in its args: the URL carries the query"
            )));
        }
    }
    if !query.is_empty() {
        m.insert("query".into(), Value::String(query));
    }
    // The URL is the platform's own, not a call to check against the catalogue.
    m.entry("validate").or_insert(Value::Bool(false));
    Ok(Value::Object(m))
}

/// The body decoded as it arrives: an encrypted bill is decrypted, gzip is recognised by its
/// magic and unpacked, and the unpacked bill is hashed on the way to the writer.
struct Pipeline {
    open: Option<BillOpener>,
    gunzip: bool,
    sniff: Vec<u8>,
    gz: Option<flate2::write::MultiGzDecoder<Vec<u8>>>,
    decided: bool,
    hasher: Option<BillDigest>,
    bytes: u64,
}

impl Pipeline {
    fn new(gunzip: bool, hash: Option<HashType>, open: Option<BillOpener>) -> Result<Self, Error> {
        Ok(Pipeline {
            open,
            gunzip,
            sniff: Vec::new(),
            gz: None,
            decided: !gunzip,
            hasher: match hash {
                Some(h) => Some(BillDigest::new(h)?),
                None => None,
            },
            bytes: 0,
        })
    }

    fn gzip_error(e: std::io::Error) -> Error {
        Error::decode_from("the download is not valid gzip", e)
    }

    /// Takes raw bytes; returns the decoded bytes ready for the writer.
    fn push(&mut self, raw: &[u8]) -> Result<Vec<u8>, Error> {
        // Decrypted bytes are owned already; plain ones are copied once, here.
        let raw: Vec<u8> = match &mut self.open {
            Some(o) => o.update(raw)?,
            None => raw.to_vec(),
        };
        self.decode(raw)
    }

    /// Takes plain (decrypted) bytes; returns them unpacked, counted and hashed.
    fn decode(&mut self, raw: Vec<u8>) -> Result<Vec<u8>, Error> {
        let raw = if self.decided {
            raw
        } else {
            self.sniff.extend_from_slice(&raw);
            if self.sniff.len() < 2 {
                return Ok(Vec::new());
            }
            self.decided = true;
            if self.gunzip && self.sniff.starts_with(&[0x1f, 0x8b]) {
                self.gz = Some(flate2::write::MultiGzDecoder::new(Vec::new()));
            }
            std::mem::take(&mut self.sniff)
        };
        let out = match &mut self.gz {
            Some(gz) => {
                gz.write_all(&raw).map_err(Self::gzip_error)?;
                std::mem::take(gz.get_mut())
            }
            None => raw,
        };
        self.account(&out)?;
        Ok(out)
    }

    fn account(&mut self, out: &[u8]) -> Result<(), Error> {
        if let Some(h) = &mut self.hasher {
            h.update(out)?;
        }
        self.bytes += out.len() as u64;
        Ok(())
    }

    /// Ends the body: returns the last decoded bytes, and the result once the digest matched.
    fn finish(mut self, want: Option<(HashType, &str)>) -> Result<(Vec<u8>, Downloaded), Error> {
        // What an SM4-GCM bill gives once its tag is checked goes through gzip and the digest.
        let mut last = Vec::new();
        if let Some(o) = self.open.take() {
            let rest = o.finish().map_err(|_| {
                Error::Verification(
                    "the encrypted bill does not authenticate (GCM tag): wrong key or nonce, or a damaged file: discard what was written".into(),
                )
            })?;
            last = self.decode(rest)?;
        }
        let mut tail = std::mem::take(&mut self.sniff);
        let gzip = self.gz.is_some();
        if let Some(gz) = self.gz.take() {
            tail = gz.finish().map_err(Self::gzip_error)?;
        }
        self.account(&tail)?;
        last.extend_from_slice(&tail);
        let tail = last;
        let digest = match (&mut self.hasher, want) {
            (Some(h), Some((kind, want))) => {
                let got = hex(&h.finish()?);
                let want = want.trim().to_ascii_lowercase();
                if !crate::crypto::hash::equals(got.as_bytes(), want.as_bytes()) {
                    return Err(Error::Verification(format!(
                        "the download's {} is {got}, not the hash_value {:?}: discard what was written",
                        kind.name(),
                        one_line(&want)
                    )));
                }
                Some(got)
            }
            _ => None,
        };
        Ok((
            tail,
            Downloaded {
                bytes: self.bytes,
                gzip,
                digest,
            },
        ))
    }
}

/// A `std::io::Write` seen as an `AsyncWrite` that is always ready, so that one async
/// implementation serves the blocking calls too (run on the caller's thread by `block_on`).
struct Blocking<W>(W);

impl<W: Write + Unpin> AsyncWrite for Blocking<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(self.get_mut().0.write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(self.get_mut().0.flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Writes a whole body (already verified) through the pipeline; for answers that could not
/// stream, and for tests.
#[cfg(test)]
fn write_sync<W: Write>(
    res: &Response,
    gunzip: bool,
    want: Option<(HashType, &str)>,
    mut writer: W,
) -> Result<Downloaded, Error> {
    let mut p = Pipeline::new(gunzip, want.map(|w| w.0), None)?;
    for chunk in res.body().chunks(64 * 1024) {
        writer.write_all(&p.push(chunk)?)?;
    }
    let (tail, done) = p.finish(want)?;
    writer.write_all(&tail)?;
    writer.flush()?;
    Ok(done)
}

impl crate::Client {
    /// Streams `url` to `writer`. The platform's unsigned downloads stream as they arrive, with
    /// no body limit (the digest is their proof); a signed answer (a statement …) is read
    /// (bounded), verified whole, then written.
    async fn stream_to<W: AsyncWrite + Unpin>(
        &self,
        url: &str,
        args: Value,
        gunzip: bool,
        want: Option<(HashType, &str)>,
        open: Option<BillOpener>,
        writer: W,
    ) -> Result<Downloaded, Error> {
        // The span names the path only: a download URL's query carries its token.
        let path = target_of(url).map(|t| t.0).unwrap_or_default();
        let call = self.stream_once(url, args, gunzip, want, open, writer);
        crate::transport::retry::spanned(&Method::GET, &path, call).await
    }

    async fn stream_once<W: AsyncWrite + Unpin>(
        &self,
        url: &str,
        args: Value,
        gunzip: bool,
        want: Option<(HashType, &str)>,
        open: Option<BillOpener>,
        mut writer: W,
    ) -> Result<Downloaded, Error> {
        let (path, query) = target_of(url)?;
        let args = download_args(args, query)?;
        let core = self.core();
        let mut pending = core.begin(Method::GET, &path, &args)?;
        let request = std::mem::take(&mut pending.request);
        let mut stream = core
            .transport
            .send_streaming(request, pending.secure, pending.limits)
            .await?;
        crate::transport::retry::answered(stream.parts.status);
        // The platform's unsigned downloads stream, the digest checked at the end proving them.
        // Anything else (a signed statement, an error answer) is read, bounded, and checked by
        // `finish` like any answer before a byte is written.
        let verified =
            if stream.parts.status.is_success() && client_json::is_unsigned(&pending.path) {
                None
            } else {
                let body = stream.collect(core.body_limit).await?;
                Some(core.finish(
                    &pending,
                    http::Response::from_parts(stream.parts.clone(), body),
                )?)
            };
        let mut p = Pipeline::new(gunzip, want.map(|w| w.0), open)?;
        match &verified {
            Some(res) => {
                for chunk in res.body().chunks(64 * 1024) {
                    writer.write_all(&p.push(chunk)?).await?;
                }
            }
            None => {
                while let Some(chunk) = stream.next().await {
                    writer.write_all(&p.push(&chunk?)?).await?;
                }
            }
        }
        let (tail, done) = p.finish(want)?;
        writer.write_all(&tail).await?;
        writer.flush().await?;
        Ok(done)
    }

    /// Downloads a bill to `writer`, decompressing gzip, and checks its digest against
    /// `hash_type`/`hash_value`. The file streams: memory stays bounded whatever its size (the
    /// `body_limit` does not apply), and the timeout applies between chunks. `args` may carry
    /// `headers`, `base_uri` and `timeout`. On an error, discard what was written (see the
    /// [module docs](crate::download)).
    pub fn download_bill<W: Write>(
        &self,
        bill: &Bill,
        args: Value,
        mut writer: W,
    ) -> Result<Downloaded, Error> {
        crate::transport::block_on(self.download_bill_async(bill, args, Blocking(&mut writer)))
    }

    /// [`Client::download_bill`](crate::Client::download_bill) to a tokio writer (a `tokio::fs::File` …).
    pub async fn download_bill_async<W: AsyncWrite + Unpin>(
        &self,
        bill: &Bill,
        args: Value,
        writer: W,
    ) -> Result<Downloaded, Error> {
        let kind = HashType::parse(&bill.hash_type)?;
        let open = self.bill_opener(bill)?;
        self.stream_to(
            &bill.download_url,
            args,
            true,
            Some((kind, &bill.hash_value)),
            open,
            writer,
        )
        .await
    }

    /// Downloads every part of a [`BillList`] to `writer`, in `bill_sequence` order, each
    /// decrypted when encrypted and checked by its own digest: the joined parts are the whole
    /// bill. Stops at the first error (discard what was written). Returns what each part wrote.
    pub fn download_bills<W: Write>(
        &self,
        list: &BillList,
        args: Value,
        mut writer: W,
    ) -> Result<Vec<Downloaded>, Error> {
        crate::transport::block_on(self.download_bills_async(list, args, Blocking(&mut writer)))
    }

    /// [`Client::download_bills`](crate::Client::download_bills) to a tokio writer.
    pub async fn download_bills_async<W: AsyncWrite + Unpin>(
        &self,
        list: &BillList,
        args: Value,
        mut writer: W,
    ) -> Result<Vec<Downloaded>, Error> {
        let parts = list.in_order()?;
        let mut done = Vec::with_capacity(parts.len());
        for bill in parts {
            done.push(
                self.download_bill_async(bill, args.clone(), &mut writer)
                    .await?,
            );
        }
        Ok(done)
    }

    /// The decryption stage for an encrypted bill: its key is opened with the merchant's
    /// private key (RSA-OAEP), and the file is AES-256-GCM under that key and the `nonce`'s
    /// bytes, its 16-byte tag last, as the platform's other AES-GCM payloads. Whatever does not
    /// fit that refuses to authenticate at the end; nothing unchecked passes.
    fn bill_opener(&self, bill: &Bill) -> Result<Option<BillOpener>, Error> {
        let (key, nonce) = match (&bill.encrypt_key, &bill.nonce) {
            (None, None) => return Ok(None),
            (Some(k), Some(n)) if !k.trim().is_empty() && !n.is_empty() => (k, n),
            (Some(k), None) if k.trim().is_empty() => return Ok(None),
            _ => {
                return Err(Error::arg(
                    "an encrypted bill needs both encrypt_key and nonce",
                ))
            }
        };
        let cred = self.core().credentials.as_ref().ok_or_else(|| {
            Error::config(
                "decrypting a bill needs the merchant private key: set \
                 --private-key/WECHATPAY_PRIVATE_KEY (in code Builder::private_key)",
            )
        })?;
        // The merchant's key opens the file key: RSA-OAEP, or SM2 for an SM2 merchant.
        let scheme = crate::Scheme::of_key(&cred.key);
        let file_key = scheme.decrypt(key, &cred.key).map_err(|e| {
            Error::crypto_from(
                format!(
                    "the bill's encrypt_key does not open with this merchant's private key ({})",
                    match scheme {
                        crate::Scheme::Rsa => "RSA-OAEP",
                        #[cfg(feature = "shangmi")]
                        crate::Scheme::Sm2 => "SM2",
                    }
                ),
                e,
            )
        })?;
        BillOpener::new(&file_key, nonce.as_bytes()).map(Some)
    }

    /// Downloads a verified answer to `writer` as received (no decompression, no digest of
    /// its own): e.g. an overseas statement, whose `Wechatpay-Statement-Sha1` is checked with
    /// the signature before a byte is written. `url` is absolute or a path with its query.
    pub fn download_to<W: Write>(
        &self,
        url: &str,
        args: Value,
        mut writer: W,
    ) -> Result<Downloaded, Error> {
        crate::transport::block_on(self.download_to_async(url, args, Blocking(&mut writer)))
    }

    /// [`Client::download_to`](crate::Client::download_to) to a tokio writer.
    pub async fn download_to_async<W: AsyncWrite + Unpin>(
        &self,
        url: &str,
        args: Value,
        writer: W,
    ) -> Result<Downloaded, Error> {
        self.stream_to(url, args, false, None, None, writer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use serde_json::json;

    fn response(body: Vec<u8>) -> Response {
        Response::new(http::Response::new(bytes::Bytes::from(body)))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const CSV: &[u8] =
        "交易时间,公众账号ID,商户号\n`2024-06-01 10:00:00,`wx1,`1900000001\n".as_bytes();

    #[test]
    fn plain_and_gzip_bills_are_checked_over_the_original() {
        let sha1 = crate::crypto::hash::sha1_hex(CSV);
        let sha256 = crate::crypto::hash::sha256_hex(CSV);
        for (body, gzip) in [(CSV.to_vec(), false), (gz(CSV), true)] {
            for (kind, want) in [(HashType::Sha1, &sha1), (HashType::Sha256, &sha256)] {
                let mut out = Vec::new();
                let d = write_sync(&response(body.clone()), true, Some((kind, want)), &mut out)
                    .unwrap();
                assert_eq!(out, CSV);
                assert_eq!(d.bytes, CSV.len() as u64);
                assert_eq!(d.gzip, gzip);
                assert_eq!(d.digest.as_deref(), Some(want.as_str()));
                // Uppercase hash_value is fine.
                let upper = want.to_ascii_uppercase();
                write_sync(
                    &response(body.clone()),
                    true,
                    Some((kind, &upper)),
                    Vec::new(),
                )
                .unwrap();
            }
            let e = write_sync(
                &response(body.clone()),
                true,
                Some((HashType::Sha1, &sha256)),
                Vec::new(),
            )
            .unwrap_err();
            assert!(matches!(e, Error::Verification(_)), "{e}");
        }
        // A large, multi-chunk bill.
        let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut out = Vec::new();
        let d = write_sync(
            &response(gz(&big)),
            true,
            Some((HashType::Sha1, &crate::crypto::hash::sha1_hex(&big))),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, big);
        assert_eq!(d.bytes, big.len() as u64);
    }

    #[test]
    fn broken_gzip_and_writer_errors_are_errors() {
        let mut broken = gz(CSV);
        broken.truncate(broken.len() - 12);
        let e = write_sync(
            &response(broken),
            true,
            Some((HashType::Sha1, "00")),
            Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Decode { .. }), "{e}");

        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let e = write_sync(&response(CSV.to_vec()), true, None, Full).unwrap_err();
        assert!(matches!(e, Error::Io(_)), "{e}");
    }

    #[test]
    fn raw_downloads_are_written_as_received() {
        let body = gz(CSV);
        let mut out = Vec::new();
        let d = write_sync(&response(body.clone()), false, None, &mut out).unwrap();
        assert_eq!(out, body);
        assert_eq!(
            d,
            Downloaded {
                bytes: body.len() as u64,
                gzip: false,
                digest: None
            }
        );
        // Chunks as small as one byte: the gzip magic is sniffed across chunk boundaries.
        let sha1 = crate::crypto::hash::sha1_hex(CSV);
        for body in [gz(CSV), CSV.to_vec()] {
            let mut p = Pipeline::new(true, Some(HashType::Sha1), None).unwrap();
            let mut out = Vec::new();
            for b in &body {
                out.extend(p.push(std::slice::from_ref(b)).unwrap());
            }
            let (tail, d) = p.finish(Some((HashType::Sha1, &sha1))).unwrap();
            out.extend(tail);
            assert_eq!(out, CSV);
            assert_eq!(d.gzip, body != CSV);
        }
        // A one-byte body never decided on gzip and is passed through at the end.
        let mut p = Pipeline::new(true, None, None).unwrap();
        assert!(p.push(b"x").unwrap().is_empty());
        assert_eq!(p.finish(None).unwrap().0, b"x");
    }

    #[test]
    fn bill_parts_come_in_sequence_or_not_at_all() {
        let part = |seq: Option<u32>| {
            let mut b = Bill::new(format!("/v3/billdownload/file?token={seq:?}"), "SHA1", "00");
            b.bill_sequence = seq;
            b
        };
        let list = BillList::new(vec![part(Some(3)), part(Some(1)), part(Some(2))]);
        let seqs: Vec<_> = list
            .in_order()
            .unwrap()
            .iter()
            .map(|b| b.bill_sequence)
            .collect();
        assert_eq!(seqs, [Some(1), Some(2), Some(3)]);
        // One part with no sequence is the whole bill.
        assert_eq!(BillList::new(vec![part(None)]).in_order().unwrap().len(), 1);
        for bad in [
            vec![],
            vec![part(Some(1)), part(Some(3))],
            vec![part(Some(1)), part(Some(1))],
            vec![part(Some(2))],
            vec![part(None), part(None)],
            vec![part(Some(0))],
        ] {
            let e = BillList::new(bad.clone()).in_order().unwrap_err();
            assert!(matches!(e, Error::Decode { .. }), "{bad:?}: {e}");
        }
        let mut short = BillList::new(vec![part(Some(1)), part(Some(2))]);
        short.download_bill_count = Some(3);
        assert!(matches!(short.in_order(), Err(Error::Decode { .. })));
    }

    #[test]
    fn async_downloads_are_send() {
        fn send<T: Send>(_: &T) {}
        let client = crate::Builder::new().build().unwrap();
        let bill = Bill::new("/v3/billdownload/file", "SHA1", "00");
        let mut out: Vec<u8> = Vec::new();
        let f = client.download_bill_async(&bill, Value::Null, &mut out);
        send(&f);
        let g = client.download_to_async("/v3/x", Value::Null, tokio::io::sink());
        send(&g);
        let list = BillList::new(vec![bill.clone()]);
        let h = client.download_bills_async(&list, Value::Null, tokio::io::sink());
        send(&h);
    }

    #[test]
    fn hash_types_and_targets() {
        for s in ["SHA1", "sha1", " SHA-1 "] {
            assert_eq!(HashType::parse(s).unwrap(), HashType::Sha1);
        }
        assert_eq!(HashType::parse("SHA256").unwrap(), HashType::Sha256);
        for s in ["MD5", "", "SM3"] {
            // SM3 is a digest of the 国密 scheme, known with its feature only.
            if cfg!(feature = "shangmi") && s == "SM3" {
                continue;
            }
            assert!(matches!(HashType::parse(s), Err(Error::Verification(_))));
        }
        #[cfg(feature = "shangmi")]
        assert_eq!(HashType::parse("sm3").unwrap(), HashType::Sm3);
        assert_eq!(
            target_of("https://api.mch.weixin.qq.com/v3/billdownload/file?token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO").unwrap(),
            (
                "v3/billdownload/file".to_string(),
                "token=6XIv5TUPto7pByrTQKhd6kwvyKLG2uY2wMMR8cNXqaA_Cv_isgaUtBzp4QtiozLO".to_string()
            )
        );
        assert_eq!(
            target_of("/v3/statements?date=2024-06-01").unwrap(),
            ("v3/statements".to_string(), "date=2024-06-01".to_string())
        );
        assert_eq!(
            target_of("v3/x").unwrap(),
            ("v3/x".to_string(), String::new())
        );
        for bad in ["", "https://", "https://h/", "/v3/{x}", "http://bad host/x"] {
            assert!(target_of(bad).is_err(), "{bad}");
        }
        let a = download_args(json!({"timeout": 60}), "token=x".into()).unwrap();
        assert_eq!(
            a,
            json!({"timeout": 60, "query": "token=x", "validate": false})
        );
        assert_eq!(
            download_args(Value::Null, String::new()).unwrap(),
            json!({"validate": false})
        );
        for bad in [
            json!({"query": {}}),
            json!({"json": {}}),
            json!({"body": ""}),
            json!([]),
        ] {
            assert!(download_args(bad, String::new()).is_err());
        }
        let bill: Bill = serde_json::from_value(json!({"hash_type": "SHA1",
            "hash_value": "79bb0f45fc4c42234a918000b2668d689e2bde04",
            "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx"}))
        .unwrap();
        assert_eq!(
            bill,
            Bill::new(
                "https://api.mch.weixin.qq.com/v3/billdownload/file?token=xxx",
                "SHA1",
                "79bb0f45fc4c42234a918000b2668d689e2bde04"
            )
        );
    }
}
