//! A local stand-in for the WeChat Pay platform, for examples, demos and users' own integration
//! tests: a hyper server on loopback with its own platform keys that checks every APIv3 request
//! the way the platform does, signs every answer, keeps the documented operations' state in
//! memory and sends signed, encrypted notifications, so that a whole payment story runs with no
//! merchant account and no network.
//!
//! ```
//! use serde_json::json;
//! use wechatpay_emulator::{Emulator, EmulatorConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), wechatpay_chain::Error> {
//! let emulator = Emulator::start_async(EmulatorConfig::new()).await?;
//! let client = emulator.builder().build()?;
//! let res = client["v3/pay/transactions/native"]
//!     .post_async(json!({"json": {
//!         "appid": "wxd678efh567hg6787", "mchid": emulator.mchid(),
//!         "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "1217752501201407033233368018",
//!         "notify_url": "https://www.weixin.qq.com/wxpay/pay.php", "amount": {"total": 100},
//!     }}))
//!     .await?;
//! assert!(res.json::<serde_json::Value>()?["code_url"].as_str().unwrap().starts_with("weixin://"));
//! assert_eq!(emulator.requests().len(), 1);
//! emulator.stop_async().await;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

// The rooms, lowest first; a room imports only those before it (tests/rooms.rs checks,
// docs/emulator.md "Rooms" tells): util < http < state < documented < notify < flows <
// control < routing < this file (Emulator, EmulatorConfig and the public re-exports).
mod control;
mod documented;
mod flows;
mod http;
mod notify;
mod routing;
mod state;
mod util;

pub use self::notify::events;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use wechatpay_chain::crypto::{Certificate, PrivateKey, PublicKey};
use wechatpay_chain::formatter;
use wechatpay_chain::Builder;
use wechatpay_chain::Error;
use wechatpay_chain::Scheme;

pub use self::flows::actions::{PaymentAction, RefundAction, UnknownAction};
pub use self::http::diagnosis::{visible, ExpectedMessage, SignatureCheck, SignatureRefusal};
pub use self::http::faults::{
    Fault, FaultAction, FaultStatus, FaultTarget, FiredFault, REORDER_HOLD,
};
pub use self::http::merchants::{Merchant, MerchantConfig, MerchantRole};
pub use self::http::mixed::SecondPlatform;
pub use self::http::received::Received;
pub use self::http::server::WriteDeadline;
pub use self::http::settings::{Forgery, Mode};
pub use self::notify::v2_refund::V2_REFUND_EVENT;
pub use self::notify::webhooks::PLATFORM_RETRY_SCHEDULE;
pub use self::state::clock::{time_from_rfc3339, ClockReading};
pub use self::state::records::{Delivery, Outcome};
pub use self::util::MAX_RECORDS;

use self::flows::{actions, discount_card, pay, refund, transfer};
use self::http::answer;
use self::http::base::Base;
use self::http::client::Notifier;
use self::http::issued as certificates;
use self::http::scheme;
use self::http::settings::Settings;
use self::http::{guard, server, tls};
use self::state::shared::Shared;
#[cfg(test)]
use self::util::keep;
use self::util::{lock, random_hex, Ssl as _};

/// The merchant key requests are checked with.
#[derive(Clone)]
enum MerchantKey {
    /// Generated at start; the emulator hands out the private key.
    Generated,
    Public(PublicKey),
    Certificate(Certificate),
}

/// Settings of an [`Emulator`]. Everything has a default: fresh keys, public-key mode,
/// an ephemeral loopback port.
///
/// ```
/// use std::time::Duration;
/// use wechatpay_emulator::{EmulatorConfig, Mode};
/// let config = EmulatorConfig::new()
///     .mode(Mode::Certificate)
///     .mchid("1900000001")
///     .apiv3_key("0123456789abcdef0123456789abcdef")
///     .notify_retries(vec![Duration::from_millis(50); 3]);
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct EmulatorConfig {
    addr: SocketAddr,
    mode: Mode,
    scheme: Scheme,
    mchid: String,
    merchant_serial: Option<String>,
    merchant: MerchantKey,
    merchant_private: Option<PrivateKey>,
    platform_key: Option<PrivateKey>,
    public_key_id: Option<String>,
    apiv3_key: Option<String>,
    apiv2_key: Option<String>,
    notify_retries: Vec<Duration>,
    notify_timeout: Duration,
    refund_delay: Option<Duration>,
    allow_remote_notify: bool,
    no_certificates_status: u16,
    tls: bool,
    handshake_timeout: Duration,
    public_key_alongside: bool,
    limits: server::Limits,
    control_token: TokenSetting,
    faults: Vec<Fault>,
    /// The clock's start (Unix milliseconds; now when `None`), and whether it is stopped.
    clock_start: Option<i64>,
    clock_frozen: bool,
    /// The state file ([`EmulatorConfig::state_file`]); in memory only when `None`.
    state_file: Option<std::path::PathBuf>,
    /// The merchants beyond the first ([`EmulatorConfig::merchant`]).
    merchants: Vec<MerchantConfig>,
}

