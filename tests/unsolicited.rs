//! Bytes a platform writes on an idle keep-alive connection (an answer nobody asked for, a 408
//! before a close) never reach a later call: the connection is dropped, the call goes out on
//! another one and gets its own answer, and the calls after it stay in step. Blocking calls and
//! async calls on both runtime flavours; the bytes arriving after the answer or in the same
//! write as it; over plain TCP and TLS (where a quiet connection is still reused).
//!
//! The platforms are raw loopback servers on threads. Each write a test depends on is waited
//! for, bounded, until the client's kernel has acknowledged it (the server's send queue is
//! empty): the next call then starts with the bytes already on its side, whatever the timing.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Keys, Server, PUB_KEY_ID};
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslStream, SslVersion};
use openssl::x509::X509;
use serde_json::{json, Value};
use wechatpay_chain::{formatter, Client, Error, Response, Rsa};

/// What the platform does after the first answer on its first connection.
#[derive(Clone, Copy, Debug)]
enum After {
    /// Nothing: a quiet keep-alive connection.
    Nothing,
    /// 100 ms later, writes a second signed answer that nobody asked for.
    Inject,
    /// Writes that second answer in the same write as the first one.
    InjectTogether,
    /// 100 ms later, writes a `408` and closes the connection.
    Timeout,
    /// Writes the first 10 bytes of a second answer (over TLS: of its record), and the rest
    /// only once the next request has arrived.
    InjectSplit,
}

/// A raw loopback platform: answers `GET /v3/x/{n}` with a signed `{"target": "/v3/x/{n}"}`.
struct Platform {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// One message once the bytes of [`After`] have reached the client's kernel.
    written: mpsc::Receiver<()>,
    /// The TLS server's certificate (PEM), for the client to trust.
    cert: Option<String>,
}

const WAIT: Duration = Duration::from_secs(10);

