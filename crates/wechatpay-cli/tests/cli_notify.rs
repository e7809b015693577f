//! `wechatpay trigger` and `wechatpay listen` against each other and against a handler in the
//! test, configured only by the env file `wechatpay serve` writes (trigger with
//! --use-env-secrets): real loopback sockets, keys made by the sandbox at test time.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod served;

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Keys, Recorded, Reply, Server};
use served::Served;
use wechatpay_chain::notify::Notifier;
use wechatpay_chain::{Keyring, Rsa};

const BIN: &str = env!("CARGO_BIN_EXE_wechatpay");

/// `wechatpay ARGS` with the serve env file's variables (as after `source $DIR/env`).
fn cli(served: &Served, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear();
    if let Ok(p) = std::env::var("PATH") {
        cmd.env("PATH", p);
    }
    for (k, v) in &served.env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `wechatpay trigger --use-env-secrets ARGS` as [`cli`]: with the keys of the env file.
fn trigger(served: &Served, args: &[&str]) -> Output {
    cli(served, &[&["trigger", "--use-env-secrets"], args].concat())
}

/// `wechatpay ARGS` as [`cli`], which must exit 0; its stdout (`what` heads a failure's message).
fn succeeds(served: &Served, args: &[&str], what: &str) -> String {
    let out = cli(served, args);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {stdout}{}",
        text(&out.stderr)
    );
    stdout
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `wechatpay listen ARGS` running until dropped, its output collected.
struct Listening {
    child: Child,
    url: String,
    out: Arc<Mutex<String>>,
}

impl Listening {
    fn start(served: &Served, args: &[&str]) -> Listening {
        Listening::start_with(&served.env, args)
    }

    /// `wechatpay listen` with only an APIv3 key: it refuses every APIv3 notification (no
    /// platform key), which is enough to test how it reads, forwards and answers.
    fn bare(args: &[&str]) -> Listening {
        let env = HashMap::from([("WECHATPAY_APIV3_KEY".to_string(), "k".repeat(32))]);
        Listening::start_with(&env, args)
    }

    fn start_with(env: &HashMap<String, String>, args: &[&str]) -> Listening {
        let mut cmd = Command::new(BIN);
        cmd.arg("listen").args(args).env_clear();
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("{first}"))
            .to_string();
        let out = Arc::new(Mutex::new(String::new()));
        let o = out.clone();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let mut o = o.lock().unwrap();
                o.push_str(&l);
                o.push('\n');
            }
        });
        Listening { child, url, out }
    }

    /// Waits until the output holds `what` (listen prints before it answers, so this is only
    /// the pipe's delay); panics with the output after 20 s.
    fn expect(&self, what: &str) {
        let t0 = Instant::now();
        loop {
            if self.out.lock().unwrap().contains(what) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{what:?} not in listen's output:\n{}",
                self.out.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// A new connection to listen.
    fn connect(&self) -> TcpStream {
        let addr = self
            .url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        TcpStream::connect(addr).unwrap()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A notifier with the sandbox's platform public key and APIv3 key, as a merchant has them.
fn merchant_notifier(served: &Served) -> Notifier {
    let e = &served.env;
    let ring = Keyring::new();
    ring.insert(
        &e["WECHATPAY_PUBLIC_KEY_ID"],
        Rsa::from_public(&format!("file://{}", e["WECHATPAY_PUBLIC_KEY"])).unwrap(),
    );
    Notifier::new(ring.into(), &e["WECHATPAY_APIV3_KEY"]).unwrap()
}

/// What a handler received, and whether the library verified it.
type Seen = Arc<Mutex<Vec<(Recorded, bool)>>>;

/// A handler in the test: verifies with the library, answers 200 or 401, records all.
fn verifying_handler(served: &Served) -> (Server, Seen) {
    let notifier = merchant_notifier(served);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| {
            let ok = notifier.verify(&r.headers, &r.body).is_ok();
            s.lock().unwrap().push((r.clone(), ok));
            let mut reply = if ok {
                Reply::json(200, serde_json::json!({"handled": "by the test"}))
            } else {
                Reply::json(
                    401,
                    serde_json::json!({"code": "SIGN_ERROR", "message": "no"}),
                )
            };
            reply.sign_as = None;
            reply
        }),
    );
    (server, seen)
}

#[test]
fn trigger_and_listen_agree_on_genuine_and_faulty_notifications() {
    let served = Served::start(BIN);
    let listen = Listening::start(&served, &["--port", "0"]);
    let to = format!("{}notify", listen.url);

    // serve wrote the sandbox's platform key for trigger, readable by its owner only
    let key = std::path::Path::new(&served.env["WECHATPAY_SANDBOX_PLATFORM_PRIVATE_KEY"]);
    assert!(served.env["WECHATPAY_SANDBOX_PLATFORM_SERIAL"].starts_with("PUB_KEY_ID_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    let help = Command::new(BIN)
        .args(["trigger", "--help"])
        .output()
        .unwrap();
    assert!(text(&help.stdout).contains("Exit status: 0"));

    let out = trigger(
        &served,
        &[
            "TRANSACTION.SUCCESS",
            "--to",
            &to,
            "--set",
            "out_trade_no=CLI-NOTIFY-1",
            "--set",
            "amount.total=5",
        ],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("Wechatpay-Signature: "), "{stdout}");
    assert!(stdout.contains("Request-ID: "), "{stdout}");
    assert!(
        stdout.contains("\"out_trade_no\": \"CLI-NOTIFY-1\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("← 204: accepted, as it must be"),
        "{stdout}"
    );
    listen.expect("TRANSACTION.SUCCESS");
    listen.expect("\"out_trade_no\": \"CLI-NOTIFY-1\"");
    listen.expect("\"total\": 5");

    for (flag, refusal) in [
        ("--stale", "refused: stale"),
        ("--wrong-serial", "refused: unknown serial"),
        ("--bad-signature", "refused: bad signature"),
        ("--probe", "refused: signature probe"),
    ] {
        let stdout = succeeds(
            &served,
            &[
                "trigger",
                "--use-env-secrets",
                "REFUND.SUCCESS",
                "--to",
                &to,
                flag,
            ],
            flag,
        );
        assert!(
            stdout.contains("← 401: refused, as it must be"),
            "{flag}: {stdout}"
        );
        listen.expect(refusal);
    }

    // the same notification three times, each accepted
    let out = trigger(&served, &["REFUND.SUCCESS", "--to", &to, "--replay", "3"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for i in 1..=3 {
        assert!(stdout.contains(&format!("[{i}/3]: accepted")), "{stdout}");
    }

    // APIv2: the refund result (req_info) and a signed payment result
    for event in ["refund-processed", "transaction-success"] {
        let stdout = succeeds(
            &served,
            &["trigger", "--use-env-secrets", event, "--to", &to],
            event,
        );
        assert!(
            stdout.contains("<return_code>SUCCESS</return_code>"),
            "{stdout}"
        );
        listen.expect(&format!("{event} (APIv2): verified"));
        let out = trigger(&served, &[event, "--to", &to, "--bad-signature"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
        assert!(text(&out.stdout).contains("refused, as it must be"));
    }
    listen.expect("\"cash_refund_fee\"");
    // the APIv2 document of a type both protocols document
    let out = trigger(&served, &["TRANSACTION.SUCCESS", "--v2", "--to", &to]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    listen.expect("TRANSACTION.SUCCESS (APIv2): verified");

    // usage: a fault APIv2 has no place for, an unknown type, a --set of the wrong type
    let out = trigger(&served, &["refund-processed", "--to", &to, "--stale"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = trigger(&served, &["REFUND.SUCCES", "--to", &to]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("did you mean REFUND.SUCCESS"),
        "{}",
        text(&out.stderr)
    );
    let out = trigger(
        &served,
        &["REFUND.SUCCESS", "--to", &to, "--set", "amount.total=many"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let out = trigger(
        &served,
        &["REFUND.SUCCESS", "--to", &to, "--stale", "--probe"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(listen.output().matches("POST /notify").count() >= 13);
}

#[test]
fn trigger_exits_non_zero_when_a_handler_answers_as_it_must_not() {
    let served = Served::start(BIN);
    let careless = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(200);
            r.sign_as = None;
            r
        }),
    );
    let to = careless.base();
    let ok = trigger(&served, &["TRANSACTION.SUCCESS", "--to", &to]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    for flag in ["--stale", "--wrong-serial", "--bad-signature", "--probe"] {
        let out = trigger(&served, &["TRANSACTION.SUCCESS", "--to", &to, flag]);
        assert_eq!(out.status.code(), Some(1), "{flag}: {}", text(&out.stdout));
        assert!(
            text(&out.stdout).contains("ACCEPTED, but it must be refused"),
            "{}",
            text(&out.stdout)
        );
    }
    // an APIv2 handler that answers 200 without return_code SUCCESS refuses
    let out = trigger(&served, &["refund-processed", "--to", &to]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));

    let broken = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(500);
            r.sign_as = None;
            r
        }),
    );
    let out = trigger(
        &served,
        &["REFUND.SUCCESS", "--to", &broken.base(), "--replay", "2"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("REFUSED, but it is genuine"));
    assert_eq!(broken.recorded().len(), 2);

    // a verifying handler answers right, and so the exit is 0 for each
    let (good, seen) = verifying_handler(&served);
    for flag in [
        "",
        "--stale",
        "--wrong-serial",
        "--bad-signature",
        "--probe",
    ] {
        let mut args = vec![
            "trigger",
            "--use-env-secrets",
            "MCHTRANSFER.BILL.FINISHED",
            "--to",
        ];
        let base = good.base();
        args.push(&base);
        if !flag.is_empty() {
            args.push(flag);
        }
        let out = cli(&served, &args);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", text(&out.stdout));
    }
    assert_eq!(
        seen.lock()
            .unwrap()
            .iter()
            .map(|(_, ok)| *ok)
            .collect::<Vec<_>>(),
        [true, false, false, false, false]
    );

    // no answer: exit 4; no keys: exit 3
    let port = common::closed_port().port();
    let out = trigger(
        &served,
        &[
            "REFUND.SUCCESS",
            "--to",
            &format!("http://127.0.0.1:{port}/n"),
        ],
    );
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let out = Command::new(BIN)
        .args(["trigger", "REFUND.SUCCESS", "--to", &to])
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("WECHATPAY_APIV3_KEY"));
}

#[test]
fn listen_forwards_the_original_bytes_and_returns_the_handlers_answer() {
    let served = Served::start(BIN);
    let (handler, seen) = verifying_handler(&served);
    let listen = Listening::start(
        &served,
        &["--forward-to", &format!("{}hook", handler.base())],
    );
    let out = trigger(&served, &["PROFITSHARING.SUCCESS", "--to", &listen.url]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // the handler's own answer came back through listen
    assert!(stdout.contains("← 200: accepted"), "{stdout}");
    assert!(stdout.contains("by the test"), "{stdout}");
    listen.expect("PROFITSHARING.SUCCESS");
    listen.expect("hook: 200");
    {
        let seen = seen.lock().unwrap();
        let (r, ok) = seen.last().unwrap();
        // verified by the handler: the bytes and the signature headers are the original ones
        assert!(ok);
        assert_eq!(r.target, "/hook");
        let sig = r.headers["wechatpay-signature"].to_str().unwrap();
        assert!(stdout.contains(&format!("Wechatpay-Signature: {sig}")));
        assert!(r.headers.contains_key("request-id"));
    }

    // a faulty one is forwarded too, and the handler's refusal returned
    let out = trigger(
        &served,
        &["PROFITSHARING.SUCCESS", "--to", &listen.url, "--stale"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("SIGN_ERROR"));
    listen.expect("refused: stale");
    assert_eq!(seen.lock().unwrap().len(), 2);

    // a handler that accepts everything is called out by listen, and trigger exits 1
    let careless = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(204);
            r.sign_as = None;
            r
        }),
    );
    let listen2 = Listening::start(&served, &["--forward-to", &careless.base()]);
    let out = trigger(
        &served,
        &["REFUND.SUCCESS", "--to", &listen2.url, "--bad-signature"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    listen2.expect("the handler ACCEPTED what listen refused");
    // SIGTERM stops listen, cleanly
    #[cfg(unix)]
    {
        let mut l = listen2;
        // SAFETY: kill has no memory effects; the pid is of our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(l.child.id() as i32, libc::SIGTERM) }, 0);
        assert!(l.child.wait().unwrap().success());
    }
    let sent = careless.recorded();
    assert_eq!(sent.len(), 1);
    let sig = sent[0].headers["wechatpay-signature"].to_str().unwrap();
    assert!(text(&out.stdout).contains(&format!("Wechatpay-Signature: {sig}")));
}

/// What a hostile handler answers: a window title, a cleared screen, a red "verified OK", a
/// carriage return that writes over the line, a C1 control sequence introducer (U+009B), and a
/// tab and a line feed, which stay.
const HOSTILE: &[u8] =
    b"\x1b]0;pwned\x07\x1b[2J\x1b[31mverified OK\x1b[0m\rline\tend\nnext \xc2\x9b31m";

/// Whether `text` holds no control character but line feeds and tabs.
fn no_raw_controls(text: &str) -> bool {
    text.chars()
        .all(|c| !c.is_control() || c == '\n' || c == '\t')
}

#[test]
fn a_handlers_answer_reaches_the_terminal_without_control_characters() {
    let served = Served::start(BIN);
    let hostile = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(200);
            r.body = HOSTILE.to_vec();
            r.sign_as = None;
            r
        }),
    );
    let out = trigger(&served, &["TRANSACTION.SUCCESS", "--to", &hostile.base()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout:?}");
    assert!(stdout.contains("verified OK"), "{stdout:?}");
    assert!(stdout.contains("line\tend\nnext"), "{stdout:?}");
    assert!(no_raw_controls(&stdout), "{stdout:?}");

    // listen prints the handler's answer it passes back
    let listen = Listening::start(&served, &["--forward-to", &hostile.base()]);
    let out = trigger(&served, &["TRANSACTION.SUCCESS", "--to", &listen.url]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(no_raw_controls(&text(&out.stdout)), "{}", text(&out.stdout));
    listen.expect("next");
    let shown = listen.output();
    assert!(shown.contains("verified OK"), "{shown:?}");
    assert!(no_raw_controls(&shown), "{shown:?}");
}

#[test]
fn listen_forwards_no_hop_by_hop_header() {
    let handler = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(204);
            r.sign_as = None;
            r
        }),
    );
    let listen = Listening::bare(&["--forward-to", &format!("{}hook", handler.base())]);
    let mut s = listen.connect();
    // what only this hop means: the connection's own options and what they name, proxy
    // credentials, the framing of this hop's body
    s.write_all(
        b"POST /notify HTTP/1.1\r\nHost: listen\r\nContent-Type: application/json\r\n\
          Connection: keep-alive, X-Hop-Only\r\nX-Hop-Only: secret\r\nKeep-Alive: timeout=5\r\n\
          Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n\
          Proxy-Authenticate: Basic\r\nTE: trailers\r\nTrailer: X-Checksum\r\n\
          Upgrade: h2c\r\nTransfer-Encoding: chunked\r\nX-End-To-End: kept\r\n\
          Wechatpay-Serial: PUB_KEY_ID_0000\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 204", "{}", text(&head));
    let got = handler.last();
    assert_eq!(got.target, "/hook");
    assert_eq!(&got.body[..], b"{}");
    assert_eq!(got.headers["x-end-to-end"], "kept");
    assert_eq!(got.headers["wechatpay-serial"], "PUB_KEY_ID_0000");
    for hop in [
        "connection",
        "x-hop-only",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(
            !got.headers.contains_key(hop),
            "{hop} was forwarded: {:?}",
            got.headers
        );
    }
}

/// A notification's head announcing `length` bytes of body.
fn head(length: usize) -> Vec<u8> {
    format!(
        "POST /notify HTTP/1.1\r\nHost: listen\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// What `s` receives until it is closed (a reset too), waiting at most 30 s for it: a
/// connection still open then fails the test.
fn until_closed(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("still open after 30 s ({e}); received {:?}", text(&got)),
    }
    got
}

/// The status line `s` receives within 30 s.
fn status_line(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        match s.read(&mut b) {
            Ok(1) => line.push(b[0]),
            other => panic!("no status line ({other:?}): {:?}", text(&line)),
        }
    }
    text(&line).trim_end().to_string()
}

#[test]
fn listen_closes_connections_that_stall_their_body_and_refuses_large_bodies() {
    let listen = Listening::bare(&["--header-read-timeout", "1", "--max-body-bytes", "1000"]);
    // Slowloris on the body: each announces 1,000 bytes and sends all but one
    let stalled: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = listen.connect();
            s.write_all(&head(1000)).unwrap();
            s.write_all(&[b' '; 999]).unwrap();
            s
        })
        .collect();
    for s in stalled {
        let got = until_closed(s);
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
            "{}",
            text(&got)
        );
    }
    // and on the headers
    let mut s = listen.connect();
    s.write_all(b"POST /notify HTTP/1.1\r\nHost: li").unwrap();
    until_closed(s);

    // a body over the limit, announced or chunked, is refused; one at it is read
    let mut s = listen.connect();
    s.write_all(&head(1001)).unwrap();
    let _ = s.write_all(&[b' '; 1001]);
    assert_eq!(status_line(&mut s), "HTTP/1.1 413 Payload Too Large");
    let mut s = listen.connect();
    s.write_all(b"POST /notify HTTP/1.1\r\nHost: listen\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    for _ in 0..3 {
        let _ = s.write_all(format!("190\r\n{}\r\n", " ".repeat(400)).as_bytes());
    }
    let _ = s.write_all(b"0\r\n\r\n");
    assert_eq!(status_line(&mut s), "HTTP/1.1 413 Payload Too Large");
    // (read, then refused as unsigned)
    let mut s = listen.connect();
    s.write_all(&head(1000)).unwrap();
    s.write_all(&[b' '; 1000]).unwrap();
    assert_eq!(status_line(&mut s), "HTTP/1.1 401 Unauthorized");
}

#[test]
fn listen_serves_at_most_max_connections_at_once() {
    let listen = Listening::bare(&["--max-connections", "1", "--header-read-timeout", "60"]);
    // the one slot, held by a connection that has not finished its headers
    let mut first = listen.connect();
    first
        .write_all(b"POST /notify HTTP/1.1\r\nHost: li")
        .unwrap();
    // the next waits, not yet accepted
    let mut next = listen.connect();
    next.write_all(&head(2)).unwrap();
    next.write_all(b"{}").unwrap();
    next.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    match next.read(&mut b) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("answered beyond --max-connections 1: {other:?}"),
    }
    // the slot freed, it is served
    drop(first);
    let line = status_line(&mut next);
    assert!(line.starts_with("HTTP/1.1 "), "{line}");
}

#[test]
fn listen_closes_a_connection_that_does_not_take_its_answers() {
    // answers of 1,000,000 bytes, more than the socket buffers hold unread
    let big = Server::start(
        Keys::shared(),
        Arc::new(|_: &Recorded| {
            let mut r = Reply::empty(200);
            r.body = vec![b'x'; 1_000_000];
            r.sign_as = None;
            r
        }),
    );
    let listen = Listening::bare(&[
        "--forward-to",
        &big.base(),
        "--max-connections",
        "1",
        "--header-read-timeout",
        "1",
    ]);
    // 64 notifications in a row on one connection whose answers are never read
    let mut deaf = listen.connect();
    let one = [head(2), b"{}".to_vec()].concat();
    deaf.write_all(&one.repeat(64)).unwrap();
    // it holds the only slot until its answer's deadline closes it
    let mut next = listen.connect();
    next.write_all(&one).unwrap();
    assert_eq!(status_line(&mut next), "HTTP/1.1 200 OK");
    drop(deaf);
}

/// The AES-GCM nonce and ciphertext of an APIv3 notification's body.
fn sealed(body: &[u8]) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let r = &v["resource"];
    (
        r["nonce"].as_str().unwrap().into(),
        r["ciphertext"].as_str().unwrap().into(),
    )
}

#[test]
fn trigger_takes_secrets_from_the_environment_only_when_asked() {
    let served = Served::start(BIN);
    let (handler, seen) = verifying_handler(&served);
    let to = handler.base();
    // the keys of the environment may be the production ones: refused, saying what to do
    for (event, var) in [
        ("TRANSACTION.SUCCESS", "WECHATPAY_APIV3_KEY"),
        ("refund-processed", "WECHATPAY_SECRET"),
    ] {
        let out = cli(&served, &["trigger", event, "--to", &to]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{event}: {said}");
        assert!(
            said.contains(var) && said.contains("pass --use-env-secrets"),
            "{event}: {said}"
        );
    }
    assert!(seen.lock().unwrap().is_empty());
    // given on the command line, a key is used as it is
    let key = served.env["WECHATPAY_APIV3_KEY"].clone();
    succeeds(
        &served,
        &[
            "trigger",
            "TRANSACTION.SUCCESS",
            "--to",
            &to,
            "--apiv3-key",
            &key,
        ],
        "--apiv3-key",
    );
    assert_eq!(seen.lock().unwrap().len(), 1);

    // two notifications in the same second that differ in the merchant alone: each its own
    // AES-GCM nonce, each decrypted by the merchant
    let both: Vec<Child> = ["1900000001", "1900000002"]
        .into_iter()
        .map(|mchid| {
            let mut cmd = Command::new(BIN);
            cmd.args([
                "trigger",
                "REFUND.SUCCESS",
                "--use-env-secrets",
                "--to",
                &to,
            ])
            .args(["--mchid", mchid])
            .env_clear()
            .envs(&served.env)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            cmd.spawn().unwrap()
        })
        .collect();
    for mut child in both {
        assert!(child.wait().unwrap().success());
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|(_, ok)| *ok));
    let (a, b) = (sealed(&seen[1].0.body), sealed(&seen[2].0.body));
    assert_ne!(a.0, b.0, "one nonce twice");
    assert_ne!(a.1, b.1);
}