/// Which token the control endpoints ask for ([`EmulatorConfig::control_token`]).
#[derive(Clone)]
enum TokenSetting {
    /// A random one made at start.
    Random,
    Fixed(String),
    /// None asked for: any local program may act (Host and Origin are still checked).
    Off,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("addr", &self.addr)
            .field("mode", &self.mode)
            .field("scheme", &self.scheme)
            .field("mchid", &self.mchid)
            .field("merchant_serial", &self.merchant_serial)
            .field("apiv3_key", &self.apiv3_key.as_ref().map(|_| "redacted"))
            .field("apiv2_key", &self.apiv2_key.as_ref().map(|_| "redacted"))
            .field("notify_retries", &self.notify_retries)
            .field("refund_delay", &self.refund_delay)
            .field("tls", &self.tls)
            .field("limits", &self.limits)
            .field("faults", &self.faults)
            .field("merchants", &self.merchants)
            .field(
                "control_token",
                &match self.control_token {
                    TokenSetting::Off => "off",
                    _ => "redacted",
                },
            )
            .finish_non_exhaustive()
    }
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mode: Mode::PublicKey,
            scheme: Scheme::Rsa,
            mchid: "1900000001".into(),
            merchant_serial: None,
            merchant: MerchantKey::Generated,
            merchant_private: None,
            platform_key: None,
            public_key_id: None,
            apiv3_key: None,
            apiv2_key: None,
            notify_retries: PLATFORM_RETRY_SCHEDULE.to_vec(),
            notify_timeout: Duration::from_secs(5),
            refund_delay: Some(Duration::from_millis(100)),
            allow_remote_notify: false,
            no_certificates_status: 404,
            tls: false,
            handshake_timeout: tls::DEFAULT_HANDSHAKE_TIMEOUT,
            public_key_alongside: false,
            limits: server::Limits::default(),
            control_token: TokenSetting::Random,
            faults: Vec::new(),
            clock_start: None,
            clock_frozen: false,
            state_file: None,
            merchants: Vec::new(),
        }
    }
}

impl EmulatorConfig {
    /// Defaults: fresh keys, public-key mode, mchid `1900000001`, `127.0.0.1:0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Another merchant in the same sandbox, beside the first ([`EmulatorConfig::mchid`]):
    /// a direct merchant, or a service provider when it has
    /// [sub-merchants](MerchantConfig::sub_merchant). Each signs with its own key, sees its own
    /// orders only, and gets notifications encrypted with its own APIv3 key.
    pub fn merchant(mut self, merchant: MerchantConfig) -> Self {
        self.merchants.push(merchant);
        self
    }

    /// A service provider (服务商) and its sub-merchants: [`EmulatorConfig::merchant`] with
    /// `sub_merchants`, which may order for no other.
    pub fn service_provider(
        self,
        sp: MerchantConfig,
        sub_merchants: impl IntoIterator<Item = MerchantConfig>,
    ) -> Self {
        let sp = sub_merchants
            .into_iter()
            .fold(sp, MerchantConfig::sub_merchant);
        self.merchant(sp)
    }

    /// Where to listen; must be a loopback address (port 0: any free port).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Listens on `127.0.0.1:port`.
    pub fn port(mut self, port: u16) -> Self {
        self.addr = SocketAddr::from(([127, 0, 0, 1], port));
        self
    }

    /// Public-key or certificate mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The APIv3 scheme: RSA (the default) or, with the `shangmi` feature, the 国密
    /// `Scheme::Sm2`: SM2 platform key (and SM2 certificate signed over SM3 in certificate
    /// mode), requests checked as `WECHATPAY2-SM2-WITH-SM3` with the merchant's SM2 key,
    /// SM2-signed answers and notifications, `AEAD_SM4_GCM` resources and certificates, SM2
    /// sensitive fields and SM3 bill digests. Generated keys are of the scheme's kind; given
    /// ones must be.
    pub fn scheme(mut self, scheme: Scheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// The merchant id requests must carry.
    pub fn mchid(mut self, mchid: impl Into<String>) -> Self {
        self.mchid = mchid.into();
        self
    }

    /// The merchant's API certificate serial requests must name (generated by default).
    pub fn merchant_serial(mut self, serial: impl Into<String>) -> Self {
        self.merchant_serial = Some(serial.into());
        self
    }

    /// Checks requests with this merchant public key under `serial` instead of a generated key.
    pub fn merchant_public_key(mut self, serial: impl Into<String>, key: PublicKey) -> Self {
        self.merchant_serial = Some(serial.into());
        self.merchant = MerchantKey::Public(key);
        self.merchant_private = None;
        self
    }

    /// Checks requests with the key of this merchant API certificate (its serial is expected).
    pub fn merchant_certificate(mut self, cert: Certificate) -> Self {
        self.merchant_serial = Some(cert.serial().to_string());
        self.merchant = MerchantKey::Certificate(cert);
        self.merchant_private = None;
        self
    }

    /// Uses this merchant private key (its public half checks requests) and hands it out to
    /// [`Emulator::builder`].
    pub fn merchant_private_key(mut self, key: PrivateKey) -> Self {
        self.merchant = MerchantKey::Generated;
        self.merchant_private = Some(key);
        self
    }

    /// Signs with this platform private key instead of a generated one.
    pub fn platform_private_key(mut self, key: PrivateKey) -> Self {
        self.platform_key = Some(key);
        self
    }

    /// The `PUB_KEY_ID_…` of public-key mode (derived from the mchid by default).
    pub fn public_key_id(mut self, id: impl Into<String>) -> Self {
        self.public_key_id = Some(id.into());
        self
    }

    /// The APIv3 key notifications and certificates are encrypted with (32 bytes; random by
    /// default).
    pub fn apiv3_key(mut self, key: impl Into<String>) -> Self {
        self.apiv3_key = Some(key.into());
        self
    }

    /// The APIv2 key `sign` fields are made with (random by default).
    pub fn apiv2_key(mut self, key: impl Into<String>) -> Self {
        self.apiv2_key = Some(key.into());
        self
    }

    /// Waits between notification attempts after the first, in the sandbox's clock time: by
    /// default the platform's 15 retries over about a day ([`PLATFORM_RETRY_SCHEDULE`]), which a
    /// test runs through by advancing the clock ([`Emulator::advance_clock`]).
    pub fn notify_retries(mut self, delays: Vec<Duration>) -> Self {
        self.notify_retries = delays;
        self
    }

    /// How long one notification attempt may take (5 s, as the platform).
    pub fn notify_timeout(mut self, timeout: Duration) -> Self {
        self.notify_timeout = timeout;
        self
    }

    /// How long a refund stays `PROCESSING` before it succeeds by itself and `REFUND.SUCCESS`
    /// is notified (100 ms by default, as the platform settles most refunds on its own);
    /// `None`: never, every refund stays `PROCESSING` until an action decides it
    /// ([`Emulator::act_on_refund`], [`Emulator::complete_refund`], `wechatpay sandbox
    /// refund`), so that a test can make it close or go abnormal. `wechatpay serve
    /// --refund-delay 2s|never` sets it.
    pub fn refund_delay(mut self, delay: Option<Duration>) -> Self {
        self.refund_delay = delay;
        self
    }

    /// Lets notifications go to hosts other than loopback ones (off by default, so that a test
    /// never sends traffic off the machine by accident).
    pub fn allow_remote_notify(mut self, allow: bool) -> Self {
        self.allow_remote_notify = allow;
        self
    }

    /// What `v3/certificates` answers in public-key mode: 404 (the default) or 403, the two
    /// answers the platform gives merchants without platform certificates. Other values are
    /// taken as 404.
    pub fn no_certificates_status(mut self, status: u16) -> Self {
        self.no_certificates_status = if status == 403 { 403 } else { 404 };
        self
    }

    /// Serves HTTPS instead of plain HTTP (off by default), as the platform does: the emulator
    /// makes a CA of its own at start, a server certificate for `127.0.0.1`/`localhost` and
    /// the merchant API certificate (`apiclient_cert.pem`: CN = the mchid, for the merchant
    /// key, signed by that CA). The handshake asks for a client certificate without requiring
    /// one (APIv3 calls present none); the APIv2 calls that need the merchant certificate
    /// (`secapi/…`, with `security: true`) are refused unless the connection presented it.
    /// [`Emulator::builder`] then trusts the CA and presents the certificate; for other
    /// clients see [`Emulator::ca_certificate_pem`] and [`Emulator::merchant_certificate_pem`].
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }

