//! The toolkit against loopback servers: media uploads checked by the platform side (signature
//! over meta, sha256 of the file), webhooks received by a merchant server, the automatic
//! `Wechatpay-Serial` of encrypted fields, and bill and statement downloads.

mod common;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::upload::{multipart, upload_platform};
use common::{echo, rt, Keys, Recorded, Reply, Server, MCHID, PUB_KEY_ID};
use http_body_util::{BodyExt, Full, Limited};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use wechatpay_chain::crypto::AesGcm;
use wechatpay_chain::download::{Bill, BillList};
use wechatpay_chain::notify::{Notifier, Refusal};
use wechatpay_chain::util::media::Media;
use wechatpay_chain::{formatter, Error, Rsa};

// ---------------------------------------------------------------------------------------------
// Uploads

#[test]
fn uploads_are_signed_over_meta_on_every_upload_endpoint() {
    let server = upload_platform();
    let client = server.client();
    let image = b"\x89PNG\r\n\x1a\nnot really an image, but bytes \x00\xff".to_vec();
    let media = Media::new("logo.png", image.clone()).unwrap();
    for path in [
        "v3/merchant/media/upload",
        "v3/merchant/media/video_upload",
        "v3/marketing/favor/media/image-upload",
        "v3/merchant-service/images/upload",
    ] {
        let res = client.chain(path).upload(&media, json!({})).unwrap();
        let v: Value = res.json().unwrap();
        assert_eq!(v["media_id"], format!("MEDIA-{}", media.sha256()), "{path}");
        let rec = server.last();
        assert_eq!(rec.target, format!("/{path}"));
        // The fixture's own check, over the body sent, must fail: the body is not what is signed.
        assert!(!rec.signature_ok);
        assert_eq!(multipart(&rec)["meta"].1, media.meta().as_bytes());
        assert_eq!(multipart(&rec)["file"].1, image);
    }
    // Async, through the pure chain, with extra meta and a placeholder in the path.
    let media = Media::new("cards.csv", &b"6225880137650000\n"[..])
        .unwrap()
        .with_meta(json!({"bank_type": "CITIC_CREDIT"}))
        .unwrap();
    let res = rt()
        .block_on(
            client["v3"]["marketing"]["bank"]["packages"]["_id_"]["tasks"]
                .upload_async(media.clone(), json!({"id": "1234"})),
        )
        .unwrap();
    let v: Value = res.json().unwrap();
    assert_eq!(v["meta"]["bank_type"], "CITIC_CREDIT");
    assert_eq!(
        server.last().target,
        "/v3/marketing/bank/packages/1234/tasks"
    );
}

