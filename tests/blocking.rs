//! A program that only makes blocking calls drives the I/O on its calling threads: no I/O
//! thread is started, and sequential calls reuse one connection. The first async call starts
//! the driver thread, after which blocking calls still work through it. One test, so that
//! nothing else in this binary starts the driver first.

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
fn blocking_calls_drive_the_io_themselves_until_an_async_call_needs_a_driver() {
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

    // Several threads at once share the runtime (one drives, the others are driven).
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
    assert_eq!(io_threads(), 0);
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
