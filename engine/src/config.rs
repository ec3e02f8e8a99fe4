//! Configuration: the compiled-in defaults (`default-config.toml`, printed by
//! `ringiot print-config`), an optional TOML file, and command-line flags, in that order of
//! precedence from weakest to strongest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};

/// The default configuration, with a comment per key.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default-config.toml");

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: PathBuf,
    pub shards: usize,
    pub http_listen: ListenAddress,
    pub mqtt_listen: ListenAddress,
    pub https_listen: ListenAddress,
    pub mqtt_tls_listen: ListenAddress,
    /// PEM certificate chain and key of both TLS listeners; both empty: generated in the
    /// data dir (`shards::tls::certs::ensure_generated`).
    pub tls_cert_file: PathBuf,
    pub tls_key_file: PathBuf,
    pub mqtt_connections_per_shard_max: usize,
    pub mqtt_packet_bytes_max: usize,
    pub mqtt_connect_timeout_ms: u64,
    pub mqtt_first_byte_timeout_ms: u64,
    pub mqtt_connecting_per_shard_max: usize,
    pub open_files_reserve: usize,
    pub command_timeout_ms: u64,
    pub device_calls_in_flight_max: usize,
    pub gateway_sub_devices_max: u64,
    pub batch_targets_max: usize,
    pub batch_concurrency_per_shard: usize,
    pub durability: DurabilityMode,
    pub log_flush_interval_us: u64,
    pub log_compaction_bytes: u64,
    pub io_memory_bytes: usize,
    pub io_ring_depth: usize,
    pub spin_before_park_us: u64,
    pub pin_cpus: bool,
    pub mesh_capacity: usize,
    pub http_connections_max: usize,
    pub http_body_bytes_max: usize,
    pub http_header_read_timeout_ms: u64,
    pub http_body_read_timeout_ms: u64,
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
}

/// A listener's address, or `off`: written `"0.0.0.0:8883"` or `"off"` in the file and on the
/// command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct ListenAddress(pub Option<SocketAddr>);

impl std::str::FromStr for ListenAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "off" {
            return Ok(ListenAddress(None));
        }
        text.parse()
            .map(|address| ListenAddress(Some(address)))
            .map_err(|_| format!("'{text}' is neither an address (IP:PORT) nor \"off\""))
    }
}

impl TryFrom<String> for ListenAddress {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<ListenAddress> for String {
    fn from(address: ListenAddress) -> String {
        address.0.map_or_else(|| "off".to_owned(), |address| address.to_string())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    Fsync,
    None,
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub project_id: String,
    #[serde(default)]
    pub tokens: Vec<String>,
    #[serde(default)]
    pub access_keys: Vec<AccessKeyConfig>,
}

#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKeyConfig {
    pub ak: String,
    pub sk: String,
}

impl std::fmt::Debug for ProjectConfig {
    // Tokens are secrets: `{:?}` shows how many there are, not what they are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectConfig")
            .field("project_id", &self.project_id)
            .field("tokens", &format_args!("<{} redacted>", self.tokens.len()))
            .field("access_keys", &self.access_keys)
            .finish()
    }
}

impl std::fmt::Debug for AccessKeyConfig {
    // The secret key never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyConfig").field("ak", &self.ak).field("sk", &"<redacted>").finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str(DEFAULT_CONFIG_TOML).expect("the compiled-in default config parses (tested)")
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "ringiot",
    version,
    about = "IoTDA-compatible device access engine (thread-per-core, io_uring)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// TOML config file; flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the per-shard logs [default: ./data]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Number of shards; 0 = one per online CPU [default: 0]
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// REST listener address, or off [default: 0.0.0.0:8080]
    #[arg(long, value_name = "ADDR")]
    pub http_listen: Option<ListenAddress>,
    /// MQTT listener address, or off [default: 0.0.0.0:1883]
    #[arg(long, value_name = "ADDR")]
    pub mqtt_listen: Option<ListenAddress>,
    /// HTTPS (REST over TLS) listener address, or off [default: 0.0.0.0:8443]
    #[arg(long, value_name = "ADDR")]
    pub https_listen: Option<ListenAddress>,
    /// MQTT over TLS listener address, or off [default: 0.0.0.0:8883]
    #[arg(long, value_name = "ADDR")]
    pub mqtt_tls_listen: Option<ListenAddress>,
    /// PEM certificate chain of the TLS listeners (with --tls-key-file) [default: generated]
    #[arg(long, value_name = "FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the TLS listeners (with --tls-cert-file)
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// Wait for a device's answer to a synchronous call [default: 20000]
    #[arg(long, value_name = "MS")]
    pub command_timeout_ms: Option<u64>,
    /// fsync: acknowledge writes once durable; none: once written [default: fsync]
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityMode>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the full default configuration, with a comment per key, and exit.
    PrintConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {source}")]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("config: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file (if any), then the flags.
    pub fn load(cli: &Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        config.apply_flags(cli);
        config.validate()?;
        // glommio opens directories by path for fsync and refuses relative ones, so the data
        // dir (`./data` by default) is made absolute once, here.
        config.data_dir = std::path::absolute(&config.data_dir)
            .map_err(|e| ConfigError::Invalid(format!("data_dir {}: {e}", config.data_dir.display())))?;
        Ok(config)
    }

