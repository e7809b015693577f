//! 品牌会员 (brand membership): `v3/brand/partner/card-member/user-points/sync` sets a member's
//! point balance and answers the documented fields back; `out_request_no` makes it idempotent.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::http::answer::Answer;
use crate::http::validate::{self, req, Field, Kind};
use crate::state::shared::Shared;
use crate::util::lock;

const SYNC: &[Field] = &[
    req("out_request_no", Kind::Str),
    req("brand_id", Kind::Str),
    req("card_id", Kind::Str),
    req("openid", Kind::Str),
    req("user_card_code", Kind::Str),
    req("point_balance", Kind::Int),
];

/// The fields answered, in the documented order.
const ANSWERED: [&str; 6] = [
    "out_request_no",
    "brand_id",
    "card_id",
    "openid",
    "user_card_code",
    "point_balance",
];

/// `POST v3/brand/partner/card-member/user-points/sync`.
pub(crate) fn sync_points(shared: &Arc<Shared>, body: &[u8]) -> Answer {
    let obj = match validate::object(body).and_then(|o| validate::check(&o, SYNC).map(|_| o)) {
        Ok(o) => o,
        Err(a) => return a,
    };
    let balance = validate::int(&obj, "point_balance");
    if balance < 0 {
        return Answer::param_error(
            "/point_balance",
            "body",
            "point_balance must not be negative",
            Value::from(balance),
        );
    }
    let answer: Map<String, Value> = ANSWERED
        .iter()
        .filter_map(|k| obj.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    let answer = Value::Object(answer);
    let no = validate::text(&obj, "out_request_no");
    let mut st = lock(&shared.state);
    match st.fresh("points", "out_request_no", no, &answer) {
        Ok(true) => {}
        Ok(false) => return Answer::ok(answer),
        Err(a) => return a,
    }
    st.remember("points", no, &answer);
    let member = format!(
        "{}/{}/{}",
        validate::text(&obj, "brand_id"),
        validate::text(&obj, "card_id"),
        validate::text(&obj, "user_card_code")
    );
    st.points.insert(member, balance);
    Answer::ok(answer)
}
