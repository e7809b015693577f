//! `wechatpay serve` in a child process, for load tests and benches: the emulator's own memory
//! and CPU stay out of the measurements of the client, which is configured from the `env` file
//! the command writes.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wechatpay_chain::{Builder, Rsa};

pub struct Served {
    child: Child,
    dir: PathBuf,
    pub env: HashMap<String, String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Served {
    /// Starts `bin serve` on an ephemeral port and waits (at most 30 s) for its env file.
    pub fn start(bin: &str) -> Served {
        Served::start_with(bin, &[])
    }

    /// [`Served::start`] with more options of `serve` (`--scheme sm2`, `--mode certificate`).
    pub fn start_with(bin: &str, args: &[&str]) -> Served {
        // one directory per start: tests of one binary start theirs in parallel
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wechatpay-served-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let child = Command::new(bin)
            .args(["serve", "--keys-dir"])
            .arg(&dir)
            .args(args)
            .env_remove("WECHATPAY_MCHID")
            .env_remove("WECHATPAY_SERIAL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("wechatpay serve starts");
        let mut served = Served {
            child,
            dir: dir.clone(),
            env: HashMap::new(),
        };
        let t0 = Instant::now();
        let env_path = dir.join("env");
        loop {
            if let Ok(text) = std::fs::read_to_string(&env_path) {
                if text.contains("WECHATPAY_SECRET") {
                    served.env = env_file(&text).into_iter().collect();
                    return served;
                }
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "wechatpay serve did not start"
            );
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("wechatpay serve exited: {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A builder configured as `source env` would configure the command line.
    pub fn builder(&self) -> Builder {
        let e = &self.env;
        let file = |k: &str| format!("file://{}", e[k]);
        Builder::new()
            .base_uri(&e["WECHATPAY_BASE_URI"])
            .mchid(&e["WECHATPAY_MCHID"])
            .serial(&e["WECHATPAY_SERIAL"])
            .private_key(Rsa::from_private(&file("WECHATPAY_PRIVATE_KEY")).unwrap())
            .platform_public_key(
                &e["WECHATPAY_PUBLIC_KEY_ID"],
                Rsa::from_public(&file("WECHATPAY_PUBLIC_KEY")).unwrap(),
            )
            .timeout(Duration::from_secs(30))
    }
}

/// `bin serve ARGS --keys-dir DIR` (stdout piped, no WECHATPAY_MCHID/SERIAL of the test's),
/// once its first line, printed when the env file is written, has come: the child and the
/// variables of its env file. The lines it prints for each request are read and dropped, as a
/// terminal would take them.
pub fn spawn(bin: &str, args: &[&str], keys_dir: &Path) -> (Child, Vec<(String, String)>) {
    let mut child = Command::new(bin)
        .arg("serve")
        .args(args)
        .arg("--keys-dir")
        .arg(keys_dir)
        .env_remove("WECHATPAY_MCHID")
        .env_remove("WECHATPAY_SERIAL")
        .stdout(Stdio::piped())
        .spawn()
        .expect("wechatpay serve starts");
    let mut first = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    assert!(first.starts_with("wechatpay emulator on"), "{first}");
    let env = env_file(&std::fs::read_to_string(keys_dir.join("env")).unwrap());
    (child, env)
}

/// The variables of the env file `wechatpay serve` writes: its `export NAME=value` lines, a
/// quoted value (`'…'`) without its quotes.
pub fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("export ")?.split_once('=')?;
            Some((k.to_string(), v.trim_matches('\'').to_string()))
        })
        .collect()
}

/// Resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    rss_kib_of("self")
}

/// Resident memory of process `pid` (`self`, or a number), in KiB; 0 when unreadable.
pub fn rss_kib_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Open sockets of this process.
pub fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|p| p.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}
