//! APIv3: JSON over RSA-SHA256 signed requests, verified answers ([`client_json`], as
//! wechatpay-php's `ClientJsonTrait`), the platform's keys ([`Keyring`](crate::Keyring), [`certificates`]),
//! notifications ([`notify`]), sensitive fields ([`sensitive`]) and downloads ([`download`]).

pub(crate) mod auto;
mod bill_crypto;
pub mod certificates;
pub mod client_json;
pub mod download;
pub(crate) mod keyring;
pub mod notify;
pub mod scheme;
pub mod sensitive;
