//! Snapshot files: the full shard state as records, closed by a footer record.
//!
//! A snapshot is written to `snapshot-{seq}.snap.tmp`, fdatasynced, renamed to
//! `snapshot-{seq}.snap`, and the directory is fsynced. Its last record is a footer (kind
//! `KIND_SNAPSHOT_FOOTER`) whose body holds the record count and `seq`; a file without a
//! matching footer is incomplete and recovery ignores it.

use std::fs;
use std::path::Path;

use glommio::io::{BufferedFile, OpenOptions};

use super::record::{self, Decoded, KIND_RESERVED_MIN, KIND_SNAPSHOT_FOOTER};
use super::{files, segment, LogError, LogRecord};

const FOOTER_VERSION: u16 = 1;
const FOOTER_BODY_BYTES: usize = 16;
/// Snapshot bytes encoded before they are handed to the kernel, so a large state is not
/// copied whole into one more buffer.
const WRITE_CHUNK_BYTES: usize = 1024 * 1024;

fn footer_body(record_count: u64, seq: u64) -> [u8; FOOTER_BODY_BYTES] {
    let mut body = [0u8; FOOTER_BODY_BYTES];
    body[0..8].copy_from_slice(&record_count.to_le_bytes());
    body[8..16].copy_from_slice(&seq.to_le_bytes());
    body
}

/// Writes snapshot `seq` durably: temporary file, fdatasync, rename, directory fsync.
pub(crate) async fn write(dir: &Path, seq: u64, records: &[LogRecord]) -> Result<(), LogError> {
    let temporary = files::snapshot_temporary_path(dir, seq);
    if let Err(error) = write_temporary(&temporary, seq, records).await {
        // Best effort: recovery removes leftover temporaries anyway.
        let _ = glommio::io::remove(&temporary).await;
        return Err(error);
    }
    let path = files::snapshot_path(dir, seq);
    glommio::io::rename(&temporary, &path).await.map_err(|source| LogError::glommio(&path, source))?;
    segment::sync_dir(dir).await
}

async fn write_temporary(path: &Path, seq: u64, records: &[LogRecord]) -> Result<(), LogError> {
    let file: BufferedFile = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(path)
        .await
        .map_err(|source| LogError::glommio(path, source))?;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK_BYTES);
    let mut position_bytes = 0u64;
    for log_record in records {
        assert!(log_record.kind < KIND_RESERVED_MIN);
        record::encode_into(&mut chunk, log_record.kind, log_record.version, &log_record.body);
        if chunk.len() >= WRITE_CHUNK_BYTES {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(WRITE_CHUNK_BYTES));
            position_bytes += write_chunk(&file, path, full, position_bytes).await?;
        }
    }
    let record_count = u64::try_from(records.len()).expect("usize fits in u64");
    let footer = footer_body(record_count, seq);
    record::encode_into(&mut chunk, KIND_SNAPSHOT_FOOTER, FOOTER_VERSION, &footer);
    write_chunk(&file, path, chunk, position_bytes).await?;
    file.fdatasync().await.map_err(|source| LogError::glommio(path, source))?;
    file.close().await.map_err(|source| LogError::glommio(path, source))
}

async fn write_chunk(
    file: &BufferedFile,
    path: &Path,
    chunk: Vec<u8>,
    position_bytes: u64,
) -> Result<u64, LogError> {
    record::assert_records_valid(&chunk);
    segment::write_all_at(file, path, chunk, position_bytes).await
}

/// What reading a snapshot file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRead {
    Complete(Vec<LogRecord>),
    /// Not usable; the reason is for the operator's log.
    Incomplete(String),
}

/// Reads and verifies snapshot `seq` (blocking; recovery only).
pub(crate) fn read_blocking(path: &Path, seq: u64) -> Result<SnapshotRead, LogError> {
    let bytes = fs::read(path).map_err(|source| LogError::io(path, source))?;
    Ok(parse_snapshot(&bytes, seq))
}

/// Decides whether `bytes` are a complete snapshot `seq`, without I/O (so any bytes can be
/// checked; the fuzz targets feed this directly).
pub fn parse_snapshot(bytes: &[u8], seq: u64) -> SnapshotRead {
    let mut records = Vec::new();
    let mut offset = 0usize;
    // Each record takes at least a header, which bounds the loop.
    for _ in 0..=bytes.len() / record::HEADER_BYTES {
        let view = match record::decode_at(bytes, offset) {
            Decoded::Record(view) => view,
            Decoded::End => {
                return SnapshotRead::Incomplete("it has no footer".to_string());
            }
            Decoded::Bad(bad) => {
                return SnapshotRead::Incomplete(format!("its record at byte {offset} {bad}"));
            }
        };
        offset += view.framed_bytes;
        if view.kind < KIND_RESERVED_MIN {
            records.push(LogRecord { kind: view.kind, version: view.version, body: view.body.to_vec() });
            continue;
        }
        let record_count = u64::try_from(records.len()).expect("usize fits in u64");
        let expected = footer_body(record_count, seq);
        if view.kind != KIND_SNAPSHOT_FOOTER || view.body != expected {
            return SnapshotRead::Incomplete(format!(
                "its footer at byte {} does not match its {record_count} records and name",
                offset - view.framed_bytes
            ));
        }
        if offset != bytes.len() {
            return SnapshotRead::Incomplete(format!(
                "it holds {} bytes after its footer",
                bytes.len() - offset
            ));
        }
        return SnapshotRead::Complete(records);
    }
    unreachable!("more records than the bytes can hold");
}
