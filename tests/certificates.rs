//! Automatic platform certificates against a loopback platform: download at build, rotation
//! met through an unknown serial, periodic refresh, public-key mode (403), rate limiting, and
//! refusals (wrong APIv3 key, expired certificates).

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use common::{certificates_body, platform_certificate, Keys, Reply, Server};
use serde_json::json;
use wechatpay_chain::{Builder, Error, PrivateKey};

const APIV3: &str = "apiv3keyapiv3keyapiv3keyapiv3key";
const SERIAL_A: &str = "3A6A1A5A0A8E4B1F8C2C2F2A0A1B2C3D4E5F6071";
const SERIAL_B: &str = "4B7B2B6B1B9F5C208D3D303B1B2C3D4E5F607182";

static CERT_A: LazyLock<(PrivateKey, String)> =
    LazyLock::new(|| platform_certificate(SERIAL_A, -1, 365));
static CERT_B: LazyLock<(PrivateKey, String)> =
    LazyLock::new(|| platform_certificate(SERIAL_B, -1, 365));

/// A platform that lists A (and B once rotated) and signs with A (B once rotated).
struct Rotating {
    rotated: Arc<AtomicBool>,
    listings: Arc<AtomicUsize>,
    server: Server,
}

fn rotating() -> Rotating {
    let rotated = Arc::new(AtomicBool::new(false));
    let listings = Arc::new(AtomicUsize::new(0));
    let (r, l) = (rotated.clone(), listings.clone());
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |req| {
            let rot = r.load(Ordering::SeqCst);
            let (key, serial) = if rot {
                (&CERT_B.0, SERIAL_B)
            } else {
                (&CERT_A.0, SERIAL_A)
            };
            let body = if req.target.starts_with("/v3/certificates") {
                l.fetch_add(1, Ordering::SeqCst);
                let mut list = vec![(SERIAL_A, CERT_A.1.as_str())];
                if rot {
                    list.push((SERIAL_B, CERT_B.1.as_str()));
                }
                certificates_body(APIV3, &list)
            } else {
                json!({"ok": true})
            };
            Reply {
                sign_as: Some(serial.into()),
                sign_key: Some(key.clone()),
                ..Reply::json(200, body)
            }
        }),
    );
    Rotating {
        rotated,
        listings,
        server,
    }
}

fn auto_builder(server: &Server) -> Builder {
    Builder::new()
        .mchid(common::MCHID)
        .serial(common::SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(server.base())
        .timeout(Duration::from_secs(5))
        .auto_certificates(APIV3)
}

#[test]
fn downloads_at_build_and_follows_a_rotation() {
    let p = rotating();
    let client = auto_builder(&p.server).build().unwrap();
    assert_eq!(p.listings.load(Ordering::SeqCst), 1);
    assert_eq!(client.keyring().serials(), vec![SERIAL_A.to_string()]);
    client.chain("v3/a").get(json!({})).unwrap();

    p.rotated.store(true, Ordering::SeqCst);
    // Signed with B, unknown: the client refreshes, then verifies.
    client.chain("v3/a").get(json!({})).unwrap();
    assert_eq!(p.listings.load(Ordering::SeqCst), 2);
    assert_eq!(
        client.keyring().serials(),
        vec![SERIAL_A.to_string(), SERIAL_B.to_string()],
        "old key kept"
    );
    // Clones share the keyring.
    let clone = client.clone();
    clone.chain("v3/b").get(json!({})).unwrap();
    assert_eq!(p.listings.load(Ordering::SeqCst), 2);
}

#[test]
fn unknown_serials_refresh_at_most_once_a_minute() {
    let p = rotating();
    let client = auto_builder(&p.server).build().unwrap();
    p.rotated.store(true, Ordering::SeqCst);
    // Answers now signed by a key the platform does not list at all.
    let stranger = platform_certificate("0BADC0DE", -1, 10).0;
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |_| Reply {
            sign_as: Some("0BADC0DE".into()),
            sign_key: Some(stranger.clone()),
            ..Reply::json(200, json!({}))
        }),
    );
    for _ in 0..3 {
        let e = client
            .chain("v3/x")
            .get(json!({"base_uri": server.base()}))
            .unwrap_err();
        assert!(matches!(e, Error::Verification(_)), "{e}");
    }
    // One refresh at build, one for the first unknown serial, none for the next two.
    assert_eq!(p.listings.load(Ordering::SeqCst), 2);
}

