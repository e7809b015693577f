//! Helpers as in wechatpay-php's `Util\*`: PEM and serial numbers.

pub mod pem;
