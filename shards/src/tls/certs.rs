//! The server's certificate files: loading the operator's PEM chain and key, and — when the
//! operator configured none — a private CA and a server certificate it signs, kept in a
//! directory and reused across starts.
//!
//! The generated CA (`ca.pem`) is what devices install to trust the engine, so it outlives
//! the server certificate: a server certificate that is missing, expiring within
//! [`RENEW_BEFORE_DAYS`], issued by another CA or lacking a requested name is reissued from
//! the existing CA. The server certificate lives [`SERVER_LIFETIME_DAYS`] = 397 days, the
//! longest life browsers and Apple clients accept for any TLS server certificate, so the
//! files also work for a browser hitting the REST port; reissue is free, it happens at start.
//! An engine that runs a year without a restart serves an expired certificate.
//!
//! ## Invariants
//! - Private keys are written only by [`write_atomically`] with mode 0600 set when the file
//!   is created — never chmod-ed after a world-readable write — and never appear in logs,
//!   error messages or `Debug` output.
//! - Every file is written to a temporary file in the same directory, synced, then renamed
//!   over the old one, so a crash leaves either the old file or the new one.
//! - The CA is replaced only when its certificate or key cannot be loaded, do not belong
//!   together, or the CA would expire before a freshly issued server certificate.
//! - Everything written is read back through the same loaders before it is reported.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::string::Ia5String;
use rcgen::{BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose};
use rcgen::{IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{sign::CertifiedKey, InconsistentKeys};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

/// Life of a generated CA.
pub const CA_LIFETIME_DAYS: i64 = 3650;
/// Life of a generated server certificate (see the module doc for why 397).
pub const SERVER_LIFETIME_DAYS: i64 = 397;
/// A generated server certificate with less life left than this is reissued at start.
pub const RENEW_BEFORE_DAYS: i64 = 30;
const DAY_S: i64 = 86_400;
/// Generated certificates start an hour in the past to tolerate clients with a slow clock.
const BACKDATE_S: i64 = 3_600;
/// Certificate and key files are a few KiB; anything larger is not one.
const MAX_PEM_FILE_BYTES: u64 = 1 << 20;
const NAMES_ALWAYS_INCLUDED: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A loaded certificate chain (leaf first) and the leaf's private key.
pub struct ServerCertificate {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ServerCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCertificate")
            .field("chain_len", &self.chain.len())
            .field("key", &"[redacted]")
            .finish()
    }
}

/// What [`ensure_generated`] wrote or found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFiles {
    /// The private CA certificate devices install to trust the engine.
    pub ca_cert: PathBuf,
    /// The server chain: leaf, then the CA.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
    /// Whether this call wrote a new server certificate (and maybe a new CA).
    pub created: bool,
}

#[derive(thiserror::Error, Debug)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is larger than {MAX_PEM_FILE_BYTES} bytes, so not a PEM certificate or key", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is not valid PEM: {problem}", path.display())]
    BadPem { path: PathBuf, problem: &'static str },
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)", path.display())]
    NoKey { path: PathBuf },
    #[error("the private key in {} cannot be used: {reason}", path.display())]
    UnusableKey { path: PathBuf, reason: String },
    #[error("the first certificate in {} is not a usable X.509 certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the private key in {} does not belong to the first certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{name:?} cannot be a certificate name: DNS names must be ASCII")]
    BadName { name: String },
    #[error("cannot generate the {what}: {source}")]
    Generate { what: &'static str, source: rcgen::Error },
    #[error("the {what} written to {} did not load back: {reason}", path.display())]
    ReadBack { what: &'static str, path: PathBuf, reason: String },
}

/// Loads a PEM certificate chain (leaf first, intermediates allowed) and a PEM private key
/// (PKCS#8, PKCS#1 RSA or SEC1 EC), and checks that the key belongs to the leaf.
pub fn load(cert_file: &Path, key_file: &Path) -> Result<ServerCertificate, CertError> {
    let chain = CertificateDer::pem_slice_iter(&read_pem_file(cert_file)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(cert_file, &error))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate { path: cert_file.to_owned() });
    }
    let key = PrivateKeyDer::from_pem_slice(&read_pem_file(key_file)?).map_err(|error| match error {
        pem::Error::NoItemsFound => CertError::NoKey { path: key_file.to_owned() },
        other => pem_error(key_file, &other),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| CertError::UnusableKey { path: key_file.to_owned(), reason: error.to_string() })?;
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        // `Unknown`: the key type cannot report its public half; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(CertError::KeyMismatch { cert: cert_file.to_owned(), key: key_file.to_owned() })
        }
        Err(other) => {
            return Err(CertError::BadCertificate { path: cert_file.to_owned(), reason: other.to_string() })
        }
    }
    Ok(ServerCertificate { chain, key })
}

