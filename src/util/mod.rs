//! Helpers as in wechatpay-php's `Util\*`: PEM and serial numbers, media uploads.

pub mod media;
pub mod pem;
