//! The system under test: either an engine the bench starts itself (the default: the release
//! binary on free loopback ports, a temporary data dir, a generated config with one project)
//! or one that is already running, named by its addresses and credentials.
//!
//! An engine that has TLS listeners (its `--help` lists `--mqtt-tls-listen`) gets them on
//! free loopback ports with `--tls` and turned `off` without, so it never binds its public
//! defaults (0.0.0.0:8883 and :8443) during a bench and a TCP run measures what it always
//! did. With `--tls`, once the engine is ready the bench waits until both TLS listeners accept
//! connections and reads the CA, the certificate chain and the key the engine generated in
//! `{data dir}/tls/` (the data dir goes away with the engine; the Mosquitto baseline serves
//! the same certificate after it), or the `--tls-cert`/`--tls-key` files it passed on.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::transport::{Endpoint, ServerIdentity};

pub const BENCH_PROJECT_ID: &str = "bench";
pub const BENCH_TOKEN: &str = "bench-token";
const READY_DEADLINE: Duration = Duration::from_secs(60);
const EXIT_DEADLINE: Duration = Duration::from_secs(20);
/// The engine flag that says it has TLS listeners.
const TLS_LISTEN_FLAG: &str = "--mqtt-tls-listen";

/// Where and how to reach an engine.
#[derive(Debug, Clone)]
pub struct Target {
    /// The REST API: HTTP, or HTTPS with `--tls`.
    pub http: Endpoint,
    /// The device side: MQTT, or MQTT over TLS with `--tls`.
    pub mqtt: Endpoint,
    pub project_id: String,
    pub token: String,
    /// The engine's pid when this machine can see it (for RSS and CPU).
    pub pid: Option<u32>,
    /// The engine's shard count: from its ready line, or counted in its `/metrics`.
    pub shards: Option<usize>,
}

/// How to start an engine.
#[derive(Debug, Clone)]
pub struct EngineLaunch {
    pub binary: PathBuf,
    pub shards: usize,
    pub durability: String,
    /// Open the TLS listeners (`--tls`); otherwise they are turned off.
    pub tls: bool,
    /// (certificate chain, key) files the engine serves instead of generating its own.
    pub tls_identity: Option<(PathBuf, PathBuf)>,
}

/// An engine started by the bench; stopped with SIGTERM on [`EngineProcess::stop`] or drop.
#[derive(Debug)]
pub struct EngineProcess {
    child: Child,
    work_dir: tempfile::TempDir,
    /// Its plain listeners.
    pub target: Target,
    /// Its TLS listeners and generated certificates, when it has them.
    pub tls: Option<EngineTls>,
}

/// What an engine started by the bench offers over TLS.
#[derive(Debug, Clone)]
pub struct EngineTls {
    pub mqtt_tls: SocketAddr,
    pub https: SocketAddr,
    /// `{data dir}/tls/ca.pem`: the private CA the engine generated (none when it was given
    /// a certificate).
    pub ca_pem: Option<Vec<u8>>,
    /// `{data dir}/tls/server.pem` (leaf + CA) and `server.key`, or the files it was given.
    pub identity: ServerIdentity,
}

/// `ringiot ready: http=ADDR mqtt=ADDR shards=N` → (http, mqtt, shards).
pub fn parse_ready_line(line: &str) -> Option<(SocketAddr, SocketAddr, usize)> {
    let rest = line.trim().strip_prefix("ringiot ready:")?;
    let (mut http, mut mqtt, mut shards) = (None, None, None);
    for field in rest.split_whitespace() {
        match field.split_once('=')? {
            ("http", value) => http = value.parse().ok(),
            ("mqtt", value) => mqtt = value.parse().ok(),
            ("shards", value) => shards = value.parse().ok(),
            _ => {}
        }
    }
    Some((http?, mqtt?, shards?))
}

/// `https://host:port[/]` → (socket address, host the certificate must name).
pub fn parse_https_url(url: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some(authority) = url.strip_prefix("https://") else {
        bail!("--https takes https://HOST:PORT, got {url}");
    };
    parse_tls_authority(authority.trim_end_matches('/'))
}