    /// Certificate mode: also holds a platform public key (`PUB_KEY_ID_…`, see
    /// [`EmulatorConfig::public_key_id`], a key pair of its own), as a merchant migrating from
    /// certificates to the public key has both. Each APIv3 answer is then signed with the key
    /// its request names in `Wechatpay-Serial`, the certificate when it names none (or another
    /// key); [`Emulator::builder`] configures both. Off by default.
    pub fn public_key_alongside(mut self, on: bool) -> Self {
        self.public_key_alongside = on;
        self
    }

    /// How long a TLS client may take over its handshake before the connection is dropped
    /// (5 s).
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// How long a connection may take to send a request's headers (from when it opens, or
    /// since its previous answer), and then its body, before it is closed (10 s). Keeps
    /// stalled and idle connections from holding a connection slot.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.limits.header_read_timeout = timeout;
        self
    }

    /// How long an answer may wait for its client to take it (10 s): from the first write that
    /// has to wait (the socket's buffers full) until the answer is all sent. A client that asks
    /// for a large answer and never reads it loses the connection then, instead of holding its
    /// slot for good.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.limits.write_timeout = timeout;
        self
    }

    /// Connections served at once (1,024, at least 1). Beyond it, new connections wait (not yet
    /// accepted) until one closes, which the read timeout bounds for a silent one. A pooled
    /// HTTP/1 client opens more connections than it has calls in flight (a call that finds no
    /// idle connection starts one, then may take one freed meanwhile): with too low a cap, its
    /// requests wait in the backlog while its idle connections hold the slots.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.limits.max_connections = n.max(1);
        self
    }

    /// The size of the request log ([`Emulator::requests`]) in bytes, as counted by
    /// [`Received::kept_bytes`] (64 MiB; a record counts what it holds and what its entry in
    /// `GET /emulator/requests` takes, so that listing the whole log takes at most this); the
    /// oldest records are dropped first.
    pub fn max_log_bytes(mut self, bytes: usize) -> Self {
        self.limits.max_log_bytes = bytes;
        self
    }

    /// Request bodies longer than this are logged as their first `bytes` bytes, with their
    /// length and SHA-256 (64 KiB).
    pub fn log_body_prefix(mut self, bytes: usize) -> Self {
        self.limits.log_body_prefix = bytes;
        self
    }

    /// The token a control request that changes state (`POST /emulator/…`) must carry, as
    /// `Authorization: Bearer TOKEN` (or else be signed by the merchant, as APIv3 requests
    /// are), so that no web page the user visits can pay an order through the browser: a
    /// random one by default ([`Emulator::control_token`]; `wechatpay serve` writes it to its
    /// env file as `WECHATPAY_SANDBOX_TOKEN`). `Some(token)` fixes it (visible ASCII, no
    /// spaces); `None` asks for none. The `Host` and `Origin` checks hold either way.
    pub fn control_token(mut self, token: Option<String>) -> Self {
        self.control_token = match token {
            Some(t) => TokenSetting::Fixed(t),
            None => TokenSetting::Off,
        };
        self
    }

    /// Adds a rule to the fault plan the sandbox starts with ([`Fault`]; rules are tried in
    /// the order added, the first that fires applies). `wechatpay serve --fault SPEC` sets it.
    pub fn fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }
}

