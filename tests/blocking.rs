//! Blocking calls made outside any runtime drive the I/O on their calling threads (each
//! concurrent one on a runtime of the crate's own), and async calls on the runtime that awaits
//! them: no I/O thread is started, and sequential calls reuse one connection. Only a blocking
//! call made inside a runtime starts the background I/O thread. One test, so that nothing else
//! in this binary starts it first.

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
fn calls_drive_the_io_on_their_own_threads_until_a_blocking_call_is_made_inside_a_runtime() {
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

    // Several threads at once: each drives its own I/O (one connection each at most).
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
    assert!(server.connections.load(Ordering::SeqCst) <= 9);
    assert_eq!(server.recorded().len(), 400);
    assert!(server.recorded().iter().all(|r| r.signature_ok));

    // An async call runs on the runtime that awaits it, with a pool of that runtime's own:
    // sequential calls in one task of a current-thread runtime reuse one connection.
    let before = server.connections.load(Ordering::SeqCst);
    let own = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    own.block_on(async {
        for _ in 0..10 {
            let res = client.chain("v3/c").get_async(json!({})).await.unwrap();
            assert_eq!(res.status(), 200);
        }
    });
    assert_eq!(io_threads(), 0);
    assert_eq!(server.connections.load(Ordering::SeqCst), before + 1);

    // A blocking call inside a runtime (a nested `block_on` would panic) parks while the
    // background I/O thread does the I/O.
    let inside = common::rt().block_on(async { client.chain("v3/d").get(json!({})) });
    assert_eq!(inside.unwrap().status(), 200);
    assert_eq!(io_threads(), 1);
    for _ in 0..20 {
        client.chain("v3/d").get(json!({})).unwrap();
    }
    assert_eq!(server.recorded().len(), 431);
}
