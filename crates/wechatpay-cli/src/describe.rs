//! `wechatpay describe METHOD URI`: what the catalogue knows of one operation: its
//! placeholders and its request and response fields as trees, with types, required marks,
//! enumerations and encryption.

use std::io::Write;

use clap::Args;
use wechatpay_chain::catalog::{self, Field, Operation, Protocol};
use wechatpay_chain::Error;

#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// get, post, put, patch or delete (any case).
    #[arg(value_name = "METHOD")]
    pub method: String,
    /// The path: a template (v3/discount-card/orders/{out_order_no}), dot-joined chain
    /// segments, or a concrete path (v3/pay/transactions/out-trade-no/T1).
    #[arg(value_name = "URI")]
    pub uri: String,
}

/// What `describe` says in place of `required` of a field the client fills in itself
/// (`Wechatpay-Serial`; APIv2's `nonce_str` and `sign`): not the user's to supply.
pub const FILLED: &str = "filled by the client";

/// Who supplies a field: `required`, `optional`, or [`FILLED`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Supply {
    Required,
    Optional,
    Filled,
}

/// A field on one line, indented two spaces a level: name, type, required, optional or filled
/// by the client, then its label, enumeration, encryption and (an object's) groups of
/// alternatives when it has them, two spaces apart.
pub fn field_line(f: &Field, depth: usize, supply: Supply) -> String {
    let mut parts = vec![
        f.name.clone(),
        f.ty.to_string(),
        match supply {
            Supply::Required => "required",
            Supply::Optional => "optional",
            Supply::Filled => FILLED,
        }
        .to_string(),
    ];
    if !f.label.is_empty() {
        parts.push(f.label.clone());
    }
    if !f.enumeration.is_empty() {
        parts.push(format!("one of: {}", f.enumeration.join(" | ")));
    }
    if let Some(how) = &f.encrypted {
        parts.push(format!("encrypted: {how}"));
    }
    // the groups of its fields of which a call gives one: their members are optional each
    for g in &f.alternatives {
        parts.push(format!("{} required", g.describe()));
    }
    format!("{}{}", "  ".repeat(depth), parts.join("  "))
}

/// The request's fields: those the client fills marked so, and a top-level arg required only
/// for them (`headers` for `Wechatpay-Serial`) shown optional.
fn request_tree(out: &mut Vec<String>, op: &Operation) {
    for f in &op.request {
        let filled = |c: &Field| op.client_fills(&f.name, &c.name);
        let only_filled =
            f.children.iter().any(filled) && f.children.iter().all(|c| !c.required || filled(c));
        let supply = match f.required && !only_filled {
            true => Supply::Required,
            false => Supply::Optional,
        };
        out.push(field_line(f, 1, supply));
        for c in &f.children {
            let supply = match (filled(c), c.required) {
                (true, _) => Supply::Filled,
                (false, true) => Supply::Required,
                (false, false) => Supply::Optional,
            };
            out.push(field_line(c, 2, supply));
            tree(out, &c.children, 3);
        }
    }
}

fn tree(out: &mut Vec<String>, fields: &[Field], depth: usize) {
    for f in fields {
        let supply = match f.required {
            true => Supply::Required,
            false => Supply::Optional,
        };
        out.push(field_line(f, depth, supply));
        tree(out, &f.children, depth + 1);
    }
}

/// The lines `describe` prints for `op`.
pub fn lines(op: &Operation) -> Vec<String> {
    let mut out = vec![format!("{} {}  {}", op.method, op.template, op.label)];
    out.push(format!(
        "protocol: {}",
        match op.protocol {
            Protocol::V2 => "APIv2",
            Protocol::V3 => "APIv3",
        }
    ));
    let ph = op.placeholders();
    out.push(format!(
        "placeholders: {}",
        if ph.is_empty() {
            "none".to_string()
        } else {
            ph.join(", ")
        }
    ));
    if op.security {
        out.push("needs the merchant certificate (APIv2 security: true)".into());
    }
    if op.unsigned {
        out.push("answered unsigned by design (a download)".into());
    }
    for (title, fields) in [("request:", &op.request), ("response:", &op.response)] {
        out.push(String::new());
        if fields.is_empty() {
            out.push(format!("{title} none documented"));
        } else {
            out.push(title.to_string());
            match title {
                "request:" => request_tree(&mut out, op),
                _ => tree(&mut out, fields, 1),
            }
        }
    }
    out
}

pub fn run(a: &DescribeArgs, path: &str) -> Result<(), Error> {
    let Some(op) = catalog::find(&a.method, path) else {
        if !["get", "post", "put", "patch", "delete"]
            .contains(&a.method.to_ascii_lowercase().as_str())
        {
            return Err(Error::InvalidArgument(format!(
                "unknown METHOD {:?}: use get, post, put, patch or delete",
                a.method
            )));
        }
        return Err(Error::InvalidArgument(catalog::unknown_path(
            &a.method, path,
        )));
    };
    let mut out = std::io::stdout().lock();
    let written = lines(op)
        .iter()
        .try_for_each(|l| writeln!(out, "{l}"))
        .and_then(|_| out.flush());
    match written {
        // `wechatpay describe … | head`
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