/// The emulated platform, running. Dropping it stops the server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    merchant_private: Option<PrivateKey>,
    shutdown: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("base_uri", &self.base_uri())
            .field("mode", &self.shared.settings.mode)
            .field("mchid", &self.shared.settings.mchid)
            .field("platform_serial", &self.shared.settings.platform_serial)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts the emulator on the current tokio runtime: keys are generated as configured, the
    /// port is bound, and the server runs until [`Emulator::stop_async`] or drop.
    pub async fn start_async(config: EmulatorConfig) -> Result<Emulator, Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::config("Emulator::start_async needs a tokio runtime (or use Emulator::start, which runs one of its own)")
        })?;
        Self::start_on(config, runtime).await
    }

    /// Starts the emulator on a thread and runtime of its own, for tests without a runtime.
    pub fn start(config: EmulatorConfig) -> Result<Emulator, Error> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wechatpay-emulator".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(Err(Error::config_from(
                            "cannot start the emulator's runtime",
                            e,
                        )));
                        return;
                    }
                };
                rt.block_on(async move {
                    let started = Self::start_on(config, tokio::runtime::Handle::current()).await;
                    let mut stopped = match &started {
                        Ok(emu) => Some(emu.shutdown.subscribe()),
                        Err(_) => None,
                    };
                    if tx.send(started).is_err() {
                        return;
                    }
                    if let Some(rx) = stopped.as_mut() {
                        while !*rx.borrow() {
                            if rx.changed().await.is_err() {
                                break;
                            }
                        }
                    }
                });
            })
            .map_err(|e| Error::config_from("cannot start the emulator thread", e))?;
        let mut emu = rx
            .recv()
            .map_err(|_| Error::config("the emulator thread stopped"))??;
        emu.thread = Some(thread);
        Ok(emu)
    }

    async fn start_on(
        config: EmulatorConfig,
        runtime: tokio::runtime::Handle,
    ) -> Result<Emulator, Error> {
        if !config.addr.ip().is_loopback() {
            return Err(Error::config(format!(
                "the emulator listens on loopback addresses only, not {}",
                config.addr
            )));
        }
        let mut config = config;
        let (store, loaded) = match &config.state_file {
            Some(path) => {
                let (store, loaded) = state::store::Store::open(path)?;
                (Some(store), loaded)
            }
            None => (None, state::store::Loaded::default()),
        };
        loaded.fill(&mut config.stored());
        let apiv3_key = config.apiv3_key.clone().unwrap_or_else(|| random_hex(16));
        if apiv3_key.len() != wechatpay_chain::crypto::aes_gcm::KEY_LEN {
            return Err(Error::config("the APIv3 key must be 32 bytes"));
        }
        let apiv2_key = config.apiv2_key.clone().unwrap_or_else(|| random_hex(16));
        http::merchants::fill(&mut config.merchants, &|mchid: &str| loaded.merchant(mchid));
        let merchants = http::merchants::build(&config.merchants, &config.mchid, config.scheme)?;
        http::mixed::check_keys(&merchants)?;
        let (merchant_private, merchant_key) = match &config.merchant {
            MerchantKey::Generated => {
                let key = match &config.merchant_private {
                    Some(k) => k.clone(),
                    None => scheme::generate_key(config.scheme)?,
                };
                let public = key.public_key()?;
                (Some(key), public)
            }
            MerchantKey::Public(k) => (None, k.clone()),
            MerchantKey::Certificate(c) => (None, c.public_key().clone()),
        };
        let merchant_serial = match &config.merchant_serial {
            Some(s) => wechatpay_chain::util::pem::normalize_serial(s)?,
            None => random_hex(20),
        };
        let platform_key = match &config.platform_key {
            Some(k) => k.clone(),
            None => scheme::generate_key(config.scheme)?,
        };
        if Scheme::of_public_key(&merchant_key) != config.scheme
            || Scheme::of_key(&platform_key) != config.scheme
            || merchants
                .iter()
                .any(|m| Scheme::of_public_key(&m.public_key) != m.scheme)
        {
            return Err(Error::config(format!(
                "the sandbox speaks {} (EmulatorConfig::scheme): give it merchant and platform \
                 keys of that kind, or none to have them generated",
                config.scheme.name()
            )));
        }
        let platform_public = platform_key.public_key()?;
        let (platform_serial, platform_cert) = match config.mode {
            Mode::PublicKey => {
                let id = match &config.public_key_id {
                    Some(id) => wechatpay_chain::util::pem::normalize_serial(id)?,
                    None => public_key_id_for(&config.mchid),
                };
                (id, None)
            }
            Mode::Certificate => {
                let issued = certificates::issue(&platform_key)?;
                (issued.certificate.serial().to_string(), Some(issued))
            }
        };
        let other_platform =
            http::mixed::other_platform(config.scheme, &merchants, config.mode, &config.mchid)?;
        let alongside = match (config.mode, config.public_key_alongside) {
            (Mode::Certificate, true) => {
                let id = match &config.public_key_id {
                    Some(id) => wechatpay_chain::util::pem::normalize_serial(id)?,
                    None => public_key_id_for(&config.mchid),
                };
                let key = scheme::generate_key(config.scheme)?;
                let public = key.public_key()?;
                Some((id, key, public))
            }
            (Mode::PublicKey, true) => {
                return Err(Error::config(
                    "public_key_alongside needs certificate mode (Mode::Certificate)",
                ))
            }
            (_, false) => None,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|e| Error::config_from(format!("cannot listen on {}", config.addr), e))?;
        let addr = listener.local_addr()?;
        let tls = match config.tls {
            true => Some(tls::Tls::new(
                &config.mchid,
                &merchant_key,
                &merchant_serial,
                addr.ip(),
                config.handshake_timeout,
            )?),
            false => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let token = match &config.control_token {
            TokenSetting::Random => Some(random_hex(32)),
            TokenSetting::Fixed(t) => Some(guard::checked_token(t)?),
            TokenSetting::Off => None,
        };
        if let Some(store) = &store {
            store.save_keys(&state::store::Keys {
                platform_key: platform_key.clone(),
                merchant_key: merchant_private.clone(),
                merchant_serial: merchant_serial.clone(),
                public_key_id: match (&alongside, config.mode) {
                    (_, Mode::PublicKey) => Some(platform_serial.clone()),
                    (Some((id, _, _)), _) => Some(id.clone()),
                    (None, _) => None,
                },
                apiv3_key: apiv3_key.clone(),
                apiv2_key: apiv2_key.clone(),
            })?;
            for m in &merchants {
                if let Some(key) = &m.private_key {
                    store.save_merchant(&m.mchid, key, &m.serial, &m.apiv3_key, &m.apiv2_key)?;
                }
            }
        }
        let (shutdown, rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            base: Base {
                settings: Settings {
                    base_uri: format!("{scheme}://{addr}/"),
                    tls,
                    mchid: config.mchid.clone(),
                    merchant_serial,
                    merchant_key,
                    mode: config.mode,
                    scheme: config.scheme,
                    platform_key,
                    platform_public,
                    platform_serial,
                    platform_cert,
                    other_platform,
                    alongside,
                    rotations: Default::default(),
                    apiv3_key,
                    apiv2_key,
                    merchants,
                    notify_retries: config.notify_retries.clone(),
                    notify_timeout: config.notify_timeout,
                    refund_delay: config.refund_delay,
                    allow_remote_notify: config.allow_remote_notify,
                    no_certificates_status: config.no_certificates_status,
                    limits: config.limits,
                    guard: guard::Guard::new(addr.port(), scheme, token),
                },
                received: Mutex::new(http::received::RequestLog::default()),
                forgeries: Default::default(),
                nonces: Mutex::new(http::nonces::Nonces::new(
                    2 * wechatpay_chain::client_json::MAX_CLOCK_SKEW,
                )),
                runtime: runtime.clone(),
                stop: rx.clone(),
            },
            state: Mutex::new(loaded.state),
            deliveries: Mutex::new(loaded.deliveries),
            files: Mutex::new(state::records::Files::default()),
            notifier: Notifier::new()?,
            faults: http::faults::Faults::new(&config.faults),
            clock: state::clock::Clock::new(config.clock_start, config.clock_frozen),
            store,
        });
        if shared.store.is_some() {
            flows::resume::jobs(&shared);
            state::store::flush(&shared);
        }
        runtime.spawn(state::clock::run(shared.clone()));
        let task = runtime.spawn(server::serve(listener, shared.clone(), rx));
        tracing::debug!(%addr, mode = ?config.mode, "emulator listening");
        Ok(Emulator {
            shared,
            addr,
            merchant_private,
            shutdown,
            task: Some(task),
            thread: None,
        })
    }

    /// The base URI to give a client, `http://127.0.0.1:PORT/` (`https://…` in TLS mode).
    pub fn base_uri(&self) -> String {
        self.shared.settings.base_uri.clone()
    }

    /// Whether the emulator serves HTTPS ([`EmulatorConfig::tls`]).
    pub fn is_tls(&self) -> bool {
        self.shared.settings.tls.is_some()
    }

    /// TLS mode: the emulator's CA certificate (PEM, `ca.pem`), for a client to trust
    /// ([`Builder::root_certificate`]).
    pub fn ca_certificate_pem(&self) -> Option<&str> {
        self.shared.settings.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// TLS mode: the merchant API certificate (PEM, `apiclient_cert.pem`), CN = the mchid,
    /// for the merchant key, issued by the emulator's CA. With the merchant private key
    /// ([`private_key_pem`] of [`Emulator::merchant_private_key`]) it is the identity
    /// `security: true` calls present ([`Builder::merchant_identity`]).
    pub fn merchant_certificate_pem(&self) -> Option<&str> {
        self.shared
            .settings
            .tls
            .as_ref()
            .map(|t| t.merchant_pem.as_str())
    }

    /// The address listened on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Public-key or certificate mode.
    pub fn mode(&self) -> Mode {
        self.shared.settings.mode
    }

    /// The merchant id requests must carry.
    pub fn mchid(&self) -> &str {
        &self.shared.settings.mchid
    }

    /// The merchant certificate serial requests must name.
    pub fn merchant_serial(&self) -> &str {
        &self.shared.settings.merchant_serial
    }

    /// The merchant private key, when the emulator generated it (or was given it).
    pub fn merchant_private_key(&self) -> Option<&PrivateKey> {
        self.merchant_private.as_ref()
    }

    /// The `Wechatpay-Serial` answers carry: `PUB_KEY_ID_…` or the certificate serial.
    pub fn platform_serial(&self) -> &str {
        &self.shared.settings.platform_serial
    }

    /// The platform private key notifications are signed with now, and the serial (or
    /// `PUB_KEY_ID_…`) they name it by: for a sandbox's notifications made elsewhere
    /// ([`events`], `wechatpay trigger`). Keep it as secret as any private key.
    pub fn platform_signer(&self) -> (PrivateKey, String) {
        let (key, serial) = self.shared.settings.signer();
        (key.into_owned(), serial.into_owned())
    }

    /// The platform public key answers verify with.
    pub fn platform_public_key(&self) -> &PublicKey {
        &self.shared.settings.platform_public
    }

    /// The platform public key as PEM (`pub_key.pem`).
    pub fn platform_public_key_pem(&self) -> Result<String, Error> {
        let pem = self
            .shared
            .settings
            .platform_public
            .as_openssl()
            .public_key_to_pem()
            .ssl("cannot encode the platform public key")?;
        String::from_utf8(pem)
            .map_err(|e| Error::key_from("a PEM encoding is not text", e.utf8_error()))
    }

    /// [`EmulatorConfig::public_key_alongside`]: the public key's id and the key.
    pub fn public_key_alongside(&self) -> Option<(&str, &PublicKey)> {
        self.shared
            .settings
            .alongside
            .as_ref()
            .map(|(id, _, public)| (id.as_str(), public))
    }

    /// The platform certificate (certificate mode only).
    pub fn platform_certificate(&self) -> Option<&Certificate> {
        self.shared
            .settings
            .platform_cert
            .as_ref()
            .map(|c| &c.certificate)
    }

    /// The APIv3 key notifications and certificates are encrypted with.
    pub fn apiv3_key(&self) -> &str {
        &self.shared.settings.apiv3_key
    }

    /// The APIv2 key.
    pub fn apiv2_key(&self) -> &str {
        &self.shared.settings.apiv2_key
    }

    /// A [`Builder`] wired to the emulator: base URI, mchid, serial, the merchant private key
    /// (when the emulator has it) and the platform key or certificate; in TLS mode also the
    /// emulator's CA as a trusted root and, when the emulator has the merchant private key,
    /// the merchant certificate as the identity of `security: true` calls.
    pub fn builder(&self) -> Builder {
        self.builder_in(self.shared.settings.scheme)
    }

    /// [`Emulator::builder`] speaking `scheme`, with the platform key of that scheme.
    fn builder_in(&self, scheme: Scheme) -> Builder {
        let s = &self.shared.settings;
        let mut b = Builder::new()
            .base_uri(self.base_uri())
            .mchid(&s.mchid)
            .serial(&s.merchant_serial)
            .scheme(scheme)
            .timeout(Duration::from_secs(10));
        if let Some(k) = &self.merchant_private {
            b = b.private_key(k.clone());
        }
        if let Some(t) = &s.tls {
            b = b.root_certificate(&t.ca_pem);
            // A key that cannot be written out leaves the identity unset: `security: true`
            // calls then say that it is missing.
            if let Some(key) = self
                .merchant_private
                .as_ref()
                .and_then(|k| private_key_pem(k).ok())
            {
                b = b.merchant_identity(&t.merchant_pem, &key);
            }
        }
        if let Some(o) = s.other_platform.as_ref().filter(|o| o.scheme == scheme) {
            b = match &o.cert {
                Some(c) => b.platform_certificate(c.certificate.clone()),
                None => b.platform_public_key(&o.serial, o.public.clone()),
            };
            return b.secret(&s.apiv2_key);
        }
        b = match &s.platform_cert {
            Some(c) => b.platform_certificate(c.certificate.clone()),
            None => b.platform_public_key(&s.platform_serial, s.platform_public.clone()),
        };
        if let Some((id, _, public)) = &s.alongside {
            b = b.platform_public_key(id, public.clone());
        }
        b.secret(&s.apiv2_key)
    }

    /// Every merchant of the sandbox, the first ([`Emulator::mchid`]) first.
    pub fn merchants(&self) -> Vec<Merchant> {
        self.shared
            .settings
            .all_merchants(self.merchant_private.as_ref())
    }

    /// A [`Builder`] like [`Emulator::builder`] that signs as merchant `mchid` (its serial,
    /// private key and APIv2 key); `None` for a merchant the sandbox does not have. In TLS mode
    /// the merchant certificate stays the first merchant's.
    pub fn builder_for(&self, mchid: &str) -> Option<Builder> {
        let m = self.merchants().into_iter().find(|m| m.mchid == mchid)?;
        let mut b = self
            .builder_in(m.scheme)
            .mchid(&m.mchid)
            .serial(&m.serial)
            .secret(&m.apiv2_key);
        if let Some(k) = m.private_key {
            b = b.private_key(k);
        }
        Some(b)
    }

    /// Rotates the platform certificate, as the platform does before one expires: a new key and
    /// certificate sign every answer and notification from now on, and `v3/certificates` lists
    /// the new certificate beside the old ones (rotations overlap). Certificate mode only;
    /// returns the new serial.
    pub fn rotate_certificate(&self) -> Result<String, Error> {
        if self.shared.settings.mode != Mode::Certificate {
            return Err(Error::config(
                "rotate_certificate needs certificate mode (public-key mode has no certificates)",
            ));
        }
        let key = scheme::generate_key(self.shared.settings.scheme)?;
        let issued = certificates::issue(&key)?;
        let serial = issued.certificate.serial().to_string();
        self.shared
            .settings
            .rotations
            .lock()
            .push((key, Arc::new(issued)));
        Ok(serial)
    }

    /// The requests received, in order: the last [`MAX_RECORDS`], within
    /// [`EmulatorConfig::max_log_bytes`].
    pub fn requests(&self) -> Vec<Received> {
        lock(&self.shared.received).after(0)
    }

    /// The requests received after the one numbered `seq` ([`Received::seq`]), in order: what
    /// is new since a previous look, without copying the whole log again.
    pub fn requests_after(&self, seq: u64) -> Vec<Received> {
        lock(&self.shared.received).after(seq)
    }

    /// The token state-changing control requests must carry as `Authorization: Bearer TOKEN`
    /// ([`EmulatorConfig::control_token`]); `None` when none is asked for. Keep it as secret
    /// as a key: whoever has it can pay orders and end refunds in this sandbox.
    pub fn control_token(&self) -> Option<&str> {
        self.shared.settings.guard.token()
    }

    /// Every notification attempt so far, in order (the last [`MAX_RECORDS`]).
    pub fn deliveries(&self) -> Vec<Delivery> {
        lock(&self.shared.deliveries).clone()
    }

    /// Adds a rule to the fault plan ([`Fault`]), after those already there; returns its id
    /// ([`FaultStatus::id`]). Also `POST /emulator/faults` with `{"spec": SPEC}`.
    pub fn fault(&self, fault: Fault) -> u64 {
        self.shared.faults.add(fault)
    }

    /// Removes every rule of the fault plan (what fired stays listed in
    /// [`fired_faults`](Self::fired_faults)). Also `DELETE /emulator/faults`.
    pub fn clear_faults(&self) {
        self.shared.faults.clear()
    }

    /// The fault plan's rules, with how many calls each matched and fired on. Also
    /// `GET /emulator/faults`.
    pub fn faults(&self) -> Vec<FaultStatus> {
        self.shared.faults.list()
    }

    /// The faults that fired, oldest first (the last 1,000): which rule, on what.
    pub fn fired_faults(&self) -> Vec<FiredFault> {
        self.shared.faults.fired()
    }

    /// Spoils the next APIv3 answer (after the control endpoints, which are left alone).
    pub fn forge_next(&self, forgery: Forgery) {
        self.shared.forgeries.lock().push_back(forgery);
    }

    /// Simulates the user paying order `out_trade_no` (native or JSAPI): it becomes
    /// `SUCCESS` and `TRANSACTION.SUCCESS` is sent to its `notify_url`. Returns the transaction.
    pub fn pay(&self, out_trade_no: &str) -> Result<Value, Error> {
        pay::settle(&self.shared, out_trade_no, None).map_err(answer::Answer::into_error)
    }

    /// Simulates the user taking discount card `out_card_code` in the mini program: the card's
    /// order is created (as `out_order_no`, or a generated one). Returns the order.
    pub fn accept_card(
        &self,
        out_card_code: &str,
        out_order_no: Option<&str>,
    ) -> Result<Value, Error> {
        discount_card::accept(&self.shared, out_card_code, out_order_no, None)
            .map_err(answer::Answer::into_error)
    }

    /// Makes a `PROCESSING` refund succeed now and sends `REFUND.SUCCESS` (for a refund made
    /// with APIv2 `secapi/pay/refund` and a `notify_url`, the APIv2 refund notification).
    /// Returns the refund (the first merchant's of that number, else the one other merchant's).
    pub fn complete_refund(&self, out_refund_no: &str) -> Result<Value, Error> {
        refund::control_key(&self.shared, out_refund_no, None)
            .and_then(|key| refund::complete(&self.shared, &key))
            .map_err(answer::Answer::into_error)
    }

    /// Simulates the user confirming merchant transfer `out_bill_no` and the money arriving:
    /// a pending bill becomes `SUCCESS` and `MCHTRANSFER.BILL.FINISHED` is sent to its
    /// `notify_url`. Returns the bill as `…/transfer-bills/out-bill-no/{out_bill_no}` answers it
    /// (the first merchant's of that number, else the one other merchant's).
    pub fn transfer_succeeded(&self, out_bill_no: &str) -> Result<Value, Error> {
        transfer::finish(&self.shared, out_bill_no, None, transfer::End::Succeeded)
            .map_err(answer::Answer::into_error)
    }

    /// Simulates merchant transfer `out_bill_no` failing: a pending bill becomes `FAIL` with
    /// `fail_reason` `reason` (one of the documented values, `OTHER_FAIL_REASON_TYPE` when
    /// `None`) and `MCHTRANSFER.BILL.FINISHED` is sent to its `notify_url`. Returns the bill.
    pub fn transfer_failed(&self, out_bill_no: &str, reason: Option<&str>) -> Result<Value, Error> {
        transfer::finish(
            &self.shared,
            out_bill_no,
            None,
            transfer::End::Failed(reason),
        )
        .map_err(answer::Answer::into_error)
    }

    /// What the payer or the platform does to pending payment `out_trade_no`: a merchant's
    /// order, a combined order (by `combine_out_trade_no`: every sub-order at once) or a
    /// partner order (`sub_mchid` picks the sub-merchant's when several have that number; it
    /// names the merchant of an order of a [merchant beyond the first](EmulatorConfig::merchant)).
    /// [`PaymentAction::Paid`] sends `TRANSACTION.SUCCESS` to the order's `notify_url`, paid
    /// by `openid` when the order names no payer. Returns the payment as its query answers it;
    /// an unknown payment is a 404 error, one that is not `NOTPAY` a 409 (`INVALID_STATE`).
    /// Also `POST /emulator/payments/{out_trade_no}/{paid|failed|closed}`.
    pub fn act_on_payment(
        &self,
        out_trade_no: &str,
        action: PaymentAction,
        sub_mchid: Option<&str>,
        openid: Option<&str>,
    ) -> Result<Value, Error> {
        actions::payment(&self.shared, out_trade_no, action, sub_mchid, openid, None)
            .map_err(answer::Answer::into_error)
    }

    /// The payer pays `out_trade_no` in WeChat with the front-end parameters the merchant's
    /// page or app handed over (`params`: a
    /// [`JsapiPayParams`](wechatpay_chain::request_payment::JsapiPayParams),
    /// [`AppPayParams`](wechatpay_chain::request_payment::AppPayParams), or their JSON),
    /// checked as the WeChat client does: the order's form (JSAPI or APP), its appid, its
    /// `prepay_id` in `package` (`prepayid`), `signType` `RSA`, a recent `timeStamp` (at most
    /// two hours old, five minutes ahead) and a `paySign` that verifies with the merchant's
    /// public key. Right, it is [`act_on_payment`](Self::act_on_payment) with
    /// [`PaymentAction::Paid`]; wrong, a 400 `PARAM_ERROR` error naming the parameter and why,
    /// and the order stays unpaid. Also `POST /emulator/payments/{out_trade_no}/paid` with
    /// `{"request_payment": {…}}`.
    pub fn request_payment(
        &self,
        out_trade_no: &str,
        params: &impl serde::Serialize,
    ) -> Result<Value, Error> {
        let given =
            match serde_json::to_value(params) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(Error::InvalidArgument(
                    "the front-end parameters must be a JSON object (JsapiPayParams, AppPayParams)"
                        .into(),
                )),
                Err(e) => {
                    return Err(Error::decode_from(
                        "the front-end parameters are not JSON",
                        e,
                    ))
                }
            };
        let given = Some(&given);
        actions::payment(
            &self.shared,
            out_trade_no,
            PaymentAction::Paid,
            None,
            None,
            given,
        )
        .map_err(answer::Answer::into_error)
    }

    /// What the platform does to refund `out_refund_no`, `PROCESSING` (or `ABNORMAL`, which
    /// may still succeed or close): `REFUND.SUCCESS`, `REFUND.CLOSED` or `REFUND.ABNORMAL`
    /// goes to its `notify_url`. Returns the refund as its query answers it; an unknown refund
    /// is a 404 error, a finished one a 409 (`INVALID_STATE`). Also
    /// `POST /emulator/refunds/{out_refund_no}/{succeeded|closed|abnormal}`. The first
    /// merchant's refund of that number, else the one other merchant's.
    pub fn act_on_refund(&self, out_refund_no: &str, action: RefundAction) -> Result<Value, Error> {
        actions::refund(&self.shared, out_refund_no, action).map_err(answer::Answer::into_error)
    }

    /// Stops listening and closes open connections.
    pub async fn stop_async(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        state::store::close(&self.shared);
    }
}

