//! A program that makes blocking calls one at a time drives the I/O on its calling thread: no
//! I/O thread is started, and sequential calls reuse one connection. Overlapping calls or an
//! async call start the one driver thread, after which everything goes through it. One test,
//! so that nothing else in this binary starts the driver first.

mod common;

use std::sync::atomic::Ordering;

use common::{echo, Keys, Server};
use serde_json::json;

fn io_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "wechatpay-io")
        .count()
}

#[test]
fn sequential_blocking_calls_drive_the_io_themselves_until_a_driver_is_needed() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    for i in 0..200 {
        let res = client.chain("v3/a/{i}").get(json!({"i": i})).unwrap();
        assert_eq!(res.status(), 200);
    }
    assert_eq!(io_threads(), 0, "blocking calls ran on the calling thread");
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "one connection for 200 calls"
    );

    // Several threads at once: the first overlap hands the I/O to one driver thread.
    std::thread::scope(|s| {
        for t in 0..8 {
            let client = client.clone();
            s.spawn(move || {
                for k in 0..25 {
                    client
                        .chain("v3/b/{n}")
                        .post(json!({"n": t * 100 + k, "json": {"k": k}}))
                        .unwrap();
                }
            });
        }
    });
    assert!(io_threads() <= 1);
    assert_eq!(server.recorded().len(), 400);
    assert!(server.recorded().iter().all(|r| r.signature_ok));

    // The first async call starts the driver thread; everything keeps working.
    let res = common::rt()
        .block_on(client.chain("v3/c").get_async(json!({})))
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(io_threads(), 1);
    for _ in 0..20 {
        client.chain("v3/d").get(json!({})).unwrap();
    }
    assert_eq!(server.recorded().len(), 421);
}
