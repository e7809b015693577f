//! Concurrent, threaded and sequential calls against the crypto floor, all in one run (issue
//! 14), reported in README and docs/performance.md:
//!
//! - the floor: one RSA-2048 sign + one verify through openssl, on every core in parallel
//!   (CPU per pair, pairs/s) and on one core (thread CPU per pair);
//! - (1) async calls through one `Client`, each its own task on a multi-thread runtime with as
//!   many workers as cores, at 16, 64 and 256 in flight;
//! - (2) blocking calls from 2, 8 and 64 threads;
//! - (3) sequential blocking calls from one thread;
//! - (5) chain + expansion; 1,000 sequential calls on one connection; 10,000 async calls at
//!   256 in flight, every call accounted for, with the process's memory and sockets before and
//!   after.
//!
//! The platform is a loopback server inside the bench, on a thread of its own: it signs one
//! answer per second and writes the same pre-signed bytes to every request, so that it costs
//! next to nothing. Client CPU is the process's (`getrusage`) minus that thread's
//! (`pthread_getcpuclockid`); each figure is printed beside the floor of the same round, with
//! the ratio and the target. On a shared machine the floor's own pairs/s fall short of cores ÷
//! floor (other processes take CPU time): calls/s are also given as a share of the pairs/s the
//! floor reached in the same round, which is what this process could get. This VM's speed
//! drifts (the same `openssl speed` gives 1.0 × and 2.2 × its fastest within minutes), so each
//! case is measured between two floors, taken just before and just after it, and compared with
//! their mean; rounds repeat the whole set, and the summary gives each ratio's median and range.
//! Threaded and sequential cases are also compared with the crypto alone as their threads run
//! it, to tell the cost of the way those threads run from the client's: on that many threads
//! sharing the cores (8, 64), or with each thread sleeping after each pair as long as a call
//! waited for its answer (1, 2; and 8, 64 with the wait of the 2 threads' calls).
//!
//! `cargo bench --bench concurrent`. `WECHATPAY_BENCH_ROUNDS` (default 5) and
//! `WECHATPAY_BENCH_CALLS` (calls per measurement, default 2,000) scale it;
//! `WECHATPAY_BENCH_CASES` (say `async16,blocking64`; also `async64`, `async256`,
//! `blocking2`, `blocking8`, `sequential`, `regression` for (5)) runs only those cases, for a
//! profiler (`benches/perf_split.py`).
//! `WECHATPAY_BENCH_CALLGRIND=N` runs only N sign + verify pairs (`cg_crypto`), N sequential
//! blocking calls (`cg_blocking`) and N sequential async calls on a current-thread runtime
//! (`cg_async`), for `valgrind --tool=callgrind` (read the three functions' inclusive counts
//! with `callgrind_annotate --inclusive=yes`), and prints each loop's allocations per
//! iteration (counted by this bench's global allocator: the same on any machine).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wechatpay_chain::uri::{expand, Placeholders};
use wechatpay_chain::{formatter, Builder, Client, PrivateKey, PublicKey, Rsa};

const PUB_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
const TEMPLATE: &str = "v3/discount-card/orders/{out_order_no}";
const BODY: &str = r#"{"out_order_no":"233bcbf407e87789b8e471f251774f95","state":"CREATED"}"#;

fn args() -> Value {
    json!({"out_order_no": "233bcbf407e87789b8e471f251774f95"})
}

/// Counts this thread's allocations (a thread-local add, next to nothing beside a call), so
/// that the allocations of a call made wholly on one thread can be read off.
struct Counting;