/// State that survives a restart (docs/emulator.md, "State that survives").
impl EmulatorConfig {
    /// Keeps the platform's records and keys in the SQLite file at `path` (created `0600` if
    /// absent): a sandbox started again on it is the same platform, with the same orders,
    /// refunds, transfers, receivers and notifications. Keys given here win over the file's.
    /// A file that is not a sandbox state file, is damaged, newer, or readable by others is
    /// refused at start and left untouched.
    pub fn state_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// What a state file may fill in.
    fn stored(&mut self) -> state::store::Unset<'_> {
        state::store::Unset {
            platform_key: &mut self.platform_key,
            merchant_key: match self.merchant {
                MerchantKey::Generated => Some(&mut self.merchant_private),
                _ => None,
            },
            merchant_serial: &mut self.merchant_serial,
            public_key_id: &mut self.public_key_id,
            apiv3_key: &mut self.apiv3_key,
            apiv2_key: &mut self.apiv2_key,
            clock_start: &mut self.clock_start,
            clock_frozen: &mut self.clock_frozen,
        }
    }
}

/// The sandbox's clock (docs/emulator.md, "Clock").
impl EmulatorConfig {
    /// Starts the sandbox's clock at `at` instead of now (it then runs with real time, unless
    /// [`EmulatorConfig::clock_frozen`]).
    pub fn clock_start(mut self, at: std::time::SystemTime) -> Self {
        self.clock_start = Some(state::clock::unix_millis(at));
        self
    }

