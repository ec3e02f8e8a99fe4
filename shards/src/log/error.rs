//! The log's one error type.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use glommio::GlommioError;

use super::record::{KIND_RESERVED_MIN, RECORD_BYTES_MAX};

/// Everything that can go wrong in the shard log.
///
/// `Clone` so that one failed write or fdatasync can be handed to every append of its batch;
/// the I/O error is therefore shared behind an `Arc`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// A file-system call failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Recovery found damage it must not repair silently.
    #[error(
        "{}: {reason}, refusing to start. Restore from backup or remove the shard directory to start empty",
        path.display()
    )]
    Corrupt { path: PathBuf, offset_bytes: u64, reason: String },
    /// The record body is over [`RECORD_BYTES_MAX`].
    #[error("record body of {body_bytes} bytes is over the {body_bytes_max}-byte limit")]
    TooLarge { body_bytes: usize, body_bytes_max: usize },
    /// Kinds from [`KIND_RESERVED_MIN`] up belong to the log's own records.
    #[error(
        "record kind {kind:#06x} is reserved for the log itself (kinds from {KIND_RESERVED_MIN:#06x} up)"
    )]
    ReservedKind { kind: u16 },
    /// `close` was called (or the log was dropped); nothing more is accepted.
    #[error("the shard log is closed")]
    Closed,
    /// An earlier write or fdatasync failed. The kernel may have dropped the dirty pages, so
    /// retrying could report success for data that is gone (fsyncgate): the log stops.
    #[error(
        "{}: the shard log refuses appends after an earlier I/O error ({source}); restart the shard to recover what is durable",
        path.display()
    )]
    Failed {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// Compactions do not overlap; the caller tries again later.
    #[error("a compaction of this shard log is already running")]
    CompactionRunning,
    /// The append waited this many times for buffer space and the buffer was still full.
    #[error("the shard log buffer stayed full through {waits} flushes")]
    Overloaded { waits: usize },
    /// The configuration does not make sense.
    #[error("invalid shard log configuration: {reason}")]
    InvalidConfig { reason: String },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> LogError {
        LogError::Io { path: path.to_path_buf(), source: Arc::new(source) }
    }

    /// Keeps the OS error of a glommio error (its own conversion to `io::Error` drops the
    /// errno and repeats the path in the message).
    pub(crate) fn glommio(path: &Path, source: GlommioError<()>) -> LogError {
        let source = match source {
            GlommioError::EnhancedIoError { source, .. } | GlommioError::IoError(source) => source,
            other => io::Error::from(other),
        };
        LogError::io(path, source)
    }

    pub(crate) fn too_large(body_bytes: usize) -> LogError {
        LogError::TooLarge { body_bytes, body_bytes_max: RECORD_BYTES_MAX }
    }

    /// The error later appends get after this one ended the log.
    pub(crate) fn into_failed(self) -> LogError {
        match self {
            LogError::Io { path, source } => LogError::Failed { path, source },
            other => other,
        }
    }
}
