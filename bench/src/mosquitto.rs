//! The Mosquitto baseline: a broker the bench starts itself on a free loopback port, tuned for
//! request/response (`set_tcp_nodelay true`, so Nagle does not add up to 40 ms per answer)
//! and allowed to queue deeply (`max_queued_messages 100000`) so it never drops under load.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

const READY_DEADLINE: Duration = Duration::from_secs(10);

/// `mosquitto` from PATH, else /usr/sbin/mosquitto.
pub fn find_mosquitto() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("mosquitto"));
    in_path.chain([PathBuf::from("/usr/sbin/mosquitto")]).find(|candidate| candidate.is_file())
}

/// The broker's config file text.
pub fn config_text(port: u16) -> String {
    format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\nmax_queued_messages 100000\n\
         persistence false\nlog_dest stderr\nlog_type error\nlog_type warning\n"
    )
}

/// A running Mosquitto; SIGTERM on drop.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub address: SocketAddr,
    _work_dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn start(binary: &PathBuf) -> anyhow::Result<Mosquitto> {
        // A port the kernel just handed out and released; Mosquitto cannot listen on port 0.
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let work_dir = tempfile::Builder::new().prefix("ringiot-bench-mosquitto-").tempdir()?;
        let config_path = work_dir.path().join("mosquitto.conf");
        std::fs::write(&config_path, config_text(port))?;
        let log = std::fs::File::create(work_dir.path().join("mosquitto.log"))?;
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut broker =
            Mosquitto { child, address: SocketAddr::from(([127, 0, 0, 1], port)), _work_dir: work_dir };
        let deadline = Instant::now() + READY_DEADLINE;
        while TcpStream::connect(broker.address).is_err() {
            if let Some(status) = broker.child.try_wait()? {
                bail!("mosquitto exited at start-up with {status}");
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
        let text = config_text(18830);
        for line in [
            "listener 18830 127.0.0.1",
            "allow_anonymous true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
