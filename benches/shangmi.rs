//! The 国密 scheme's cost, reported in docs/performance.md:
//!
//! - `floor`: one `Sm2::sign` + one `Sm2::verify` (SM3, user id 1234567812345678) of a request's
//!   message, process CPU per pair, against OpenSSL's own figure (`openssl speed sm2`, run here);
//! - `cpu per call`: the client's CPU (user + system, every thread of this process) per SM2-signed
//!   and SM2-verified call against a loopback platform in a *separate process* (this binary
//!   re-executed), and the client's share on top of the floor.
//!
//! `cargo bench --features shangmi --bench shangmi`. Rounds interleave the floor and the calls
//! so that load from elsewhere on a shared machine weighs on both alike; medians of rounds.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use wechatpay_chain::crypto::Sm2;
use wechatpay_chain::{formatter, Builder, Scheme};

const PUB_KEY_ID: &str = "PUB_KEY_ID_0114232134912410000000000000";
const SERVE: &str = "WECHATPAY_BENCH_SM2_SERVE";

fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Server mode: answers every request with a small JSON body signed with SM2.
fn serve(platform_pem: String) {
    let key = Sm2::from_private(&platform_pem).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        std::io::stdout().flush().unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let key = key.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let key = key.clone();
                        async move {
                            let _ = req.into_body().collect().await;
                            let body = r#"{"out_order_no":"1","state":"CREATED"}"#;
                            let ts = formatter::timestamp().to_string();
                            let nonce = formatter::nonce(32);
                            let sig =
                                Sm2::sign(formatter::response(&ts, &nonce, body.as_bytes()), &key)
                                    .unwrap();
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("Content-Type", "application/json")
                                    .header("Wechatpay-Timestamp", ts)
                                    .header("Wechatpay-Nonce", nonce)
                                    .header("Wechatpay-Serial", PUB_KEY_ID)
                                    .header("Wechatpay-Signature", sig)
                                    .header("Wechatpay-Signature-Type", "WECHATPAY2-SM2-WITH-SM3")
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

/// OpenSSL's SM2 sign and verify, per operation, from `openssl speed sm2`.
fn openssl_speed() -> Option<(Duration, Duration)> {
    let out = Command::new("openssl")
        .args(["speed", "-seconds", "2", "sm2"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("SM2"))?;
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches('s').parse().ok())
        .collect();
    // "256 bits SM2 (CurveSM2)   0.0003s   0.0003s   2969.7   3294.9": the last two are per second.
    let (signs, verifies) = (nums[nums.len() - 2], nums[nums.len() - 1]);
    Some((
        Duration::from_secs_f64(1.0 / signs),
        Duration::from_secs_f64(1.0 / verifies),
    ))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if let Ok(pem) = std::env::var(SERVE) {
        return serve(pem);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let merchant = Sm2::generate().unwrap();
    let merchant_public = merchant.public_key().unwrap();
    let platform = Sm2::generate().unwrap();
    let platform_pem =
        String::from_utf8(platform.as_openssl().private_key_to_pem_pkcs8().unwrap()).unwrap();
    let platform_public = platform.public_key().unwrap();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(SERVE, &platform_pem)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut addr)
        .unwrap();
    let client = Builder::new()
        .scheme(Scheme::Sm2)
        .mchid("1900000001")
        .serial("5157F09EFDC096DE15EBE81A47057A7232F1B8E1")
        .private_key(merchant.clone())
        .platform_public_key(PUB_KEY_ID, platform_public.clone())
        .base_uri(format!("http://{}/", addr.trim()))
        .build()
        .unwrap();
    let chain = client.chain("v3/marketing/partnerships/{out_order_no}");
    let args = json!({"out_order_no": "1"});
    // What a call signs and verifies, about: the request's and the answer's messages.
    let sample = formatter::request(
        "GET",
        "/v3/marketing/partnerships/1",
        "1700000000",
        "NONCENONCENONCENONCENONCENONCE12",
        b"",
    );
    let answer = formatter::response(
        "1700000000",
        "NONCENONCENONCENONCENONCENONCE12",
        br#"{"out_order_no":"1","state":"CREATED"}"#,
    );
    let answer_sig = Sm2::sign(&answer, &platform).unwrap();
    for _ in 0..20 {
        chain.get(args.clone()).unwrap();
    }

    let (rounds, n) = (15u32, 40u32);
    let (mut floors, mut calls, mut signs, mut verifies) = (vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let t = cpu_time();
        for _ in 0..n {
            std::hint::black_box(Sm2::sign(&sample, &merchant).unwrap());
        }
        let s = cpu_time() - t;
        let t = cpu_time();
        for _ in 0..n {
            assert!(Sm2::verify(&answer, &answer_sig, &platform_public));
        }
        let v = cpu_time() - t;
        signs.push(s / n);
        verifies.push(v / n);
        floors.push((s + v) / n);
        let t = cpu_time();
        for _ in 0..n {
            chain.get(args.clone()).unwrap();
        }
        calls.push((cpu_time() - t) / n);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(Sm2::verify(
        &sample,
        &Sm2::sign(&sample, &merchant).unwrap(),
        &merchant_public
    ));

    let (floor, call) = (median(floors), median(calls));
    println!("SM2 (RustCrypto sm2, through wechatpay_chain::crypto::Sm2), medians of {rounds} rounds of {n}:");
    println!(
        "  sign {:?} + verify {:?} = floor {floor:?} per call",
        median(signs),
        median(verifies)
    );
    match openssl_speed() {
        Some((s, v)) => println!(
            "  openssl speed sm2: sign {s:?} + verify {v:?} = {:?}; floor / openssl = {:.2}",
            s + v,
            floor.as_secs_f64() / (s + v).as_secs_f64()
        ),
        None => println!("  openssl speed sm2: not available"),
    }
    println!(
        "  client cpu per SM2 call {call:?} = {:.2} x floor; the client's own share {:?}",
        call.as_secs_f64() / floor.as_secs_f64(),
        call.saturating_sub(floor)
    );
}
