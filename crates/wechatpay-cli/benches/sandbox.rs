//! The sandbox's throughput against its signing bound (issues 22 and 23): `wechatpay serve`
//! in its own process answers `GET v3/pay/transactions/out-trade-no/{no}` (an order created in
//! setup) with SANDBOX_BENCH_INFLIGHT (64) calls in flight, SANDBOX_BENCH_CALLS (100,000) in
//! all: every answer costs the sandbox one RSA-2048 signature, so `openssl speed -elapsed
//! -multi 2 rsa2048` is its ceiling. Prints answers/s, the ratio to the bound, the server's
//! CPU per call and RSS after every 10,000 calls, and the load generator's CPU beside it.
//!
//! Two sandboxes by default, side by side: `serve` and `serve --state FILE`
//! (SANDBOX_BENCH_SERVERS: `;`-separated `serve` arguments, `{dir}` a directory of the
//! sandbox's own; SANDBOX_BENCH_SERVE_ARGS: one sandbox). They take rounds of
//! SANDBOX_BENCH_ROUND (5,000) calls in turn, and `openssl speed` runs for
//! SANDBOX_BENCH_SPEED_SECONDS (1) before the first round and after each: this machine's speed
//! drifts by a tenth from one second to the next, so each round is set against the bound
//! measured just around it, and every sandbox meets the same moments of the machine.
//! SANDBOX_BENCH_CALL=create makes every measured call a new Native order instead (each one
//! kept, and written to the state file with `--state`).
//!
//! The generator costs next to nothing: the requests are signed ahead (a round at a time, so
//! that none is older than the sandbox's ±300 s window when sent), written raw over kept-alive
//! HTTP/1.1 connections on one thread, and only each answer's status and Content-Length are
//! read. 100 answers of each sandbox before and after are verified whole (status, platform
//! signature, body). `cargo bench -p wechatpay-cli --bench sandbox`; it fails on a non-2xx
//! answer or a sample that does not verify, never on a slow ratio.

#[path = "../tests/served/mod.rs"]
mod served;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wechatpay_chain::{formatter, PrivateKey, PublicKey, Rsa};

const RSS_EVERY: usize = 10_000;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// What the generator needs to sign as the merchant.
struct Merchant {
    mchid: String,
    serial: String,
    key: PrivateKey,
    host: String,
}

impl Merchant {
    /// A whole signed request, ready to write.
    fn request(&self, method: &str, target: &str, body: &str) -> Vec<u8> {
        let ts = formatter::timestamp().to_string();
        let nonce = formatter::nonce(32);
        let message = formatter::request(method, target, &ts, &nonce, body.as_bytes());
        let signature = Rsa::sign(message, &self.key).expect("the merchant key signs");
        let auth = formatter::authorization(&self.mchid, &nonce, &signature, &ts, &self.serial);
        let mut r = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
             Accept: application/json\r\nUser-Agent: sandbox-bench\r\n",
            self.host
        );
        if !body.is_empty() {
            r.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ));
        }
        r.push_str("\r\n");
        r.push_str(body);
        r.into_bytes()
    }

    /// `n` requests of `call`, signed on `threads` threads.
    fn sign_many(&self, call: &Call, n: usize, threads: usize) -> Vec<Vec<u8>> {
        let per = n.div_ceil(threads.max(1));
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    let count = per.min(n.saturating_sub(t * per));
                    s.spawn(move || {
                        (0..count)
                            .map(|_| match call {
                                Call::Query(target) => self.request("GET", target, ""),
                                Call::Create => self.request(
                                    "POST",
                                    "/v3/pay/transactions/native",
                                    &order(&self.mchid, &format!("BENCH{}", formatter::nonce(20))),
                                ),
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("signing thread"))
                .collect()
        })
    }
}

/// What each measured call is (`SANDBOX_BENCH_CALL`).
enum Call {
    /// `query` (the default): `GET` of the order made in setup, at this target.
    Query(String),
    /// `create`: a new Native order (`POST v3/pay/transactions/native`) each call, every one
    /// kept by the sandbox (and written to its state file with `--state`).
    Create,
}

/// A Native order's creation body.
fn order(mchid: &str, no: &str) -> String {
    serde_json::json!({
        "appid": "wxd678efh567hg6787", "mchid": mchid, "description": "sandbox bench",
        "out_trade_no": no, "notify_url": "https://127.0.0.1:9/notify", "amount": {"total": 1},
    })
    .to_string()
}

