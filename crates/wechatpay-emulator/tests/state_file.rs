//! State that survives (`EmulatorConfig::state_file`): a sandbox stopped and started again on
//! the same SQLite file is the same platform, with the same orders, refunds, transfers,
//! receivers, deliveries and clock, and what waited for the clock still happens. A file that
//! is not a sandbox state file is refused and left byte for byte as it was. Real loopback
//! sockets, the library's client as the merchant, keys generated at test time.

#[path = "../../../tests/common/mod.rs"]
mod common;
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use support::{api, deliveries, Receiver};
use wechatpay_chain::{Builder, Client, PrivateKey, PublicKey};
use wechatpay_emulator::{time_from_rfc3339, Emulator, EmulatorConfig, MerchantConfig};

const APPID: &str = "wxd678efh567hg6787";
const START: &str = "2026-12-07T10:00:00+08:00";

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A sandbox on `file`, its clock frozen at [`START`] the first time (the file keeps it), a
/// refund ending ten minutes after it was asked for.
fn on(file: &Path, first: bool) -> Emulator {
    let mut config = EmulatorConfig::new()
        .state_file(file)
        .refund_delay(Some(Duration::from_secs(600)));
    if first {
        config = config
            .clock_start(time_from_rfc3339(START).unwrap())
            .clock_frozen(true);
    }
    support::start(config)
}

/// What the merchant's client was configured with by the first sandbox (its env file).
struct Env {
    serial: String,
    key: PrivateKey,
    platform_serial: String,
    platform: PublicKey,
    apiv2_key: String,
}

fn env(emu: &Emulator) -> Env {
    Env {
        serial: emu.merchant_serial().to_string(),
        key: emu.merchant_private_key().unwrap().clone(),
        platform_serial: emu.platform_serial().to_string(),
        platform: emu.platform_public_key().clone(),
        apiv2_key: emu.apiv2_key().to_string(),
    }
}

