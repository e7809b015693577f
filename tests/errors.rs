//! Errors keep their causes: `source()` leads to the serde_json, openssl, I/O and hyper error
//! that caused them, and each level's Display says only its own part (never its cause's text).

mod common;

use std::error::Error as _;

use common::{Keys, Server};
use serde_json::json;
use wechatpay_chain::util::media::Media;
use wechatpay_chain::{certificates, Error, PublicKey, Rsa};

/// Every level of `e`'s chain, top first.
fn chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = vec![e];
    while let Some(next) = out[out.len() - 1].source() {
        out.push(next);
    }
    out
}

/// `e`'s Display does not hold its direct cause's text (each level says only its own part).
fn does_not_repeat(e: &Error) {
    let top = e.to_string();
    let cause = e.source().expect("the error keeps its cause").to_string();
    assert!(!cause.is_empty());
    assert!(
        !top.contains(&cause),
        "Display repeats the cause: {top:?} holds {cause:?}"
    );
}

#[test]
fn decode_keeps_the_serde_json_error() {
    let e = certificates::decrypt_listing(b"{\"data\": 5", &"k".repeat(32)).unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    let cause = e.source().expect("a source");
    assert!(
        cause.downcast_ref::<serde_json::Error>().is_some(),
        "{cause:?}"
    );
    does_not_repeat(&e);
}

#[test]
fn key_keeps_the_openssl_error() {
    let bad = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let e = Rsa::from_private(bad).unwrap_err();
    assert!(matches!(e, Error::Key { .. }), "{e:?}");
    let cause = e.source().expect("a source");
    assert!(
        cause.downcast_ref::<openssl::error::ErrorStack>().is_some(),
        "{cause:?}"
    );
    does_not_repeat(&e);
}

#[test]
fn key_file_keeps_the_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("apiclient_key.pem");
    let e = Rsa::from_private(&format!("file://{}", missing.display())).unwrap_err();
    assert!(matches!(e, Error::Key { .. }), "{e:?}");
    let io = e
        .source()
        .and_then(|c| c.downcast_ref::<std::io::Error>())
        .expect("an io::Error source");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    does_not_repeat(&e);
}

#[test]
fn crypto_keeps_the_openssl_error() {
    // An EC key where RSA is needed: openssl refuses it, and says why.
    let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
    let ec = openssl::ec::EcKey::generate(&group).unwrap();
    let public =
        openssl::pkey::PKey::public_key_from_pem(&ec.public_key_to_pem().unwrap()).unwrap();
    let e = Rsa::encrypt("张三", &PublicKey::from_openssl(public)).unwrap_err();
    assert!(matches!(e, Error::Crypto { .. }), "{e:?}");
    let cause = e.source().expect("a source");
    assert!(
        cause.downcast_ref::<openssl::error::ErrorStack>().is_some(),
        "{cause:?}"
    );
    does_not_repeat(&e);
}

#[test]
fn io_keeps_the_original_io_error_under_its_context() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("picture.png");
    let e = Media::from_path(&missing).unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e:?}");
    assert_eq!(e.to_string(), "io error");
    let levels = chain(&e);
    // Error::Io → the io::Error naming the file → the io::Error the system reported.
    assert_eq!(levels.len(), 3, "{levels:?}");
    let context = levels[1]
        .downcast_ref::<std::io::Error>()
        .expect("io::Error");
    assert_eq!(context.kind(), std::io::ErrorKind::NotFound);
    assert!(context.to_string().contains("picture.png"), "{context}");
    let system = levels[2]
        .downcast_ref::<std::io::Error>()
        .expect("io::Error");
    assert_eq!(system.kind(), std::io::ErrorKind::NotFound);
    assert!(!context.to_string().contains(&system.to_string()));
}

#[test]
fn config_keeps_its_cause() {
    let cause = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not allowed here");
    let e = Error::config_from("cannot use the keys directory", cause);
    assert_eq!(
        e.to_string(),
        "configuration error: cannot use the keys directory"
    );
    let io = e
        .source()
        .and_then(|c| c.downcast_ref::<std::io::Error>())
        .expect("an io::Error source");
    assert_eq!(io.kind(), std::io::ErrorKind::PermissionDenied);
    does_not_repeat(&e);
    // Without a cause there is no source.
    assert!(Error::config("no cause").source().is_none());
    // A prefix keeps the cause.
    let prefixed = e.prefixed("--keys-dir /x");
    assert!(
        matches!(&prefixed, Error::Config { message, .. } if message.starts_with("--keys-dir /x: "))
    );
    assert!(prefixed.source().is_some());
}

#[test]
fn transport_keeps_the_cause_down_to_the_refused_connection() {
    let addr = common::closed_port();
    let server = Server::start(Keys::shared(), common::echo());
    let client = server
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
        "{e:?}"
    );
    let levels = chain(&e);
    // What failed (the connection), then how (TCP), then the system's error.
    assert_eq!(levels[1].to_string(), "cannot connect", "{levels:?}");
    assert_eq!(levels[2].to_string(), "tcp connect error", "{levels:?}");
    let refused = levels
        .iter()
        .filter_map(|l| l.downcast_ref::<std::io::Error>())
        .find(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
    assert!(refused.is_some(), "{levels:?}");
    // No level repeats the one below it.
    for pair in levels.windows(2) {
        let (upper, lower) = (pair[0].to_string(), pair[1].to_string());
        assert!(!upper.contains(&lower), "{upper:?} repeats {lower:?}");
    }
}
