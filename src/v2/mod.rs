//! APIv2: XML signed with MD5 or HMAC-SHA256 under the APIv2 key ([`client_xml`], as
//! wechatpay-php's `ClientXmlTrait`), the XML reader and writer ([`transformer`]) and the
//! APIv2 notifications ([`notify`]).

pub mod client_xml;
pub mod notify;
pub mod transformer;
