//! Faults on demand from the command line: `wechatpay serve --fault SPEC` (repeatable) sets the
//! sandbox's fault plan at start, and `wechatpay sandbox faults list|add|clear` reads and
//! changes it while it runs (`/emulator/faults`). The SPEC grammar is the emulator's
//! ([`wechatpay_emulator::Fault`]; docs/emulator.md, "Faults"); a wrong one is refused here,
//! before anything is sent, naming the part that is wrong and what is accepted there.

use clap::Subcommand;
use serde_json::{Map, Value};
use wechatpay_chain::Error;
use wechatpay_emulator::Fault;

/// clap's parser of a SPEC (`--fault`, `sandbox faults add`).
pub fn spec(s: &str) -> Result<Fault, String> {
    Fault::parse(s).map_err(|e| match e {
        Error::InvalidArgument(message) => message,
        other => other.to_string(),
    })
}

/// `wechatpay sandbox faults …`.
#[derive(Subcommand)]
pub enum FaultsOp {
    /// The rules of the fault plan, with how many calls each matched and fired on, and the
    /// faults that fired.
    List,
    /// Adds rules after those there (all or none), e.g.
    /// 'POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2', 'v3/refund/*=delay:3s@0.5,seed=7',
    /// 'notify:TRANSACTION.SUCCESS=drop*1'.
    Add {
        /// `TARGET=ACTION[*N][@P[,seed=S]]` (see `wechatpay serve --help`, --fault).
        #[arg(required = true, value_name = "SPEC", value_parser = spec)]
        specs: Vec<Fault>,
    },
    /// Removes every rule.
    Clear,
}

impl FaultsOp {
    /// The control request: its method, its path after `/emulator/`, what it does (for
    /// messages), and its body's fields.
    pub fn endpoint(&self) -> (http::Method, String, String, Map<String, Value>) {
        let path = "faults".to_string();
        let mut body = Map::new();
        match self {
            FaultsOp::List => (http::Method::GET, path, "faults list".into(), body),
            FaultsOp::Add { specs } => {
                let specs: Vec<Value> = specs.iter().map(|f| Value::from(f.to_string())).collect();
                body.insert("specs".into(), Value::Array(specs));
                (http::Method::POST, path, "faults add".into(), body)
            }
            FaultsOp::Clear => (http::Method::DELETE, path, "faults clear".into(), body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_before_anything_is_sent() {
        assert_eq!(
            spec("POST v3/pay/transactions/jsapi=SYSTEM_ERROR*2")
                .unwrap()
                .to_string(),
            "POST v3/pay/transactions/jsapi=500:SYSTEM_ERROR*2"
        );
        let e = spec("notify:TRANSACTION.SUCCESS=explode").unwrap_err();
        assert!(
            e.starts_with("fault \"notify:TRANSACTION.SUCCESS=explode\"")
                && e.contains("`explode` is not a notification's action")
                && e.contains("duplicate, reorder"),
            "{e}"
        );
    }
}
