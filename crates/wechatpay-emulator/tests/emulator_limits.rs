//! The emulator's own limits and guards, over real sockets: a connection that sends nothing is
//! closed after the read timeout, one that never reads its answer after the write timeout,
//! connections beyond the cap wait for a slot instead of locking others out, the request log
//! and its listing stay within their byte bound however large the bodies, and the control
//! endpoints refuse a foreign `Host` (DNS rebinding), a foreign `Origin` (a cross-site page)
//! and a state-changing request without the control token.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
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
    let host = emu.addr().to_string();
    request_with(emu, method, target, &[("Host", &host)], body)
}

/// A request with these header lines (and `Content-Length`, `Connection: close`), and its
/// whole answer.
fn request_with(
    emu: &Emulator,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> String {
    let mut s = connect(emu);
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    String::from_utf8_lossy(&read_to_close(s)).into_owned()
}

/// An answer's status and JSON body (null when it is not JSON).
fn parts(answer: &str) -> (u16, Value) {
    let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An APIv3 request whose `Authorization` is well formed (this sandbox's merchant, serial and
/// clock, a fresh nonce) but whose signature is not the merchant's: refused
/// `SIGNATURE_MISMATCH`, with the string the sandbox expected (the body in it) logged.
fn mismatched(emu: &Emulator, nonce: &str, body: &[u8]) -> String {
    let auth = wechatpay_chain::formatter::authorization(
        emu.mchid(),
        nonce,
        "c2lnbmF0dXJl",
        &wechatpay_chain::formatter::timestamp().to_string(),
        emu.merchant_serial(),
    );
    let host = emu.addr().to_string();
    request_with(
        emu,
        "POST",
        "/v3/pay/transactions/native",
        &[("Host", &host), ("Authorization", &auth)],
        body,
    )
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
        .write_all(
            format!(
                "GET /emulator HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                emu.addr()
            )
            .as_bytes(),
        )
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

#[test]
fn an_answer_nobody_reads_frees_its_slot_after_the_write_timeout() {
    let emu = Emulator::start(
        EmulatorConfig::new()
            .max_connections(2)
            .header_read_timeout(Duration::from_millis(500))
            .write_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    // A log whose listing is large: refused signatures, each with the string expected signed.
    let body = vec![b'"'; 64 * 1024];
    for i in 0..16 {
        let answer = mismatched(&emu, &format!("NONCE-WRITE-{i}"), &body);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    // As many clients as there are slots ask for it again and again (pipelined: far more than
    // socket buffers hold) and never read.
    let listing = format!(
        "GET /emulator/requests HTTP/1.1\r\nHost: {}\r\n\r\n",
        emu.addr()
    )
    .repeat(64);
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&emu);
            s.write_all(listing.as_bytes()).unwrap();
            s
        })
        .collect();
    // A client behind them is answered once the write timeout has freed their slots.
    let answer = request(&emu, "GET", "/emulator", b"");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(stuck);
}

#[test]
fn the_request_listing_stays_within_the_log_bound_and_comes_in_pages() {
    const MAX: usize = 512 * 1024;
    const PREFIX: usize = 16 * 1024;
    let emu = Emulator::start(
        EmulatorConfig::new()
            .max_log_bytes(MAX)
            .log_body_prefix(PREFIX),
    )
    .unwrap();
    // Control characters, escaped in the listing in the body and again in the string expected
    // to be signed: the listing is several times the bytes received.
    let body = vec![1u8; PREFIX];
    for i in 0..40 {
        let answer = mismatched(&emu, &format!("NONCE-LIST-{i}"), &body);
        assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    }
    // The whole listing, page after page.
    let (mut after, mut listed, mut pages) = (0u64, 0usize, 0usize);
    let mut seqs: Vec<u64> = Vec::new();
    loop {
        let answer = request(
            &emu,
            "GET",
            &format!("/emulator/requests?after={after}"),
            b"",
        );
        let (status, page) = parts(&answer);
        assert_eq!(status, 200, "{}", &answer[..answer.len().min(300)]);
        let size = answer.split_once("\r\n\r\n").unwrap().1.len();
        assert!(
            size <= MAX,
            "one page is {size} bytes, the log's bound {MAX}"
        );
        listed += size;
        pages += 1;
        for r in page["data"].as_array().unwrap() {
            seqs.push(r["seq"].as_u64().unwrap());
            if r["method"] == "POST" {
                let expected = &r["signature"]["expected"];
                assert_eq!(
                    r["signature"]["check"], "SIGNATURE_MISMATCH",
                    "seq {}",
                    r["seq"]
                );
                assert_eq!(expected["body_len"], body.len());
            }
        }
        match page["next_after"].as_u64() {
            Some(n) => after = n,
            None => break,
        }
        assert!(pages < 1000, "the pages do not end");
    }
    // Within the bound (each page's own request adds a small record to the log meanwhile).
    assert!(
        listed <= MAX + pages * 1024,
        "the listing is {listed} bytes in {pages} pages, the log's bound {MAX}"
    );
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        seqs.contains(&40),
        "the newest large request is listed: {seqs:?}"
    );
    // What a record counts against the bound covers its listing.
    let kept: usize = emu.requests().iter().map(|r| r.kept_bytes()).sum();
    assert!(kept <= MAX, "{kept} bytes kept, bound {MAX}");

    // limit: at most that many, and where to go on from.
    let small = Emulator::start(EmulatorConfig::new()).unwrap();
    for _ in 0..3 {
        request(&small, "GET", "/emulator", b"");
    }
    // the seqs a page lists, and its next_after
    let page = |query: &str| {
        let (status, page) = parts(&request(
            &small,
            "GET",
            &format!("/emulator/requests?{query}"),
            b"",
        ));
        assert_eq!(status, 200, "{query}");
        let seqs: Vec<u64> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        (seqs, page["next_after"].as_u64())
    };
    assert_eq!(page("limit=2"), (vec![1, 2], Some(2)));
    assert_eq!(page("after=2"), (vec![3, 4], None));
    for bad in ["limit=0", "limit=x", "after=-1", "limit=1001"] {
        let (status, v) = parts(&request(
            &small,
            "GET",
            &format!("/emulator/requests?{bad}"),
            b"",
        ));
        assert_eq!(
            (status, v["code"].as_str()),
            (400, Some("PARAM_ERROR")),
            "{bad}"
        );
    }
}

#[test]
fn the_control_endpoints_refuse_foreign_hosts_origins_and_requests_without_the_token() {
    use wechatpay_chain::client_json::sign_request;
    let emu = support::start(EmulatorConfig::new());
    let hook = support::Receiver::new(|_, body| (body, 204, Bytes::new()));
    let c = support::client(&emu);
    let order = |no: &str| {
        c["v3/pay/transactions/native"]
            .post(
                json!({"json": {"appid": "wxd678efh567hg6787", "mchid": emu.mchid(),
                "description": "guard", "out_trade_no": no, "notify_url": hook.url,
                "amount": {"total": 100}}}),
            )
            .unwrap();
    };
    let state = |no: &str| support::trade_state(&c, &emu, no);
    let no = "GUARD-00000001";
    order(no);
    let token = emu.control_token().expect("a control token by default");
    let port = emu.addr().port();
    let here = emu.addr().to_string();
    let bearer = format!("Bearer {token}");
    let paid = format!("/emulator/payments/{no}/paid");
    let attacker = format!("attacker.example:{port}");
    let other = port.checked_sub(1).unwrap_or(2);
    let other_port = format!("127.0.0.1:{other}");
    let other_origin = format!("http://127.0.0.1:{other}");
    let forged = wechatpay_chain::formatter::authorization(
        emu.mchid(),
        "NONCE-FORGED",
        "c2lnbmF0dXJl",
        &wechatpay_chain::formatter::timestamp().to_string(),
        emu.merchant_serial(),
    );
    let text = ("Content-Type", "text/plain");
    // the request's headers, and the status and code it gets
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        // DNS rebinding: a page of attacker.example whose name now points at 127.0.0.1 (the
        // token would not help it)
        (
            vec![("Host", "attacker.example"), ("Authorization", &bearer)],
            421,
            "MISDIRECTED_REQUEST",
        ),
        (
            vec![
                ("Host", &attacker),
                ("Origin", "http://attacker.example"),
                text,
            ],
            421,
            "MISDIRECTED_REQUEST",
        ),
        (
            vec![("Host", &other_port), ("Authorization", &bearer)],
            421,
            "MISDIRECTED_REQUEST",
        ),
        (vec![("Authorization", &bearer)], 421, "MISDIRECTED_REQUEST"),
        // a cross-site page: its Origin, whatever else the request carries
        (
            vec![
                ("Host", &here),
                ("Origin", "http://attacker.example"),
                ("Authorization", &bearer),
                text,
            ],
            403,
            "FORBIDDEN",
        ),
        (
            vec![
                ("Host", &here),
                ("Origin", "null"),
                ("Authorization", &bearer),
            ],
            403,
            "FORBIDDEN",
        ),
        (
            vec![
                ("Host", &here),
                ("Origin", &other_origin),
                ("Authorization", &bearer),
            ],
            403,
            "FORBIDDEN",
        ),
        // no token, a wrong one, a forged merchant signature
        (vec![("Host", &here), text], 401, "UNAUTHORIZED"),
        (
            vec![("Host", &here), ("Authorization", "Bearer 0123456789")],
            401,
            "UNAUTHORIZED",
        ),
        (
            vec![("Host", &here), ("Authorization", &forged)],
            401,
            "UNAUTHORIZED",
        ),
    ];
    for (headers, status, code) in &cases {
        let answer = request_with(&emu, "POST", &paid, headers, b"{}");
        let (got, v) = parts(&answer);
        assert_eq!(
            (got, v["code"].as_str()),
            (*status, Some(*code)),
            "{headers:?}: {answer}"
        );
    }
    // Nothing changed, nothing was sent; each refusal is logged with its reason.
    assert_eq!(state(no), "NOTPAY");
    assert!(emu.deliveries().is_empty());
    let refused = emu
        .requests()
        .iter()
        .filter(|r| r.target == paid && r.refusal.is_some())
        .count();
    assert_eq!(refused, cases.len());
    assert!(
        emu.requests()
            .iter()
            .filter(|r| r.target == paid)
            .all(|r| !format!("{r:?}").contains(token)),
        "the token is not kept in the log"
    );

    // A request target naming another host (absolute form) is refused as its Host would be.
    let absolute = format!("http://attacker.example:{port}{paid}");
    let (status, _) = parts(&request_with(
        &emu,
        "POST",
        &absolute,
        &[("Host", &here), ("Authorization", &bearer)],
        b"{}",
    ));
    assert_eq!(status, 421);
    assert_eq!(state(no), "NOTPAY");

    // Reads need no token, and the sandbox answers to any of its loopback names.
    for host in [
        here.clone(),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = request_with(&emu, "GET", "/emulator", &[("Host", &host)], b"");
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    // APIv3 requests by another loopback name are checked as usual.
    let v6 = format!("[::1]:{port}");
    let (status, v) = parts(&request_with(
        &emu,
        "POST",
        "/v3/pay/transactions/native",
        &[("Host", &v6)],
        b"{}",
    ));
    assert_eq!((status, v["code"].as_str()), (401, Some("SIGN_ERROR")));

    // The sandbox's own page (its Origin), by another loopback name, with the token: paid, and
    // the notification goes out.
    let localhost = format!("localhost:{port}");
    let own = format!("http://127.0.0.1:{port}");
    let answer = request_with(
        &emu,
        "POST",
        &paid,
        &[
            ("Host", &localhost),
            ("Origin", &own),
            ("Authorization", &bearer),
            ("Content-Type", "application/json"),
        ],
        b"{}",
    );
    let (status, v) = parts(&answer);
    assert_eq!(
        (status, v["trade_state"].as_str()),
        (200, Some("SUCCESS")),
        "{answer}"
    );
    assert!(hook.next_within(Duration::from_secs(10)).is_some());

    // The merchant's signature authorizes a control request too (the library's client,
    // `wechatpay post emulator/…`).
    let no = "GUARD-00000002";
    order(no);
    let mut req = http::Request::post(format!("{}emulator/payments/{no}/failed", emu.base_uri()))
        .body(Bytes::new())
        .unwrap();
    sign_request(&mut req, &support::credentials(&emu)).unwrap();
    let (status, _, _) = support::send(req);
    assert_eq!(status, 200);
    assert_eq!(state(no), "PAYERROR");
}

#[test]
fn the_control_token_can_be_fixed_or_turned_off() {
    let fixed =
        Emulator::start(EmulatorConfig::new().control_token(Some("s3cret-token".into()))).unwrap();
    assert_eq!(fixed.control_token(), Some("s3cret-token"));
    let host = fixed.addr().to_string();
    let (status, v) = parts(&request_with(
        &fixed,
        "POST",
        "/emulator/payments/NONE-0000001/paid",
        &[("Host", &host), ("Authorization", "Bearer s3cret-token")],
        b"",
    ));
    assert_eq!((status, v["code"].as_str()), (404, Some("ORDER_NOT_EXIST")));
    // Off: no token is asked for (the Host and Origin checks stay).
    let open = Emulator::start(EmulatorConfig::new().control_token(None)).unwrap();
    assert_eq!(open.control_token(), None);
    let (status, _) = parts(&request(
        &open,
        "POST",
        "/emulator/payments/NONE-0000001/paid",
        b"",
    ));
    assert_eq!(status, 404);
    let (status, _) = parts(&request_with(
        &open,
        "POST",
        "/emulator/payments/NONE-0000001/paid",
        &[("Host", "attacker.example")],
        b"",
    ));
    assert_eq!(status, 421);
    // A token that cannot travel in a header is refused at start.
    let err =
        Emulator::start(EmulatorConfig::new().control_token(Some("two words".into()))).unwrap_err();
    assert!(err.to_string().contains("control token"), "{err}");
}
