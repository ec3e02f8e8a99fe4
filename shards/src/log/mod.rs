//! The per-shard append-only log: group-committed records, snapshots, recovery.
//!
//! The log stores opaque records (`kind`, `version`, `body`) and knows nothing of devices or
//! products. Callers put rkyv bytes in the body and validate them when they read them back
//! (rkyv's checked access); the log guarantees that what recovery returns is exactly what
//! was appended, in order, or an error.
//!
//! # Layout
//!
//! Under `{data_dir}/shard-{k}/`:
//!
//! * `segment-{seq:020}.log`: records in append order. Only the newest segment is written.
//! * `snapshot-{seq:020}.snap`: the whole shard state when segment `seq` was started, as
//!   records, closed by a footer record. It covers every segment before `seq`.
//! * `snapshot-{seq:020}.snap.tmp`: a snapshot being written; recovery removes it.
//!
//! # Record framing
//!
//! ```text
//! byte  size  field
//!    0     4  length_bytes   body length, unpadded (at most RECORD_BYTES_MAX, 16 MiB)
//!    4     4  crc32c         over kind and version (little-endian) then the body
//!    8     2  kind           the caller's; KIND_RESERVED_MIN (0xFF00) and up are the log's
//!   10     2  version        the caller's format version of this kind (rkyv has no evolution)
//!   12     4  magic          "RLOG"
//!   16     n  body
//! 16+n     p  zero padding, so the next record starts on a multiple of 16 bytes
//! ```
//!
//! Integers are little-endian. A snapshot file uses the same framing; its last record has
//! kind `0xFFFF` and a 16-byte body: the number of records before it (`u64`) and the
//! snapshot's `seq` (`u64`). A file without that footer is incomplete.
//!
//! # Flow
//!
//! * **Start-up**: [`recover`] (blocking `std::fs`) loads the newest complete snapshot, then
//!   replays the segments from that snapshot's `seq` on. [`ShardLog::open`] continues the
//!   last segment and spawns the flusher on the shard's glommio executor. What a file's bytes
//!   hold is decided without I/O by [`scan_segment`] and [`parse_snapshot`], which the fuzz
//!   targets (`fuzzing` crate) feed with arbitrary bytes.
//! * **Append (group commit)**: [`ShardLog::append`] encodes the record into the open batch
//!   and awaits that batch's completion. The flusher task writes a batch once it holds
//!   `batch_bytes_max` bytes or its first record is `flush_interval_us` old, fdatasyncs,
//!   and wakes every append in it with `Ok` or with the error. One write and one
//!   fdatasync serve every append that arrived in the window.
//! * **Back-pressure**: when the open batch reaches 4 × `batch_bytes_max` bytes or
//!   16,384 records, an append waits for a flush before buffering its record.
//! * **Failure**: a failed write or fdatasync fails its batch and everything buffered, and
//!   every later append gets [`LogError::Failed`]: after a failed fdatasync the kernel may
//!   have dropped the dirty pages, so a retry could report success for lost data.
//! * **Compaction**: [`ShardLog::compact`] seals the open batch, starts segment `N`
//!   (appends continue there at once), writes `snapshot-N` to a temporary name, fdatasyncs,
//!   renames it and fsyncs the directory, then deletes older segments and snapshots.
//! * **Recovery rules**: a bad record (short header, short body, checksum mismatch, bad
//!   magic, non-zero padding) at the end of the last segment, with no valid record after it,
//!   is a torn write: the file is cut back to the last good record and a warning logged.
//!   A bad record anywhere else, a damaged earlier segment, or a missing segment is
//!   [`LogError::Corrupt`], and the shard refuses to start. Incomplete snapshots are skipped
//!   (with a warning) in favour of an older snapshot and the segments.
//!
//! # I/O
//!
//! The writer uses glommio 0.9's `BufferedFile` (`write_at` + `fdatasync` through io_uring,
//! on the shard's own thread); `Directory::sync` makes new and renamed names durable. Page
//! cache I/O needs no alignment, and the write sizes here gain nothing from O_DIRECT.
//! Recovery uses `std::fs` because it runs once, before the executor serves traffic.
//!
//! # Modules
//!
//! `record` (framing, pure) · `recover` (start-up) · `writer` (`ShardLog`, its state) ·
//! `flusher` (the group-commit task) · `compact` · `snapshot` (snapshot files) ·
//! `segment` (glommio file calls) · `files` (names, listing) · `signal` (same-thread
//! completion and wake-up).
//!
//! # Invariants
//!
//! * Every record starts at a multiple of 16 bytes, and its header says how long it is.
//! * A batch's records are checked (checksum recomputed from the buffer) right before they
//!   are written; every record's checksum is verified when it is read back.
//! * An append resolves `Ok` only after its batch was written and, with
//!   [`Durability::Fsync`], fdatasynced; an I/O error reaches every append of its batch.
//! * After one failed write or fdatasync the log accepts no more records.
//! * Only the flusher writes segments, at the end of the newest one, batches in order.
//! * Segment `N` is created (and the segments before it made durable) before
//!   `snapshot-N` is written; older files are deleted only after `snapshot-N` is durable
//!   under its final name. So the newest complete snapshot plus the segments from its `seq`
//!   on always hold every appended record.
//! * Bounded: body ≤ 16 MiB, batch ≤ 16,384 records, buffered bytes ≤ 4 ×
//!   `batch_bytes_max` (plus one record), ≤ 4 sealed batches, ≤ 4,096 directory entries.

