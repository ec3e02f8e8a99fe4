//! The certificate of the TLS listeners: the configured files, or the ones generated in the
//! data dir on first start; reloaded on SIGHUP.
//!
//! Invariants:
//! - With both TLS listeners off, nothing is loaded or generated.
//! - A reload that fails (a missing file, a key that does not match) keeps the certificate in
//!   use and says why in the log; connections are never dropped by a reload.
//! - Key material never reaches a log line: errors name files and reasons.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use shards::tls::certs::{self, CertError, ServerCertificate};
use shards::tls::ServerTls;

use crate::config::Config;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub struct CertificateSource {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The generated CA's certificate, to hand to devices and clients; `None` when the
    /// operator configured the files.
    pub generated_ca: Option<PathBuf>,
}

impl CertificateSource {
    fn load(&self) -> Result<ServerCertificate, CertError> {
        certs::load(&self.cert_file, &self.key_file)
    }
}

/// The TLS configuration of both listeners and where its certificate came from; `None` when
/// both TLS listeners are off.
pub fn server_tls(config: &Config) -> anyhow::Result<Option<(Arc<ServerTls>, CertificateSource)>> {
    if config.https_listen.0.is_none() && config.mqtt_tls_listen.0.is_none() {
        return Ok(None);
    }
    let source = if config.tls_cert_file.as_os_str().is_empty() {
        let dir = generated_dir(&config.data_dir);
        let generated = certs::ensure_generated(&dir, &[]).context("generating the TLS certificate")?;
        if generated.created {
            tracing::info!(ca = %generated.ca_cert.display(), "generated a private CA and a server certificate");
        }
        CertificateSource {
            cert_file: generated.cert,
            key_file: generated.key,
            generated_ca: Some(generated.ca_cert),
        }
    } else {
        CertificateSource {
            cert_file: config.tls_cert_file.clone(),
            key_file: config.tls_key_file.clone(),
            generated_ca: None,
        }
    };
    let certificate = source.load().context("loading the TLS certificate")?;
    let tls = ServerTls::new(certificate).context("the TLS certificate")?;
    Ok(Some((Arc::new(tls), source)))
}

/// `<data_dir>/tls`.
pub fn generated_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tls")
}

/// Reloads the certificate files into `tls` on every SIGHUP, on a thread of its own, for the
/// life of the process. Handshakes from then on use the new certificate.
pub fn reload_on_sighup(tls: Arc<ServerTls>, source: CertificateSource) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("registering the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("tls-reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                let reloaded = source.load().map_err(|e| e.to_string()).and_then(|certificate| {
                    tls.reload(certificate).map_err(|e| format!("the TLS certificate: {e}"))
                });
                match reloaded {
                    Ok(()) => tracing::info!(cert = %source.cert_file.display(), "TLS certificate reloaded (SIGHUP)"),
                    Err(error) => tracing::error!(
                        cert = %source.cert_file.display(),
                        "TLS certificate not reloaded, the one in use stays: {error}"
                    ),
                }
            }
        })
        .context("starting the TLS reload thread")?;
    Ok(())
}
