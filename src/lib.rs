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

mod builder;
#[cfg(feature = "catalog")]
pub mod catalog;
pub mod certificates;
mod chain;
mod client;
pub mod client_json;
pub mod client_xml;
pub mod crypto;
pub mod decorator;
pub mod download;
pub mod emulator;
mod error;
pub mod formatter;
pub mod keyring;
pub mod notify;
pub mod notify_v2;
mod response;
mod retry;
pub mod sensitive;
pub mod transformer;
mod transport;
pub mod uri;
pub mod util;

pub use builder::{Builder, DEFAULT_BASE_URI, DEFAULT_BODY_LIMIT, DEFAULT_TIMEOUT};
pub use chain::Chain;
pub use client::Client;
pub(crate) use client::Core;
pub use crypto::{Certificate, PrivateKey, PublicKey, Rsa};
pub use error::{BoxError, Error};
pub use keyring::Keyring;
pub use response::Response;
pub use retry::RetryPolicy;
pub use sensitive::Encryptor;
pub use uri::Placeholders;

/// The examples of docs/apiv2.md, compiled and run as doctests so that the page stays true.
#[cfg(doctest)]
#[doc = include_str!("../docs/apiv2.md")]
pub struct ApiV2Doc;

/// The examples of docs/emulator.md, compiled and run as doctests so that the page stays true.
#[cfg(doctest)]
#[doc = include_str!("../docs/emulator.md")]
pub struct EmulatorDoc;

/// The README's examples compile (they are doctests).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoc;
