//! The emulator's TLS mode: a CA made at start, a server certificate for the loopback address
//! and `localhost` signed by it, and the merchant API certificate (`apiclient_cert.pem`, CN =
//! mchid, for the merchant's key) signed by it; the acceptor that serves HTTPS with them and
//! asks for a client certificate without requiring one (APIv3 calls present none), and the
//! check of what a connection presented, which the APIv2 calls that need the merchant
//! certificate rely on.

use crate::util::Ssl as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::time::Duration;

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod, SslRef, SslVerifyMode};
use openssl::stack::Stack;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::{X509Builder, X509NameBuilder, X509Ref, X509StoreContext, X509};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use wechatpay_chain::crypto::PublicKey;
use wechatpay_chain::formatter;
use wechatpay_chain::Error;

/// How long a client may take over its TLS handshake before the connection is dropped, by
/// default.
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a certificate is for.
pub(crate) enum Role<'a> {
    /// Signs the other certificates.
    Ca,
    /// The server's: `localhost`, `127.0.0.1`, `::1` and these addresses.
    Server(&'a [IpAddr]),
    /// A TLS client's: the merchant API certificate.
    Client,
    /// Signs answers (the platform certificate): no CA, no TLS use.
    Signing,
}

/// A certificate to issue.
pub(crate) struct Spec<'a> {
    /// Subject name entries, e.g. `[("O", "Tenpay.com"), ("CN", "…")]`.
    pub subject: &'a [(&'a str, &'a str)],
    pub serial: &'a BigNum,
    /// Validity, as Unix times.
    pub not_before: i64,
    pub not_after: i64,
    pub role: Role<'a>,
    /// The issuer's certificate, or `None` for a self-signed one (then `signer` is the
    /// subject's own key).
    pub issuer: Option<&'a X509Ref>,
    pub signer: &'a PKeyRef<Private>,
}

/// Issues the certificate `spec` describes for `key`, signed with SHA-256.
pub(crate) fn issue<T: HasPublic>(spec: &Spec<'_>, key: &PKeyRef<T>) -> Result<X509, Error> {
    let mut name = X509NameBuilder::new().ssl("cannot issue a certificate")?;
    for (field, value) in spec.subject {
        name.append_entry_by_text(field, value)
            .ssl("cannot issue a certificate")?;
    }
    let name = name.build();
    let mut b = X509Builder::new().ssl("cannot issue a certificate")?;
    b.set_version(2).ssl("cannot issue a certificate")?;
    b.set_serial_number(
        spec.serial
            .to_asn1_integer()
            .ssl("cannot issue a certificate")?
            .as_ref(),
    )
    .ssl("cannot issue a certificate")?;
    b.set_subject_name(&name)
        .ssl("cannot issue a certificate")?;
    b.set_issuer_name(spec.issuer.map_or(name.as_ref(), |i| i.subject_name()))
        .ssl("cannot issue a certificate")?;
    b.set_pubkey(key).ssl("cannot issue a certificate")?;
    b.set_not_before(
        Asn1Time::from_unix(spec.not_before)
            .ssl("cannot issue a certificate")?
            .as_ref(),
    )
    .ssl("cannot issue a certificate")?;
    b.set_not_after(
        Asn1Time::from_unix(spec.not_after)
            .ssl("cannot issue a certificate")?
            .as_ref(),
    )
    .ssl("cannot issue a certificate")?;
    // the basic constraints come first: only the CA may issue certificates
    let mut constraints = BasicConstraints::new();
    constraints.critical();
    if matches!(spec.role, Role::Ca) {
        constraints.ca();
    }
    b.append_extension(constraints.build().ssl("cannot issue a certificate")?)
        .ssl("cannot issue a certificate")?;
    let mut usage = KeyUsage::new();
    usage.critical();
    match &spec.role {
        Role::Ca => {
            usage.key_cert_sign().crl_sign();
        }
        Role::Signing => {
            usage
                .digital_signature()
                .non_repudiation()
                .key_encipherment();
        }
        Role::Server(ips) => {
            usage.digital_signature().key_encipherment();
            let mut san = SubjectAlternativeName::new();
            san.dns("localhost").ip("127.0.0.1").ip("::1");
            for ip in ips.iter() {
                san.ip(&ip.to_string());
            }
            let san = san
                .build(&b.x509v3_context(spec.issuer, None))
                .ssl("cannot issue a certificate")?;
            b.append_extension(san).ssl("cannot issue a certificate")?;
            b.append_extension(
                ExtendedKeyUsage::new()
                    .server_auth()
                    .build()
                    .ssl("cannot issue a certificate")?,
            )
            .ssl("cannot issue a certificate")?;
        }
        Role::Client => {
            usage
                .digital_signature()
                .non_repudiation()
                .key_encipherment();
            b.append_extension(
                ExtendedKeyUsage::new()
                    .client_auth()
                    .build()
                    .ssl("cannot issue a certificate")?,
            )
            .ssl("cannot issue a certificate")?;
        }
    }
    b.append_extension(usage.build().ssl("cannot issue a certificate")?)
        .ssl("cannot issue a certificate")?;
    // SM2 keys (the 国密 scheme's platform certificate) sign over SM3
    let signer = wechatpay_chain::PrivateKey::from_openssl(spec.signer.to_owned());
    let digest = match wechatpay_chain::Scheme::of_key(&signer) {
        wechatpay_chain::Scheme::Rsa => MessageDigest::sha256(),
        _ => MessageDigest::sm3(),
    };
    b.sign(spec.signer, digest)
        .ssl("cannot issue a certificate")?;
    Ok(b.build())
}

