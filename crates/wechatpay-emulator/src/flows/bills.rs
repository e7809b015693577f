//! Bills (下载账单): `v3/bill/tradebill` and `v3/bill/fundflowbill` built from the emulator's
//! payments and refunds, `v3/bill/sub-merchant-fundflowbill` in encrypted parts, and the files
//! themselves at `v3/billdownload/file?token=…`, answered unsigned as the platform answers them.
//!
//! A bill is the platform's CSV (UTF-8, `\r\n` line ends): a header line, one line per record
//! of `bill_date` (Beijing time) with every field prefixed by a backtick, then the summary
//! header and the summary line. Payments are dated by their success time, refunds by the time
//! they were accepted. A day without records is `400 NO_STATEMENT_EXIST`, as the platform
//! answers it, and so is a day that has not ended on the sandbox's clock (the platform makes
//! a day's bill the next morning; the sandbox at midnight). The emulated merchant pays no fees.
//!
//! The listing's `hash_value` is the SHA-1 of the CSV before gzip (`tar_type=GZIP`) and before
//! encryption. Files are kept under a random token for [`FILE_TTL`], at most [`MAX_FILES`] of
//! them (the oldest go first).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Value};

use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::scheme;
use crate::state::records::Files;
use crate::state::shared::Shared;
use crate::state::State;
use crate::util::lock;
use wechatpay_chain::formatter;

/// How long a `download_url` works (the platform's are good for 30 s; tests get more).
pub(crate) const FILE_TTL: Duration = Duration::from_secs(300);
/// How many files are kept at most.
pub(crate) const MAX_FILES: usize = 256;

impl Files {
    /// Keeps `file` under a new random token, returned.
    fn put(&mut self, file: Bytes, now: Instant) -> String {
        self.purge(now);
        let token = formatter::nonce(64);
        self.by_token.insert(token.clone(), (file, now + FILE_TTL));
        self.order.push_back(token.clone());
        while self.order.len() > MAX_FILES {
            if let Some(old) = self.order.pop_front() {
                self.by_token.remove(&old);
            }
        }
        token
    }

    /// The file under `token`, if it has not expired.
    fn get(&mut self, token: &str, now: Instant) -> Option<Bytes> {
        self.purge(now);
        self.by_token.get(token).map(|(file, _)| file.clone())
    }