mod compact;
mod error;
mod files;
mod flusher;
mod record;
mod recover;
mod segment;
mod signal;
mod snapshot;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

pub use error::LogError;
pub use record::{encode_into, BadRecord, KIND_RESERVED_MIN, RECORD_BYTES_MAX};
pub use recover::{recover, scan_segment, SegmentEnd, SegmentScan};
pub use snapshot::{parse_snapshot, SnapshotRead};
pub use writer::ShardLog;

/// One record as the caller sees it; the body is opaque to the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// What the body is; values from [`KIND_RESERVED_MIN`] up are refused.
    pub kind: u16,
    /// The body's format version within its kind.
    pub version: u16,
    pub body: Vec<u8>,
}

/// Whether an append waits for fdatasync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// An append resolves after its batch is fdatasynced.
    Fsync,
    /// Write, never fdatasync (the operator's choice): a crash can lose recent records.
    None,
}

/// How a shard log writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// The shard's directory, `{data_dir}/shard-{k}`.
    pub dir: PathBuf,
    pub durability: Durability,
    /// Group-commit window: a batch is flushed at most this long after its first record.
    pub flush_interval_us: u64,
    /// A batch is flushed early once it holds this many bytes.
    pub batch_bytes_max: usize,
    /// `needs_compaction` turns true once this many bytes were appended since the newest
    /// snapshot.
    pub compaction_bytes: u64,
}

impl LogConfig {
    pub const FLUSH_INTERVAL_US_DEFAULT: u64 = 500;
    pub const BATCH_BYTES_MAX_DEFAULT: usize = 1024 * 1024;
    pub const COMPACTION_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;
    /// A longer group-commit window would hold appends for longer than any caller waits.
    pub const FLUSH_INTERVAL_US_MAX: u64 = 1_000_000;

    /// The defaults, with fdatasync, for `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            durability: Durability::Fsync,
            flush_interval_us: Self::FLUSH_INTERVAL_US_DEFAULT,
            batch_bytes_max: Self::BATCH_BYTES_MAX_DEFAULT,
            compaction_bytes: Self::COMPACTION_BYTES_DEFAULT,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), LogError> {
        let reason = if self.flush_interval_us > Self::FLUSH_INTERVAL_US_MAX {
            format!("flush_interval_us {} is over {}", self.flush_interval_us, Self::FLUSH_INTERVAL_US_MAX)
        } else if self.batch_bytes_max == 0 {
            "batch_bytes_max is 0".to_string()
        } else if self.compaction_bytes == 0 {
            "compaction_bytes is 0".to_string()
        } else {
            return Ok(());
        };
        Err(LogError::InvalidConfig { reason })
    }
}

/// What [`recover`] found: the state to rebuild, and where appends continue.
///
/// [`ShardLog::open`] reads only the private fields, so the caller may move the records out
/// (`std::mem::take`) before opening.
#[derive(Debug)]
pub struct Recovered {
    /// The records of the newest complete snapshot; empty if there is none.
    pub snapshot: Vec<LogRecord>,
    /// The records appended after that snapshot, in order.
    pub tail: Vec<LogRecord>,
    pub(crate) dir: PathBuf,
    /// The segment appends continue in (it may not exist yet).
    pub(crate) segment_seq: u64,
    /// Its validated length; appends go after it.
    pub(crate) segment_length_bytes: u64,
    /// Bytes of all segments since the snapshot.
    pub(crate) log_bytes: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Bytes written to segments since `open`.
    pub written_bytes: u64,
    pub fsync_count: u64,
    pub fsync_latency_us_last: u64,
    /// Sum of every fdatasync's duration: with `fsync_count`, the mean.
    pub fsync_latency_us_total: u64,
    /// Length of the segment being appended to.
    pub segment_bytes: u64,
    /// Bytes appended since the newest snapshot (what `needs_compaction` compares).
    pub log_bytes: u64,
    /// Batches written since `open`: `appended_count / batch_count` is the group-commit gain.
    pub batch_count: u64,
    /// Records accepted since `open`.
    pub appended_count: u64,
}
