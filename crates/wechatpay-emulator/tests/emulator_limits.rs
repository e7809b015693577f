//! The emulator's own limits, over real sockets: a connection that sends nothing is closed
//! after the read timeout, connections beyond the cap wait for a slot instead of locking
//! others out, and the request log stays within its byte bound however large the bodies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use wechatpay_emulator::{Emulator, EmulatorConfig};

/// Generous: only a broken limit makes a read wait this long.
const BOUND: Duration = Duration::from_secs(20);

fn connect(emu: &Emulator) -> TcpStream {
    let s = TcpStream::connect(emu.addr()).unwrap();
    s.set_read_timeout(Some(BOUND)).unwrap();
    s
}

/// Reads until the server closes the connection; panics if it is still open after [`BOUND`].
fn read_to_close(mut s: TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the connection is still open ({e}) after {BOUND:?}"),
        }
    }
}

/// A well-behaved request (`Connection: close`) and its whole answer.
fn request(emu: &Emulator, method: &str, target: &str, body: &[u8]) -> String {
    let mut s = connect(emu);
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        emu.addr(),
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    String::from_utf8_lossy(&read_to_close(s)).into_owned()
}

#[test]
fn a_stalled_connection_is_closed_after_the_read_timeout() {
    let emu =
        Emulator::start(EmulatorConfig::new().header_read_timeout(Duration::from_millis(300)))
            .unwrap();
    // Half a request line, then nothing.
    let mut half = connect(&emu);
    half.write_all(b"GET /emulator HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    read_to_close(half);
    // Nothing at all.
    read_to_close(connect(&emu));
    // Headers, then half the body announced: answered 408, not waited on forever.
    let mut slow = connect(&emu);
    slow.write_all(b"POST /emulator HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(slow)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // The emulator still serves.
    assert!(request(&emu, "GET", "/emulator", b"").starts_with("HTTP/1.1 200"));
}

#[test]
fn connections_beyond_the_cap_wait_for_a_slot() {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .max_connections(2)
            .header_read_timeout(Duration::from_secs(120)),
    )
    .unwrap();
    let stalled: Vec<TcpStream> = (0..2).map(|_| connect(&emu)).collect();
    // A third connection gets no slot while both are held (its request waits, unread).
    let mut waiting = connect(&emu);
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    waiting
        .write_all(b"GET /emulator HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served beyond the cap: {early:?}"
    );
    // One closes: the waiting one is served.
    drop(stalled);
    waiting.set_read_timeout(Some(BOUND)).unwrap();
    let answer = String::from_utf8_lossy(&read_to_close(waiting)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_flood_of_silent_connections_locks_nobody_out_beyond_the_read_timeout() {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .max_connections(4)
            .header_read_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    // Twice the cap, silent and never closed by the client.
    let flood: Vec<TcpStream> = (0..8).map(|_| connect(&emu)).collect();
    // A well-behaved client behind them is served once they time out.
    let answer = request(&emu, "GET", "/emulator", b"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for s in flood {
        read_to_close(s);
    }
}

#[test]
fn the_request_log_stays_within_its_byte_bound() {
    const MAX: usize = 256 * 1024;
    const PREFIX: usize = 1024;
    let emu = Emulator::start(
        EmulatorConfig::new()
            .max_log_bytes(MAX)
            .log_body_prefix(PREFIX),
    )
    .unwrap();
    let mut body = vec![0u8; 512 * 1024];
    for (i, b) in body.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    for n in 0..40u8 {
        body[0] = n;
        let answer = request(&emu, "POST", "/v3/pay/transactions/native", &body);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    let small = request(&emu, "POST", "/v3/pay/transactions/native", b"{}");
    assert!(small.starts_with("HTTP/1.1 401"), "{small}");

    let log = emu.requests();
    let kept: usize = log.iter().map(|r| r.kept_bytes()).sum();
    assert!(kept <= MAX, "{kept} bytes kept, bound {MAX}");
    // The log holds the newest requests, large ones as a prefix with length and digest.
    let last = log.last().unwrap();
    assert_eq!(last.seq, 41);
    assert_eq!((last.body_len, &last.body[..]), (2, &b"{}"[..]));
    let large = &log[log.len() - 2];
    assert_eq!(large.seq, 40);
    assert_eq!(large.body_len, body.len());
    assert_eq!(&large.body[..], &body[..PREFIX]);
    let digest = openssl::sha::sha256(&body);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(large.body_sha256, hex);
}
