//! A failed write reaches the appends of its batch, and the log takes nothing after it
//! (fsyncgate: a retry could report success for data the kernel already dropped).

use std::os::unix::fs::symlink;
use std::rc::Rc;

use super::{config, record, run_local, segment_path, shard_dir};
use crate::log::{recover, LogError, ShardLog};

#[test]
fn a_failed_write_fails_its_batch_and_every_later_append() {
    let shard = shard_dir();
    let dir = shard.path.clone();
    run_local(move || async move {
        let recovered = recover(&dir).unwrap();
        // Every write to /dev/full fails with ENOSPC.
        symlink("/dev/full", segment_path(&dir, 0)).unwrap();
        let log = ShardLog::open(config(&dir), &recovered).await.unwrap();
        let tasks: Vec<_> = (0..5)
            .map(|index| {
                let log = Rc::clone(&log);
                glommio::spawn_local(async move { log.append(record(index)).await })
            })
            .collect();
        for task in tasks {
            let error = task.await.unwrap_err();
            assert!(matches!(error, LogError::Io { .. }), "{error:?}");
            assert!(error.to_string().contains("segment-00000000000000000000.log"), "{error}");
        }
        let later = log.append(record(5)).await.unwrap_err();
        assert!(matches!(later, LogError::Failed { .. }), "{later:?}");
        assert!(later.to_string().contains("refuses appends"), "{later}");
        assert!(matches!(log.compact(Vec::new()).await, Err(LogError::Failed { .. })));
        assert!(log.close().await.is_err());
    });
}
