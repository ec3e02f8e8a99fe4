//! `log_replay`: what a shard does with the bytes of its log directory at start-up.
//!
//! Input: one mode byte (`% 3`), then
//! - 0: a file's raw bytes, read both as a segment and as a snapshot (`seq` 1): the form a
//!   damaged or hostile file takes;
//! - 1: records as `kind u16 LE, version u16 LE, length u16 LE, body`, repeated; they are
//!   framed with correct checksums (the log's own encoder) into a segment and a complete
//!   snapshot, so mutations reach the record decoders instead of dying at the checksum;
//! - 2: one registry record, `kind u16 LE, version u16 LE`, then its body (revision and rkyv).
//!
//! Whatever the scan yields is replayed as the shard replays it, and the JSON documents the
//! replayed state holds are parsed as the shard parses them.

use protocol::model::Product;
use protocol::shadow::DeviceShadow;
use shards::log::{self, LogRecord, SegmentEnd, SnapshotRead, KIND_RESERVED_MIN, RECORD_BYTES_MAX};
use shards::registry::records::RegistryRecord;
use shards::registry::replay;

/// The `seq` snapshots are read as.
const SNAPSHOT_SEQ: u64 = 1;
const SNAPSHOT_FOOTER_KIND: u16 = 0xFFFF;
const SNAPSHOT_FOOTER_VERSION: u16 = 1;

pub fn log_replay(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => raw_file(rest),
        1 => framed_records(rest),
        _ => single_record(rest),
    }
}

fn raw_file(bytes: &[u8]) {
    let tail = scanned(bytes);
    let snapshot = match log::parse_snapshot(bytes, SNAPSHOT_SEQ) {
        SnapshotRead::Complete(records) => records,
        SnapshotRead::Incomplete(_) => Vec::new(),
    };
    replayed(&snapshot, &tail);
}

fn framed_records(mut rest: &[u8]) {
    let mut records = Vec::new();
    while let Some((header, after)) = rest.split_first_chunk::<6>() {
        let kind = u16::from_le_bytes([header[0], header[1]]);
        let version = u16::from_le_bytes([header[2], header[3]]);
        let length = usize::from(u16::from_le_bytes([header[4], header[5]])).min(after.len());
        let (body, after) = after.split_at(length);
        records.push(LogRecord { kind, version, body: body.to_vec() });
        rest = after;
    }
    let mut segment = Vec::new();
    for record in &records {
        log::encode_into(&mut segment, record.kind, record.version, &record.body);
    }
    let tail = scanned(&segment);
    let first_reserved = records.iter().position(|r| r.kind >= KIND_RESERVED_MIN).unwrap_or(records.len());
    assert_eq!(tail, records[..first_reserved], "framed records did not scan back");

    let mut snapshot = segment;
    let footer = [(first_reserved as u64).to_le_bytes(), SNAPSHOT_SEQ.to_le_bytes()].concat();
    if first_reserved == records.len() {
        log::encode_into(&mut snapshot, SNAPSHOT_FOOTER_KIND, SNAPSHOT_FOOTER_VERSION, &footer);
        match log::parse_snapshot(&snapshot, SNAPSHOT_SEQ) {
            SnapshotRead::Complete(read) => assert_eq!(read, records, "a snapshot did not read back"),
            SnapshotRead::Incomplete(reason) => panic!("a complete snapshot was refused: {reason}"),
        }
    }
    replayed(&records[..first_reserved], &[]);
    replayed(&[], &records[..first_reserved]);
}

fn single_record(bytes: &[u8]) {
    let Some((header, body)) = bytes.split_first_chunk::<4>() else { return };
    let record = LogRecord {
        kind: u16::from_le_bytes([header[0], header[1]]),
        version: u16::from_le_bytes([header[2], header[3]]),
        body: body.to_vec(),
    };
    if let Ok((revision, decoded)) = RegistryRecord::decode(&record) {
        assert_eq!(RegistryRecord::decode(&decoded.encode(revision)).ok(), Some((revision, decoded)));
        replayed(&[], &[record]);
    }
}

/// The records recovery keeps from a segment's bytes, with the scan's own invariants checked.
fn scanned(bytes: &[u8]) -> Vec<LogRecord> {
    let scan = log::scan_segment(bytes);
    assert!(scan.valid_bytes <= bytes.len() && scan.valid_bytes.is_multiple_of(16));
    assert_eq!(scan.end == SegmentEnd::Clean, scan.valid_bytes == bytes.len());
    let mut encoded = Vec::with_capacity(scan.valid_bytes);
    for record in &scan.records {
        assert!(record.body.len() <= RECORD_BYTES_MAX && record.kind < KIND_RESERVED_MIN);
        log::encode_into(&mut encoded, record.kind, record.version, &record.body);
    }
    assert_eq!(encoded, bytes[..scan.valid_bytes], "scanned records do not re-encode to their bytes");
    scan.records
}

/// Replay, then the parses a recovering shard does of the JSON it holds.
fn replayed(snapshot: &[LogRecord], tail: &[LogRecord]) {
    let Ok(state) = replay::replay(snapshot, tail) else { return };
    for product in state.products.iter() {
        let _ = protocol::json::from_bytes::<Product>(product.product_json.as_bytes());
    }
    for shadow_json in state.shadows.values() {
        let _ = protocol::json::from_bytes::<DeviceShadow>(shadow_json.as_bytes());
    }
    let mut routing = shards::registry::routing::RoutingTable::default();
    for record in state.routing {
        routing.put(record);
    }
    let _ = shards::mailbox::history::History::recovered(state.messages);
}
