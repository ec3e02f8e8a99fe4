//! X.509 device login: the TLS side ([`AnyClientCertificate`], a rustls client-certificate
//! verifier) and what the MQTT login needs of the certificate a device presented
//! ([`PresentedCertificate`]).
//!
//! An IoTDA device with `auth_type = CERTIFICATES` presents a client certificate on the TLS
//! MQTT port; the platform matches the certificate's SHA-1 (40 hex) or SHA-256 (64 hex)
//! fingerprint against the device's registered `fingerprint` / `secondary_fingerprint`.
//! Device certificates are commonly self-signed, so no chain is checked: the registered
//! fingerprint is what authorizes a certificate, and that decision belongs to the login.
//!
//! ## Invariants
//! - A certificate is only accepted together with a valid handshake signature made with its
//!   private key (TLS 1.2 `CertificateVerify` and TLS 1.3 alike), checked with the crypto
//!   provider's algorithms — seeing a device's certificate is not enough to log in as it.
//! - A client certificate is requested but optional: `SECRET` devices use TLS without one.
//! - Any X.509 version is accepted — v1 too: IoTDA's own guide makes device certificates with
//!   `openssl x509 -req`, which writes v1 without an extension file, and webpki (rustls's
//!   parser) refuses those. So the certificate is parsed with x509-parser alone, and the
//!   handshake signature is checked here against its public key with the provider's
//!   algorithms for the scheme (TLS 1.3 refuses the schemes TLS 1.3 forbids, e.g. PKCS#1).
//! - Fingerprints are compared in constant time; they are not secrets and may be logged.

use std::sync::Arc;

use protocol::auth::{constant_time_eq, hex_lower};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Asks every TLS client for a certificate without requiring one, accepts any well-formed
/// X.509 certificate, and verifies the handshake signature that proves the client holds its
/// key.
#[derive(Debug)]
pub struct AnyClientCertificate {
    provider: Arc<CryptoProvider>,
}

impl AnyClientCertificate {
    pub fn new(provider: Arc<CryptoProvider>) -> Arc<Self> {
        Arc::new(Self { provider })
    }

    /// Checks `dss` over `message` with the public key of `cert`, with the provider's
    /// algorithms for the scheme whose key type is the certificate's.
    fn verify_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let bad = |error| Err(rustls::Error::InvalidCertificate(error));
        if tls13 && !allowed_in_tls13(dss.scheme) {
            return bad(CertificateError::BadSignature);
        }
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert) else {
            return bad(CertificateError::BadEncoding);
        };
        let spki = &parsed.tbs_certificate.subject_pki;
        let Some(algorithm_id) = algorithm_identifier_contents(spki.raw) else {
            return bad(CertificateError::BadEncoding);
        };
        let mapping = self.provider.signature_verification_algorithms.mapping;
        let candidates =
            mapping.iter().find(|(scheme, _)| *scheme == dss.scheme).map_or(&[][..], |(_, algs)| *algs);
        // TLS 1.3 ties an ECDSA scheme to one curve (RFC 8446 §4.2.3): only the scheme's own
        // algorithm, the first of the mapping, as rustls's own check does.
        let candidates = if tls13 { &candidates[..candidates.len().min(1)] } else { candidates };
        let Some(algorithm) = candidates.iter().find(|alg| alg.public_key_alg_id().as_ref() == algorithm_id)
        else {
            return bad(CertificateError::BadSignature);
        };
        match algorithm.verify_signature(&spki.subject_public_key.data, message, dss.signature()) {
            Ok(()) => Ok(HandshakeSignatureValid::assertion()),
            Err(_) => bad(CertificateError::BadSignature),
        }
    }
}

/// RFC 8446 §4.2.3: TLS 1.3 signs with ECDSA, RSASSA-PSS or EdDSA, never PKCS#1 v1.5 or SHA-1.
fn allowed_in_tls13(scheme: SignatureScheme) -> bool {
    matches!(
        scheme,
        SignatureScheme::ECDSA_NISTP256_SHA256
            | SignatureScheme::ECDSA_NISTP384_SHA384
            | SignatureScheme::ECDSA_NISTP521_SHA512
            | SignatureScheme::RSA_PSS_SHA256
            | SignatureScheme::RSA_PSS_SHA384
            | SignatureScheme::RSA_PSS_SHA512
            | SignatureScheme::ED25519
            | SignatureScheme::ED448
    )
}