    /// Drops expired files: every file lives as long, so they expire oldest first.
    fn purge(&mut self, now: Instant) {
        while let Some(front) = self.order.front() {
            match self.by_token.get(front) {
                Some((_, expires)) if *expires > now => break,
                _ => {
                    if let Some(old) = self.order.pop_front() {
                        self.by_token.remove(&old);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_token.len()
    }
}

/// One line of a bill: a payment, or a refund of one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Record {
    /// When it happened, `YYYY-MM-DD HH:MM:SS` in Beijing time: the day it is billed on.
    time: String,
    appid: String,
    transaction_id: String,
    out_trade_no: String,
    openid: String,
    trade_type: String,
    currency: String,
    description: String,
    attach: String,
    /// Fen: the order total of a payment, the amount of a refund.
    amount: i64,
    refund: Option<RefundLine>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RefundLine {
    refund_id: String,
    out_refund_no: String,
    status: String,
    /// `YYYY-MM-DD HH:MM:SS`, or empty while processing.
    success_time: String,
}

impl Record {
    fn day(&self) -> &str {
        self.time.get(..10).unwrap_or_default()
    }

    /// The order a bill lists records in: by time, payments before refunds, then by id.
    fn key(&self) -> (&str, bool, &str) {
        let id = match &self.refund {
            Some(r) => r.refund_id.as_str(),
            None => self.transaction_id.as_str(),
        };
        (&self.time, self.refund.is_some(), id)
    }
}

/// `2015-05-20T13:29:35+08:00` → `2015-05-20 13:29:35` (the emulator writes Beijing time).
fn bill_time(rfc3339: &str) -> Option<String> {
    let t = rfc3339.get(..19)?;
    Some(t.replacen('T', " ", 1))
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// Every payment and refund of the signing merchant (whose bills they are; the first merchant
/// for APIv2), in bill order.
fn records(shared: &Shared, st: &State) -> Vec<Record> {
    let signer = shared.settings.signing_merchant();
    let mut out = Vec::new();
    for t in st.transactions.values() {
        let (Some(id), Some(time)) = (&t.transaction_id, &t.success_time) else {
            continue;
        };
        if !crate::flows::pay::is_signers(shared, t) {
            continue;
        }
        let Some(time) = bill_time(time) else {
            continue;
        };
        let r = &t.request;
        let amount = r.get("amount");
        out.push(Record {
            time,
            // a partner order names the service provider's sp_appid
            appid: text(r.get("appid").or_else(|| r.get("sp_appid"))),
            transaction_id: id.clone(),
            out_trade_no: text(r.get("out_trade_no")),
            openid: t.openid.clone().unwrap_or_default(),
            trade_type: t.trade_type.to_string(),
            currency: amount
                .and_then(|a| a.get("currency"))
                .and_then(Value::as_str)
                .unwrap_or("CNY")
                .to_string(),
            description: text(r.get("description")),
            attach: text(r.get("attach")),
            amount: amount
                .and_then(|a| a.get("total"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            refund: None,
        });
    }
    for r in st.refunds.values().filter(|r| r.mchid == signer) {
        let a = &r.answer;
        let Some(time) = a
            .get("create_time")
            .and_then(Value::as_str)
            .and_then(bill_time)
        else {
            continue;
        };
        let out_trade_no = text(a.get("out_trade_no"));
        // every order refunded is a transaction (an APIv2 micropay one too)
        let paid = st.transactions.get(&r.order);
        let from_order = |k: &str| paid.map(|t| text(t.request.get(k))).unwrap_or_default();
        let amount = a.get("amount");
        out.push(Record {
            time,
            appid: from_order("appid"),
            transaction_id: text(a.get("transaction_id")),
            openid: paid.and_then(|t| t.openid.clone()).unwrap_or_default(),
            trade_type: paid.map(|t| t.trade_type.to_string()).unwrap_or_default(),
            out_trade_no,
            currency: text(amount.and_then(|a| a.get("currency"))),
            description: from_order("description"),
            attach: from_order("attach"),
            amount: amount
                .and_then(|a| a.get("refund"))
                .and_then(Value::as_i64)
                .unwrap_or(0),
            refund: Some(RefundLine {
                refund_id: text(a.get("refund_id")),
                out_refund_no: text(a.get("out_refund_no")),
                status: text(a.get("status")),
                success_time: a
                    .get("success_time")
                    .and_then(Value::as_str)
                    .and_then(bill_time)
                    .unwrap_or_default(),
            }),
        });
    }
    out.sort_by(|x, y| x.key().cmp(&y.key()));
    out
}

/// Checks a `bill_date`: `YYYY-MM-DD`, a real day of the Gregorian calendar.
pub(crate) fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d)
}

/// Fen as yuan, `12.34` (sums in i128 do not overflow).
fn yuan(fen: i128) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

/// A detail or summary field: backtick first; line breaks become spaces so that a record is one
/// line; a field with a comma or a quote is quoted (RFC 4180).
fn field(v: &str) -> String {
    let v: String = v
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let f = format!("`{v}");
    if f.contains([',', '"']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

fn line(out: &mut String, fields: impl IntoIterator<Item = String>) {
    let fields: Vec<String> = fields.into_iter().map(|f| field(&f)).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// `bill_type` of `v3/bill/tradebill`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TradeBill {
    All,
    Success,
    Refund,
}

const TRADE_ALL: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const TRADE_SUCCESS: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注";
const TRADE_REFUND: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
const TRADE_SUMMARY: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The value of trade-bill column `column` for `r`.
fn trade_value(column: &str, r: &Record, mchid: &str) -> String {
    let refund = r.refund.as_ref();
    let paid = if refund.is_none() { r.amount } else { 0 };
    let refunded = if refund.is_some() { r.amount } else { 0 };
    match column {
        // A refund's row is dated when the refund was accepted.
        "交易时间" | "退款申请时间" => r.time.clone(),
        "公众账号ID" => r.appid.clone(),
        "商户号" => mchid.to_string(),
        "特约商户号" => "0".into(),
        "微信订单号" => r.transaction_id.clone(),
        "商户订单号" => r.out_trade_no.clone(),
        "用户标识" => r.openid.clone(),
        "交易类型" => r.trade_type.clone(),
        "交易状态" => if refund.is_some() {
            "REFUND"
        } else {
            "SUCCESS"
        }
        .into(),
        "付款银行" => "OTHERS".into(),
        "货币种类" => r.currency.clone(),
        "应结订单金额" | "订单金额" => yuan(paid.into()),
        "退款成功时间" => refund.map(|f| f.success_time.clone()).unwrap_or_default(),
        "微信退款单号" => refund.map_or("0".into(), |f| f.refund_id.clone()),
        "商户退款单号" => refund.map_or("0".into(), |f| f.out_refund_no.clone()),
        "退款金额" | "申请退款金额" => yuan(refunded.into()),
        "退款类型" => refund.map(|_| "ORIGINAL".to_string()).unwrap_or_default(),
        "退款状态" => refund.map(|f| f.status.clone()).unwrap_or_default(),
        "商品名称" => r.description.clone(),
        "商户数据包" => r.attach.clone(),
        "代金券金额" | "充值券退款金额" | "手续费" => "0.00".into(),
        "费率" => "0.00%".into(),
        _ => String::new(),
    }
}

/// The trade bill of `records` (already those of the day).
fn trade_csv(records: &[&Record], kind: TradeBill, mchid: &str) -> String {
    let header = match kind {
        TradeBill::All => TRADE_ALL,
        TradeBill::Success => TRADE_SUCCESS,
        TradeBill::Refund => TRADE_REFUND,
    };
    let mut out = format!("{header}\r\n");
    let (mut paid, mut refunded) = (0i128, 0i128);
    for r in records {
        match r.refund {
            Some(_) => refunded += i128::from(r.amount),
            None => paid += i128::from(r.amount),
        }
        line(
            &mut out,
            header.split(',').map(|c| trade_value(c, r, mchid)),
        );
    }
    out.push_str(TRADE_SUMMARY);
    out.push_str("\r\n");
    line(
        &mut out,
        [
            records.len().to_string(),
            yuan(paid),
            yuan(refunded),
            yuan(0),
            yuan(0),
            yuan(paid),
            yuan(refunded),
        ],
    );
    out
}

const FUND_FLOW: &str = "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号";
const FUND_FLOW_SUMMARY: &str = "资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额";

/// The signed change a record makes to the basic account.
fn flow(r: &Record) -> i128 {
    match r.refund {
        Some(_) => -i128::from(r.amount),
        None => i128::from(r.amount),
    }
}

/// The basic account's fund-flow bill of `records` (already those of the day), the balance
/// starting at `opening`. Payments come in, refunds go out.
fn fund_flow_csv(records: &[&Record], opening: i128, mchid: &str) -> String {
    let mut out = format!("{FUND_FLOW}\r\n");
    let mut balance = opening;
    let (mut ins, mut outs) = ((0usize, 0i128), (0usize, 0i128));
    for r in records {
        balance += flow(r);
        let (business_id, name, direction, voucher) = match &r.refund {
            Some(f) => (
                f.refund_id.clone(),
                "退款",
                "支出",
                format!("REF{}", r.transaction_id),
            ),
            None => (
                r.transaction_id.clone(),
                "交易",
                "收入",
                r.out_trade_no.clone(),
            ),
        };
        match r.refund {
            Some(_) => outs = (outs.0 + 1, outs.1 + i128::from(r.amount)),
            None => ins = (ins.0 + 1, ins.1 + i128::from(r.amount)),
        }
        // The flow number: the merchant, the day, and the tail of the business id.
        let day: String = r
            .time
            .chars()
            .filter(char::is_ascii_digit)
            .take(8)
            .collect();
        let tail = business_id
            .get(business_id.len().saturating_sub(10)..)
            .unwrap_or(&business_id);
        line(
            &mut out,
            [
                r.time.clone(),
                business_id.clone(),
                format!("{mchid}{day}{tail}"),
                name.to_string(),
                name.to_string(),
                direction.to_string(),
                yuan(r.amount.into()),
                yuan(balance),
                "system".to_string(),
                String::new(),
                voucher,
            ],
        );
    }
    out.push_str(FUND_FLOW_SUMMARY);
    out.push_str("\r\n");
    line(
        &mut out,
        [
            records.len().to_string(),
            ins.0.to_string(),
            yuan(ins.1),
            outs.0.to_string(),
            yuan(outs.1),
        ],
    );
    out
}

/// Splits a bill into `n` parts at line ends, as even as the lines allow; a bill of fewer
/// lines than `n` is fewer parts. The parts joined are the bill.
fn split_lines(bill: &[u8], n: usize) -> Vec<&[u8]> {
    let ends: Vec<usize> = bill
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .map(|(i, _)| i + 1)
        .filter(|&e| e < bill.len())
        .collect();
    let mut parts = Vec::new();
    let mut start = 0;
    for k in 1..n.max(1) {
        let target = bill.len() * k / n;
        let cut = ends
            .iter()
            .copied()
            .filter(|&e| e > start)
            .min_by_key(|&e| e.abs_diff(target));
        if let Some(cut) = cut {
            parts.push(&bill[start..cut]);
            start = cut;
        }
    }
    parts.push(&bill[start..]);
    parts
}

pub(crate) fn gzip(data: &[u8]) -> Result<Vec<u8>, Answer> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)
        .and_then(|_| e.finish())
        .map_err(|_| system_error("the bill could not be compressed"))
}

fn system_error(what: &str) -> Answer {
    Answer::error(500, "SYSTEM_ERROR", what)
}

fn no_statement() -> Answer {
    Answer::error(
        400,
        "NO_STATEMENT_EXIST",
        "请求的账单文件不存在 (no payments or refunds on that day)",
    )
}

/// A query value echoed in an error, cut short.
fn echo(v: &str) -> Value {
    Value::from(v.chars().take(64).collect::<String>())
}

/// A query parameter that must be one of `allowed` when present.
fn one_of<'a>(
    req: &'a Req,
    name: &str,
    allowed: &[&str],
    required: bool,
) -> Result<Option<&'a str>, Answer> {
    match req.query(name) {
        None | Some("") if required => Err(Answer::missing(&format!("/{name}"), "query")),
        None | Some("") => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v)),
        Some(v) => Err(Answer::param_error(
            &format!("/{name}"),
            "query",
            format!("{name} must be one of {}", allowed.join(", ")),
            echo(v),
        )),
    }
}

/// Whether day `date` (`YYYY-MM-DD`, Beijing time) has ended on the sandbox's clock: a day's
/// bill exists only then.
pub(crate) fn ended(shared: &Shared, date: &str) -> bool {
    let today = crate::state::rfc3339(shared.clock.now());
    date < &today[..10]
}

/// The required `bill_date`, checked: a day that has ended on the sandbox's clock.
fn bill_date<'a>(shared: &Shared, req: &'a Req) -> Result<&'a str, Answer> {
    match req.query("bill_date") {
        None | Some("") => Err(Answer::missing("/bill_date", "query")),
        Some(d) if valid_date(d) && !ended(shared, d) => Err(Answer::error(
            400,
            "NO_STATEMENT_EXIST",
            format!(
                "请求的账单文件不存在 (the bill of {d} is made once that day has ended; the sandbox's clock reads {})",
                crate::state::rfc3339(shared.clock.now())
            ),
        )),
        Some(d) if valid_date(d) => Ok(d),
        Some(d) => Err(Answer::param_error(
            "/bill_date",
            "query",
            "bill_date must be a date as YYYY-MM-DD",
            echo(d),
        )),
    }
}

