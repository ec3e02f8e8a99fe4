//! A rough measurement, not a pass/fail test: run with
//! `cargo test -p shards --release log::tests::throughput -- --ignored --nocapture`.

use std::rc::Rc;
use std::time::Instant;

use super::{config, config_without_fsync, record, run_local, shard_dir};
use crate::log::{recover, LogConfig, ShardLog};

const APPENDS: usize = 10_000;

/// `workers` tasks each append `APPENDS / workers` records one after another.
fn measure(name: &'static str, workers: usize, make_config: fn(&std::path::Path) -> LogConfig) {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(make_config(&dir), &recover(&dir).unwrap()).await.unwrap();
        let started_at = Instant::now();
        let per_worker = APPENDS / workers;
        let tasks: Vec<_> = (0..workers)
            .map(|worker| {
                let log = Rc::clone(&log);
                glommio::spawn_local(async move {
                    for index in worker * per_worker..(worker + 1) * per_worker {
                        log.append(record(index)).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let elapsed = started_at.elapsed();
        let stats = log.stats();
        log.close().await.unwrap();
        println!(
            "{name}, {workers} workers: {APPENDS} appends in {elapsed:?} = {:.0} appends/s, {} batches, {} fdatasyncs, last fdatasync {} us",
            APPENDS as f64 / elapsed.as_secs_f64(),
            stats.batch_count,
            stats.fsync_count,
            stats.fsync_latency_us_last,
        );
    });
    let started_at = Instant::now();
    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.tail.len(), APPENDS);
    println!("{name}, {workers} workers: recovered {APPENDS} records in {:?}", started_at.elapsed());
}

#[test]
#[ignore = "measurement; run by hand"]
fn concurrent_small_appends() {
    for workers in [10_000, 1_000, 100] {
        measure("fsync", workers, config);
        measure("none", workers, config_without_fsync);
    }
}

#[test]
#[ignore = "measurement; run by hand"]
fn sequential_small_appends_with_fsync() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        let started_at = Instant::now();
        for index in 0..1000 {
            log.append(record(index)).await.unwrap();
        }
        let elapsed = started_at.elapsed();
        println!("sequential: 1000 appends in {elapsed:?}, {:?} each", elapsed / 1000);
        log.close().await.unwrap();
    });
}
