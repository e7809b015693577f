//! Benchmarks of the core client, reported in README:
//!
//! - `chain + expansion`: `client.chain(template)` and expanding it, the per-call path cost;
//! - `cpu per call`: client CPU (user + system, all threads of this process) per signed and
//!   verified call against a loopback platform running in a *separate process*, divided by the
//!   CPU of one RSA-2048 sign + one verify measured in the same run, back to back (the tight
//!   floor) and right after a bare round trip (the in-context floor); the bare round trip's own
//!   CPU gives the "ideal client" (crypto + socket, nothing else) and the client's own share;
//!   all of it twice: client and server on the kernel's choice of CPUs, then sharing one CPU;
//! - `connections`: how many TCP connections 1,000 sequential calls opened.
//!
//! `cargo bench --bench client`. The same binary re-executes itself as the loopback server.
//! `-- nomatch` skips criterion; `WECHATPAY_BENCH_COUNT=N` runs only the two instruction-count
//! loops (for callgrind), `WECHATPAY_BENCH_PROFILE_CALLS=N` only calls (for `perf record`),
//! `WECHATPAY_BENCH_DRIVER=1` makes the calls inside a runtime's context, where they go through
//! the background I/O thread.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{black_box, Criterion};
use http_body_util::{BodyExt, Full};
use serde_json::json;
use wechatpay_chain::uri::{expand, Placeholders};
use wechatpay_chain::{formatter, Builder, PrivateKey, PublicKey, Rsa};

const PUB_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";

fn cpu_time() -> Duration {
    let (user, system) = cpu_split();
    user + system
}

/// User and system CPU of this process so far.
fn cpu_split() -> (Duration, Duration) {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (tv(u.ru_utime), tv(u.ru_stime))
}

/// Server mode: signs every answer with the platform key given in the environment, counts
/// connections, and answers `/stats` with that count.
fn serve(platform_pem: String) {
    let key = Rsa::from_private(&platform_pem).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            conns.fetch_add(1, Ordering::SeqCst);
            let (key, conns) = (key.clone(), conns.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (key, conns) = (key.clone(), conns.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let _ = req.into_body().collect().await;
                            let body = if path == "/stats" {
                                format!("{{\"connections\":{}}}", conns.load(Ordering::SeqCst))
                            } else {
                                format!(
                                    "{{\"out_order_no\":\"{}\",\"state\":\"CREATED\"}}",
                                    path.rsplit('/').next().unwrap_or("")
                                )
                            };
                            let ts = formatter::timestamp().to_string();
                            let nonce = formatter::nonce(32);
                            let sig =
                                Rsa::sign(formatter::response(&ts, &nonce, body.as_bytes()), &key)
                                    .unwrap();
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("Content-Type", "application/json")
                                    .header("Wechatpay-Timestamp", ts)
                                    .header("Wechatpay-Nonce", nonce)
                                    .header("Wechatpay-Serial", PUB_KEY_ID)
                                    .header("Wechatpay-Signature", sig)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
}

/// What the CPU rounds need.
struct Work<'a> {
    merchant: &'a PrivateKey,
    sample: &'a str,
    platform_public: &'a PublicKey,
    chain: &'a wechatpay_chain::Chain,
    args: &'a serde_json::Value,
    raw: &'a mut RawHttp,
}

/// Client CPU per call against the crypto floor: three batches interleaved in rounds, so that
/// load from elsewhere on a shared machine weighs on all alike; medians of per-round ratios.
///  - tight floor: sign + verify back to back (process CPU);
///  - in-context floor: the same sign + verify, each right after a bare HTTP round trip to the
///    same server (thread CPU of the crypto alone): the crypto as a call's thread runs it, woken
///    from a network wait, without anything of the client's; the round trip's own CPU is the
///    bare transport;
///  - calls: the client's signed + verified calls (process CPU, every thread).
fn measure(placement: &str, w: &mut Work<'_>) {
    let (rounds, n) = (30u32, 80u32);
    let (mut tight_ratios, mut context_ratios, mut ideal_ratios) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut tight_total, mut context_total, mut bare_total) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut calls_total, mut wall_total) = (Duration::ZERO, Duration::ZERO);
    let (mut calls_user, mut calls_sys) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = cpu_time();
        floor_loop(n, w.merchant, w.sample, w.platform_public);
        let tight = cpu_time() - t;

        let (mut context, mut bare) = (Duration::ZERO, Duration::ZERO);
        for i in 0..n {
            let t0 = thread_cpu_time();
            w.raw.round_trip();
            let t1 = thread_cpu_time();
            floor_loop_once(i, w.merchant, w.sample, w.platform_public);
            context += thread_cpu_time() - t1;
            bare += t1 - t0;
        }

        let wall = Instant::now();
        let (u0, s0) = cpu_split();
        calls_loop(n, w.chain, w.args);
        let (u1, s1) = cpu_split();
        calls_user += u1 - u0;
        calls_sys += s1 - s0;
        let calls = (u1 - u0) + (s1 - s0);
        wall_total += wall.elapsed();
        tight_total += tight;
        context_total += context;
        bare_total += bare;
        calls_total += calls;
        tight_ratios.push(calls.as_secs_f64() / tight.as_secs_f64());
        context_ratios.push(calls.as_secs_f64() / context.as_secs_f64());
        ideal_ratios.push(calls.as_secs_f64() / (context + bare).as_secs_f64());
    }
    let total = rounds * n;
    let (call, tight, context, bare) = (
        calls_total / total,
        tight_total / total,
        context_total / total,
        bare_total / total,
    );
    println!("{placement}:");
    println!(
        "  cpu per call: {call:?} (user {:?}, system {:?}); wall per call {:?}",
        calls_user / total,
        calls_sys / total,
        wall_total / total
    );
    println!(
        "  vs tight-loop floor (1 sign + 1 verify back to back, {tight:?}): ratio median {} over {rounds} rounds of {n}",
        summary(tight_ratios)
    );
    println!(
        "  vs in-context floor (the same sign + verify right after a bare round trip, {context:?} = {:.3} x tight): ratio median {}",
        context.as_secs_f64() / tight.as_secs_f64(),
        summary(context_ratios)
    );
    println!(
        "  bare HTTP/1.1 round trip on a std TcpStream (no HTTP library, no crypto, no runtime): {bare:?} = {:.3} x tight",
        bare.as_secs_f64() / tight.as_secs_f64()
    );
    println!(
        "  vs ideal (in-context crypto + bare round trip, {:?}): ratio median {}; the client's own share (HTTP, runtime, request building, checks): {:?} = {:.3} x tight",
        context + bare,
        summary(ideal_ratios),
        call.saturating_sub(context + bare),
        call.saturating_sub(context + bare).as_secs_f64() / tight.as_secs_f64()
    );
}

