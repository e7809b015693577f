//! `wechatpay ops [WORDS…]`: the documented operations whose path template or label holds
//! every word, from the catalogue (nothing is decoded: the index's method, template, label).

use std::io::Write;

use clap::Args;
use wechatpay_chain::catalog;

#[derive(Args, Debug)]
pub struct OpsArgs {
    /// Words that the path template or the label must all hold (any case), e.g.
    /// `refund domestic` or `先享卡`; none lists every operation.
    #[arg(value_name = "WORDS")]
    pub words: Vec<String>,
}

/// Prints `METHOD template  label` per operation found; false when none matches.
pub fn run(a: &OpsArgs) -> std::io::Result<bool> {
    let found: Vec<catalog::Summary> = catalog::summaries(&a.words).collect();
    if found.is_empty() {
        eprintln!(
            "wechatpay: no documented operation holds {} in its path or label (wechatpay ops lists all {})",
            a.words.join(" "),
            catalog::summaries::<&str>(&[]).count()
        );
        return Ok(false);
    }
    let width = found
        .iter()
        .map(|s| s.template.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for s in &found {
        writeln!(out, "{:<6} {:<width$}  {}", s.method, s.template, s.label)?;
    }
    out.flush()?;
    Ok(true)
}
