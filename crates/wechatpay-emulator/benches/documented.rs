//! Throughput of a documented answer (`GET v3/merchant-service/complaints-v2/{complaint_id}`:
//! the signature checked, the path found in the catalogue, the request validated, 21 fields
//! generated, the answer signed with RSA-2048). The emulator runs on a thread and runtime of
//! its own (one core); the client drives it with 64 calls in flight.
//!
//! ```sh
//! cargo bench -p wechatpay-emulator --bench documented            # 20,000 calls
//! DOCUMENTED_CALLS=50000 cargo bench -p wechatpay-emulator --bench documented
//! ```
//!
//! It prints the wall-clock rate (client and emulator share the machine's cores) and, on Linux,
//! the rate per second of the emulator thread's own CPU time: the figure for "one core".

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use wechatpay_emulator::{Emulator, EmulatorConfig};

const IN_FLIGHT: usize = 64;

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
    let cpu0 = thread_cpu("wechatpay-emula");
    let t0 = Instant::now();
    let n = run(calls);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = thread_cpu("wechatpay-emula").zip(cpu0).map(|(a, b)| a - b);
    println!(
        "documented answers: {n} calls in {wall:.2} s: {:.0} requests/s wall clock",
        n as f64 / wall
    );
    match cpu {
        Some(c) if c > 0.0 => println!(
            "emulator thread: {c:.2} s of CPU: {:.0} requests/s per core",
            n as f64 / c
        ),
        _ => println!("emulator thread CPU time: not available on this system"),
    }
}
