//! Service-provider (partner) payments (`v3/pay/partner/transactions/{jsapi,app,h5,native}`):
//! the service provider (the sandbox's merchant, `sp_mchid`) orders for a sub-merchant
//! (`sub_mchid`); orders are kept per sub-merchant, queried by `out-trade-no` and by `id` with
//! `?sp_mchid=&sub_mchid=`, closed, paid through [`crate::flows::actions`] (`TRANSACTION.SUCCESS`
//! with the partner resource: `sp_appid`, `sp_mchid`, `sub_appid`, `sub_mchid`, `payer`'s
//! `sp_openid`/`sub_openid`), and refunded through `v3/refund/domestic/refunds` with
//! `sub_mchid`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::documented;
use crate::flows::pay::{
    check_order, check_signer, insert_outcome, insert_state, open_order, owner,
};
use crate::http::answer::Answer;
use crate::http::request::Req;
use crate::http::validate;
use crate::state::shared::Shared;
use crate::state::{partner_key, Party, Transaction};
use crate::util::lock;

/// Checks that `sp_mchid` is the merchant that signed the request, and that it may act for
/// `sub_mchid` ([`Settings::may_act_for`](crate::http::settings::Settings::may_act_for)).
fn check_sp_mchid(
    shared: &Shared,
    sp_mchid: &str,
    sub_mchid: &str,
    location: &str,
) -> Result<(), Answer> {
    check_signer(shared, "sp_mchid", "service provider", sp_mchid, location)?;
    if sub_mchid.is_empty()
        || sub_mchid == sp_mchid
        || shared.settings.may_act_for(sp_mchid, sub_mchid)
    {
        // an empty or the provider's own sub_mchid gets the errors it always got
        return Ok(());
    }
    Err(Answer::error(
        403,
        "NO_AUTH",
        format!(
            "商户无权限 (service provider {sp_mchid} has no sub-merchant {sub_mchid}: a \
             service provider acts for its own sub-merchants only)"
        ),
    ))
}

fn text_of<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v.and_then(|v| v.get(key)).and_then(Value::as_str)
}

/// The partner order as the query and the notification show it.
pub(crate) fn transaction_json(shared: &Shared, t: &Transaction) -> Value {
    let r = &t.request;
    let mut m = Map::new();
    m.insert("sp_appid".into(), json!(validate::text(r, "sp_appid")));
    m.insert("sp_mchid".into(), json!(owner(shared, r, "sp_mchid")));
    if let Some(a) = r.get("sub_appid") {
        m.insert("sub_appid".into(), a.clone());
    }
    m.insert("sub_mchid".into(), json!(validate::text(r, "sub_mchid")));
    m.insert(
        "out_trade_no".into(),
        json!(validate::text(r, "out_trade_no")),
    );
    if let Some(id) = &t.transaction_id {
        m.insert("transaction_id".into(), json!(id));
        m.insert("bank_type".into(), json!("OTHERS"));
    }
    insert_state(&mut m, t);
    m.insert(
        "description".into(),
        json!(validate::text(r, "description")),
    );
    let payer = t.openid.as_ref().map(|o| {
        let mut payer = json!({"sp_openid": o});
        if let Some(sub) = text_of(r.get("payer"), "sub_openid") {
            payer["sub_openid"] = json!(sub);
        }
        payer
    });
    insert_outcome(&mut m, t, payer);
    Value::Object(m)
}

/// `POST v3/pay/partner/transactions/{jsapi,app,h5,native}`.
pub(crate) fn create(shared: &Arc<Shared>, kind: &str, req: &Req) -> Answer {
    if let Err(a) = documented::check(req) {
        return a;
    }
    let obj = match validate::object(&req.body) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let signer = check_sp_mchid(
        shared,
        validate::text(&obj, "sp_mchid"),
        validate::text(&obj, "sub_mchid"),
        "body",
    );
    let no = match check_order(&obj, signer) {
        Ok(no) => no,
        Err(a) => return a,
    };
    let sub_mchid = validate::text(&obj, "sub_mchid").to_string();
    if sub_mchid == validate::text(&obj, "sp_mchid") {
        return Answer::param_error(
            "/sub_mchid",
            "body",
            "sub_mchid must be a sub-merchant, not the service provider itself",
            Value::from(sub_mchid),
        );
    }
    let key = partner_key(&sub_mchid, &no);
    let openid = text_of(obj.get("payer"), "sp_openid").map(str::to_string);
    open_order(shared, key, obj, kind, openid, Party::Partner { sub_mchid })
}

/// How a partner order is looked up.
pub(crate) enum By<'a> {
    OutTradeNo(&'a str),
    Id(&'a str),
}

/// `GET v3/pay/partner/transactions/out-trade-no/{out_trade_no}` and `…/id/{transaction_id}`,
/// with `?sp_mchid=&sub_mchid=`.
pub(crate) fn query(shared: &Arc<Shared>, by: By<'_>, req: &Req) -> Answer {
    if let Err(a) = documented::check(req) {
        return a;
    }
    let Some(sp_mchid) = req.query("sp_mchid") else {
        return Answer::missing("/sp_mchid", "query");
    };
    let Some(sub_mchid) = req.query("sub_mchid") else {
        return Answer::missing("/sub_mchid", "query");
    };
    if let Err(a) = check_sp_mchid(shared, sp_mchid, sub_mchid, "query") {
        return a;
    }
    let st = lock(&shared.state);
    let key = match by {
        By::OutTradeNo(no) => Some(partner_key(sub_mchid, no)),
        By::Id(id) => st.transaction_ids.get(id).cloned(),
    };
    let found = key
        .and_then(|k| st.transactions.get(&k))
        .filter(|t| matches!(&t.party, Party::Partner { sub_mchid: s } if s == sub_mchid))
        .filter(|t| owner(shared, &t.request, "sp_mchid") == sp_mchid);
    match found {
        Some(t) => Answer::ok(transaction_json(shared, t)),
        None => Answer::no_order(),
    }
}

/// `POST v3/pay/partner/transactions/out-trade-no/{out_trade_no}/close`: 204.
pub(crate) fn close(shared: &Arc<Shared>, no: &str, req: &Req) -> Answer {
    if let Err(a) = documented::check(req) {
        return a;
    }
    let obj = match validate::object(&req.body) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let (sp_mchid, sub_mchid) = (
        validate::text(&obj, "sp_mchid"),
        validate::text(&obj, "sub_mchid"),
    );
    if let Err(a) = check_sp_mchid(shared, sp_mchid, sub_mchid, "body") {
        return a;
    }
    let key = partner_key(sub_mchid, no);
    let mut st = lock(&shared.state);
    let own = |t: &&mut Transaction| owner(shared, &t.request, "sp_mchid") == sp_mchid;
    match st.transactions.get_mut(&key).filter(own) {
        Some(t) => crate::flows::pay::close_order(t),
        None => Answer::no_order(),
    }
}
