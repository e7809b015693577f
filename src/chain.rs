//! The chainable, as wechatpay-php's `BuilderChainable`: a path built segment by segment (or
//! given whole), normalized by PHP's rules, with the five verbs, blocking and async.

use std::future::Future;
use std::sync::Arc;

use http::Method;
use serde_json::Value;

use crate::error::Error;
use crate::response::Response;
use crate::uri::normalize;
use crate::util::media::Media;
use crate::Core;

/// A path on the platform, ready to be called with a verb.
///
/// `chain()` makes a new owned `Chain` (nothing cached): use it for paths built at run time.
/// `chain[key]` caches the child it returns, like PHP's `ArrayIterator`, so that
/// `client["v3"]["discountCard"]` can return references; memory then grows with the number of
/// *distinct* keys ever indexed, which is small for literal paths but unbounded for keys made
/// from data (order numbers …): put those in the args, not in the path.
pub struct Chain {
    pub(crate) core: Arc<Core>,
    pub(crate) path: Arc<str>,
    children: elsa::sync::FrozenMap<String, Box<Chain>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("path", &&*self.path).finish()
    }
}

/// What every verb's `args` holds: wechatpay-php's array as JSON, one object.
macro_rules! args_doc {
    () => {
        "# Args

`args` is one JSON object (`serde_json::json!`), the shape of wechatpay-php's array; key order
is kept and is the order on the wire:

- **placeholders**, at the top level: each `{name}` of the path is filled from the key `name`
  (a string or a number; RFC 6570, UTF-8 percent-encoded; `{+name}` keeps reserved
  characters): `{\"out_trade_no\": \"T1\"}` for `…/out-trade-no/{out_trade_no}`;
- `json`: the APIv3 request body, sent as JSON with `Content-Type: application/json`;
- `query`: the query string, an object (`{\"mchid\": \"1900000001\"}`, encoded as PHP's
  `http_build_query`) or its encoded text;
- `headers`: headers to add or replace (a `Wechatpay-Serial` here replaces the one the client
  sets itself);
- `body`: a raw body (a string), instead of `json`;
- options of one call: `base_uri`, `timeout` (seconds), `retry` (`false`, `true`, or
  `{\"max_attempts\": n, \"deadline\": seconds}`), `placeholders` (`\"lenient\"`: as PHP,
  a missing one expands to empty), `validate` (`false` or `true`; feature `catalog`);
- APIv2 (a `v2/…` path): `xml`, the fields (the client adds `nonce_str` and `sign`);
  `security: true` for the calls that need the merchant certificate (mutual TLS,
  [`Builder::merchant_identity`](crate::Builder::merchant_identity)); `nonceless: true` to add
  no `nonce_str`.

Any other top-level key, and a placeholder missing from the args, is refused before anything
is sent ([`Error::InvalidArgument`], naming the key and the likely fix: a forgotten `json`
wrapper, a misspelt placeholder). The answer is verified before it is returned: a 2xx is a
[`Response`]; anything else an [`Error`]: [`Error::Api`] (the platform's code and message),
[`Error::Verification`], [`Error::Transport`], [`Error::Timeout`] …; see the crate's page."
    };
}

macro_rules! verbs {
    ($($method:ident, $async_method:ident, $m:expr, $example:expr;)*) => {$(
        #[doc = concat!("Sends a signed `", stringify!($method), "` request to this path and waits for the verified answer. Works from plain threads and from inside a tokio runtime (the async form is [`Chain::", stringify!($async_method), "`]).")]
        ///
        #[doc = args_doc!()]
        ///
        /// # Example
        ///
        /// ```no_run
        /// use serde_json::json;
        /// # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
        #[doc = $example]
        /// # Ok(()) }
        /// ```
        pub fn $method(&self, args: Value) -> Result<Response, Error> {
            self.call_blocking($m, args)
        }

        #[doc = concat!("Sends a signed `", stringify!($method), "` request; the future runs on any tokio runtime and is `Send + 'static` (its sockets are the awaiting runtime's). The args and the answer are [`Chain::", stringify!($method), "`]'s.")]
        ///
        /// ```no_run
        /// use serde_json::json;
        /// # async fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
        #[doc = concat!("let res = client[\"v3/pay/transactions/out-trade-no/{out_trade_no}\"]\n    .", stringify!($async_method), "(json!({\"out_trade_no\": \"T1\", \"query\": {\"mchid\": \"1900000001\"}}))\n    .await?;")]
        /// println!("{}", res.text());
        /// # Ok(()) }
        /// ```
        pub fn $async_method(&self, args: Value) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
            self.call_async($m, args)
        }
    )*};
}

impl Chain {
    pub(crate) fn new(core: Arc<Core>, path: &str) -> Chain {
        Chain {
            core,
            path: Arc::from(path),
            children: elsa::sync::FrozenMap::new(),
        }
    }

    /// The normalized path this chain stands for, e.g. `v3/discount-card/orders/{out_order_no}`.
    pub fn pathname(&self) -> &str {
        &self.path
    }

