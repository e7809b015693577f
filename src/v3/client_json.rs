//! APIv3 signing and verification as pure functions over `http` types (like aws-sigv4): the
//! transport only calls them, and every rule is unit-testable with no network.

use http::{HeaderMap, HeaderValue, Request, Response};

use crate::crypto::hash::hex;
use crate::crypto::PrivateKey;
use crate::error::Error;
use crate::formatter;
use crate::v3::keyring::Keyring;
use crate::v3::scheme::Scheme;

/// How far a platform timestamp may be from our clock, in seconds.
pub const MAX_CLOCK_SKEW: i64 = 300;

/// The merchant identity that signs APIv3 requests.
#[derive(Clone)]
pub struct Credentials {
    /// Merchant id (`mchid`).
    pub mchid: String,
    /// Serial of the merchant API certificate.
    pub serial: String,
    /// The merchant API private key.
    pub key: PrivateKey,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mchid", &self.mchid)
            .field("serial", &self.serial)
            .field("key", &"redacted")
            .finish()
    }
}

/// The request target as signed: path, and `?query` when there is one.
pub fn signed_target<B>(req: &Request<B>) -> &str {
    req.uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
}

/// What the signature covers when it is not the body sent, as a request extension: a media
/// upload signs its `meta` JSON and sends `multipart/form-data`.
#[derive(Debug, Clone)]
pub struct SignedBody(pub bytes::Bytes);

/// Signs `req` with a fresh timestamp and nonce and sets its `Authorization` header.
pub fn sign_request<B: AsRef<[u8]>>(req: &mut Request<B>, cred: &Credentials) -> Result<(), Error> {
    let ts = formatter::timestamp().to_string();
    let nonce = formatter::nonce(32);
    sign_request_with(req, cred, &ts, &nonce)
}

