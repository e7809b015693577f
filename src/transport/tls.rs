//! The pools' connector: plain TCP for `http://`, openssl for `https://`, with the TLS context
//! (and so the system's trust store) built only when the first `https://` connection is made.
//!
//! A client whose base is `http://` (the sandbox, a local proxy) therefore loads nothing
//! TLS-related at all: the trust store is what dominates a short-lived process's start (the
//! command line). When it is needed, it is loaded the cheapest way OpenSSL offers: the system's
//! hashed certificate directory (`/etc/ssl/certs`), where OpenSSL opens only the few files a
//! verification asks for, rather than parsing the whole bundle (`ca-certificates.crt`, ~150
//! certificates) up front. The bundle is loaded only when `SSL_CERT_FILE` names it, or when the
//! system has no hashed directory; where neither is found, OpenSSL's compiled-in default paths.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslVerifyMode, SslVersion,
};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::{X509VerifyResult, X509};

use super::socket::Socket;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The merchant's TLS client certificate (APIv2 `security` calls): parsed and checked at build.
pub(crate) struct Identity {
    pub cert: X509,
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

/// What the TLS context is made of, parsed (and so checked) when the client is built.
#[derive(Default)]
pub(crate) struct TlsConfig {
    /// Trusted beside the system's roots (`Builder::root_certificate`).
    pub roots: Vec<X509>,
    pub identity: Option<Identity>,
}

/// Where the system's trusted roots are, found once per process.
#[derive(Debug)]
struct SystemTrust {
    /// Hashed certificate directories (`SSL_CERT_DIR`, then the system's).
    dirs: Vec<PathBuf>,
    /// A bundle to parse: `SSL_CERT_FILE`, or the system's bundle when it has no hashed
    /// directory.
    file: Option<PathBuf>,
}

/// OpenSSL takes paths as C strings: a path that is not UTF-8 (or holds a NUL) is skipped.
fn usable(p: &Path) -> bool {
    p.to_str()
        .is_some_and(|s| !s.is_empty() && !s.contains('\0'))
}

/// Whether `dir` holds OpenSSL's hash links (`5ad8a5d6.0`), which is what a directory lookup
/// reads; a directory of plain `.pem` files would find nothing.
fn is_hashed(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.split_once('.').is_some_and(|(hash, n)| {
            hash.len() == 8
                && hash.bytes().all(|b| b.is_ascii_hexdigit())
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
        })
    })
}

static SYSTEM_TRUST: LazyLock<SystemTrust> = LazyLock::new(|| {
    let env = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let mut dirs: Vec<PathBuf> = env("SSL_CERT_DIR")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    for dir in openssl_probe::candidate_cert_dirs() {
        if !dirs.iter().any(|d| d == dir) && is_hashed(dir) {
            dirs.push(dir.to_path_buf());
        }
    }
    dirs.retain(|d| usable(d) && d.is_dir());
    let file = match env("SSL_CERT_FILE") {
        Some(f) => Some(PathBuf::from(f)),
        None if dirs.is_empty() => openssl_probe::probe().cert_file,
        None => None,
    }
    .filter(|f| usable(f) && f.exists());
    SystemTrust { dirs, file }
});

/// Builds a client context as openssl's `SslConnector` does (options, ciphers, peer
/// verification), but with the trust store of [`SYSTEM_TRUST`] rather than OpenSSL's default
/// paths, which would parse the whole bundle.
fn context(config: &TlsConfig, with_identity: bool) -> Result<SslContext, String> {
    let started = Instant::now();
    let fail =
        |what: &str, e: openssl::error::ErrorStack| format!("TLS setup failed ({what}): {e}");
    let mut ctx =
        SslContextBuilder::new(SslMethod::tls_client()).map_err(|e| fail("context", e))?;
    let mut opts = SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3
        | SslOptions::SINGLE_DH_USE
        | SslOptions::SINGLE_ECDH_USE;
    opts &= !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    ctx.set_options(opts);
    ctx.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    ctx.set_cipher_list("DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK")
        .map_err(|e| fail("ciphers", e))?;
    ctx.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| fail("protocol version", e))?;
    ctx.set_verify(SslVerifyMode::PEER);
    let trust = &*SYSTEM_TRUST;
    for dir in &trust.dirs {
        if let Err(e) = ctx.load_verify_locations(None, Some(dir)) {
            tracing::debug!(dir = %dir.display(), error = %e, "certificate directory not usable");
        }
    }
    if let Some(file) = &trust.file {
        if let Err(e) = ctx.load_verify_locations(Some(file), None) {
            tracing::debug!(file = %file.display(), error = %e, "certificate file not usable");
        }
    }
    if trust.dirs.is_empty() && trust.file.is_none() {
        // Nothing found where systems keep their roots: OpenSSL's compiled-in default paths.
        if let Err(e) = ctx.set_default_verify_paths() {
            tracing::debug!(error = %e, "OpenSSL's default certificate paths not usable");
        }
    }
    for root in &config.roots {
        // A root the system trusts already is refused as a duplicate by some OpenSSL
        // versions: it is trusted either way.
        if let Err(e) = ctx.cert_store_mut().add_cert(root.clone()) {
            tracing::debug!(error = %e, "root certificate not added");
        }
    }
    if with_identity {
        let id = config
            .identity
            .as_ref()
            .ok_or("TLS setup failed: no merchant certificate")?;
        let ctx = &mut ctx;
        ctx.set_certificate(&id.cert)
            .and_then(|()| ctx.set_private_key(&id.key))
            .and_then(|()| {
                id.chain
                    .iter()
                    .try_for_each(|c| ctx.add_extra_chain_cert(c.clone()))
            })
            .and_then(|()| ctx.check_private_key())
            .map_err(|e| fail("merchant certificate", e))?;
    }
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        dirs = ?trust.dirs,
        file = ?trust.file,
        "TLS context built (trust store loaded)"
    );
    Ok(ctx.build())
}