#[test]
fn refreshes_periodically() {
    let p = rotating();
    let _client = auto_builder(&p.server)
        .certificate_refresh_interval(Duration::from_millis(300))
        .build()
        .unwrap();
    let t0 = Instant::now();
    while p.listings.load(Ordering::SeqCst) < 3 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(p.listings.load(Ordering::SeqCst) >= 3);
    // The refresher stops with the last client.
    drop(_client);
    std::thread::sleep(Duration::from_millis(700));
    let n = p.listings.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(p.listings.load(Ordering::SeqCst), n);
}

#[test]
fn public_key_merchants_keep_working() {
    let listings = Arc::new(AtomicUsize::new(0));
    let l = listings.clone();
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |req| {
            if req.target.starts_with("/v3/certificates") {
                l.fetch_add(1, Ordering::SeqCst);
                Reply::json(
                    403,
                    json!({"code": "NO_AUTH", "message": "商户已切换为平台公钥模式"}),
                )
            } else {
                Reply::json(200, json!({"ok": true}))
            }
        }),
    );
    let client = server.builder().auto_certificates(APIV3).build().unwrap();
    assert_eq!(listings.load(Ordering::SeqCst), 1);
    client.chain("v3/a").get(json!({})).unwrap();
    assert_eq!(client.refresh_certificates().unwrap(), 0);
    assert_eq!(
        client.keyring().serials(),
        vec![common::PUB_KEY_ID.to_string()]
    );
}

#[test]
fn wrong_key_and_expired_certificates_are_not_trusted() {
    let p = rotating();
    let client = Builder::new()
        .mchid(common::MCHID)
        .serial(common::SERIAL)
        .private_key(Keys::shared().merchant.clone())
        .base_uri(p.server.base())
        .auto_certificates("0123456789abcdef0123456789abcdef")
        .build()
        .unwrap();
    assert!(client.keyring().is_empty());
    assert!(matches!(
        client.refresh_certificates(),
        Err(Error::Crypto { .. })
    ));
    assert!(matches!(
        client.chain("v3/a").get(json!({})),
        Err(Error::Verification(_))
    ));

    let expired = platform_certificate("0E0E", -30, -1);
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |_| Reply {
            sign_as: Some(SERIAL_A.into()),
            sign_key: Some(CERT_A.0.clone()),
            ..Reply::json(
                200,
                certificates_body(APIV3, &[(SERIAL_A, &CERT_A.1), ("0E0E", &expired.1)]),
            )
        }),
    );
    let client = auto_builder(&server).build().unwrap();
    assert_eq!(client.keyring().serials(), vec![SERIAL_A.to_string()]);

    assert!(matches!(
        auto_builder(&server).auto_certificates("short").build(),
        Err(Error::Config { .. })
    ));
    let dbg = format!("{:?}", auto_builder(&server));
    assert!(!dbg.contains(APIV3), "{dbg}");
}

#[test]
fn downloading_without_merging() {
    let p = rotating();
    let client = p.server.builder().build().unwrap();
    let list = client.download_certificates(APIV3).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].serial, SERIAL_A);
    assert!(list[0].pem.contains("BEGIN CERTIFICATE"));
    assert_eq!(
        client.keyring().serials(),
        vec![common::PUB_KEY_ID.to_string()]
    );
    assert!(matches!(
        client.refresh_certificates(),
        Err(Error::Config { .. })
    ));
}
