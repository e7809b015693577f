//! `wechatpay events [WORDS…]`: the documented webhook (notification) event types.

use std::io::Write;

use clap::Args;
use wechatpay_chain::catalog::{self, Protocol};

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Words that the event type, its label or its resource type must all hold (any case),
    /// e.g. `refund` or `TRANSACTION`; none lists every event.
    #[arg(value_name = "WORDS")]
    pub words: Vec<String>,
}

/// Prints `TYPE  APIv3|APIv2  label` per event found; false when none matches.
pub fn run(a: &EventsArgs) -> std::io::Result<bool> {
    let words: Vec<String> = a.words.iter().map(|w| w.to_lowercase()).collect();
    let found: Vec<&catalog::Event> = catalog::events()
        .filter(|e| {
            let text = format!(
                "{} {} {}",
                e.kind,
                e.label,
                e.resource_type.as_deref().unwrap_or("")
            )
            .to_lowercase();
            words.iter().all(|w| text.contains(w.as_str()))
        })
        .collect();
    if found.is_empty() {
        eprintln!(
            "wechatpay: no documented event holds {} in its type or label (wechatpay events lists all {})",
            a.words.join(" "),
            catalog::events().count()
        );
        return Ok(false);
    }
    let width = found
        .iter()
        .map(|e| e.kind.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for e in &found {
        let protocol = match e.protocol {
            Protocol::V2 => "APIv2",
            Protocol::V3 => "APIv3",
        };
        writeln!(out, "{:<width$}  {protocol}  {}", e.kind, e.label)?;
    }
    out.flush()?;
    Ok(true)
}
