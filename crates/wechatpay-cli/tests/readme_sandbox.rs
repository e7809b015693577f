//! The sandbox as the README shows it: its shell snippet (and docs/emulator.md's), run as
//! written, twice in a row in one shell, with the built `wechatpay` first on PATH; and
//! `serve --refund-delay`, which lets `wechatpay sandbox refund NO abnormal` decide a refund
//! that would otherwise succeed by itself.
#![cfg(unix)]

mod served;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wechatpay_chain::{Builder, Rsa};

/// A scratch directory, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wcp-readme-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `sh` block of `doc` that starts the sandbox (holds `marker`).
fn snippet(doc: &str, marker: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(doc);
    let text = std::fs::read_to_string(&path).unwrap();
    text.split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .find(|b| b.contains(marker))
        .unwrap_or_else(|| panic!("{doc} has no sh block with {marker}"))
        .to_string()
}

/// The commands of a snippet, comments left out (the two READMEs differ only in those).
fn commands(snippet: &str) -> Vec<String> {
    snippet
        .lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim_end())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// A port nobody listens on now, for the snippet's 8080 (other tests may hold 8080).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `script` with `bash -e` (a failing command fails the run) in a session of its own,
/// with the built `wechatpay` first on PATH, no WECHATPAY_* variable of the test's, and
/// `mktemp` in `tmp`; every process it left is stopped afterwards. At most 240 s.
fn run_script(script: &str, tmp: &Path) -> Output {
    let bin = Path::new(env!("CARGO_BIN_EXE_wechatpay")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-e").arg("-c").arg(script);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WECHATPAY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PATH", path)
        .env("TMPDIR", tmp)
        .env_remove("SSL_CERT_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid is async-signal-safe and touches nothing of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let group = child.id() as i32;
    // read both pipes as they fill, so that a chatty run never blocks on a full pipe
    let pipe = |r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut r = r;
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t0.elapsed() > Duration::from_secs(240) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the process group this test made (setsid above); ESRCH is fine.
    unsafe { libc::kill(-group, libc::SIGTERM) };
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the snippet did not end within 240 s")
    });
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Runs a documented snippet twice in a row in one shell: it must succeed both times.
fn twice(doc: &str, marker: &str) -> (String, String) {
    let s = snippet(doc, marker).replace("8080", &free_port().to_string());
    let tmp = Scratch::new(&doc.replace(['/', '.'], "-"));
    let out = run_script(&format!("{s}\n{s}"), &tmp.0);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{doc}: the snippet run twice failed ({}):\n{stderr}\n--- stdout:\n{stdout}",
        out.status
    );
    assert!(!stderr.contains("Connection refused"), "{doc}: {stderr}");
    assert!(!stderr.contains("serve stopped"), "{doc}: {stderr}");
    (stdout, stderr)
}

#[test]
fn the_readme_sandbox_snippet_runs_twice_in_a_row() {
    let (stdout, _) = twice("README.md", "wechatpay serve --keys-dir");
    // each run: the payment paid, and the refund made abnormal by the sandbox command
    // (it would have succeeded by itself without --refund-delay never)
    assert!(
        stdout.matches("\"trade_state\": \"SUCCESS\"").count() >= 2,
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("\"status\": \"ABNORMAL\"").count(),
        2,
        "{stdout}"
    );
    // the Chinese README runs the same commands
    assert_eq!(
        commands(&snippet("README.zh-CN.md", "wechatpay serve --keys-dir")),
        commands(&snippet("README.md", "wechatpay serve --keys-dir")),
    );
}

#[test]
fn the_emulator_page_five_minute_snippet_runs_twice_in_a_row() {
    let (stdout, _) = twice("docs/emulator.md", "wechatpay serve --keys-dir");
    assert!(
        stdout.matches("\"trade_state\": \"SUCCESS\"").count() >= 2,
        "{stdout}"
    );
}

/// `wechatpay serve ARGS --keys-dir DIR` until dropped, with its env file's variables.
struct Serve {
    child: Child,
    _dir: Scratch,
    env: Vec<(String, String)>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(args: &[&str], name: &str) -> Serve {
        let dir = Scratch::new(name);
        let (child, env) =
            served::spawn(env!("CARGO_BIN_EXE_wechatpay"), args, &dir.0.join("keys"));
        Serve {
            child,
            _dir: dir,
            env,
        }
    }

    fn var(&self, name: &str) -> String {
        let found = self.env.iter().find(|(k, _)| k == name);
        found.map(|(_, v)| v.clone()).unwrap()
    }

