//! `Core`: what every chain of a client shares (settings, keys, keyring, connection pool).
//! The rooms add to it what their protocol does (`impl Core` in the decorator, `client_xml`,
//! `certificates`, the retry loop); it imports only the types it holds.

use std::sync::Arc;
use std::time::Duration;

use crate::client_json::Credentials;
use crate::transport::policy::RetryPolicy;
use crate::transport::Transport;
use crate::uri::{Base, Placeholders};
use crate::v3::auto::Auto;
use crate::v3::keyring::Keyring;
use crate::v3::sensitive::Sealed;

/// What every chain of a client shares.
pub(crate) struct Core {
    pub base: Base,
    pub credentials: Option<Credentials>,
    pub mchid: Option<String>,
    pub keyring: Arc<Keyring>,
    /// `Builder::wechatpay_serial`: the platform key requests name, when set.
    pub wechatpay_serial: Option<String>,
    pub timeout: Duration,
    pub body_limit: usize,
    pub placeholders: Placeholders,
    /// `Builder::validation`: checking calls against the catalogue.
    #[cfg(feature = "catalog")]
    pub validation: crate::catalog::Validation,
    pub user_agent: http::HeaderValue,
    pub secret: Option<String>,
    /// APIv2 answers may be signed with either type ([`crate::Builder::v2_either_sign_type`]).
    pub v2_either_sign_type: bool,
    pub transport: Transport,
    pub retry: Option<RetryPolicy>,
    pub auto: Option<Auto>,
    /// Ciphertexts made by this client's encryptors, to name their key in calls.
    pub sealed: Arc<Sealed>,
}