/// Signs `req` with the given timestamp and nonce (deterministic, for tests and replays). The
/// body signed is the [`SignedBody`] extension when there is one, else the body.
pub fn sign_request_with<B: AsRef<[u8]>>(
    req: &mut Request<B>,
    cred: &Credentials,
    timestamp: &str,
    nonce: &str,
) -> Result<(), Error> {
    let signed: &[u8] = match req.extensions().get::<SignedBody>() {
        Some(s) => &s.0,
        None => req.body().as_ref(),
    };
    let message = formatter::request(
        req.method().as_str(),
        signed_target(req),
        timestamp,
        nonce,
        signed,
    );
    // The key's kind is the scheme: an SM2 key signs `WECHATPAY2-SM2-WITH-SM3`.
    let scheme = Scheme::of_key(&cred.key);
    let signature = scheme.sign(&message, &cred.key)?;
    let value = formatter::authorization_as(
        scheme,
        &cred.mchid,
        nonce,
        &signature,
        timestamp,
        &cred.serial,
    );
    // Takes the string's buffer as it is (no copy).
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .map_err(|e| Error::config_from("mchid or serial cannot be sent in a header", e))?;
    req.headers_mut().insert(http::header::AUTHORIZATION, value);
    Ok(())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Error> {
    let v = headers
        .get(name)
        .ok_or_else(|| Error::Verification(format!("the answer has no {name} header")))?;
    let s = v
        .to_str()
        .map_err(|_| Error::Verification(format!("{name} is not ASCII")))?
        .trim();
    if s.is_empty() {
        return Err(Error::Verification(format!("{name} is empty")));
    }
    Ok(s)
}

/// Verifies a platform-signed message given its headers (an answer, or a notification).
///
/// Checks that `Wechatpay-Timestamp/-Nonce/-Serial/-Signature` are present, that
/// `Wechatpay-Signature-Type`, when present, names the keyring's scheme ([`SIGNATURE_TYPE`] for
/// RSA), the timestamp is within ±300 s of `now`, the serial is in the keyring, and the
/// signature (RSA-SHA256, or SM2-with-SM3 in the 国密 scheme) covers
/// `TIMESTAMP\nNONCE\nBODY\n`. Overseas statements, which carry `Wechatpay-Statement-Sha1`,
/// are signed over `{"sha1":"…"}`, and the body must hash to that SHA-1.
pub fn verify_headers(
    headers: &HeaderMap,
    body: &[u8],
    keyring: &Keyring,
    now: i64,
) -> Result<(), Error> {
    match headers.get("wechatpay-statement-sha1") {
        Some(v) => {
            let want = v
                .to_str()
                .map_err(|_| Error::Verification("Wechatpay-Statement-Sha1 is not ASCII".into()))?
                .trim();
            let got = hex(&openssl::sha::sha1(body));
            if !crate::crypto::hash::equals(want.to_ascii_lowercase().as_bytes(), got.as_bytes()) {
                return Err(Error::Verification(
                    "the statement's SHA-1 does not match Wechatpay-Statement-Sha1".into(),
                ));
            }
            verify_signature(
                headers,
                format!("{{\"sha1\":\"{want}\"}}").as_bytes(),
                keyring,
                now,
            )
        }
        None => verify_signature(headers, body, keyring, now),
    }
}

/// Checks the four `Wechatpay-*` headers, the ±300 s window, the serial and the RSA-SHA256
/// signature over `TIMESTAMP\nNONCE\nSIGNED\n`, where `signed` is what the platform signed (the
/// body, or a statement's `{"sha1":…}`), without looking at any body.
pub fn verify_signature(
    headers: &HeaderMap,
    signed: &[u8],
    keyring: &Keyring,
    now: i64,
) -> Result<(), Error> {
    let timestamp = header(headers, "wechatpay-timestamp")?;
    let nonce = header(headers, "wechatpay-nonce")?;
    let serial = header(headers, "wechatpay-serial")?;
    let signature = header(headers, "wechatpay-signature")?;
    signature_type(headers, keyring.scheme())?;
    let ts: i64 = timestamp.parse().map_err(|_| {
        Error::Verification(format!("Wechatpay-Timestamp {timestamp:?} is not a number"))
    })?;
    if now.abs_diff(ts) > MAX_CLOCK_SKEW as u64 {
        return Err(Error::Verification(format!(
            "Wechatpay-Timestamp {ts} is {} s away from now (limit {MAX_CLOCK_SKEW} s)",
            now.abs_diff(ts)
        )));
    }
    let key = keyring.get(serial).ok_or_else(|| {
        Error::Verification(format!(
            "Wechatpay-Serial {:?} is not a known platform certificate or public key",
            crate::error::one_line(serial)
        ))
    })?;
    let message = formatter::response(timestamp, nonce, signed);
    if !keyring.scheme().verify(&message, signature, &key) {
        return Err(Error::Verification(format!(
            "Wechatpay-Signature does not verify with the key of {serial}"
        )));
    }
    Ok(())
}

/// The signature scheme an RSA client verifies, as `Wechatpay-Signature-Type` names it (a
/// 国密 client's is [`Scheme::name`]).
pub const SIGNATURE_TYPE: &str = crate::v3::scheme::RSA;

/// An answer or notification that names its scheme must name the keyring's ([`SIGNATURE_TYPE`]
/// for RSA): one signed under another scheme is refused as such, never checked under a scheme
/// it does not claim (no downgrade, either way). The header is optional: the platform's API
/// answers long came without it, and then the keyring's scheme is the one checked.
fn signature_type(headers: &HeaderMap, scheme: Scheme) -> Result<(), Error> {
    let Some(v) = headers.get("wechatpay-signature-type") else {
        return Ok(());
    };
    match v.to_str().map(str::trim) {
        Ok(named) if named == scheme.name() => Ok(()),
        Ok(other) => Err(Error::Verification(format!(
            "Wechatpay-Signature-Type {:?} is not the scheme this client verifies ({scheme})",
            crate::error::one_line(other)
        ))),
        Err(_) => Err(Error::Verification(
            "Wechatpay-Signature-Type is not ASCII".into(),
        )),
    }
}

/// Verifies an APIv3 answer, see [`verify_headers`].
pub fn verify_response<B: AsRef<[u8]>>(
    res: &Response<B>,
    keyring: &Keyring,
    now: i64,
) -> Result<(), Error> {
    verify_headers(res.headers(), res.body().as_ref(), keyring, now)
}

/// Whether an answer carries any `Wechatpay-*` header, i.e. claims to be signed.
pub fn has_signature_headers(headers: &HeaderMap) -> bool {
    headers.keys().any(|k| k.as_str().starts_with("wechatpay-"))
}

/// Whether the platform answers `path` unsigned: exactly the documented binary downloads
/// `/v3/billdownload/file`, `/v3/transferdownload/signfile`,
/// `/v3/transferdownload/elecvoucherfile` (their pages remove PHP's verifier; the receipt's
/// `hash_value` proves them), `/v3/merchant-service/images/{media_id}` and
/// `/v3/global/merchant-service/images/{media_id}` (one segment, not `upload`). Nothing that
/// a server could resolve to another path matches (see [`plain_path`]).
pub fn is_unsigned(path: &str) -> bool {
    let p = path.split('?').next().unwrap_or(path);
    // The segments, matched before the (longer) plain-path check: every answer goes through
    // here, and neither check allocates.
    let mut segments = [""; 6];
    let mut n = 0;
    for segment in p.split('/') {
        let Some(slot) = segments.get_mut(n) else {
            return false;
        };
        *slot = segment;
        n += 1;
    }
    let documented = match &segments[..n] {
        ["", "v3", "billdownload", "file"]
        | ["", "v3", "transferdownload", "signfile" | "elecvoucherfile"] => true,
        ["", "v3", "merchant-service", "images", id]
        | ["", "v3", "global", "merchant-service", "images", id] => {
            !id.is_empty()
                && !percent_encoding::percent_decode_str(id)
                    .map(|c| c.to_ascii_lowercase())
                    .eq(b"upload".iter().copied())
        }
        _ => false,
    };
    documented && plain_path(p)
}

/// Whether a request path (without its query) names one resource as written: no `;`
/// parameters, no backslash, no dot segment (`.`, `..`, however percent-encoded) and no
/// percent-encoded `/`, `\`, `;`, NUL or `%` (double encoding), all of which a server or a
/// proxy may resolve to another path than the one matched. The exemptions from answer
/// signatures (APIv3 and APIv2) hold only for plain paths.
pub fn plain_path(path: &str) -> bool {
    if path.contains([';', '\\']) {
        return false;
    }
    let encoded_separator = |w: &[u8]| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c') | (b'3', b'b') | (b'0', b'0') | (b'2', b'5')
            )
    };
    if path.as_bytes().windows(3).any(encoded_separator) {
        return false;
    }
    !path.split('/').any(dot_segment)
}

