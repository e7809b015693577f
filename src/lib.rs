//! # wechatpay-chain
//!
//! A WeChat Pay (微信支付) client in the chainable style of wechatpay-php: every documented
//! APIv3 (and APIv2) call can be written the way the docs show it, through one shared, signed
//! hyper client, blocking or async, and every answer is verified before it is handed out.
//!
//! - [A payment](#a-payment): a [`Builder`] makes a [`Client`]; a path and a verb
//!   ([`Chain::post`], [`Chain::get`] …, async [`Chain::post_async`] …) make a call; its
//!   args hold the placeholders, `json`, `query`, `headers` and options ([`Chain::get`] lists
//!   them).
//! - [A notification handler](#a-notification-handler): [`Client::notifier`] checks and
//!   decrypts what the platform POSTs to your `notify_url` ([`notify`], APIv2 [`notify_v2`]).
//! - [Errors](#errors): one [`Error`] enum, which says what went wrong and what to do.
//! - [The sandbox](#the-sandbox): the `wechatpay-emulator` crate is a local platform that
//!   checks and signs as the real one, for tests with no account and no network.
//! - [Front-end payment parameters](#front-end-payment-parameters): what a JSAPI, mini-program
//!   or app payment hands the front end after the order is made.
//!
//! ## A payment
//!
//! The merchant's keys: its id, the serial number and private key of its API certificate, and
//! the platform's public key (or certificates) that every answer is verified with.
//! [`Builder::from_env`] reads them from the `WECHATPAY_*` variables the `wechatpay` command
//! uses (key variables hold paths); or set them one by one:
//!
//! ```no_run
//! use serde_json::json;
//! use wechatpay_chain::{Builder, PrivateKey, PublicKey};
//!
//! # fn main() -> Result<(), wechatpay_chain::Error> {
//! let client = Builder::new()
//!     .mchid("1900000001")
//!     .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
//!     .private_key(PrivateKey::from_pem_file("/path/to/apiclient_key.pem")?)
//!     .platform_public_key("PUB_KEY_ID_0114232134912410000000000000",
//!                          PublicKey::from_pem_file("/path/to/pub_key.pem")?)
//!     .build()?; // or: Builder::from_env()?.build()?
//!
//! // A Native payment (扫码支付): the body in `json`, the answer verified, then read as JSON.
//! let res = client["v3/pay/transactions/native"].post(json!({"json": {
//!     "appid": "wxd678efh567hg6787", "mchid": "1900000001",
//!     "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "1217752501201407033233368018",
//!     "notify_url": "https://www.example.com/wechatpay/notify", "amount": {"total": 100},
//! }}))?;
//! let code_url = res.json::<serde_json::Value>()?["code_url"].clone();
//!
//! // The order's state: a placeholder of the path, and the query.
//! let order: serde_json::Value = client
//!     .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
//!     .get(json!({"out_trade_no": "1217752501201407033233368018", "query": {"mchid": "1900000001"}}))?
//!     .json()?;
//! println!("{code_url} {}", order["trade_state"]);
//! # Ok(()) }
//! ```
//!
//! The same call three ways, as in PHP: `client["v3"]["pay"]["transactions"]["native"]` (pure
//! chain), `client.chain("v3/pay/transactions/native")` (declarative), and
//! `client["v3/pay/transactions/native"]` (index); each verb has an `_async` twin for any tokio
//! runtime (`.post_async(args).await`). The `catalog` feature checks args against the
//! documentation before sending (`Builder::validation`).
//!
//! ## A notification handler
//!
//! The platform POSTs the outcome to `notify_url`. Give the notifier the headers and the raw
//! body exactly as received; it checks the signature, time and serial, and decrypts the
//! resource with the APIv3 key. Answer 204 when it succeeds, 4xx with
//! `{"code":"FAIL","message":…}` otherwise (the platform then sends it again). A whole hyper
//! handler is in [`notify`]; an axum one in `examples/webhook_axum.rs`.
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client, headers: http::HeaderMap, body: Vec<u8>) -> Result<(), wechatpay_chain::Error> {
//! let notifier = client.notifier(std::env::var("WECHATPAY_APIV3_KEY").unwrap_or_default())?;
//! match notifier.verify(&headers, &body) {
//!     Ok(n) if n.event_type == "TRANSACTION.SUCCESS" => {
//!         println!("paid: {}", n.resource["out_trade_no"]); // then answer 204
//!     }
//!     Ok(n) => println!("{}", n.event_type),
//!     Err(e) => eprintln!("refused: {e}"), // answer 401 {"code":"FAIL","message":"…"}
//! }
//! # Ok(()) }
//! ```
//!
//! ## Errors
//!
//! Every fallible call returns [`Error`]. What matters most: [`Error::Api`] is the platform's
//! own error answer (`code`, `message`, `detail`, [`Error::code`]); [`Error::Verification`]
//! means the answer could not be trusted and its body was not handed out;
//! [`Error::InvalidArgument`] means nothing was sent (a placeholder missing, a key that is not
//! an option, a finding of validation); [`Error::Config`] and [`Error::Key`] name the setting
//! to fix; [`Error::Transport`] and [`Error::Timeout`] say whether anything came back
//! (`answered`); [`Error::OutcomeUnknown`] (a money-moving call that may have happened) says
//! to query before calling again. `source()` leads to the cause underneath (I/O, openssl,
//! hyper, serde_json); no secret is ever in an error or a `Debug`.
//!
//! ```no_run
//! # fn f(client: wechatpay_chain::Client) {
//! use wechatpay_chain::Error;
//! match client["v3/pay/transactions/id/{transaction_id}"]
//!     .get(serde_json::json!({"transaction_id": "4200000000", "query": {"mchid": "1900000001"}}))
//! {
//!     Ok(res) => println!("{}", res.text()),
//!     Err(e @ Error::Api { .. }) if e.code() == Some("ORDER_NOT_EXIST") => println!("no such order"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! # }
//! ```
//!
//! ## The sandbox
//!
//! The platform has no APIv3 test environment; the `wechatpay-emulator` crate is one, on
//! loopback, with keys it makes itself (`cargo add --dev wechatpay-emulator`). It checks every
//! request as the platform does, answers every documented operation with a signed answer,
//! keeps the state of payments, refunds and more, and sends the notifications:
//!
//! ```
//! # use serde_json::json;
//! # use wechatpay_emulator::{Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::new())?;
//! let client = emulator.builder().build()?; // the sandbox's base URI and keys
//! let res = client["v3/pay/transactions/native"].post(json!({"json": {
//!     "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(), "description": "d",
//!     "out_trade_no": "1217752501201407033233368018", "notify_url": "https://www.example.com/n",
//!     "amount": {"total": 1},
//! }}))?;
//! assert!(res.json::<serde_json::Value>()?["code_url"].is_string());
//! # Ok::<(), wechatpay_chain::Error>(())
//! ```
//!
//! `wechatpay serve` (the `wechatpay-cli` crate) runs it as a process for any language and
//! writes an `env` file that [`Builder::from_env`] reads.
//!
//! ## Front-end payment parameters
//!
//! A JSAPI, mini-program or app order answers a `prepay_id`; the front end needs it signed
//! with the merchant key, as the parameters of `WeixinJSBridge`/`wx.requestPayment` or of the
//! app SDK: [`Client::jsapi_pay_params`] and [`Client::app_pay_params`] (and their APIv2
//! forms) give them as [`request_payment::JsapiPayParams`] and
//! [`request_payment::AppPayParams`], which serialize to exactly the JSON the front end takes.
//!
//! ## More
//!
//! The README and `docs/` of the repository: every PHP form with its Rust spelling
//! (`docs/php-to-rust.md`), APIv2 (`docs/apiv2.md`), crypto, sensitive fields, uploads and
//! bills (`docs/toolkit.md`), the sandbox (`docs/emulator.md`), and the operation catalogue
//! (feature `catalog`, `docs/catalog.md`). The feature `shangmi` adds the 国密 scheme
//! (`WECHATPAY2-SM2-WITH-SM3`: [`Scheme`], `crypto::Sm2`, `crypto::sm3`, `crypto::Sm4Gcm`).

#![warn(missing_docs)]
// docs.rs builds every feature and marks what a feature gates (`[package.metadata.docs.rs]`).
#![cfg_attr(docsrs, feature(doc_cfg))]

// At the top: what a call is made of (wechatpay-php's Builder, BuilderChainable and
// ClientDecorator). Below: one room per protocol, the transport, then crypto and util, which
// import nothing from the rooms above them.
mod builder;
#[cfg(feature = "catalog")]
#[cfg_attr(docsrs, doc(cfg(feature = "catalog")))]
pub mod catalog;
mod chain;
mod client;
mod core;
mod decorator;
mod env;
mod error;
pub mod formatter;
mod request;
pub mod request_payment;
mod response;
pub mod uri;

pub mod v2;
pub mod v3;

mod transport;

pub mod crypto;
pub mod util;

// The rooms under the names wechatpay-php users know (ClientJsonTrait, ClientXmlTrait,
// Transformer, …), and the paths of earlier versions.
pub use v2::notify as notify_v2;
pub use v2::{client_xml, transformer};
pub use v3::{certificates, client_json, download, notify, sensitive};

pub(crate) use crate::core::Core;
pub use builder::{Builder, DEFAULT_BASE_URI, DEFAULT_BODY_LIMIT, DEFAULT_TIMEOUT};
#[cfg(feature = "catalog")]
#[cfg_attr(docsrs, doc(cfg(feature = "catalog")))]
pub use catalog::Validation;
pub use chain::Chain;
pub use client::Client;
pub use crypto::{Certificate, PrivateKey, PublicKey, Rsa};
pub use error::{BoxError, Error};
pub use response::Response;
pub use sensitive::Encryptor;
pub use transport::policy::RetryPolicy;
pub use uri::Placeholders;
pub use v3::keyring::Keyring;
pub use v3::scheme::Scheme;

/// The examples of docs/apiv2.md, compiled and run as doctests so that the page stays true.
#[cfg(doctest)]
#[doc = include_str!("../docs/apiv2.md")]
pub struct ApiV2Doc;

/// The README's examples compile (they are doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoc;