    /// A new chain one or more segments further, normalized as PHP's `chain()` does (the whole
    /// string given). Nothing is cached.
    ///
    /// ```no_run
    /// # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
    /// use serde_json::json;
    /// let res = client
    ///     .chain("v3/discount-card/orders/{out_order_no}")
    ///     .get(json!({"out_order_no": "233bcbf407e87789b8e471f251774f95"}))?;
    /// println!("{}", res.text());
    /// # Ok(()) }
    /// ```
    pub fn chain(&self, segment: &str) -> Chain {
        let seg = normalize(segment);
        let path = if self.path.is_empty() {
            seg
        } else {
            format!("{}/{}", self.path, seg)
        };
        Chain::new(self.core.clone(), &path)
    }

    fn call_blocking(&self, method: Method, args: Value) -> Result<Response, Error> {
        // Signed before a runtime is entered: nothing of the runtime's waits on the signature.
        let pending = self.core.begin(method, &self.path, &args)?;
        crate::transport::block_on(self.core.run(pending))
    }

    fn call_async(
        &self,
        method: Method,
        args: Value,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let core = self.core.clone();
        let path = self.path.clone();
        async move {
            let pending = core.begin(method, &path, &args)?;
            core.run(pending).await
        }
    }

    /// Uploads a file with `POST` as `multipart/form-data`, the signature over its meta JSON
    /// (see [`Media`]); the args may carry `headers`, `base_uri`, `timeout` and placeholders,
    /// not `json` or `body`.
    ///
    /// ```no_run
    /// # fn f(client: wechatpay_chain::Client) -> Result<(), wechatpay_chain::Error> {
    /// use wechatpay_chain::util::media::Media;
    /// let media = Media::from_path("/path/to/image.jpg")?;
    /// let res = client["v3"]["merchant"]["media"]["upload"].upload(&media, serde_json::json!({}))?;
    /// # Ok(()) }
    /// ```
    pub fn upload(&self, media: &Media, args: Value) -> Result<Response, Error> {
        let pending = self
            .core
            .begin_with(Method::POST, &self.path, &args, Some(media))?;
        crate::transport::block_on(self.core.run(pending))
    }

    /// [`Chain::upload`], async; the future is `Send + 'static`.
    pub fn upload_async(
        &self,
        media: Media,
        args: Value,
    ) -> impl Future<Output = Result<Response, Error>> + Send + 'static {
        let core = self.core.clone();
        let path = self.path.clone();
        async move {
            let pending = core.begin_with(Method::POST, &path, &args, Some(&media))?;
            core.run(pending).await
        }
    }

    verbs! {
        get, get_async, Method::GET, r#"// a placeholder and the query
let res = client["v3/pay/transactions/out-trade-no/{out_trade_no}"]
    .get(json!({"out_trade_no": "1217752501201407033233368018", "query": {"mchid": "1900000001"}}))?;
let order: serde_json::Value = res.json()?;
println!("{}", order["trade_state"]);"#;
        post, post_async, Method::POST, r#"// a Native payment: the body in `json`
let res = client["v3/pay/transactions/native"].post(json!({"json": {
    "appid": "wxd678efh567hg6787", "mchid": "1900000001",
    "description": "Image形象店-深圳腾大-QQ公仔", "out_trade_no": "1217752501201407033233368018",
    "notify_url": "https://www.weixin.qq.com/wxpay/pay.php", "amount": {"total": 100, "currency": "CNY"},
}}))?;
println!("{}", res.json::<serde_json::Value>()?["code_url"]);
// APIv2: the fields in `xml`, signed by the client
let res = client["v2/pay/orderquery"].post(json!({"xml": {
    "appid": "wxd678efh567hg6787", "mch_id": "1900000001", "out_trade_no": "1217752501201407033233368018",
}}))?;"#;
        put, put_async, Method::PUT, r#"let res = client["v3/merchant-service/complaint-notifications"]
    .put(json!({"json": {"url": "https://www.example.com/complaints"}}))?;
assert_eq!(res.status(), 204);"#;
        patch, patch_async, Method::PATCH, r#"// placeholders and a body together; an option of this call (`timeout`)
let res = client["v3"]["discountCard"]["orders"]["_out_order_no_"].patch(json!({
    "out_order_no": "233bcbf407e87789b8e471f251774f95",
    "json": {"rewards": [{"reward_usage_serial_no": "578354", "amount": 100, "description": "购买商品"}]},
    "timeout": 10,
}))?;"#;
        delete, delete_async, Method::DELETE, r#"let res = client["v3/merchant-service/complaint-notifications"].delete(json!({}))?;
    assert_eq!(res.status(), 204);"#;
    }
}

impl std::ops::Index<&str> for Chain {
    type Output = Chain;

    /// The child chain for `key` (normalized), cached: see the type's docs on memory.
    fn index(&self, key: &str) -> &Chain {
        if let Some(child) = self.children.get(key) {
            return child;
        }
        self.children
            .insert(key.to_string(), Box::new(self.chain(key)))
    }
}