thread_local! {
    static ALLOCATED: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

// SAFETY: every method forwards to `System`; the counting touches only a `Cell` of plain
// numbers (no allocation, no destructor), and is skipped once the thread-local is gone.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size());
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        count(new);
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn count(bytes: usize) {
    let _ = ALLOCATED.try_with(|c| {
        let (n, b) = c.get();
        c.set((n + 1, b + bytes as u64));
    });
}

/// This thread's allocations (reallocations included) and the bytes asked for, so far.
fn allocated() -> (u64, u64) {
    ALLOCATED.try_with(|c| c.get()).unwrap_or((0, 0))
}

/// User + system CPU of the whole process so far.
fn process_cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// CPU time on `clock` (a thread's CPU clock, or `CLOCK_THREAD_CPUTIME_ID`).
fn clock_cpu(clock: libc::clockid_t) -> Duration {
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(clock, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn thread_cpu() -> Duration {
    clock_cpu(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// Resident memory of the process, KiB.
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4
}

/// Open file descriptors of the process, and how many of them are sockets.
fn fds() -> (usize, usize) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    let links: Vec<_> = dir
        .flatten()
        .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
        .collect();
    let sockets = links
        .iter()
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count();
    (links.len(), sockets)
}

/// The answer every request gets: status, headers and body, signed with the platform key.
fn presigned(key: &PrivateKey) -> Bytes {
    let ts = formatter::timestamp().to_string();
    let nonce = formatter::nonce(32);
    let sig = Rsa::sign(formatter::response(&ts, &nonce, BODY.as_bytes()), key).unwrap();
    Bytes::from(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         wechatpay-timestamp: {ts}\r\nwechatpay-nonce: {nonce}\r\nwechatpay-serial: {PUB_KEY_ID}\r\n\
         wechatpay-signature: {sig}\r\n\r\n{BODY}",
        BODY.len()
    ))
}

/// The body length a request head announces (0 without one).
fn content_length(head: &[u8]) -> usize {
    let head = String::from_utf8_lossy(head).to_ascii_lowercase();
    head.lines()
        .find_map(|l| l.strip_prefix("content-length:")?.trim().parse().ok())
        .unwrap_or(0)
}

/// The loopback platform: one thread, one current-thread runtime.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    clock: libc::clockid_t,
}

impl Server {
    fn start(key: PrivateKey) -> Server {
        let (tx, rx) = std::sync::mpsc::channel();
        let connections = Arc::new(AtomicUsize::new(0));
        let conns = connections.clone();
        std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let mut clock: libc::clockid_t = 0;
                // SAFETY: writes this thread's CPU clock id into `clock`.
                unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) };
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    let current = Arc::new(Mutex::new(presigned(&key)));
                    tx.send((listener.local_addr().unwrap(), clock)).unwrap();
                    let signer = current.clone();
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            let fresh = presigned(&key);
                            *signer.lock().unwrap() = fresh;
                        }
                    });
                    loop {
                        let Ok((mut s, _)) = listener.accept().await else {
                            continue;
                        };
                        let _ = s.set_nodelay(true);
                        conns.fetch_add(1, Ordering::SeqCst);
                        let current = current.clone();
                        tokio::spawn(async move {
                            let mut buf = Vec::with_capacity(4096);
                            let mut chunk = [0u8; 4096];
                            loop {
                                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                                {
                                    let whole = end + 4 + content_length(&buf[..end]);
                                    if buf.len() < whole {
                                        break;
                                    }
                                    buf.drain(..whole);
                                    let answer = current.lock().unwrap().clone();
                                    if s.write_all(&answer).await.is_err() {
                                        return;
                                    }
                                }
                                match s.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            }
                        });
                    }
                });
            })
            .unwrap();
        let (addr, clock) = rx.recv().unwrap();
        Server {
            addr,
            connections,
            clock,
        }
    }

    fn cpu(&self) -> Duration {
        clock_cpu(self.clock)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Keys and the sample the floor verifies.
struct Crypto {
    merchant: PrivateKey,
    platform_public: PublicKey,
    sample: String,
}

impl Crypto {
    /// One RSA-2048 signature (a request's) and one verification (an answer's).
    #[inline(never)]
    fn pair(&self, i: u64) {
        let s = Rsa::sign(
            format!("GET\n/v3/x/{i}\n1700000000\nNONCE\n\n"),
            &self.merchant,
        )
        .unwrap();
        black_box(&s);
        assert!(Rsa::verify(
            b"1700000000\nNONCE\n{\"a\":1}\n",
            &self.sample,
            &self.platform_public
        ));
    }
}

/// CPU per call and calls per second of one measurement.
#[derive(Clone, Copy)]
struct Sample {
    cpu: Duration,
    rate: f64,
}

/// Runs `f` (which makes `calls` calls) and measures the client's CPU (the process's minus the
/// server thread's) per call, and calls per second.
fn measure(server: &Server, calls: usize, f: impl FnOnce()) -> Sample {
    let (p0, s0, t0) = (process_cpu(), server.cpu(), Instant::now());
    f();
    let wall = t0.elapsed();
    let cpu = (process_cpu() - p0).saturating_sub(server.cpu() - s0);
    Sample {
        cpu: cpu / calls as u32,
        rate: calls as f64 / wall.as_secs_f64(),
    }
}

/// The floor on every core at once: `threads` threads (as many as cores) each doing sign +
/// verify pairs. As references for the threaded and sequential cases: with more threads than
/// cores (the crypto alone as a threaded caller's threads share the cores), and with each
/// thread sleeping `wait` after each pair, as a caller waits for its answer (what idling
/// between pairs costs the crypto itself on this machine, with no client at all).
fn floor_on_threads(
    server: &Server,
    c: &Crypto,
    threads: usize,
    pairs: usize,
    wait: Duration,
) -> Sample {
    let per = pairs / threads;
    measure(server, per * threads, || {
        std::thread::scope(|s| {
            for t in 0..threads {
                named(s, "bench-floor", move || {
                    for i in 0..per {
                        c.pair((t * per + i) as u64);
                        if !wait.is_zero() {
                            std::thread::sleep(wait);
                        }
                    }
                });
            }
        })
    })
}

/// The floor on one core: thread CPU per pair.
fn floor_one_core(c: &Crypto, pairs: usize) -> Duration {
    std::thread::scope(|s| {
        named(s, "bench-floor", || {
            let t0 = thread_cpu();
            (0..pairs).for_each(|i| c.pair(i as u64));
            (thread_cpu() - t0) / pairs as u32
        })
        .join()
        .unwrap()
    })
}

/// A scoped thread with a name, so that a profile tells the floor's threads from the
/// callers' (`benches/perf_split.py`).
fn named<'scope, T: Send + 'scope>(
    s: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() -> T + Send + 'scope,
) -> std::thread::ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(s, f)
        .unwrap()
}

