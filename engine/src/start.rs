//! Start-up and shutdown of the process.
//!
//! 1. Load the config (defaults → file → flags); lock the data dir and check its shard count.
//! 2. Ensure a project exists (the default project on a bare start).
//! 3. Raise RLIMIT_MEMLOCK / RLIMIT_NOFILE and share the open-files limit out (MQTT gets all
//!    but a reserve for REST, the log and pushes; `shards::listen::DescriptorPlan`); register
//!    SIGINT/SIGTERM on the stop flag.
//! 4. Start the shards. Each recovers its log, answers mesh requests and listens for MQTT
//!    (shard 0 checks that no other process listens on the address — lingering connections of
//!    a previous run do not count — and binds first, resolving port 0; the others join it with
//!    SO_REUSEPORT); shard 0
//!    then replicates the products, binds the HTTP listener, and once every shard listens
//!    prints `ringiot ready: http=ADDR mqtt=ADDR shards=N` on stdout (tests and scripts wait
//!    for that line), and serves.
//! 5. On the stop flag: shard 0 stops accepting; every shard flushes its log; exit 0.
//!    A shard that fails to start flips the stop flag so the others exit too.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use glommio::net::TcpListener;
use shards::device_access::{listener, DeviceAccessConfig};
use shards::listen::{self, DescriptorBudget, DescriptorPlan};
use shards::log::Durability;
use shards::mesh::Mesh;
use shards::registry::{Shard, ShardConfig};
use shards::runtime::{self, RuntimeConfig, StopFlag};

use crate::app::App;
use crate::bootstrap::{self, DefaultProject};
use crate::config::{Cli, Command, Config, DurabilityMode, DEFAULT_CONFIG_TOML};
use crate::http::auth::Credentials;

/// Everything every shard needs to start, shared read-only.
#[derive(Debug)]
struct StartContext {
    config: Config,
    shard_config: ShardConfig,
    default_project: DefaultProject,
    stop: StopFlag,
    /// The MQTT address shard 0 bound (port 0 resolved); the other shards bind the same.
    mqtt_address: OnceLock<SocketAddr>,
    /// Shards whose MQTT listener is bound; shard 0 says "ready" once all are.
    mqtt_bound: AtomicUsize,
    /// The HTTP address shard 0 bound; the other shards bind the same.
    http_address: OnceLock<SocketAddr>,
    /// Shards whose HTTP listener is bound.
    http_bound: AtomicUsize,
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
    let context = Arc::new(StartContext {
        config,
        shard_config,
        default_project,
        stop: stop.clone(),
        mqtt_address: OnceLock::new(),
        mqtt_bound: AtomicUsize::new(0),
        http_address: OnceLock::new(),
        http_bound: AtomicUsize::new(0),
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
        listen: config.mqtt_listen,
        connect_timeout: Duration::from_millis(config.mqtt_connect_timeout_ms),
        first_byte_timeout: Duration::from_millis(config.mqtt_first_byte_timeout_ms),
        connecting_per_shard_max: context.connecting_per_shard_max,
        connection_budget: context.mqtt_budget.clone(),
        packet_bytes_max: config.mqtt_packet_bytes_max,
        connections_per_shard_max: config.mqtt_connections_per_shard_max,
        device_calls_in_flight_max: config.device_calls_in_flight_max,
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
    let mqtt_listener = bind_mqtt(&shard, context).await?;
    let shard_for_mqtt = shard.clone();
    let stop = context.stop.clone();
    let mqtt = glommio::spawn_local(async move {
        listener::serve(shard_for_mqtt, mqtt_listener, stop.wait()).await;
    });
    serve_front_desk(&shard, context).await?;
    context.stop.wait().await;
    mqtt.await;
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
    let listener = bind_http(shard, context).await?;
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
        let address = *context.http_address.get().expect("shard 0 bound the HTTP listener");
        if let DefaultProject::Created(_) = context.default_project {
            print!("{}", bootstrap::welcome_text(config, address.port()));
        } else if let DefaultProject::Loaded(path) = &context.default_project {
            println!(
                "Using the default project {} (credentials in {})",
                config.projects[0].project_id,
                path.display()
            );
        }
        let all = shard.shard_count();
        while (context.mqtt_bound.load(Ordering::SeqCst) < all
            || context.http_bound.load(Ordering::SeqCst) < all)
            && !context.stop.is_stopped()
        {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        let mqtt = context.mqtt_address.get().expect("shard 0 bound the MQTT listener");
        println!("ringiot ready: http={address} mqtt={mqtt} shards={}", shard.shard_count());
        tracing::info!(%address, shards = shard.shard_count(), "serving the REST API");
    }
    crate::http::server::serve(
        app,
        listener,
        context.http_budget.clone(),
        context.mqtt_budget.clone(),
        context.stop.wait(),
    )
    .await;
    tracing::info!(shard = shard.id(), "HTTP listener closed");
    Ok(())
}

/// Binds the HTTP listener of this shard, the way [`bind_mqtt`] binds MQTT: shard 0 first
/// (resolving port 0, and refusing a port another process holds), then the others.
async fn bind_http(shard: &Shard, context: &StartContext) -> anyhow::Result<TcpListener> {
    let address = if shard.id() == 0 {
        context.config.http_listen
    } else {
        loop {
            if let Some(address) = context.http_address.get() {
                break *address;
            }
            anyhow::ensure!(!context.stop.is_stopped(), "stopped before shard 0 bound HTTP");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    };
    if shard.id() == 0 {
        // Every shard binds with SO_REUSEPORT, which would let a second engine silently take
        // half of the REST calls: refuse an address another process listens on.
        listen::ensure_no_other_listener(address).context("the HTTP listener")?;
    }
    let listener = listen::bind_shared(address).context("the HTTP listener")?;
    if shard.id() == 0 {
        let bound = listener.local_addr().map_err(|e| anyhow::anyhow!("reading the HTTP address: {e}"))?;
        let _ = context.http_address.set(bound);
    }
    context.http_bound.fetch_add(1, Ordering::SeqCst);
    Ok(listener)
}

/// Binds the MQTT listener of this shard. Shard 0 binds first (resolving port 0); the others
/// bind the same address, so the kernel spreads connections over every shard (SO_REUSEPORT).
async fn bind_mqtt(shard: &Shard, context: &StartContext) -> anyhow::Result<TcpListener> {
    let address = if shard.id() == 0 {
        context.config.mqtt_listen
    } else {
        loop {
            if let Some(address) = context.mqtt_address.get() {
                break *address;
            }
            anyhow::ensure!(!context.stop.is_stopped(), "stopped before shard 0 bound MQTT");
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
    };
    if shard.id() == 0 {
        // As for HTTP: SO_REUSEPORT would let this engine silently share the port with another
        // process of the same user (another ringiot or a broker).
        listen::ensure_no_other_listener(address).context("the MQTT listener")?;
    }
    let listener = listen::bind_shared(address).context("the MQTT listener")?;
    if shard.id() == 0 {
        let bound = listener.local_addr().map_err(|e| anyhow::anyhow!("reading the MQTT address: {e}"))?;
        let _ = context.mqtt_address.set(bound);
    }
    context.mqtt_bound.fetch_add(1, Ordering::SeqCst);
    Ok(listener)
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
