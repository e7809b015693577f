//! Every documented event type can be triggered, and this crate's library verifies and
//! decrypts each: `notify::Notifier` for APIv3, the `notify_v2` functions for APIv2.

use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use wechatpay_chain::catalog::{self, Field, Protocol, Type};
use wechatpay_chain::client_xml::SignType;
use wechatpay_chain::crypto::AesGcm;
use wechatpay_chain::notify::{Notifier, Refusal};
use wechatpay_chain::notify_v2::{self, KindV2};
use wechatpay_chain::{Error, Keyring, PrivateKey};
use wechatpay_emulator::events::{self, Fault, Keys, Trigger, Triggered, Wire};

const SERIAL: &str = "PUB_KEY_ID_0119000000012026120200000000000001";
const APIV3: &str = "0123456789abcdefghijklmnopqrstuv";
const APIV2: &str = "192006250b4c09247ec02edce69f6a2d";
const NOW: i64 = 1_780_000_000;

fn keys() -> &'static (Keys, Notifier) {
    static KEYS: OnceLock<(Keys, Notifier)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let key = PrivateKey::from_openssl(openssl::pkey::PKey::from_rsa(rsa).unwrap());
        let ring = Keyring::new();
        ring.insert(SERIAL, key.public_key().unwrap());
        let mut keys = Keys::new(key, SERIAL, APIV3);
        keys.apiv2_key = APIV2.into();
        keys.mchid = "1900000009".into();
        (keys, Notifier::new(ring.into(), APIV3).unwrap())
    })
}

/// The resource of a made notification as the library reads it, verified and decrypted.
fn open(t: &Triggered) -> Result<Value, Error> {
    let (_, notifier) = keys();
    match t.wire {
        Wire::V3 => {
            let n = notifier.verify_at(&t.headers, &t.body, NOW)?;
            assert_eq!(n.event_type, t.event.kind);
            assert_eq!(n.resource_type, "encrypt-resource");
            assert!(n.create_time.ends_with("+08:00"), "{}", n.create_time);
            assert_eq!(n.create_time.len(), 25, "{}", n.create_time);
            Ok(n.resource)
        }
        Wire::V2Refund => {
            let n = notify_v2::verify(&t.body, APIV2, SignType::Md5)?;
            assert_eq!(n.kind(), KindV2::Refund);
            Ok(as_object(n.fields()))
        }
        Wire::V2Signed(kind) => {
            let n = notify_v2::verify(&t.body, APIV2, kind)?;
            assert_eq!(n.kind(), KindV2::Signed);
            Ok(as_object(n.fields()))
        }
        Wire::V2Json { field, sign } => {
            let n = notify_v2::verify(&t.body, APIV2, sign)?;
            let text = n.get(field).expect("the resource's field");
            Ok(serde_json::from_str(text).expect("JSON in the field"))
        }
        Wire::V2Sealed => {
            let n = notify_v2::verify(&t.body, APIV2, SignType::HmacSha256)?;
            assert_eq!(n.get("event_type"), Some(t.event.kind.as_str()));
            assert_eq!(n.get("event_algorithm"), Some("AEAD_AES_256_GCM"));
            let clear = AesGcm::decrypt(
                n.get("event_ciphertext").unwrap(),
                APIV3,
                n.get("event_nonce").unwrap(),
                n.get("event_associated_data").unwrap_or(""),
            )?;
            Ok(serde_json::from_slice(&clear).expect("a JSON resource"))
        }
        _ => panic!("a wire this test does not know: {:?}", t.wire),
    }
}

/// The AES-GCM nonce of a made notification, if it encrypts with AES-GCM.
fn gcm_nonce(t: &Triggered) -> Option<String> {
    match t.wire {
        Wire::V3 => {
            let body: Value = serde_json::from_slice(&t.body).unwrap();
            Some(body["resource"]["nonce"].as_str().unwrap().to_string())
        }
        Wire::V2Sealed => {
            let n = notify_v2::verify(&t.body, APIV2, SignType::HmacSha256).unwrap();
            Some(n.get("event_nonce").unwrap().to_string())
        }
        _ => None,
    }
}