fn gzipped(req: &Req) -> Result<bool, Answer> {
    Ok(one_of(req, "tar_type", &["GZIP"], false)?.is_some())
}

/// Keeps `file` for download; its URL on the emulator.
fn store(shared: &Shared, file: Vec<u8>) -> String {
    let token = lock(&shared.files).put(Bytes::from(file), Instant::now());
    format!(
        "{}v3/billdownload/file?token={token}",
        shared.settings.base_uri
    )
}

/// The listing of a plain (not encrypted) bill.
fn listing(shared: &Shared, csv: String, gz: bool) -> Answer {
    // SHA1, or SM3 in the 国密 scheme
    let (hash_type, hash) = scheme::digest(shared.settings.signing_scheme(), csv.as_bytes());
    let file = if gz {
        match gzip(csv.as_bytes()) {
            Ok(f) => f,
            Err(a) => return a,
        }
    } else {
        csv.into_bytes()
    };
    Answer::ok(json!({
        "hash_type": hash_type,
        "hash_value": hash,
        "download_url": store(shared, file),
    }))
}

/// The day's records, and what the account held before the day.
fn day_records(shared: &Shared, date: &str) -> (Vec<Record>, i128) {
    let all = records(shared, &lock(&shared.state));
    let opening = all
        .iter()
        .filter(|r| r.day() < date)
        .map(flow)
        .sum::<i128>();
    let day = all.into_iter().filter(|r| r.day() == date).collect();
    (day, opening)
}

