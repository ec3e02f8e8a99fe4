//! `ringiot-bench`: the command line. See the crate doc (`bench/src/lib.rs`) for what each
//! scenario measures and bench/README.md for the method and the latest results.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use bench::limits::{check_fits, raise_open_files_limit};
use bench::scenarios::{batch, command_rtt, connect, gateway, messages};
use bench::stats::ResultLine;
use bench::target::{
    parse_http_url, parse_https_url, parse_tls_authority, EngineLaunch, EngineProcess, Target,
};
use bench::transport::{server_name, Endpoint, ServerIdentity, TlsClient, TlsVersion};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "ringiot-bench", about = "End-to-end benchmarks of the ringiot engine")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,

    /// The engine binary to start (default: `ringiot` beside this binary, else target/release/ringiot).
    #[arg(long, global = true)]
    engine: Option<PathBuf>,
    /// Shards of the engine the bench starts.
    #[arg(long, global = true, default_value_t = 2)]
    engine_shards: usize,
    /// Durability of the engine the bench starts (fsync | none).
    #[arg(long, global = true, default_value = "fsync")]
    engine_durability: String,
    /// Target a running engine's REST API (http://HOST:PORT) instead of starting one.
    #[arg(long, global = true, requires = "mqtt")]
    http: Option<String>,
    /// The running engine's MQTT address (HOST:PORT), with --http.
    #[arg(long, global = true, requires = "http")]
    mqtt: Option<String>,
    /// Devices and application clients connect over TLS (MQTT over TLS, REST over HTTPS),
    /// verifying the server's certificate; every connection is a full handshake (no resumption).
    #[arg(long, global = true)]
    tls: bool,
    /// The CA certificate (PEM) servers are verified against, with --tls (default: the CA the
    /// engine the bench starts generates, {data dir}/tls/ca.pem).
    #[arg(long, global = true, requires = "tls")]
    tls_ca: Option<PathBuf>,
    /// Offer only this TLS version (default: 1.3 and 1.2, so 1.3 is negotiated).
    #[arg(long, global = true, requires = "tls")]
    tls_version: Option<TlsVersion>,
    /// Certificate chain (PEM, leaf first) the engine the bench starts and the Mosquitto baseline
    /// serve with --tls (default: the one the engine generates, {data dir}/tls/server.pem); it
    /// must name 127.0.0.1 when the bench starts the engine, and --tls-ca must be its CA.
    #[arg(long, global = true, requires_all = ["tls", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, global = true, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Target a running engine's REST API over TLS (https://HOST:PORT) instead of starting one,
    /// with --tls.
    #[arg(long, global = true, requires_all = ["tls", "mqtt_tls", "tls_ca"], conflicts_with = "http")]
    https: Option<String>,
    /// The running engine's MQTT-over-TLS address (HOST:PORT), with --https.
    #[arg(long, global = true, requires = "https")]
    mqtt_tls: Option<String>,
    /// The running engine's project, with --http.
    #[arg(long, global = true, default_value = bench::target::BENCH_PROJECT_ID)]
    project: String,
    /// The running engine's X-Auth-Token, with --http.
    #[arg(long, global = true, default_value = bench::target::BENCH_TOKEN)]
    token: String,
    /// The running engine's pid, with --http, for CPU and RSS figures.
    #[arg(long, global = true)]
    engine_pid: Option<u32>,
    /// Tokio worker threads for the fleet and the clients (1 = a single-threaded runtime).
    #[arg(long, global = true, default_value_t = 1)]
    bench_threads: usize,
    /// Print one JSON result line per (scenario, target) on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Keep-alive the devices announce, seconds (they PINGREQ every half of it).
    #[arg(long, global = true, default_value_t = 300)]
    keep_alive_s: u16,
    /// Logins in flight at once.
    #[arg(long, global = true, default_value_t = 512)]
    logins_in_flight: usize,
    /// A device waits this long before answering a request, microseconds.
    #[arg(long, global = true, default_value_t = 0)]
    think_us: u64,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Round trips of synchronous device commands (REST → device → REST).
    CommandRtt {
        #[arg(long, default_value_t = 10_000)]
        devices: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        /// Open loop at this total rate (calls/s); closed loop without it.
        #[arg(long)]
        rate: Option<f64>,
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
        /// Run the same fleet and pattern through this broker too.
        #[arg(long)]
        baseline: Option<Baseline>,
    },
    /// Log a fleet in as fast as possible; logins/s, time to all online, RSS per connection.
    Connect {
        #[arg(long, default_value_t = 10_000)]
        devices: u64,
        /// Log the same fleet in to this broker too.
        #[arg(long)]
        baseline: Option<Baseline>,
    },
    /// Messages to an offline fleet: durable accepts/s over REST, then delivered/s at login.
    Messages {
        #[arg(long, default_value_t = 1_000)]
        devices: u64,
        /// Messages created per device.
        #[arg(long, default_value_t = 20)]
        per_device: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
    },
    /// One createCommands batch task over the whole fleet: time until its final status.
    Batch {
        #[arg(long, default_value_t = 10_000)]
        devices: u64,
        /// ShowBatchTask every this many milliseconds.
        #[arg(long, default_value_t = 20)]
        poll_ms: u64,
    },
    /// Command round trips to sub-devices through their gateways, then to the gateways
    /// themselves as direct devices, in the same run.
    Gateway {
        /// Gateways: direct devices that log in and answer for their sub-devices.
        #[arg(long, default_value_t = 100)]
        gateways: u64,
        /// Sub-devices registered under each gateway (they never connect).
        #[arg(long, default_value_t = 100)]
        sub_devices: u64,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        /// Length of each of the two recorded windows (sub-devices, then direct).
        #[arg(long, default_value_t = 10.0)]
        duration_s: f64,
        #[arg(long, default_value_t = 1.0)]
        warmup_s: f64,
    },
    /// Fold a JSON-lines results file into markdown tables (medians over repeated runs).
    Report { file: PathBuf },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Baseline {
    Mosquitto,
}

