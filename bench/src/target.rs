//! The system under test: either an engine the bench starts itself (the default: the release
//! binary on free loopback ports, a temporary data dir, a generated config with one project)
//! or one that is already running, named by its addresses and credentials.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

pub const BENCH_PROJECT_ID: &str = "bench";
pub const BENCH_TOKEN: &str = "bench-token";
const READY_DEADLINE: Duration = Duration::from_secs(60);
const EXIT_DEADLINE: Duration = Duration::from_secs(20);

/// Where and how to reach an engine.
#[derive(Debug, Clone)]
pub struct Target {
    pub http: SocketAddr,
    pub mqtt: SocketAddr,
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
}

/// An engine started by the bench; stopped with SIGTERM on [`EngineProcess::stop`] or drop.
#[derive(Debug)]
pub struct EngineProcess {
    child: Child,
    work_dir: tempfile::TempDir,
    pub target: Target,
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
        let mut child = Command::new(&launch.binary)
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(work_dir.path().join("data"))
            .args(["--shards", &launch.shards.to_string()])
            .args(["--http-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0"])
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
                http: SocketAddr::from(([127, 0, 0, 1], 0)),
                mqtt: SocketAddr::from(([127, 0, 0, 1], 0)),
                project_id: BENCH_PROJECT_ID.to_owned(),
                token: BENCH_TOKEN.to_owned(),
                pid: Some(pid),
                shards: None,
            },
        };
        match ready {
            Ok((http, mqtt, shards)) => {
                process.target.http = http;
                process.target.mqtt = mqtt;
                process.target.shards = Some(shards);
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
}