#[test]
fn a_tampered_upload_is_refused_by_the_platform_check() {
    // The check itself must be able to fail: a meta whose sha256 lies.
    let server = upload_platform();
    let client = server.client();
    let media = Media::new("a.jpg", &b"jpeg"[..])
        .unwrap()
        .with_meta(json!({"sha256": "0".repeat(64)}))
        .unwrap();
    let e = client
        .chain("v3/merchant/media/upload")
        .upload(&media, json!({}))
        .unwrap_err();
    assert_eq!(e.code(), Some("SIGN_ERROR"));
    assert!(e.to_string().contains("sha256"), "{e}");
    // And an upload with a body of its own is refused before sending.
    let n = server.recorded().len();
    for args in [json!({"json": {}}), json!({"body": "x"})] {
        let e = client
            .chain("v3/merchant/media/upload")
            .upload(&media, args)
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    let e = client
        .chain("v2/secapi/mch/uploadmedia")
        .upload(&media, json!({}))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(server.recorded().len(), n);
}

// ---------------------------------------------------------------------------------------------
// Sensitive fields

fn decrypt_for_platform(ct: &str) -> String {
    String::from_utf8(Rsa::decrypt(ct, &Keys::shared().platform).unwrap()).unwrap()
}

#[test]
fn encrypted_fields_name_their_key_in_wechatpay_serial() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    let enc = client.encryptor().unwrap();
    assert_eq!(enc.serial(), PUB_KEY_ID);
    let name = enc.encrypt("张三").unwrap();
    let phone = enc.encrypt("13900000000").unwrap();
    client
        .chain("v3/applyment4sub/applyment/")
        .post(json!({"json": {"business_code": "X", "contact_info": {"contact_name": name, "mobile_phone": phone}}}))
        .unwrap();
    let rec = server.last();
    assert_eq!(rec.headers["wechatpay-serial"], PUB_KEY_ID);
    assert!(rec.signature_ok);
    // What the platform receives decrypts with its key.
    let sent: Value = serde_json::from_slice(&rec.body).unwrap();
    assert_eq!(
        decrypt_for_platform(sent["contact_info"]["contact_name"].as_str().unwrap()),
        "张三"
    );

    // A call without encrypted fields names the key expected all the same (public-key
    // migration); a clone of the client recognizes the fields too, also in a raw JSON body
    // and in async calls.
    client
        .chain("v3/a")
        .post(json!({"json": {"x": "y"}}))
        .unwrap();
    assert_eq!(server.last().headers["wechatpay-serial"], PUB_KEY_ID);
    let other = client.clone();
    other
        .chain("v3/b")
        .post(json!({"body": serde_json::to_string(&json!([{"user_name": name}])).unwrap()}))
        .unwrap();
    assert_eq!(server.last().headers["wechatpay-serial"], PUB_KEY_ID);
    rt().block_on(
        other
            .chain("v3/transfer/batches")
            .post_async(json!({"json": {"transfer_detail_list": [{"user_name": phone}]}})),
    )
    .unwrap();
    assert_eq!(server.last().headers["wechatpay-serial"], PUB_KEY_ID);

    // An explicit header wins.
    client
        .chain("v3/c")
        .post(json!({"json": {"n": name}, "headers": {"Wechatpay-Serial": "PUB_KEY_ID_OTHER"}}))
        .unwrap();
    assert_eq!(
        server.last().headers["wechatpay-serial"],
        "PUB_KEY_ID_OTHER"
    );

    // A ciphertext made outside the encryptor is not recognized.
    let direct = Rsa::encrypt("x", &Keys::shared().platform_public).unwrap();
    client
        .chain("v3/d")
        .post(json!({"json": {"n": direct}}))
        .unwrap();
    // (it names the key expected, the default of every call)
    assert_eq!(server.last().headers["wechatpay-serial"], PUB_KEY_ID);

    // Another client's encryptor does not leak into this one.
    let stranger = server.client();
    stranger
        .chain("v3/e")
        .post(json!({"json": {"n": name}}))
        .unwrap();
    assert_eq!(server.last().headers["wechatpay-serial"], PUB_KEY_ID);
}

#[test]
fn fields_for_two_keys_are_refused_and_keys_can_be_pinned() {
    let keys = Keys::shared();
    let server = Server::start(keys, echo());
    let cert_serial = "7A5F2B0F1C3D4E5F60718293A4B5C6D7E8F90123";
    let client = server
        .builder()
        .platform_public_key(cert_serial, keys.platform_public.clone())
        .build()
        .unwrap();
    // PUB_KEY_ID is preferred over a certificate serial.
    assert_eq!(client.encryptor().unwrap().serial(), PUB_KEY_ID);
    let pinned = client.encryptor_for(cert_serial).unwrap();
    let a = pinned.encrypt("a").unwrap();
    client
        .chain("v3/x")
        .post(json!({"json": {"a": a}}))
        .unwrap();
    assert_eq!(server.last().headers["wechatpay-serial"], cert_serial);
    let b = client.encryptor().unwrap().encrypt("b").unwrap();
    let n = server.recorded().len();
    let e = client
        .chain("v3/x")
        .post(json!({"json": {"a": a, "b": b}}))
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(server.recorded().len(), n, "nothing sent");
    assert!(client.encryptor_for("PUB_KEY_ID_NONE").is_err());
    let bare = wechatpay_chain::Builder::new().build().unwrap();
    assert!(matches!(bare.encryptor(), Err(Error::Config { .. })));
}

// ---------------------------------------------------------------------------------------------
// Webhooks

const APIV3_KEY: &str = "0123456789abcdef0123456789abcdef";