impl Platform {
    fn start(after: After, tls: bool) -> Platform {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tell, written) = mpsc::channel();
        let identity = tls.then(identity);
        let cert = identity
            .as_ref()
            .map(|(_, c)| String::from_utf8(c.to_pem().unwrap()).unwrap());
        let acceptor = identity.map(|(key, cert)| {
            let mut a = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
            // TLS 1.3: the server sends session tickets after the handshake, records that a
            // quiet connection must still be reused with.
            a.set_min_proto_version(Some(SslVersion::TLS1_3)).unwrap();
            a.set_private_key(&key).unwrap();
            a.set_certificate(&cert).unwrap();
            Arc::new(a.build())
        });
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let first = count.fetch_add(1, Ordering::SeqCst) == 0;
                let after = if first { after } else { After::Nothing };
                let (tell, acceptor) = (tell.clone(), acceptor.clone());
                std::thread::spawn(move || {
                    let stream = Holding {
                        tcp: stream,
                        pass: None,
                        held: Vec::new(),
                    };
                    match acceptor {
                        Some(a) => {
                            if let Ok(s) = a.accept(stream) {
                                serve(s, after, &tell);
                            }
                        }
                        None => serve(stream, after, &tell),
                    }
                });
            }
        });
        Platform {
            addr,
            accepted,
            written,
            cert,
        }
    }

    fn client(&self) -> Client {
        let b = Server::builder_at(Keys::shared(), self.addr);
        match &self.cert {
            Some(pem) => b
                .base_uri(format!("https://{}/", self.addr))
                .root_certificate(pem),
            None => b,
        }
        .build()
        .unwrap()
    }

    /// Waits until the bytes of [`After`] have reached the client's kernel.
    fn wait_written(&self) {
        self.written
            .recv_timeout(WAIT)
            .expect("the platform's unsolicited bytes were not delivered");
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// A self-signed certificate for 127.0.0.1, made now.
fn identity() -> (PKey<Private>, X509) {
    use openssl::x509::extension::SubjectAlternativeName;
    let key = PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "loopback platform")
        .unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = openssl::bn::BigNum::from_u32(1).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
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

/// A `200` for `target`, signed by the platform as the real one signs.
fn answer(target: &str) -> Vec<u8> {
    let body = serde_json::to_vec(&json!({ "target": target })).unwrap();
    let (ts, nonce) = (formatter::timestamp().to_string(), formatter::nonce(32));
    let signature = Rsa::sign(
        formatter::response(&ts, &nonce, &body),
        &Keys::shared().platform,
    )
    .unwrap();
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Wechatpay-Timestamp: {ts}\r\nWechatpay-Nonce: {nonce}\r\n\
         Wechatpay-Serial: {PUB_KEY_ID}\r\nWechatpay-Signature: {signature}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Waits, bounded, until everything written on `fd` has been acknowledged by the peer's kernel.
fn delivered(fd: RawFd) {
    let start = Instant::now();
    loop {
        let mut unacked: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int into the variable we own; `fd` is open (its stream
        // is borrowed by the caller).
        let rc = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut unacked) };
        assert_eq!(rc, 0, "ioctl(TIOCOUTQ)");
        if unacked == 0 {
            return;
        }
        assert!(start.elapsed() < WAIT, "{unacked} bytes never acknowledged");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The server's TCP stream, which can send the start of what is written on it and hold back
/// the rest (under TLS: of what OpenSSL writes, so a record arrives in part).
struct Holding {
    tcp: TcpStream,
    /// Holding: how many more bytes go out before the rest is held.
    pass: Option<usize>,
    held: Vec<u8>,
}

impl Holding {
    fn release(&mut self) -> std::io::Result<()> {
        self.pass = None;
        self.tcp.write_all(&std::mem::take(&mut self.held))
    }
}

impl Read for Holding {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tcp.read(buf)
    }
}

impl Write for Holding {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let Some(pass) = &mut self.pass else {
            return self.tcp.write(buf);
        };
        let n = (*pass).min(buf.len());
        self.tcp.write_all(&buf[..n])?;
        *pass -= n;
        self.held.extend_from_slice(&buf[n..]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// A connection's stream, plain or TLS, over a [`Holding`].
trait Wire: Read + Write {
    fn holding(&mut self) -> &mut Holding;
}

impl Wire for Holding {
    fn holding(&mut self) -> &mut Holding {
        self
    }
}

impl Wire for SslStream<Holding> {
    fn holding(&mut self) -> &mut Holding {
        self.get_mut()
    }
}

/// One connection: answers each request; after the first answer, does `after`.
fn serve<S: Wire>(stream: S, mut after: After, written: &mpsc::Sender<()>) {
    let mut reader = BufReader::new(stream);
    loop {
        // The request line, then the rest of the head (the calls are GETs, with no body).
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split(' ').nth(1).unwrap_or_default().to_string();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            if header == "\r\n" {
                break;
            }
        }
        let s = reader.get_mut();
        if s.holding().release().is_err() {
            return;
        }
        let fd = s.holding().tcp.as_raw_fd();
        let mut out = answer(&target);
        if let After::InjectTogether = after {
            out.extend_from_slice(&answer("/v3/x/injected"));
        }
        if s.write_all(&out).and_then(|()| s.flush()).is_err() {
            return;
        }
        match std::mem::replace(&mut after, After::Nothing) {
            After::Nothing => continue,
            After::InjectTogether => {}
            After::Inject => {
                std::thread::sleep(Duration::from_millis(100));
                s.write_all(&answer("/v3/x/injected")).unwrap();
                s.flush().unwrap();
            }
            After::InjectSplit => {
                s.holding().pass = Some(10);
                s.write_all(&answer("/v3/x/injected")).unwrap();
                s.flush().unwrap();
            }
            After::Timeout => {
                std::thread::sleep(Duration::from_millis(100));
                let timeout = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
                               Content-Length: 0\r\n\r\n";
                s.write_all(timeout.as_bytes()).unwrap();
                s.flush().unwrap();
                delivered(fd);
                written.send(()).unwrap();
                return; // closes the connection
            }
        }
        delivered(fd);
        written.send(()).unwrap();
    }
}

/// Asserts that call `n` succeeded with its own answer.
fn own(n: usize, res: Result<Response, Error>) {
    let res = res.unwrap_or_else(|e| panic!("call {n} failed: {e}"));
    assert_eq!(
        res.json::<Value>().unwrap()["target"],
        format!("/v3/x/{n}"),
        "call {n} got another request's answer"
    );
}

fn call(client: &Client, n: usize) {
    own(n, client.chain("v3/x/{n}").get(json!({ "n": n })));
}

async fn call_async(client: &Client, n: usize) {
    own(
        n,
        client.chain("v3/x/{n}").get_async(json!({ "n": n })).await,
    );
}

/// Blocking calls: the first, then (once the platform's bytes have arrived and `idle` has
/// passed) two more, each of which must get its own answer.
fn blocking(after: After, tls: bool, idle: Duration) -> Platform {
    let platform = Platform::start(after, tls);
    let client = platform.client();
    call(&client, 1);
    platform.wait_written();
    std::thread::sleep(idle);
    call(&client, 2);
    call(&client, 3);
    platform
}

#[test]
fn a_blocking_call_never_gets_an_answer_written_while_its_connection_was_idle() {
    for idle in [Duration::ZERO, Duration::from_millis(300)] {
        let platform = blocking(After::Inject, false, idle);
        assert_eq!(
            platform.accepted(),
            2,
            "the connection that got the unsolicited answer was dropped, the new one reused"
        );
    }
}

#[test]
fn async_calls_never_get_an_answer_written_while_their_connection_was_idle() {
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for rt in [&current, &multi] {
        let platform = Platform::start(After::Inject, false);
        let client = platform.client();
        rt.block_on(call_async(&client, 1));
        // The runtime is not running here (a current-thread one), or running idle.
        platform.wait_written();
        rt.block_on(async {
            call_async(&client, 2).await;
            call_async(&client, 3).await;
        });
        assert_eq!(platform.accepted(), 2);
    }
}

#[test]
fn an_answer_written_with_the_previous_one_never_reaches_the_next_call() {
    blocking(After::InjectTogether, false, Duration::ZERO);
    let platform = Platform::start(After::InjectTogether, false);
    let client = platform.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(call_async(&client, 1));
    platform.wait_written();
    rt.block_on(call_async(&client, 2));
    rt.block_on(call_async(&client, 3));
}

#[test]
fn the_start_of_an_answer_nobody_asked_for_is_enough_to_drop_the_connection() {
    let platform = blocking(After::InjectSplit, false, Duration::ZERO);
    assert_eq!(platform.accepted(), 2);
}

#[test]
fn a_408_and_a_close_on_an_idle_connection_send_the_next_call_to_a_new_one() {
    let platform = blocking(After::Timeout, false, Duration::ZERO);
    assert_eq!(platform.accepted(), 2);
}

#[test]
fn over_tls_an_unsolicited_answer_is_dropped_and_a_quiet_connection_is_reused() {
    for after in [After::Inject, After::InjectSplit] {
        let platform = blocking(after, true, Duration::ZERO);
        assert_eq!(platform.accepted(), 2, "{after:?}");
    }

    // A quiet TLS 1.3 connection (its session tickets arrive after the handshake) serves
    // every call.
    let platform = Platform::start(After::Nothing, true);
    let client = platform.client();
    for n in 1..=5 {
        call(&client, n);
    }
    assert_eq!(platform.accepted(), 1, "one TLS connection for five calls");
}
