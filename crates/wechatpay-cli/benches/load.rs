//! Load benchmark, reported in README: 10,000 calls with 256 in flight through one `Client`
//! against the emulator running in its own process (`wechatpay serve`), then 64 threads of
//! blocking calls. Prints calls/s and client CPU per call beside the crypto floor (one RSA-2048
//! sign + one verify) measured in the same run. `cargo bench --bench load`.

#[path = "../tests/served/mod.rs"]
mod served;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use wechatpay_chain::{formatter, Rsa};

fn cpu_time() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let served = served::Served::start(env!("CARGO_BIN_EXE_wechatpay"));
    let client = served.builder().build().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let template = "v3/pay/transactions/out-trade-no/{out_trade_no}";
    let mchid = served.env["WECHATPAY_MCHID"].clone();

    let run_async = |n: usize| {
        let (client, mchid) = (client.clone(), mchid.clone());
        rt.block_on(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(256));
            let mut tasks = Vec::with_capacity(n);
            for i in 0..n {
                let permit = permits.clone().acquire_owned().await.unwrap();
                let (client, mchid) = (client.clone(), mchid.clone());
                tasks.push(tokio::spawn(async move {
                    // A query of an order that does not exist: a signed, verified 404 each time.
                    let r = client[template]
                        .get_async(json!({"out_trade_no": format!("bench{i:06}"), "query": {"mchid": mchid}}))
                        .await;
                    drop(permit);
                    matches!(r, Err(wechatpay_chain::Error::Api { status: 404, .. }))
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += t.await.unwrap() as usize;
            }
            ok
        })
    };

    run_async(1_000); // warm-up: the pool fills
    let n = 10_000;
    let (t0, c0) = (Instant::now(), cpu_time());
    let ok = run_async(n);
    let (wall, cpu) = (t0.elapsed(), cpu_time() - c0);
    assert_eq!(ok, n, "every call accounted for");

    let threads = 64;
    let per = 50;
    let (t1, c1) = (Instant::now(), cpu_time());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (client, mchid) = (client.clone(), mchid.clone());
            s.spawn(move || {
                for k in 0..per {
                    let r = client
                        .chain(template)
                        .get(json!({"out_trade_no": format!("blk{t:03}{k:04}"), "query": {"mchid": mchid}}));
                    assert!(matches!(r, Err(wechatpay_chain::Error::Api { status: 404, .. })));
                }
            });
        }
    });
    let (bwall, bcpu) = (t1.elapsed(), cpu_time() - c1);

    // The crypto floor, in the same run.
    let key =
        Rsa::from_private(&format!("file://{}", served.env["WECHATPAY_PRIVATE_KEY"])).unwrap();
    let public = key.public_key().unwrap();
    let sample = Rsa::sign(b"1700000000\nNONCE\n{}\n", &key).unwrap();
    let m = 2_000u32;
    let c2 = cpu_time();
    for i in 0..m {
        std::hint::black_box(
            Rsa::sign(
                formatter::request("GET", &format!("/v3/x/{i}"), "1700000000", "NONCE", b""),
                &key,
            )
            .unwrap(),
        );
        assert!(Rsa::verify(b"1700000000\nNONCE\n{}\n", &sample, &public));
    }
    let floor = (cpu_time() - c2) / m;

    let per_call = cpu / n as u32;
    println!(
        "async, 256 in flight: {n} calls in {:.2?}: {:.0} calls/s; client CPU per call {:?} = {:.2} x crypto floor {:?}",
        wall,
        n as f64 / wall.as_secs_f64(),
        per_call,
        per_call.as_secs_f64() / floor.as_secs_f64(),
        floor
    );
    let bper = bcpu / (threads * per) as u32;
    println!(
        "blocking, {threads} threads: {} calls in {:.2?}: {:.0} calls/s; client CPU per call {:?} = {:.2} x crypto floor",
        threads * per,
        bwall,
        (threads * per) as f64 / bwall.as_secs_f64(),
        bper,
        bper.as_secs_f64() / floor.as_secs_f64()
    );
}