/// The CPUs `pid` (0: this process) may run on.
fn affinity(pid: libc::pid_t) -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes only into it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(pid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Lets every thread of process `pid` run on `cpus` only.
fn set_affinity(pid: libc::pid_t, cpus: &[usize]) {
    let pid = if pid == 0 {
        std::process::id() as libc::pid_t
    } else {
        pid
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        for tid in tasks
            .flatten()
            .filter_map(|t| t.file_name().to_str()?.parse().ok())
        {
            let _ = libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set);
        }
    }
}

/// CPU time of the calling thread alone (`CLOCK_THREAD_CPUTIME_ID`, nanosecond resolution).
fn thread_cpu_time() -> Duration {
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// "median (min, max, overall)" of per-round ratios.
fn summary(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    format!(
        "{:.3} (min {:.3}, max {:.3}, mean {:.3})",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        mean
    )
}

/// A bare keep-alive HTTP/1.1 exchange over a std TcpStream: no HTTP library, no crypto, no
/// runtime; the cheapest way this thread can wait for the server's answer.
struct RawHttp {
    tcp: std::net::TcpStream,
    request: Vec<u8>,
    buf: Vec<u8>,
}

impl RawHttp {
    fn connect(base: &str) -> Self {
        let addr = base.trim_start_matches("http://").trim_end_matches('/');
        let tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_nodelay(true).unwrap();
        let request = format!("GET /v3/raw HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
        RawHttp {
            tcp,
            request,
            buf: vec![0u8; 16 * 1024],
        }
    }

    fn round_trip(&mut self) {
        use std::io::Read;
        self.tcp.write_all(&self.request).unwrap();
        let mut got = 0;
        loop {
            got += self.tcp.read(&mut self.buf[got..]).unwrap();
            let text = &self.buf[..got];
            if let Some(end) = text.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&text[..end]).to_ascii_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                if got >= end + 4 + len {
                    return;
                }
            }
        }
    }
}

#[inline(never)]
fn floor_loop_once(i: u32, merchant: &PrivateKey, sample: &str, platform_public: &PublicKey) {
    let s = Rsa::sign(format!("GET\n/v3/x/{i}\n1700000000\nNONCE\n\n"), merchant).unwrap();
    black_box(&s);
    assert!(Rsa::verify(
        b"1700000000\nNONCE\n{\"a\":1}\n",
        sample,
        platform_public
    ));
}

#[inline(never)]
fn floor_loop(n: u32, merchant: &PrivateKey, sample: &str, platform_public: &PublicKey) {
    for i in 0..n {
        floor_loop_once(i, merchant, sample, platform_public);
    }
}

#[inline(never)]
fn calls_loop(n: u32, chain: &wechatpay_chain::Chain, args: &serde_json::Value) {
    for _ in 0..n {
        let r = chain.get(args.clone()).unwrap();
        black_box(r.body());
    }
}

fn pem_pair() -> (String, String) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let pkey = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    (
        String::from_utf8(pkey.private_key_to_pem_pkcs8().unwrap()).unwrap(),
        String::from_utf8(pkey.public_key_to_pem().unwrap()).unwrap(),
    )
}

