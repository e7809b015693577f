//! The one pooled hyper client a `Client` and all its clones share, driven by a small runtime
//! of the crate's own so that blocking calls work from any thread (inside a tokio runtime too)
//! and async calls work from any tokio runtime, whose connections never outlive it.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_tls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::error::Error;

type Pool = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The I/O runtime: two worker threads, created on first use, never dropped (a runtime dropped
/// inside another runtime's task would panic).
const WORKERS: usize = 1;

static RUNTIME: LazyLock<Result<Runtime, String>> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .thread_name("wechatpay-io")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the I/O runtime: {e}"))
});

pub(crate) fn runtime() -> Result<&'static Runtime, Error> {
    RUNTIME.as_ref().map_err(|e| Error::Config(e.clone()))
}

/// Limits of one exchange.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub body_limit: usize,
}

/// Pooled HTTP(S) connections: a plain pool, and for APIv2 `security` calls a pool that
/// presents the merchant certificate.
#[derive(Clone)]
pub(crate) struct Transport {
    plain: Pool,
    secure: Option<Pool>,
}

fn pool(tls: native_tls::TlsConnector) -> Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = HttpsConnector::from((http, tls.into()));
    HyperClient::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(https)
}

impl Transport {
    pub(crate) fn new(identity: Option<native_tls::Identity>) -> Result<Self, Error> {
        let tls = native_tls::TlsConnector::new()
            .map_err(|e| Error::Config(format!("TLS setup failed: {e}")))?;
        let secure = match identity {
            Some(id) => {
                let tls = native_tls::TlsConnector::builder()
                    .identity(id)
                    .build()
                    .map_err(|e| {
                        Error::Config(format!(
                            "TLS setup with the merchant certificate failed: {e}"
                        ))
                    })?;
                Some(pool(tls))
            }
            None => None,
        };
        Ok(Transport {
            plain: pool(tls),
            secure,
        })
    }

    /// Sends `req` on the I/O runtime; the returned future can be awaited on any runtime and
    /// cancels the exchange when dropped.
    pub(crate) fn send(
        &self,
        req: http::Request<Bytes>,
        secure: bool,
        limits: Limits,
    ) -> Result<Exchange, Error> {
        let pool = self.pool(secure)?;
        Ok(Exchange(runtime()?.spawn(exchange(pool, req, limits))))
    }

    fn pool(&self, secure: bool) -> Result<Pool, Error> {
        if secure {
            self.secure.clone().ok_or_else(|| {
                Error::Config("this call needs the merchant certificate (security): set Builder::merchant_identity".into())
            })
        } else {
            Ok(self.plain.clone())
        }
    }

    /// Sends `req` and blocks the calling thread until the answer is complete. Safe inside a
    /// tokio runtime: the work happens on the crate's own runtime, not the caller's.
    pub(crate) fn send_blocking(
        &self,
        req: http::Request<Bytes>,
        secure: bool,
        limits: Limits,
    ) -> Result<http::Response<Bytes>, Error> {
        let pool = self.pool(secure)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime()?.spawn(async move {
            let _ = tx.send(exchange(pool, req, limits).await);
        });
        rx.recv()
            .map_err(|_| Error::Config("the I/O runtime stopped".into()))?
    }
}

async fn exchange(
    pool: Pool,
    req: http::Request<Bytes>,
    limits: Limits,
) -> Result<http::Response<Bytes>, Error> {
    let uri = req.uri().to_string();
    let (parts, body) = req.into_parts();
    let req = http::Request::from_parts(parts, Full::new(body));
    let work = async {
        let res = pool.request(req).await.map_err(|e| Error::Transport {
            uri: uri.clone(),
            source: Box::new(e),
            answered: false,
        })?;
        let (parts, body) = res.into_parts();
        if let Some(len) = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if len > limits.body_limit as u64 {
                return Err(Error::BodyTooLarge {
                    uri: uri.clone(),
                    limit: limits.body_limit,
                });
            }
        }
        let collected = Limited::new(body, limits.body_limit)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Error::BodyTooLarge {
                        uri: uri.clone(),
                        limit: limits.body_limit,
                    }
                } else {
                    Error::Transport {
                        uri: uri.clone(),
                        source: e,
                        answered: true,
                    }
                }
            })?;
        Ok(http::Response::from_parts(parts, collected.to_bytes()))
    };
    match tokio::time::timeout(limits.timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            uri,
            after: limits.timeout,
        }),
    }
}

/// An exchange under way on the I/O runtime; dropping it aborts the exchange.
pub(crate) struct Exchange(JoinHandle<Result<http::Response<Bytes>, Error>>);

impl Future for Exchange {
    type Output = Result<http::Response<Bytes>, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(r) => r,
            Err(e) => Err(Error::Config(format!("the I/O task failed: {e}"))),
        })
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.0.abort();
    }
}
