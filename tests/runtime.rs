//! Where calls do their I/O: blocking calls from plain threads and from inside runtimes of
//! both flavours, async calls on any runtime (and on none), calls from many runtimes at once,
//! a user's runtime shut down while the client lives on, and clones sharing their pools. One
//! loopback server; the tests run one at a time, since some count its connections.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use common::{echo, Keys, Server};
use serde_json::json;
use wechatpay_chain::Client;

fn server() -> &'static Server {
    static SERVER: std::sync::LazyLock<Server> =
        std::sync::LazyLock::new(|| Server::start(Keys::shared(), echo()));
    &SERVER
}

/// Held by every test: some count the server's connections and the process's sockets.
fn alone() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn connections() -> usize {
    server().connections.load(Ordering::SeqCst)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn multi_thread(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// The call's future, checked to be `Send + 'static` by the compiler.
fn sendable<F: Future + Send + 'static>(f: F) -> F {
    f
}

fn call(client: &Client, n: usize) {
    let res = client.chain("v3/rt/{n}").get(json!({"n": n})).unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().unwrap()["target"],
        format!("/v3/rt/{n}")
    );
}

async fn call_async(client: &Client, n: usize) {
    let res = sendable(client.chain("v3/rt/{n}").get_async(json!({"n": n})))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<serde_json::Value>().unwrap()["target"],
        format!("/v3/rt/{n}")
    );
}

/// Client-side TCP connections to the server that are established right now, by local port
/// (from /proc/net/tcp: IPv4 loopback).
fn established() -> Vec<u16> {
    let port = server().addr.port();
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            let remote = u16::from_str_radix(f[2].rsplit(':').next()?, 16).ok()?;
            (remote == port && f[3] == "01").then_some(local)
        })
        .collect()
}

#[test]
fn blocking_calls_work_from_plain_threads() {
    let _alone = alone();
    let client = server().client();
    std::thread::scope(|s| {
        for t in 0..16 {
            let client = client.clone();
            s.spawn(move || (0..10).for_each(|i| call(&client, t * 100 + i)));
        }
    });
}

#[test]
fn blocking_calls_work_inside_a_current_thread_runtime() {
    let _alone = alone();
    let client = server().client();
    let rt = current_thread();
    // On the runtime's only thread: the I/O cannot run on this runtime, and must not deadlock.
    rt.block_on(async {
        call(&client, 1);
        call_async(&client, 2).await;
        call(&client, 3);
    });
    // In a task of it.
    let c = client.clone();
    rt.block_on(rt.spawn(async move { call(&c, 4) })).unwrap();
    // On a plain thread that entered it.
    let _entered = rt.enter();
    call(&client, 5);
}

#[test]
fn blocking_calls_work_inside_a_multi_thread_runtime() {
    let _alone = alone();
    let client = server().client();
    let rt = multi_thread(2);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let c = client.clone();
            rt.spawn(async move {
                call(&c, i);
                call_async(&c, 100 + i).await;
            })
        })
        .collect();
    rt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let c = client.clone();
    rt.block_on(rt.spawn_blocking(move || call(&c, 9))).unwrap();
}

#[test]
fn async_calls_work_on_either_flavour_without_io_or_timers_and_without_a_runtime() {
    let _alone = alone();
    let client = server().client();
    current_thread().block_on(call_async(&client, 1));
    let rt = multi_thread(2);
    let c = client.clone();
    rt.block_on(rt.spawn(async move {
        let many: Vec<_> = (0..32)
            .map(|i| {
                tokio::spawn({
                    let c = c.clone();
                    async move { call_async(&c, i).await }
                })
            })
            .collect();
        for t in many {
            t.await.unwrap();
        }
    }))
    .unwrap();
    // A runtime that cannot drive sockets or timers: the calls go to the crate's own.
    let bare = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    bare.block_on(async {
        call_async(&client, 2).await;
        call_async(&client, 3).await;
    });
    // No tokio at all: a plain executor polling the future.
    poll_to_end(call_async(&client, 4));
}

#[test]
fn a_users_runtime_shut_down_closes_its_connections_and_the_client_lives_on() {
    let _alone = alone();
    let client = server().client();
    let before = established();
    let rt = multi_thread(2);
    let c = client.clone();
    rt.block_on(async move {
        let many: Vec<_> = (0..8)
            .map(|i| {
                let c = c.clone();
                tokio::spawn(async move { call_async(&c, i).await })
            })
            .collect();
        for t in many {
            t.await.unwrap();
        }
    });
    let opened: Vec<u16> = established()
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    assert!(!opened.is_empty(), "the runtime's calls kept connections");
    drop(rt);
    let left: Vec<u16> = established()
        .into_iter()
        .filter(|p| opened.contains(p))
        .collect();
    assert!(
        left.is_empty(),
        "connections outlived their runtime: {left:?}"
    );

    // The same client from another runtime, blocking, and a runtime shut down in between.
    current_thread().block_on(call_async(&client, 10));
    call(&client, 11);
    let rt = current_thread();
    rt.block_on(call_async(&client, 12));
    rt.shutdown_background();
    current_thread().block_on(call_async(&client, 13));
    call(&client, 14);
}

