//! TLS for the test clients: device certificates made with rcgen (self-signed, as real
//! devices' often are, with their fingerprints), and rustls client configurations that trust
//! the engine's generated CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha2::Digest;

/// A device's client certificate, written as PEM files.
#[derive(Debug, Clone)]
pub struct DeviceCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub der: Vec<u8>,
    pub sha1_hex: String,
    pub sha256_hex: String,
}

/// A self-signed certificate for `name`, written into `dir` as `{name}.pem` / `{name}.key`;
/// `expired` makes one whose validity ended yesterday.
pub fn device_certificate(dir: &Path, name: &str, expired: bool) -> DeviceCertificate {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("certificate params");
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    if expired {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(30);
        params.not_after = now - time::Duration::days(1);
    }
    let cert = params.self_signed(&key).expect("self-signing");
    let der = cert.der().to_vec();
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, cert.pem()).expect("writing the certificate");
    std::fs::write(&key_file, key.serialize_pem()).expect("writing the key");
    DeviceCertificate {
        cert_file,
        key_file,
        sha1_hex: hex(&sha1::Sha1::digest(&der)),
        sha256_hex: hex(&sha2::Sha256::digest(&der)),
        der,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A rustls client: trusts `ca_file`, offers the given TLS versions, presents a certificate
/// if given one, and never resumes (every connection is a full handshake).
#[derive(Debug, Clone)]
pub struct TlsClient {
    pub config: Arc<rustls::ClientConfig>,
    pub server_name: ServerName<'static>,
}

impl TlsClient {
    pub fn new(ca_file: &Path, version: Option<&'static rustls::SupportedProtocolVersion>) -> TlsClient {
        TlsClient::build(ca_file, version, ClientAuth::None)
    }

    pub fn with_certificate(
        ca_file: &Path,
        version: Option<&'static rustls::SupportedProtocolVersion>,
        certificate: &DeviceCertificate,
    ) -> TlsClient {
        let chain = vec![CertificateDer::from(certificate.der.clone())];
        let key = PrivateKeyDer::from_pem_file(&certificate.key_file).expect("the device key");
        TlsClient::build(ca_file, version, ClientAuth::Certificate(chain, key))
    }

    /// Presents `der` — any bytes, e.g. garbage — as its certificate, signing with a real key.
    pub fn with_raw_certificate(ca_file: &Path, der: Vec<u8>) -> TlsClient {
        TlsClient::build(ca_file, None, ClientAuth::Raw(der))
    }

    fn build(
        ca_file: &Path,
        version: Option<&'static rustls::SupportedProtocolVersion>,
        auth: ClientAuth,
    ) -> TlsClient {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca_file).expect("the CA file") {
            roots.add(cert.expect("a CA certificate")).expect("adding the CA");
        }
        let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
            Some(version) => vec![version],
            None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .expect("protocol versions")
            .with_root_certificates(roots);
        let mut config = match auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Certificate(chain, key) => {
                builder.with_client_auth_cert(chain, key).expect("client auth")
            }
            ClientAuth::Raw(der) => {
                let key = rcgen::KeyPair::generate().expect("a key pair");
                let key = PrivateKeyDer::try_from(key.serialize_der()).expect("a PKCS#8 key");
                let signer = provider.key_provider.load_private_key(key).expect("a signing key");
                let certified = rustls::sign::CertifiedKey::new(vec![CertificateDer::from(der)], signer);
                builder.with_client_cert_resolver(Arc::new(AlwaysPresent(Arc::new(certified))))
            }
        };
        config.resumption = rustls::client::Resumption::disabled();
        TlsClient { config: Arc::new(config), server_name: ServerName::try_from("localhost").unwrap() }
    }

    pub fn connection(&self) -> Result<rustls::ClientConnection, String> {
        rustls::ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(|e| e.to_string())
    }
}

