//! Load: 10,000 calls, 256 in flight, through one `Client` against the emulator (in its own
//! process), then blocking calls from 64 threads at once. Every call is accounted for (a
//! verified answer or a typed error), and after warm-up neither connections nor memory grow.
//! Ignored by default (it takes a while): `cargo test --test load -- --ignored`; `.ci/run`
//! runs it.

mod served;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::json;
use served::{rss_kib, sockets, Served};
use wechatpay_chain::{Client, Error};

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    not_found: AtomicUsize,
}

/// A native order (200), then a query of an order that does not exist (404 ORDER_NOT_EXIST):
/// both are accounted for; anything else fails the test.
async fn one(client: &Client, mchid: &str, i: usize, tally: &Tally) {
    let r = if i % 2 == 0 {
        client["v3/pay/transactions/native"]
            .post_async(json!({"json": {
                "appid": "wxd678efh567hg6787", "mchid": mchid, "description": "load",
                "out_trade_no": format!("load{i:06}"), "notify_url": "https://127.0.0.1:1/notify",
                "amount": {"total": 1, "currency": "CNY"},
            }}))
            .await
    } else {
        client["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get_async(json!({"out_trade_no": format!("none{i:06}"), "query": {"mchid": mchid}}))
            .await
    };
    match r {
        Ok(res) if res.status() == 200 && i % 2 == 0 => {
            assert!(res.json::<serde_json::Value>().unwrap()["code_url"].is_string());
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(Error::Api {
            status: 404, code, ..
        }) if i % 2 == 1 && code == "ORDER_NOT_EXIST" => {
            tally.not_found.fetch_add(1, Ordering::Relaxed);
        }
        other => panic!("call {i}: unexpected {other:?}"),
    }
}

#[test]
#[ignore = "load test: cargo test --test load -- --ignored (run by .ci/run)"]
fn ten_thousand_calls_256_in_flight_then_64_blocking_threads() {
    let served = Served::start(env!("CARGO_BIN_EXE_wechatpay"));
    let client = served.builder().build().unwrap();
    let mchid = served.env["WECHATPAY_MCHID"].clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tally = Arc::new(Tally::default());

    let run = |range: std::ops::Range<usize>| {
        let (client, mchid, tally) = (client.clone(), mchid.clone(), tally.clone());
        rt.block_on(async move {
            // 256 in flight: each call holds a permit while it runs.
            let permits = Arc::new(tokio::sync::Semaphore::new(256));
            let mut tasks = Vec::with_capacity(range.len());
            for i in range {
                let permit = permits.clone().acquire_owned().await.unwrap();
                let (client, mchid, tally) = (client.clone(), mchid.clone(), tally.clone());
                tasks.push(tokio::spawn(async move {
                    one(&client, &mchid, i, &tally).await;
                    drop(permit);
                }));
            }
            for t in tasks {
                t.await.expect("a call panicked");
            }
        })
    };

    // First, blocking calls from 64 threads at once: each drives the I/O itself, on a
    // current-thread runtime of the library's that it takes for the call.
    let before = 0;
    std::thread::scope(|s| {
        for t in 0..64 {
            let (client, mchid, tally) = (client.clone(), mchid.clone(), tally.clone());
            s.spawn(move || {
                for k in 0..20 {
                    let i = 20_000 + t * 40 + k;
                    wechatpay_chain_block_on(&client, &mchid, i, &tally);
                }
            });
        }
    });
    let after = tally.ok.load(Ordering::SeqCst) + tally.not_found.load(Ordering::SeqCst);
    assert_eq!(after - before, 64 * 20);
    let blocking_sockets = sockets();
    println!("64 blocking threads: {blocking_sockets} sockets");
    // At most one connection per thread, and per runtime the socket of tokio's signal driver
    // (the binary's tokio has the `signal` feature: each runtime holds a copy of its receiver).
    assert!(
        blocking_sockets <= 2 * 64 + 8,
        "64 threads need at most 64 connections and 64 runtimes"
    );

    // Then async calls, 256 in flight. Warm-up: the pool fills to the concurrency it is asked for.
    run(0..1_000);
    let (rss_warm, sockets_warm) = (rss_kib(), sockets());
    run(1_000..10_000);
    let (rss_after, sockets_after) = (rss_kib(), sockets());
    assert_eq!(tally.ok.load(Ordering::SeqCst), 5_000 + 64 * 10);
    assert_eq!(tally.not_found.load(Ordering::SeqCst), 5_000 + 64 * 10);
    println!("after warm-up: {rss_warm} KiB, {sockets_warm} sockets; after 10,000 calls: {rss_after} KiB, {sockets_after} sockets");
    // Connections are bounded by what is in flight, and flat once warm: a call takes an idle
    // connection or opens its own, so at most one per call in flight (hyper-util's legacy pool,
    // which raced a new connection against one being freed, opened up to about one more). The
    // blocking phase's 64 pooled connections and the socket each of its runtimes holds for
    // tokio's signal driver are still counted. A leak is not bounded: a connection per call
    // would be thousands.
    const CAP: usize = 256 + 2 * 64 + 16;
    assert!(
        sockets_warm <= CAP,
        "{sockets_warm} sockets for 256 in flight"
    );
    assert!(
        sockets_after <= sockets_warm + 16,
        "connections grew after warm-up: {sockets_warm} -> {sockets_after} over 9,000 calls"
    );
    assert!(
        rss_after <= rss_warm + 16 * 1024,
        "memory grew: {rss_warm} KiB -> {rss_after} KiB"
    );
}

/// The blocking form of [`one`]: the same calls through `post`/`get`.
fn wechatpay_chain_block_on(client: &Client, mchid: &str, i: usize, tally: &Tally) {
    let r =
        if i % 2 == 0 {
            client.chain("v3/pay/transactions/native").post(json!({"json": {
            "appid": "wxd678efh567hg6787", "mchid": mchid, "description": "load",
            "out_trade_no": format!("load{i:06}"), "notify_url": "https://127.0.0.1:1/notify",
            "amount": {"total": 1, "currency": "CNY"},
        }}))
        } else {
            client
                .chain("v3/pay/transactions/out-trade-no/{out_trade_no}")
                .get(json!({"out_trade_no": format!("none{i:06}"), "query": {"mchid": mchid}}))
        };
    match r {
        Ok(res) if res.status() == 200 && i % 2 == 0 => {
            tally.ok.fetch_add(1, Ordering::Relaxed);
        }
        Err(Error::Api {
            status: 404, code, ..
        }) if i % 2 == 1 && code == "ORDER_NOT_EXIST" => {
            tally.not_found.fetch_add(1, Ordering::Relaxed);
        }
        other => panic!("blocking call {i}: unexpected {other:?}"),
    }
}
