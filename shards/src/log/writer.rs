//! The writer: `ShardLog` and the state it shares with its flusher task.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::record::{self, KIND_RESERVED_MIN, RECORD_BYTES_MAX};
use super::segment::SegmentFile;
use super::signal::{Completion, Notify};
use super::{flusher, LogConfig, LogError, LogRecord, LogStats, Recovered};

/// Records one batch may hold: bounds the waiters one fdatasync wakes.
pub(crate) const BATCH_RECORDS_MAX: usize = 16 * 1024;
/// The open batch may grow to this many times `batch_bytes_max` before appends wait for a
/// flush (room for the batch being written plus the ones filling meanwhile).
pub(crate) const BUFFERED_BATCHES_MAX: usize = 4;
/// Batches sealed ahead of the open one: the batch a compaction cut off and its rotation
/// marker, twice over if a compaction was abandoned half-way.
pub(crate) const SEALED_BATCHES_MAX: usize = 4;
/// How many flushes an append waits through for buffer space before it gives up.
const APPEND_WAITS_MAX: usize = 64;

/// Records that share one write and one fdatasync, all bound for one segment.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) segment_seq: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) record_count: usize,
    pub(crate) first_at: Option<Instant>,
    pub(crate) completion: Rc<Completion>,
}

impl Batch {
    pub(crate) fn new(segment_seq: u64) -> Batch {
        Batch {
            segment_seq,
            bytes: Vec::new(),
            record_count: 0,
            first_at: None,
            completion: Completion::new(),
        }
    }
}

/// Whether the log still takes appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Open,
    /// `close` was called or the log dropped: the flusher drains what is buffered and stops.
    Closing,
}

/// What `State::push` did with a record.
#[derive(Debug)]
enum Push {
    /// Buffered; the completion resolves when its batch is durable.
    Accepted { completion: Rc<Completion>, wake_flusher: bool },
    /// The open batch is full; wait for this completion and try again.
    Full { completion: Rc<Completion> },
}

#[derive(Debug)]
pub(crate) struct State {
    /// The batch new records go into.
    pub(crate) open: Batch,
    /// Batches to flush before `open`, oldest first.
    pub(crate) sealed: VecDeque<Batch>,
    pub(crate) phase: Phase,
    /// Set when a write or fdatasync failed; handed to every later append.
    pub(crate) failure: Option<LogError>,
    pub(crate) compacting: bool,
    /// Bytes appended since the newest snapshot began.
    pub(crate) log_bytes: u64,
    pub(crate) stats: LogStats,
}

impl State {
    pub(crate) fn check_accepting(&self) -> Result<(), LogError> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        match self.phase {
            Phase::Open => Ok(()),
            Phase::Closing => Err(LogError::Closed),
        }
    }

    fn push(&mut self, record: &LogRecord, config: &LogConfig) -> Result<Push, LogError> {
        self.check_accepting()?;
        let framed_bytes = record::framed_bytes(record.body.len());
        let buffered_bytes_max = config.batch_bytes_max.saturating_mul(BUFFERED_BATCHES_MAX);
        let open = &mut self.open;
        if open.record_count > 0
            && (open.bytes.len() + framed_bytes > buffered_bytes_max
                || open.record_count >= BATCH_RECORDS_MAX)
        {
            return Ok(Push::Full { completion: Rc::clone(&open.completion) });
        }
        let bytes_before = open.bytes.len();
        let added_bytes = record::encode_into(&mut open.bytes, record.kind, record.version, &record.body);
        assert_eq!(added_bytes, framed_bytes);
        open.record_count += 1;
        let first_record = open.first_at.is_none();
        if first_record {
            open.first_at = Some(Instant::now());
        }
        let crossed_batch_bytes =
            bytes_before < config.batch_bytes_max && open.bytes.len() >= config.batch_bytes_max;
        let open_full_by_count = open.record_count == BATCH_RECORDS_MAX;
        self.log_bytes += framed_bytes as u64;
        self.stats.appended_count += 1;
        Ok(Push::Accepted {
            completion: Rc::clone(&self.open.completion),
            wake_flusher: first_record || crossed_batch_bytes || open_full_by_count,
        })
    }

    /// Hands the open batch to the flusher and starts an empty one for the same segment.
    pub(crate) fn take_open(&mut self) -> Batch {
        let segment_seq = self.open.segment_seq;
        std::mem::replace(&mut self.open, Batch::new(segment_seq))
    }

    /// Starts segment `open.segment_seq + 1` for every record appended from now on: seals the
    /// open batch, queues an empty rotation batch for the new segment and returns the new
    /// seq with the rotation's completion (resolved once everything before it is durable
    /// and the new segment exists).
    pub(crate) fn begin_rotation(&mut self) -> Result<(u64, Rc<Completion>), LogError> {
        self.check_accepting()?;
        if self.compacting || self.sealed.len() + 2 > SEALED_BATCHES_MAX {
            return Err(LogError::CompactionRunning);
        }
        let segment_seq_new = self.open.segment_seq + 1;
        let cut = std::mem::replace(&mut self.open, Batch::new(segment_seq_new));
        if cut.record_count > 0 {
            self.sealed.push_back(cut);
        } else {
            // No record, so no waiter: nothing to flush.
            cut.completion.complete(Ok(()));
        }
        let rotation = Batch::new(segment_seq_new);
        let rotated = Rc::clone(&rotation.completion);
        self.sealed.push_back(rotation);
        assert!(self.sealed.len() <= SEALED_BATCHES_MAX);
        Ok((segment_seq_new, rotated))
    }

    /// Fails every buffered batch with `error` (the log is ending).
    pub(crate) fn fail_pending(&mut self, error: &LogError) {
        for batch in self.sealed.drain(..) {
            batch.completion.complete(Err(error.clone()));
        }
        let segment_seq = self.open.segment_seq;
        let open = std::mem::replace(&mut self.open, Batch::new(segment_seq));
        open.completion.complete(Err(error.clone()));
    }
}

