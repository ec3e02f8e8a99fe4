//! Behaviour tests for the shard log, one file per behaviour. Each runs its body on a fresh
//! glommio executor over a temporary shard directory.

mod append_recover;
mod close;
mod compaction;
mod corrupt_middle;
mod io_failure;
mod throughput;
mod torn_tail;

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};

use glommio::LocalExecutorBuilder;
use tempfile::TempDir;

use super::record;
use super::{Durability, LogConfig, LogRecord};

/// Runs `make()` to completion on its own glommio executor thread.
pub(super) fn run_local<F, Fut>(make: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    LocalExecutorBuilder::default()
        .spawn(make)
        .expect("the executor starts")
        .join()
        .expect("the test body finishes without panicking");
}

/// A temporary `{data_dir}/shard-1`, removed on drop.
pub(super) struct ShardDir {
    _data_dir: TempDir,
    pub(super) path: PathBuf,
}

pub(super) fn shard_dir() -> ShardDir {
    let data_dir = tempfile::tempdir().expect("a temporary directory");
    let path = data_dir.path().join("shard-1");
    ShardDir { _data_dir: data_dir, path }
}

pub(super) fn record(index: usize) -> LogRecord {
    LogRecord {
        kind: 1 + (index % 3) as u16,
        version: 1,
        body: format!("record number {index}").into_bytes(),
    }
}

pub(super) fn records(range: std::ops::Range<usize>) -> Vec<LogRecord> {
    range.map(record).collect()
}

/// Defaults with a short group-commit window so tests stay quick.
pub(super) fn config(dir: &Path) -> LogConfig {
    LogConfig { flush_interval_us: 100, ..LogConfig::new(dir) }
}

pub(super) fn config_without_fsync(dir: &Path) -> LogConfig {
    LogConfig { durability: Durability::None, ..config(dir) }
}

/// The names in the shard directory, sorted.
pub(super) fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

pub(super) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    super::files::segment_path(dir, seq)
}

/// Frames `records` the way the log does (for files built by hand).
pub(super) fn framed(records: &[LogRecord]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for log_record in records {
        record::encode_into(&mut bytes, log_record.kind, log_record.version, &log_record.body);
    }
    bytes
}

pub(super) fn framed_bytes(log_record: &LogRecord) -> usize {
    record::framed_bytes(log_record.body.len())
}