    /// Starts the clock stopped: it moves only by [`Emulator::set_clock`] and
    /// [`Emulator::advance_clock`], so that a test decides when orders expire, refunds end and
    /// notifications are retried.
    pub fn clock_frozen(mut self, frozen: bool) -> Self {
        self.clock_frozen = frozen;
        self
    }
}

impl Emulator {
    /// What the sandbox's clock reads.
    pub fn clock(&self) -> ClockReading {
        state::clock::reading(&self.shared)
    }

    /// Sets the clock to `at` (still running, or frozen as it was). Whatever became due by
    /// then (order expiries, refund and transfer ends, notification retries) happens now, in
    /// the order of its time; notifications go out in the background.
    pub fn set_clock(&self, at: std::time::SystemTime) -> ClockReading {
        let at = state::clock::unix_millis(at);
        self.shared.clock.change(|_| at, None);
        state::clock::run_due(&self.shared);
        state::store::flush(&self.shared);
        self.clock()
    }

    /// Moves the clock forward by `by`; what became due happens now, in order (see
    /// [`Emulator::set_clock`]).
    pub fn advance_clock(&self, by: Duration) -> ClockReading {
        self.shared
            .clock
            .change(|now| now.saturating_add(state::clock::millis(by)), None);
        state::clock::run_due(&self.shared);
        state::store::flush(&self.shared);
        self.clock()
    }