/// An answer read whole, for the verified samples.
struct Answer {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Sends one request on a blocking connection and reads its answer whole.
fn exchange(conn: &mut std::net::TcpStream, request: &[u8]) -> Answer {
    conn.write_all(request).expect("request written");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = conn.read(&mut chunk).expect("answer read");
        assert!(n > 0, "the sandbox closed the connection");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).expect("headers are text");
            let mut lines = head.split("\r\n");
            let status = lines.next().unwrap()[9..12].parse().expect("a status");
            let headers: HashMap<String, String> = lines
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let len: usize = headers["content-length"].parse().unwrap();
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).expect("answer read");
                assert!(n > 0, "the sandbox closed the connection");
                buf.extend_from_slice(&chunk[..n]);
            }
            return Answer {
                status,
                headers,
                body: buf[end + 4..end + 4 + len].to_vec(),
            };
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks an answer as an SDK would: 2xx, signed by the platform key over its body, and the
/// order asked for.
fn verify(a: &Answer, platform: &PublicKey, serial: &str, out_trade_no: &str) {
    assert!(
        (200..300).contains(&a.status),
        "status {}: {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    let h = |k: &str| {
        a.headers
            .get(k)
            .unwrap_or_else(|| panic!("the answer has no {k}"))
    };
    assert_eq!(h("wechatpay-serial"), serial, "the platform key named");
    let message = formatter::response(h("wechatpay-timestamp"), h("wechatpay-nonce"), &a.body);
    assert!(
        Rsa::verify(message, h("wechatpay-signature"), platform),
        "the answer's signature does not verify with the platform key"
    );
    let v: serde_json::Value = serde_json::from_slice(&a.body).expect("a JSON answer");
    assert_eq!(v["out_trade_no"], out_trade_no, "{v}");
}

/// `utime + stime` of a process, from /proc/PID/stat.
fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // the fields after the command name, which is in parentheses
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, so 11 and 12 after the state (field 3)
    let ticks = f[11] + f[12];
    // SAFETY: sysconf reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// This process's CPU time.
fn self_cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// VmRSS of the sandbox's process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    served::rss_kib_of(&pid.to_string())
}

/// `openssl speed -elapsed -multi 2 -seconds N rsa2048`: RSA-2048 signatures per second of
/// wall time on both cores. (Without `-elapsed` openssl divides by its user CPU time, counted
/// in ticks: on a machine shared with other work that figure swings several-fold, and it is
/// not what the sandbox's answers/s, per second of wall time, compare with.)
fn openssl_speed(seconds: u32) -> f64 {
    let out = std::process::Command::new("openssl")
        .args([
            "speed",
            "-elapsed",
            "-multi",
            "2",
            "-seconds",
            &seconds.to_string(),
            "rsa2048",
        ])
        .output()
        .expect("openssl speed runs (the openssl command is needed)");
    let text = String::from_utf8_lossy(&out.stdout);
    if std::env::var_os("SANDBOX_BENCH_DEBUG").is_some() {
        eprintln!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    }
    // `rsa 2048 bits 0.000163s 0.000010s   6139.0 102247.0`: sign/s is the sixth field
    let line = text
        .lines()
        .find(|l| l.starts_with("rsa 2048 bits"))
        .unwrap_or_else(|| panic!("no `rsa 2048 bits` line in openssl speed's output:\n{text}"));
    line.split_whitespace()
        .nth(5)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no sign/s in {line:?}"))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Sends `requests` over `inflight` new kept-alive connections to `host` (new for each round:
/// the sandbox closes a connection idle for 10 s, as between rounds), reading each answer's status and
/// Content-Length only; samples the server's RSS every [`RSS_EVERY`] calls (counted from `done`).
/// Panics on a non-2xx answer.
async fn send(
    host: &str,
    inflight: usize,
    requests: Arc<Vec<Vec<u8>>>,
    done: Arc<AtomicUsize>,
    rss: Arc<Mutex<Vec<(usize, u64)>>>,
    pid: u32,
) {
    let _batch = Batch::enter();
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let mut conn = tokio::net::TcpStream::connect(host)
            .await
            .expect("connected");
        conn.set_nodelay(true).unwrap();
        let (requests, next, done, rss) =
            (requests.clone(), next.clone(), done.clone(), rss.clone());
        tasks.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(r) = requests.get(i) else { break };
                conn.write_all(r).await.expect("request written");
                let status = read_answer(&mut conn, &mut buf).await;
                if !(200..300).contains(&status) {
                    panic!("call {i}: the sandbox answered {status}");
                }
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                if n % RSS_EVERY == 0 {
                    rss.lock().unwrap().push((n, rss_kib(pid)));
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("a connection's task panicked");
    }
}

/// This thread under `SCHED_BATCH` until dropped, back to `SCHED_OTHER` then. The generator
/// wakes each time an answer arrives; as an ordinary thread it would preempt a sandbox thread
/// in the middle of a signature at almost every answer (thousands of context switches a
/// second, measured: 23 µs of generator CPU per call and the server's CPU per call up by a
/// tenth). A batch thread does not preempt on wake-up: it runs when a time slice ends and
/// then reads every answer that is in, for about a tenth of the CPU per call. The sandbox and
/// `openssl speed` are started from other moments of this thread and keep the ordinary policy.
struct Batch(bool);

impl Batch {
    fn enter() -> Batch {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; the parameter is read, not kept.
        Batch(unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } == 0)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if self.0 {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: as in `enter`; returning to the ordinary policy needs no privilege.
            unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
        }
    }
}

