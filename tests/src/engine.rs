//! Starting and stopping the engine under test.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Auth, Client};

/// Credentials of the two projects every test engine is configured with.
#[derive(Debug, Clone, Copy)]
pub struct ProjectCredentials {
    pub project_id: &'static str,
    pub token: &'static str,
    pub ak: &'static str,
    pub sk: &'static str,
}

pub const PROJECT_A: ProjectCredentials = ProjectCredentials {
    project_id: "proj_a",
    token: "token-a-0001",
    ak: "AKPROJECTA0000000001",
    sk: "SKprojectAsecret0000000000000000000000001",
};
pub const PROJECT_B: ProjectCredentials = ProjectCredentials {
    project_id: "proj_b",
    token: "token-b-0001",
    ak: "AKPROJECTB0000000001",
    sk: "SKprojectBsecret0000000000000000000000001",
};

const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Starts the error text of an engine that hung at start-up (killed by the harness).
pub const HUNG: &str = "HUNG";
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub shards: usize,
    /// Extra command-line flags.
    pub args: Vec<String>,
    /// Extra top-level TOML keys for the config file (before the `[[projects]]` tables).
    pub config_extra: String,
    /// Start with no config file at all, as a newcomer would (the default project is made).
    pub bare: bool,
    /// Pass no `--data-dir`: run in the data dir's parent so the default `./data` is it (the
    /// data dir must then be named `data`).
    pub default_data_dir: bool,
    /// An open-files limit (soft and hard) for the engine process, lower than the test's own.
    pub open_files_limit: Option<u64>,
    /// The engine's `RUST_LOG` (default: the test's own, else `warn`).
    pub log_filter: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            shards: 1,
            args: Vec::new(),
            config_extra: String::new(),
            bare: false,
            default_data_dir: false,
            open_files_limit: None,
            log_filter: None,
        }
    }
}

/// A running engine. Killed (SIGKILL) when dropped, if still running.
#[derive(Debug)]
pub struct Engine {
    child: Option<Child>,
    pub http: SocketAddr,
    /// The MQTT address every shard listens on.
    pub mqtt: SocketAddr,
    /// The HTTPS and MQTT-over-TLS addresses (`None`: turned off).
    pub https: Option<SocketAddr>,
    pub mqtt_tls: Option<SocketAddr>,
    pub data_dir: PathBuf,
    /// Everything the engine printed on stdout up to its ready line.
    pub stdout_head: String,
    /// Everything the engine has logged on stderr so far.
    log: Arc<Mutex<String>>,
    _temp: Option<tempfile::TempDir>,
}

impl Engine {
    /// Starts an engine on a fresh temporary data dir.
    pub fn start(options: EngineOptions) -> Engine {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut engine = Engine::start_on(&data_dir, &options)
            .unwrap_or_else(|stderr| panic!("engine did not start:\n{stderr}"));
        engine._temp = Some(temp);
        engine
    }

