//! Start-up and shutdown of the process.
//!
//! 1. Load the config (defaults → file → flags); lock the data dir and check its shard count.
//! 2. Ensure a project exists (the default project on a bare start).
//! 3. Raise RLIMIT_MEMLOCK / RLIMIT_NOFILE and share the open-files limit out (MQTT gets all
//!    but a reserve for REST, the log and pushes; `shards::listen::DescriptorPlan`); load or
//!    generate the TLS certificate (`tls_setup`) and reload it on SIGHUP; register
//!    SIGINT/SIGTERM on the stop flag.
//! 4. Start the shards. Each recovers its log, answers mesh requests and binds the listeners
//!    that are on — MQTT, MQTT over TLS, HTTP, HTTPS (`listeners`: shard 0 checks that no
//!    other process listens on the address — lingering connections of a previous run do not
//!    count — and binds first, resolving port 0; the others join it with SO_REUSEPORT); shard
//!    0 replicates the products first, and once every shard listens prints
//!    `ringiot ready: http=ADDR mqtt=ADDR https=ADDR mqtt_tls=ADDR shards=N` (`off` for a
//!    listener turned off) on stdout (tests and scripts wait for that line), and serves.
//! 5. On the stop flag: shard 0 stops accepting; every shard flushes its log; exit 0.
//!    A shard that fails to start flips the stop flag so the others exit too.

use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shards::device_access::{listener, DeviceAccessConfig};
use shards::listen::{DescriptorBudget, DescriptorPlan};
use shards::log::Durability;
use shards::mesh::Mesh;
use shards::registry::{Shard, ShardConfig};
use shards::runtime::{self, RuntimeConfig, StopFlag};
use shards::tls::ServerTls;

use crate::app::App;
use crate::bootstrap::{self, DefaultProject};
use crate::config::{Cli, Command, Config, DurabilityMode, DEFAULT_CONFIG_TOML};
use crate::http::auth::Credentials;
use crate::listeners::Listeners;
use crate::tls_setup;

/// Everything every shard needs to start, shared read-only.
#[derive(Debug)]
struct StartContext {
    config: Config,
    shard_config: ShardConfig,
    default_project: DefaultProject,
    stop: StopFlag,
    /// MQTT, MQTT over TLS, HTTP and HTTPS; shard 0 says "ready" once every shard has bound
    /// every one that is on.
    listeners: Listeners,
    /// The TLS configurations; `None` when both TLS listeners are off.
    tls: Option<Arc<ServerTls>>,
    /// The generated CA's certificate (none when the operator configured the certificate).
    ca_file: Option<std::path::PathBuf>,
    /// Set by shard 0 once every shard has the products and routing rules: listeners open.
    replicated: std::sync::atomic::AtomicBool,
    /// MQTT connections of every shard together, within the open-files plan.
    mqtt_budget: Arc<DescriptorBudget>,
    /// REST connections of every shard together, within the open-files plan.
    http_budget: Arc<DescriptorBudget>,
    /// `mqtt_connecting_per_shard_max`, at most half of a shard's share of the MQTT budget, so
    /// that waiting connections are evicted before they can spend the budget.
    connecting_per_shard_max: usize,
}