/// A merchant's notification endpoint on loopback: 204 when verified, 400 with the refusal.
struct Merchant {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<wechatpay_chain::notify::Notification>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Merchant {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Merchant {
    fn start(notifier: Notifier) -> Merchant {
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let got = received.clone();
        let task = rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (notifier, got) = (notifier.clone(), got.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (notifier, got) = (notifier.clone(), got.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = Limited::new(body, 1 << 20)
                                .collect()
                                .await
                                .map(|c| c.to_bytes())
                                .unwrap_or_default();
                            let req = http::Request::from_parts(parts, body);
                            let res = match notifier.verify_request(&req) {
                                Ok(n) => {
                                    got.lock().unwrap().push(n);
                                    hyper::Response::builder()
                                        .status(204)
                                        .body(Full::new(Bytes::new()))
                                }
                                Err(Error::Notification { kind, .. }) => hyper::Response::builder()
                                    .status(400)
                                    .body(Full::new(Bytes::from(
                                        json!({"code": "FAIL", "message": kind.to_string()})
                                            .to_string(),
                                    ))),
                                Err(e) => hyper::Response::builder()
                                    .status(500)
                                    .body(Full::new(Bytes::from(e.to_string()))),
                            };
                            Ok::<_, Infallible>(res.unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Merchant {
            addr,
            received,
            task,
        }
    }
}

/// What the platform sends: a signed notification, with knobs to spoil it.
struct Notice {
    body: Vec<u8>,
    skew: i64,
    serial: &'static str,
    tamper: bool,
}

fn notice(resource: &Value, aad: &str) -> Notice {
    let ct = AesGcm::encrypt(resource.to_string(), APIV3_KEY, "fdasflkja484w", aad).unwrap();
    Notice {
        body: serde_json::to_vec(&json!({
            "id": "EV-2018022511223320873",
            "create_time": "2015-05-20T13:29:35+08:00",
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": ct, "associated_data": "transaction", "nonce": "fdasflkja484w"}
        }))
        .unwrap(),
        skew: 0,
        serial: PUB_KEY_ID,
        tamper: false,
    }
}

/// Posts a notice to the merchant the way the platform does; returns status and body.
fn deliver(merchant: &Merchant, n: &Notice) -> (u16, String) {
    let keys = Keys::shared();
    let ts = (formatter::timestamp() + n.skew).to_string();
    let nonce = formatter::nonce(32);
    let sig = Rsa::sign(formatter::response(&ts, &nonce, &n.body), &keys.platform).unwrap();
    let mut body = n.body.clone();
    if n.tamper {
        let s = String::from_utf8(body)
            .unwrap()
            .replace("支付成功", "支付失败");
        body = s.into_bytes();
    }
    let req = hyper::Request::post(format!("http://{}/notify", merchant.addr))
        .header("Content-Type", "application/json")
        .header("Wechatpay-Timestamp", ts)
        .header("Wechatpay-Nonce", nonce)
        .header("Wechatpay-Serial", n.serial)
        .header("Wechatpay-Signature", sig)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    rt().block_on(async {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let res = client.request(req).await.unwrap();
        let status = res.status().as_u16();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}

#[test]
fn webhooks_good_tampered_stale_unknown_serial_and_bad_ciphertext() {
    let server = Server::start(Keys::shared(), echo());
    let client = server.client();
    let merchant = Merchant::start(client.notifier(APIV3_KEY).unwrap());
    let resource = json!({"mchid": MCHID, "out_trade_no": "1217752501201407033233368018",
        "trade_state": "SUCCESS", "amount": {"total": 100, "currency": "CNY"}});

    let (status, _) = deliver(&merchant, &notice(&resource, "transaction"));
    assert_eq!(status, 204);
    {
        let got = merchant.received.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].event_type, "TRANSACTION.SUCCESS");
        assert_eq!(got[0].summary, "支付成功");
        assert_eq!(got[0].resource, resource);
        #[derive(serde::Deserialize)]
        struct Tx {
            out_trade_no: String,
            trade_state: String,
        }
        let tx: Tx = got[0].resource_as().unwrap();
        assert_eq!(tx.out_trade_no, "1217752501201407033233368018");
        assert_eq!(tx.trade_state, "SUCCESS");
    }

    let refused = |n: Notice, kind: Refusal| {
        let (status, body) = deliver(&merchant, &n);
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["message"], kind.to_string());
    };
    refused(
        Notice {
            tamper: true,
            ..notice(&resource, "transaction")
        },
        Refusal::BadSignature,
    );
    refused(
        Notice {
            skew: -600,
            ..notice(&resource, "transaction")
        },
        Refusal::Stale,
    );
    refused(
        Notice {
            serial: "PUB_KEY_ID_0000000000000000000000000000",
            ..notice(&resource, "transaction")
        },
        Refusal::UnknownSerial,
    );
    // Encrypted with other associated data than the envelope names: authentic, undecryptable.
    refused(notice(&resource, "refund"), Refusal::Decryption);
    assert_eq!(merchant.received.lock().unwrap().len(), 1);

    // The same merchant with a wrong APIv3 key cannot decrypt a good notice.
    let wrong = Merchant::start(client.notifier("fedcba9876543210fedcba9876543210").unwrap());
    let (status, body) = deliver(&wrong, &notice(&resource, "transaction"));
    assert_eq!(status, 400);
    assert!(body.contains("decryption"), "{body}");
}

// ---------------------------------------------------------------------------------------------
// Downloads

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

const BILL: &str = "交易时间,公众账号ID,商户号,微信订单号,商户订单号\n`2024-06-01 10:00:00,`wx8888888888888888,`1900000001,`4200000001202406010000000001,`o1\n总交易单数,应结订单总金额\n`1,`1.00\n";

/// A platform that answers tradebill with a download_url on the real host (the client must
/// call its own base instead) and serves the file unsigned, gzip when asked.
fn bill_platform(hash_value: String) -> Server {
    Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| {
            let path = r.target.split('?').next().unwrap_or_default();
            match path {
                "/v3/bill/tradebill" => {
                    let gz = r.target.contains("tar_type=GZIP");
                    Reply::json(
                        200,
                        json!({"hash_type": "SHA1", "hash_value": hash_value,
                        "download_url": format!("https://api.mch.weixin.qq.com/v3/billdownload/file?token=tok{}", if gz { "GZ" } else { "" })}),
                    )
                }
                "/v3/billdownload/file" if r.signature_ok => {
                    let body = if r.target.ends_with("tokGZ") {
                        gzip(BILL.as_bytes())
                    } else {
                        BILL.as_bytes().to_vec()
                    };
                    Reply {
                        body,
                        headers: vec![("Content-Type".into(), "application/x-gzip".into())],
                        sign_as: None,
                        ..Reply::empty(200)
                    }
                }
                _ => Reply::json(401, json!({"code": "SIGN_ERROR", "message": r.target})),
            }
        }),
    )
}

#[test]
fn bill_downloads_check_their_digest() {
    let good = wechatpay_chain::crypto::hash::sha1_hex(BILL);
    let server = bill_platform(good.clone());
    let client = server.client();
    for tar in [
        json!({"bill_date": "2024-06-01"}),
        json!({"bill_date": "2024-06-01", "tar_type": "GZIP"}),
    ] {
        let bill: Bill = client
            .chain("v3/bill/tradebill")
            .get(json!({"query": tar}))
            .unwrap()
            .json()
            .unwrap();
        let mut out = Vec::new();
        let done = client
            .download_bill(&bill, json!({"timeout": 10}), &mut out)
            .unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), BILL);
        assert_eq!(done.digest.as_deref(), Some(good.as_str()));
        assert_eq!(done.gzip, tar.get("tar_type").is_some());
        let rec = server.last();
        assert!(rec.target.starts_with("/v3/billdownload/file?token=tok"));
        assert!(rec.signature_ok, "the download is signed");
    }
    // Async, to a tokio writer.
    let bill: Bill = client
        .chain("v3/bill/tradebill")
        .get(json!({"query": {"bill_date": "2024-06-01", "tar_type": "GZIP"}}))
        .unwrap()
        .json()
        .unwrap();
    let mut out: Vec<u8> = Vec::new();
    let done = rt()
        .block_on(client.download_bill_async(&bill, json!({}), &mut out))
        .unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), BILL);
    assert_eq!(done.bytes, BILL.len() as u64);
    assert!(done.gzip);
}

