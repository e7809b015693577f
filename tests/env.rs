//! `Builder::from_env`: the `WECHATPAY_*` variables of `wechatpay serve`'s env file (key
//! variables holding plain paths) make a client whose calls the emulator checks and whose
//! answers verify; a variable that cannot be used is named. The variables are looked up from a
//! map (`from_env_with`): tests run in parallel and must not change the process environment.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};
use wechatpay_chain::{Builder, Certificate, Error, PrivateKey, PublicKey};
use wechatpay_emulator::{private_key_pem, Emulator, EmulatorConfig, Mode};

/// The variables `wechatpay serve` would write for `emu`, its keys as files in `dir`.
fn env_of(emu: &Emulator, dir: &Path) -> HashMap<String, String> {
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let mut env = HashMap::from([
        ("WECHATPAY_BASE_URI".to_string(), emu.base_uri().to_string()),
        ("WECHATPAY_MCHID".into(), emu.mchid().to_string()),
        ("WECHATPAY_SERIAL".into(), emu.merchant_serial().to_string()),
        (
            "WECHATPAY_PRIVATE_KEY".into(),
            write(
                "apiclient_key.pem",
                &private_key_pem(emu.merchant_private_key().unwrap()).unwrap(),
            ),
        ),
        ("WECHATPAY_SECRET".into(), emu.apiv2_key().to_string()),
        ("WECHATPAY_APIV3_KEY".into(), emu.apiv3_key().to_string()),
    ]);
    match emu.platform_certificate() {
        Some(cert) => {
            let p = write("wechatpay_platform.pem", &cert.to_pem().unwrap());
            env.insert("WECHATPAY_PLATFORM_CERT".into(), p);
        }
        None => {
            let p = write("pub_key.pem", &emu.platform_public_key_pem().unwrap());
            env.insert("WECHATPAY_PUBLIC_KEY".into(), p);
            env.insert(
                "WECHATPAY_PUBLIC_KEY_ID".into(),
                emu.platform_serial().to_string(),
            );
        }
    }
    env
}

fn from(env: &HashMap<String, String>) -> Result<Builder, Error> {
    Builder::from_env_with(|k| env.get(k).cloned())
}

#[test]
fn the_env_file_variables_make_a_client_the_emulator_accepts_in_both_modes() {
    for mode in [Mode::PublicKey, Mode::Certificate] {
        let dir = tempfile::tempdir().unwrap();
        let emu = Emulator::start(EmulatorConfig::new().mode(mode)).unwrap();
        let env = env_of(&emu, dir.path());
        let client = from(&env).unwrap().build().unwrap();
        let res = client["v3/pay/transactions/native"]
            .post(json!({"json": {
                "appid": "wxd678efh567hg6787", "mchid": emu.mchid(), "description": "d",
                "out_trade_no": "ENV0001", "notify_url": "https://example.com/n",
                "amount": {"total": 1},
            }}))
            .unwrap();
        assert!(res.json::<Value>().unwrap()["code_url"].is_string());
        assert!(emu.requests().iter().all(|r| r.verified), "{mode:?}");
        // the same variables with file:// forms
        let mut forms = env.clone();
        for k in [
            "WECHATPAY_PRIVATE_KEY",
            "WECHATPAY_PUBLIC_KEY",
            "WECHATPAY_PLATFORM_CERT",
        ] {
            if let Some(v) = forms.get_mut(k) {
                *v = format!("file://{v}");
            }
        }
        let client = from(&forms).unwrap().build().unwrap();
        client["v3/pay/transactions/out-trade-no/{out_trade_no}"]
            .get(json!({"out_trade_no": "ENV0001", "query": {"mchid": emu.mchid()}}))
            .unwrap();
    }
}

#[test]
fn a_variable_that_cannot_be_used_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(EmulatorConfig::new()).unwrap();
    let env = env_of(&emu, dir.path());
    let with = |k: &str, v: &str| {
        let mut e = env.clone();
        e.insert(k.into(), v.into());
        from(&e).expect_err("refused")
    };
    let missing = dir.path().join("missing.pem").display().to_string();
    let e = with("WECHATPAY_PRIVATE_KEY", &missing);
    assert!(matches!(e, Error::Key { .. }), "{e:?}");
    let m = e.to_string();
    assert!(
        m.contains("WECHATPAY_PRIVATE_KEY: cannot read key file"),
        "{m}"
    );
    assert_eq!(m.matches(&missing).count(), 1, "{m}");
    // a file that holds no key: named by its variable and its path
    let not_pem = dir.path().join("notes.txt");
    std::fs::write(&not_pem, "not a key").unwrap();
    let m = with("WECHATPAY_PUBLIC_KEY", &not_pem.display().to_string()).to_string();
    assert!(
        m.contains("WECHATPAY_PUBLIC_KEY") && m.contains("no PEM block"),
        "{m}"
    );
    let mut e = env.clone();
    e.remove("WECHATPAY_SERIAL");
    let m = from(&e).expect_err("refused").to_string();
    assert!(m.contains("WECHATPAY_SERIAL is not set"), "{m}");
    // Debug of the builder shows no secret
    let b = from(&env).unwrap();
    let shown = format!("{b:?}");
    assert!(!shown.contains(emu.apiv2_key()), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn keys_load_from_plain_paths() {
    let dir = tempfile::tempdir().unwrap();
    let emu = Emulator::start(EmulatorConfig::new().mode(Mode::Certificate)).unwrap();
    let env = env_of(&emu, dir.path());
    let key = PrivateKey::from_pem_file(&env["WECHATPAY_PRIVATE_KEY"]).unwrap();
    assert_eq!(key.bits(), 2048);
    let cert = Certificate::from_pem_file(&env["WECHATPAY_PLATFORM_CERT"]).unwrap();
    assert_eq!(cert.serial(), emu.platform_serial());
    // a certificate file is also a public key file
    let public = PublicKey::from_pem_file(&env["WECHATPAY_PLATFORM_CERT"]).unwrap();
    assert_eq!(public.bits(), 2048);
    let e = PrivateKey::from_pem_file(&env["WECHATPAY_PLATFORM_CERT"]).unwrap_err();
    assert!(
        e.to_string().contains(&env["WECHATPAY_PLATFORM_CERT"]),
        "names the file: {e}"
    );
}
