//! Start-up recovery: newest complete snapshot, then the segments after it.
//!
//! Blocking `std::fs`: it runs once per shard before the executor serves traffic, reads
//! each file whole, and is simpler to reason about without an event loop.

use std::fs;
use std::path::Path;

use super::record::{self, BadRecord, Decoded, KIND_RESERVED_MIN};
use super::snapshot::{self, SnapshotRead};
use super::{files, LogError, LogRecord, Recovered};

/// Reads the newest complete snapshot under `dir` and replays the segments after it.
///
/// Blocking (`std::fs`); call it once at start-up, before the executor serves traffic. Creates
/// `dir` when missing. A torn last record of the last segment is cut off (the file is
/// truncated and a warning logged); damage anywhere else is [`LogError::Corrupt`].
pub fn recover(dir: &Path) -> Result<Recovered, LogError> {
    fs::create_dir_all(dir).map_err(|source| LogError::io(dir, source))?;
    let listing = files::list(dir)?;
    for temporary in &listing.temporaries {
        tracing::warn!(path = %temporary.display(), "removing a snapshot whose writing never finished");
        fs::remove_file(temporary).map_err(|source| LogError::io(temporary, source))?;
    }
    let (base_seq, snapshot) = match newest_complete_snapshot(dir, &listing.snapshots)? {
        Some((seq, records)) => (seq, records),
        None => (0, Vec::new()),
    };
    remove_superseded(dir, &listing, base_seq)?;
    let live_segments: Vec<u64> = listing.segments.iter().copied().filter(|&seq| seq >= base_seq).collect();
    check_contiguous(dir, base_seq, &live_segments)?;

    let mut tail = Vec::new();
    let mut log_bytes = 0u64;
    let mut segment_length_bytes = 0u64;
    for (index, &seq) in live_segments.iter().enumerate() {
        let is_last = index + 1 == live_segments.len();
        segment_length_bytes = replay_segment(&files::segment_path(dir, seq), is_last, &mut tail)?;
        log_bytes += segment_length_bytes;
    }
    let segment_seq = live_segments.last().copied().unwrap_or(base_seq);
    tracing::info!(
        dir = %dir.display(),
        snapshot_seq = base_seq,
        snapshot_records = snapshot.len(),
        tail_records = tail.len(),
        segments = live_segments.len(),
        "recovered the shard log"
    );
    Ok(Recovered { snapshot, tail, dir: dir.to_path_buf(), segment_seq, segment_length_bytes, log_bytes })
}

/// The newest snapshot with a valid footer; incomplete ones are skipped with a warning.
fn newest_complete_snapshot(
    dir: &Path,
    snapshots: &[u64],
) -> Result<Option<(u64, Vec<LogRecord>)>, LogError> {
    for &seq in snapshots.iter().rev() {
        let path = files::snapshot_path(dir, seq);
        match snapshot::read_blocking(&path, seq)? {
            SnapshotRead::Complete(records) => return Ok(Some((seq, records))),
            SnapshotRead::Incomplete(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring an incomplete snapshot");
            }
        }
    }
    Ok(None)
}

/// Removes segments and snapshots older than the snapshot in use: a compaction that stopped
/// between making its snapshot durable and deleting what it covers leaves them behind.
fn remove_superseded(dir: &Path, listing: &files::Listing, base_seq: u64) -> Result<(), LogError> {
    let superseded_segments =
        listing.segments.iter().filter(|&&seq| seq < base_seq).map(|&seq| files::segment_path(dir, seq));
    let superseded_snapshots =
        listing.snapshots.iter().filter(|&&seq| seq < base_seq).map(|&seq| files::snapshot_path(dir, seq));
    let superseded = superseded_segments.chain(superseded_snapshots);
    let mut removed = 0usize;
    for path in superseded {
        tracing::info!(path = %path.display(), "removing a file the newest snapshot covers");
        fs::remove_file(&path).map_err(|source| LogError::io(&path, source))?;
        removed += 1;
    }
    if removed > 0 {
        files::sync_dir_blocking(dir)?;
    }
    Ok(())
}

/// The segments replayed must be `base_seq, base_seq + 1, …`: a gap would lose records.
fn check_contiguous(dir: &Path, base_seq: u64, live_segments: &[u64]) -> Result<(), LogError> {
    for (expected_seq, &seq) in (base_seq..).zip(live_segments) {
        if seq != expected_seq {
            let reason = if expected_seq == base_seq && base_seq == 0 {
                format!("the first segment is {seq} but no complete snapshot covers the records before it")
            } else {
                format!("segment {expected_seq} is missing before segment {seq}")
            };
            return Err(LogError::Corrupt { path: files::segment_path(dir, seq), offset_bytes: 0, reason });
        }
    }
    Ok(())
}