/// `GET v3/bill/tradebill?bill_date=&bill_type=&tar_type=`.
pub(crate) fn trade_bill(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = bill_date(shared, req).and_then(|d| {
        let kind = one_of(req, "bill_type", &["ALL", "SUCCESS", "REFUND"], false)?;
        Ok((d, kind, gzipped(req)?))
    });
    let (date, kind, gz) = match checked {
        Ok(c) => c,
        Err(a) => return a,
    };
    match trade_csv_of(shared, date, kind.unwrap_or("ALL")) {
        Some(csv) => listing(shared, csv, gz),
        None => no_statement(),
    }
}

/// The trade bill of `date` (`YYYY-MM-DD`) of `bill_type` (`ALL`, `SUCCESS`, `REFUND`; APIv2's
/// `RECHARGE_REFUND` lists the refunds too), or `None` when the day has nothing of that kind:
/// for `v3/bill/tradebill` and APIv2 `pay/downloadbill` alike.
pub(crate) fn trade_csv_of(shared: &Shared, date: &str, bill_type: &str) -> Option<String> {
    let kind = match bill_type {
        "SUCCESS" => TradeBill::Success,
        "REFUND" | "RECHARGE_REFUND" => TradeBill::Refund,
        _ => TradeBill::All,
    };
    let (day, _) = day_records(shared, date);
    let chosen: Vec<&Record> = day
        .iter()
        .filter(|r| match kind {
            TradeBill::All => true,
            TradeBill::Success => r.refund.is_none(),
            TradeBill::Refund => r.refund.is_some(),
        })
        .collect();
    let mchid = shared.settings.signing_merchant();
    (!chosen.is_empty()).then(|| trade_csv(&chosen, kind, &mchid))
}

