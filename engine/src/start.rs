//! Start-up and shutdown of the process.
//!
//! 1. Load the config (defaults → file → flags); lock the data dir and check its shard count.
//! 2. Ensure a project exists (the default project on a bare start).
//! 3. Raise RLIMIT_MEMLOCK / RLIMIT_NOFILE; register SIGINT/SIGTERM on the stop flag.
//! 4. Start the shards. Each recovers its log and answers mesh requests; shard 0 then
//!    replicates the products, binds the HTTP listener, prints `ringiot ready: http=ADDR …`
//!    on stdout (tests and scripts wait for that line), and serves.
//! 5. On the stop flag: shard 0 stops accepting; every shard flushes its log; exit 0.
//!    A shard that fails to start flips the stop flag so the others exit too.

use std::rc::Rc;
use std::sync::Arc;

use anyhow::Context;
use glommio::net::TcpListener;
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
        spin_before_park_us: config.spin_before_park_us,
        pin_cpus: config.pin_cpus,
        mesh_capacity: config.mesh_capacity,
    };
    if let Some(warning) = runtime::raise_memlock_limit(&runtime_config) {
        tracing::warn!("{warning}");
    }
    let open_files = runtime::raise_open_files_limit();
    tracing::info!(open_files, "open-files limit (bounds the number of connections)");
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
    let context = Arc::new(StartContext { config, shard_config, default_project, stop: stop.clone() });
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
    shard.start_serving();
    if shard.id() == 0 {
        serve_front_desk(&shard, context).await?;
    }
    context.stop.wait().await;
    shard.close().await;
    tracing::info!(shard = shard.id(), "shard stopped; log flushed");
    Ok(())
}

async fn serve_front_desk(shard: &Rc<Shard>, context: &StartContext) -> anyhow::Result<()> {
    shard.replicate_all_products().await.context("replicating products to the shards")?;
    let record_id_max = shard.record_id_max().await.context("reading the shards' record ids")?;
    let config = &context.config;
    let listener = bind_exclusive(config.http_listen)
        .with_context(|| format!("binding the HTTP listener on {}", config.http_listen))?;
    let address = listener.local_addr().map_err(|e| anyhow::anyhow!("reading the HTTP address: {e}"))?;
    if let DefaultProject::Created(_) = context.default_project {
        print!("{}", bootstrap::welcome_text(config, address.port()));
    } else if let DefaultProject::Loaded(path) = &context.default_project {
        println!(
            "Using the default project {} (credentials in {})",
            config.projects[0].project_id,
            path.display()
        );
    }
    println!("ringiot ready: http={address} shards={}", shard.shard_count());
    tracing::info!(%address, shards = shard.shard_count(), "serving the REST API");
    let credentials = Credentials::from_projects(&config.projects);
    let app = Rc::new(App::new(shard.clone(), credentials, config.clone(), record_id_max));
    crate::http::server::serve(app, listener, context.stop.wait()).await;
    tracing::info!("HTTP listener closed");
    Ok(())
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

/// Binds without SO_REUSEPORT (glommio's own `bind` always sets it): a second engine on the same
/// HTTP port must fail to start, not silently receive half of the REST calls.
fn bind_exclusive(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let listener = std::net::TcpListener::bind(address)?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves here.
    Ok(unsafe { TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

/// Logs go to stderr; `RUST_LOG` picks the level (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
