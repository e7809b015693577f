//! The `Client`: one `Arc` around the shared state (settings, keys, keyring, connection pool)
//! and the root [`Chain`] it derefs to.

use std::sync::Arc;
use std::time::Duration;

use crate::chain::Chain;
use crate::client_json::Credentials;
use crate::decorator::Base;
use crate::keyring::Keyring;
use crate::transport::Transport;
use crate::uri::Placeholders;

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
    pub user_agent: http::HeaderValue,
    pub secret: Option<String>,
    /// APIv2 answers may be signed with either type ([`crate::Builder::v2_either_sign_type`]).
    pub v2_either_sign_type: bool,
    pub transport: Transport,
    pub retry: Option<crate::retry::RetryPolicy>,
    pub auto: Option<crate::certificates::Auto>,
    /// Ciphertexts made by this client's encryptors, to name their key in calls.
    pub sealed: Arc<crate::sensitive::Sealed>,
}

/// A configured WeChat Pay client: `Clone + Send + Sync`, cheap to clone (one `Arc`), every
/// clone sharing the keys and one connection pool. It derefs to its root [`Chain`], so
/// `client["v3"]…`, `client.chain("v3/…")` and the verbs work on it directly.
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    root: Chain,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = &self.inner.root.core;
        f.debug_struct("Client")
            .field(
                "base_uri",
                &format!(
                    "{}://{}{}",
                    core.base.scheme, core.base.authority, core.base.path
                ),
            )
            .field("credentials", &core.credentials)
            .field("keyring", &core.keyring)
            .field("timeout", &core.timeout)
            .field("secret", &core.secret.as_ref().map(|_| "redacted"))
            .finish()
    }
}

impl Client {
    pub(crate) fn from_core(core: Core) -> Client {
        Client {
            inner: Arc::new(ClientInner {
                root: Chain::new(Arc::new(core), ""),
            }),
        }
    }

    /// A [`Builder`](crate::Builder).
    pub fn builder() -> crate::Builder {
        crate::Builder::new()
    }

    /// The platform keys answers are verified with, shared by every clone.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.root.core.keyring
    }

    /// Verifies an APIv2 notification's body under the configured APIv2 key, expecting a
    /// `sign` of type `expected` (see [`notify_v2::verify`](crate::notify_v2::verify));
    /// refunds' `req_info` comes decrypted.
    pub fn verify_notification_v2(
        &self,
        body: &[u8],
        expected: crate::client_xml::SignType,
    ) -> Result<crate::notify_v2::NotificationV2, crate::Error> {
        let secret = self.core().secret.as_deref().ok_or_else(|| {
            crate::Error::Config("verifying APIv2 notifications needs Builder::secret".into())
        })?;
        crate::notify_v2::verify(body, secret, expected)
    }

    pub(crate) fn core(&self) -> &Arc<crate::Core> {
        &self.inner.root.core
    }
}

impl std::ops::Deref for Client {
    type Target = Chain;

    fn deref(&self) -> &Chain {
        &self.inner.root
    }
}