fn main() {
    if let Ok(pem) = std::env::var("WECHATPAY_BENCH_SERVER_KEY") {
        return serve(pem);
    }
    let (merchant_pem, _) = pem_pair();
    let (platform_pem, platform_pub) = pem_pair();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("WECHATPAY_BENCH_SERVER_KEY", &platform_pem)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = format!("http://{}/", line.trim());
    let merchant = Rsa::from_private(&merchant_pem).unwrap();
    let client = Builder::new()
        .mchid("1900000001")
        .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
        .private_key(merchant.clone())
        .platform_public_key(PUB_KEY_ID, Rsa::from_public(&platform_pub).unwrap())
        .base_uri(&base)
        .build()
        .unwrap();

    let mut c = Criterion::default().configure_from_args();
    let template = "v3/discount-card/orders/{out_order_no}";
    let args = json!({"out_order_no": "233bcbf407e87789b8e471f251774f95"});
    let map = args.as_object().unwrap().clone();
    c.bench_function("chain + expansion (discount-card template)", |b| {
        b.iter(|| {
            let chain = client.chain(black_box(template));
            black_box(expand(chain.pathname(), &map, Placeholders::Strict).unwrap())
        })
    });
    c.bench_function("index (cached) + expansion", |b| {
        b.iter(|| {
            let chain = &client[black_box(template)];
            black_box(expand(chain.pathname(), &map, Placeholders::Strict).unwrap())
        })
    });
    c.final_summary();

    // CPU per call versus the crypto floor, in one run.
    let platform_public = Rsa::from_public(&platform_pub).unwrap();
    let platform_key = Rsa::from_private(&platform_pem).unwrap();
    let sample = Rsa::sign(b"1700000000\nNONCE\n{\"a\":1}\n", &platform_key).unwrap();
    let chain = client.chain(template);
    // Compare with the background path: blocking calls made inside a runtime's context wait
    // while the crate's background I/O thread does their I/O.
    let driver = std::env::var_os("WECHATPAY_BENCH_DRIVER").map(|_| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let _entered = driver.as_ref().map(|rt| rt.enter());
    for _ in 0..50 {
        chain.get(args.clone()).unwrap();
    }
    if let Ok(n) = std::env::var("WECHATPAY_BENCH_COUNT") {
        // For `valgrind --tool=callgrind`: instruction counts of the two loops, read off
        // `callgrind_annotate --inclusive=yes` as `floor_loop` and `calls_loop`.
        let n = n.parse::<u32>().unwrap_or(100);
        floor_loop(n, &merchant, &sample, &platform_public);
        calls_loop(n, &chain, &args);
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    if let Ok(n) = std::env::var("WECHATPAY_BENCH_PROFILE_CALLS") {
        // For `perf record`: only the call loop.
        for _ in 0..n.parse::<u32>().unwrap_or(10_000) {
            black_box(chain.get(args.clone()).unwrap());
        }
        let _ = child.kill();
        let _ = child.wait();
        return;
    }
    let mut raw = RawHttp::connect(&base);
    for _ in 0..100 {
        raw.round_trip();
    }
    let mut w = Work {
        merchant: &merchant,
        sample: &sample,
        platform_public: &platform_public,
        chain: &chain,
        args: &args,
        raw: &mut raw,
    };
    // Two placements in the same run. Across CPUs (the kernel's choice), every answer wakes the
    // client's CPU from idle, which on a VM costs tens of microseconds of hypervisor work per
    // call whatever the client does (the bare round trip shows it). On one shared CPU the
    // wake-up is a plain context switch: what is left is the client's own cost.
    let allowed = affinity(0);
    let server = child.id() as libc::pid_t;
    measure("client and server on the kernel's choice of CPUs", &mut w);
    if let Some(&cpu) = allowed.first() {
        set_affinity(0, &[cpu]);
        set_affinity(server, &[cpu]);
        measure(&format!("client and server sharing CPU {cpu}"), &mut w);
        set_affinity(0, &allowed);
        set_affinity(server, &allowed);
    }

    // Connection reuse over 1,000 sequential calls on a fresh client.
    let fresh = Builder::new()
        .mchid("1900000001")
        .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
        .private_key(merchant)
        .platform_public_key(PUB_KEY_ID, platform_public)
        .base_uri(&base)
        .build()
        .unwrap();
    let before: serde_json::Value = fresh.chain("stats").get(json!({})).unwrap().json().unwrap();
    for i in 0..1000 {
        fresh
            .chain(template)
            .get(json!({"out_order_no": format!("o{i}")}))
            .unwrap();
    }
    let after: serde_json::Value = fresh.chain("stats").get(json!({})).unwrap().json().unwrap();
    // The `before` call opened this client's one connection; the 1,000 calls must add none.
    println!(
        "1,000 sequential calls: {} new connection(s) beyond the client's first",
        after["connections"].as_u64().unwrap() - before["connections"].as_u64().unwrap()
    );
    let _ = child.kill();
    let _ = child.wait();
}
