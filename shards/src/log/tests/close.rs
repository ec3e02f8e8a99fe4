//! `close` makes everything buffered durable, and the log takes nothing after it.

use futures_lite::future::poll_once;

use super::{config, record, records, run_local, shard_dir};
use crate::log::{recover, LogConfig, LogError, ShardLog};

#[test]
fn append_after_close_is_refused() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        log.append(record(0)).await.unwrap();
        log.close().await.unwrap();
        assert!(matches!(log.append(record(1)).await, Err(LogError::Closed)));
        assert!(matches!(log.compact(Vec::new()).await, Err(LogError::Closed)));
        log.close().await.unwrap();
    });
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..1));
}

#[test]
fn close_flushes_records_still_in_the_group_commit_window() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        // A window far longer than the test: only close can flush these.
        let slow = LogConfig { flush_interval_us: LogConfig::FLUSH_INTERVAL_US_MAX, ..config(&dir) };
        let log = ShardLog::open(slow, &recover(&dir).unwrap()).await.unwrap();
        let mut appends: Vec<_> = (0..10).map(|index| Box::pin(log.append(record(index)))).collect();
        for append in &mut appends {
            assert!(poll_once(append.as_mut()).await.is_none());
        }
        log.close().await.unwrap();
        for append in appends {
            append.await.unwrap();
        }
        assert_eq!(log.stats().batch_count, 1);
    });
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..10));
}

#[test]
fn dropping_the_log_flushes_what_it_buffered() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        let flusher_done = std::rc::Rc::clone(&log.shared.flusher_done);
        let append = glommio::spawn_local({
            let log = std::rc::Rc::clone(&log);
            async move { log.append(record(0)).await }
        });
        append.await.unwrap();
        drop(log);
        flusher_done.wait().await.unwrap();
    });
    assert_eq!(recover(&shard.path).unwrap().tail, records(0..1));
}
