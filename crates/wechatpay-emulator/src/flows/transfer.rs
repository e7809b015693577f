//! Merchant transfers in user-confirmation mode (商家转账, `v3/fund-app/mch-transfer/transfer-bills`):
//! create, query by `out-bill-no` and by `transfer-bill-no`, cancel. A created bill waits for
//! the user (`WAIT_USER_CONFIRM`, with the `package_info` the mini program opens the
//! confirmation page with) until [`Emulator::transfer_succeeded`] or
//! [`Emulator::transfer_failed`] (or `POST /emulator/transfers/{out_bill_no}/succeeded|failed`)
//! ends it, or the merchant cancels it. Each end (`SUCCESS`, `FAIL`, `CANCELLED`) sends
//! `MCHTRANSFER.BILL.FINISHED` to the bill's `notify_url`, when it has one.
//!
//! [`Emulator::transfer_succeeded`]: crate::Emulator::transfer_succeeded
//! [`Emulator::transfer_failed`]: crate::Emulator::transfer_failed

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::documented;
use crate::flows::sensitive;
use crate::http::answer::Answer;
use crate::http::merchants::{name_the_merchant, number_of, Found};
use crate::http::request::Req;
use crate::http::validate;
use crate::notify::webhooks;
use crate::state::records::Bill;
use crate::state::shared::Shared;
use crate::state::{numeric_id, rfc3339};
use crate::util::lock;
use crate::util::random_hex;

/// The event sent when a bill ends.
pub(crate) const FINISHED: &str = "MCHTRANSFER.BILL.FINISHED";

/// From 2,000 yuan on, the payee's name is required.
const NAME_REQUIRED_FROM: i64 = 200_000;

/// The report each transfer scene requires: its `info_type`s, each once, in any order.
const SCENE_REPORTS: [(&str, &[&str]); 8] = [
    ("1000", &["活动名称", "奖励说明"]),
    ("1002", &["补贴类型"]),
    ("1004", &["保险产品备案编号", "保险名称", "保险操作单号"]),
    ("1005", &["岗位类型", "报酬说明"]),
    ("1009", &["采购商品名称"]),
    ("1010", &["回收商品名称"]),
    ("1011", &["赔付原因"]),
    ("1013", &["公益活动名称", "公益活动备案编号"]),
];