    /// Parses a file; keys it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        Config::from_toml(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })
    }

    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        let mut merged: toml::Table = toml::from_str(DEFAULT_CONFIG_TOML)?;
        let overrides: toml::Table = toml::from_str(text)?;
        merged.extend(overrides);
        toml::Value::Table(merged).try_into()
    }

    fn apply_flags(&mut self, cli: &Cli) {
        if let Some(v) = &cli.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = cli.shards {
            self.shards = v;
        }
        if let Some(v) = cli.http_listen {
            self.http_listen = v;
        }
        if let Some(v) = cli.mqtt_listen {
            self.mqtt_listen = v;
        }
        if let Some(v) = cli.https_listen {
            self.https_listen = v;
        }
        if let Some(v) = cli.mqtt_tls_listen {
            self.mqtt_tls_listen = v;
        }
        if let Some(v) = &cli.tls_cert_file {
            self.tls_cert_file = v.clone();
        }
        if let Some(v) = &cli.tls_key_file {
            self.tls_key_file = v.clone();
        }
        if let Some(v) = cli.command_timeout_ms {
            self.command_timeout_ms = v;
        }
        if let Some(v) = cli.durability {
            self.durability = v;
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if self.http_listen.0.is_none() && self.https_listen.0.is_none() {
            return invalid("http_listen and https_listen are both off: the REST API needs one".into());
        }
        if self.mqtt_listen.0.is_none() && self.mqtt_tls_listen.0.is_none() {
            return invalid("mqtt_listen and mqtt_tls_listen are both off: devices need one".into());
        }
        if self.tls_cert_file.as_os_str().is_empty() != self.tls_key_file.as_os_str().is_empty() {
            return invalid("tls_cert_file and tls_key_file go together: give both, or neither".into());
        }
        if self.command_timeout_ms == 0 {
            return invalid("command_timeout_ms must be positive".into());
        }
        if self.batch_targets_max == 0 || self.batch_concurrency_per_shard == 0 {
            return invalid("batch_targets_max and batch_concurrency_per_shard must be positive".into());
        }
        if self.device_calls_in_flight_max == 0 {
            return invalid("device_calls_in_flight_max must be positive".into());
        }
        if !(1..=shards::runtime::IO_RING_DEPTH_MAX).contains(&self.io_ring_depth) {
            return invalid(format!(
                "io_ring_depth must be between 1 and {} (io_uring's limit)",
                shards::runtime::IO_RING_DEPTH_MAX
            ));
        }
        if self.mesh_capacity == 0 || self.http_connections_max == 0 {
            return invalid("mesh_capacity and http_connections_max must be positive".into());
        }
        if self.mqtt_connections_per_shard_max == 0 || self.mqtt_connect_timeout_ms == 0 {
            return invalid(
                "mqtt_connections_per_shard_max and mqtt_connect_timeout_ms must be positive".into(),
            );
        }
        if self.mqtt_first_byte_timeout_ms == 0 || self.mqtt_connecting_per_shard_max == 0 {
            return invalid(
                "mqtt_first_byte_timeout_ms and mqtt_connecting_per_shard_max must be positive".into(),
            );
        }
        if self.mqtt_packet_bytes_max < 1024 {
            return invalid("mqtt_packet_bytes_max must be at least 1024".into());
        }
        if self.http_body_bytes_max < 1024 {
            return invalid("http_body_bytes_max must be at least 1024".into());
        }
        let mut seen = std::collections::HashSet::new();
        let mut credentials = std::collections::HashSet::new();
        for project in &self.projects {
            if project.project_id.is_empty() || !seen.insert(&project.project_id) {
                return invalid(format!("project_id '{}' is empty or repeated", project.project_id));
            }
            let keys = project.tokens.iter().chain(project.access_keys.iter().map(|k| &k.ak));
            if keys.into_iter().any(|credential| !credentials.insert(credential)) {
                return invalid(format!(
                    "project '{}': a token or AK is configured twice; each credential belongs to one project",
                    project.project_id
                ));
            }
            if project.tokens.iter().any(String::is_empty)
                || project.access_keys.iter().any(|k| k.ak.is_empty() || k.sk.is_empty())
            {
                return invalid(format!("project '{}': empty token, AK or SK", project.project_id));
            }
        }
        Ok(())
    }

    /// The shard count this start will use.
    pub fn effective_shards(&self) -> usize {
        if self.shards == 0 {
            shards::runtime::online_cpus()
        } else {
            self.shards
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_default_config_is_the_default() {
        let config = Config::from_toml(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.http_listen.0, Some("0.0.0.0:8080".parse::<SocketAddr>().unwrap()));
        assert_eq!(config.mqtt_listen.0, Some("0.0.0.0:1883".parse::<SocketAddr>().unwrap()));
        assert_eq!(config.https_listen.0, Some("0.0.0.0:8443".parse::<SocketAddr>().unwrap()));
        assert_eq!(config.mqtt_tls_listen.0, Some("0.0.0.0:8883".parse::<SocketAddr>().unwrap()));
        assert_eq!(config.command_timeout_ms, 20_000);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.projects.is_empty());
    }

    #[test]
    fn a_file_overrides_defaults_and_flags_override_the_file() {
        let text = r#"
            shards = 3
            command_timeout_ms = 500
            [[projects]]
            project_id = "p1"
            tokens = ["token-one"]
            access_keys = [{ ak = "AK1", sk = "SK1-secret" }]
        "#;
        let mut config = Config::from_toml(text).unwrap();
        assert_eq!((config.shards, config.command_timeout_ms), (3, 500));
        assert_eq!(config.projects[0].access_keys[0].ak, "AK1");
        let cli = Cli::parse_from(["ringiot", "--shards", "2", "--durability", "none"]);
        config.apply_flags(&cli);
        assert_eq!((config.shards, config.durability), (2, DurabilityMode::None));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn unknown_keys_and_empty_secrets_are_refused() {
        assert!(Config::from_toml("shardz = 2").is_err());
        let empty = Config::from_toml("[[projects]]\nproject_id = \"p\"\ntokens = [\"\"]").unwrap();
        assert!(empty.validate().is_err());
    }

    #[test]
    fn the_io_ring_depth_is_bounded_by_io_uring() {
        assert_eq!(Config::default().io_ring_depth, shards::runtime::DEFAULT_IO_RING_DEPTH);
        for (depth, valid) in [(0, false), (1, true), (32768, true), (32769, false)] {
            let config = Config::from_toml(&format!("io_ring_depth = {depth}")).unwrap();
            assert_eq!(config.validate().is_ok(), valid, "io_ring_depth = {depth}");
        }
    }

    #[test]
    fn the_connection_admission_keys_are_checked() {
        let config = Config::default();
        assert!(config.mqtt_first_byte_timeout_ms < config.mqtt_connect_timeout_ms);
        assert!(config.mqtt_connecting_per_shard_max < config.mqtt_connections_per_shard_max);
        for key in ["mqtt_first_byte_timeout_ms", "mqtt_connecting_per_shard_max"] {
            let config = Config::from_toml(&format!("{key} = 0")).unwrap();
            assert!(config.validate().is_err(), "{key} = 0");
        }
    }

    #[test]
    fn secrets_never_print() {
        let key = AccessKeyConfig { ak: "AK1".into(), sk: "very-secret".into() };
        let project = ProjectConfig {
            project_id: "p".into(),
            tokens: vec!["token-secret".into()],
            access_keys: vec![key],
        };
        let printed = format!("{project:?}");
        assert!(!printed.contains("very-secret") && !printed.contains("token-secret"), "{printed}");
        assert!(printed.contains("AK1"));
    }

    #[test]
    fn a_credential_shared_by_two_projects_is_refused() {
        let text = "[[projects]]\nproject_id = \"a\"\ntokens = [\"same\"]\n[[projects]]\nproject_id = \"b\"\ntokens = [\"same\"]";
        let error = Config::from_toml(text).unwrap().validate().unwrap_err().to_string();
        assert!(error.contains("configured twice"), "{error}");
    }

    #[test]
    fn a_relative_data_dir_is_made_absolute() {
        let config = Config::load(&Cli::parse_from(["ringiot", "--data-dir", "some/dir"])).unwrap();
        assert!(config.data_dir.is_absolute());
        assert!(config.data_dir.ends_with("some/dir"));
    }
}