#[test]
fn a_bill_with_a_bad_digest_is_an_error() {
    let server = bill_platform("79bb0f45fc4c42234a918000b2668d689e2bde04".into());
    let client = server.client();
    let bill: Bill = client
        .chain("v3/bill/tradebill")
        .get(json!({"query": {"bill_date": "2024-06-01", "tar_type": "GZIP"}}))
        .unwrap()
        .json()
        .unwrap();
    let e = client
        .download_bill(&bill, json!({}), Vec::new())
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(e.to_string().contains("79bb0f45"), "{e}");
    let e = rt()
        .block_on(client.download_bill_async(&bill, json!({}), tokio::io::sink()))
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    // An unknown hash_type is refused before anything is fetched.
    let n = server.recorded().len();
    let odd = Bill::new(bill.download_url.clone(), "MD5", bill.hash_value.clone());
    assert!(client.download_bill(&odd, json!({}), Vec::new()).is_err());
    assert_eq!(server.recorded().len(), n);
}

/// One encrypted part of a sub-merchant fund-flow bill, as the platform makes it: the (maybe
/// gzipped) part under a fresh AES-256-GCM key, the key RSA-OAEP encrypted for the merchant.
struct EncryptedPart {
    listing: Value,
    file: Vec<u8>,
}

fn encrypted_part(
    seq: u32,
    part: &str,
    gz: bool,
    for_key: &wechatpay_chain::PublicKey,
) -> EncryptedPart {
    use base64::Engine;
    let key = formatter::nonce(32);
    let nonce = formatter::nonce(12);
    let plain = if gz {
        gzip(part.as_bytes())
    } else {
        part.as_bytes().to_vec()
    };
    let file = base64::engine::general_purpose::STANDARD
        .decode(AesGcm::encrypt(&plain, &key, &nonce, "").unwrap())
        .unwrap();
    EncryptedPart {
        listing: json!({
            "bill_sequence": seq,
            "hash_type": "SHA1",
            "hash_value": wechatpay_chain::crypto::hash::sha1_hex(part),
            "download_url": format!("https://api.mch.weixin.qq.com/v3/billdownload/file?token=part{seq}"),
            "encrypt_key": Rsa::encrypt(&key, for_key).unwrap(),
            "nonce": nonce,
        }),
        file,
    }
}

