//! Room 2, http: requests and answers and their signatures. The accept loop and connection
//! serving ([`server`]), the request ([`server::Req`]), answers built and signed ([`answer`]),
//! TLS and the certificates the emulator issues, the guard and the APIv3 signature check, the
//! diagnosis of a refused signature, field validation, multipart bodies, the outgoing HTTP
//! client, the settings fixed at start. The server is handed a [`base::Platform`] and never
//! names a route. May import: util.

pub(crate) mod answer;
pub(crate) mod auth;
pub(crate) mod base;
pub(crate) mod client;
pub(crate) mod diagnosis;
pub(crate) mod faults;
pub(crate) mod guard;
pub(crate) mod issued;
pub(crate) mod merchants;
pub(crate) mod multipart;
pub(crate) mod nonces;
pub(crate) mod received;
pub(crate) mod request;
pub(crate) mod scheme;
pub(crate) mod server;
pub(crate) mod settings;
pub(crate) mod tls;
pub(crate) mod validate;