/// Makes sure `dir` (created 0700 if missing) holds a private CA (`ca.pem`, `ca.key`) and a
/// server certificate it signed (`server.pem` = leaf then CA, `server.key`) that names
/// `localhost`, `127.0.0.1`, `::1`, this host's name and `extra_names`; ECDSA P-256 keys.
/// Valid files are reused (`created == false`); see the module doc for when they are not.
pub fn ensure_generated(dir: &Path, extra_names: &[String]) -> Result<GeneratedFiles, CertError> {
    ensure_generated_at(dir, extra_names, crate::now_unix_s())
}

fn ensure_generated_at(
    dir: &Path,
    extra_names: &[String],
    now_unix_s: i64,
) -> Result<GeneratedFiles, CertError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| CertError::Write { path: dir.to_owned(), source })?;
    let mut files = GeneratedFiles {
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        created: false,
    };
    let ca_key = dir.join("ca.key");
    let names = certificate_names(extra_names, host_name())?;
    let ca = match load_ca(&files.ca_cert, &ca_key, now_unix_s) {
        Ok(ca) => ca,
        Err(reason) => {
            if files.ca_cert.exists() || ca_key.exists() {
                tracing::warn!("replacing the private CA in {}: {reason}", dir.display());
            }
            generate_ca(&files.ca_cert, &ca_key, now_unix_s)?
        }
    };
    if !server_reusable(&files, &ca, &names, now_unix_s) {
        issue_server_certificate(&files, &ca, &names, now_unix_s)?;
        files.created = true;
    }
    Ok(files)
}

/// A CA read back from its files, ready to sign.
struct CertificateAuthority {
    cert_der: CertificateDer<'static>,
    cert_pem: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

fn load_ca(cert_file: &Path, key_file: &Path, now_unix_s: i64) -> Result<CertificateAuthority, String> {
    let cert_pem = read_pem_file(cert_file).map_err(|error| error.to_string())?;
    let cert_der = CertificateDer::from_pem_slice(&cert_pem)
        .map_err(|error| pem_error(cert_file, &error).to_string())?;
    let key_pem = read_pem_file(key_file).map_err(|error| error.to_string())?;
    let key_text =
        std::str::from_utf8(&key_pem).map_err(|_| format!("{} is not text", key_file.display()))?;
    let key =
        KeyPair::from_pem(key_text).map_err(|_| format!("{} holds no usable key", key_file.display()))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der).map_err(|error| error.to_string())?;
    if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err(format!("{} does not belong to {}", key_file.display(), cert_file.display()));
    }
    let validity = parsed.validity();
    let outlives_server_s = validity.not_after.timestamp() - now_unix_s - SERVER_LIFETIME_DAYS * DAY_S;
    if validity.not_before.timestamp() > now_unix_s || outlives_server_s < 0 {
        return Err(format!("{} is not valid long enough to sign a server certificate", cert_file.display()));
    }
    let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|error| error.to_string())?;
    Ok(CertificateAuthority { cert_der, cert_pem, issuer })
}