/// The whole process: returns when the engine has shut down.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::PrintConfig) = cli.command {
        print!("{DEFAULT_CONFIG_TOML}");
        return Ok(());
    }
    let mut config = Config::load(&cli)?;
    let shard_count = config.effective_shards();
    let _lock = shards::data_dir::open(&config.data_dir, shard_count)?;
    let default_project = bootstrap::ensure_projects(&mut config).context("preparing the default project")?;
    let runtime_config = RuntimeConfig {
        shard_count,
        io_memory_bytes: config.io_memory_bytes,
        io_ring_depth: config.io_ring_depth,
        spin_before_park_us: config.spin_before_park_us,
        pin_cpus: config.pin_cpus,
        mesh_capacity: config.mesh_capacity,
    };
    if let Some(warning) = runtime::raise_memlock_limit(&runtime_config) {
        tracing::warn!("{warning}");
    }
    let open_files = runtime::raise_open_files_limit();
    let descriptors = DescriptorPlan::derive(open_files, shard_count, config.open_files_reserve);
    let connecting_per_shard_max =
        config.mqtt_connecting_per_shard_max.min((descriptors.mqtt_connections_max / shard_count / 2).max(1));
    log_descriptor_plan(&descriptors, &config, connecting_per_shard_max);
    let tls = tls_setup::server_tls(&config)?;
    if let Some((tls, source)) = &tls {
        tls_setup::reload_on_sighup(tls.clone(), source.clone())?;
    }
    let ca_file = tls.as_ref().and_then(|(_, source)| source.generated_ca.clone());
    let stop = StopFlag::new();
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The first signal asks for a graceful stop; a second one, while stopping, exits at once.
        signal_hook::flag::register_conditional_shutdown(signal, 1, stop.as_atomic())
            .context("registering signal handlers")?;
        signal_hook::flag::register(signal, stop.as_atomic()).context("registering signal handlers")?;
    }
    let shard_config = ShardConfig {
        data_dir: config.data_dir.clone(),
        durability: match config.durability {
            DurabilityMode::Fsync => Durability::Fsync,
            DurabilityMode::None => Durability::None,
        },
        flush_interval_us: config.log_flush_interval_us,
        compaction_bytes: config.log_compaction_bytes,
    };
    let listeners_config = config.clone();
    let context = Arc::new(StartContext {
        ca_file,
        config,
        shard_config,
        default_project,
        stop: stop.clone(),
        listeners: Listeners::from_config(&listeners_config),
        tls: tls.as_ref().map(|(tls, _)| tls.clone()),
        replicated: std::sync::atomic::AtomicBool::new(false),
        mqtt_budget: DescriptorBudget::new(descriptors.mqtt_connections_max),
        http_budget: DescriptorBudget::new(descriptors.http_connections_max),
        connecting_per_shard_max,
    });
    runtime::run_shards(&runtime_config, &stop, move |mesh| {
        let context = context.clone();
        async move {
            // A panicking shard stops the others too, instead of leaving them waiting on it.
            let _stop_on_panic = StopOnPanic(&context.stop);
            let result = shard_main(mesh, &context).await;
            if let Err(error) = &result {
                tracing::error!("{error:#}");
                context.stop.stop();
            }
            result
        }
    })?;
    tracing::info!("ringiot stopped");
    Ok(())
}