/// One pool's TLS context, built on its first `https://` connection and then shared by every
/// connection of the pool (and every clone of the client).
pub(crate) struct LazyTls {
    config: Arc<TlsConfig>,
    with_identity: bool,
    context: OnceLock<Result<SslContext, String>>,
}

impl LazyTls {
    pub(crate) fn new(config: Arc<TlsConfig>, with_identity: bool) -> Self {
        LazyTls {
            config,
            with_identity,
            context: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&SslContext, BoxError> {
        self.context
            .get_or_init(|| context(&self.config, self.with_identity))
            .as_ref()
            .map_err(|e| e.clone().into())
    }

    /// Whether the context has been built (tests).
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.context.get().is_some()
    }
}

/// Connects over TCP, and for `https://` then over TLS, verifying the server's certificate
/// chain and name.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector,
    tls: Arc<LazyTls>,
}

impl Connector {
    pub(crate) fn new(tls: Arc<LazyTls>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        Connector { http, tls }
    }
}

/// Why a handshake failed, with OpenSSL's verdict on the server's certificate when that is
/// the reason.
fn handshake_error(host: &str, e: openssl::ssl::Error, verify: X509VerifyResult) -> BoxError {
    let mut msg = format!("TLS handshake with {host} failed: {e}");
    if verify != X509VerifyResult::OK {
        msg.push_str(&format!(
            "; the server's certificate was refused: {} (a private CA or an intercepting \
             proxy: Builder::root_certificate, or SSL_CERT_FILE / SSL_CERT_DIR)",
            verify.error_string()
        ));
    }
    msg.into()
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        tower_service::Service::<Uri>::poll_ready(&mut self.http, cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let https = dst.scheme() == Some(&http::uri::Scheme::HTTPS);
        let tls = self.tls.clone();
        let connecting = tower_service::Service::<Uri>::call(&mut self.http, dst.clone());
        Box::pin(async move {
            let tcp = connecting.await?.into_inner();
            if !https {
                return Ok(Conn::Plain(TokioIo::new(Socket::new(tcp, false))));
            }
            let ctx = tls.get()?;
            let host = dst.host().unwrap_or_default().trim_matches(['[', ']']);
            let mut ssl = Ssl::new(ctx)?;
            let ip = host.parse::<std::net::IpAddr>();
            if ip.is_err() {
                ssl.set_hostname(host)?; // SNI, for names only
            }
            let param = ssl.param_mut();
            param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
            match ip {
                Ok(ip) => param.set_ip(ip)?,
                Err(_) => param.set_host(host)?,
            }
            let mut stream = tokio_openssl::SslStream::new(ssl, Socket::new(tcp, true))?;
            if let Err(e) = Pin::new(&mut stream).connect().await {
                return Err(handshake_error(host, e, stream.ssl().verify_result()));
            }
            Ok(Conn::Tls(TokioIo::new(stream)))
        })
    }
}

/// A pooled connection: plain or TLS, over a [`Socket`] (TLS above it, so that OpenSSL reads
/// what the socket holds too, and the socket follows the records).
pub(crate) enum Conn {
    Plain(TokioIo<Socket>),
    Tls(TokioIo<tokio_openssl::SslStream<Socket>>),
}

impl Conn {
    fn socket(&self) -> &Socket {
        match self {
            Conn::Plain(s) => s.inner(),
            Conn::Tls(s) => s.inner().get_ref(),
        }
    }