/// Checks `transfer_scene_report_infos` against what the scene requires.
fn check_scene_report(obj: &Map<String, Value>) -> Result<(), Answer> {
    let scene = validate::text(obj, "transfer_scene_id");
    let Some((_, wanted)) = SCENE_REPORTS.iter().find(|(s, _)| *s == scene) else {
        return Ok(());
    };
    let given: Vec<&str> = match obj.get("transfer_scene_report_infos") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.get("info_type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut sorted = given.clone();
    sorted.sort_unstable();
    let mut expected = wanted.to_vec();
    expected.sort_unstable();
    if sorted == expected {
        return Ok(());
    }
    Err(Answer::param_error(
        "/transfer_scene_report_infos",
        "body",
        format!(
            "transfer scene {scene} is reported with the info_type {}, each once (given: {})",
            wanted.join(", "),
            given.join(", ")
        ),
        obj.get("transfer_scene_report_infos")
            .cloned()
            .unwrap_or(Value::Null),
    ))
}

/// The states a bill waits in, before the user confirms and the money moves.
const CANCELLABLE: [&str; 3] = ["ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM"];

/// The states that end no bill yet.
const PENDING: [&str; 4] = ["ACCEPTED", "PROCESSING", "WAIT_USER_CONFIRM", "TRANSFERING"];

impl Bill {
    fn text(&self, k: &str) -> &str {
        validate::text(&self.request, k)
    }

    fn amount(&self) -> i64 {
        validate::int(&self.request, "transfer_amount")
    }

    /// What create answers (a repeat of the same request: the bill as it is now).
    fn created(&self) -> Value {
        let mut m = Map::new();
        m.insert("out_bill_no".into(), json!(self.text("out_bill_no")));
        m.insert("transfer_bill_no".into(), json!(self.transfer_bill_no));
        m.insert("create_time".into(), json!(self.create_time));
        m.insert("state".into(), json!(self.state));
        if let Some(r) = &self.fail_reason {
            m.insert("fail_reason".into(), json!(r));
        }
        if self.state == "WAIT_USER_CONFIRM" {
            m.insert("package_info".into(), json!(self.package_info));
        }
        Value::Object(m)
    }

    /// What the queries answer.
    fn queried(&self, shared: &Shared) -> Value {
        let mut m = Map::new();
        m.insert("mch_id".into(), json!(self.mchid));
        m.insert("out_bill_no".into(), json!(self.text("out_bill_no")));
        m.insert("transfer_bill_no".into(), json!(self.transfer_bill_no));
        m.insert("appid".into(), json!(self.text("appid")));
        m.insert("state".into(), json!(self.state));
        m.insert("transfer_amount".into(), json!(self.amount()));
        m.insert(
            "transfer_remark".into(),
            json!(self.text("transfer_remark")),
        );
        if let Some(r) = &self.fail_reason {
            m.insert("fail_reason".into(), json!(r));
        }
        m.insert("openid".into(), json!(self.text("openid")));
        if let Some(name) = &self.user_name {
            let sealed = sensitive::for_merchant(&shared.settings, &self.mchid, name);
            if !sealed.is_null() {
                m.insert("user_name".into(), sealed);
            }
        }
        m.insert("create_time".into(), json!(self.create_time));
        m.insert("update_time".into(), json!(self.update_time));
        Value::Object(m)
    }

    /// The resource of `MCHTRANSFER.BILL.FINISHED`.
    fn finished(&self) -> Value {
        let mut m = Map::new();
        m.insert("out_bill_no".into(), json!(self.text("out_bill_no")));
        m.insert("transfer_bill_no".into(), json!(self.transfer_bill_no));
        m.insert("state".into(), json!(self.state));
        m.insert("mch_id".into(), json!(self.mchid));
        m.insert("transfer_amount".into(), json!(self.amount()));
        m.insert("openid".into(), json!(self.text("openid")));
        if let Some(r) = &self.fail_reason {
            m.insert("fail_reason".into(), json!(r));
        }
        m.insert("create_time".into(), json!(self.create_time));
        m.insert("update_time".into(), json!(self.update_time));
        Value::Object(m)
    }

    /// Ends the bill in `state`; the notification to send, when the bill has a `notify_url`.
    fn end(&mut self, shared: &Shared, state: &'static str) -> Option<(String, Value)> {
        self.state = state;
        self.update_time = rfc3339(shared.clock.now());
        let url = self.request.get("notify_url").and_then(Value::as_str)?;
        Some((url.to_string(), self.finished()))
    }
}

fn not_found(what: &str, no: &str) -> Answer {
    Answer::error(
        404,
        "NOT_FOUND",
        format!("记录不存在 (no transfer bill with {what} {no})"),
    )
}

/// A merchant bill number: 1 to 32 of `0-9A-Za-z`.
fn check_out_bill_no(no: &str, location: &str) -> Result<(), Answer> {
    if (1..=32).contains(&no.len()) && no.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Ok(());
    }
    Err(Answer::param_error(
        "/out_bill_no",
        location,
        "out_bill_no must be 1 to 32 of 0-9, A-Z, a-z",
        Value::from(no),
    ))
}

fn send(shared: &Arc<Shared>, notice: Option<(String, Value)>) {
    if let Some((url, resource)) = notice {
        webhooks::notify(
            shared,
            url,
            FINISHED,
            "商家转账单据终态通知",
            "mch_payment",
            &resource,
        );
    }
}

/// The answer to the operations modelled here (`segs`: the path after `v3/`), or `None`.
pub(crate) fn route(shared: &Arc<Shared>, req: &Req, segs: &[&str]) -> Option<Answer> {
    let ["fund-app", "mch-transfer", "transfer-bills", rest @ ..] = segs else {
        return None;
    };
    Some(match (req.method.as_str(), rest) {
        ("POST", []) => create(shared, req),
        ("GET", ["out-bill-no", no]) => query(shared, By::OutBillNo(no)),
        ("GET", ["transfer-bill-no", no]) => query(shared, By::TransferBillNo(no)),
        ("POST", ["out-bill-no", no, "cancel"]) => cancel(shared, no),
        _ => return None,
    })
}

/// `POST v3/fund-app/mch-transfer/transfer-bills`.
fn create(shared: &Arc<Shared>, req: &Req) -> Answer {
    create_checked(shared, req).unwrap_or_else(|a| a)
}