async fn shard_main(mesh: Rc<Mesh>, context: &StartContext) -> anyhow::Result<()> {
    let shard = Shard::open(mesh, &context.shard_config).await?;
    let config = &context.config;
    shard.set_device_access_config(DeviceAccessConfig {
        connect_timeout: Duration::from_millis(config.mqtt_connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(config.mqtt_first_byte_timeout_ms),
        connecting_per_shard_max: context.connecting_per_shard_max,
        connection_budget: context.mqtt_budget.clone(),
        packet_bytes_max: config.mqtt_packet_bytes_max,
        connections_per_shard_max: config.mqtt_connections_per_shard_max,
        device_calls_in_flight_max: config.device_calls_in_flight_max,
        device_call_timeout: Duration::from_millis(config.command_timeout_ms),
    });
    shard.start_serving();
    // Products and routing rules reach every shard before any device or REST call does.
    if shard.id() == 0 {
        shard.replicate_all_products().await.context("replicating products to the shards")?;
        context.replicated.store(true, Ordering::SeqCst);
    } else {
        while !context.replicated.load(Ordering::SeqCst) {
            anyhow::ensure!(!context.stop.is_stopped(), "stopped before shard 0 replicated the products");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    }
    let mut mqtt = Vec::new();
    for (listener, tls) in [
        (&context.listeners.mqtt, None),
        // `tls` is set up whenever the TLS listener is on.
        (&context.listeners.mqtt_tls, context.tls.clone()),
    ] {
        let Some(socket) = listener.bind(&shard, &context.stop).await? else { continue };
        let (shard, stop) = (shard.clone(), context.stop.clone());
        mqtt.push(glommio::spawn_local(async move {
            listener::serve(shard, socket, tls, stop.wait()).await;
        }));
    }
    serve_front_desk(&shard, context).await?;
    context.stop.wait().await;
    for listener in mqtt {
        listener.await;
    }
    shard.close().await;
    tracing::info!(shard = shard.id(), "shard stopped; log flushed");
    Ok(())
}

/// Every shard serves the REST API on the same port (SO_REUSEPORT, like MQTT): the front desk
/// is the busiest code of a command round trip, and one shard alone saturates its core long
/// before the others do. Calls for what shard 0 owns (product and routing-rule writes, batch
/// tasks) are forwarded to it over the mesh (`http::router`).
async fn serve_front_desk(shard: &Rc<Shard>, context: &StartContext) -> anyhow::Result<()> {
    let record_id_max = shard.record_id_max().await.context("reading the shards' record ids")?;
    let config = &context.config;
    let http = context.listeners.http.bind(shard, &context.stop).await?;
    let https = context.listeners.https.bind(shard, &context.stop).await?;
    let credentials = Credentials::from_projects(&config.projects);
    let app = Rc::new(App::new(shard.clone(), credentials, config.clone(), record_id_max));
    if shard.id() == 0 {
        // Weak: the shard must not keep its own front desk alive through this closure.
        let weak = Rc::downgrade(&app);
        shard.set_front_desk(Rc::new(move |call| {
            let app = weak.upgrade();
            Box::pin(async move {
                match app {
                    Some(app) => crate::http::router::forwarded(&app, call).await,
                    None => shards::messages::ForwardedAnswer { status: 503, body: Vec::new() },
                }
            })
        }));
        let listeners = &context.listeners;
        let rest = bootstrap::RestAddresses {
            http: listeners.http.address(),
            https: listeners.https.address(),
            ca_file: context.ca_file.as_deref(),
        };
        if let DefaultProject::Created(_) = context.default_project {
            print!("{}", bootstrap::welcome_text(config, &rest));
        } else if let DefaultProject::Loaded(path) = &context.default_project {
            println!(
                "Using the default project {} (credentials in {})",
                config.projects[0].project_id,
                path.display()
            );
        }
        print!("{}", bootstrap::tls_text(listeners.mqtt_tls.address(), &rest));
        let all = shard.shard_count();
        while !listeners.all_ready(all) && !context.stop.is_stopped() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        println!("{}", listeners.ready_line(all));
        tracing::info!(
            http = listeners.http.shown(),
            https = listeners.https.shown(),
            shards = all,
            "serving the REST API"
        );
    }
    let budgets = (context.http_budget.clone(), context.mqtt_budget.clone());
    let plain = http.map(|listener| {
        crate::http::server::serve(app.clone(), listener, None, budgets.clone(), context.stop.wait())
    });
    let tls = https.map(|listener| {
        crate::http::server::serve(
            app.clone(),
            listener,
            context.tls.clone(),
            budgets.clone(),
            context.stop.wait(),
        )
    });
    futures_lite::future::zip(
        async {
            if let Some(serve) = plain {
                serve.await;
            }
        },
        async {
            if let Some(serve) = tls {
                serve.await;
            }
        },
    )
    .await;
    tracing::info!(shard = shard.id(), "HTTP listeners closed");
    Ok(())
}

/// Says at start how the open-files limit is shared out, so an operator sees the real bounds.
fn log_descriptor_plan(plan: &DescriptorPlan, config: &Config, connecting_per_shard_max: usize) {
    if plan.open_files == 0 {
        tracing::warn!("the open-files limit could not be read: connections are bounded by the config only");
        return;
    }
    tracing::info!(
        open_files = plan.open_files,
        mqtt_connections_max = plan.mqtt_connections_max,
        mqtt_connecting_per_shard_max = connecting_per_shard_max,
        http_connections_max =
            plan.http_connections_max.min(config.http_connections_max * config.effective_shards()),
        internal = plan.internal,
        "open-files limit shared out: MQTT connections (all shards), REST connections (all shards), \
         kept for the log, pushes and hand-offs"
    );
    if plan.mqtt_connections_max < 1000 {
        tracing::warn!(
            open_files = plan.open_files,
            "the open-files limit leaves room for fewer than 1,000 devices: raise it (ulimit -n, LimitNOFILE=)"
        );
    }
}

/// Sets the stop flag when dropped during a panic.
struct StopOnPanic<'a>(&'a StopFlag);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// Logs go to stderr; `RUST_LOG` picks the level (default `info`). Colours only on a terminal:
/// a journal or a log file gets plain text.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
