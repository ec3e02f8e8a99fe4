//! The data directory: one exclusive lock and one small file naming the shard count.
//!
//! Device records live in the log of their home shard, `stable_hash(device_id) % shard_count`.
//! Starting with another shard count would look for devices in the wrong logs, so the count is
//! written at first start (`{data_dir}/shards.toml`) and a mismatch refuses to start with a
//! clear message. Re-partitioning is not built yet.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const META_FILE: &str = "shards.toml";
pub const LOCK_FILE: &str = "LOCK";

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data dir {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "data dir {path} was written by {recorded} shard(s) but this start asks for {requested}. \
         Devices are placed by stable_hash(device_id) % shard_count, so a different count would \
         misroute them. Start with --shards {recorded} (re-partitioning is not supported yet)."
    )]
    ShardCountMismatch { path: PathBuf, recorded: usize, requested: usize },
    #[error("data dir {path}: {META_FILE} is unreadable: {reason}")]
    BadMeta { path: PathBuf, reason: String },
    #[error("data dir {path} is in use by another ringiot process")]
    Locked { path: PathBuf },
}

/// Holds the directory lock for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Creates the directory if needed, locks it, and checks or records the shard count.
pub fn open(path: &Path, shard_count: usize) -> Result<DataDirLock, DataDirError> {
    let io = |source| DataDirError::Io { path: path.to_owned(), source };
    // The logs hold device secrets: only the engine's own user may read them.
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path).map_err(io)?;
    let mode = std::fs::metadata(path).map_err(io)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the data dir holds device secrets but other users may read it; chmod 700 it"
        );
    }
    let lock_file =
        OpenOptions::new().create(true).truncate(false).write(true).open(path.join(LOCK_FILE)).map_err(io)?;
    // SAFETY: flock on a file descriptor we own; the lock goes with the descriptor.
    if unsafe { libc::flock(lock_file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(DataDirError::Locked { path: path.to_owned() });
    }
    let meta_path = path.join(META_FILE);
    match std::fs::read_to_string(&meta_path) {
        Ok(text) => {
            let recorded = parse_shard_count(&text).ok_or_else(|| DataDirError::BadMeta {
                path: path.to_owned(),
                reason: "no shard_count".into(),
            })?;
            if recorded != shard_count {
                return Err(DataDirError::ShardCountMismatch {
                    path: path.to_owned(),
                    recorded,
                    requested: shard_count,
                });
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            write_meta(&meta_path, shard_count).map_err(io)?
        }
        Err(error) => return Err(io(error)),
    }
    Ok(DataDirLock { _file: lock_file })
}

fn parse_shard_count(text: &str) -> Option<usize> {
    text.lines().find_map(|line| {
        line.trim().strip_prefix("shard_count")?.trim().strip_prefix('=')?.trim().parse().ok()
    })
}

fn write_meta(meta_path: &Path, shard_count: usize) -> std::io::Result<()> {
    let temp = meta_path.with_extension("toml.tmp");
    let mut file = File::create(&temp)?;
    writeln!(file, "# Written by ringiot at first start. Do not edit: devices are placed by")?;
    writeln!(file, "# fnv1a64(device_id) % shard_count.")?;
    writeln!(file, "shard_count = {shard_count}")?;
    writeln!(file, "hash = \"fnv1a64\"")?;
    file.sync_all()?;
    std::fs::rename(&temp, meta_path)?;
    File::open(meta_path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_shard_count_is_refused_with_advice() {
        let dir = tempfile::tempdir().unwrap();
        drop(open(dir.path(), 2).unwrap());
        drop(open(dir.path(), 2).unwrap());
        let error = open(dir.path(), 3).unwrap_err().to_string();
        assert!(error.contains("written by 2 shard(s)") && error.contains("--shards 2"), "{error}");
    }

    #[test]
    fn a_new_data_dir_is_private_to_its_user() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        drop(open(&data_dir, 1).unwrap());
        let mode = std::fs::metadata(&data_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_second_process_cannot_share_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let _held = open(dir.path(), 1).unwrap();
        assert!(matches!(open(dir.path(), 1), Err(DataDirError::Locked { .. })));
    }
}