/// What the bytes of one segment hold, decided without I/O so that any bytes can be checked
/// (the fuzz targets feed this directly): the records up to the first one that is not valid,
/// and why the scan stopped there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    /// Every valid record before `end`, in order, checksums verified.
    pub records: Vec<LogRecord>,
    /// Bytes of those records: where the segment's valid part ends.
    pub valid_bytes: usize,
    pub end: SegmentEnd,
}

/// Why [`scan_segment`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentEnd {
    /// The bytes ended exactly after a record.
    Clean,
    /// The bytes at `valid_bytes` are not a valid record.
    Bad(BadRecord),
    /// A valid record of a kind only the log writes (a snapshot footer): no segment holds one.
    ReservedKind(u16),
}

/// Reads the records of a segment's bytes up to the first that is not valid.
pub fn scan_segment(bytes: &[u8]) -> SegmentScan {
    let mut records = Vec::new();
    let mut offset = 0usize;
    // Each record takes at least a header, which bounds the loop.
    for _ in 0..=bytes.len() / record::HEADER_BYTES {
        let end = match record::decode_at(bytes, offset) {
            Decoded::End => SegmentEnd::Clean,
            Decoded::Bad(bad) => SegmentEnd::Bad(bad),
            Decoded::Record(view) if view.kind >= KIND_RESERVED_MIN => SegmentEnd::ReservedKind(view.kind),
            Decoded::Record(view) => {
                // decode_at recomputed the checksum over the bytes read: verified after reading.
                records.push(LogRecord { kind: view.kind, version: view.version, body: view.body.to_vec() });
                offset += view.framed_bytes;
                continue;
            }
        };
        return SegmentScan { records, valid_bytes: offset, end };
    }
    unreachable!("more records than the bytes can hold");
}

/// Appends the records of one segment to `tail` and returns the segment's valid length.
fn replay_segment(path: &Path, is_last: bool, tail: &mut Vec<LogRecord>) -> Result<u64, LogError> {
    let bytes = fs::read(path).map_err(|source| LogError::io(path, source))?;
    let scan = scan_segment(&bytes);
    tail.extend(scan.records);
    let offset = scan.valid_bytes;
    match scan.end {
        SegmentEnd::Clean => Ok(offset as u64),
        SegmentEnd::ReservedKind(kind) => Err(LogError::Corrupt {
            path: path.to_path_buf(),
            offset_bytes: offset as u64,
            reason: format!("record at byte {offset} has kind {kind:#06x}, which no segment holds"),
        }),
        SegmentEnd::Bad(bad) => cut_torn_tail(path, &bytes, offset, bad, is_last),
    }
}

/// A bad record at the end of the last segment is a write the crash interrupted: cut it
/// off. Anywhere else it is damage that recovery must not hide.
fn cut_torn_tail(
    path: &Path,
    bytes: &[u8],
    offset: usize,
    bad: BadRecord,
    is_last: bool,
) -> Result<u64, LogError> {
    let corrupt =
        |reason: String| LogError::Corrupt { path: path.to_path_buf(), offset_bytes: offset as u64, reason };
    if !is_last {
        return Err(corrupt(format!("record at byte {offset} {bad}; a segment before the last is damaged")));
    }
    if let Some(next_offset) = record::next_valid_record_after(bytes, offset) {
        return Err(corrupt(format!(
            "record at byte {offset} {bad}; the log is damaged in the middle (a valid record follows at byte {next_offset})"
        )));
    }
    tracing::warn!(
        path = %path.display(),
        offset_bytes = offset,
        cut_bytes = bytes.len() - offset,
        reason = %bad,
        "cutting off a torn record at the end of the shard log"
    );
    let file = fs::OpenOptions::new().write(true).open(path).map_err(|source| LogError::io(path, source))?;
    file.set_len(offset as u64)
        .and_then(|()| file.sync_all())
        .map_err(|source| LogError::io(path, source))?;
    Ok(offset as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(records: &[(u16, &[u8])]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for (kind, body) in records {
            record::encode_into(&mut bytes, *kind, 1, body);
        }
        bytes
    }

    #[test]
    fn a_scan_stops_at_the_first_record_that_is_not_valid_and_says_why() {
        let bytes = segment(&[(1, b"first"), (2, b"second")]);
        let clean = scan_segment(&bytes);
        assert_eq!((clean.records.len(), clean.valid_bytes, clean.end), (2, bytes.len(), SegmentEnd::Clean));

        let torn = scan_segment(&bytes[..bytes.len() - 1]);
        assert_eq!((torn.records.len(), torn.valid_bytes), (1, 32));
        assert!(matches!(torn.end, SegmentEnd::Bad(BadRecord::ShortBody { .. })));

        let footer = segment(&[(1, b"first"), (0xFFFF, b"")]);
        let reserved = scan_segment(&footer);
        assert_eq!((reserved.records.len(), reserved.end), (1, SegmentEnd::ReservedKind(0xFFFF)));
        assert_eq!(scan_segment(&[]).end, SegmentEnd::Clean);
    }
}