/// Reads one answer: its status and, by Content-Length, the end of its body.
async fn read_answer(conn: &mut tokio::net::TcpStream, buf: &mut [u8]) -> u16 {
    let mut have = 0;
    loop {
        let n = conn.read(&mut buf[have..]).await.expect("answer read");
        assert!(n > 0, "the sandbox closed a connection");
        have += n;
        let Some(end) = find(&buf[..have], b"\r\n\r\n") else {
            assert!(have < buf.len(), "headers beyond {} bytes", buf.len());
            continue;
        };
        let status = std::str::from_utf8(&buf[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let len = content_length(&buf[..end]).expect("a Content-Length");
        let mut left = (end + 4 + len).saturating_sub(have);
        let room = buf.len();
        while left > 0 {
            let n = conn
                .read(&mut buf[..left.min(room)])
                .await
                .expect("answer read");
            assert!(n > 0, "the sandbox closed a connection");
            left -= n;
        }
        return status;
    }
}

fn content_length(head: &[u8]) -> Option<usize> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let (k, v) = line.split_at(line.iter().position(|&b| b == b':')?);
        k.eq_ignore_ascii_case(b"content-length")
            .then(|| std::str::from_utf8(&v[1..]).ok()?.trim().parse().ok())?
    })
}

struct Server {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    /// SIGTERM first (serve stops cleanly, and a profiler around it writes its output), then
    /// SIGKILL after 30 s.
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One sandbox under measurement, and what was measured of it.
struct Sandbox {
    /// Its `serve` arguments, as given.
    args: String,
    server: Server,
    merchant: Merchant,
    platform: PublicKey,
    platform_serial: String,
    /// The order made in setup, which every measured query asks for.
    no: String,
    call: Call,
    calls: usize,
    wall: Duration,
    cpu: Duration,
    generator: Duration,
    signing: Duration,
    /// Each round's answers/s against the mean of the bounds measured just before and after it.
    ratios: Vec<f64>,
    /// That mean, for each round.
    bounds: Vec<f64>,
    done: Arc<AtomicUsize>,
    rss: Arc<Mutex<Vec<(usize, u64)>>>,
}

impl Sandbox {
    /// Starts `wechatpay serve ARGS` (`{dir}` in ARGS: a directory of its own, removed after),
    /// makes the order, checks 100 answers whole and warms every connection up.
    fn start(
        bin: &str,
        args: &str,
        index: usize,
        inflight: usize,
        rt: &tokio::runtime::Runtime,
    ) -> Sandbox {
        let dir = std::env::temp_dir().join(format!(
            "wechatpay-sandbox-bench-{}-{index}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let expanded = args.replace("{dir}", &dir.display().to_string());
        let argv: Vec<&str> = expanded.split_whitespace().collect();
        let (child, env) = served::spawn(bin, &argv, &dir.join("keys"));
        let server = Server { child, dir };
        let env: HashMap<String, String> = env.into_iter().collect();
        let base = &env["WECHATPAY_BASE_URI"];
        let host = base
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("the bench speaks plain HTTP; the sandbox is at {base}"))
            .trim_end_matches('/')
            .to_string();
        let merchant = Merchant {
            mchid: env["WECHATPAY_MCHID"].clone(),
            serial: env["WECHATPAY_SERIAL"].clone(),
            key: Rsa::from_private(&format!("file://{}", env["WECHATPAY_PRIVATE_KEY"])).unwrap(),
            host,
        };
        let (platform, platform_serial) = match env.get("WECHATPAY_PUBLIC_KEY") {
            Some(p) => (
                Rsa::from_public(&format!("file://{p}")).unwrap(),
                env["WECHATPAY_PUBLIC_KEY_ID"].clone(),
            ),
            None => {
                let c =
                    Rsa::from_certificate(&format!("file://{}", env["WECHATPAY_PLATFORM_CERT"]))
                        .unwrap();
                (c.public_key().clone(), c.serial().to_string())
            }
        };
        let no = format!("BENCH{}", formatter::nonce(12));
        let mut conn = std::net::TcpStream::connect(&merchant.host).unwrap();
        let created = exchange(
            &mut conn,
            &merchant.request(
                "POST",
                "/v3/pay/transactions/native",
                &order(&merchant.mchid, &no),
            ),
        );
        assert_eq!(
            created.status,
            200,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        let call = match std::env::var("SANDBOX_BENCH_CALL").as_deref() {
            Ok("create") => Call::Create,
            Ok("query") | Err(_) => Call::Query(format!(
                "/v3/pay/transactions/out-trade-no/{no}?mchid={}",
                merchant.mchid
            )),
            Ok(other) => panic!("SANDBOX_BENCH_CALL={other:?}: query or create"),
        };
        let sandbox = Sandbox {
            args: args.to_string(),
            server,
            merchant,
            platform,
            platform_serial,
            no,
            call,
            calls: 0,
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            generator: Duration::ZERO,
            signing: Duration::ZERO,
            ratios: Vec::new(),
            bounds: Vec::new(),
            done: Arc::new(AtomicUsize::new(0)),
            rss: Arc::new(Mutex::new(Vec::new())),
        };
        sandbox.sample(100);
        // warm-up: every connection served, the server's runtime and allocator at their pace
        let warm = sandbox.merchant.sign_many(&sandbox.call, inflight * 20, 2);
        rt.block_on(send(
            &sandbox.merchant.host,
            inflight,
            Arc::new(warm),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Mutex::new(Vec::new())),
            sandbox.pid(),
        ));
        *sandbox.rss.lock().unwrap() = vec![(0, rss_kib(sandbox.pid()))];
        sandbox
    }

    fn pid(&self) -> u32 {
        self.server.child.id()
    }

    /// `n` queries of the setup order, each answer verified whole.
    fn sample(&self, n: usize) {
        let target = format!(
            "/v3/pay/transactions/out-trade-no/{}?mchid={}",
            self.no, self.merchant.mchid
        );
        let mut conn = std::net::TcpStream::connect(&self.merchant.host).unwrap();
        for r in self.merchant.sign_many(&Call::Query(target), n, 1) {
            verify(
                &exchange(&mut conn, &r),
                &self.platform,
                &self.platform_serial,
                &self.no,
            );
        }
    }

    /// One round of `n` calls; returns its answers/s.
    fn round(&mut self, n: usize, inflight: usize, rt: &tokio::runtime::Runtime) -> f64 {
        let t = Instant::now();
        let requests = Arc::new(self.merchant.sign_many(&self.call, n, 2));
        self.signing += t.elapsed();
        let (t0, g0, s0) = (Instant::now(), self_cpu(), proc_cpu(self.pid()));
        rt.block_on(send(
            &self.merchant.host,
            inflight,
            requests,
            self.done.clone(),
            self.rss.clone(),
            self.pid(),
        ));
        let took = t0.elapsed();
        self.wall += took;
        self.generator += self_cpu() - g0;
        self.cpu += proc_cpu(self.pid()) - s0;
        self.calls += n;
        n as f64 / took.as_secs_f64()
    }

    fn report(&self, inflight: usize) {
        let bound = self.bounds.iter().sum::<f64>() / self.bounds.len().max(1) as f64;
        let rate = self.calls as f64 / self.wall.as_secs_f64();
        let per = |d: Duration| d.as_secs_f64() * 1e6 / self.calls as f64;
        let what = match self.call {
            Call::Query(_) => "GET v3/pay/transactions/out-trade-no/{no}",
            Call::Create => "POST v3/pay/transactions/native (a new order each call)",
        };
        let mut sorted = self.ratios.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        println!(
            "wechatpay serve {:?}: {what}, {} calls, {inflight} in flight",
            self.args, self.calls
        );
        println!("  answers/s          : {rate:.0} ({} in {:.2?}; signing ahead took {:.2?}, not counted)", self.calls, self.wall, self.signing);
        println!(
            "  ratio              : {:.1} % of {bound:.0} sign/s (the mean of the bounds around its rounds)",
            100.0 * rate / bound
        );
        println!("  rounds             : {} of {} calls; each against the bounds just before and after it: median {:.1} %, {:.1}–{:.1} %", self.ratios.len(), self.calls / self.ratios.len().max(1), 100.0 * median, 100.0 * sorted[0], 100.0 * sorted[sorted.len() - 1]);
        // what one signature costs a core while both sign, as `openssl speed -multi 2` does
        let signature = 2e6 / bound;
        println!(
            "  server CPU / call  : {:.0} µs ({:.2} cores); a signature at the bound: {signature:.0} µs of a core, {:.1} % of it",
            per(self.cpu),
            self.cpu.as_secs_f64() / self.wall.as_secs_f64(),
            100.0 * signature / per(self.cpu)
        );
        println!(
            "  bench CPU / call   : {:.1} µs ({:.2} cores, {:.1} % of the server's)",
            per(self.generator),
            self.generator.as_secs_f64() / self.wall.as_secs_f64(),
            100.0 * self.generator.as_secs_f64() / self.cpu.as_secs_f64()
        );
        println!("  samples            : 200 answers verified whole (status, platform signature, body), 100 before and 100 after");
        print!("  server RSS (MiB)   :");
        for (n, kib) in self.rss.lock().unwrap().iter() {
            print!(" {}k:{:.1}", n / 1000, *kib as f64 / 1024.0);
        }
        println!();
    }
}

fn main() {
    let calls = env_usize("SANDBOX_BENCH_CALLS", 100_000);
    let round = env_usize("SANDBOX_BENCH_ROUND", 5_000).clamp(1, 25_000);
    let inflight = env_usize("SANDBOX_BENCH_INFLIGHT", 64).max(1);
    let speed_seconds = env_usize("SANDBOX_BENCH_SPEED_SECONDS", 1) as u32;
    let servers: Vec<String> = match std::env::var("SANDBOX_BENCH_SERVE_ARGS") {
        Ok(one) => vec![one],
        Err(_) => std::env::var("SANDBOX_BENCH_SERVERS")
            .unwrap_or_else(|_| ";--state {dir}/state.db".to_string())
            .split(';')
            .map(|s| s.trim().to_string())
            .collect(),
    };
    // another command in its place (a script running it under valgrind, to profile it)
    let bin = std::env::var("SANDBOX_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_wechatpay").to_string());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut sandboxes: Vec<Sandbox> = servers
        .iter()
        .enumerate()
        .map(|(i, args)| Sandbox::start(&bin, args, i, inflight, &rt))
        .collect();

