//! The Mosquitto baseline: a broker the bench starts itself on a free loopback port, tuned for
//! request/response (`set_tcp_nodelay true`, so Nagle does not add up to 40 ms per answer)
//! and allowed to queue deeply (`max_queued_messages 100000`) so it never drops under load.
//!
//! With `--tls` its listener speaks TLS with the engine's own certificate chain and key
//! (`certfile` is the whole chain file, leaf then CA), `require_certificate false`: devices
//! authenticate with MQTT username/password as on the engine, and the same fleet code and
//! client configuration connect to both. Mosquitto started as root drops to its `mosquitto`
//! user (else `nobody`) *before* it loads the certificate, so the bench copies chain and key
//! into the broker's temporary dir and hands dir and copies to that user (key mode 0600).

use std::ffi::CString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::transport::{Endpoint, ServerIdentity};

const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Mosquitto's listen backlog (`listen(sock, 100)` in its net.c): more logins in flight than
/// that overflow it and get reset, so a fleet logs in to it at most this many at once.
pub const LOGINS_IN_FLIGHT_MAX: usize = 100;

/// `mosquitto` from PATH, else /usr/sbin/mosquitto.
pub fn find_mosquitto() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("mosquitto"));
    in_path.chain([PathBuf::from("/usr/sbin/mosquitto")]).find(|candidate| candidate.is_file())
}

/// Where the TLS listener's certificate chain and key are.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    pub cert_chain: &'a Path,
    pub key: &'a Path,
}

/// The broker's config file text.
pub fn config_text(port: u16, tls: Option<TlsFiles<'_>>) -> String {
    let mut text = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n\
         persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    );
    if let Some(tls) = tls {
        text.push_str(&format!(
            "certfile {}\nkeyfile {}\nrequire_certificate false\n",
            tls.cert_chain.display(),
            tls.key.display()
        ));
    }
    text
}

/// The uid and gid Mosquitto switches to when started as root: its `mosquitto` user, else
/// `nobody` (what it does itself when `user` is unset).
fn privilege_drop_ids() -> Option<(libc::uid_t, libc::gid_t)> {
    ["mosquitto", "nobody"].into_iter().find_map(user_ids)
}

fn user_ids(name: &str) -> Option<(libc::uid_t, libc::gid_t)> {
    let name = CString::new(name).ok()?;
    // SAFETY: passwd is plain data; getpwnam_r writes it and the strings into `buffer`, both
    // of which outlive the call, and `found` points at `entry` or is null.
    unsafe {
        let mut entry: libc::passwd = std::mem::zeroed();
        let mut buffer = [0 as libc::c_char; 4096];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let status =
            libc::getpwnam_r(name.as_ptr(), &mut entry, buffer.as_mut_ptr(), buffer.len(), &mut found);
        (status == 0 && !found.is_null()).then_some((entry.pw_uid, entry.pw_gid))
    }
}

fn chown(path: &Path, (uid, gid): (libc::uid_t, libc::gid_t)) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).with_context(|| format!("chown {}", path.display()))
}

/// Writes chain and key into `dir` so that the broker can read them after it dropped its
/// privileges.
fn write_identity(dir: &Path, identity: &ServerIdentity) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert_chain = dir.join("server.pem");
    let key = dir.join("server.key");
    std::fs::write(&cert_chain, &identity.cert_chain_pem)?;
    std::fs::write(&key, &identity.key_pem)?;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let ids = privilege_drop_ids().context("no mosquitto or nobody user for the broker to run as")?;
        for path in [dir, cert_chain.as_path(), key.as_path()] {
            chown(path, ids)?;
        }
    }
    Ok((cert_chain, key))
}

/// A running Mosquitto; SIGTERM on drop.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub address: SocketAddr,
    work_dir: tempfile::TempDir,
}

impl Mosquitto {
    /// A broker reached the way the engine is (`engine_mqtt`): plain, or over TLS serving
    /// `identity`; returns it with the endpoint a fleet dials.
    pub fn start_like(
        binary: &Path,
        engine_mqtt: &Endpoint,
        identity: Option<&ServerIdentity>,
    ) -> anyhow::Result<(Mosquitto, Endpoint)> {
        let identity = match (engine_mqtt.is_tls(), identity) {
            (false, _) => None,
            (true, Some(identity)) => Some(identity),
            (true, None) => bail!(
                "a TLS baseline needs a certificate: let the bench start the engine, or give --tls-cert and --tls-key"
            ),
        };
        let broker = Mosquitto::start(binary, identity)?;
        let endpoint = engine_mqtt.same_transport_to(broker.address);
        Ok((broker, endpoint))
    }

    /// A plain listener, or a TLS one serving `identity`.
    pub fn start(binary: &Path, identity: Option<&ServerIdentity>) -> anyhow::Result<Mosquitto> {
        // A port the kernel just handed out and released; Mosquitto cannot listen on port 0.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let work_dir = tempfile::Builder::new().prefix("ringiot-bench-mosquitto-").tempdir()?;
        let tls_paths = identity.map(|identity| write_identity(work_dir.path(), identity)).transpose()?;
        let tls = tls_paths.as_ref().map(|(cert_chain, key)| TlsFiles { cert_chain, key });
        let config_path = work_dir.path().join("mosquitto.conf");
        std::fs::write(&config_path, config_text(port, tls))?;
        let log = std::fs::File::create(work_dir.path().join("mosquitto.log"))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut broker = Mosquitto { child, address: SocketAddr::from(([127, 0, 0, 1], port)), work_dir };
        let deadline = Instant::now() + READY_DEADLINE;
        while TcpStream::connect(broker.address).is_err() {
            if let Some(status) = broker.child.try_wait()? {
                let log =
                    std::fs::read_to_string(broker.work_dir.path().join("mosquitto.log")).unwrap_or_default();
                bail!("mosquitto exited at start-up with {status}: {}", log.trim());
            }
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {} within {READY_DEADLINE:?}", broker.address);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_tunes_mosquitto_for_request_response() {
        let text = config_text(18830, None);
        for line in [
            "listener 18830 127.0.0.1",
            "allow_anonymous true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(!text.contains("certfile"), "{text}");
    }

    #[test]
    fn with_tls_the_listener_serves_the_chain_and_asks_no_client_certificate() {
        let tls =
            TlsFiles { cert_chain: Path::new("/tmp/b/server.pem"), key: Path::new("/tmp/b/server.key") };
        let text = config_text(18831, Some(tls));
        for line in [
            "listener 18831 127.0.0.1",
            "certfile /tmp/b/server.pem",
            "keyfile /tmp/b/server.key",
            "require_certificate false",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn root_is_a_user_with_ids() {
        assert_eq!(user_ids("root"), Some((0, 0)));
        assert_eq!(user_ids("no-such-user-here"), None);
    }
}
