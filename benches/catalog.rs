//! Benchmarks of the operation catalogue, reported in README:
//!
//! - `first use`: indexing the catalogue and decoding one operation, then the first concrete
//!   path (building the path tree), once per process, measured with a clock (wall and this
//!   thread's CPU) before criterion starts (criterion cannot repeat a first use);
//! - `find + validate`: the discount-card PATCH of its seed page, by template and by concrete
//!   path, after its first use;
//! - `find concrete path`, `suggest typo`.
//!
//! `cargo bench --features catalog --bench catalog`.

use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use serde_json::json;
use wechatpay_chain::catalog;

const TEMPLATE: &str = "v3/discount-card/orders/{out_order_no}";

/// This thread's CPU time: the first use measured without the other processes of a busy machine.
fn cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for the kernel to fill
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn main() {
    let (t, c) = (Instant::now(), cpu());
    let op = catalog::find("PATCH", TEMPLATE).expect("documented");
    let (first, first_cpu) = (t.elapsed(), cpu() - c);
    let (t, c) = (Instant::now(), cpu());
    let other = catalog::find("GET", "v3/pay/transactions/id/4200000001").expect("documented");
    let (tree, tree_cpu) = (t.elapsed(), cpu() - c);
    let (t, c) = (Instant::now(), cpu());
    let n = catalog::search(&["refund"]).count();
    let (search, search_cpu) = (t.elapsed(), cpu() - c);
    let (t, c) = (Instant::now(), cpu());
    let all = catalog::operations().count();
    let (every, every_cpu) = (t.elapsed(), cpu() - c);
    eprintln!(
        "search \"refund\" ({n} found, decoded): {search:?} (CPU {search_cpu:?}); decoding all {all} operations: {every:?} (CPU {every_cpu:?})"
    );
    eprintln!(
        "first use: index + decode of {} {}: {first:?} (CPU {first_cpu:?}); first concrete path (the path tree + decode of {}): {tree:?} (CPU {tree_cpu:?})",
        op.method, op.template, other.template
    );

    let args = json!({
        "out_order_no": "233bcbf407e87789b8e471f251774f95",
        "json": {
            "objectives": [{
                "objective_serial_no": "578354545",
                "objective_id": 123456,
                "performance_description": "购买商品",
                "performance_type": "INCREASE",
                "count": 1,
                "performance_time": "2015-05-20T13:29:35.120+08:00",
                "remark": "特价商品"
            }],
            "rewards": [{
                "reward_serial_no": "12345",
                "reward_id": 123456,
                "description": "优惠",
                "reward_type": "INCREASE",
                "count": 1,
                "amount": 100,
                "reward_time": "2015-05-20T13:29:35.120+08:00",
                "remark": "特价商品"
            }]
        }
    });
    assert!(op.validate(&args).is_empty());
    let concrete = "v3/discount-card/orders/233bcbf407e87789b8e471f251774f95";
    let mut body_only = args.clone();
    body_only.as_object_mut().unwrap().remove("out_order_no");

    let mut c = Criterion::default().configure_from_args();
    c.bench_function("find + validate discount-card PATCH (template)", |b| {
        b.iter(|| {
            let op = catalog::find("PATCH", black_box(TEMPLATE)).unwrap();
            black_box(op.validate(black_box(&args)))
        })
    });
    c.bench_function("find + validate discount-card PATCH (concrete path)", |b| {
        b.iter(|| {
            let op = catalog::find("PATCH", black_box(concrete)).unwrap();
            black_box(op.validate_at(concrete, black_box(&body_only)))
        })
    });
    c.bench_function("find concrete path", |b| {
        b.iter(|| {
            catalog::find(
                "GET",
                black_box("/v3/pay/transactions/out-trade-no/1217752501201407033233368018?mchid=1"),
            )
        })
    });
    c.bench_function("suggest typo", |b| {
        b.iter(|| catalog::suggest("POST", black_box("v3/pay/transaction/native")))
    });
    c.final_summary();
}
