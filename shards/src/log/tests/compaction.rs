//! Compaction replaces old segments by a snapshot without losing a record, and recovery
//! prefers complete snapshots only.

use std::fs;

use futures_lite::future::poll_once;

use super::{config, file_names, framed, record, records, run_local, segment_path, shard_dir};
use crate::log::files::{snapshot_path, snapshot_temporary_path};
use crate::log::{recover, LogConfig, LogRecord, ShardLog};

/// The caller's state after records `0..count`: one summary record.
fn summary(count: usize) -> LogRecord {
    LogRecord { kind: 9, version: 1, body: format!("state after {count} records").into_bytes() }
}

fn small_compaction_config(dir: &std::path::Path) -> LogConfig {
    LogConfig { compaction_bytes: 256, ..config(dir) }
}

#[test]
fn compaction_replaces_old_segments_by_a_snapshot() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(small_compaction_config(&dir), &recover(&dir).unwrap()).await.unwrap();
        assert!(!log.needs_compaction());
        for log_record in records(0..10) {
            log.append(log_record).await.unwrap();
        }
        assert!(log.needs_compaction());
        log.compact(vec![summary(10), record(100)]).await.unwrap();
        assert!(!log.needs_compaction());
        assert_eq!(log.stats().log_bytes, 0);
        for log_record in records(10..13) {
            log.append(log_record).await.unwrap();
        }
        log.close().await.unwrap();
    });
    assert_eq!(
        file_names(&shard.path),
        vec![
            "segment-00000000000000000001.log".to_string(),
            "snapshot-00000000000000000001.snap".to_string(),
        ]
    );
    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.snapshot, vec![summary(10), record(100)]);
    assert_eq!(recovered.tail, records(10..13));
}

#[test]
fn appends_racing_a_compaction_land_after_the_snapshot() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        // Each future is polled once, so its record is buffered before the next one starts;
        // the flusher cannot run in between because this task never yields.
        let mut before: Vec<_> = (0..20).map(|index| Box::pin(log.append(record(index)))).collect();
        for append in &mut before {
            assert!(poll_once(append.as_mut()).await.is_none());
        }
        let mut compaction = Box::pin(log.compact(vec![summary(20)]));
        assert!(poll_once(compaction.as_mut()).await.is_none());
        let mut after: Vec<_> = (20..40).map(|index| Box::pin(log.append(record(index)))).collect();
        for append in &mut after {
            assert!(poll_once(append.as_mut()).await.is_none());
        }
        for append in before.into_iter().chain(after) {
            append.await.unwrap();
        }
        compaction.await.unwrap();
        log.close().await.unwrap();
    });
    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.snapshot, vec![summary(20)]);
    assert_eq!(recovered.tail, records(20..40));
}

#[test]
fn a_second_compaction_without_appends_in_between_recovers() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        log.append(record(0)).await.unwrap();
        log.compact(vec![summary(1)]).await.unwrap();
        log.compact(vec![summary(1), record(1)]).await.unwrap();
        log.close().await.unwrap();
    });
    assert_eq!(
        file_names(&shard.path),
        vec![
            "segment-00000000000000000002.log".to_string(),
            "snapshot-00000000000000000002.snap".to_string(),
        ]
    );
    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.snapshot, vec![summary(1), record(1)]);
    assert!(recovered.tail.is_empty());
}

#[test]
fn half_written_snapshot_is_ignored_in_favour_of_the_segments() {
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    fs::write(segment_path(&shard.path, 0), framed(&records(0..5))).unwrap();
    fs::write(segment_path(&shard.path, 1), framed(&records(5..6))).unwrap();
    // Records but no footer, under the final name.
    fs::write(snapshot_path(&shard.path, 1), framed(&[summary(5)])).unwrap();

    let recovered = recover(&shard.path).unwrap();
    assert!(recovered.snapshot.is_empty());
    assert_eq!(recovered.tail, records(0..6));
}

#[test]
fn a_crash_before_old_files_were_removed_recovers_the_same_state() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        for log_record in records(0..4) {
            log.append(log_record).await.unwrap();
        }
        log.compact(vec![summary(4)]).await.unwrap();
        log.append(record(4)).await.unwrap();
        log.close().await.unwrap();
    });
    // What a crash between the snapshot's rename and the deletions leaves behind.
    fs::write(segment_path(&shard.path, 0), framed(&records(0..4))).unwrap();
    fs::write(snapshot_temporary_path(&shard.path, 2), b"half a snapshot").unwrap();

    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.snapshot, vec![summary(4)]);
    assert_eq!(recovered.tail, records(4..5));
    assert_eq!(
        file_names(&shard.path),
        vec![
            "segment-00000000000000000001.log".to_string(),
            "snapshot-00000000000000000001.snap".to_string(),
        ]
    );
}
