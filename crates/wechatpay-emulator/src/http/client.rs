//! The HTTP client the platform's own requests (notifications) go out with.

use bytes::Bytes;
use http_body_util::Full;
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;
use wechatpay_chain::Error;

pub(crate) type Pool = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The HTTP client notifications go out with.
pub(crate) struct Notifier {
    pub(crate) pool: Pool,
}

impl Notifier {
    pub(crate) fn new() -> Result<Notifier, Error> {
        let tls = native_tls::TlsConnector::new()
            .map_err(|e| Error::config_from("TLS setup failed", e))?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let https = HttpsConnector::from((http, tls.into()));
        Ok(Notifier {
            pool: HyperClient::builder(TokioExecutor::new()).build(https),
        })
    }
}
