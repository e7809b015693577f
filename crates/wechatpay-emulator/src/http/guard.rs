//! Who may talk to the sandbox. Listening on loopback keeps other machines out, not the web
//! pages of the user's own browser, which can send requests to `127.0.0.1` too. So every
//! request must name the sandbox in `Host` (a loopback name with its port: a page whose own
//! name was made to point at 127.0.0.1, DNS rebinding, is refused) and carry no `Origin` but
//! the sandbox's own (a page of another site is refused); and a control request that changes
//! state (`/emulator/…`, any method but GET and HEAD) must carry the control token as
//! `Authorization: Bearer …`, or be signed by the merchant as an APIv3 request is.

use http::header::{AUTHORIZATION, HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method};

use crate::http::answer::Answer;
use crate::http::auth;
use crate::http::base::Base;
use crate::http::request::Req;
use wechatpay_chain::{formatter, Error};

/// Where the sandbox listens, and the token its control requests carry.
pub(crate) struct Guard {
    port: u16,
    scheme: &'static str,
    token: Option<String>,
}

/// A request turned away: the answer, and why (for the log).
pub(crate) type Refused = (Answer, String);

/// A token the user chose, if it can travel in a header as `Bearer TOKEN`.
pub(crate) fn checked_token(token: &str) -> Result<String, Error> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::config(
            "the control token must be visible ASCII characters, no spaces (it is sent as \
             Authorization: Bearer TOKEN)",
        ));
    }
    Ok(token.to_string())
}

impl Guard {
    pub fn new(port: u16, scheme: &'static str, token: Option<String>) -> Guard {
        Guard {
            port,
            scheme,
            token,
        }
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether `authority` (`host[:port]`) names this sandbox: a loopback name with its port.
    fn names_us(&self, authority: &str) -> bool {
        let Ok(a) = authority.parse::<http::uri::Authority>() else {
            return false;
        };
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = a.host();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        !a.as_str().contains('@') && loopback && a.port_u16().unwrap_or(default) == self.port
    }

    /// Whether `origin` is a page of this sandbox (same scheme, a loopback name, its port).
    fn is_own_origin(&self, origin: &str) -> bool {
        let Ok(uri) = origin.parse::<http::Uri>() else {
            return false;
        };
        uri.scheme_str() == Some(self.scheme)
            && uri.path() == "/"
            && uri.query().is_none()
            && uri.authority().is_some_and(|a| self.names_us(a.as_str()))
    }

    fn misdirected(&self, what: String) -> Refused {
        let p = self.port;
        let why = format!(
            "{what}: the sandbox answers to 127.0.0.1:{p}, localhost:{p} or [::1]:{p} only \
             (another name pointing at this machine is how a web page reaches it: DNS rebinding)"
        );
        (Answer::error(421, "MISDIRECTED_REQUEST", &why), why)
    }

    /// Checks `Host` (and an absolute request target's authority) and `Origin`.
    fn check_names(&self, req: &Req) -> Result<(), Refused> {
        let hosts: Vec<&HeaderValue> = req.headers.get_all(HOST).iter().collect();
        match hosts.as_slice() {
            [] => return Err(self.misdirected("the request has no Host header".into())),
            [one] => {
                let name = one.to_str().unwrap_or("");
                if !self.names_us(name) {
                    return Err(
                        self.misdirected(format!("Host {:?} is not this sandbox", shown(one)))
                    );
                }
            }
            _ => return Err(self.misdirected("the request has several Host headers".into())),
        }
        if let Some(a) = &req.authority {
            if !self.names_us(a) {
                return Err(self.misdirected(format!("{a:?} is not this sandbox")));
            }
        }
        for origin in req.headers.get_all(ORIGIN) {
            if !self.is_own_origin(origin.to_str().unwrap_or("")) {
                let why = format!(
                    "a request from the web page of {:?} is refused: the sandbox takes requests \
                     from programs (which send no Origin) and from its own pages ({}://127.0.0.1:{})",
                    shown(origin),
                    self.scheme,
                    self.port
                );
                return Err((Answer::error(403, "FORBIDDEN", &why), why));
            }
        }
        Ok(())
    }

    /// For a control request that changes state: the token, or the merchant's signature.
    fn check_token(&self, shared: &Base, req: &Req) -> Result<(), Refused> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let header = req
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let fault = match bearer(header) {
            Some(given) if same_secret(given, token) => return Ok(()),
            Some(_) => "its token is not the sandbox's".to_string(),
            None if header.starts_with("WECHATPAY2-") => {
                let now = formatter::timestamp();
                let method = req.method.as_str();
                match auth::check(shared, method, &req.target, Some(header), &req.body, now) {
                    Ok(_) => return Ok(()),
                    Err(r) => format!(
                        "its merchant signature is refused: {}: {}",
                        r.check, r.reason
                    ),
                }
            }
            None => "it carries no token".to_string(),
        };
        let why = format!(
            "this control request changes the sandbox's state, and {fault}: send \
             Authorization: Bearer TOKEN, the WECHATPAY_SANDBOX_TOKEN of the env file \
             `wechatpay serve` writes (Emulator::control_token() in process), or sign it as \
             the merchant"
        );
        Err((Answer::error(401, "UNAUTHORIZED", &why), why))
    }
}