fn generate_ca(
    cert_file: &Path,
    key_file: &Path,
    now_unix_s: i64,
) -> Result<CertificateAuthority, CertError> {
    let generate = |source| CertError::Generate { what: "private CA", source };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "ringiot");
    let common_name = match host_name() {
        Some(host) => format!("ringiot private CA ({host})"),
        None => "ringiot private CA".to_owned(),
    };
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = offset_date_time(now_unix_s - BACKDATE_S);
    params.not_after = offset_date_time(now_unix_s + CA_LIFETIME_DAYS * DAY_S);
    let cert = params.self_signed(&key).map_err(generate)?;
    write_atomically(key_file, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(cert_file, cert.pem().as_bytes(), 0o644)?;
    load_ca(cert_file, key_file, now_unix_s).map_err(|reason| CertError::ReadBack {
        what: "private CA",
        path: cert_file.to_owned(),
        reason,
    })
}

fn server_reusable(
    files: &GeneratedFiles,
    ca: &CertificateAuthority,
    names: &[CertName],
    now_unix_s: i64,
) -> bool {
    let Ok(server) = load(&files.cert, &files.key) else { return false };
    if server.chain.len() != 2 || server.chain[1] != ca.cert_der {
        return false;
    }
    let Ok((_, leaf)) = x509_parser::parse_x509_certificate(&server.chain[0]) else { return false };
    let validity = leaf.validity();
    let renew_at_s = validity.not_after.timestamp() - RENEW_BEFORE_DAYS * DAY_S;
    validity.not_before.timestamp() <= now_unix_s && now_unix_s < renew_at_s && names_cover(&leaf, names)
}

fn issue_server_certificate(
    files: &GeneratedFiles,
    ca: &CertificateAuthority,
    names: &[CertName],
    now_unix_s: i64,
) -> Result<(), CertError> {
    let generate = |source| CertError::Generate { what: "server certificate", source };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::OrganizationName, "ringiot");
    params.distinguished_name.push(DnType::CommonName, "ringiot server");
    params.subject_alt_names = names.iter().map(|name| name.san.clone()).collect();
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = offset_date_time(now_unix_s - BACKDATE_S);
    params.not_after = offset_date_time(now_unix_s + SERVER_LIFETIME_DAYS * DAY_S);
    let cert = params.signed_by(&key, &ca.issuer).map_err(generate)?;
    let mut chain_pem = cert.pem().into_bytes();
    chain_pem.extend_from_slice(&ca.cert_pem);
    write_atomically(&files.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_atomically(&files.cert, &chain_pem, 0o644)?;
    load(&files.cert, &files.key).map_err(|error| CertError::ReadBack {
        what: "server certificate",
        path: files.cert.clone(),
        reason: error.to_string(),
    })?;
    Ok(())
}

/// A name the server certificate must carry, as requested and as it goes into the SAN.
struct CertName {
    requested: String,
    san: SanType,
}

fn certificate_names(extra_names: &[String], host: Option<String>) -> Result<Vec<CertName>, CertError> {
    let mut names: Vec<CertName> = Vec::new();
    let requested = NAMES_ALWAYS_INCLUDED.iter().map(|name| name.to_string()).chain(host);
    for name in requested.chain(extra_names.iter().map(|name| name.trim().to_owned())) {
        if name.is_empty() || names.iter().any(|known| known.requested.eq_ignore_ascii_case(&name)) {
            continue;
        }
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                Ia5String::try_from(name.to_ascii_lowercase())
                    .map_err(|_| CertError::BadName { name: name.clone() })?,
            ),
        };
        names.push(CertName { requested: name, san });
    }
    Ok(names)
}

fn names_cover(leaf: &X509Certificate<'_>, names: &[CertName]) -> bool {
    let Ok(Some(extension)) = leaf.subject_alternative_name() else { return false };
    let present = &extension.value.general_names;
    names.iter().all(|name| {
        present.iter().any(|general_name| match (&name.san, general_name) {
            (SanType::DnsName(wanted), GeneralName::DNSName(dns)) => {
                wanted.as_str().eq_ignore_ascii_case(dns)
            }
            (SanType::IpAddress(IpAddr::V4(wanted)), GeneralName::IPAddress(ip)) => wanted.octets() == **ip,
            (SanType::IpAddress(IpAddr::V6(wanted)), GeneralName::IPAddress(ip)) => wanted.octets() == **ip,
            _ => false,
        })
    })
}

