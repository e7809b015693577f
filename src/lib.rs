//! # wechatpay-chain
//!
//! A WeChat Pay (微信支付) client in the chainable style of wechatpay-php: every documented
//! APIv3 (and APIv2) call can be written the way the docs show it, through one shared, signed
//! hyper client, blocking or async, and every answer is verified before it is handed out.
//!
//! ```no_run
//! use serde_json::json;
//! use wechatpay_chain::{Builder, Rsa};
//!
//! # fn main() -> Result<(), wechatpay_chain::Error> {
//! let client = Builder::new()
//!     .mchid("1900000001")
//!     .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
//!     .private_key(Rsa::from_private("file:///path/to/apiclient_key.pem")?)
//!     .platform_public_key("PUB_KEY_ID_0114232134912410000000000000",
//!                          Rsa::from_public("file:///path/to/pub_key.pem")?)
//!     .build()?;
//! let args = json!({"out_order_no": "233bcbf407e87789b8e471f251774f95"});
//! // pure chain
//! let res = client["v3"]["discountCard"]["orders"]["_out_order_no_"].get(args.clone())?;
//! // declarative
//! let res = client.chain("v3/discount-card/orders/{out_order_no}").get(args.clone())?;
//! // index
//! let res = client["v3/discount-card/orders/{out_order_no}"].get(args)?;
//! println!("{} {}", res.status(), res.text());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

// At the top: what a call is made of (wechatpay-php's Builder, BuilderChainable and
// ClientDecorator). Below: one room per protocol, the transport, then crypto and util, which
// import nothing from the rooms above them.
mod builder;
#[cfg(feature = "catalog")]
pub mod catalog;
mod chain;
mod client;
mod core;
mod decorator;
mod env;
mod error;
pub mod formatter;
mod request;
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

/// The examples of docs/apiv2.md, compiled and run as doctests so that the page stays true.
#[cfg(doctest)]
#[doc = include_str!("../docs/apiv2.md")]
pub struct ApiV2Doc;

/// The README's examples compile (they are doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoc;
