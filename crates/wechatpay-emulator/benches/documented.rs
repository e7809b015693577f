//! Throughput of a documented answer (`GET v3/merchant-service/complaints-v2/{complaint_id}`:
//! the signature checked, the path found in the catalogue, the request validated, 21 fields
//! generated, the answer signed with RSA-2048). The emulator runs on a thread of its own with a
//! current-thread runtime (`Emulator::start`): every request it serves is parsed, checked,
//! answered and signed on that one thread, so its CPU time is the emulator's use of one core.
//! The client drives it with 64 calls in flight from a runtime of its own.
//!
//! ```sh
//! cargo bench -p wechatpay-emulator --bench documented            # 3 runs of 20,000 calls
//! DOCUMENTED_CALLS=50000 DOCUMENTED_RUNS=5 cargo bench -p wechatpay-emulator --bench documented
//! ```
//!
//! For each run it prints the wall-clock rate (client and emulator share the machine's cores,
//! so this depends on the client and on other load) and, on Linux, the rate per second of the
//! emulator thread's own CPU time: the figure for "one core", compared with the target of
//! 2,000 requests/s. Then the median and the spread of the runs. `wechatpay serve` is the same
//! emulator (on a runtime of two worker threads).

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use wechatpay_emulator::{Emulator, EmulatorConfig};

const IN_FLIGHT: usize = 64;

/// The issue's figure: a documented answer at 2,000 requests/s on one core.
const TARGET: usize = 2_000;

/// CPU seconds (user + system) of this process's thread named `name`, from /proc.
fn thread_cpu(name: &str) -> Option<f64> {
    let ticks = 100.0; // USER_HZ on Linux
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
        // fields after the `(comm)`: state is the 3rd field, utime the 14th, stime the 15th
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = f.get(11)?.parse().ok()?;
        let stime: f64 = f.get(12)?.parse().ok()?;
        return Some((utime + stime) / ticks);
    }
    None
}

fn main() {
    let calls: usize = std::env::var("DOCUMENTED_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let emu = Emulator::start(EmulatorConfig::new()).expect("the emulator starts");
    let client = Arc::new(emu.builder().build().expect("a client"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let run = |n: usize| {
        let per_task = n.div_ceil(IN_FLIGHT);
        rt.block_on(async {
            let tasks: Vec<_> = (0..IN_FLIGHT)
                .map(|t| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        for i in 0..per_task {
                            let id = format!("2002018202001010800{:04}{:05}", t, i);
                            let res = client["v3/merchant-service/complaints-v2/{complaint_id}"]
                                .get_async(json!({ "complaint_id": id }))
                                .await
                                .expect("a verified answer");
                            assert_eq!(res.status(), 200);
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.expect("a task");
            }
        });
        per_task * IN_FLIGHT
    };
    run(IN_FLIGHT * 8); // warm-up: connections, the catalogue's index and the operation
    let runs: usize = std::env::var("DOCUMENTED_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(3);
    let mut per_core = Vec::new();
    for r in 1..=runs {
        let cpu0 = thread_cpu("wechatpay-emula");
        let t0 = Instant::now();
        let n = run(calls);
        let wall = t0.elapsed().as_secs_f64();
        let cpu = thread_cpu("wechatpay-emula").zip(cpu0).map(|(a, b)| a - b);
        print!(
            "run {r}/{runs}: {n} documented answers in {wall:.2} s: {:.0} requests/s wall clock",
            n as f64 / wall
        );
        match cpu {
            Some(c) if c > 0.0 => {
                let rate = n as f64 / c;
                per_core.push(rate);
                println!("; emulator thread {c:.2} s of CPU: {rate:.0} requests/s on one core");
            }
            _ => println!("; the emulator thread's CPU time is not available on this system"),
        }
    }
    if per_core.is_empty() {
        return;
    }
    per_core.sort_by(f64::total_cmp);
    let median = per_core[per_core.len() / 2];
    let (lo, hi) = (per_core[0], per_core[per_core.len() - 1]);
    println!(
        "one core: median {median:.0} requests/s (runs {lo:.0} to {hi:.0}, spread {:.1} %); \
         target {TARGET} requests/s: {}",
        (hi - lo) / median * 100.0,
        if median >= TARGET as f64 {
            "met"
        } else {
            "NOT MET"
        }
    );
}
