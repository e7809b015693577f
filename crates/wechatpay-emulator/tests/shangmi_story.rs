//! The 国密 scheme end to end: the library's client in SM2 mode against the sandbox in SM2 mode
//! (`EmulatorConfig::scheme(Scheme::Sm2)`), on real loopback sockets with SM2 keys generated
//! at start. An order, its notification (SM2-signed, AEAD_SM4_GCM, opened by the library's
//! `Notifier`), a refund and its notification, the SM2 platform certificate downloaded with
//! `algorithm_type=SM2`, bills checked with SM3 (and in SM4_GCM parts); and forged, stale and scheme-mismatched SM2
//! answers refused.
#![cfg(feature = "shangmi")]

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{client, start, Receiver};
use wechatpay_chain::crypto::sm3::sm3_hex;
use wechatpay_chain::crypto::Sm2;
use wechatpay_chain::download::{Bill, BillList};
use wechatpay_chain::notify::Notification;
use wechatpay_chain::{Client, Error, Scheme};
use wechatpay_emulator::{Emulator, EmulatorConfig, Forgery, MerchantConfig, Mode};

const SM2_TYPE: &str = "WECHATPAY2-SM2-WITH-SM3";

fn hook() -> Receiver<(http::HeaderMap, Bytes)> {
    Receiver::new(|headers, body| ((headers, body), 204, Bytes::new()))
}

/// The hook's next notification: sent in the 国密 scheme, then verified and opened by the
/// library's `Notifier`.
fn next(hook: &Receiver<(http::HeaderMap, Bytes)>, c: &Client, emu: &Emulator) -> Notification {
    let (headers, body) = hook
        .next_within(Duration::from_secs(10))
        .expect("a notification within 10 s");
    assert_eq!(headers["wechatpay-signature-type"], SM2_TYPE);
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["resource"]["algorithm"], "AEAD_SM4_GCM");
    c.notifier(emu.apiv3_key())
        .unwrap()
        .verify(&headers, &body)
        .expect("an SM2 notification the library verifies and opens")
}

fn sm2_sandbox(mode: Mode) -> Emulator {
    start(EmulatorConfig::new().scheme(Scheme::Sm2).mode(mode))
}

