//! File names under a shard's directory, and listing them.

use std::fs;
use std::path::{Path, PathBuf};

use super::LogError;

const SEGMENT_PREFIX: &str = "segment-";
const SEGMENT_SUFFIX: &str = ".log";
const SNAPSHOT_PREFIX: &str = "snapshot-";
const SNAPSHOT_SUFFIX: &str = ".snap";
const TEMPORARY_SUFFIX: &str = ".tmp";
/// Digits in a sequence number within a file name (enough for any `u64`).
const SEQ_DIGITS: usize = 20;
/// A shard directory holding more entries than this is not one the log wrote.
pub(crate) const DIRECTORY_ENTRIES_MAX: usize = 4096;

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{SEGMENT_PREFIX}{seq:020}{SEGMENT_SUFFIX}"))
}

pub(crate) fn snapshot_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{seq:020}{SNAPSHOT_SUFFIX}"))
}

/// Where a snapshot is written before it is renamed into place.
pub(crate) fn snapshot_temporary_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{SNAPSHOT_PREFIX}{seq:020}{SNAPSHOT_SUFFIX}{TEMPORARY_SUFFIX}"))
}

/// The log's files in a shard directory, by sequence number, ascending.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    pub(crate) segments: Vec<u64>,
    pub(crate) snapshots: Vec<u64>,
    /// Snapshots whose writing never finished.
    pub(crate) temporaries: Vec<PathBuf>,
}

fn parse_seq(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Lists the shard directory (blocking). Unknown files are left alone and reported.
pub(crate) fn list(dir: &Path) -> Result<Listing, LogError> {
    let mut listing = Listing::default();
    let entries = fs::read_dir(dir).map_err(|source| LogError::io(dir, source))?;
    for (index, entry) in entries.enumerate() {
        if index >= DIRECTORY_ENTRIES_MAX {
            return Err(LogError::Corrupt {
                path: dir.to_path_buf(),
                offset_bytes: 0,
                reason: format!("the shard directory holds more than {DIRECTORY_ENTRIES_MAX} entries"),
            });
        }
        let entry = entry.map_err(|source| LogError::io(dir, source))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!(path = %entry.path().display(), "ignoring a file with a non-UTF-8 name in the shard directory");
            continue;
        };
        if let Some(seq) = parse_seq(name, SEGMENT_PREFIX, SEGMENT_SUFFIX) {
            listing.segments.push(seq);
        } else if let Some(seq) = parse_seq(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX) {
            listing.snapshots.push(seq);
        } else if name.starts_with(SNAPSHOT_PREFIX) && name.ends_with(TEMPORARY_SUFFIX) {
            listing.temporaries.push(entry.path());
        } else {
            tracing::warn!(path = %entry.path().display(), "ignoring an unknown file in the shard directory");
        }
    }
    listing.segments.sort_unstable();
    listing.snapshots.sort_unstable();
    Ok(listing)
}

/// fsyncs the directory itself so that created, renamed and removed names are durable
/// (blocking).
pub(crate) fn sync_dir_blocking(dir: &Path) -> Result<(), LogError> {
    fs::File::open(dir).and_then(|handle| handle.sync_all()).map_err(|source| LogError::io(dir, source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_and_parse_back() {
        let dir = Path::new("/data/shard-1");
        let path = segment_path(dir, 42);
        assert_eq!(path.file_name().unwrap().to_str().unwrap(), "segment-00000000000000000042.log");
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_seq(name, SEGMENT_PREFIX, SEGMENT_SUFFIX), Some(42));
        let snapshot = snapshot_path(dir, u64::MAX);
        let name = snapshot.file_name().unwrap().to_str().unwrap();
        assert_eq!(parse_seq(name, SNAPSHOT_PREFIX, SNAPSHOT_SUFFIX), Some(u64::MAX));
        assert_eq!(parse_seq("segment-42.log", SEGMENT_PREFIX, SEGMENT_SUFFIX), None);
    }
}
