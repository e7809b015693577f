//! What the server needs, fixed at start, and the two public knobs it is built from.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use wechatpay_chain::crypto::{PrivateKey, PublicKey};
use wechatpay_chain::util::pem::same_serial;

use crate::http::issued::Issued;
use crate::http::{guard, server, tls};
use crate::util::Counted;

/// A platform key answers are signed with, and its serial (borrowed from the settings unless a
/// rotation made them).
pub(crate) type Signer<'a> = (Cow<'a, PrivateKey>, Cow<'a, str>);

/// How the emulated platform names the key its answers are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `Wechatpay-Serial: PUB_KEY_ID_…`: the platform public key mode of new merchants;
    /// `v3/certificates` answers 404 as it does for them.
    #[default]
    PublicKey,
    /// A platform certificate the emulator issues itself; `Wechatpay-Serial` is its serial and
    /// `v3/certificates` hands it out encrypted with the APIv3 key.
    Certificate,
}

/// A way to spoil the next APIv3 answer, to see a client refuse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// The body is changed after signing.
    TamperedBody,
    /// Signed with a key that is not the platform's.
    WrongKey,
    /// Signed with a timestamp ten minutes old.
    StaleTimestamp,
    /// Signed under a `Wechatpay-Serial` the client does not know.
    UnknownSerial,
    /// Signed as usual but naming the other scheme in `Wechatpay-Signature-Type` (RSA's in the
    /// 国密 scheme, SM2's in RSA): a downgrade a client must not follow.
    OtherScheme,
}

/// What the server needs, fixed at start.
pub(crate) struct Settings {
    /// `http://127.0.0.1:PORT/` (`https://` in TLS mode), what `download_url`s point at.
    pub base_uri: String,
    /// TLS mode: the certificates and the acceptor.
    pub tls: Option<tls::Tls>,
    pub mchid: String,
    pub merchant_serial: String,
    pub merchant_key: PublicKey,
    pub mode: Mode,
    /// RSA, or the 国密 SM2 scheme (`http::scheme`).
    pub scheme: wechatpay_chain::Scheme,
    pub platform_key: PrivateKey,
    pub platform_public: PublicKey,
    pub platform_serial: String,
    pub platform_cert: Option<Issued>,
    /// The platform key of the other scheme, when a merchant speaks it ([`crate::http::mixed`]).
    pub other_platform: Option<crate::http::mixed::OtherPlatform>,
    /// [`EmulatorConfig::public_key_alongside`]: the public key's id, private and public key.
    pub alongside: Option<(String, PrivateKey, PublicKey)>,
    /// Certificates issued by [`Emulator::rotate_certificate`], newest last, with their keys.
    pub rotations: Counted<Vec<(PrivateKey, Arc<Issued>)>>,
    pub apiv3_key: String,
    pub apiv2_key: String,
    /// The merchants beyond the first ([`crate::http::merchants`]).
    pub merchants: Vec<crate::http::merchants::Merchant>,
    pub notify_retries: Vec<Duration>,
    pub notify_timeout: Duration,
    pub refund_delay: Option<Duration>,
    pub allow_remote_notify: bool,
    pub no_certificates_status: u16,
    pub limits: server::Limits,
    /// Who may talk to the sandbox: its port and scheme, and the control token.
    pub guard: guard::Guard,
}

impl Settings {
    /// The key answers and notifications are signed with now, and its serial: the newest
    /// rotated certificate's, else the one the emulator started with.
    pub(crate) fn signer(&self) -> Signer<'_> {
        if let Some(other) = self.other_signer(self.signing_scheme()) {
            return other;
        }
        if !self.rotations.is_empty() {
            if let Some((key, issued)) = self.rotations.lock().last() {
                let serial = issued.certificate.serial().to_string();
                return (Cow::Owned(key.clone()), Cow::Owned(serial));
            }
        }
        (
            Cow::Borrowed(&self.platform_key),
            Cow::Borrowed(&self.platform_serial),
        )
    }

    /// The key an answer to a request naming `named` in `Wechatpay-Serial` is signed with: the
    /// public key alongside the certificate when named, else [`Settings::signer`].
    pub(crate) fn signer_for(&self, named: Option<&str>) -> Signer<'_> {
        match (&self.alongside, named) {
            (Some((id, key, _)), Some(n)) if same_serial(n, id) => {
                (Cow::Borrowed(key), Cow::Borrowed(id.as_str()))
            }
            _ => self.signer(),
        }
    }

    /// Whether `serial` names one of the platform's keys (current or still listed).
    /// Serials compare as numbers (`83D6…` names the certificate `083D6…`), key ids as written.
    pub(crate) fn knows_serial(&self, serial: &str) -> bool {
        same_serial(serial, &self.platform_serial)
            || (self.other_platform.as_ref()).is_some_and(|o| same_serial(&o.serial, serial))
            || self
                .alongside
                .as_ref()
                .is_some_and(|(id, _, _)| same_serial(id, serial))
            || self
                .rotations
                .lock()
                .iter()
                .any(|(_, i)| same_serial(i.certificate.serial(), serial))
    }
}