/// This machine's host name, if it is one a certificate can carry.
fn host_name() -> Option<String> {
    let name = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let usable =
        !name.is_empty() && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-._".contains(&byte));
    usable.then(|| name.to_owned())
}

fn offset_date_time(unix_s: i64) -> time::OffsetDateTime {
    // Out of range only for times past year 9999, which no caller computes.
    time::OffsetDateTime::from_unix_timestamp(unix_s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, CertError> {
    let read_error = |source| CertError::Read { path: path.to_owned(), source };
    let mut contents = Vec::new();
    File::open(path)
        .map_err(read_error)?
        .take(MAX_PEM_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
    if contents.len() as u64 > MAX_PEM_FILE_BYTES {
        return Err(CertError::TooLarge { path: path.to_owned() });
    }
    Ok(contents)
}

/// Describes a PEM error without echoing the file's contents (it may be a private key).
fn pem_error(path: &Path, error: &pem::Error) -> CertError {
    let problem = match error {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::NoItemsFound => "no section of the expected kind",
        pem::Error::SectionTooLarge => "a section is too large",
        _ => "unreadable PEM",
    };
    CertError::BadPem { path: path.to_owned(), problem }
}

/// Replaces `path` with `contents`: written to a temporary file created with `mode`, synced,
/// renamed over `path`, and the directory synced.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let write_error = |source| CertError::Write { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    let temporary = dir.join(format!(".{file_name}.tmp"));
    // A crash mid-write leaves the temporary behind; `create_new` must not meet it.
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(write_error(error)),
        _ => {}
    }
    let mut file =
        OpenOptions::new().write(true).create_new(true).mode(mode).open(&temporary).map_err(write_error)?;
    file.write_all(contents).and_then(|()| file.sync_all()).map_err(write_error)?;
    drop(file);
    fs::rename(&temporary, path).map_err(write_error)?;
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(write_error)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    use super::*;

    const START_S: i64 = 1_800_000_000;

    fn generate(dir: &Path, now_unix_s: i64) -> GeneratedFiles {
        ensure_generated_at(dir, &["iot.example.com".to_owned()], now_unix_s).unwrap()
    }

    /// Verifies `server.pem` against `ca.pem` for `server_name`, as a device would.
    fn verify_chain(files: &GeneratedFiles, server_name: &str, at_unix_s: i64) -> Result<(), rustls::Error> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&files.ca_cert).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
        let chain = load(&files.cert, &files.key).unwrap().chain;
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let at = UnixTime::since_unix_epoch(std::time::Duration::from_secs(at_unix_s as u64));
        verifier.verify_server_cert(&chain[0], &chain[1..], &name, &[], at).map(|_| ())
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generated_files_load_and_verify_for_every_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = ensure_generated(&dir.path().join("tls"), &["iot.example.com".to_owned()]).unwrap();
        assert!(files.created);
        let server = load(&files.cert, &files.key).unwrap();
        assert_eq!(server.chain.len(), 2);
        for name in ["localhost", "127.0.0.1", "::1", "iot.example.com", "IOT.example.com"] {
            verify_chain(&files, name, crate::now_unix_s()).unwrap();
        }
        assert!(verify_chain(&files, "other.example.com", crate::now_unix_s()).is_err());
    }

    #[test]
    fn keys_are_private_from_creation() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("tls");
        let files = generate(&tls_dir, START_S);
        assert_eq!(mode(&files.key), 0o600);
        assert_eq!(mode(&tls_dir.join("ca.key")), 0o600);
        assert_eq!(mode(&tls_dir), 0o700);
        assert_eq!(mode(&files.cert) & 0o600, 0o600);
    }

    #[test]
    fn second_start_reuses_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), START_S);
        let read_all = |files: &GeneratedFiles| {
            [&files.ca_cert, &files.cert, &files.key, &dir.path().join("ca.key")]
                .map(|p| fs::read(p).unwrap())
        };
        let before = read_all(&first);
        let second = generate(dir.path(), START_S + DAY_S);
        assert!(!second.created);
        assert_eq!(read_all(&second), before);
    }

    #[test]
    fn expiring_server_certificate_is_reissued_by_the_same_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), START_S);
        let (ca_before, server_before) = (fs::read(&first.ca_cert).unwrap(), fs::read(&first.cert).unwrap());
        let near_expiry_s = START_S + (SERVER_LIFETIME_DAYS - RENEW_BEFORE_DAYS + 1) * DAY_S;
        let second = generate(dir.path(), near_expiry_s);
        assert!(second.created);
        assert_eq!(fs::read(&second.ca_cert).unwrap(), ca_before);
        assert_ne!(fs::read(&second.cert).unwrap(), server_before);
        verify_chain(&second, "localhost", near_expiry_s + 300 * DAY_S).unwrap();
    }

    #[test]
    fn a_new_name_reissues_the_server_certificate_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), START_S);
        let ca_before = fs::read(&first.ca_cert).unwrap();
        let names = ["iot.example.com".to_owned(), "10.1.2.3".to_owned()];
        let second = ensure_generated_at(dir.path(), &names, START_S).unwrap();
        assert!(second.created);
        assert_eq!(fs::read(&second.ca_cert).unwrap(), ca_before);
        verify_chain(&second, "10.1.2.3", START_S).unwrap();
    }

    #[test]
    fn a_lost_ca_key_regenerates_everything() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), START_S);
        let ca_before = fs::read(&first.ca_cert).unwrap();
        fs::remove_file(dir.path().join("ca.key")).unwrap();
        let second = generate(dir.path(), START_S);
        assert!(second.created);
        assert_ne!(fs::read(&second.ca_cert).unwrap(), ca_before);
        verify_chain(&second, "localhost", START_S).unwrap();
    }

    #[test]
    fn leaf_carries_the_expected_names() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), START_S);
        let leaf_der = load(&files.cert, &files.key).unwrap().chain.remove(0);
        let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
        let names = leaf.subject_alternative_name().unwrap().unwrap().value.general_names.clone();
        let dns: Vec<&str> = names
            .iter()
            .filter_map(|n| if let GeneralName::DNSName(d) = n { Some(*d) } else { None })
            .collect();
        let ips: Vec<&[u8]> = names
            .iter()
            .filter_map(|n| if let GeneralName::IPAddress(ip) = n { Some(*ip) } else { None })
            .collect();
        assert!(dns.contains(&"localhost") && dns.contains(&"iot.example.com"));
        assert!(ips.contains(&&[127, 0, 0, 1][..]));
        assert!(ips.contains(&&std::net::Ipv6Addr::LOCALHOST.octets()[..]));
        if let Some(host) = host_name() {
            assert!(dns.contains(&host.to_ascii_lowercase().as_str()));
        }
    }

    #[test]
    fn load_reports_a_key_of_another_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), START_S);
        let error = load(&files.cert, &dir.path().join("ca.key")).unwrap_err();
        assert!(matches!(error, CertError::KeyMismatch { .. }), "{error}");
        assert!(error.to_string().contains("ca.key"), "{error}");
    }

    #[test]
    fn load_names_the_file_that_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), START_S);
        let garbage = dir.path().join("garbage.pem");
        fs::write(&garbage, "not a certificate\n").unwrap();
        let error = load(&garbage, &files.key).unwrap_err();
        assert!(matches!(error, CertError::NoCertificate { .. }));
        assert!(error.to_string().contains("garbage.pem"), "{error}");
        assert!(matches!(load(&files.cert, &garbage), Err(CertError::NoKey { .. })));
        assert!(matches!(load(&files.cert, &files.cert), Err(CertError::NoKey { .. })));
        let missing = load(&dir.path().join("absent.pem"), &files.key).unwrap_err();
        assert!(matches!(missing, CertError::Read { .. }) && missing.to_string().contains("absent.pem"));
        fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n").unwrap();
        assert!(matches!(load(&garbage, &files.key), Err(CertError::BadPem { .. })));
    }

    #[test]
    fn debug_output_hides_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(dir.path(), START_S);
        let printed = format!("{:?}", load(&files.cert, &files.key).unwrap());
        assert!(printed.contains("[redacted]") && !printed.contains("PRIVATE"), "{printed}");
    }
}