/// The contents of the AlgorithmIdentifier of a DER SubjectPublicKeyInfo (what
/// `SignatureVerificationAlgorithm::public_key_alg_id` holds): SEQUENCE { SEQUENCE {…}, … }.
fn algorithm_identifier_contents(spki: &[u8]) -> Option<&[u8]> {
    let (outer, _) = der_sequence(spki)?;
    let (inner, _) = der_sequence(outer)?;
    Some(inner)
}

/// A DER SEQUENCE's contents and what follows it.
fn der_sequence(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let length = rest[..count].iter().fold(0usize, |length, &byte| (length << 8) | usize::from(byte));
        (length, &rest[count..])
    };
    (rest.len() >= length).then(|| rest.split_at(length))
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The signature check and the login both read the certificate with x509-parser.
        match x509_parser::parse_x509_certificate(end_entity) {
            Ok(([], _)) => Ok(ClientCertVerified::assertion()),
            _ => Err(rustls::Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// What the login needs of a presented certificate, computed once per connection from the
/// leaf's DER.
#[derive(Debug, Clone)]
pub struct PresentedCertificate {
    sha1: [u8; 20],
    sha256: [u8; 32],
    not_before_unix_s: i64,
    not_after_unix_s: i64,
}

impl PresentedCertificate {
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der)
            .map_err(|error| format!("not an X.509 certificate: {error}"))?;
        let validity = certificate.validity();
        Ok(Self {
            sha1: Sha1::digest(der).into(),
            sha256: Sha256::digest(der).into(),
            not_before_unix_s: validity.not_before.timestamp(),
            not_after_unix_s: validity.not_after.timestamp(),
        })
    }

    /// Whether `registered` — a fingerprint of 40 (SHA-1) or 64 (SHA-256) hex digits, either
    /// case — is this certificate's.
    pub fn matches(&self, registered: &str) -> bool {
        let presented = match registered.len() {
            40 => self.sha1_hex(),
            64 => self.sha256_hex(),
            _ => return false,
        };
        constant_time_eq(presented.as_bytes(), registered.to_ascii_lowercase().as_bytes())
    }

    /// Whether the certificate's validity period contains `unix_s`.
    pub fn valid_at(&self, unix_s: i64) -> bool {
        self.not_before_unix_s <= unix_s && unix_s <= self.not_after_unix_s
    }

    pub fn sha1_hex(&self) -> String {
        hex_lower(&self.sha1)
    }

    pub fn sha256_hex(&self) -> String {
        hex_lower(&self.sha256)
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::client::ResolvesClientCert;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::sign::CertifiedKey;
    use rustls::version::{TLS12, TLS13};
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, SupportedProtocolVersion};

    use super::*;
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};

    const YEAR_2000_S: i64 = 946_684_800;
    const BOTH_VERSIONS: &[&SupportedProtocolVersion] = &[&TLS13, &TLS12];

    struct Identity {
        cert: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
    }

    fn identity_valid_between(not_before_unix_s: i64, not_after_unix_s: i64) -> Identity {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(vec!["device-1".to_owned()]).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before_unix_s).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after_unix_s).unwrap();
        let cert = params.self_signed(&key).unwrap().der().clone();
        Identity { cert, key: PrivatePkcs8KeyDer::from(key.serialize_der()).into() }
    }

    fn identity() -> Identity {
        identity_valid_between(YEAR_2000_S, YEAR_2000_S + 100 * 365 * 86_400)
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn lower_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Trusts any server certificate but still checks the server's handshake signature.
    #[derive(Debug)]
    struct AnyServer(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyServer {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// Presents a fixed certificate and signs with a fixed key, matching or not.
    #[derive(Debug)]
    struct FixedClientIdentity(Arc<CertifiedKey>);

    impl ResolvesClientCert for FixedClientIdentity {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
        fn has_certs(&self) -> bool {
            true
        }
    }

    enum ClientAuth {
        None,
        Cert(Identity),
        Resolver(Arc<dyn ResolvesClientCert>),
    }

    /// Runs a handshake in memory; returns the server side, or the first error either side saw.
    fn handshake(
        versions: &[&'static SupportedProtocolVersion],
        auth: ClientAuth,
    ) -> Result<ServerConnection, rustls::Error> {
        let server_identity = identity();
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(AnyClientCertificate::new(provider()))
            .with_single_cert(vec![server_identity.cert], server_identity.key)?;
        let client_builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(provider())));
        let client_config = match auth {
            ClientAuth::None => client_builder.with_no_client_auth(),
            ClientAuth::Cert(identity) => {
                client_builder.with_client_auth_cert(vec![identity.cert], identity.key)?
            }
            ClientAuth::Resolver(resolver) => client_builder.with_client_cert_resolver(resolver),
        };
        let server_name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(Arc::new(client_config), server_name)?;
        let mut server = ServerConnection::new(Arc::new(server_config))?;
        for _round_trip in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            server.read_tls(&mut bytes.as_slice()).unwrap();
            server.process_new_packets()?;
            bytes.clear();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            client.read_tls(&mut bytes.as_slice()).unwrap();
            client.process_new_packets()?;
            if !client.is_handshaking() && !server.is_handshaking() && !client.wants_write() {
                return Ok(server);
            }
        }
        panic!("handshake did not finish in 10 round trips");
    }

    #[test]
    fn handshake_with_a_client_certificate_exposes_it() {
        for versions in [BOTH_VERSIONS, &[&TLS12], &[&TLS13]] {
            let device = identity();
            let expected = device.cert.clone();
            let server = handshake(versions, ClientAuth::Cert(device)).unwrap();
            assert_eq!(server.peer_certificates(), Some(&[expected][..]), "{versions:?}");
        }
    }

    #[test]
    fn handshake_without_a_client_certificate_is_allowed() {
        for versions in [BOTH_VERSIONS, &[&TLS12], &[&TLS13]] {
            let server = handshake(versions, ClientAuth::None).unwrap();
            assert!(server.peer_certificates().is_none(), "{versions:?}");
        }
    }

    #[test]
    fn someone_elses_certificate_without_its_key_fails_the_handshake() {
        for versions in [&[&TLS12][..], &[&TLS13]] {
            let (victim, impostor) = (identity(), identity());
            let impostor_key = provider().key_provider.load_private_key(impostor.key).unwrap();
            let stolen = Arc::new(CertifiedKey::new(vec![victim.cert], impostor_key));
            let error = handshake(versions, ClientAuth::Resolver(Arc::new(FixedClientIdentity(stolen))))
                .expect_err("a signature by the wrong key must not pass");
            assert_eq!(
                error,
                rustls::Error::InvalidCertificate(CertificateError::BadSignature),
                "{versions:?}"
            );
        }
    }

    #[test]
    fn garbage_certificate_is_bad_encoding() {
        let verifier = AnyClientCertificate::new(provider());
        let garbage = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x02, 0x03]);
        let error = verifier.verify_client_cert(&garbage, &[], UnixTime::now()).unwrap_err();
        assert_eq!(error, rustls::Error::InvalidCertificate(CertificateError::BadEncoding));
        assert!(verifier.verify_client_cert(&identity().cert, &[], UnixTime::now()).is_ok());
        assert!(PresentedCertificate::from_der(&garbage).is_err());
    }

    #[test]
    fn fingerprints_are_sha1_and_sha256_of_the_der() {
        let device = identity();
        let presented = PresentedCertificate::from_der(&device.cert).unwrap();
        let sha1 = lower_hex(&Sha1::digest(&device.cert));
        let sha256 = lower_hex(&Sha256::digest(&device.cert));
        assert_eq!((presented.sha1_hex(), presented.sha256_hex()), (sha1.clone(), sha256.clone()));
        for registered in [&sha1, &sha256, &sha1.to_uppercase(), &sha256.to_uppercase()] {
            assert!(presented.matches(registered), "{registered}");
        }
    }

    #[test]
    fn other_or_malformed_fingerprints_do_not_match() {
        let presented = PresentedCertificate::from_der(&identity().cert).unwrap();
        let other = PresentedCertificate::from_der(&identity().cert).unwrap();
        let sha256 = presented.sha256_hex();
        for registered in [
            other.sha256_hex(),
            other.sha1_hex(),
            sha256[..63].to_owned(),
            format!("{sha256}0"),
            String::new(),
            "z".repeat(64),
            format!(" {}", &sha256[1..]),
        ] {
            assert!(!presented.matches(&registered), "{registered:?}");
        }
    }

    #[test]
    fn validity_period_bounds_valid_at() {
        let year_s = 365 * 86_400;
        let device = identity_valid_between(YEAR_2000_S, YEAR_2000_S + year_s);
        let presented = PresentedCertificate::from_der(&device.cert).unwrap();
        assert!(!presented.valid_at(YEAR_2000_S - 1));
        assert!(presented.valid_at(YEAR_2000_S + year_s / 2));
        assert!(!presented.valid_at(YEAR_2000_S + year_s + 1));
        assert!(!presented.valid_at(crate::now_unix_s()));
    }
}