/// The merchant's client configured from `env`, pointed at `emu`.
fn merchant(env: &Env, emu: &Emulator) -> Client {
    Builder::new()
        .base_uri(emu.base_uri())
        .mchid("1900000001")
        .serial(&env.serial)
        .private_key(env.key.clone())
        .platform_public_key(&env.platform_serial, env.platform.clone())
        .secret(&env.apiv2_key)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn native(c: &Client, no: &str, url: &str) -> Value {
    c["v3/pay/transactions/native"]
        .post(json!({"json": {"appid": APPID, "mchid": "1900000001", "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": no, "notify_url": url, "amount": {"total": 100}}}))
        .unwrap()
        .json()
        .unwrap()
}

fn get(c: &Client, path: &str, params: Value) -> Value {
    c[path].get(params).unwrap().json().unwrap()
}

fn order(c: &Client, no: &str) -> Value {
    get(
        c,
        "v3/pay/transactions/out-trade-no/{out_trade_no}",
        json!({"out_trade_no": no, "query": {"mchid": "1900000001"}}),
    )
}

fn refund(c: &Client, no: &str) -> Value {
    get(
        c,
        "v3/refund/domestic/refunds/{out_refund_no}",
        json!({"out_refund_no": no}),
    )
}

fn bill(c: &Client, no: &str) -> Value {
    get(
        c,
        "v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}",
        json!({"out_bill_no": no}),
    )
}

#[test]
fn a_restarted_sandbox_keeps_orders_refunds_transfers_receivers_keys_and_due_jobs() {
    let dir = dir();
    let file = dir.path().join("sandbox.db");
    let hook = Receiver::new(|_, body| (body, 204, Bytes::new()));

    let first = on(&file, true);
    let builder = env(&first);
    let c = merchant(&builder, &first);
    let platform_pem = first.platform_public_key_pem().unwrap();
    native(&c, "kept-paid-001", &hook.url);
    let unpaid = native(&c, "kept-unpaid-01", &hook.url);
    first.pay("kept-paid-001").unwrap();
    hook.next_within(Duration::from_secs(10))
        .expect("TRANSACTION.SUCCESS");
    assert_eq!(order(&c, "kept-paid-001")["trade_state"], "SUCCESS");
    let made: Value = c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "kept-paid-001", "out_refund_no": "kept-r-001",
            "notify_url": hook.url, "amount": {"refund": 40, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(made["status"], "PROCESSING");
    let paid = order(&c, "kept-paid-001");
    assert_eq!(paid["trade_state"], "REFUND");
    let transfer: Value = c["v3/fund-app/mch-transfer/transfer-bills"]
        .post(json!({"json": {
            "appid": "wxf636efh567hg4356", "out_bill_no": "keptbill001",
            "openid": "o-MYE42l80oelYMDE34nYD456Xoy", "transfer_amount": 100,
            "transfer_remark": "2020年4月报销", "notify_url": hook.url,
            "user_recv_perception": "现金奖励", "transfer_scene_id": "1000",
            "transfer_scene_report_infos": [
                {"info_type": "活动名称", "info_content": "新会员有礼"},
                {"info_type": "奖励说明", "info_content": "抽奖一等奖"},
            ],
        }}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(transfer["state"], "WAIT_USER_CONFIRM");
    let name = c.encryptor().unwrap().encrypt("示例商户全称").unwrap();
    c["v3/profitsharing/receivers/add"]
        .post(
            json!({"json": {"appid": APPID, "type": "MERCHANT_ID", "account": "86693852",
            "name": name, "relation_type": "STORE"}}),
        )
        .unwrap();
    let sent = deliveries(&first, 1);
    drop(first);

    let second = on(&file, false);
    assert_eq!(second.platform_public_key_pem().unwrap(), platform_pem);
    assert_eq!(second.clock().rfc3339(), START, "the frozen clock kept");
    // The first sandbox's merchant client, keys and platform key as they were, verifies the
    // second's answers.
    let c = merchant(&builder, &second);
    assert_eq!(order(&c, "kept-paid-001"), paid);
    assert_eq!(order(&c, "kept-unpaid-01")["trade_state"], "NOTPAY");
    let again = native(&c, "kept-unpaid-01", &hook.url);
    assert_eq!(again, unpaid, "a repeated creation is still idempotent");
    assert_eq!(refund(&c, "kept-r-001")["status"], "PROCESSING");
    assert_eq!(bill(&c, "keptbill001")["state"], "WAIT_USER_CONFIRM");
    let by_id = get(
        &c,
        "v3/fund-app/mch-transfer/transfer-bills/transfer-bill-no/{transfer_bill_no}",
        json!({"transfer_bill_no": transfer["transfer_bill_no"]}),
    );
    assert_eq!(by_id["out_bill_no"], "keptbill001");
    assert_eq!(second.deliveries().len(), sent.len());
    assert_eq!(second.deliveries()[0].event_type, "TRANSACTION.SUCCESS");
    // The receiver exists: deleting it succeeds (an unknown one is 404).
    c["v3/profitsharing/receivers/delete"]
        .post(json!({"json": {"appid": APPID, "type": "MERCHANT_ID", "account": "86693852"}}))
        .expect("the receiver added before the restart");

    // What waited for the clock happens on the second sandbox's clock.
    second.advance_clock(Duration::from_secs(600));
    let done = refund(&c, "kept-r-001");
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["success_time"], "2026-12-07T10:10:00+08:00");
    second.advance_clock(Duration::from_secs(2 * 3600));
    assert_eq!(order(&c, "kept-unpaid-01")["trade_state"], "CLOSED");
    // To the day after the bill was made (10:10 + 2 h + 21 h 50 min).
    second.advance_clock(Duration::from_secs(86_400 - 600 - 2 * 3600));
    let b = bill(&c, "keptbill001");
    assert_eq!(b["state"], "FAIL");
    assert_eq!(b["fail_reason"], "OVERDUE_CLOSE");
    assert_eq!(b["update_time"], "2026-12-08T10:00:00+08:00");
    drop(second);

    // And the third sees what the second did.
    let third = on(&file, false);
    let c = merchant(&builder, &third);
    assert_eq!(refund(&c, "kept-r-001")["status"], "SUCCESS");
    assert_eq!(order(&c, "kept-unpaid-01")["trade_state"], "CLOSED");
    let (status, code, _) = api(c["v3/profitsharing/receivers/delete"]
        .post(json!({"json": {"appid": APPID, "type": "MERCHANT_ID", "account": "86693852"}}))
        .unwrap_err());
    assert_eq!((status, code.as_str()), (404, "RESOURCE_NOT_EXISTS"));
}

#[test]
fn orders_created_at_once_are_all_kept() {
    let dir = dir();
    let file = dir.path().join("busy.db");
    let first = on(&file, true);
    let builder = env(&first);
    let c = merchant(&builder, &first);
    std::thread::scope(|s| {
        for i in 0..64 {
            let c = &c;
            s.spawn(move || native(c, &format!("busy-{i:03}"), "http://127.0.0.1:9/n"));
        }
    });
    drop(first);
    let second = on(&file, false);
    let c = merchant(&builder, &second);
    for i in 0..64 {
        assert_eq!(order(&c, &format!("busy-{i:03}"))["trade_state"], "NOTPAY");
    }
}

#[cfg(unix)]
fn private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starting on `file` fails; the message names the file and says what to do; the file is
/// unchanged.
fn refused(file: &PathBuf, says: &str) {
    let before = std::fs::read(file).unwrap();
    let e = common::rt()
        .block_on(Emulator::start_async(
            EmulatorConfig::new().state_file(file),
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains(&file.display().to_string()), "{e}");
    assert!(e.contains(says), "{e}");
    assert_eq!(std::fs::read(file).unwrap(), before, "left untouched: {e}");
}

#[cfg(unix)]
#[test]
fn the_state_file_is_private_and_a_foreign_or_damaged_one_is_refused_untouched() {
    use std::os::unix::fs::PermissionsExt;
    let dir = dir();

    let made = dir.path().join("made.db");
    drop(on(&made, true));
    let mode = std::fs::metadata(&made).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");

    let random = dir.path().join("random.db");
    let bytes: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, &bytes).unwrap();
    private(&random);
    refused(&random, "not SQLite");
    refused(&random, "move it away or pass another --state");

    let truncated = dir.path().join("truncated.db");
    let whole = std::fs::read(&made).unwrap();
    assert!(whole.len() >= 4096 * 2, "{} bytes", whole.len());
    std::fs::write(&truncated, &whole[..whole.len() - 4096]).unwrap();
    private(&truncated);
    refused(&truncated, "damaged");

    let other = dir.path().join("other.db");
    {
        let db = rusqlite::Connection::open(&other).unwrap();
        db.execute_batch(
            "PRAGMA application_id = 1234; CREATE TABLE notes(x TEXT); INSERT INTO notes VALUES ('mine');",
        )
        .unwrap();
    }
    private(&other);
    refused(&other, "another application");

    let plain = dir.path().join("plain.db");
    {
        let db = rusqlite::Connection::open(&plain).unwrap();
        db.execute_batch("CREATE TABLE notes(x TEXT);").unwrap();
    }
    private(&plain);
    refused(&plain, "another application");

    let newer = dir.path().join("newer.db");
    std::fs::copy(&made, &newer).unwrap();
    {
        let db = rusqlite::Connection::open(&newer).unwrap();
        db.execute_batch("PRAGMA user_version = 99;").unwrap();
    }
    private(&newer);
    refused(&newer, "newer sandbox");

    let shared = dir.path().join("shared.db");
    std::fs::copy(&made, &shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
    refused(&shared, "chmod 600");

    // The file it made is still good.
    drop(on(&made, false));
}

#[test]
fn the_other_merchants_keep_their_keys_and_orders() {
    let dir = dir();
    let file = dir.path().join("merchants.db");
    let config = || {
        EmulatorConfig::new()
            .state_file(&file)
            .merchant(MerchantConfig::new("1900000002"))
    };
    let first = support::start(config());
    let other = |emu: &Emulator| {
        emu.merchants()
            .into_iter()
            .find(|m| m.mchid() == "1900000002")
            .unwrap()
    };
    let before = other(&first);
    let c = first.builder_for("1900000002").unwrap().build().unwrap();
    c["v3/pay/transactions/native"]
        .post(json!({"json": {"appid": APPID, "mchid": "1900000002", "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": "other-001", "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 100}}}))
        .unwrap();
    // a paid order of the second merchant, refunded by it: the refund is its own after a restart
    c["v3/pay/transactions/native"]
        .post(json!({"json": {"appid": APPID, "mchid": "1900000002", "description": "Image形象店-深圳腾大-QQ公仔",
            "out_trade_no": "other-002", "notify_url": "http://127.0.0.1:9/n", "amount": {"total": 100}}}))
        .unwrap();
    first
        .act_on_payment(
            "other-002",
            wechatpay_emulator::PaymentAction::Paid,
            Some("1900000002"),
            None,
        )
        .unwrap();
    c["v3/refund/domestic/refunds"]
        .post(
            json!({"json": {"out_trade_no": "other-002", "out_refund_no": "other-refund-1",
            "amount": {"refund": 40, "total": 100, "currency": "CNY"}}}),
        )
        .unwrap();
    drop(first);

    let second = support::start(config());
    let after = other(&second);
    assert_eq!(after.serial(), before.serial());
    assert_eq!(after.apiv3_key(), before.apiv3_key());
    let pem = |m: &wechatpay_emulator::Merchant| {
        wechatpay_emulator::private_key_pem(m.private_key().unwrap()).unwrap()
    };
    assert!(pem(&after) == pem(&before), "the same private key");
    let c = second.builder_for("1900000002").unwrap().build().unwrap();
    let order: Value = c["v3/pay/transactions/out-trade-no/{out_trade_no}"]
        .get(json!({"out_trade_no": "other-001", "query": {"mchid": "1900000002"}}))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(order["trade_state"], "NOTPAY");
    let refund = |c: &Client| {
        c["v3/refund/domestic/refunds/{out_refund_no}"]
            .get(json!({"out_refund_no": "other-refund-1"}))
    };
    let kept: Value = refund(&c).unwrap().json().unwrap();
    assert_eq!(
        (
            kept["out_trade_no"].as_str(),
            kept["amount"]["refund"].as_i64()
        ),
        (Some("other-002"), Some(40))
    );
    // still the second merchant's alone: the first does not see it
    let first_merchant = second.builder().build().unwrap();
    let e = api(refund(&first_merchant).unwrap_err());
    assert_eq!((e.0, e.1.as_str()), (404, "RESOURCE_NOT_EXISTS"));
}