#[test]
fn order_notification_refund_certificate_and_bill_in_the_sm2_scheme() {
    let emu = sm2_sandbox(Mode::Certificate);
    let c = client(&emu);
    let hook = hook();
    let no = "shangmi-order-0001";

    // The order: signed with SM2 by the client, checked by the sandbox, its SM2 answer verified.
    let created = c["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": "wxd678efh567hg6787", "mchid": emu.mchid(),
            "description": "国密-深圳腾大-QQ公仔", "out_trade_no": no, "notify_url": hook.url,
            "amount": {"total": 100, "currency": "CNY"}}}),
        )
        .unwrap();
    assert_eq!(created.headers()["wechatpay-signature-type"], SM2_TYPE);
    let sent = emu.requests().pop().unwrap();
    let auth = sent.headers["authorization"].to_str().unwrap();
    assert!(auth.starts_with("WECHATPAY2-SM2-WITH-SM3 mchid="), "{auth}");
    assert!(sent.verified, "{:?}", sent.refusal);

    let paid = emu.pay(no).unwrap();
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "TRANSACTION.SUCCESS");
    assert_eq!(n.resource["out_trade_no"], no);
    assert_eq!(n.resource["transaction_id"], paid["transaction_id"]);

    // The refund, settled by itself a moment later and notified the same way.
    let refund: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": no, "out_refund_no": "shangmi-refund-01",
            "notify_url": hook.url, "amount": {"refund": 30, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(refund["out_refund_no"], "shangmi-refund-01");
    let n = next(&hook, &c, &emu);
    assert_eq!(n.event_type, "REFUND.SUCCESS");
    assert_eq!(n.resource["out_refund_no"], "shangmi-refund-01");
    assert_eq!(n.resource["amount"]["refund"], 30);

    // The SM2 platform certificate, listed for algorithm_type=SM2 and opened with SM4-GCM.
    let listed = c.download_certificates(emu.apiv3_key()).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].serial, emu.platform_serial());
    assert_eq!(
        Scheme::of_public_key(listed[0].certificate.public_key()),
        Scheme::Sm2
    );
    let asked = emu.requests().pop().unwrap().target;
    assert_eq!(asked, "/v3/certificates?algorithm_type=SM2");

    // The day's bill once the day is over, its digest SM3 and checked by the download.
    let date = paid["success_time"].as_str().unwrap()[..10].to_string();
    emu.advance_clock(Duration::from_secs(86_400));
    let bill: Bill = c["v3/bill/tradebill"]
        .get(json!({"query": {"bill_date": date}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(bill.hash_type, "SM3");
    let mut csv = Vec::new();
    let done = c.download_bill(&bill, json!({}), &mut csv).unwrap();
    assert_eq!(bill.hash_value, sm3_hex(&csv));
    assert_eq!(done.digest.as_deref(), Some(bill.hash_value.as_str()));
    assert!(String::from_utf8(csv).unwrap().contains(no));

    // The fund flow, whole and in SM4_GCM parts (each a 16-byte file key SM2-encrypted for the
    // merchant): the parts join into the same bill.
    let flow: Bill = c["v3/bill/fundflowbill"]
        .get(json!({"query": {"bill_date": date}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(flow.hash_type, "SM3");
    let mut whole = Vec::new();
    c.download_bill(&flow, json!({}), &mut whole).unwrap();
    for algorithm in ["SM4_GCM", "AEAD_AES_256_GCM"] {
        let list: BillList = c["v3/bill/sub-merchant-fundflowbill"]
            .get(
                json!({"query": {"sub_mchid": "1900000109", "bill_date": date,
                "account_type": "BASIC", "algorithm": algorithm}}),
            )
            .unwrap()
            .json()
            .unwrap();
        let parts = list.in_order().unwrap();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.hash_type == "SM3"), "{parts:?}");
        // The file key, opened with the merchant's SM2 key: its length tells the cipher.
        let merchant = emu.merchant_private_key().unwrap();
        let key = Sm2::decrypt(parts[0].encrypt_key.as_deref().unwrap(), merchant).unwrap();
        assert_eq!(key.len(), if algorithm == "SM4_GCM" { 16 } else { 32 });
        let mut joined = Vec::new();
        c.download_bills(&list, json!({}), &mut joined).unwrap();
        assert_eq!(joined, whole, "{algorithm}");
    }
}

#[test]
fn forged_stale_and_scheme_mismatched_sm2_answers_are_refused() {
    let emu = sm2_sandbox(Mode::PublicKey);
    let c = client(&emu);
    let order = |no: &str| {
        c["v3/pay/transactions/native"].post(json!({"json": {"appid": "wxd678efh567hg6787",
            "mchid": emu.mchid(), "description": "d", "out_trade_no": no,
            "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1}}}))
    };
    order("shangmi-forged-00").unwrap();
    for (i, forgery) in [
        Forgery::TamperedBody,
        Forgery::WrongKey,
        Forgery::StaleTimestamp,
        Forgery::UnknownSerial,
        Forgery::OtherScheme,
    ]
    .into_iter()
    .enumerate()
    {
        emu.forge_next(forgery);
        match order(&format!("shangmi-forged-{:02}", i + 1)) {
            Err(Error::Verification(_)) => {}
            other => panic!("{forgery:?}: expected a verification failure, got {other:?}"),
        }
        // The next answer, unspoiled, verifies again.
        order(&format!("shangmi-forged-{:02}", i + 11)).unwrap();
    }
}

#[test]
fn the_sm2_sandbox_refuses_rsa_requests_and_keys() {
    // An RSA client's request: refused as the platform refuses a scheme it does not speak.
    let emu = sm2_sandbox(Mode::PublicKey);
    let rsa = start(EmulatorConfig::new());
    let c = rsa
        .builder()
        .base_uri(emu.base_uri())
        .mchid(emu.mchid())
        .serial(emu.merchant_serial())
        .build()
        .unwrap();
    let e = c["v3/pay/transactions/id/{transaction_id}"]
        .get(json!({"transaction_id": "4200000000000000", "query": {"mchid": emu.mchid()}}))
        .unwrap_err();
    let refusal = emu.requests().pop().unwrap().refusal.unwrap_or_default();
    assert!(
        refusal.contains("must start with WECHATPAY2-SM2-WITH-SM3"),
        "{refusal} ({e})"
    );
    // Keys of the other kind are refused at start.
    let err = Emulator::start(
        EmulatorConfig::new()
            .scheme(Scheme::Sm2)
            .merchant_private_key(rsa.merchant_private_key().unwrap().clone()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("WECHATPAY2-SM2-WITH-SM3"), "{err}");
}

#[test]
fn sensitive_fields_travel_sm2_encrypted_both_ways() {
    let emu = sm2_sandbox(Mode::PublicKey);
    let c = client(&emu);
    let enc = c.encryptor().unwrap();
    let bills = &c["v3/fund-app/mch-transfer/transfer-bills"];
    let transfer = |name: Value| {
        json!({"json": {
            "appid": "wxf636efh567hg4356", "out_bill_no": "shangmiTransfer1",
            "openid": "o-MYE42l80oelYMDE34nYD456Xoy", "transfer_amount": 400_000,
            "transfer_remark": "国密", "notify_url": "http://127.0.0.1:9/n",
            "user_recv_perception": "现金奖励", "transfer_scene_id": "1000",
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": "新会员有礼"},
                {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
            ],
            "user_name": name,
        }})
    };
    // The name encrypted with the platform's SM2 key (Wechatpay-Serial names it): decrypted.
    bills
        .post(transfer(json!(enc.encrypt("张三").unwrap())))
        .unwrap();
    let got: Value = c["v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}"]
        .get(json!({"out_bill_no": "shangmiTransfer1"}))
        .unwrap()
        .json()
        .unwrap();
    // ... and returned SM2-encrypted for the merchant.
    let merchant = emu.merchant_private_key().unwrap();
    let name = Sm2::decrypt(got["user_name"].as_str().unwrap(), merchant).unwrap();
    assert_eq!(String::from_utf8(name).unwrap(), "张三");
}

#[test]
fn every_merchant_of_an_sm2_sandbox_signs_with_sm2() {
    let emu = start(
        EmulatorConfig::new()
            .scheme(Scheme::Sm2)
            .merchant(MerchantConfig::new("1900000002")),
    );
    let other = emu.builder_for("1900000002").unwrap().build().unwrap();
    let created = other["v3/pay/transactions/native"]
        .post(
            json!({"json": {"appid": "wxd678efh567hg6787", "mchid": "1900000002",
            "description": "国密", "out_trade_no": "shangmi-second-01",
            "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 1}}}),
        )
        .unwrap();
    assert_eq!(created.headers()["wechatpay-signature-type"], SM2_TYPE);
    let second = emu
        .merchants()
        .into_iter()
        .find(|m| m.mchid() == "1900000002");
    let key = second.unwrap().private_key().unwrap().clone();
    assert_eq!(Scheme::of_key(&key), Scheme::Sm2);
}