/// `total` async calls, each its own task, at most `inflight` at once; returns how many
/// succeeded.
fn async_calls(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    inflight: usize,
    total: usize,
) -> usize {
    let client = client.clone();
    rt.block_on(rt.spawn(async move {
        let ok = Arc::new(AtomicUsize::new(0));
        let permits = Arc::new(tokio::sync::Semaphore::new(inflight));
        for _ in 0..total {
            let permit = permits.clone().acquire_owned().await.unwrap();
            let (client, ok) = (client.clone(), ok.clone());
            tokio::spawn(async move {
                if client.chain(TEMPLATE).get_async(args()).await.is_ok() {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                drop(permit);
            });
        }
        let _all = permits.acquire_many(inflight as u32).await.unwrap();
        ok.load(Ordering::Relaxed)
    }))
    .unwrap()
}

/// `total` blocking calls spread over `threads` threads; returns how many succeeded.
fn blocking_calls(client: &Client, threads: usize, total: usize) -> usize {
    let per = total / threads;
    let ok = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            named(s, "bench-caller", || {
                for _ in 0..per {
                    if client.chain(TEMPLATE).get(args()).is_ok() {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    ok.into_inner()
}

#[inline(never)]
fn cg_crypto(c: &Crypto, n: u64) {
    (0..n).for_each(|i| c.pair(i));
}

#[inline(never)]
fn cg_blocking(client: &Client, n: u64) {
    for _ in 0..n {
        black_box(client.chain(TEMPLATE).get(args()).unwrap());
    }
}

#[inline(never)]
fn cg_async(rt: &tokio::runtime::Runtime, client: &Client, n: u64) {
    rt.block_on(async {
        for _ in 0..n {
            black_box(client.chain(TEMPLATE).get_async(args()).await.unwrap());
        }
    });
}

fn pem_pair() -> (String, String) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    (
        String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap(),
    )
}

/// A case's per-round ratios: CPU to the floor, calls/s to cores ÷ floor, calls/s to the
/// floor's own pairs/s.
type Ratios = (Vec<f64>, Vec<f64>, Vec<f64>);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How long each of `threads` threads waited per call in `case` (its wall time per call, less
/// the CPU a call took), rounded to 10 µs.
fn waited(case: Sample, threads: usize) -> Duration {
    let wall = threads as f64 / case.rate;
    let wait = (wall - case.cpu.as_secs_f64()).max(0.0);
    Duration::from_micros((wait * 1e5).round() as u64 * 10)
}

/// Prints a reference (the crypto alone, sleeping `wait` after each pair when not zero, at
/// `alone` CPU per pair) beside its floor and the case's CPU per call, and keeps both ratios
/// under `section` and `name` (the wait, which varies from round to round, only in the
/// printed line).
fn refer(
    references: &mut BTreeMap<String, (Vec<f64>, Vec<f64>)>,
    (section, name): (&str, String),
    (wait, alone): (Duration, Duration),
    floor: Duration,
    case: Duration,
) {
    let (of_floor, of_alone) = (
        alone.as_secs_f64() / floor.as_secs_f64(),
        case.as_secs_f64() / alone.as_secs_f64(),
    );
    let (printed, kept) = if wait.is_zero() {
        (name.clone(), name)
    } else {
        (
            format!("{name}, sleeping {} µs after each pair", wait.as_micros()),
            format!("{name}, sleeping a call's wait after each pair"),
        )
    };
    println!(
        "      {printed}: {:.0} µs CPU per pair = {of_floor:.3} × its floor; the calls cost {of_alone:.3} × that",
        micros(alone)
    );
    let e = references.entry(format!("{section} {kept}")).or_default();
    e.0.push(of_floor);
    e.1.push(of_alone);
}

/// "median (min–max)" of `v`; "-" for a case not run (`WECHATPAY_BENCH_CASES`).
fn spread(mut v: Vec<f64>, digits: usize) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1],
        d = digits
    )
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let (merchant_pem, _) = pem_pair();
    let (platform_pem, platform_pub) = pem_pair();
    let platform_key = Rsa::from_private(&platform_pem).unwrap();
    let crypto = Crypto {
        merchant: Rsa::from_private(&merchant_pem).unwrap(),
        platform_public: Rsa::from_public(&platform_pub).unwrap(),
        sample: Rsa::sign(b"1700000000\nNONCE\n{\"a\":1}\n", &platform_key).unwrap(),
    };
    let server = Server::start(platform_key);
    let base = format!("http://{}/", server.addr);
    let new_client = || {
        Builder::new()
            .mchid("1900000001")
            .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
            .private_key(crypto.merchant.clone())
            .platform_public_key(PUB_KEY_ID, crypto.platform_public.clone())
            .base_uri(&base)
            .build()
            .unwrap()
    };
    let client = new_client();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    if let Ok(n) = std::env::var("WECHATPAY_BENCH_CALLGRIND") {
        let n = n.parse().unwrap_or(200);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Warm, outside the counted functions: connections open, lazy statics made.
        for _ in 0..20 {
            black_box(client.chain(TEMPLATE).get(args()).unwrap());
            black_box(
                rt.block_on(client.chain(TEMPLATE).get_async(args()))
                    .unwrap(),
            );
        }
        // Each loop runs wholly on this thread (the blocking calls' runtime and the
        // current-thread one included), so this thread's counts are the loop's.
        let per = |f: &mut dyn FnMut()| {
            let (a0, b0) = allocated();
            f();
            let (a1, b1) = allocated();
            ((a1 - a0) / n, (b1 - b0) / n)
        };
        let counts = [
            (
                "cg_crypto: sign + verify",
                per(&mut || cg_crypto(&crypto, n)),
            ),
            (
                "cg_blocking: a blocking call",
                per(&mut || cg_blocking(&client, n)),
            ),
            (
                "cg_async: an async call",
                per(&mut || cg_async(&rt, &client, n)),
            ),
        ];
        for (name, (allocs, bytes)) in counts {
            println!("{name:<32} {allocs:>5} allocations, {bytes:>7} bytes per iteration");
        }
        return;
    }

    let cases = std::env::var("WECHATPAY_BENCH_CASES").unwrap_or_default();
    let wanted = |case: &str| cases.is_empty() || cases.split(',').any(|c| c.trim() == case);
    let rounds = env("WECHATPAY_BENCH_ROUNDS", 5);
    let calls = env("WECHATPAY_BENCH_CALLS", 2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "{cores} cores; {rounds} rounds of {calls} calls per case; load average at start: {}",
        load().trim()
    );

    // Per case: (cpu ratio to the multi-core floor, rate ratio to cores ÷ floor, rate ratio to
    // the floor's own pairs/s), each against the floors measured just before and just after it.
    let mut ratios: BTreeMap<String, Ratios> = BTreeMap::new();
    let mut floors = (Vec::new(), Vec::new(), Vec::new());
    let mut seq_ratios = Vec::new();
    // Per reference (the crypto alone as a threaded or sequential case's threads run it): its
    // CPU to the floor, and the case's calls to it.
    let mut references: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    // A floor slice: a quarter of a case's calls, so the floors before and after a case are
    // at most a second or so apart from it (this VM's speed drifts by 2 × over minutes).
    let slice = (calls / 4).max(cores);
    let floor = || floor_on_threads(&server, &crypto, cores, slice, Duration::ZERO);
    for round in 1..=rounds {
        let mut before = floor();
        println!(
            "round {round}: floor on {cores} cores {:.0} µs CPU per sign + verify, {:.0} pairs/s (each case is against the mean of the floors just before and after it)",
            micros(before.cpu),
            before.rate,
        );
        // Measures one case between two floors; returns the case and the floors' mean.
        let mut bracket = |case: &mut dyn FnMut() -> Sample| {
            let s = case();
            let after = floor();
            let multi = Sample {
                cpu: (before.cpu + after.cpu) / 2,
                rate: (before.rate + after.rate) / 2.0,
            };
            floors.0.push(micros(after.cpu));
            floors.2.push(after.rate);
            before = after;
            (s, multi)
        };
        let mut report = |name: String, (s, multi): (Sample, Sample), ok: usize, total: usize| {
            let ceiling = cores as f64 / multi.cpu.as_secs_f64();
            let (cpu, rate) = (
                s.cpu.as_secs_f64() / multi.cpu.as_secs_f64(),
                s.rate / ceiling,
            );
            let measured = s.rate / multi.rate;
            println!(
                "  {name:<34} {:>6.0} µs CPU/call = {cpu:.3} × floor {:.0} µs (≤ 1.15); {:>6.0} calls/s = {:.1} % of cores ÷ floor (≥ 85 %), {:.1} % of the floor's pairs/s; {ok}/{total} ok",
                micros(s.cpu),
                micros(multi.cpu),
                s.rate,
                rate * 100.0,
                measured * 100.0
            );
            let e = ratios.entry(name).or_default();
            e.0.push(cpu);
            e.1.push(rate);
            e.2.push(measured);
        };
        for inflight in [16, 64, 256] {
            if !wanted(&format!("async{inflight}")) {
                continue;
            }
            async_calls(&rt, &client, inflight, inflight * 2);
            let mut ok = 0;
            let m = bracket(&mut || {
                measure(&server, calls, || {
                    ok = async_calls(&rt, &client, inflight, calls)
                })
            });
            report(format!("(1) async, {inflight:>3} in flight"), m, ok, calls);
        }
        // What a call from as few threads as cores waited for its answer (this round's), for
        // the reference of the cases with more threads.
        let mut io_wait = None;
        for threads in [2, 8, 64] {
            if !wanted(&format!("blocking{threads}")) {
                continue;
            }
            blocking_calls(&client, threads, threads * 2);
            let total = calls / threads * threads;
            let mut ok = 0;
            let m = bracket(&mut || {
                measure(&server, total, || {
                    ok = blocking_calls(&client, threads, total)
                })
            });
            let case = m.0;
            report(format!("(2) blocking, {threads:>2} threads"), m, ok, total);
            // The crypto alone as these threads run it: sharing the cores when there are more
            // threads than cores, else sleeping after each pair as long as a call waited; and
            // for more threads than cores, also sleeping after each pair as long as a call
            // waits for its answer (as the fewer threads' calls did; 70 µs when that case did
            // not run): the switches between threads that every blocking call makes.
            let waits = if threads > cores {
                vec![
                    Duration::ZERO,
                    *io_wait.get_or_insert(Duration::from_micros(70)),
                ]
            } else {
                vec![*io_wait.get_or_insert(waited(case, threads))]
            };
            for wait in waits {
                let (alone, multi) =
                    bracket(&mut || floor_on_threads(&server, &crypto, threads, calls / 2, wait));
                refer(
                    &mut references,
                    ("(2)", format!("the crypto alone on {threads} threads")),
                    (wait, alone.cpu),
                    multi.cpu,
                    case.cpu,
                );
            }
        }
        if !wanted("sequential") {
            continue;
        }
        // On one thread, against the mean of one-core floors taken before it, after it and
        // after its reference.
        let single_before = floor_one_core(&crypto, slice);
        let seq = calls / 2;
        let s = measure(&server, seq, || {
            blocking_calls(&client, 1, seq);
        });
        let single_after = floor_one_core(&crypto, slice);
        let wait = waited(s, 1);
        let alone = floor_on_threads(&server, &crypto, 1, slice, wait);
        let single = (single_before + single_after + floor_one_core(&crypto, slice)) / 3;
        floors.1.push(micros(single));
        let r = s.cpu.as_secs_f64() / single.as_secs_f64();
        seq_ratios.push(r);
        println!(
            "  (3) sequential blocking              {:>6.0} µs CPU/call = {r:.3} × the one-core floor {:.0} µs (≤ 1.15); {:.0} calls/s",
            micros(s.cpu),
            micros(single),
            s.rate
        );
        refer(
            &mut references,
            ("(3)", "the crypto alone on one thread".into()),
            (wait, alone.cpu),
            single,
            s.cpu,
        );
    }

    println!(
        "\nsummary over {rounds} rounds, median (min–max); load average at end: {}",
        load().trim()
    );
    println!(
        "  floor: {} µs per sign + verify on {cores} cores, {} pairs/s; {} µs on one core",
        spread(floors.0, 0),
        spread(floors.2, 0),
        spread(floors.1, 0)
    );
    let percent = |v: Vec<f64>| spread(v.into_iter().map(|r| r * 100.0).collect(), 1);
    for (name, (cpu, rate, measured)) in ratios {
        println!(
            "  {name:<34} CPU {} × floor; calls/s {} % of cores ÷ floor, {} % of the floor's pairs/s",
            spread(cpu, 3),
            percent(rate),
            percent(measured)
        );
    }
    for (name, (of_floor, of_alone)) in references {
        println!(
            "  {name}: CPU {} × its floor; the calls cost {} × that",
            spread(of_floor, 3),
            spread(of_alone, 3)
        );
    }
    println!(
        "  (3) sequential blocking              CPU {} × the one-core floor",
        spread(seq_ratios, 3)
    );

    if !wanted("regression") {
        return;
    }
    // (5) No regression.
    let map = args().as_object().unwrap().clone();
    let mut per = Vec::new();
    for _ in 0..5 {
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            let chain = client.chain(black_box(TEMPLATE));
            black_box(expand(chain.pathname(), &map, Placeholders::Strict).unwrap());
        }
        per.push(t.elapsed().as_secs_f64() * 1e9 / n as f64);
    }
    println!("\n(5) chain + expansion: {} ns (< 1 µs)", spread(per, 0));

    let fresh = new_client();
    let before = server.connections();
    let ok = blocking_calls(&fresh, 1, 1000);
    println!(
        "(5) 1,000 sequential calls on a fresh client: {ok} ok, {} connection(s) opened (one)",
        server.connections() - before
    );

    let fresh = new_client();
    async_calls(&rt, &fresh, 256, 1024);
    let (fd0, rss0) = (fds(), rss_kib());
    let before = server.connections();
    let total = 10_000;
    let ok = async_calls(&rt, &fresh, 256, total);
    let (fd1, rss1) = (fds(), rss_kib());
    println!(
        "(5) 10,000 async calls at 256 in flight: {ok}/{total} ok; {} new connection(s) after the warm-up; open fds {} → {} (sockets {} → {}, client and server sides); RSS {} → {} MiB; the server accepted {} connections in the whole run",
        server.connections() - before,
        fd0.0,
        fd1.0,
        fd0.1,
        fd1.1,
        rss0 / 1024,
        rss1 / 1024,
        server.connections()
    );
}