    /// Stops the clock where it is (`true`) or lets it run on with real time from there.
    pub fn freeze_clock(&self, frozen: bool) -> ClockReading {
        self.shared.clock.change(|now| now, Some(frozen));
        state::clock::run_due(&self.shared);
        state::store::flush(&self.shared);
        self.clock()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        state::store::close(&self.shared);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A `PUB_KEY_ID_…` in the platform's shape: `PUB_KEY_ID_01` + mchid + date + zeros.
fn public_key_id_for(mchid: &str) -> String {
    let digits: String = mchid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let date = state::date_digits(formatter::timestamp());
    let mut id = format!("PUB_KEY_ID_01{digits}{date}");
    while id.len() < 41 {
        id.push('0');
    }
    id
}

/// A PEM-encoded private key, for writing keys out (`wechatpay serve`).
pub fn private_key_pem(key: &PrivateKey) -> Result<String, Error> {
    let pem = key
        .as_openssl()
        .private_key_to_pem_pkcs8()
        .ssl("cannot encode the private key")?;
    String::from_utf8(pem)
        .map_err(|e| Error::key_from("a PEM encoding is not text", e.utf8_error()))
}

impl Emulator {
    /// The scheme of the sandbox ([`EmulatorConfig::scheme`](EmulatorConfig::scheme)).
    pub fn scheme(&self) -> Scheme {
        self.shared.settings.scheme
    }

    /// When a merchant speaks the other scheme: the platform key of that scheme.
    pub fn second_platform(&self) -> Option<SecondPlatform> {
        let o = self.shared.settings.other_platform.as_ref()?;
        Some(SecondPlatform {
            scheme: o.scheme,
            serial: o.serial.clone(),
            public_key: o.public.clone(),
            certificate: o.cert.as_ref().map(|c| c.certificate.clone()),
            private_key: o.key.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_newest() {
        let list = Mutex::new(Vec::new());
        for i in 0..MAX_RECORDS + 5 {
            keep(&list, i);
        }
        let list = lock(&list);
        assert_eq!(list.len(), MAX_RECORDS);
        assert_eq!(list[0], 5);
        assert_eq!(list.last(), Some(&(MAX_RECORDS + 4)));
    }

    #[test]
    fn public_key_ids_look_like_the_platforms() {
        let id = public_key_id_for("1900000001");
        assert!(id.starts_with("PUB_KEY_ID_011900000001"), "{id}");
        assert!(wechatpay_chain::util::pem::normalize_serial(&id).is_ok());
    }
}

/// The examples of docs/emulator.md, compiled and run as doctests so that the page stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/emulator.md")]
pub struct EmulatorDoc;