enum ClientAuth {
    None,
    Certificate(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
    Raw(Vec<u8>),
}

#[derive(Debug)]
struct AlwaysPresent(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for AlwaysPresent {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl TlsClient {
    /// `GET path` over HTTPS (HTTP/1.1, `Connection: close`); the whole response as text.
    /// Panics if the handshake or the exchange fails.
    pub fn https_get(&self, address: std::net::SocketAddr, path: &str) -> String {
        self.try_https(address, "GET", path, &[], b"").unwrap_or_else(|error| panic!("GET {path}: {error}"))
    }

    /// One HTTPS request; the whole response as text, or why it failed.
    pub fn try_https(
        &self,
        address: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<String, String> {
        use std::io::{Read, Write};
        let tcp = std::net::TcpStream::connect(address).map_err(|e| format!("connecting: {e}"))?;
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
        let mut stream = rustls::StreamOwned::new(self.connection()?, tcp);
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            request += &format!("{name}: {value}\r\n");
        }
        request += "\r\n";
        stream.write_all(request.as_bytes()).map_err(|e| format!("TLS: {e}"))?;
        stream.write_all(body).map_err(|e| format!("TLS: {e}"))?;
        let mut response = Vec::new();
        match stream.read_to_end(&mut response) {
            Ok(_) => {}
            // The server closed without close_notify after a complete response: fine here.
            Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(error) => return Err(format!("TLS: {error}")),
        }
        Ok(String::from_utf8_lossy(&response).into_owned())
    }
}

/// A CA of the test's own and a server certificate it signed for localhost and 127.0.0.1,
/// written into `dir` as `{name}-ca.pem`, `{name}.pem` (leaf then CA) and `{name}.key`: what
/// an operator configures as `tls_cert_file` / `tls_key_file`. Returns the three paths.
pub fn server_certificate_files(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("the CA");
    let issuer = rcgen::Issuer::new(ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("a server key");
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let leaf = params.signed_by(&key, &issuer).expect("the server certificate");
    let (ca_file, cert_file, key_file) = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&ca_file, ca.pem()).unwrap();
    std::fs::write(&cert_file, format!("{}{}", leaf.pem(), ca.pem())).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca_file, cert_file, key_file)
}

/// An X.509 **version 1** self-signed certificate (ECDSA P-256, no extensions), as
/// `openssl x509 -req` makes one without an extension file — IoTDA's own guide does that for
/// device certificates — written into `dir` like [`device_certificate`].
pub fn device_certificate_v1(dir: &Path, name: &str) -> DeviceCertificate {
    use rcgen::{PublicKeyData, SigningKey};
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key pair");
    // ecdsa-with-SHA256, 2.5.4.3 (CN).
    let ecdsa_sha256 = der(0x30, &der(0x06, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]));
    let common_name = |cn: &str| {
        let attribute = [der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, cn.as_bytes())].concat();
        der(0x30, &der(0x31, &der(0x30, &attribute)))
    };
    let validity = der(0x30, &[der(0x17, b"200101000000Z"), der(0x17, b"491231235959Z")].concat());
    let tbs = der(
        0x30,
        &[
            der(0x02, &[0x01, 0x23, 0x45]),
            ecdsa_sha256.clone(),
            common_name(name),
            validity,
            common_name(name),
            key.subject_public_key_info(),
        ]
        .concat(),
    );
    let signature = key.sign(&tbs).expect("signing");
    let bit_string = [&[0u8][..], &signature].concat();
    let cert = der(0x30, &[tbs, ecdsa_sha256, der(0x03, &bit_string)].concat());
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64(&cert)
            .as_bytes()
            .chunks(64)
            .map(|line| std::str::from_utf8(line).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let cert_file = dir.join(format!("{name}.pem"));
    let key_file = dir.join(format!("{name}.key"));
    std::fs::write(&cert_file, pem).expect("writing the certificate");
    std::fs::write(&key_file, key.serialize_pem()).expect("writing the key");
    DeviceCertificate {
        cert_file,
        key_file,
        sha1_hex: hex(&sha1::Sha1::digest(&cert)),
        sha256_hex: hex(&sha2::Sha256::digest(&cert)),
        der: cert,
    }
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match contents.len() {
        length @ 0..=0x7f => out.push(length as u8),
        length @ 0x80..=0xff => out.extend([0x81, length as u8]),
        length => out.extend([0x82, (length >> 8) as u8, length as u8]),
    }
    out.extend_from_slice(contents);
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
