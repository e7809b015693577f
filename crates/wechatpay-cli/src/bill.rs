//! `wechatpay bill`: a bill's listing and its file in one command, as `Client::download_bill`
//! and `download_bills` do it: the file fetched signed, gunzipped, decrypted when it comes in
//! encrypted parts (a sub-merchant's fund-flow bill), and checked against every digest.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};
use wechatpay_chain::download::{Bill, BillList, Downloaded};
use wechatpay_chain::{Client, Error};

#[derive(Args)]
pub struct BillArgs {
    /// The listing: v3/bill/tradebill, v3/bill/fundflowbill, v3/bill/sub-merchant-fundflowbill …
    /// (a template with `/`, or dot-joined chain segments).
    #[arg(value_name = "URI")]
    pub uri: String,
    /// The listing's args, e.g. '{"query":{"bill_date":"2024-06-01","tar_type":"GZIP"}}':
    /// inline JSON, @file, or - for stdin.
    #[arg(value_name = "ARGS")]
    pub args: Option<String>,
    /// Write the bill here: to FILE.part first (created new, mode 0600), renamed to FILE only
    /// once every digest matched (removed on an error). Without it the bill streams to stdout,
    /// to be discarded when the exit status is not 0.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub conf: crate::Conf,
}

/// Fetches the listing at `path` with `args`, then the bill it names, to `--output` or stdout.
pub fn run(a: &BillArgs, client: &Client, path: &str, args: Value) -> Result<(), Error> {
    let listing: Value = client.chain(path).get(args)?.json()?;
    let done = match &a.output {
        Some(file) => to_file(file, |w| download(client, &listing, w))?,
        None => {
            let mut out = std::io::stdout().lock();
            let done = download(client, &listing, &mut out)?;
            out.flush()?;
            done
        }
    };
    for (i, d) in done.iter().enumerate() {
        let part = if done.len() > 1 {
            format!("part {}: ", i + 1)
        } else {
            String::new()
        };
        eprintln!(
            "wechatpay: {part}{} bytes{}, digest {} matches",
            d.bytes,
            if d.gzip { " (gunzipped)" } else { "" },
            d.digest.as_deref().unwrap_or_default()
        );
    }
    Ok(())
}

/// One bill (`download_url`, `hash_type`, `hash_value`) or a list of parts.
fn download(client: &Client, listing: &Value, w: &mut dyn Write) -> Result<Vec<Downloaded>, Error> {
    let unexpected = |e: serde_json::Error| {
        Error::decode_from(
            "the listing is not a bill (download_url, hash_type, hash_value) nor a list of parts",
            e,
        )
    };
    if listing.get("download_bill_list").is_some() {
        let list = BillList::deserialize(listing).map_err(unexpected)?;
        client.download_bills(&list, json!({}), w)
    } else {
        let bill = Bill::deserialize(listing).map_err(unexpected)?;
        Ok(vec![client.download_bill(&bill, json!({}), w)?])
    }
}

/// Runs `write` into `file.part` and renames it to `file` on success; removes it otherwise.
/// The part is created new, mode 0600 (a bill is the merchant's business), and never through
/// a link: one left there by an earlier run, or planted, is an error, and not removed.
fn to_file<T>(
    file: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, Error>,
) -> Result<T, Error> {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let created = crate::common::create_private(&part).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Error::config(format!(
                "{} already exists (left by an earlier run, or put there by someone else): \
                 bill writes it new; remove it, or choose another --output",
                part.display()
            ))
        } else {
            Error::config_from(format!("cannot write {}", part.display()), e)
        }
    })?;
    let result = (|| {
        let mut f = std::io::BufWriter::new(created);
        let value = write(&mut f)?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        // rename(2) replaces the directory entry `file`: were it a symbolic link, the link
        // itself is replaced and its target left alone
        std::fs::rename(&part, file).map_err(|e| {
            Error::config_from(
                format!("cannot rename {} to {}", part.display(), file.display()),
                e,
            )
        })?;
        Ok(value)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result
}