/// What `ShardLog` and its flusher share (one executor, so `Rc` and `RefCell`).
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: LogConfig,
    pub(crate) state: RefCell<State>,
    pub(crate) flusher_wake: Notify,
    /// Resolves when the flusher has stopped: `Ok` after a clean close, or the I/O error
    /// that ended the log.
    pub(crate) flusher_done: Rc<Completion>,
}

/// The append-only log of one shard. `!Send`: create it inside the shard's executor and
/// share it as `Rc<ShardLog>`.
#[derive(Debug)]
pub struct ShardLog {
    pub(crate) shared: Rc<Shared>,
}

pub(crate) fn check_record(record: &LogRecord) -> Result<(), LogError> {
    if record.body.len() > RECORD_BYTES_MAX {
        return Err(LogError::too_large(record.body.len()));
    }
    if record.kind >= KIND_RESERVED_MIN {
        return Err(LogError::ReservedKind { kind: record.kind });
    }
    Ok(())
}

impl ShardLog {
    /// Opens (or creates) the segment recovery ended on, for append, and spawns the flusher
    /// task on the current glommio executor. `config.dir` must be the directory `recovered`
    /// came from. Open each directory once: two writers would interleave their records.
    pub async fn open(config: LogConfig, recovered: &Recovered) -> Result<Rc<ShardLog>, LogError> {
        config.validate()?;
        if config.dir != recovered.dir {
            return Err(LogError::InvalidConfig {
                reason: format!(
                    "dir {} is not the recovered directory {}",
                    config.dir.display(),
                    recovered.dir.display()
                ),
            });
        }
        let segment =
            SegmentFile::open(&config.dir, recovered.segment_seq, recovered.segment_length_bytes).await?;
        let stats = LogStats { segment_bytes: segment.length_bytes, ..LogStats::default() };
        let state = State {
            open: Batch::new(segment.seq),
            sealed: VecDeque::with_capacity(SEALED_BATCHES_MAX),
            phase: Phase::Open,
            failure: None,
            compacting: false,
            log_bytes: recovered.log_bytes,
            stats,
        };
        let shared = Rc::new(Shared {
            config,
            state: RefCell::new(state),
            flusher_wake: Notify::default(),
            flusher_done: Completion::new(),
        });
        glommio::spawn_local(flusher::run(Rc::clone(&shared), segment)).detach();
        Ok(Rc::new(ShardLog { shared }))
    }

    /// Appends `record` and resolves once it is durable: written and, with
    /// `Durability::Fsync`, fdatasynced. Concurrent appends share one write and one
    /// fdatasync. Dropping the future does not withdraw a record already buffered.
    pub async fn append(&self, record: LogRecord) -> Result<(), LogError> {
        check_record(&record)?;
        for _ in 0..APPEND_WAITS_MAX {
            let push = self.shared.state.borrow_mut().push(&record, &self.shared.config)?;
            match push {
                Push::Accepted { completion, wake_flusher } => {
                    if wake_flusher {
                        self.shared.flusher_wake.notify();
                    }
                    return completion.wait().await;
                }
                Push::Full { completion } => {
                    self.shared.flusher_wake.notify();
                    // Its outcome is not ours; the next push sees a failure if there was one.
                    let _ = completion.wait().await;
                }
            }
        }
        Err(LogError::Overloaded { waits: APPEND_WAITS_MAX })
    }

    /// True once the records appended since the newest snapshot pass `compaction_bytes`.
    pub fn needs_compaction(&self) -> bool {
        self.shared.state.borrow().log_bytes >= self.shared.config.compaction_bytes
    }

    /// Flushes everything buffered, stops the flusher and closes the segment. Later appends
    /// return [`LogError::Closed`]. Returns the I/O error that ended the log, if one did.
    pub async fn close(&self) -> Result<(), LogError> {
        self.request_close();
        self.shared.flusher_done.wait().await
    }

    fn request_close(&self) {
        self.shared.state.borrow_mut().phase = Phase::Closing;
        self.shared.flusher_wake.notify();
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> LogStats {
        let state = self.shared.state.borrow();
        LogStats { log_bytes: state.log_bytes, ..state.stats }
    }
}

impl Drop for ShardLog {
    /// The flusher holds its own reference to the shared state: ask it to drain and stop
    /// rather than leave it waiting forever.
    fn drop(&mut self) {
        if !self.shared.flusher_done.is_complete() {
            self.request_close();
        }
    }
}