/// `host:port`, `[v6]:port` → (socket address, host the certificate must name).
pub fn parse_tls_authority(authority: &str) -> anyhow::Result<(SocketAddr, String)> {
    let Some((host, _port)) = authority.rsplit_once(':').filter(|_| !authority.contains('/')) else {
        bail!("expected HOST:PORT, got {authority}");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let address =
        authority.to_socket_addrs()?.next().ok_or_else(|| anyhow!("{authority} resolves to nothing"))?;
    Ok((address, host.to_owned()))
}

/// Whether `binary --help` lists the TLS listener flags.
pub fn has_tls_listeners(binary: &Path) -> bool {
    Command::new(binary)
        .arg("--help")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(TLS_LISTEN_FLAG))
}

/// A loopback port the kernel just handed out and released.
pub fn free_loopback_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `http://host:port[/]`, `host:port` → a socket address.
pub fn parse_http_url(url: &str) -> anyhow::Result<SocketAddr> {
    let authority = url.strip_prefix("http://").unwrap_or(url).trim_end_matches('/');
    if url.starts_with("https://") || authority.contains('/') {
        bail!("--http takes http://HOST:PORT (no TLS, no path), got {url}");
    }
    authority.to_socket_addrs()?.next().ok_or_else(|| anyhow!("{authority} resolves to nothing"))
}

impl EngineProcess {
    pub fn start(launch: &EngineLaunch) -> anyhow::Result<EngineProcess> {
        if !launch.binary.exists() {
            bail!(
                "no engine at {} — build it first: cargo build --release --bin ringiot (or pass --engine PATH)",
                launch.binary.display()
            );
        }
        let work_dir = tempfile::Builder::new().prefix("ringiot-bench-").tempdir()?;
        let config_path = work_dir.path().join("ringiot.toml");
        std::fs::write(
            &config_path,
            format!("[[projects]]\nproject_id = \"{BENCH_PROJECT_ID}\"\ntokens = [\"{BENCH_TOKEN}\"]\n"),
        )?;
        let log_path = work_dir.path().join("engine.log");
        let log = std::fs::File::create(&log_path)?;
        let (tls_args, tls_ports) = tls_listener_args(launch)?;
        let mut child = Command::new(&launch.binary)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(work_dir.path().join("data"))
            .args(["--shards", &launch.shards.to_string()])
            .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"])
            .args(&tls_args)
            .args(["--durability", &launch.durability])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", launch.binary.display()))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (ready_sender, ready_receiver) = mpsc::channel();
        // Keeps draining stdout after the ready line so the engine never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(ready) = parse_ready_line(&line) {
                    let _ = ready_sender.send(ready);
                }
            }
        });
        let ready = ready_receiver.recv_timeout(READY_DEADLINE);
        let pid = child.id();
        let mut process = EngineProcess {
            child,
            work_dir,
            target: Target {
                http: Endpoint::tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
                mqtt: Endpoint::tcp(SocketAddr::from(([127, 0, 0, 1], 0))),
                project_id: BENCH_PROJECT_ID.to_owned(),
                token: BENCH_TOKEN.to_owned(),
                pid: Some(pid),
                shards: None,
            },
            tls: None,
        };
        match ready {
            Ok((http, mqtt, shards)) => {
                process.target.http = Endpoint::tcp(http);
                process.target.mqtt = Endpoint::tcp(mqtt);
                process.target.shards = Some(shards);
                if let Some(ports) = tls_ports {
                    let tls_dir = process.work_dir.path().join("data").join("tls");
                    process.tls = Some(wait_for_tls(ports, &tls_dir, launch.tls_identity.as_ref())?);
                }
                Ok(process)
            }
            Err(_) => {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let tail: String = log
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                process.kill();
                bail!("the engine did not print its ready line within {READY_DEADLINE:?}; its log ends:\n{tail}")
            }
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.work_dir.path().join("engine.log")
    }

    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// SIGTERM, then SIGKILL if it has not exited within the deadline.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + EXIT_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    eprintln!("note: the engine exited with {status} (log: {})", self.log_path().display());
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!("the engine ignored SIGTERM for {EXIT_DEADLINE:?} and was killed")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The addresses the bench asked an engine to open its TLS listeners on.
#[derive(Debug, Clone, Copy)]
struct TlsPorts {
    mqtt_tls: SocketAddr,
    https: SocketAddr,
}