fn create_checked(shared: &Arc<Shared>, req: &Req) -> Result<Answer, Answer> {
    documented::check(req)?;
    let mut obj = validate::object(&req.body)?;
    let no = validate::text(&obj, "out_bill_no").to_string();
    check_out_bill_no(&no, "body")?;
    let amount = match obj.get("transfer_amount").and_then(Value::as_i64) {
        Some(a) if a > 0 => a,
        _ => {
            return Err(Answer::param_error(
                "/transfer_amount",
                "body",
                "transfer_amount must be a positive whole number of fen",
                obj.get("transfer_amount").cloned().unwrap_or(Value::Null),
            ))
        }
    };
    if let Some(url) = obj.get("notify_url").and_then(Value::as_str) {
        crate::flows::pay::check_notify_url(url)?;
    }
    let user_name = match obj.get("user_name") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(sensitive::decrypt(&shared.settings, req, "/user_name", c)?),
        Some(other) => {
            return Err(Answer::param_error(
                "/user_name",
                "body",
                "user_name must be a string (RSA-OAEP ciphertext, base64)",
                other.clone(),
            ))
        }
    };
    if user_name.is_none() && amount >= NAME_REQUIRED_FROM {
        return Err(Answer::param_error(
            "/user_name",
            "body",
            format!("user_name is required for transfers of 2,000 yuan ({NAME_REQUIRED_FROM} fen) or more: encrypt the payee's name with the platform public key"),
            Value::Null,
        ));
    }
    // what the fields say together, once each is right
    check_scene_report(&obj)?;
    if let Some(name) = &user_name {
        obj.insert("user_name".into(), json!(name));
    }
    // each merchant its own bill numbers
    let signer = shared.settings.signing_merchant();
    let key = shared.settings.order_key(&signer, &no);
    let mut st = lock(&shared.state);
    if let Some(b) = st.transfers.bills.get(&key) {
        if b.request == obj {
            return Ok(Answer::ok(b.created()));
        }
        return Err(Answer::conflict("out_bill_no", &no));
    }
    let seq = st.next();
    let now = shared.clock.now();
    let transfer_bill_no = numeric_id("1330", now, seq, 40);
    let time = rfc3339(now);
    let bill = Bill {
        mchid: signer,
        request: obj,
        transfer_bill_no: transfer_bill_no.clone(),
        state: "WAIT_USER_CONFIRM",
        fail_reason: None,
        user_name,
        package_info: format!("ABBQO+oYAAABAAAAAAB{}", random_hex(24)),
        create_time: time.clone(),
        update_time: time,
    };
    let created = bill.created();
    st.transfers.ids.insert(transfer_bill_no, key.clone());
    let overdue = key.clone();
    shared.clock.after(
        super::expiry::CONFIRM_WITHIN,
        Box::new(move |s: &Arc<Shared>| overdue_close(s, &overdue)),
    );
    st.transfers.bills.insert(key, bill);
    Ok(Answer::ok(created))
}