/// A platform answering sub-merchant-fundflowbill with `parts` (listed in the given order) and
/// serving each part's file at `token=part{seq}`, unsigned.
fn parts_platform(parts: Vec<EncryptedPart>) -> Server {
    let list: Vec<Value> = parts.iter().map(|p| p.listing.clone()).collect();
    let files: HashMap<String, Vec<u8>> = parts
        .into_iter()
        .map(|p| (format!("token=part{}", p.listing["bill_sequence"]), p.file))
        .collect();
    Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| {
            let (path, query) = r.target.split_once('?').unwrap_or((&r.target, ""));
            match (path, files.get(query)) {
                ("/v3/bill/sub-merchant-fundflowbill", _) => Reply::json(
                    200,
                    json!({"download_bill_count": list.len(), "download_bill_list": list}),
                ),
                ("/v3/billdownload/file", Some(file)) if r.signature_ok => Reply {
                    body: file.clone(),
                    headers: vec![("Content-Type".into(), "application/octet-stream".into())],
                    sign_as: None,
                    ..Reply::empty(200)
                },
                _ => Reply::json(
                    404,
                    json!({"code": "RESOURCE_NOT_EXISTS", "message": r.target}),
                ),
            }
        }),
    )
}

#[test]
fn encrypted_sub_merchant_bill_parts_are_decrypted_checked_and_joined_in_order() {
    let keys = Keys::shared();
    let (head, tail) = BILL.split_at(BILL.find('\n').unwrap() + 1);
    // Listed out of order; part 2 gzipped inside its encryption.
    let server = parts_platform(vec![
        encrypted_part(2, tail, true, &keys.merchant_public),
        encrypted_part(1, head, false, &keys.merchant_public),
    ]);
    let client = server.client();
    let query = json!({"query": {"sub_mchid": "1900000109", "bill_date": "2024-06-01",
        "account_type": "BASIC", "algorithm": "AEAD_AES_256_GCM"}});
    let list: BillList = client
        .chain("v3/bill/sub-merchant-fundflowbill")
        .get(query.clone())
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list.in_order().unwrap()[0].bill_sequence, Some(1));
    let mut out = Vec::new();
    let done = client.download_bills(&list, json!({}), &mut out).unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), BILL);
    assert_eq!(done.len(), 2);
    assert!(!done[0].gzip && done[1].gzip);
    assert_eq!(done[1].bytes, tail.len() as u64);
    // One part alone, async.
    let mut out: Vec<u8> = Vec::new();
    rt().block_on(client.download_bill_async(list.in_order().unwrap()[1], json!({}), &mut out))
        .unwrap();
    assert_eq!(out, tail.as_bytes());
}