    fn cli(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wechatpay"));
        cmd.args(args).env_remove("SSL_CERT_FILE");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Value {
        let out = self.cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// An order paid and a refund of it made, both notifying `url`.
    fn refund(&self, no: &str, url: &str) {
        self.ok(&[
            "post",
            "v3/pay/transactions/native",
            &json!({"json": {"appid": "wxd678efh567hg6787", "mchid": self.var("WECHATPAY_MCHID"),
                "description": "d", "out_trade_no": no, "notify_url": url,
                "amount": {"total": 100}}})
            .to_string(),
        ]);
        self.ok(&["sandbox", "payment", no, "paid"]);
        let made = self.ok(&[
            "post",
            "v3/refund/domestic/refunds",
            &json!({"json": {"out_trade_no": no, "out_refund_no": format!("R{no}"),
                "notify_url": url, "amount": {"refund": 100, "total": 100, "currency": "CNY"}}})
            .to_string(),
        ]);
        assert_eq!(made["status"], "PROCESSING", "{made}");
    }

    fn refund_status(&self, no: &str) -> Value {
        let path = format!("v3/refund/domestic/refunds/R{no}");
        self.ok(&["get", &path])["status"].clone()
    }
}

/// A notification endpoint on loopback: every request's headers and body, answered 204.
fn hook() -> (String, mpsc::Receiver<(http::HeaderMap, Vec<u8>)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut r = BufReader::new(stream.try_clone().unwrap());
            let mut headers = http::HeaderMap::new();
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                let l = std::mem::take(&mut line);
                let Some((k, v)) = l.trim_end().split_once(':') else {
                    if l.trim_end().is_empty() {
                        break;
                    }
                    continue; // the request line
                };
                if let (Ok(k), Ok(v)) = (
                    http::HeaderName::from_bytes(k.trim().as_bytes()),
                    v.trim().parse(),
                ) {
                    headers.insert(k, v);
                }
            }
            let len = headers
                .get("content-length")
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if r.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = (&stream).write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn serve_refund_delay_never_leaves_each_refund_to_the_sandbox_command() {
    let s = Serve::start(&["--refund-delay", "never"], "never");
    let (url, got) = hook();
    s.refund("T-never-0001", &url);
    // well past the default delay (100 ms): still waiting for a decision
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(s.refund_status("T-never-0001"), "PROCESSING");
    let v = s.ok(&["sandbox", "refund", "RT-never-0001", "abnormal"]);
    assert_eq!(v["status"], "ABNORMAL", "{v}");
    // the notification says so, verified and decrypted as a merchant's handler does
    let client = Builder::new()
        .base_uri(s.var("WECHATPAY_BASE_URI"))
        .platform_public_key(
            s.var("WECHATPAY_PUBLIC_KEY_ID"),
            Rsa::from_public(&format!("file://{}", s.var("WECHATPAY_PUBLIC_KEY"))).unwrap(),
        )
        .build()
        .unwrap();
    let notifier = client.notifier(s.var("WECHATPAY_APIV3_KEY")).unwrap();
    let t0 = Instant::now();
    let n = loop {
        let left = Duration::from_secs(30).saturating_sub(t0.elapsed());
        let (headers, body) = got.recv_timeout(left).expect("REFUND.ABNORMAL within 30 s");
        let n = notifier.verify(&headers, &body).unwrap();
        if n.event_type.starts_with("REFUND.") {
            break n;
        }
    };
    assert_eq!(n.event_type, "REFUND.ABNORMAL");
    assert_eq!(n.resource["refund_status"], "ABNORMAL");
    assert_eq!(n.resource["out_refund_no"], "RT-never-0001");
}

#[test]
fn serve_refunds_succeed_by_themselves_by_default_and_the_refusal_says_how_to_stop_it() {
    let s = Serve::start(&["--refund-delay", "50ms"], "delay");
    s.refund("T-delay-0001", "http://127.0.0.1:9/notify");
    let t0 = Instant::now();
    while s.refund_status("T-delay-0001") != "SUCCESS" {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the refund never succeeded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = s.cli(&["sandbox", "refund", "RT-delay-0001", "abnormal"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{err}");
    assert!(
        err.contains("SUCCESS") && err.contains("--refund-delay never"),
        "{err}"
    );
    // a delay that is not one is refused by name
    let out = Command::new(env!("CARGO_BIN_EXE_wechatpay"))
        .args(["serve", "--refund-delay", "soon"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--refund-delay") && err.contains("never"),
        "{err}"
    );
}

#[test]
fn the_env_file_serve_writes_configures_builder_from_env() {
    for mode in ["public-key", "certificate"] {
        let s = Serve::start(&["--mode", mode], &format!("from-env-{mode}"));
        // what `. "$dir/env" && cargo run` gives a program
        let client =
            Builder::from_env_with(|k| s.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
                .unwrap()
                .build()
                .unwrap();
        let res = client["v3/pay/transactions/native"]
            .post(json!({"json": {"appid": "wxd678efh567hg6787", "mchid": s.var("WECHATPAY_MCHID"),
                "description": "d", "out_trade_no": "T-from-env-01", "notify_url": "http://127.0.0.1:9/n",
                "amount": {"total": 1}}}))
            .unwrap();
        assert!(
            res.json::<Value>().unwrap()["code_url"].is_string(),
            "{mode}"
        );
    }
}
