//! Compaction: replace the segments written so far by a snapshot of the state.

use std::path::Path;

use super::writer::{check_record, ShardLog, Shared};
use super::{files, segment, snapshot, LogError, LogRecord};

/// Clears the `compacting` flag however the compaction ends, including when its future is
/// dropped half-way, and gives back the byte count if it did not finish.
#[derive(Debug)]
struct CompactionGuard<'a> {
    shared: &'a Shared,
    log_bytes_before: u64,
    finished: bool,
}

impl Drop for CompactionGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.state.borrow_mut();
        state.compacting = false;
        if !self.finished {
            state.log_bytes += self.log_bytes_before;
        }
    }
}

impl ShardLog {
    /// Replaces everything appended so far by `snapshot`, the caller's full current state.
    ///
    /// The cut happens when this future is first polled: records appended before it belong
    /// to the old segments (and must be reflected in `snapshot`), records appended after it
    /// go to a new segment `N` and are replayed on top of the snapshot. So build the
    /// snapshot and await `compact` in the same step, with no await in between. Steps:
    /// seal the buffered batch and start segment `N` (the flusher makes everything before
    /// it durable first), write `snapshot-N` durably, then delete older segments and
    /// snapshots. A crash at any step recovers the same state.
    pub async fn compact(&self, snapshot: Vec<LogRecord>) -> Result<(), LogError> {
        for record in &snapshot {
            check_record(record)?;
        }
        let (seq, rotated, log_bytes_before) = {
            let mut state = self.shared.state.borrow_mut();
            let (seq, rotated) = state.begin_rotation()?;
            state.compacting = true;
            (seq, rotated, std::mem::replace(&mut state.log_bytes, 0))
        };
        let mut guard = CompactionGuard { shared: &self.shared, log_bytes_before, finished: false };
        self.shared.flusher_wake.notify();
        rotated.wait().await?;
        let dir = &self.shared.config.dir;
        snapshot::write(dir, seq, &snapshot).await?;
        guard.finished = true;
        remove_older(dir, seq).await?;
        tracing::info!(
            dir = %dir.display(),
            snapshot_seq = seq,
            snapshot_records = snapshot.len(),
            "compacted the shard log"
        );
        Ok(())
    }
}

/// Removes the segments and snapshots that snapshot `seq` covers. The snapshot is durable
/// already, so a crash half-way only leaves files that recovery removes.
async fn remove_older(dir: &Path, seq: u64) -> Result<(), LogError> {
    // A short blocking read_dir: glommio 0.9 has no asynchronous directory listing.
    let listing = files::list(dir)?;
    let segments =
        listing.segments.iter().filter(|&&older| older < seq).map(|&older| files::segment_path(dir, older));
    let snapshots =
        listing.snapshots.iter().filter(|&&older| older < seq).map(|&older| files::snapshot_path(dir, older));
    for path in segments.chain(snapshots) {
        glommio::io::remove(&path).await.map_err(|source| LogError::glommio(&path, source))?;
    }
    segment::sync_dir(dir).await
}