#[test]
fn two_notifications_never_share_an_aes_gcm_nonce() {
    // the same event at the same second, for two merchants: one key, one associated data
    let (keys, _) = keys();
    let mut other = keys.clone();
    other.mchid = "1900000010".into();
    for (kind, v2) in [
        ("TRANSACTION.SUCCESS", false),
        ("TRANSACTION.SUCCESS", true),
    ] {
        let t = Trigger::new(events::find(kind, v2).unwrap()).at(NOW);
        let (a, b) = (t.build(keys).unwrap(), t.build(&other).unwrap());
        assert_eq!(a.wire == Wire::V2Sealed, v2, "{kind} {v2}: {:?}", a.wire);
        let (na, nb) = (gcm_nonce(&a).unwrap(), gcm_nonce(&b).unwrap());
        assert_eq!(na.len(), 12, "{na}");
        assert_ne!(na, nb, "{kind} {v2}");
        assert_eq!(open(&a).unwrap(), a.resource, "{kind} {v2}");
        assert_eq!(open(&b).unwrap(), b.resource, "{kind} {v2}");
    }
}

fn as_object(fields: &[(String, String)]) -> Value {
    Value::Object(
        fields
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// Every required field of `fields` is in `v`, of its documented type (APIv2 XML: text);
/// returns the paths checked.
fn required(fields: &[Field], v: &Value, at: &str, xml: bool, checked: &mut Vec<String>) {
    for f in fields
        .iter()
        .filter(|f| f.required && !f.name.contains('$'))
    {
        let path = format!("{at}/{}", f.name);
        let got = v
            .get(&f.name)
            .unwrap_or_else(|| panic!("{path} is missing from {v}"));
        checked.push(path.clone());
        if xml {
            assert!(got.is_string(), "{path}: {got}");
            continue;
        }
        let fits = match f.ty {
            Type::String | Type::Any => got.is_string(),
            Type::Integer => got.is_i64() || got.is_u64(),
            Type::Number => got.is_number(),
            Type::Boolean | Type::True => got.is_boolean(),
            Type::Object => got.is_object(),
            Type::ObjectArray | Type::StringArray | Type::IntegerArray | Type::NumberArray => {
                got.as_array().is_some_and(|a| !a.is_empty())
            }
            _ => true,
        };
        assert!(fits, "{path} should be {}: {got}", f.ty);
        if !f.enumeration.is_empty() && got.is_string() {
            assert!(
                f.enumeration
                    .iter()
                    .any(|e| Some(e.as_str()) == got.as_str()),
                "{path} {got} is outside {:?}",
                f.enumeration
            );
        }
        match (f.ty, got) {
            (Type::Object, _) => required(&f.children, got, &path, xml, checked),
            (Type::ObjectArray, Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    required(&f.children, item, &format!("{path}/{i}"), xml, checked);
                }
            }
            _ => {}
        }
    }
}

/// A string field of the resource to set, and its path (the first one found).
fn a_string_field(fields: &[Field], at: &str) -> Option<String> {
    fields.iter().find_map(|f| match f.ty {
        Type::String if !f.name.contains('$') && f.enumeration.is_empty() && f.name != "sign" => {
            Some(format!("{at}{}", f.name))
        }
        Type::Object => a_string_field(&f.children, &format!("{at}{}.", f.name)),
        _ => None,
    })
}

#[test]
fn every_event_of_the_catalogue_is_triggered_and_verified_by_the_library() {
    let (keys, _) = keys();
    let all: Vec<_> = catalog::events().collect();
    assert!(all.len() >= 100, "{} events", all.len());
    let mut fields_checked = 0;
    for event in all {
        let v2 = event.protocol == Protocol::V2;
        let t = Trigger::new(event).at(NOW);
        let sent = t
            .build(keys)
            .unwrap_or_else(|e| panic!("{}: {e}", event.kind));
        assert!(sent.must_accept());
        assert!(sent.headers.contains_key("request-id"), "{}", event.kind);
        let resource = open(&sent).unwrap_or_else(|e| panic!("{} ({v2}): {e}", event.kind));
        assert_eq!(resource, sent.resource, "{}", event.kind);
        let xml = matches!(sent.wire, Wire::V2Signed(_) | Wire::V2Refund);
        let mut checked = Vec::new();
        required(event.resource(), &resource, "", xml, &mut checked);
        fields_checked += checked.len();

        // the same trigger at the same time makes the same resource and ids; what it
        // encrypts with AES-GCM, it encrypts under a nonce of its own
        let again = t.build(keys).unwrap();
        assert_eq!(again.resource, sent.resource, "{}", event.kind);
        assert_eq!(
            again.headers["request-id"], sent.headers["request-id"],
            "{}",
            event.kind
        );
        match gcm_nonce(&sent) {
            Some(nonce) => {
                assert_ne!(gcm_nonce(&again).unwrap(), nonce, "{}", event.kind);
                assert_eq!(open(&again).unwrap(), resource, "{}", event.kind);
            }
            None => {
                assert_eq!(again.body, sent.body, "{}", event.kind);
                assert_eq!(again.headers, sent.headers, "{}", event.kind);
            }
        }

        // a field set lands, typed as documented
        if let Some(path) = a_string_field(event.resource(), "") {
            let set = t
                .clone()
                .set_text(&format!("{path}=SET-{}", event.kind))
                .and_then(|t| t.set_text("sandbox_extra.n:=7"))
                .unwrap()
                .build(keys)
                .unwrap();
            let got = open(&set).unwrap_or_else(|e| panic!("{} set: {e}", event.kind));
            let pointer = format!("/{}", path.replace('.', "/"));
            assert_eq!(
                got.pointer(&pointer),
                Some(&json!(format!("SET-{}", event.kind))),
                "{} {path}",
                event.kind
            );
            if !xml {
                assert_eq!(got["sandbox_extra"]["n"], 7, "{}", event.kind);
            }
        }

        // every fault is refused, as what it is
        for fault in Fault::ALL {
            let bad = t.clone().fault(fault);
            if !fault.applies_to(sent.wire) {
                assert!(matches!(bad.build(keys), Err(Error::InvalidArgument(_))));
                continue;
            }
            let bad = bad.build(keys).unwrap();
            assert!(!bad.must_accept());
            match (open(&bad), sent.wire) {
                (Err(Error::Notification { kind, .. }), Wire::V3) => {
                    assert_eq!(kind, fault.refusal(), "{} {fault}", event.kind)
                }
                (Err(Error::Verification(_)), w) if w.is_v2() => {}
                (other, _) => panic!("{} {fault}: {other:?}", event.kind),
            }
        }
    }
    assert!(
        fields_checked > 500,
        "{fields_checked} required fields checked"
    );
}

#[test]
fn optional_objects_set_get_their_required_fields_and_states_follow_the_type() {
    let (keys, _) = keys();
    let e = events::find("TRANSACTION.SUCCESS", false).unwrap();
    let t = Trigger::new(e)
        .at(NOW)
        .set_text("promotion_detail.0.coupon_id=C1")
        .unwrap()
        .set_text("amount.total=888")
        .unwrap()
        .build(keys)
        .unwrap();
    let r = open(&t).unwrap();
    assert_eq!(r["trade_state"], "SUCCESS");
    assert_eq!(r["amount"]["total"], 888);
    assert_eq!(r["promotion_detail"][0]["coupon_id"], "C1");
    assert_eq!(r["sp_mchid"], "1900000009");
    let field = |name: &str| {
        e.resource()
            .iter()
            .find(|f| f.name == name)
            .unwrap()
            .children
            .iter()
            .filter(|f| f.required)
            .map(|f| f.name.clone())
            .collect::<Vec<_>>()
    };
    for name in field("promotion_detail") {
        assert!(r["promotion_detail"][0].get(&name).is_some(), "{name}");
    }
    let closed = Trigger::new(events::find("REFUND.CLOSED", false).unwrap())
        .at(NOW)
        .build(keys)
        .unwrap();
    let closed = open(&closed).unwrap();
    assert_eq!(closed["refund_status"], "CLOSED");
    // amounts in fen, integers, though the page writes `number`
    for k in ["total", "refund", "payer_total", "payer_refund"] {
        assert!(closed["amount"][k].is_u64(), "{k}: {}", closed["amount"]);
    }
    let refund = Trigger::new(events::find("refund-processed", false).unwrap())
        .at(NOW)
        .build(keys)
        .unwrap();
    let r = open(&refund).unwrap();
    assert_eq!(r["refund_status"], "SUCCESS");
    assert!(r["cash_refund_fee"].as_str().is_some());
}

#[test]
fn the_probe_and_the_stale_timestamp_look_as_the_platform_sends_them() {
    let (keys, notifier) = keys();
    let e = events::find("REFUND.SUCCESS", false).unwrap();
    let probe = Trigger::new(e)
        .at(NOW)
        .fault(Fault::Probe)
        .build(keys)
        .unwrap();
    let sig = probe.headers["wechatpay-signature"].to_str().unwrap();
    assert!(sig.starts_with("WECHATPAY/SIGNTEST/"), "{sig}");
    let stale = Trigger::new(e)
        .at(NOW)
        .fault(Fault::Stale)
        .build(keys)
        .unwrap();
    let ts: i64 = stale.headers["wechatpay-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((NOW - ts).abs() > 300);
    // a stale notification is otherwise genuine: at its own time it verifies
    assert!(notifier.verify_at(&stale.headers, &stale.body, ts).is_ok());
    let wrong = Trigger::new(e)
        .at(NOW)
        .fault(Fault::WrongSerial)
        .build(keys)
        .unwrap();
    assert_ne!(wrong.headers["wechatpay-serial"], SERIAL);
    assert!(wrong.headers["wechatpay-serial"]
        .to_str()
        .unwrap()
        .starts_with("PUB_KEY_ID_"));
    match notifier.verify_at(&probe.headers, &probe.body, NOW) {
        Err(Error::Notification { kind, .. }) => assert_eq!(kind, Refusal::SignatureProbe),
        other => panic!("{other:?}"),
    }
}

#[test]
fn apiv2_events_need_the_apiv2_key() {
    let (keys, _) = keys();
    let mut no_v2 = keys.clone();
    no_v2.apiv2_key.clear();
    let e = events::find("transaction-success", false).unwrap();
    assert!(matches!(
        Trigger::new(e).build(&no_v2),
        Err(Error::Config { .. })
    ));
    assert!(Trigger::new(e).build(keys).is_ok());
}

#[test]
fn generated_amounts_agree_with_each_other_and_currencies_are_cny() {
    let refund = Trigger::new(events::find("REFUND.SUCCESS", false).unwrap());
    let a = &refund.resource("1900000001")["amount"];
    let (total, refunded) = (a["total"].as_i64().unwrap(), a["refund"].as_i64().unwrap());
    assert!(0 < refunded && refunded <= total, "{a}");
    assert_eq!(
        (a["payer_total"].as_i64(), a["payer_refund"].as_i64()),
        (Some(total), Some(refunded))
    );
    assert_eq!(
        (a["currency"].as_str(), a["payer_currency"].as_str()),
        (Some("CNY"), Some("CNY"))
    );

    // what is set stays as set, and the generated figures follow it
    let set = refund.clone().set_text("amount.total=5").unwrap();
    let a = &set.resource("1900000001")["amount"];
    assert_eq!(a["total"], 5, "{a}");
    assert!(a["refund"].as_i64().unwrap() <= 5, "{a}");

    // an amount the page leaves optional is filled as the platform sends it
    let paid = Trigger::new(events::find("TRANSACTION.SUCCESS", false).unwrap());
    let a = &paid.resource("1900000001")["amount"];
    assert_eq!(
        (a["currency"].as_str(), a["payer_currency"].as_str()),
        (Some("CNY"), Some("CNY"))
    );
    assert!(a["payer_total"].as_i64().unwrap() > 0, "{a}");
}
