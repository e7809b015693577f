//! Cryptographic rooms, as in wechatpay-php's `Crypto\*`: RSA (keys, signatures, OAEP), AES-GCM
//! (APIv3 notifications and certificates), AES-ECB (APIv2 refund notifications) and hashes.
//! All of it is openssl underneath. `docs/toolkit.md` shows each room with a short example.

pub mod aes_ecb;
pub mod aes_gcm;
pub mod hash;
pub mod rsa;

pub use self::aes_ecb::AesEcb;
pub use self::aes_gcm::AesGcm;
pub use self::rsa::{Certificate, PrivateKey, PublicKey, Rsa};
