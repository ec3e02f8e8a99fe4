//! The engine's four listeners — MQTT, MQTT over TLS, HTTP and HTTPS — and how every shard
//! binds each of them.
//!
//! Invariants:
//! - Shard 0 binds a listener first: it refuses an address another live process listens on
//!   (`shards::listen::ensure_no_other_listener`; lingering connections of an earlier run do
//!   not count) and resolves port 0. The other shards then bind the same address with
//!   SO_REUSEPORT, so the kernel spreads connections over every shard.
//! - A listener configured `off` is bound by no shard and counts as ready.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use glommio::net::TcpListener;
use shards::listen;
use shards::registry::Shard;
use shards::runtime::StopFlag;

/// One listener, bound on every shard.
#[derive(Debug)]
pub struct SharedListener {
    /// Says which listener an error or a log line is about ("the MQTT listener").
    name: &'static str,
    configured: Option<SocketAddr>,
    /// The address shard 0 bound (port 0 resolved).
    address: OnceLock<SocketAddr>,
    /// Shards that have bound it.
    bound: AtomicUsize,
}

impl SharedListener {
    pub fn new(name: &'static str, configured: Option<SocketAddr>) -> SharedListener {
        SharedListener { name, configured, address: OnceLock::new(), bound: AtomicUsize::new(0) }
    }

    /// Binds this shard's socket; `None` when the listener is off.
    pub async fn bind(&self, shard: &Shard, stop: &StopFlag) -> anyhow::Result<Option<TcpListener>> {
        let Some(configured) = self.configured else { return Ok(None) };
        let address = if shard.id() == 0 {
            // SO_REUSEPORT would let a second process of the same user silently take a share
            // of the connections: refuse an address another process listens on.
            listen::ensure_no_other_listener(configured).with_context(|| self.name)?;
            configured
        } else {
            loop {
                if let Some(address) = self.address.get() {
                    break *address;
                }
                anyhow::ensure!(!stop.is_stopped(), "stopped before shard 0 bound {}", self.name);
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        };
        let listener = listen::bind_shared(address).with_context(|| self.name)?;
        if shard.id() == 0 {
            let bound = listener
                .local_addr()
                .map_err(|e| anyhow::anyhow!("reading the address of {}: {e}", self.name))?;
            let _ = self.address.set(bound);
        }
        self.bound.fetch_add(1, Ordering::SeqCst);
        Ok(Some(listener))
    }

    /// Bound by all `shards` (or off).
    pub fn is_ready(&self, shards: usize) -> bool {
        self.configured.is_none() || self.bound.load(Ordering::SeqCst) >= shards
    }

    pub fn address(&self) -> Option<SocketAddr> {
        self.address.get().copied()
    }

    /// The bound address, or `off`, for the ready line.
    pub fn shown(&self) -> String {
        self.address().map_or_else(|| "off".to_owned(), |address| address.to_string())
    }
}

/// All four.
#[derive(Debug)]
pub struct Listeners {
    pub mqtt: SharedListener,
    pub mqtt_tls: SharedListener,
    pub http: SharedListener,
    pub https: SharedListener,
}

impl Listeners {
    pub fn from_config(config: &crate::config::Config) -> Listeners {
        Listeners {
            mqtt: SharedListener::new("the MQTT listener", config.mqtt_listen.0),
            mqtt_tls: SharedListener::new("the MQTT TLS listener", config.mqtt_tls_listen.0),
            http: SharedListener::new("the HTTP listener", config.http_listen.0),
            https: SharedListener::new("the HTTPS listener", config.https_listen.0),
        }
    }

    pub fn all_ready(&self, shards: usize) -> bool {
        [&self.mqtt, &self.mqtt_tls, &self.http, &self.https].iter().all(|listener| listener.is_ready(shards))
    }

    /// `ringiot ready: …` — tests and scripts wait for this line and read the addresses off it.
    pub fn ready_line(&self, shards: usize) -> String {
        format!(
            "ringiot ready: http={} mqtt={} https={} mqtt_tls={} shards={shards}",
            self.http.shown(),
            self.mqtt.shown(),
            self.https.shown(),
            self.mqtt_tls.shown()
        )
    }
}