#[test]
fn calls_from_many_runtimes_and_threads_at_once() {
    let _alone = alone();
    let client = server().client();
    let before = server().recorded().len();
    let shared = Arc::new(multi_thread(2));
    std::thread::scope(|s| {
        for t in 0..6 {
            let client = client.clone();
            let shared = shared.clone();
            s.spawn(move || match t % 3 {
                0 => current_thread().block_on(async {
                    for i in 0..10 {
                        call_async(&client, t * 100 + i).await;
                    }
                }),
                1 => shared.block_on(async {
                    let many: Vec<_> = (0..10)
                        .map(|i| {
                            tokio::spawn({
                                let c = client.clone();
                                async move { call_async(&c, t * 100 + i).await }
                            })
                        })
                        .collect();
                    for h in many {
                        h.await.unwrap();
                    }
                }),
                _ => (0..10).for_each(|i| call(&client, t * 100 + i)),
            });
        }
    });
    assert!(server().recorded().len() >= before + 60);
}

#[test]
fn a_client_and_its_clones_share_their_pools() {
    let _alone = alone();
    let client = server().client();
    let clone = client.clone();
    let start = connections();
    for i in 0..10 {
        call(if i % 2 == 0 { &client } else { &clone }, i);
    }
    assert_eq!(
        connections(),
        start + 1,
        "sequential blocking calls, one connection"
    );
    let rt = current_thread();
    rt.block_on(async {
        for i in 0..10 {
            call_async(if i % 2 == 0 { &client } else { &clone }, i).await;
        }
    });
    assert_eq!(
        connections(),
        start + 2,
        "sequential async calls on one runtime, one connection of that runtime's"
    );
    // A client built separately has pools of its own.
    let other = server().client();
    call(&other, 0);
    assert_eq!(connections(), start + 3);
}

#[test]
fn each_threads_sequential_blocking_calls_stay_on_one_connection_while_others_call() {
    let _alone = alone();
    // Threads calling at the same time, each its own server: a thread's runtime (and so its
    // pool's warm connection) must not be handed to another thread between its calls.
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let own = Server::start(Keys::shared(), echo());
                let client = own.client();
                for i in 0..40 {
                    let res = client.chain("v3/rt/{n}").get(json!({"n": i})).unwrap();
                    assert_eq!(res.status(), 200);
                }
                (t, own.connections.load(Ordering::SeqCst))
            })
        })
        .collect();
    for handle in threads {
        let (t, opened) = handle.join().unwrap();
        assert_eq!(
            opened, 1,
            "thread {t}: 40 sequential calls opened {opened} connections"
        );
    }
    // A thread that ended leaves its runtime, with its pool, to the next thread.
    let client = server().client();
    let start = connections();
    for i in 0..3 {
        let client = client.clone();
        std::thread::spawn(move || call(&client, i)).join().unwrap();
    }
    assert_eq!(
        connections(),
        start + 1,
        "threads one after another, one runtime"
    );
}

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor with no tokio in it.
fn poll_to_end<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// The raw bytes of a signed answer, as the common server renders it.
fn raw_answer(keys: &Keys) -> Vec<u8> {
    let res = common::render(keys, common::Reply::json(200, json!({"ok": true})));
    let mut out = format!("HTTP/1.1 {}\r\n", res.status()).into_bytes();
    for (k, v) in res.headers() {
        out.extend_from_slice(format!("{k}: {}\r\n", v.to_str().unwrap()).as_bytes());
    }
    let body = common::rt().block_on(http_body_util::BodyExt::collect(res.into_body()));
    let body = body.unwrap().to_bytes();
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

#[test]
fn a_blocking_call_after_the_server_closed_the_idle_connection_opens_a_new_one() {
    use std::io::{BufRead, BufReader, Write};
    let _alone = alone();
    let keys = Keys::shared();
    let answer = raw_answer(keys);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (close, closing) = std::sync::mpsc::channel::<()>();
    let (closed, was_closed) = std::sync::mpsc::channel::<()>();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    // Answers each connection's first request, then closes it when told (as a platform closes
    // a connection that idled past its keep-alive timeout); later connections stay open.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
            stream.write_all(&answer).unwrap();
            if n == 0 {
                closing.recv().unwrap();
                stream.shutdown(std::net::Shutdown::Both).unwrap();
                closed.send(()).unwrap();
            } else {
                std::mem::forget(stream);
            }
        }
    });
    let client = Server::builder_at(keys, addr).build().unwrap();
    std::thread::spawn(move || {
        let get = || client.chain("v3/rt/stale").get(json!({}));
        get().unwrap();
        // Closed while no call runs: the thread's runtime is not running, so nothing reads
        // the close until the next call.
        close.send(()).unwrap();
        was_closed.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1_200));
        let second = get();
        assert!(second.is_ok(), "{:?}", second.err());
    })
    .join()
    .unwrap();
    assert_eq!(accepted.load(Ordering::SeqCst), 2, "a new connection");
}
