//! The flusher task: one per log, the only writer of segment files.
//!
//! It sleeps until a batch is due (full, `flush_interval_us` old, sealed by a compaction,
//! or the log closing), writes it at the end of the segment, fdatasyncs, and completes the
//! batch, which wakes every append in it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::record::{self, ALIGNMENT_BYTES};
use super::segment::{self, SegmentFile};
use super::writer::{Batch, Phase, Shared, BATCH_RECORDS_MAX};
use super::{Durability, LogError};

/// Runs until the log closes (or fails), then completes `shared.flusher_done`.
pub(crate) async fn run(shared: Rc<Shared>, mut segment: SegmentFile) {
    let flushed = flush_until_closed(&shared, &mut segment).await;
    let closed = segment.close().await;
    let outcome = flushed.and(closed);
    if let Err(error) = &outcome {
        let mut state = shared.state.borrow_mut();
        let failed = state.failure.get_or_insert_with(|| error.clone().into_failed()).clone();
        state.fail_pending(&failed);
    }
    shared.flusher_done.complete(outcome);
}

/// One iteration per batch; this is the log's event loop, so it ends only at close or on
/// the first I/O error.
async fn flush_until_closed(shared: &Shared, segment: &mut SegmentFile) -> Result<(), LogError> {
    loop {
        let Some(mut batch) = next_batch(shared).await else {
            return Ok(());
        };
        match flush_batch(shared, segment, &mut batch).await {
            Ok(()) => batch.completion.complete(Ok(())),
            Err(error) => {
                tracing::error!(%error, "shard log write failed; the log accepts no more appends");
                {
                    let mut state = shared.state.borrow_mut();
                    let failed = error.clone().into_failed();
                    state.failure = Some(failed.clone());
                    state.fail_pending(&failed);
                }
                batch.completion.complete(Err(error.clone()));
                return Err(error);
            }
        }
    }
}

/// Waits for the next batch that is due; `None` once the log is closing and drained.
async fn next_batch(shared: &Shared) -> Option<Batch> {
    let flush_interval = Duration::from_micros(shared.config.flush_interval_us);
    loop {
        let deadline = {
            let mut state = shared.state.borrow_mut();
            if let Some(batch) = state.sealed.pop_front() {
                return Some(batch);
            }
            let closing = state.phase == Phase::Closing;
            if state.open.record_count == 0 {
                if closing {
                    return None;
                }
                None
            } else {
                let first_at = state.open.first_at.expect("a batch with records has a start");
                let deadline = first_at + flush_interval;
                let full = state.open.bytes.len() >= shared.config.batch_bytes_max
                    || state.open.record_count >= BATCH_RECORDS_MAX;
                if closing || full || Instant::now() >= deadline {
                    return Some(state.take_open());
                }
                Some(deadline)
            }
        };
        match deadline {
            None => shared.flusher_wake.notified().await,
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
                futures_lite::future::or(shared.flusher_wake.notified(), glommio::timer::sleep(wait)).await;
            }
        }
    }
}

/// Writes one batch at the end of its segment (starting that segment first when the batch
/// belongs to the next one) and makes it durable.
async fn flush_batch(shared: &Shared, segment: &mut SegmentFile, batch: &mut Batch) -> Result<(), LogError> {
    if batch.segment_seq != segment.seq {
        assert_eq!(batch.segment_seq, segment.seq + 1, "segments advance one at a time");
        rotate(shared, segment, batch.segment_seq).await?;
    }
    if batch.record_count == 0 {
        assert!(batch.bytes.is_empty());
        return Ok(());
    }
    let bytes = std::mem::take(&mut batch.bytes);
    record::assert_records_valid(&bytes);
    assert_eq!(segment.length_bytes % ALIGNMENT_BYTES as u64, 0);
    let written_bytes =
        segment::write_all_at(&segment.file, &segment.path, bytes, segment.length_bytes).await?;
    segment.length_bytes += written_bytes;
    let fsync_latency = match shared.config.durability {
        Durability::Fsync => {
            let started_at = Instant::now();
            segment.fdatasync().await?;
            Some(started_at.elapsed())
        }
        Durability::None => None,
    };
    let mut state = shared.state.borrow_mut();
    let stats = &mut state.stats;
    stats.written_bytes += written_bytes;
    stats.segment_bytes = segment.length_bytes;
    stats.batch_count += 1;
    if let Some(latency) = fsync_latency {
        stats.fsync_count += 1;
        stats.fsync_latency_us_last = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        stats.fsync_latency_us_total =
            stats.fsync_latency_us_total.saturating_add(stats.fsync_latency_us_last);
    }
    Ok(())
}

/// Closes the current segment durably and creates segment `seq`. The old segment is
/// fdatasynced even under `Durability::None`, so only the last segment can ever be torn.
async fn rotate(shared: &Shared, segment: &mut SegmentFile, seq: u64) -> Result<(), LogError> {
    segment.fdatasync().await?;
    let next = SegmentFile::create(&shared.config.dir, seq).await?;
    let previous = std::mem::replace(segment, next);
    previous.close().await?;
    shared.state.borrow_mut().stats.segment_bytes = 0;
    tracing::debug!(segment_seq = seq, "started a new shard log segment");
    Ok(())
}