fn default_engine_binary() -> PathBuf {
    let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join("ringiot")));
    beside.filter(|path| path.is_file()).unwrap_or_else(|| PathBuf::from("target/release/ringiot"))
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| anyhow::anyhow!("{flag} must be a non-negative number"))
}

/// What the bench runs against, and the certificate a TLS baseline serves.
struct SystemUnderTest {
    target: Target,
    /// The engine the bench started, if it did.
    engine: Option<EngineProcess>,
    /// `--tls-cert`/`--tls-key`, else the engine's generated certificate (with `--tls`).
    baseline_identity: Option<ServerIdentity>,
}

/// The TLS client of the run: trusts `--tls-ca`, else the CA of the engine the bench started.
fn tls_client(cli: &Cli, engine_ca_pem: Option<&[u8]>) -> anyhow::Result<Arc<TlsClient>> {
    let ca_pem = match (&cli.tls_ca, engine_ca_pem) {
        (Some(path), _) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        (None, Some(engine_ca_pem)) => engine_ca_pem.to_vec(),
        (None, None) => bail!("--tls needs --tls-ca FILE"),
    };
    Ok(Arc::new(TlsClient::new(&ca_pem, cli.tls_version)?))
}

/// A running engine named by --http/--mqtt or --https/--mqtt-tls, else one the bench starts.
fn system_under_test(cli: &Cli) -> anyhow::Result<SystemUnderTest> {
    if cli.tls && cli.http.is_some() {
        bail!("with --tls, target a running engine with --https and --mqtt-tls (and --tls-ca)");
    }
    let mut baseline_identity = match (&cli.tls_cert, &cli.tls_key) {
        (Some(cert), Some(key)) => Some(ServerIdentity::read(cert, key)?),
        _ => None,
    };
    let running = |http: Endpoint, mqtt: Endpoint| Target {
        http,
        mqtt,
        project_id: cli.project.clone(),
        token: cli.token.clone(),
        pid: cli.engine_pid,
        shards: None,
    };
    if let (Some(http), Some(mqtt)) = (&cli.http, &cli.mqtt) {
        let http = Endpoint::tcp(parse_http_url(http)?);
        let mqtt = Endpoint::tcp(parse_http_url(mqtt).context("--mqtt takes HOST:PORT")?);
        return Ok(SystemUnderTest { target: running(http, mqtt), engine: None, baseline_identity });
    }
    if let (Some(https), Some(mqtt_tls)) = (&cli.https, &cli.mqtt_tls) {
        let client = tls_client(cli, None)?;
        let (https, https_host) = parse_https_url(https)?;
        let (mqtt_tls, mqtt_host) = parse_tls_authority(mqtt_tls).context("--mqtt-tls takes HOST:PORT")?;
        let http = Endpoint::tls(https, server_name(&https_host)?, client.clone());
        let mqtt = Endpoint::tls(mqtt_tls, server_name(&mqtt_host)?, client);
        return Ok(SystemUnderTest { target: running(http, mqtt), engine: None, baseline_identity });
    }
    let launch = EngineLaunch {
        binary: cli.engine.clone().unwrap_or_else(default_engine_binary),
        shards: cli.engine_shards,
        durability: cli.engine_durability.clone(),
        tls: cli.tls,
        tls_identity: cli.tls_cert.clone().zip(cli.tls_key.clone()),
    };
    let process = EngineProcess::start(&launch)?;
    let mut target = process.target.clone();
    if let Some(tls) = &process.tls {
        // The engine's generated certificate names 127.0.0.1 among others.
        let client = tls_client(cli, tls.ca_pem.as_deref())?;
        target.http = Endpoint::tls(tls.https, server_name("127.0.0.1")?, client.clone());
        target.mqtt = Endpoint::tls(tls.mqtt_tls, server_name("127.0.0.1")?, client);
        baseline_identity.get_or_insert_with(|| tls.identity.clone());
    }
    eprintln!(
        "started {} (pid {}, {} shards): http={} mqtt={}, log {}",
        launch.binary.display(),
        process.target.pid.unwrap_or(0),
        launch.shards,
        target.http,
        target.mqtt,
        process.log_path().display()
    );
    Ok(SystemUnderTest { target, engine: Some(process), baseline_identity })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (devices, clients) = match &cli.scenario {
        Scenario::Report { file } => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            print!("{}", bench::report::markdown(&bench::report::parse_lines(&text)?));
            return Ok(());
        }
        Scenario::CommandRtt { devices, clients, .. } => (*devices, *clients as u64),
        Scenario::Connect { devices, .. } => (*devices, 0),
        Scenario::Messages { devices, clients, .. } => (*devices, *clients as u64),
        Scenario::Batch { devices, .. } => (*devices, 1),
        // Only the gateways connect.
        Scenario::Gateway { gateways, clients, .. } => (*gateways, *clients as u64),
    };
    if devices == 0 {
        bail!("--devices (--gateways) must be at least 1");
    }
    let open_files_max = raise_open_files_limit().context("reading RLIMIT_NOFILE")?;
    // The registration connections and the /metrics poller are open alongside the fleet.
    check_fits(devices, clients + bench::registration::REGISTRATION_CONNECTIONS as u64, open_files_max)
        .map_err(anyhow::Error::msg)?;

    let SystemUnderTest { mut target, mut engine, baseline_identity } = system_under_test(&cli)?;

    let runtime = if cli.bench_threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(cli.bench_threads).enable_all().build()?
    };
    if target.shards.is_none() {
        target.shards = runtime.block_on(bench::scenarios::engine_shards(&target));
    }
    let mut lines: Vec<ResultLine> = match cli.scenario {
        Scenario::CommandRtt { devices, clients, duration_s, rate, warmup_s, baseline } => {
            if rate.is_some_and(|rate| !rate.is_finite() || rate <= 0.0) {
                bail!("--rate must be positive");
            }
            if clients == 0 {
                bail!("--clients must be at least 1");
            }
            let options = command_rtt::CommandRttOptions {
                devices,
                clients,
                duration: seconds(duration_s, "--duration-s")?,
                warmup: seconds(warmup_s, "--warmup-s")?,
                total_rate_per_s: rate,
                think: Duration::from_micros(cli.think_us),
                keep_alive_s: cli.keep_alive_s,
                logins_in_flight_max: cli.logins_in_flight,
                baseline_mosquitto: matches!(baseline, Some(Baseline::Mosquitto)),
                baseline_identity,
            };
            runtime.block_on(command_rtt::run(&options, &target, &mut engine))?
        }
        Scenario::Connect { devices, baseline } => {
            let options = connect::ConnectOptions {
                devices,
                keep_alive_s: cli.keep_alive_s,
                logins_in_flight_max: cli.logins_in_flight,
                baseline_mosquitto: matches!(baseline, Some(Baseline::Mosquitto)),
                baseline_identity,
            };
            runtime.block_on(connect::run(&options, &target, &mut engine))?
        }
        Scenario::Messages { devices, per_device, clients } => {
            if per_device == 0 || clients == 0 {
                bail!("--per-device and --clients must be at least 1");
            }
            let options = messages::MessagesOptions {
                devices,
                per_device,
                clients,
                keep_alive_s: cli.keep_alive_s,
                logins_in_flight_max: cli.logins_in_flight,
            };
            runtime.block_on(messages::run(&options, &target))?
        }
        Scenario::Batch { devices, poll_ms } => {
            let options = batch::BatchOptions {
                devices,
                poll_every: Duration::from_millis(poll_ms.max(1)),
                keep_alive_s: cli.keep_alive_s,
                logins_in_flight_max: cli.logins_in_flight,
            };
            vec![runtime.block_on(batch::run(&options, &target))?]
        }
        Scenario::Gateway { gateways, sub_devices, clients, duration_s, warmup_s } => {
            // More than the engine's gateway_sub_devices_max (50,000) fails at registration.
            if sub_devices == 0 || clients == 0 {
                bail!("--sub-devices and --clients must be at least 1");
            }
            let options = gateway::GatewayOptions {
                gateways,
                sub_devices_per_gateway: sub_devices,
                clients,
                duration: seconds(duration_s, "--duration-s")?,
                warmup: seconds(warmup_s, "--warmup-s")?,
                think: Duration::from_micros(cli.think_us),
                keep_alive_s: cli.keep_alive_s,
                logins_in_flight_max: cli.logins_in_flight,
            };
            runtime.block_on(gateway::run(&options, &target))?
        }
        Scenario::Report { .. } => unreachable!("handled above"),
    };
    drop(runtime);
    for line in lines.iter_mut().filter(|line| line.target == "ringiot") {
        line.engine_shards = target.shards.map(|shards| shards as u64);
        line.set_transport(&target.mqtt);
    }
    if cli.json {
        for line in &lines {
            println!("{}", line.to_json_line());
        }
    }
    if let Some(engine) = engine {
        engine.stop()?;
    }
    Ok(())
}