/// How a bill is looked up.
enum By<'a> {
    OutBillNo(&'a str),
    TransferBillNo(&'a str),
}

/// `GET v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}` and
/// `…/transfer-bill-no/{transfer_bill_no}`: the signer's own bills, none of another merchant's.
fn query(shared: &Arc<Shared>, by: By<'_>) -> Answer {
    let signer = shared.settings.signing_merchant();
    let st = lock(&shared.state);
    let t = &st.transfers;
    let found = match by {
        By::OutBillNo(no) => t
            .bills
            .get(&shared.settings.order_key(&signer, no))
            .ok_or_else(|| not_found("out_bill_no", no)),
        By::TransferBillNo(id) => t
            .ids
            .get(id)
            .and_then(|key| t.bills.get(key))
            .filter(|b| b.mchid == signer)
            .ok_or_else(|| not_found("transfer_bill_no", id)),
    };
    match found {
        Ok(b) => Answer::ok(b.queried(shared)),
        Err(a) => a,
    }
}

/// `POST v3/fund-app/mch-transfer/transfer-bills/out-bill-no/{out_bill_no}/cancel`: a bill the
/// user has not confirmed yet is `CANCELLED` (at once: the emulator has no money to give back);
/// cancelling a cancelled bill answers it again.
fn cancel(shared: &Arc<Shared>, no: &str) -> Answer {
    let key = shared
        .settings
        .order_key(&shared.settings.signing_merchant(), no);
    let (answer, notice) = {
        let mut st = lock(&shared.state);
        let Some(b) = st.transfers.bills.get_mut(&key) else {
            return not_found("out_bill_no", no);
        };
        let notice = match b.state {
            s if CANCELLABLE.contains(&s) => b.end(shared, "CANCELLED"),
            "CANCELLED" | "CANCELING" => None,
            s => {
                return Answer::error(
                    400,
                    "INVALID_REQUEST",
                    format!("单据状态为{s}，不允许撤销 (only a bill the user has not confirmed can be cancelled)"),
                )
            }
        };
        let answer = json!({
            "out_bill_no": no, "transfer_bill_no": b.transfer_bill_no,
            "state": b.state, "update_time": b.update_time,
        });
        (answer, notice)
    };
    send(shared, notice);
    Answer::ok(answer)
}

/// A bill (kept under `key`) still waiting for the user when its day to confirm has passed
/// fails with `OVERDUE_CLOSE` (notified).
pub(crate) fn overdue_close(shared: &Arc<Shared>, key: &str) {
    let waiting = lock(&shared.state)
        .transfers
        .bills
        .get(key)
        .is_some_and(|b| b.state == "WAIT_USER_CONFIRM");
    if waiting {
        let _ = end(shared, key, End::Failed(Some("OVERDUE_CLOSE")));
    }
}

/// The key of bill `no` for a control request ([`Settings::control_key`]): `mchid`'s when
/// given.
///
/// [`Settings::control_key`]: crate::http::settings::Settings::control_key
fn control_key(shared: &Shared, no: &str, mchid: Option<&str>) -> Result<String, Answer> {
    let st = lock(&shared.state);
    match shared
        .settings
        .control_key(st.transfers.bills.keys(), no, mchid)
    {
        Found::One(key) => Ok(key),
        Found::None => Err(not_found("out_bill_no", no)),
        Found::Several => Err(name_the_merchant("transfer bill", no)),
    }
}

/// How the user's side ends a bill.
pub(crate) enum End<'a> {
    Succeeded,
    /// With a documented `fail_reason` (`OTHER_FAIL_REASON_TYPE` when none is given).
    Failed(Option<&'a str>),
}

/// The documented failure reasons of `MCHTRANSFER.BILL.FINISHED`.
fn fail_reasons() -> Vec<String> {
    wechatpay_chain::catalog::event(FINISHED)
        .and_then(|e| e.resource().iter().find(|f| f.name == "fail_reason"))
        .map(|f| f.enumeration.clone())
        .unwrap_or_default()
}

/// The user confirms and the money arrives (`SUCCESS`), or the transfer fails (`FAIL` with a
/// reason); `MCHTRANSFER.BILL.FINISHED` goes to the bill's `notify_url`. Ending a bill the same
/// way again answers it as it is and notifies nothing. Returns the bill as the queries answer
/// it. Bill `no` of merchant `mchid`, or as [`control_key`] finds it.
pub(crate) fn finish(
    shared: &Arc<Shared>,
    no: &str,
    mchid: Option<&str>,
    how: End<'_>,
) -> Result<Value, Answer> {
    end(shared, &control_key(shared, no, mchid)?, how)
}

/// [`finish`] of the bill kept under `key`.
fn end(shared: &Arc<Shared>, key: &str, end: End<'_>) -> Result<Value, Answer> {
    let no = number_of(key);
    let (target, reason) = match end {
        End::Succeeded => ("SUCCESS", None),
        End::Failed(reason) => {
            let reason = reason.unwrap_or("OTHER_FAIL_REASON_TYPE");
            let known = fail_reasons();
            if !known.is_empty() && !known.iter().any(|r| r == reason) {
                return Err(Answer::param_error(
                    "/reason",
                    "body",
                    format!(
                        "reason must be one of the documented fail_reason values: {}",
                        known.join(", ")
                    ),
                    Value::from(reason),
                ));
            }
            ("FAIL", Some(reason.to_string()))
        }
    };
    let (bill, notice) = {
        let mut st = lock(&shared.state);
        let Some(b) = st.transfers.bills.get_mut(key) else {
            return Err(not_found("out_bill_no", no));
        };
        if b.state == target {
            return Ok(b.queried(shared));
        }
        if !PENDING.contains(&b.state) {
            // as the payment and refund actions answer an object past the needed state
            return Err(Answer::error(
                409,
                "INVALID_STATE",
                format!(
                    "the transfer bill {no} is already {}: only a pending bill can end {target}",
                    b.state
                ),
            ));
        }
        b.fail_reason = reason;
        let notice = b.end(shared, target);
        (b.queried(shared), notice)
    };
    send(shared, notice);
    Ok(bill)
}
