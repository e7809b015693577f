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

macro_rules! verbs {
    ($($method:ident, $async_method:ident, $m:expr;)*) => {$(
        #[doc = concat!("Sends a signed `", stringify!($method), "` request and waits for the verified answer. Works from plain threads and from inside a tokio runtime.")]
        pub fn $method(&self, args: Value) -> Result<Response, Error> {
            self.call_blocking($m, args)
        }

        #[doc = concat!("Sends a signed `", stringify!($method), "` request; the future runs on any tokio runtime (or none) and is `Send + 'static`.")]
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
        get, get_async, Method::GET;
        post, post_async, Method::POST;
        put, put_async, Method::PUT;
        patch, patch_async, Method::PATCH;
        delete, delete_async, Method::DELETE;
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