/// The fund-flow bill of `date` (`YYYY-MM-DD`) of `account` (`BASIC`, `OPERATION`, `FEES`), or
/// `None` when it has nothing: APIv2 `pay/downloadfundflow`.
pub(crate) fn fund_flow_csv_of(shared: &Shared, date: &str, account: &str) -> Option<String> {
    fund_flow_of(shared, date, account).ok()
}

const ACCOUNTS: &[&str] = &["BASIC", "OPERATION", "FEES"];

/// The fund-flow CSV of `account` on `date`; the emulated merchant's operation and fees
/// accounts see no movement.
fn fund_flow_of(shared: &Shared, date: &str, account: &str) -> Result<String, Answer> {
    if account != "BASIC" {
        return Err(no_statement());
    }
    let (day, opening) = day_records(shared, date);
    if day.is_empty() {
        return Err(no_statement());
    }
    let day: Vec<&Record> = day.iter().collect();
    Ok(fund_flow_csv(
        &day,
        opening,
        &shared.settings.signing_merchant(),
    ))
}

/// `GET v3/bill/fundflowbill?bill_date=&account_type=&tar_type=`.
pub(crate) fn fund_flow_bill(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = bill_date(shared, req).and_then(|d| {
        let account = one_of(req, "account_type", ACCOUNTS, false)?;
        Ok((d, account.unwrap_or("BASIC"), gzipped(req)?))
    });
    let (date, account, gz) = match checked {
        Ok(c) => c,
        Err(a) => return a,
    };
    match fund_flow_of(shared, date, account) {
        Ok(csv) => listing(shared, csv, gz),
        Err(a) => a,
    }
}