    /// The flag the pool sets when the connection goes idle (see [`Socket`]).
    pub(crate) fn idle(&self) -> Arc<AtomicBool> {
        self.socket().idle().clone()
    }

    /// A request is being written: what arrives from now on may be its answer.
    fn busy(&self) {
        self.socket().idle().store(false, Ordering::Release);
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => {
                let polled = Pin::new(&mut *s).poll_read(cx, buf);
                // Hyper reads an idle connection before it writes the next request on it, and
                // drops it if anything is there. A TLS record of which only the start has
                // arrived reads as nothing (OpenSSL waits for the rest), but the server wrote
                // on the idle connection all the same.
                let socket = s.inner().get_ref();
                if polled.is_pending() && socket.is_idle() && socket.mid_record() {
                    let e = "the server began a TLS record on an idle connection";
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
                }
                polled
            }
        }
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.busy();
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.busy();
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Duration;

    use bytes::Bytes;
    use openssl::pkey::{PKey, Private};
    use openssl::ssl::{SslAcceptor, SslMethod};
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509NameBuilder, X509};

    use super::super::{block_on, Limits, TlsConfig, Transport};

    /// A self-signed server certificate for 127.0.0.1, made now.
    fn server_identity() -> (PKey<Private>, X509) {
        let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "loopback test server")
            .unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        let sn = openssl::bn::BigNum::from_u32(7).unwrap();
        b.set_serial_number(&sn.to_asn1_integer().unwrap()).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        let san = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .build(&b.x509v3_context(None, None))
            .unwrap();
        b.append_extension(san).unwrap();
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .unwrap();
        (key, b.build())
    }

    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok";

    /// Reads a request's head and answers `ANSWER`, on `stream`.
    fn answer(mut stream: impl Read + Write) {
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = stream.write_all(ANSWER);
    }

    /// A loopback server answering `ANSWER` to every connection, over TLS when `tls` is given;
    /// its port.
    fn server(tls: Option<(PKey<Private>, X509)>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let acceptor = tls.map(|(key, cert)| {
            let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            a.set_private_key(&key).unwrap();
            a.set_certificate(&cert).unwrap();
            a.build()
        });
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                match &acceptor {
                    // A client that refuses the certificate ends the handshake: next.
                    Some(a) => {
                        if let Ok(s) = a.accept(stream) {
                            answer(s)
                        }
                    }
                    None => answer(stream),
                }
            }
        });
        port
    }

    fn get(t: &Transport, uri: String) -> Result<http::Response<Bytes>, crate::Error> {
        let req = http::Request::get(uri).body(Bytes::new()).unwrap();
        let limits = Limits {
            timeout: Duration::from_secs(20),
            body_limit: 1024,
        };
        block_on(async { t.send(req, false, limits)?.await })
    }

    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            out.push_str(" / ");
            out.push_str(&s.to_string());
            source = s.source();
        }
        out
    }

    #[test]
    fn http_calls_build_no_tls_context_and_a_later_https_call_verifies_with_the_roots() {
        let (key, cert) = server_identity();
        let plain = server(None);
        let tls = server(Some((key, cert.clone())));

        let t = Transport::new(TlsConfig {
            roots: vec![cert],
            identity: None,
        });
        let clone = t.clone();
        for _ in 0..3 {
            let res = get(&t, format!("http://127.0.0.1:{plain}/x")).unwrap();
            assert_eq!(&res.body()[..], b"ok");
        }
        assert!(!t.tls_built(), "an http:// call built the TLS context");

        // Then https, from a clone: the context is built now, with the configured root, and
        // the server's certificate (and its name, 127.0.0.1) is verified against it.
        let res = get(&clone, format!("https://127.0.0.1:{tls}/y")).unwrap();
        assert_eq!(&res.body()[..], b"ok");
        assert!(
            t.tls_built(),
            "clones share the pools and their TLS context"
        );

        // Without that root, the same server is refused, before any request is sent.
        let untrusting = Transport::new(TlsConfig::default());
        let e = get(&untrusting, format!("https://127.0.0.1:{tls}/y")).unwrap_err();
        let text = chain(&e);
        assert!(
            matches!(
                e,
                crate::Error::Transport {
                    answered: false,
                    ..
                }
            ) && text.contains("certificate verify failed")
                && text.contains("Builder::root_certificate"),
            "{text}"
        );
        // A name the certificate does not carry is refused too, though its root is trusted.
        let e = get(&t, format!("https://localhost:{tls}/y")).unwrap_err();
        assert!(
            chain(&e).contains("certificate verify failed"),
            "{}",
            chain(&e)
        );
    }
}
