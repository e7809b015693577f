//! The client against a loopback platform: the six forms of the seed operations, verification
//! of every answer, errors, blocking inside async, concurrency and connection reuse.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{echo, rt, Keys, Reply, Server, PUB_KEY_ID};
use serde_json::{json, Value};
use wechatpay_chain::{Chain, Error, Response};

/// The seed operations: method, the pure-chain segments, the template, args, expected target.
fn seeds() -> Vec<(
    &'static str,
    Vec<&'static str>,
    &'static str,
    Value,
    &'static str,
)> {
    vec![
        (
            "POST",
            vec![
                "v3",
                "discountCard",
                "cards",
                "_out_card_code_",
                "addUserRecords",
            ],
            "v3/discount-card/cards/{out_card_code}/add-user-records",
            json!({"out_card_code": "6e8369071cd942c0476613f9d1ce9ca3", "json": {
                "card_template_id": "87789b2f25177433bcbf407e8e471f95",
                "objective_completion_records": [{"objective_completion_serial_no": "578354545", "objective_id": "123456",
                    "completion_time": "2015-05-20T13:29:35.120+08:00", "completion_type": "INCREASE",
                    "description": "购买商品", "completion_count": 1, "remark": "特价商品"}]}}),
            "/v3/discount-card/cards/6e8369071cd942c0476613f9d1ce9ca3/add-user-records",
        ),
        (
            "PATCH",
            vec!["v3", "discountCard", "orders", "_out_order_no_"],
            "v3/discount-card/orders/{out_order_no}",
            json!({"out_order_no": "233bcbf407e87789b8e471f251774f95", "json": {
                "appid": "wxd678efh567hg6787", "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                "card_template_id": "87789b2f25177433bcbf407e8e471f95"}}),
            "/v3/discount-card/orders/233bcbf407e87789b8e471f251774f95",
        ),
        (
            "GET",
            vec!["v3", "discountCard", "orders", "_out_order_no_"],
            "v3/discount-card/orders/{out_order_no}",
            json!({"out_order_no": "233bcbf407e87789b8e471f251774f95"}),
            "/v3/discount-card/orders/233bcbf407e87789b8e471f251774f95",
        ),
        (
            "POST",
            vec!["v3", "brand", "partner", "cardMember", "userPoints", "sync"],
            "v3/brand/partner/card-member/user-points/sync",
            json!({"json": {"brand_id": "10000", "appid": "wx1234567890abcdef", "openid": "obLatjhnqgy2syxrXVM3MJirbkdI",
                "points_change": 10, "points_update_time": "2019-08-24T14:15:22+08:00"}}),
            "/v3/brand/partner/card-member/user-points/sync",
        ),
    ]
}

fn call(chain: &Chain, method: &str, args: Value) -> Result<Response, Error> {
    match method {
        "GET" => chain.get(args),
        "POST" => chain.post(args),
        "PATCH" => chain.patch(args),
        "PUT" => chain.put(args),
        _ => chain.delete(args),
    }
}

async fn call_async(chain: &Chain, method: &str, args: Value) -> Result<Response, Error> {
    match method {
        "GET" => chain.get_async(args).await,
        "POST" => chain.post_async(args).await,
        "PATCH" => chain.patch_async(args).await,
        "PUT" => chain.put_async(args).await,
        _ => chain.delete_async(args).await,
    }
}

fn check(server: &Server, res: &Response, method: &str, args: &Value, target: &str) {
    assert_eq!(res.status(), 200);
    let rec = server.last();
    assert_eq!(rec.method, method);
    assert_eq!(rec.target, target);
    assert!(rec.signature_ok, "request signature must verify");
    match args.get("json") {
        Some(j) => {
            // Key order is wire order.
            assert_eq!(rec.body, serde_json::to_vec(j).unwrap());
            assert_eq!(rec.headers["content-type"], "application/json");
        }
        None => assert!(rec.body.is_empty()),
    }
    let v: Value = res.json().unwrap();
    assert_eq!(v["target"], target);
}

#[test]
fn six_forms_of_every_seed_operation() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    for (method, segments, template, args, target) in seeds() {
        // pure chain
        let mut chain: &Chain = &client;
        for s in &segments {
            chain = &chain[s];
        }
        assert_eq!(chain.pathname(), template);
        let res = call(chain, method, args.clone()).unwrap();
        check(&server, &res, method, &args, target);
        // declarative
        let res = call(&client.chain(template), method, args.clone()).unwrap();
        check(&server, &res, method, &args, target);
        // index
        let res = call(&client[template], method, args.clone()).unwrap();
        check(&server, &res, method, &args, target);
        // and the same three, async
        rt().block_on(async {
            let mut chain: &Chain = &client;
            for s in &segments {
                chain = &chain[s];
            }
            let res = call_async(chain, method, args.clone()).await.unwrap();
            check(&server, &res, method, &args, target);
            let res = call_async(&client.chain(template), method, args.clone())
                .await
                .unwrap();
            check(&server, &res, method, &args, target);
            let res = call_async(&client[template], method, args.clone())
                .await
                .unwrap();
            check(&server, &res, method, &args, target);
        });
    }
    assert_eq!(server.recorded().len(), seeds().len() * 6);
}

#[test]
fn no_content_answer_is_verified_too() {
    let keys = Keys::shared();
    let server = Server::start(keys, Arc::new(|_| Reply::empty(204)));
    let client = server.client();
    let res = client["v3/discount-card/cards/{out_card_code}/add-user-records"]
        .post(json!({"out_card_code": "c1", "json": {"card_template_id": "t"}}))
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(res.body().is_empty());

    let unsigned = Server::start(
        keys,
        Arc::new(|_| Reply {
            sign_as: None,
            ..Reply::empty(204)
        }),
    );
    let e = unsigned.client().chain("v3/x").post(json!({})).unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
}

#[test]
fn forged_stale_unknown_and_unsigned_answers_are_refused() {
    let keys = Keys::shared();
    let cases: Vec<(&str, Reply)> = vec![
        (
            "tampered",
            Reply {
                tamper: true,
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
        (
            "stale",
            Reply {
                skew: -310,
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
        (
            "future",
            Reply {
                skew: 310,
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
        (
            // Signed with the RSA key, but naming the SM2 scheme: refused, not checked as RSA.
            "another scheme",
            Reply {
                headers: vec![(
                    "Wechatpay-Signature-Type".into(),
                    "WECHATPAY2-SM2-WITH-SM3".into(),
                )],
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
        (
            "unknown serial",
            Reply {
                sign_as: Some("PUB_KEY_ID_0000".into()),
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
        (
            "unsigned",
            Reply {
                sign_as: None,
                ..Reply::json(200, json!({"secret": "x"}))
            },
        ),
    ];
    for (name, reply) in cases {
        let server = Server::start(keys, Arc::new(move |_| reply.clone()));
        let e = server
            .client()
            .chain("v3/discount-card/orders/{n}")
            .get(json!({"n": "1"}))
            .unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{name}: {e}");
        assert!(
            !e.to_string().contains("secret"),
            "{name}: the unverified body must not leak: {e}"
        );
    }
    // A signature by another key under the right serial.
    let other = Keys::new();
    let server = Server::start(&other, Arc::new(|_| Reply::json(200, json!({}))));
    let client = server
        .builder()
        .platform_public_key(PUB_KEY_ID, keys.platform_public.clone())
        .build()
        .unwrap();
    assert!(matches!(
        client.chain("v3/x").get(json!({})),
        Err(Error::Verification(_))
    ));
}

#[test]
fn api_errors_carry_the_platform_code() {
    let server = Server::start(
        Keys::shared(),
        Arc::new(|_| {
            Reply::json(
                400,
                json!({"code": "PARAM_ERROR", "message": "参数错误", "detail": {"field": "out_order_no"}}),
            )
        }),
    );
    let e = server
        .client()
        .chain("v3/discount-card/orders/{n}")
        .get(json!({"n": "1"}))
        .unwrap_err();
    match &e {
        Error::Api {
            status,
            code,
            message,
            detail,
            request_id,
            ..
        } => {
            assert_eq!(*status, 400);
            assert_eq!(code, "PARAM_ERROR");
            assert_eq!(message, "参数错误");
            assert_eq!(detail.as_ref().unwrap()["field"], "out_order_no");
            assert_eq!(
                request_id.as_deref(),
                Some("08DBF3A5B906105012081702800000000")
            );
        }
        other => panic!("{other}"),
    }
    let line = e.to_string();
    assert!(
        line.contains("PARAM_ERROR") && !line.contains('\n'),
        "{line}"
    );
    assert_eq!(e.code(), Some("PARAM_ERROR"));

    let server = Server::start(
        Keys::shared(),
        Arc::new(|_| Reply {
            headers: vec![],
            ..Reply::empty(502)
        }),
    );
    let e = server.client().chain("v3/x").get(json!({})).unwrap_err();
    assert_eq!(e.status(), Some(502));
}

#[test]
fn bad_args_send_nothing() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    let t = client.chain("v3/discount-card/orders/{out_order_no}");
    for args in [
        json!({}),
        json!({"query": {"out_order_no": "1"}}),
        json!({"out_order_no": null}),
        json!({"out_order_no": {"a": 1}}),
        json!({"out_order_no": [1]}),
        json!({"out_order_no": true}),
        json!({"out_order_no": "1", "query": 5}),
        json!({"out_order_no": "1", "headers": {"X": {"a": 1}}}),
        json!({"out_order_no": "1", "headers": {"Bad Name": "1"}}),
        json!({"out_order_no": "1", "headers": {"X": "a\r\nInjected: 1"}}),
        json!({"out_order_no": "1", "json": {}, "body": "x"}),
        json!({"out_order_no": "1", "base_uri": "ftp://x/"}),
        json!({"out_order_no": "1", "timeout": -1}),
        json!([1, 2]),
    ] {
        let e = t.get(args.clone()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{args}: {e}");
    }
    assert!(server.recorded().is_empty());
}

#[test]
fn request_options_reach_the_wire() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    client
        .chain("v3/vehicle/parking/services/find")
        .get(json!({"query": {"plate_number": "粤B12345", "plate_color": "BLUE", "n": 1, "b": true}, "headers": {"Wechatpay-Serial": "PUB_KEY_ID_X", "X-N": 3}}))
        .unwrap();
    let rec = server.last();
    assert_eq!(
        rec.target,
        "/v3/vehicle/parking/services/find?plate_number=%E7%B2%A4B12345&plate_color=BLUE&n=1&b=1"
    );
    assert_eq!(rec.headers["wechatpay-serial"], "PUB_KEY_ID_X");
    assert_eq!(rec.headers["x-n"], "3");
    assert!(rec.headers["accept"]
        .to_str()
        .unwrap()
        .starts_with("application/json, text/plain"));
    assert!(rec.headers["user-agent"]
        .to_str()
        .unwrap()
        .starts_with("wechatpay-chain/"));
    assert!(rec.signature_ok);

    // {+name} keeps reserved characters; a raw body is sent as is.
    client
        .chain("v3/a/{+rest}")
        .post(json!({"rest": "b/c", "body": "raw text"}))
        .unwrap();
    let rec = server.last();
    assert_eq!(rec.target, "/v3/a/b/c");
    assert_eq!(&rec.body[..], b"raw text");
    assert!(rec.signature_ok);

    // A per-call base_uri keeps its path prefix.
    let base = format!("http://{}/global/", server.addr);
    client
        .chain("v3/customs/orders")
        .get(json!({"base_uri": base, "query": {"a": "b"}}))
        .unwrap();
    assert_eq!(server.last().target, "/global/v3/customs/orders?a=b");
    assert!(server.last().signature_ok);
}

#[test]
fn blocking_calls_work_inside_a_runtime() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    // Inside a multi-thread runtime's task.
    let c = client.clone();
    let r = rt().block_on(async move {
        tokio::spawn(async move { c.chain("v3/a").get(json!({})).map(|r| r.status()) })
            .await
            .unwrap()
    });
    assert_eq!(r.unwrap(), 200);
    // Inside a current-thread runtime, where blocking the only thread must not deadlock.
    let c = client.clone();
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = current.block_on(async move { c.chain("v3/b").get(json!({})).map(|r| r.status()) });
    assert_eq!(r.unwrap(), 200);
    // And an async call on that other runtime.
    let r = current.block_on(client.chain("v3/c").get_async(json!({})));
    assert_eq!(r.unwrap().status(), 200);
    assert_eq!(server.recorded().len(), 3);
}

#[test]
fn five_hundred_concurrent_async_calls_through_one_client() {
    let server = Server::start(Keys::shared(), echo());
    // 500 calls share two cores with the server's 500 signatures: what is tested is that each
    // gets its own answer, not how soon (the tests' 5 s made it fail on a busy machine)
    let client = server
        .builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let results = rt().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..500 {
            let c = client.clone();
            tasks.push(tokio::spawn(async move {
                c["v3/discount-card/orders/{out_order_no}"]
                    .get_async(json!({"out_order_no": format!("o{i}")}))
                    .await
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    for (i, r) in results.iter().enumerate() {
        let v: Value = r.as_ref().unwrap().json().unwrap();
        assert_eq!(v["target"], format!("/v3/discount-card/orders/o{i}"));
    }
    let recorded = server.recorded();
    assert_eq!(recorded.len(), 500);
    assert!(recorded.iter().all(|r| r.signature_ok));
    let nonces: std::collections::HashSet<_> = recorded.iter().map(|r| r.nonce.clone()).collect();
    assert_eq!(nonces.len(), 500, "every request has its own nonce");
}

#[test]
fn sequential_calls_reuse_one_connection() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    for i in 0..50 {
        client.chain("v3/a/{i}").get(json!({"i": i})).unwrap();
        let clone = client.clone();
        clone.chain("v3/b").post(json!({"json": {"i": i}})).unwrap();
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn timeouts_and_hangups_are_their_own_errors() {
    let keys = Keys::shared();
    let slow = Server::start(
        keys,
        Arc::new(|_| Reply {
            delay: Some(Duration::from_secs(3)),
            ..Reply::json(200, json!({}))
        }),
    );
    let client = slow
        .builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let t0 = Instant::now();
    let e = client.chain("v3/a").get(json!({})).unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));
    // Per call, in the args.
    let e = slow
        .client()
        .chain("v3/a")
        .get(json!({"timeout": 0.2}))
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");

    // Nothing listening.
    let addr = common::closed_port();
    let client = slow
        .builder()
        .base_uri(format!("http://{addr}/"))
        .build()
        .unwrap();
    let e = client.chain("v3/a").get(json!({})).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Transport {
                answered: false,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn oversized_answers_are_refused() {
    let server = Server::start(
        Keys::shared(),
        Arc::new(|_| Reply::json(200, json!({"pad": "x".repeat(10_000)}))),
    );
    let client = server.builder().body_limit(1000).build().unwrap();
    let e = client.chain("v3/a").get(json!({})).unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { limit: 1000, .. }), "{e}");
}

#[test]
fn client_is_send_sync_clone_and_keeps_secrets() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<wechatpay_chain::Client>();
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    let dbg = format!("{client:?}");
    assert!(
        dbg.contains("redacted") && !dbg.contains("PRIVATE KEY"),
        "{dbg}"
    );
    assert!(!dbg.contains(&Keys::shared().merchant_pem[40..80]));
}

/// Without the catalogue nothing can be checked: `"validate": false` is accepted, a call asking
/// for a check is refused before sending.
#[cfg(not(feature = "catalog"))]
#[test]
fn asking_for_validation_without_the_catalogue_is_refused() {
    let s = Server::start(Keys::shared(), echo());
    let client = s.client();
    for ask in [json!(true), json!("strict"), json!("warn")] {
        let e = client
            .chain("v3/x")
            .post(json!({"validate": ask}))
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidArgument(_)) && e.to_string().contains("feature `catalog`"),
            "{e}"
        );
    }
    assert_eq!(s.recorded().len(), 0);
    client
        .chain("v3/x")
        .post(json!({"validate": false}))
        .unwrap();
    assert_eq!(s.recorded().len(), 1);
}
