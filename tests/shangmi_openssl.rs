//! SM2 interop with the `openssl` command: signatures (SM3, user id 1234567812345678) and
//! C1C3C2 ASN.1 ciphertexts made here are accepted by OpenSSL, and OpenSSL's by this crate.
//! Keys are generated at test time. Skipped, saying so, when `openssl` lacks SM2.

use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use wechatpay_chain::crypto::Sm2;

const DISTID: &str = "distid:1234567812345678";

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl")
}

/// A temporary directory holding `key.pem` (an SM2 key OpenSSL generated) and `pub.pem`, or
/// `None` when this `openssl` cannot make SM2 keys.
fn sm2_dir() -> Option<tempfile::TempDir> {
    let dir = tempfile::tempdir().unwrap();
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "SM2", "-out", "key.pem"])
        .current_dir(dir.path())
        .output();
    match made {
        Ok(o) if o.status.success() => {}
        other => {
            eprintln!("SKIPPED: the openssl command cannot generate SM2 keys ({other:?})");
            return None;
        }
    }
    let o = openssl(
        dir.path(),
        &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"],
    );
    assert!(o.status.success(), "{o:?}");
    Some(dir)
}

fn ok(o: &std::process::Output) -> bool {
    o.status.success()
}

#[test]
fn our_signature_verifies_with_openssl_and_openssls_verifies_here() {
    let Some(dir) = sm2_dir() else { return };
    let d = dir.path();
    let message = "POST\n/v3/pay/transactions/native\n1700000000\nNONCE\n{\"a\":1}\n";
    std::fs::write(d.join("msg"), message).unwrap();

    // Ours → OpenSSL, with a key of our own.
    let ours = Sm2::generate().unwrap();
    std::fs::write(
        d.join("our_pub.pem"),
        ours.public_key()
            .unwrap()
            .as_openssl()
            .public_key_to_pem()
            .unwrap(),
    )
    .unwrap();
    let sig = Sm2::sign(message, &ours).unwrap();
    std::fs::write(d.join("our.sig"), B64.decode(&sig).unwrap()).unwrap();
    let verify = |pubkey: &str, distid: &str, file: &str| {
        openssl(
            d,
            &[
                "dgst",
                "-sm3",
                "-verify",
                pubkey,
                "-sigopt",
                distid,
                "-signature",
                file,
                "msg",
            ],
        )
    };
    let o = verify("our_pub.pem", DISTID, "our.sig");
    assert!(ok(&o), "openssl refused our signature: {o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("Verified OK"));
    // The user id is part of what is signed: another one, or another key, is refused.
    assert!(!ok(&verify(
        "our_pub.pem",
        "distid:1234567812345679",
        "our.sig"
    )));
    assert!(!ok(&verify("pub.pem", DISTID, "our.sig")));

    // OpenSSL → ours, with OpenSSL's key.
    let o = openssl(
        d,
        &[
            "dgst",
            "-sm3",
            "-sign",
            "key.pem",
            "-sigopt",
            DISTID,
            "-out",
            "openssl.sig",
            "msg",
        ],
    );
    assert!(ok(&o), "{o:?}");
    let theirs = B64.encode(std::fs::read(d.join("openssl.sig")).unwrap());
    let public = Sm2::from_public(&format!("file://{}", d.join("pub.pem").display())).unwrap();
    assert!(Sm2::verify(message, &theirs, &public));
    assert!(!Sm2::verify(format!("{message}."), &theirs, &public));
    // The key file OpenSSL wrote loads as a private key too, whose public half verifies.
    let key = Sm2::from_private(&format!("file://{}", d.join("key.pem").display())).unwrap();
    assert!(Sm2::verify(message, &theirs, &key.public_key().unwrap()));
    assert!(!Sm2::verify(message, &theirs, &ours.public_key().unwrap()));
}

#[test]
fn our_ciphertext_decrypts_with_openssl_and_openssls_decrypts_here() {
    let Some(dir) = sm2_dir() else { return };
    let d = dir.path();
    let key = Sm2::from_private(&format!("file://{}", d.join("key.pem").display())).unwrap();
    let public = Sm2::from_public(&format!("file://{}", d.join("pub.pem").display())).unwrap();
    let plain = "张三 6225880137650000";

    // Ours → OpenSSL.
    let ct = Sm2::encrypt(plain, &public).unwrap();
    std::fs::write(d.join("ours.ct"), B64.decode(&ct).unwrap()).unwrap();
    let o = openssl(
        d,
        &[
            "pkeyutl", "-decrypt", "-inkey", "key.pem", "-in", "ours.ct", "-out", "ours.pt",
        ],
    );
    assert!(
        ok(&o),
        "openssl could not decrypt our SM2 ciphertext: {o:?}"
    );
    assert_eq!(std::fs::read(d.join("ours.pt")).unwrap(), plain.as_bytes());

    // OpenSSL → ours.
    std::fs::write(d.join("plain"), plain).unwrap();
    let o = openssl(
        d,
        &[
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-in",
            "plain",
            "-out",
            "theirs.ct",
        ],
    );
    assert!(ok(&o), "{o:?}");
    let theirs = B64.encode(std::fs::read(d.join("theirs.ct")).unwrap());
    assert_eq!(Sm2::decrypt(&theirs, &key).unwrap(), plain.as_bytes());
    // Another key cannot.
    assert!(Sm2::decrypt(&theirs, &Sm2::generate().unwrap()).is_err());
}
