//! The `Client`: one `Arc` around the shared state (settings, keys, keyring, connection pool)
//! and the root [`Chain`] it derefs to.

use std::sync::Arc;

use crate::chain::Chain;
use crate::core::Core;
use crate::error::Error;
use crate::v3::keyring::Keyring;
use crate::v3::sensitive::Encryptor;

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

    /// The platform keys answers are verified with, shared by every clone.
    pub fn keyring(&self) -> &Keyring {
        &self.inner.root.core.keyring
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.inner.root.core
    }
}

impl Client {
    /// An [`Encryptor`] for the platform key this client verifies answers with: the
    /// `PUB_KEY_ID_…` when one is configured, else the newest certificate serial (see
    /// [`Keyring::preferred`](crate::Keyring::preferred)). The key is chosen now: a later
    /// rotation does not change what an existing encryptor produces or the serial its calls name.
    pub fn encryptor(&self) -> Result<Encryptor, Error> {
        let core = self.core();
        let (serial, key) = core.keyring.preferred().ok_or_else(|| {
            Error::config(
                "no platform key to encrypt with: configure a platform public key or certificate",
            )
        })?;
        Ok(Encryptor {
            serial: Arc::from(serial),
            key,
            sealed: core.sealed.clone(),
        })
    }

    /// An [`Encryptor`] for the platform key under `serial`, for a call that must name a
    /// particular key.
    pub fn encryptor_for(&self, serial: &str) -> Result<Encryptor, Error> {
        let core = self.core();
        let key = core.keyring.get(serial).ok_or_else(|| {
            Error::config(format!(
                "no platform key under {:?}",
                crate::error::one_line(serial)
            ))
        })?;
        Ok(Encryptor {
            serial: Arc::from(serial),
            key,
            sealed: core.sealed.clone(),
        })
    }
}

impl std::ops::Deref for Client {
    type Target = Chain;

    fn deref(&self) -> &Chain {
        &self.inner.root
    }
}