/// One encrypted part of a sub-merchant bill: its listing entry. The key is random
/// characters (32; 16 for `sm4`), encrypted for the merchant (RSA-OAEP, or SM2); the file is
/// AES-256-GCM (or SM4-GCM) under it and the `nonce`'s bytes, no associated data, the tag last.
fn encrypted_part(
    shared: &Shared,
    seq: usize,
    part: &[u8],
    gz: bool,
    sm4: bool,
) -> Result<Value, Answer> {
    let plain = if gz { gzip(part)? } else { part.to_vec() };
    let nonce = formatter::nonce(12);
    let s = &shared.settings;
    // for the merchant asking, under its own key
    let merchant_key = s.public_key_of(&s.signing_merchant());
    let (sealed, encrypt_key) = scheme::seal_file(s.scheme, sm4, &plain, &nonce, merchant_key)
        .map_err(|_| system_error("the bill could not be encrypted"))?;
    let (hash_type, hash) = scheme::digest(s.signing_scheme(), part);
    Ok(json!({
        "bill_sequence": seq,
        "hash_type": hash_type,
        "hash_value": hash,
        "download_url": store(shared, sealed),
        "encrypt_key": encrypt_key,
        "nonce": nonce,
    }))
}

/// `GET v3/bill/sub-merchant-fundflowbill?sub_mchid=&bill_date=&account_type=&algorithm=
/// &tar_type=`: the emulated merchant's fund flow (whatever the sub-merchant), in two parts,
/// each encrypted with a key of its own.
pub(crate) fn sub_merchant_fund_flow_bill(shared: &Arc<Shared>, req: &Req) -> Answer {
    let checked = (|| {
        match req.query("sub_mchid") {
            None | Some("") => return Err(Answer::missing("/sub_mchid", "query")),
            Some(s) if s.len() > 32 || !s.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(Answer::param_error(
                    "/sub_mchid",
                    "query",
                    "sub_mchid must be a merchant number (digits)",
                    echo(s),
                ))
            }
            Some(_) => {}
        }
        let date = bill_date(shared, req)?;
        let account = one_of(req, "account_type", ACCOUNTS, true)?.unwrap_or("BASIC");
        let algorithm = one_of(req, "algorithm", &["AEAD_AES_256_GCM", "SM4_GCM"], true)?;
        let sm4 = algorithm == Some("SM4_GCM");
        if sm4 && shared.settings.scheme == wechatpay_chain::Scheme::Rsa {
            return Err(Answer::param_error(
                "/algorithm",
                "query",
                "the emulator makes SM4_GCM parts in the 国密 scheme only (EmulatorConfig::scheme(Scheme::Sm2), \
                 wechatpay --scheme sm2 serve); use AEAD_AES_256_GCM",
                Value::from("SM4_GCM"),
            ));
        }
        Ok((date, account, gzipped(req)?, sm4))
    })();
    let (date, account, gz, sm4) = match checked {
        Ok(c) => c,
        Err(a) => return a,
    };
    let csv = match fund_flow_of(shared, date, account) {
        Ok(csv) => csv,
        Err(a) => return a,
    };
    let mut list = Vec::new();
    for (i, part) in split_lines(csv.as_bytes(), 2).into_iter().enumerate() {
        match encrypted_part(shared, i + 1, part, gz, sm4) {
            Ok(entry) => list.push(entry),
            Err(a) => return a,
        }
    }
    Answer::ok(json!({"download_bill_count": list.len(), "download_bill_list": list}))
}