/// Checks a request before anything else is done with it.
pub(crate) fn admit(shared: &Base, req: &Req) -> Result<(), Refused> {
    let guard = &shared.settings.guard;
    guard.check_names(req)?;
    let control = req.segments.first().is_some_and(|s| s == "emulator");
    if control && !matches!(req.method, Method::GET | Method::HEAD) {
        guard.check_token(shared, req)?;
    }
    Ok(())
}

/// The token of `Bearer TOKEN` (the scheme in any case).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim_matches(' '))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (
        openssl::sha::sha256(a.as_bytes()),
        openssl::sha::sha256(b.as_bytes()),
    );
    openssl::memcmp::eq(&a, &b)
}

/// A header value as shown in an error: text, at most 100 characters.
fn shown(v: &HeaderValue) -> String {
    String::from_utf8_lossy(v.as_bytes())
        .chars()
        .take(100)
        .collect()
}

/// The headers as logged: a control token replaced by `Bearer [redacted]`, and every value
/// copied. (A clone would share the connection's read buffer, which hyper's parsed values point
/// into: each logged request then kept a whole buffer alive, some 5 KiB a record.) The values
/// are copied into one buffer, of which each logged value is a slice: one allocation for a
/// request's headers, not one per header.
pub(crate) fn redacted(headers: &HeaderMap) -> HeaderMap {
    const REDACTED: &str = "Bearer [redacted]";
    let is_token = |name: &http::HeaderName, v: &HeaderValue| {
        name == AUTHORIZATION && bearer(v.to_str().unwrap_or("")).is_some()
    };
    let mut all = bytes::BytesMut::with_capacity(headers.values().map(HeaderValue::len).sum());
    for (name, v) in headers {
        if !is_token(name, v) {
            all.extend_from_slice(v.as_bytes());
        }
    }
    let all = all.freeze();
    let mut out = HeaderMap::with_capacity(headers.len());
    let mut at = 0;
    for (name, v) in headers {
        let kept = if is_token(name, v) {
            HeaderValue::from_static(REDACTED)
        } else {
            at += v.len();
            // a value hyper accepted is a valid one
            let mut c = HeaderValue::from_maybe_shared(all.slice(at - v.len()..at))
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            c.set_sensitive(v.is_sensitive());
            c
        };
        out.append(name.clone(), kept);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_origins_of_the_sandbox() {
        let g = Guard::new(8080, "http", None);
        for ok in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST:8080",
            "[::1]:8080",
            "127.0.0.2:8080",
        ] {
            assert!(g.names_us(ok), "{ok}");
        }
        for bad in [
            "attacker.example:8080",
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost",
            "localhost.attacker.example:8080",
            "user@127.0.0.1:8080",
            "10.0.0.1:8080",
            "[::ffff:127.0.0.1]:8080",
            "",
        ] {
            assert!(!g.names_us(bad), "{bad}");
        }
        assert!(Guard::new(80, "http", None).names_us("localhost"));
        assert!(g.is_own_origin("http://127.0.0.1:8080"));
        assert!(g.is_own_origin("http://localhost:8080"));
        for bad in [
            "null",
            "https://127.0.0.1:8080",
            "http://127.0.0.1:3000",
            "http://attacker.example:8080",
            "http://127.0.0.1:8080/x",
            "",
        ] {
            assert!(!g.is_own_origin(bad), "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_and_their_redaction() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("WECHATPAY2-SHA256-RSA2048 mchid=\"1\""), None);
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd"));
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert_eq!(redacted(&h)[AUTHORIZATION], "Bearer [redacted]");
        // every other value kept as it came, repeated names and their order too
        h.insert(
            "wechatpay-serial",
            HeaderValue::from_static("PUB_KEY_ID_01"),
        );
        h.append("x-many", HeaderValue::from_static("one"));
        h.append("x-many", HeaderValue::from_static(""));
        h.append("x-many", HeaderValue::from_static("three 3"));
        let r = redacted(&h);
        assert_eq!(r.len(), 5);
        assert_eq!(r["wechatpay-serial"], "PUB_KEY_ID_01");
        let many: Vec<_> = r.get_all("x-many").iter().collect();
        assert_eq!(many, ["one", "", "three 3"]);
        assert!(!format!("{r:?}").contains("s3cret"));
        assert!(checked_token("a b").is_err() && checked_token("").is_err());
        assert!(checked_token("A-1_b.c~").is_ok());
    }
}