/// The engine's TLS listener flags and the (MQTT over TLS, HTTPS) addresses they ask for:
/// free loopback ports when `launch.tls`, else `off` (an engine without TLS listeners gets
/// no flags). With `launch.tls_identity` the engine serves those files instead of generating
/// its own.
fn tls_listener_args(launch: &EngineLaunch) -> anyhow::Result<(Vec<String>, Option<TlsPorts>)> {
    if !has_tls_listeners(&launch.binary) {
        if launch.tls {
            bail!(
                "{} has no TLS listeners (no {TLS_LISTEN_FLAG} in its --help): build a newer one",
                launch.binary.display()
            );
        }
        return Ok((Vec::new(), None));
    }
    if !launch.tls {
        let off = ["--mqtt-tls-listen", "off", "--https-listen", "off"];
        return Ok((off.map(str::to_owned).to_vec(), None));
    }
    // Both held at once so the kernel cannot hand out the same port twice.
    let held = [std::net::TcpListener::bind("127.0.0.1:0")?, std::net::TcpListener::bind("127.0.0.1:0")?];
    let (mqtt_tls, https) = (held[0].local_addr()?, held[1].local_addr()?);
    drop(held);
    let mut args = vec![
        TLS_LISTEN_FLAG.to_owned(),
        mqtt_tls.to_string(),
        "--https-listen".to_owned(),
        https.to_string(),
    ];
    if let Some((cert_chain, key)) = &launch.tls_identity {
        args.extend(["--tls-cert-file".to_owned(), cert_chain.display().to_string()]);
        args.extend(["--tls-key-file".to_owned(), key.display().to_string()]);
    }
    Ok((args, Some(TlsPorts { mqtt_tls, https })))
}

/// Waits until both TLS listeners accept connections and the certificates can be read: the
/// given files, or those the engine generated in `tls_dir`.
fn wait_for_tls(
    TlsPorts { mqtt_tls, https }: TlsPorts,
    tls_dir: &Path,
    given: Option<&(PathBuf, PathBuf)>,
) -> anyhow::Result<EngineTls> {
    let deadline = Instant::now() + READY_DEADLINE;
    let (cert_chain, key) = match given {
        Some((cert_chain, key)) => (cert_chain.clone(), key.clone()),
        None => (tls_dir.join("server.pem"), tls_dir.join("server.key")),
    };
    loop {
        let listening = [mqtt_tls, https].iter().all(|address| std::net::TcpStream::connect(address).is_ok());
        let ca_pem = match given {
            Some(_) => Ok(None),
            None => std::fs::read(tls_dir.join("ca.pem")).map(Some),
        };
        if let (true, Ok(ca_pem), Ok(identity)) = (listening, ca_pem, ServerIdentity::read(&cert_chain, &key))
        {
            return Ok(EngineTls { mqtt_tls, https, ca_pem, identity });
        }
        if Instant::now() > deadline {
            bail!(
                "the engine's TLS listeners ({mqtt_tls}, {https}) or its certificates in {} were not there within {READY_DEADLINE:?}",
                tls_dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for EngineProcess {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ready_line_gives_both_addresses() {
        let ready = parse_ready_line("ringiot ready: http=127.0.0.1:41234 mqtt=127.0.0.1:41235 shards=2\n");
        assert_eq!(ready, Some(("127.0.0.1:41234".parse().unwrap(), "127.0.0.1:41235".parse().unwrap(), 2)));
    }

    #[test]
    fn other_lines_are_not_ready_lines() {
        assert_eq!(parse_ready_line("Created a default project"), None);
        assert_eq!(parse_ready_line("ringiot ready: http=127.0.0.1:1 shards=2"), None);
    }

    #[test]
    fn http_urls_become_socket_addresses() {
        assert_eq!(parse_http_url("http://127.0.0.1:8080/").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_http_url("127.0.0.1:9").unwrap(), "127.0.0.1:9".parse().unwrap());
        assert!(parse_http_url("https://127.0.0.1:443").is_err());
        assert!(parse_http_url("http://127.0.0.1:80/v5").is_err());
    }

    #[test]
    fn tls_addresses_keep_the_host_for_the_certificate_check() {
        let (address, host) = parse_https_url("https://127.0.0.1:8443/").unwrap();
        assert_eq!((address, host.as_str()), ("127.0.0.1:8443".parse().unwrap(), "127.0.0.1"));
        let (address, host) = parse_tls_authority("[::1]:8883").unwrap();
        assert_eq!((address, host.as_str()), ("[::1]:8883".parse().unwrap(), "::1"));
        let (_, host) = parse_tls_authority("localhost:8883").unwrap();
        assert_eq!(host, "localhost");
        assert!(parse_https_url("http://127.0.0.1:8443").is_err());
        assert!(parse_https_url("https://127.0.0.1:8443/v5").is_err());
        assert!(parse_tls_authority("127.0.0.1").is_err());
    }
}