/// A client of `server` and the bill list it answers.
fn listed(server: &Server) -> (wechatpay_chain::Client, BillList) {
    let client = server.client();
    let list = client
        .chain("v3/bill/sub-merchant-fundflowbill")
        .get(json!({}))
        .unwrap()
        .json()
        .unwrap();
    (client, list)
}

#[test]
fn a_damaged_or_foreign_encrypted_part_is_refused() {
    let keys = Keys::shared();
    let mut damaged = encrypted_part(1, BILL, true, &keys.merchant_public);
    let mid = damaged.file.len() / 2;
    damaged.file[mid] ^= 0x40;
    let server = parts_platform(vec![damaged]);
    let (client, list) = listed(&server);
    let e = client
        .download_bills(&list, json!({}), Vec::new())
        .unwrap_err();
    // A flipped bit inside gzip may break the gzip first; either way it is refused.
    assert!(
        matches!(e, Error::Verification(_) | Error::Decode { .. }),
        "{e}"
    );

    // A key encrypted for another merchant does not open: refused before anything is fetched.
    let other = Rsa::from_private(
        std::str::from_utf8(
            &openssl::rsa::Rsa::generate(2048)
                .unwrap()
                .private_key_to_pem()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let server = parts_platform(vec![encrypted_part(
        1,
        BILL,
        false,
        &other.public_key().unwrap(),
    )]);
    let (client, list) = listed(&server);
    let n = server.recorded().len();
    let e = client
        .download_bills(&list, json!({}), Vec::new())
        .unwrap_err();
    assert!(matches!(e, Error::Crypto { .. }), "{e}");
    assert!(!e
        .to_string()
        .contains(&list.download_bill_list[0].encrypt_key.clone().unwrap()));
    assert_eq!(server.recorded().len(), n, "nothing fetched");

    // The right key with the wrong nonce decrypts to garbage that does not authenticate.
    let part = encrypted_part(1, BILL, false, &keys.merchant_public);
    let mut listing = part.listing.clone();
    listing["nonce"] = json!("not-the-nonce");
    let server = parts_platform(vec![EncryptedPart {
        listing,
        file: part.file,
    }]);
    let (client, list) = listed(&server);
    let e = client
        .download_bills(&list, json!({}), Vec::new())
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(e.to_string().contains("authenticate"), "{e}");

    // Parts that are not numbered 1..n, or half an encryption, are refused before any fetch.
    let n = server.recorded().len();
    let gap: BillList = serde_json::from_value(json!({"download_bill_list": [
        {"bill_sequence": 1, "download_url": "/v3/billdownload/file?token=a", "hash_type": "SHA1", "hash_value": "00"},
        {"bill_sequence": 3, "download_url": "/v3/billdownload/file?token=b", "hash_type": "SHA1", "hash_value": "00"}
    ]})).unwrap();
    assert!(matches!(
        client.download_bills(&gap, json!({}), Vec::new()),
        Err(Error::Decode { .. })
    ));
    let half = Bill::new("/v3/billdownload/file?token=a", "SHA1", "00");
    let half: Bill = serde_json::from_value(
        json!({"download_url": half.download_url, "hash_type": "SHA1",
        "hash_value": "00", "encrypt_key": "abc"}),
    )
    .unwrap();
    assert!(matches!(
        client.download_bill(&half, json!({}), Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(server.recorded().len(), n, "nothing fetched");
}

#[test]
fn statements_are_checked_by_their_sha1_before_writing() {
    let keys = Keys::shared().clone();
    let statement = b"%PDF-1.4 statement bytes".to_vec();
    let (k, st) = (keys.clone(), statement.clone());
    let server = Server::start(
        &keys,
        Arc::new(move |r: &Recorded| {
            let sha1 = wechatpay_chain::crypto::hash::sha1_hex(&st);
            let ts = formatter::timestamp().to_string();
            let signed = format!("{{\"sha1\":\"{sha1}\"}}");
            let sig = Rsa::sign(
                formatter::response(&ts, "n", signed.as_bytes()),
                &k.platform,
            )
            .unwrap();
            let mut body = st.clone();
            if r.target.contains("tamper") {
                body.push(b'!');
            }
            Reply {
                body,
                headers: vec![
                    ("Wechatpay-Timestamp".into(), ts),
                    ("Wechatpay-Nonce".into(), "n".into()),
                    ("Wechatpay-Serial".into(), PUB_KEY_ID.into()),
                    ("Wechatpay-Signature".into(), sig),
                    ("Wechatpay-Statement-Sha1".into(), sha1),
                ],
                sign_as: None,
                ..Reply::empty(200)
            }
        }),
    );
    let client = server.client();
    let mut out = Vec::new();
    let done = client
        .download_to("/v3/global/statements?date=2024-06-01", json!({}), &mut out)
        .unwrap();
    assert_eq!(out, statement);
    assert_eq!(done.bytes, statement.len() as u64);
    assert_eq!(
        server.last().target,
        "/v3/global/statements?date=2024-06-01"
    );
    assert!(server.last().signature_ok);
    let mut out = Vec::new();
    let e = client
        .download_to("v3/global/statements?date=tamper", json!({}), &mut out)
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    assert!(out.is_empty(), "nothing written from an unverified answer");
    let done = rt()
        .block_on(client.download_to_async(
            "https://api.mch.weixin.qq.com/v3/global/statements?date=2024-06-01",
            json!({}),
            tokio::io::sink(),
        ))
        .unwrap();
    assert_eq!(done.bytes, statement.len() as u64);
}

#[test]
fn bills_stream_past_the_body_limit() {
    use std::io::Write as _;
    // 3 MiB of bill (little repetition), gzip'd, against a client whose body limit is 256 KiB.
    let bill: Vec<u8> = (0..786_432u32)
        .flat_map(|i| (i.wrapping_mul(2_654_435_761)).to_le_bytes())
        .collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bill).unwrap();
    let gz = gz.finish().unwrap();
    assert!(gz.len() > 1024 * 1024);
    let sha256 = wechatpay_chain::crypto::hash::sha256_hex(&bill);
    let server = Server::start(
        Keys::shared(),
        Arc::new(move |r: &Recorded| {
            if r.target.contains("missing") {
                return Reply::json(
                    404,
                    json!({"code": "NO_STATEMENT_EXIST", "message": "账单文件不存在"}),
                );
            }
            Reply {
                body: gz.clone(),
                headers: vec![],
                sign_as: None,
                ..Reply::empty(200)
            }
        }),
    );
    let client = server.builder().body_limit(256 * 1024).build().unwrap();
    let url = "https://api.mch.weixin.qq.com/v3/billdownload/file?token=big";
    let mut out = Vec::new();
    let done = client
        .download_bill(&Bill::new(url, "SHA256", &sha256), json!({}), &mut out)
        .unwrap();
    assert_eq!(done.bytes, bill.len() as u64);
    assert!(done.gzip);
    assert!(out == bill);
    // The same through the async path.
    let mut out: Vec<u8> = Vec::new();
    rt().block_on(client.download_bill_async(
        &Bill::new(url, "SHA256", &sha256),
        json!({}),
        &mut out,
    ))
    .unwrap();
    assert!(out == bill);
    // A wrong digest is still caught at the end.
    let e = client
        .download_bill(
            &Bill::new(url, "SHA256", "00".repeat(32)),
            json!({}),
            std::io::sink(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::Verification(_)), "{e}");
    // An error answer is the platform's error, not a file.
    let e = client
        .download_bill(
            &Bill::new("/v3/billdownload/file?token=missing", "SHA1", "00"),
            json!({}),
            std::io::sink(),
        )
        .unwrap_err();
    assert_eq!(e.code(), Some("NO_STATEMENT_EXIST"));
    // An ordinary call is still bounded by the body limit.
    let e = client
        .chain("v3/billdownload/file")
        .get(json!({"query": {"token": "big"}}))
        .unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { .. }), "{e}");
}
