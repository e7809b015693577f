//! Cryptographic rooms, as in wechatpay-php's `Crypto\*`: RSA (keys, signatures, OAEP), AES-GCM
//! (APIv3 notifications and certificates), AES-ECB (APIv2 refund notifications) and hashes;
//! with the `shangmi` feature, the 国密 scheme's SM2, SM3 and SM4-GCM. All of it is openssl
//! underneath but the 国密 rooms, which are RustCrypto's (OpenSSL still reads their keys). `docs/toolkit.md` shows each room with a short example.

pub mod aes_ecb;
pub mod aes_gcm;
pub mod hash;
pub mod rsa;
#[cfg(feature = "shangmi")]
#[cfg_attr(docsrs, doc(cfg(feature = "shangmi")))]
pub mod sm2;
#[cfg(feature = "shangmi")]
#[cfg_attr(docsrs, doc(cfg(feature = "shangmi")))]
pub mod sm3;
#[cfg(feature = "shangmi")]
#[cfg_attr(docsrs, doc(cfg(feature = "shangmi")))]
pub mod sm4_gcm;

pub use self::aes_ecb::AesEcb;
pub use self::aes_gcm::AesGcm;
pub use self::rsa::{Certificate, PrivateKey, PublicKey, Rsa};
#[cfg(feature = "shangmi")]
pub use self::sm2::Sm2;
#[cfg(feature = "shangmi")]
pub use self::sm4_gcm::Sm4Gcm;