    // Rounds of each sandbox in turn, the bound measured before the first and after each one:
    // the machine's speed drifts by a tenth within seconds, so each round is compared with the
    // bound just around it, and the sandboxes share the machine's moments alike.
    let load_before = load_average();
    let mut bounds = vec![openssl_speed(speed_seconds)];
    let mut sent = 0;
    while sent < calls {
        let n = round.min(calls - sent);
        for s in sandboxes.iter_mut() {
            let rate = s.round(n, inflight, &rt);
            bounds.push(openssl_speed(speed_seconds));
            let around = (bounds[bounds.len() - 2] + bounds[bounds.len() - 1]) / 2.0;
            s.ratios.push(rate / around);
            s.bounds.push(around);
        }
        sent += n;
    }
    let load_during = load_average();
    for s in &sandboxes {
        s.sample(100);
    }
    let bound = bounds.iter().sum::<f64>() / bounds.len() as f64;
    let mut sorted = bounds.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "sandbox bench, {} sandbox(es) in turn, rounds of {round} calls",
        sandboxes.len()
    );
    println!("  load average       : {load_before} (before), {load_during} (after the calls)");
    println!("  openssl sign/s     : {bound:.0} (mean of {}, {:.0}–{:.0}; openssl speed -elapsed -multi 2 -seconds {speed_seconds} rsa2048, before the first round and after each)", bounds.len(), sorted[0], sorted[sorted.len() - 1]);
    for s in &sandboxes {
        s.report(inflight);
    }
    drop(sandboxes);
}
