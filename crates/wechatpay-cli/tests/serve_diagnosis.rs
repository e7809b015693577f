//! `wechatpay serve` tells a merchant why it refused a request's signature: the check that
//! failed and, for a signature that does not verify, the five lines it expected to be signed
//! with their line feeds made visible, the body's length and digest; no secret printed. The
//! answer keeps the platform's shape. A real `serve` process, a real loopback socket.

mod served;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wechatpay_chain::client_json::{sign_request_with, Credentials};
use wechatpay_chain::crypto::hash::sha256_hex;
use wechatpay_chain::{formatter, Rsa};

/// `wechatpay serve` with its stdout read line by line; killed when dropped.
struct Serve {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start() -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        let mut child = Command::new(env!("CARGO_BIN_EXE_wechatpay"))
            .arg("serve")
            .arg("--keys-dir")
            .arg(&keys)
            .env_remove("WECHATPAY_MCHID")
            .env_remove("WECHATPAY_SERIAL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Serve {
            child,
            lines,
            seen: Vec::new(),
            env: Vec::new(),
            _dir: dir,
        };
        // the first line is printed once the env file is written
        serve.wait_for("wechatpay emulator on");
        serve.env = served::env_file(&std::fs::read_to_string(keys.join("env")).unwrap());
        serve
    }

    fn var(&self, name: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == name).unwrap().1
    }

    /// Reads serve's output until a line contains `text` (within 30 s, or the test fails
    /// showing what was printed); all lines read so far.
    fn wait_for(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.seen.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!("serve never printed {text:?}:\n{}", self.seen.join("\n")),
            }
        }
        self.seen.join("\n")
    }
}

/// Sends a raw HTTP/1.1 request; the status and the body.
fn send(base: &str, method: &str, target: &str, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
    let addr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Accept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    let status = text[9..12].parse().unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

#[test]
fn serve_prints_why_it_refused_a_signature_and_the_string_it_expected() {
    let mut serve = Serve::start();
    let base = serve.var("WECHATPAY_BASE_URI").to_string();
    let key_text = std::fs::read_to_string(serve.var("WECHATPAY_PRIVATE_KEY")).unwrap();
    let cred = Credentials {
        mchid: serve.var("WECHATPAY_MCHID").to_string(),
        serial: serve.var("WECHATPAY_SERIAL").to_string(),
        key: Rsa::from_private(&key_text).unwrap(),
    };
    // Signed over one path and body, sent to another path (with a query) with another body,
    // as a merchant's code that signs before it adds the query.
    let ts = formatter::timestamp().to_string();
    let mut signed = http::Request::post(format!("{base}v3/pay/transactions/native"))
        .body(b"{}".to_vec())
        .unwrap();
    sign_request_with(&mut signed, &cred, &ts, "DIAG-NONCE-1").unwrap();
    let auth = signed.headers()["authorization"]
        .to_str()
        .unwrap()
        .to_string();
    let body = b"{\"a\":\n1}";
    let target = "/v3/pay/transactions/native?from=diag";
    let (status, answer) = send(&base, "POST", target, Some(&auth), body);
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["code"], "SIGN_ERROR", "{answer}");
    assert_eq!(
        answer.as_object().unwrap().len(),
        2,
        "code and message: {answer}"
    );

    let out = serve.wait_for("bytes, SHA-256");
    eprintln!("{out}");
    let digest = sha256_hex(body);
    for want in [
        format!("POST {target} → 401 refused: SIGN_ERROR"),
        "    check failed: SIGNATURE_MISMATCH (".to_string(),
        "each ending in \\n".to_string(),
        "      method     POST\\n".to_string(),
        format!("      path?query {target}\\n"),
        format!("      timestamp  {ts}\\n"),
        "      nonce      DIAG-NONCE-1\\n".to_string(),
        "      body       {\"a\":\\n1}\\n".to_string(),
        format!("(8 bytes, SHA-256 {digest})"),
    ] {
        assert!(out.contains(&want), "{want:?} not in:\n{out}");
    }
    // no secret: neither the signature, nor a key
    let signature = auth
        .split("signature=\"")
        .nth(1)
        .unwrap()
        .trim_end_matches('"');
    assert!(!out.contains(signature), "{out}");
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    assert!(!out.contains(serve.var("WECHATPAY_APIV3_KEY")), "{out}");

    // Without Authorization: the check named, no expected string.
    let (status, _) = send(&base, "GET", "/v3/pay/transactions/id/diag", None, b"");
    assert_eq!(status, 401);
    let out = serve.wait_for("check failed: NO_AUTHORIZATION");
    let tail: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("GET /v3/pay/transactions/id/diag"))
        .collect();
    assert_eq!(tail.len(), 2, "the request, then the check: {tail:?}");
}
