//! Appended records come back from recovery, in order, including across restarts.

use std::rc::Rc;

use super::{config, config_without_fsync, record, records, run_local, shard_dir};
use crate::log::{recover, LogError, LogRecord, ShardLog, KIND_RESERVED_MIN, RECORD_BYTES_MAX};

#[test]
fn appended_records_recover_in_order() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let recovered = recover(&dir).unwrap();
        assert!(recovered.snapshot.is_empty() && recovered.tail.is_empty());
        let log = ShardLog::open(config(&dir), &recovered).await.unwrap();
        for log_record in records(0..50) {
            log.append(log_record).await.unwrap();
        }
        let stats = log.stats();
        assert_eq!(stats.appended_count, 50);
        assert_eq!(stats.fsync_count, stats.batch_count);
        assert!(stats.fsync_count >= 1);
        assert_eq!(stats.written_bytes, stats.segment_bytes);
        log.close().await.unwrap();
    });
    let recovered = recover(&shard.path).unwrap();
    assert!(recovered.snapshot.is_empty());
    assert_eq!(recovered.tail, records(0..50));
}

#[test]
fn concurrent_appends_share_fsyncs_and_all_recover() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        let tasks: Vec<_> = (0..100)
            .map(|index| {
                let log = Rc::clone(&log);
                glommio::spawn_local(async move { log.append(record(index)).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stats = log.stats();
        assert_eq!(stats.appended_count, 100);
        assert!(stats.fsync_count < 100, "group commit shares fdatasyncs: {stats:?}");
        log.close().await.unwrap();
    });
    let mut tail = recover(&shard.path).unwrap().tail;
    assert_eq!(tail.len(), 100);
    tail.sort_by_key(|log_record| log_record.body.clone());
    let mut expected = records(0..100);
    expected.sort_by_key(|log_record| log_record.body.clone());
    assert_eq!(tail, expected);
}

#[test]
fn reopening_continues_the_last_segment() {
    let shard = shard_dir();
    for round in 0..3 {
        let dir = shard.path.clone();
        run_local(move || async move {
            let recovered = recover(&dir).unwrap();
            assert_eq!(recovered.tail, records(0..round * 10));
            let log = ShardLog::open(config(&dir), &recovered).await.unwrap();
            for log_record in records(round * 10..round * 10 + 10) {
                log.append(log_record).await.unwrap();
            }
            log.close().await.unwrap();
        });
    }
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..30));
}

#[test]
fn durability_none_writes_without_fdatasync() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config_without_fsync(&dir), &recover(&dir).unwrap()).await.unwrap();
        for log_record in records(0..5) {
            log.append(log_record).await.unwrap();
        }
        assert_eq!(log.stats().fsync_count, 0);
        log.close().await.unwrap();
    });
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..5));
}

#[test]
fn oversized_and_reserved_records_are_refused() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        let oversized = LogRecord { kind: 1, version: 1, body: vec![0; RECORD_BYTES_MAX + 1] };
        assert!(matches!(log.append(oversized).await, Err(LogError::TooLarge { .. })));
        let reserved = LogRecord { kind: KIND_RESERVED_MIN, version: 1, body: Vec::new() };
        assert!(matches!(log.append(reserved).await, Err(LogError::ReservedKind { .. })));
        log.append(record(0)).await.unwrap();
        log.close().await.unwrap();
    });
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..1));
}

#[test]
fn a_large_record_round_trips() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    let large =
        LogRecord { kind: 7, version: 3, body: (0..3 * 1024 * 1024 + 5).map(|byte| byte as u8).collect() };
    let appended = large.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        log.append(appended).await.unwrap();
        log.close().await.unwrap();
    });
    assert_eq!(recover(&shard.path).unwrap().tail, vec![large]);
}