/// A random positive serial of 159 bits, 40 hex digits like the platform's.
pub(crate) fn random_serial() -> Result<BigNum, Error> {
    let mut serial = BigNum::new().ssl("cannot make a serial number")?;
    serial
        .rand(159, MsbOption::ONE, false)
        .ssl("cannot make a serial number")?;
    Ok(serial)
}

/// A P-256 key: quick to make, for the CA and the server certificate.
fn ec_key() -> Result<PKey<Private>, Error> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).ssl("cannot make a key")?;
    PKey::from_ec_key(EcKey::generate(&group).ssl("cannot make a key")?).ssl("cannot make a key")
}

fn pem(cert: &X509Ref) -> Result<String, Error> {
    String::from_utf8(cert.to_pem().ssl("cannot encode a certificate")?)
        .map_err(|e| Error::key_from("a PEM encoding is not text", e.utf8_error()))
}

/// What the client of one connection presented, as checked after the handshake.
#[derive(Debug, Clone, Default)]
pub(crate) enum ClientCertificate {
    /// The connection is plain HTTP: no certificate can be presented.
    #[default]
    Plain,
    /// A TLS connection without a client certificate.
    Absent,
    /// Issued by the emulator's CA and valid now; its subject's CN.
    Verified(String),
    /// Presented but not acceptable: why.
    Refused(String),
}

impl ClientCertificate {
    /// The CN of a verified certificate.
    pub(crate) fn verified(&self) -> Option<&str> {
        match self {
            ClientCertificate::Verified(cn) => Some(cn),
            _ => None,
        }
    }

    /// `Ok` when the connection presented the certificate of merchant `mchid`; otherwise why
    /// not, for the answer's `return_msg` and the request record.
    pub(crate) fn require(&self, mchid: &str) -> Result<(), String> {
        match self {
            ClientCertificate::Verified(cn) if cn == mchid => Ok(()),
            ClientCertificate::Verified(cn) => Err(format!(
                "the client certificate is merchant {cn}'s, not {mchid}'s"
            )),
            ClientCertificate::Refused(why) => {
                Err(format!("the client certificate was refused: {why}"))
            }
            ClientCertificate::Absent => Err(
                "this call needs the merchant API certificate (mutual TLS) and none was presented"
                    .into(),
            ),
            ClientCertificate::Plain => Err(
                "this call needs the merchant API certificate (mutual TLS), and this emulator \
                 serves plain HTTP: start it with EmulatorConfig::tls(true) or `wechatpay serve \
                 --tls`"
                    .into(),
            ),
        }
    }
}

/// The emulator's certificates and the TLS acceptor made with them.
pub(crate) struct Tls {
    /// The CA's certificate (`ca.pem`), for clients to trust.
    pub ca_pem: String,
    /// The merchant API certificate (`apiclient_cert.pem`).
    pub merchant_pem: String,
    acceptor: SslAcceptor,
    /// Trusts the CA alone: what client certificates are checked against.
    store: X509Store,
    handshake_timeout: Duration,
}