/// Whether a segment is `.` or `..` once its `%XX` escapes are decoded.
fn dot_segment(segment: &str) -> bool {
    let mut decoded = percent_encoding::percent_decode_str(segment);
    matches!(
        (decoded.next(), decoded.next(), decoded.next()),
        (Some(b'.'), None, _) | (Some(b'.'), Some(b'.'), None)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{PublicKey, Rsa};
    use openssl::pkey::PKey;

    fn keys() -> (PrivateKey, PublicKey) {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let k = PrivateKey::from_openssl(PKey::from_rsa(rsa).unwrap());
        let p = k.public_key().unwrap();
        (k, p)
    }

    fn signed(platform: &PrivateKey, ts: i64, body: &str, serial: &str) -> Response<Vec<u8>> {
        let nonce = "abc";
        let sig = Rsa::sign(
            formatter::response(&ts.to_string(), nonce, body.as_bytes()),
            platform,
        )
        .unwrap();
        Response::builder()
            .header("Wechatpay-Timestamp", ts.to_string())
            .header("Wechatpay-Nonce", nonce)
            .header("Wechatpay-Serial", serial)
            .header("Wechatpay-Signature", sig)
            .body(body.as_bytes().to_vec())
            .unwrap()
    }

    /// The base64 signature in a signed request's `Authorization`.
    fn signature_of<B>(req: &Request<B>) -> String {
        let auth = req.headers()["authorization"].to_str().unwrap();
        auth.split("signature=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"')
            .to_string()
    }

    #[test]
    fn request_signature_covers_method_target_and_body() {
        let (k, p) = keys();
        let cred = Credentials {
            mchid: "1900000001".into(),
            serial: "ABC".into(),
            key: k,
        };
        let mut req = Request::post("https://x/v3/pay?a=1")
            .body(b"{\"x\":1}".to_vec())
            .unwrap();
        sign_request_with(&mut req, &cred, "1700000000", "NONCE").unwrap();
        let auth = req.headers()["authorization"].to_str().unwrap().to_string();
        assert!(auth.starts_with("WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",serial_no=\"ABC\",timestamp=\"1700000000\",nonce_str=\"NONCE\",signature=\""));
        let sig = &signature_of(&req);
        assert!(Rsa::verify(
            b"POST\n/v3/pay?a=1\n1700000000\nNONCE\n{\"x\":1}\n",
            sig,
            &p
        ));
        assert!(!Rsa::verify(
            b"POST\n/v3/pay?a=2\n1700000000\nNONCE\n{\"x\":1}\n",
            sig,
            &p
        ));
        // A fresh signature each time.
        let mut again = Request::post("https://x/v3/pay?a=1")
            .body(b"{\"x\":1}".to_vec())
            .unwrap();
        sign_request(&mut again, &cred).unwrap();
        assert_ne!(
            again.headers()["authorization"],
            req.headers()["authorization"]
        );
    }

    #[test]
    fn answers_verify_only_when_everything_holds() {
        let (platform, public) = keys();
        let ring = Keyring::new();
        ring.insert("PUB_KEY_ID_1", public);
        let now = 1_800_000_000;
        verify_response(
            &signed(&platform, now, "{\"a\":1}", "PUB_KEY_ID_1"),
            &ring,
            now,
        )
        .unwrap();
        verify_response(&signed(&platform, now, "", "PUB_KEY_ID_1"), &ring, now).unwrap();
        verify_response(
            &signed(&platform, now - 300, "{}", "PUB_KEY_ID_1"),
            &ring,
            now,
        )
        .unwrap();

        let stale = verify_response(
            &signed(&platform, now - 301, "{}", "PUB_KEY_ID_1"),
            &ring,
            now,
        )
        .unwrap_err();
        assert!(stale.to_string().contains("301 s"), "{stale}");
        let future = verify_response(
            &signed(&platform, now + 301, "{}", "PUB_KEY_ID_1"),
            &ring,
            now,
        );
        assert!(future.is_err());
        let unknown =
            verify_response(&signed(&platform, now, "{}", "OTHER"), &ring, now).unwrap_err();
        assert!(unknown.to_string().contains("OTHER"), "{unknown}");

        let mut tampered = signed(&platform, now, "{\"a\":1}", "PUB_KEY_ID_1");
        *tampered.body_mut() = b"{\"a\":2}".to_vec();
        assert!(matches!(
            verify_response(&tampered, &ring, now),
            Err(Error::Verification(_))
        ));

        let (other, _) = keys();
        assert!(verify_response(&signed(&other, now, "{}", "PUB_KEY_ID_1"), &ring, now).is_err());

        for h in [
            "wechatpay-timestamp",
            "wechatpay-nonce",
            "wechatpay-serial",
            "wechatpay-signature",
        ] {
            let mut r = signed(&platform, now, "{}", "PUB_KEY_ID_1");
            r.headers_mut().remove(h);
            let e = verify_response(&r, &ring, now).unwrap_err();
            assert!(e.to_string().to_lowercase().contains(h), "{e}");
        }
        let mut r = signed(&platform, now, "{}", "PUB_KEY_ID_1");
        r.headers_mut()
            .insert("wechatpay-timestamp", HeaderValue::from_static("soon"));
        assert!(verify_response(&r, &ring, now).is_err());
    }

    #[test]
    fn statements_are_signed_over_their_sha1() {
        let (platform, public) = keys();
        let ring = Keyring::new();
        ring.insert("S", public);
        let now = 1_800_000_000;
        let body = b"csv,data\n1,2\n";
        let sha1 = hex(&openssl::sha::sha1(body));
        let mut r = signed(&platform, now, &format!("{{\"sha1\":\"{sha1}\"}}"), "S");
        *r.body_mut() = body.to_vec();
        r.headers_mut().insert(
            "wechatpay-statement-sha1",
            HeaderValue::from_str(&sha1).unwrap(),
        );
        verify_response(&r, &ring, now).unwrap();
        r.body_mut().push(b'x');
        assert!(verify_response(&r, &ring, now).is_err());
    }

    #[test]
    fn unsigned_downloads_are_named_by_path() {
        for p in [
            "/v3/billdownload/file?token=x",
            "/v3/transferdownload/signfile?token=x",
            "/v3/transferdownload/elecvoucherfile?token=x",
            "/v3/merchant-service/images/abc",
            "/v3/merchant-service/images/abc%3D",
            "/v3/global/merchant-service/images/abc",
        ] {
            assert!(is_unsigned(p), "{p}");
        }
        for p in [
            "/global/v3/billdownload/file",
            "/v3/merchant-service/images/upload",
            "/v3/merchant-service/images/UPLOAD",
            "/v3/merchant-service/images/%75pload",
            "/v3/merchant-service/images/upload/",
            "/v3/merchant-service/images/",
            "/v3/merchant-service/images/..",
            "/v3/merchant-service/images/.%2E",
            "/v3/merchant-service/images/%2e",
            "/v3/merchant-service/images/a%2fb",
            "/v3/merchant-service/images/a%2Fb",
            "/v3/merchant-service/images/a%5Cb",
            "/v3/merchant-service/images/a%3Bb",
            "/v3/merchant-service/images/a%00",
            "/v3/merchant-service/images/%2E%2E",
            "/v3/global/merchant-service/images/a/b",
            "/v3/global/merchant-service/images/a/b/c",
            "/v3/merchant-service/images/a%252e",
            "/v3/merchant-service/images/a;b",
            "/v3/merchant-service/images/a\\b",
            "/v3/merchant-service/images/../../pay/transactions/id/1",
            "/v3/billdownload/file;x",
            "/v3/transferdownload/signfile/x",
            "/v3/transferdownload/../billdownload/file",
            "/v3/billdownload/./file",
            "/v3/x/../billdownload/file",
            "/v3/bill/tradebill",
            "/v3/billdownload/file/x",
            "/v3/discount-card/orders/1",
        ] {
            assert!(!is_unsigned(p), "{p}");
        }
    }

    #[test]
    fn signed_body_extension_replaces_the_body_in_the_signature() {
        let (k, p) = keys();
        let cred = Credentials {
            mchid: "1900000001".into(),
            serial: "ABC".into(),
            key: k,
        };
        let mut req = Request::post("https://x/v3/merchant/media/upload")
            .body(b"--multipart bytes--".to_vec())
            .unwrap();
        req.extensions_mut()
            .insert(SignedBody(bytes::Bytes::from_static(
                b"{\"filename\":\"a.png\"}",
            )));
        sign_request_with(&mut req, &cred, "1", "N").unwrap();
        let sig = &signature_of(&req);
        assert!(Rsa::verify(
            b"POST\n/v3/merchant/media/upload\n1\nN\n{\"filename\":\"a.png\"}\n",
            sig,
            &p
        ));
        assert!(!Rsa::verify(
            b"POST\n/v3/merchant/media/upload\n1\nN\n--multipart bytes--\n",
            sig,
            &p
        ));
        assert_eq!(req.body(), b"--multipart bytes--");
    }
}
