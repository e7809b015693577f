//! The global `--scheme rsa|sm2` (`WECHATPAY_SCHEME`): which APIv3 scheme every command speaks,
//! and so which kind of key the key options load (`--private-key`, `--public-key`,
//! `--platform-cert`, `trigger --platform-private-key`). Set once from the command line, read
//! where keys are loaded and clients built.

use std::sync::OnceLock;

use clap::{Args, ValueEnum};
use wechatpay_chain::{Certificate, Error, PrivateKey, PublicKey, Rsa, Scheme};

#[cfg(feature = "shangmi")]
use wechatpay_chain::crypto::Sm2;

/// `--scheme`, for every command.
#[derive(Args, Debug)]
pub struct SchemeArgs {
    /// APIv3 scheme: rsa (WECHATPAY2-SHA256-RSA2048) or sm2 (国密 WECHATPAY2-SM2-WITH-SM3:
    /// the key options then take SM2 keys, serve runs an SM2 sandbox) [default: rsa]
    #[arg(
        long,
        value_enum,
        env = "WECHATPAY_SCHEME",
        global = true,
        ignore_case = true
    )]
    pub scheme: Option<Name>,
}

/// A scheme's name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Name {
    Rsa,
    Sm2,
}

static CHOSEN: OnceLock<Scheme> = OnceLock::new();

/// Fixes the scheme for the rest of the run; `sm2` needs the `shangmi` feature.
pub fn set(name: Option<Name>) -> Result<(), String> {
    let scheme = match name {
        None | Some(Name::Rsa) => Scheme::Rsa,
        #[cfg(feature = "shangmi")]
        Some(Name::Sm2) => Scheme::Sm2,
        #[cfg(not(feature = "shangmi"))]
        Some(Name::Sm2) => {
            return Err(
                "--scheme sm2 (WECHATPAY_SCHEME): this wechatpay was built without the \
                        国密 scheme; install it with `--features shangmi`"
                    .into(),
            )
        }
    };
    let _ = CHOSEN.set(scheme);
    Ok(())
}

/// The scheme of this run (RSA until [`set`]).
pub fn get() -> Scheme {
    CHOSEN.get().copied().unwrap_or_default()
}

/// Whether this run speaks the 国密 scheme.
pub fn is_sm2() -> bool {
    get() != Scheme::Rsa
}

/// A merchant or platform private key of the scheme's kind.
pub fn private_key(source: &str) -> Result<PrivateKey, Error> {
    match get() {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::from_private(source),
        _ => Rsa::from_private(source),
    }
}

/// A platform public key of the scheme's kind.
pub fn public_key(source: &str) -> Result<PublicKey, Error> {
    match get() {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::from_public(source),
        _ => Rsa::from_public(source),
    }
}

/// A platform certificate of the scheme's kind.
pub fn certificate(source: &str) -> Result<Certificate, Error> {
    match get() {
        #[cfg(feature = "shangmi")]
        Scheme::Sm2 => Sm2::from_certificate(source),
        _ => Rsa::from_certificate(source),
    }
}