impl Tls {
    /// Makes the CA, the server certificate for `ip` (besides `localhost`, `127.0.0.1` and
    /// `::1`), and the merchant certificate of `mchid` for `merchant_key` under
    /// `merchant_serial` when it is hex (as the merchant API certificate's serial is the one
    /// APIv3 requests name), and the acceptor.
    pub(crate) fn new(
        mchid: &str,
        merchant_key: &PublicKey,
        merchant_serial: &str,
        ip: IpAddr,
        handshake_timeout: Duration,
    ) -> Result<Tls, Error> {
        let now = formatter::timestamp();
        let (not_before, not_after) = (now - 86_400, now + 5 * 365 * 86_400);
        let ca_key = ec_key()?;
        let ca_spec = Spec {
            subject: &[
                ("C", "CN"),
                ("O", "wechatpay-chain emulator"),
                ("CN", "wechatpay-chain emulator CA"),
            ],
            serial: &random_serial()?,
            not_before,
            not_after,
            role: Role::Ca,
            issuer: None,
            signer: &ca_key,
        };
        let ca = issue(&ca_spec, &ca_key)?;
        let server_key = ec_key()?;
        let loopback = [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
        let ips: Vec<IpAddr> = [ip]
            .into_iter()
            .filter(|ip| !loopback.contains(ip))
            .collect();
        let server = issue(
            &Spec {
                subject: &[("CN", "localhost")],
                serial: &random_serial()?,
                role: Role::Server(&ips),
                issuer: Some(&ca),
                ..ca_spec
            },
            &server_key,
        )?;
        let serial = match BigNum::from_hex_str(merchant_serial) {
            Ok(s) if !s.is_negative() && s.num_bits() > 0 && s.num_bits() <= 159 => s,
            _ => random_serial()?,
        };
        let merchant = issue(
            &Spec {
                subject: &[
                    ("C", "CN"),
                    ("O", "微信商户系统"),
                    ("OU", "wechatpay-chain emulator"),
                    ("CN", mchid),
                ],
                serial: &serial,
                role: Role::Client,
                issuer: Some(&ca),
                ..ca_spec
            },
            merchant_key.as_openssl(),
        )?;
        let mut store = X509StoreBuilder::new().ssl("cannot set up the emulator's TLS")?;
        store
            .add_cert(ca.clone())
            .ssl("cannot set up the emulator's TLS")?;
        let store = store.build();
        let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
            .ssl("cannot set up the emulator's TLS")?;
        b.set_private_key(&server_key)
            .ssl("cannot set up the emulator's TLS")?;
        b.set_certificate(&server)
            .ssl("cannot set up the emulator's TLS")?;
        b.check_private_key()
            .ssl("cannot set up the emulator's TLS")?;
        b.add_client_ca(&ca)
            .ssl("cannot set up the emulator's TLS")?;
        b.set_session_id_context(b"wechatpay-chain emulator")
            .ssl("cannot set up the emulator's TLS")?;
        // Ask for a client certificate, never require one, and let the handshake through
        // whatever was presented: each request that needs it is checked with `check`.
        b.set_verify_callback(SslVerifyMode::PEER, |_, _| true);
        Ok(Tls {
            ca_pem: pem(&ca)?,
            merchant_pem: pem(&merchant)?,
            acceptor: b.build(),
            store,
            handshake_timeout,
        })
    }

    /// Runs the server side of the handshake on `tcp`, bounded by the handshake timeout, and
    /// checks the client certificate presented. Garbage, a stalled or refused handshake: an
    /// error saying which, and the connection is to be dropped.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(SslStream<TcpStream>, ClientCertificate), String> {
        let ssl = Ssl::new(self.acceptor.context()).map_err(|e| e.to_string())?;
        let mut stream = SslStream::new(ssl, tcp).map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.handshake_timeout, Pin::new(&mut stream).accept()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("TLS handshake failed: {e}")),
            Err(_) => {
                return Err(format!(
                    "TLS handshake not done within {:?}",
                    self.handshake_timeout
                ))
            }
        }
        let presented = self.check(stream.ssl());
        Ok((stream, presented))
    }

    /// What the connection's client presented: nothing, a certificate of the emulator's CA
    /// valid now (its CN), or something else.
    fn check(&self, ssl: &SslRef) -> ClientCertificate {
        let Some(cert) = ssl.peer_certificate() else {
            return ClientCertificate::Absent;
        };
        match self.verify(&cert) {
            Ok(()) => match common_name(&cert) {
                Some(cn) => ClientCertificate::Verified(cn),
                None => ClientCertificate::Refused("the certificate has no CN".into()),
            },
            Err(why) => ClientCertificate::Refused(why),
        }
    }

    fn verify(&self, cert: &X509Ref) -> Result<(), String> {
        let fail = |e: openssl::error::ErrorStack| e.to_string();
        let chain = Stack::new().map_err(fail)?;
        let mut ctx = X509StoreContext::new().map_err(fail)?;
        let verdict = ctx
            .init(&self.store, cert, &chain, |c| {
                Ok(c.verify_cert()?.then_some(()).ok_or(c.error()))
            })
            .map_err(fail)?;
        // A failed verification leaves errors on this thread's openssl queue, where the next
        // read of the connection would take them for its own.
        let _ = openssl::error::ErrorStack::get();
        verdict.map_err(|e| {
            format!(
                "not issued by the emulator's CA or not valid now ({})",
                e.error_string()
            )
        })
    }
}

