//! The vectors wechatpay-java publishes for its 国密 module, passed here. Source:
//! github.com/wechatpay-apiv3/wechatpay-java @ 1dab7bec717989e4a4f006d2469c3eebe9eabba7,
//! `shangmi-testing/src/main/java/com/wechat/pay/java/shangmi/testing/{BaseSM2Test,
//! BaseAeadSM4Test,TestConfig}.java` and its `resources/` (copied to tests/fixtures/shangmi/).
//! Only the data is copied: keys, messages, signature, ciphertexts.

use wechatpay_chain::crypto::{Sm2, Sm4Gcm};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/shangmi");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{DIR}/{name}")).unwrap()
}

// TestConfig.java
const MERCHANT_CERTIFICATE_SERIAL_NUMBER: &str = "54E7F59ED8DF4570CFB14780EA8152D45A675EE6";
const API_V3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

// BaseSM2Test.java
const SM2_CIPHERTEXT: &str = concat!(
    "MHECIAGn23Ew8nF0zRfu3qgdD6VATSmGM5wrVFvNqg1ToXneAiBgfOJLVi1NtpRVH2",
    "qanzooL4gOrDKKOloD7gS17g+iCQQgcTtJpGhytHZeV/HeTqYkg3YqOY+Vybx+OQx217Ktn0QECdMjiI7lpId5dg=="
);
const SM2_PLAINTEXT: &str = "plaintext";
const MESSAGE: &str = "message";
const SIGN: &str =
    "MEYCIQD35Rp3CKt7pLme/a0GaCVmwSeOl7X/12+ppRivcJuf6QIhAO5Vpy4tSk9SJUrgH5I5Qy0aYhFG9lN0aof1f5wJOI05";

// BaseAeadSM4Test.java
const SM4_PLAINTEXT: &str = "plaintext";
const ASSOCIATED_DATA: &str = "associatedData";
const NONCE: &str = "uluk4a9R25RW";
const SM4_CIPHERTEXT: &str = "+lcLNfkZQQx+iQm20Apa3x9Mb/5L7PgZ7w==";
const SM4_CIPHERTEXT_BAD: &str = "+lcLNfkZQQx+iQm20Apa3x9Mb/5L7PgZ8w==";

#[test]
fn the_published_signature_verifies_with_the_merchant_certificate() {
    let cert = Sm2::from_certificate(&fixture("merchant_certificate.pem")).unwrap();
    assert_eq!(cert.serial(), MERCHANT_CERTIFICATE_SERIAL_NUMBER);
    assert!(Sm2::verify(MESSAGE, SIGN, cert.public_key()));
    assert!(!Sm2::verify("false-message", SIGN, cert.public_key()));
    // Another SM2 key (the platform certificate's) does not verify it.
    let platform = Sm2::from_certificate(&fixture("wechat_pay_certificate.pem")).unwrap();
    assert!(!Sm2::verify(MESSAGE, SIGN, platform.public_key()));
}

#[test]
fn signatures_made_here_verify_with_the_published_certificate() {
    let key = Sm2::from_private(&fixture("merchant_private_key.pem")).unwrap();
    let cert = Sm2::from_certificate(&format!("file://{DIR}/merchant_certificate.pem")).unwrap();
    let sig = Sm2::sign(MESSAGE, &key).unwrap();
    assert!(Sm2::verify(MESSAGE, &sig, cert.public_key()));
}

#[test]
fn the_published_sm2_ciphertext_decrypts() {
    let key = Sm2::from_private(&format!("file://{DIR}/merchant_private_key.pem")).unwrap();
    assert_eq!(
        Sm2::decrypt(SM2_CIPHERTEXT, &key).unwrap(),
        SM2_PLAINTEXT.as_bytes()
    );
    // BaseSM2Test.testDecryptFail: every '1' turned into '2' is refused.
    let changed = SM2_CIPHERTEXT.replace('1', "2");
    assert_ne!(changed, SM2_CIPHERTEXT);
    assert!(Sm2::decrypt(&changed, &key).is_err());
    // BaseSM2Test.testEncrypt: what the certificate's key encrypts, the key decrypts.
    let cert = Sm2::from_certificate(&fixture("merchant_certificate.pem")).unwrap();
    let ct = Sm2::encrypt(SM2_PLAINTEXT, cert.public_key()).unwrap();
    assert_eq!(Sm2::decrypt(&ct, &key).unwrap(), SM2_PLAINTEXT.as_bytes());
}

#[test]
fn the_published_sm4_gcm_ciphertext_decrypts_under_the_derived_key() {
    assert_eq!(
        Sm4Gcm::decrypt(SM4_CIPHERTEXT, API_V3_KEY, NONCE, ASSOCIATED_DATA).unwrap(),
        SM4_PLAINTEXT.as_bytes()
    );
    // GCM is deterministic for a key and nonce: encryption gives the published bytes back.
    assert_eq!(
        Sm4Gcm::encrypt(SM4_PLAINTEXT, API_V3_KEY, NONCE, ASSOCIATED_DATA).unwrap(),
        SM4_CIPHERTEXT
    );
    assert!(Sm4Gcm::decrypt(SM4_CIPHERTEXT_BAD, API_V3_KEY, NONCE, ASSOCIATED_DATA).is_err());
    assert!(Sm4Gcm::decrypt(SM4_CIPHERTEXT, API_V3_KEY, NONCE, "other").is_err());
}