/// `GET v3/billdownload/file?token=`: the file, unsigned.
pub(crate) fn download(shared: &Arc<Shared>, req: &Req) -> Answer {
    let token = match req.query("token") {
        None | Some("") => return Answer::missing("/token", "query"),
        Some(t) => t,
    };
    match lock(&shared.files).get(token, Instant::now()) {
        Some(file) => Answer::file(file),
        None => Answer::error(
            400,
            "INVALID_REQUEST",
            "下载链接已失效 (the download token is unknown or has expired)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(time: &str, no: &str, id: &str, amount: i64) -> Record {
        Record {
            time: time.into(),
            appid: "wxd678efh567hg6787".into(),
            transaction_id: id.into(),
            out_trade_no: no.into(),
            openid: "oUpF8uMuAJO_M2pxb1Q9z0000001".into(),
            trade_type: "NATIVE".into(),
            currency: "CNY".into(),
            description: "Image形象店-深圳腾大-QQ公仔".into(),
            attach: String::new(),
            amount,
            refund: None,
        }
    }

    fn refund(of: &Record, time: &str, id: &str, amount: i64) -> Record {
        Record {
            time: time.into(),
            amount,
            refund: Some(RefundLine {
                refund_id: id.into(),
                out_refund_no: format!("R-{id}"),
                status: "SUCCESS".into(),
                success_time: time.into(),
            }),
            ..of.clone()
        }
    }

    fn lines(csv: &str) -> Vec<&str> {
        assert!(csv.ends_with("\r\n"), "{csv:?}");
        csv.trim_end_matches("\r\n").split("\r\n").collect()
    }

    #[test]
    fn dates_must_be_real_days() {
        for ok in [
            "2024-06-01",
            "2024-02-29",
            "2000-02-29",
            "1999-12-31",
            "0001-01-01",
        ] {
            assert!(valid_date(ok), "{ok}");
        }
        let huge = "9".repeat(100_000);
        for bad in [
            "",
            "2024-6-01",
            "2024-06-1",
            "20240601",
            "2023-02-29",
            "1900-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-04-31",
            "2024-06-00",
            "0000-01-01",
            "2024/06/01",
            "+024-06-01",
            "2024-06-01 ",
            "２０２４-06-01",
            "2024-0６-01",
            huge.as_str(),
        ] {
            assert!(!valid_date(bad), "{bad:?}");
        }
    }

    #[test]
    fn trade_bills_list_the_day_with_backticks_and_a_summary() {
        let p = payment(
            "2024-06-01 10:00:00",
            "1217752501201407033233368018",
            "4200000001",
            100,
        );
        let r = refund(&p, "2024-06-01 11:00:00", "5030000002", 60);
        let all = trade_csv(&[&p, &r], TradeBill::All, "1900000001");
        let l = lines(&all);
        assert_eq!(l.len(), 5);
        assert_eq!(l[0], TRADE_ALL);
        let cols: Vec<&str> = l[1].split(',').collect();
        assert_eq!(cols.len(), TRADE_ALL.split(',').count());
        assert!(cols.iter().all(|c| c.starts_with('`')), "{cols:?}");
        assert_eq!(cols[0], "`2024-06-01 10:00:00");
        assert_eq!(cols[2], "`1900000001");
        assert_eq!(cols[6], "`1217752501201407033233368018");
        assert_eq!(cols[9], "`SUCCESS");
        assert_eq!(cols[12], "`1.00");
        let refund_cols: Vec<&str> = l[2].split(',').collect();
        assert_eq!(refund_cols[9], "`REFUND");
        assert_eq!(refund_cols[14], "`5030000002");
        assert_eq!(refund_cols[16], "`0.60");
        assert_eq!(refund_cols[19], "`SUCCESS");
        assert_eq!(l[3], TRADE_SUMMARY);
        assert_eq!(l[4], "`2,`1.00,`0.60,`0.00,`0.00,`1.00,`0.60");

        let success = trade_csv(&[&p], TradeBill::Success, "1900000001");
        let l = lines(&success);
        assert_eq!(l[0], TRADE_SUCCESS);
        assert_eq!(l[1].split(',').count(), TRADE_SUCCESS.split(',').count());
        assert_eq!(l[3], "`1,`1.00,`0.00,`0.00,`0.00,`1.00,`0.00");
        let refunds = trade_csv(&[&r], TradeBill::Refund, "1900000001");
        let l = lines(&refunds);
        let cols: Vec<&str> = l[1].split(',').collect();
        assert_eq!(cols.len(), TRADE_REFUND.split(',').count());
        assert_eq!(cols[14], "`2024-06-01 11:00:00");
        assert_eq!(l[3], "`1,`0.00,`0.60,`0.00,`0.00,`0.00,`0.60");
    }

    #[test]
    fn fields_stay_on_their_line_and_in_their_column() {
        let mut p = payment("2024-06-01 10:00:00", "o-0001", "4200000001", 1);
        p.description = "a,b \"c\"\r\nd".into();
        let csv = trade_csv(&[&p], TradeBill::Success, "1900000001");
        let l = lines(&csv);
        assert_eq!(l.len(), 4);
        assert!(l[1].contains(",\"`a,b \"\"c\"\"  d\","), "{}", l[1]);
        assert_eq!(field("x"), "`x");
        assert_eq!(field(""), "`");
    }

    #[test]
    fn amounts_are_yuan_without_overflow() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(12_345), "123.45");
        assert_eq!(yuan(-60), "-0.60");
        assert_eq!(yuan(i128::from(i64::MAX) * 2), "184467440737095516.14");
        let p = payment("2024-06-01 10:00:00", "o-0001", "4200000001", i64::MAX);
        let q = payment("2024-06-01 10:00:01", "o-0002", "4200000002", i64::MAX);
        let csv = trade_csv(&[&p, &q], TradeBill::All, "1900000001");
        assert!(csv.ends_with(
            "`2,`184467440737095516.14,`0.00,`0.00,`0.00,`184467440737095516.14,`0.00\r\n"
        ));
    }

    #[test]
    fn fund_flow_runs_the_balance_from_the_opening() {
        let p = payment("2024-06-01 10:00:00", "o-0001", "42000000010000000007", 100);
        let r = refund(&p, "2024-06-01 11:00:00", "50300000020000000009", 60);
        let csv = fund_flow_csv(&[&p, &r], 500, "1900000001");
        let l = lines(&csv);
        assert_eq!(l[0], FUND_FLOW);
        assert_eq!(
            l[1],
            "`2024-06-01 10:00:00,`42000000010000000007,`1900000001202406010000000007,`交易,`交易,`收入,`1.00,`6.00,`system,`,`o-0001"
        );
        assert_eq!(
            l[2],
            "`2024-06-01 11:00:00,`50300000020000000009,`1900000001202406010000000009,`退款,`退款,`支出,`0.60,`5.40,`system,`,`REF42000000010000000007"
        );
        assert_eq!(l[3], FUND_FLOW_SUMMARY);
        assert_eq!(l[4], "`2,`1,`1.00,`1,`0.60");
    }

    #[test]
    fn bills_split_at_line_ends_into_parts_that_join_back() {
        let bill = b"h\r\na\r\nbb\r\nccc\r\nsum\r\n";
        let parts = split_lines(bill, 2);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), bill);
        assert!(parts[0].ends_with(b"\n"));
        assert_eq!(parts[0], b"h\r\na\r\nbb\r\n");
        // Too short to split: one part.
        for short in [&b"only one line\r\n"[..], b"no line end", b""] {
            assert_eq!(split_lines(short, 2), vec![short]);
        }
        assert_eq!(split_lines(b"a\nb", 2), vec![&b"a\n"[..], b"b"]);
    }

    #[test]
    fn files_expire_and_are_bounded() {
        let mut files = Files::default();
        let t0 = Instant::now();
        let first = files.put(Bytes::from_static(b"one"), t0);
        assert_eq!(first.len(), 64);
        assert_eq!(files.get(&first, t0).as_deref(), Some(&b"one"[..]));
        assert!(files.get("nope", t0).is_none());
        assert!(files.get(&first, t0 + FILE_TTL).is_none());
        assert_eq!(files.len(), 0);
        let tokens: Vec<String> = (0..MAX_FILES + 3)
            .map(|i| files.put(Bytes::from(i.to_string()), t0))
            .collect();
        assert_eq!(files.len(), MAX_FILES);
        assert!(files.get(&tokens[2], t0).is_none());
        assert_eq!(files.get(&tokens[3], t0).as_deref(), Some("3".as_bytes()));
    }

    #[test]
    fn times_convert_to_bill_times() {
        assert_eq!(
            bill_time("2015-05-20T13:29:35+08:00").as_deref(),
            Some("2015-05-20 13:29:35")
        );
        assert_eq!(bill_time("2015"), None);
    }
}