/// The subject's first CN.
fn common_name(cert: &X509Ref) -> Option<String> {
    let entry = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa() -> PKey<Private> {
        PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
    }

    fn tls(mchid: &str, key: &PKey<Private>, serial: &str) -> Tls {
        let public = wechatpay_chain::crypto::PrivateKey::from_openssl(key.clone())
            .public_key()
            .unwrap();
        Tls::new(
            mchid,
            &public,
            serial,
            IpAddr::from([127, 0, 0, 2]),
            DEFAULT_HANDSHAKE_TIMEOUT,
        )
        .unwrap()
    }

    #[test]
    fn the_merchant_certificate_is_the_mchids_signed_by_the_ca_for_the_merchant_key() {
        let key = rsa();
        let t = tls(
            "1900000109",
            &key,
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1",
        );
        let ca = X509::from_pem(t.ca_pem.as_bytes()).unwrap();
        let merchant = X509::from_pem(t.merchant_pem.as_bytes()).unwrap();
        assert!(merchant.verify(&ca.public_key().unwrap()).unwrap());
        assert!(merchant.public_key().unwrap().public_eq(&key));
        assert_eq!(common_name(&merchant).as_deref(), Some("1900000109"));
        assert_eq!(
            merchant
                .serial_number()
                .to_bn()
                .unwrap()
                .to_hex_str()
                .unwrap()
                .to_string(),
            "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
        );
        assert!(t.verify(&merchant).is_ok());
        // The CA is one, self-signed.
        assert!(ca.verify(&ca.public_key().unwrap()).unwrap());
        // A serial that is not hex gets a random one.
        let t = tls("1900000109", &key, "not_hex");
        let merchant = X509::from_pem(t.merchant_pem.as_bytes()).unwrap();
        assert_eq!(merchant.serial_number().to_bn().unwrap().num_bits(), 159);
    }

    #[test]
    fn the_server_certificate_names_the_loopback_addresses() {
        let key = rsa();
        let t = tls("1900000109", &key, "01");
        let cert = t.acceptor.context().certificate().unwrap().to_owned();
        let names = cert.subject_alt_names().unwrap();
        let ips: Vec<Vec<u8>> = names
            .iter()
            .filter_map(|n| n.ipaddress().map(<[u8]>::to_vec))
            .collect();
        assert!(ips.contains(&vec![127, 0, 0, 1]));
        assert!(ips.contains(&vec![127, 0, 0, 2]));
        assert!(names.iter().any(|n| n.dnsname() == Some("localhost")));
        let ca = X509::from_pem(t.ca_pem.as_bytes()).unwrap();
        assert!(cert.verify(&ca.public_key().unwrap()).unwrap());
    }

    #[test]
    fn certificates_of_another_ca_are_refused() {
        let key = rsa();
        let ours = tls("1900000109", &key, "01");
        let theirs = tls("1900000109", &key, "01");
        let foreign = X509::from_pem(theirs.merchant_pem.as_bytes()).unwrap();
        let why = ours.verify(&foreign).unwrap_err();
        assert!(why.contains("not issued by the emulator's CA"), "{why}");
    }

    #[test]
    fn only_the_merchants_own_verified_certificate_passes() {
        let ok = ClientCertificate::Verified("1900000109".into());
        assert!(ok.require("1900000109").is_ok());
        assert_eq!(ok.verified(), Some("1900000109"));
        for (presented, says) in [
            (
                ClientCertificate::Verified("1900000002".into()),
                "merchant 1900000002's",
            ),
            (ClientCertificate::Refused("x".into()), "refused: x"),
            (ClientCertificate::Absent, "none was presented"),
            (ClientCertificate::Plain, "plain HTTP"),
        ] {
            let why = presented.require("1900000109").unwrap_err();
            assert!(why.contains(says), "{why}");
        }
        assert_eq!(ClientCertificate::Absent.verified(), None);
    }
}
