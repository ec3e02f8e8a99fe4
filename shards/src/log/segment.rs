//! The segment file being appended to, and the few glommio file calls the log makes.
//!
//! glommio 0.9's `BufferedFile` issues `write_at` and `fdatasync` through io_uring on the
//! shard's own thread (page-cache I/O, no alignment rules); `DmaFile` would need aligned
//! buffers and O_DIRECT for no gain at these write sizes.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, Directory, OpenOptions};

use super::{files, LogError};

/// The open segment and where its next record goes.
#[derive(Debug)]
pub(crate) struct SegmentFile {
    pub(crate) seq: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: BufferedFile,
    pub(crate) length_bytes: u64,
}

impl SegmentFile {
    /// Opens segment `seq` to append after its first `length_bytes` (what recovery
    /// validated), creating it when recovery found none.
    pub(crate) async fn open(dir: &Path, seq: u64, length_bytes: u64) -> Result<Self, LogError> {
        let path = files::segment_path(dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(&path)
            .await
            .map_err(|source| LogError::glommio(&path, source))?;
        let size_bytes = file.file_size().await.map_err(|source| LogError::glommio(&path, source))?;
        if size_bytes != length_bytes {
            return Err(LogError::Corrupt {
                path,
                offset_bytes: size_bytes,
                reason: format!(
                    "the segment is {size_bytes} bytes long but recovery validated {length_bytes}; it changed after recovery"
                ),
            });
        }
        sync_dir(dir).await?;
        Ok(SegmentFile { seq, path, file, length_bytes })
    }

    /// Creates the empty segment `seq`, which must not exist yet, and makes its name durable.
    pub(crate) async fn create(dir: &Path, seq: u64) -> Result<Self, LogError> {
        let path = files::segment_path(dir, seq);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .buffered_open(&path)
            .await
            .map_err(|source| LogError::glommio(&path, source))?;
        sync_dir(dir).await?;
        Ok(SegmentFile { seq, path, file, length_bytes: 0 })
    }

    pub(crate) async fn fdatasync(&self) -> Result<(), LogError> {
        self.file.fdatasync().await.map_err(|source| LogError::glommio(&self.path, source))
    }

    pub(crate) async fn close(self) -> Result<(), LogError> {
        self.file.close().await.map_err(|source| LogError::glommio(&self.path, source))
    }
}

/// Writes all of `bytes` at `position_bytes` and returns the count.
///
/// `write_at` takes the buffer, so a short write cannot be retried without a copy on every
/// write. A regular file writes short only when the disk is full or a file-size limit is hit,
/// and a retry would fail with ENOSPC anyway: a short write is an I/O error here.
pub(crate) async fn write_all_at(
    file: &BufferedFile,
    path: &Path,
    bytes: Vec<u8>,
    position_bytes: u64,
) -> Result<u64, LogError> {
    let asked_bytes = bytes.len();
    if asked_bytes == 0 {
        return Ok(0);
    }
    let wrote_bytes =
        file.write_at(bytes, position_bytes).await.map_err(|source| LogError::glommio(path, source))?;
    assert!(wrote_bytes <= asked_bytes);
    if wrote_bytes < asked_bytes {
        return Err(LogError::io(
            path,
            io::Error::new(
                io::ErrorKind::WriteZero,
                format!(
                    "short write at byte {position_bytes}: {wrote_bytes} of {asked_bytes} bytes (disk full?)"
                ),
            ),
        ));
    }
    Ok(asked_bytes as u64)
}

/// fsyncs the directory so names created, renamed or removed in it are durable.
pub(crate) async fn sync_dir(dir: &Path) -> Result<(), LogError> {
    let directory = Directory::open(dir).await.map_err(|source| LogError::glommio(dir, source))?;
    directory.sync().await.map_err(|source| LogError::glommio(dir, source))?;
    directory.close().await.map_err(|source| LogError::glommio(dir, source))
}