    /// Starts an engine on `data_dir` (kept by the caller). `Err(stderr)` if it exits before
    /// printing its ready line; the text starts with [`HUNG`] if it had to be killed instead.
    pub fn start_on(data_dir: &Path, options: &EngineOptions) -> Result<Engine, String> {
        std::fs::create_dir_all(data_dir.parent().expect("data dir has a parent")).expect("data dir parent");
        let mut command = Command::new(engine_binary());
        if !options.bare {
            let config_path = data_dir.with_extension("toml");
            std::fs::write(&config_path, config_text(&options.config_extra)).expect("config file");
            command.arg("--config").arg(&config_path);
        }
        if options.default_data_dir {
            assert!(data_dir.ends_with("data"), "the default data dir is ./data");
            command.current_dir(data_dir.parent().expect("data dir has a parent"));
        } else {
            command.arg("--data-dir").arg(data_dir);
        }
        // Port 0 unless the test chose an address itself.
        for flag in ["--http-listen", "--mqtt-listen", "--https-listen", "--mqtt-tls-listen"] {
            if !options.args.iter().any(|arg| arg == flag) {
                command.args([flag, "127.0.0.1:0"]);
            }
        }
        if let Some(limit) = options.open_files_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit(2) is async-signal-safe, and the closure touches nothing else.
            unsafe {
                command.pre_exec(move || {
                    let rlimit = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .args(["--shards", &options.shards.to_string()])
            .args(&options.args)
            .env(
                "RUST_LOG",
                options
                    .log_filter
                    .clone()
                    .or_else(|| std::env::var("RUST_LOG").ok())
                    .unwrap_or_else(|| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning the engine");
        let stderr = child.stderr.take().expect("stderr");
        let (stderr_sender, stderr_receiver) = mpsc::channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log_writer = log.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[engine] {line}");
                text.push_str(&line);
                text.push('\n');
                let mut log = log_writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
            let _ = stderr_sender.send(text);
        });
        let (ready_sender, ready_receiver) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut head = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                head.push_str(&line);
                head.push('\n');
                if line.starts_with("ringiot ready: ") {
                    let field = |name: &str| {
                        line.split_whitespace()
                            .find_map(|f| f.strip_prefix(name))
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let addresses = [field("http="), field("mqtt="), field("https="), field("mqtt_tls=")];
                    let _ = ready_sender.send(Some((addresses, head.clone())));
                }
            }
            let _ = ready_sender.send(None);
        });
        match ready_receiver.recv_timeout(READY_DEADLINE) {
            Ok(Some(([http, mqtt, https, mqtt_tls], head))) => Ok(Engine {
                child: Some(child),
                // `off` (the listener turned off) reads as 0.0.0.0:0.
                http: listen_address(&http),
                mqtt: listen_address(&mqtt),
                https: https.parse().ok(),
                mqtt_tls: mqtt_tls.parse().ok(),
                data_dir: data_dir.to_owned(),
                stdout_head: head,
                log,
                _temp: None,
            }),
            Ok(None) => {
                let _ = child.wait();
                Err(stderr_receiver.recv_timeout(EXIT_DEADLINE).unwrap_or_default())
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr_receiver.recv_timeout(EXIT_DEADLINE).unwrap_or_default();
                Err(format!(
                    "{HUNG}: the engine neither became ready nor exited within {READY_DEADLINE:?}\n{stderr}"
                ))
            }
        }
    }

    /// The engine's log lines so far that contain every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.lines()
            .filter(|line| needles.iter().all(|needle| line.contains(needle)))
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the engine logs a line containing every one of `needles`; the lines then.
    pub fn wait_for_log(&self, needles: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let lines = self.log_lines_with(needles);
            if !lines.is_empty() || Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A client of `project` authenticated with `auth`.
    pub fn client(&self, project_id: &str, auth: Auth) -> Client {
        Client::new(self.http, project_id, auth)
    }

    /// A token client of project A.
    pub fn client_a(&self) -> Client {
        self.client(PROJECT_A.project_id, Auth::Token(PROJECT_A.token.into()))
    }

    /// SIGTERM, then wait for the exit (with a deadline).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("engine is running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_with_deadline(&mut child)
    }

    /// The engine's process id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("engine is running").id()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("engine is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping the engine");
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the engine binary with `args` to completion (for subcommands like `print-config`).
pub fn run_engine_command(args: &[&str]) -> std::process::Output {
    Command::new(engine_binary()).args(args).output().expect("running the engine binary")
}

/// The `ringiot-under-test` binary. Cargo builds a package's binaries before its integration
/// tests and puts them one level above the test executables (`target/<profile>/deps/`).
fn engine_binary() -> PathBuf {
    let test_executable = std::env::current_exe().expect("path of the test executable");
    let profile_dir = test_executable.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("ringiot-under-test");
    assert!(binary.exists(), "{} is missing: run the tests through cargo test", binary.display());
    binary
}

fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + EXIT_DEADLINE;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the engine") {
            return status;
        }
        assert!(Instant::now() < deadline, "engine did not exit within {EXIT_DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_text(extra: &str) -> String {
    let mut text = format!("log_flush_interval_us = 200\n{extra}\n");
    for project in [PROJECT_A, PROJECT_B] {
        text.push_str(&format!(
            "[[projects]]\nproject_id = \"{}\"\ntokens = [\"{}\"]\naccess_keys = [{{ ak = \"{}\", sk = \"{}\" }}]\n",
            project.project_id, project.token, project.ak, project.sk
        ));
    }
    text
}

/// An address of the ready line; `off` is 0.0.0.0:0.
fn listen_address(field: &str) -> SocketAddr {
    match field {
        "off" => SocketAddr::from(([0, 0, 0, 0], 0)),
        address => address.parse().unwrap_or_else(|_| panic!("the ready line carries no address: {field:?}")),
    }
}
