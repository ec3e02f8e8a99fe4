//! A record the crash cut short at the end of the log is dropped, the file is cut back to
//! the last good record, and appends continue after it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::{config, framed, framed_bytes, record, records, run_local, segment_path, shard_dir};
use crate::log::{recover, LogRecord, ShardLog};

/// Writes `written` through the log and closes it.
fn append_and_close(dir: &Path, written: Vec<LogRecord>) {
    let dir = dir.to_path_buf();
    run_local(move || async move {
        let log = ShardLog::open(config(&dir), &recover(&dir).unwrap()).await.unwrap();
        for log_record in written {
            log.append(log_record).await.unwrap();
        }
        log.close().await.unwrap();
    });
}

fn good_length_bytes(written: &[LogRecord]) -> u64 {
    written.iter().map(framed_bytes).sum::<usize>() as u64
}

#[test]
fn truncated_last_record_is_cut_and_appends_continue() {
    let shard = shard_dir();
    append_and_close(&shard.path, records(0..3));
    let segment = segment_path(&shard.path, 0);
    let length_bytes = fs::metadata(&segment).unwrap().len();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(length_bytes - 5).unwrap();

    let recovered = recover(&shard.path).unwrap();
    assert_eq!(recovered.tail, records(0..2));
    assert_eq!(fs::metadata(&segment).unwrap().len(), good_length_bytes(&records(0..2)));

    append_and_close(&shard.path, vec![record(3)]);
    let expected = vec![record(0), record(1), record(3)];
    assert_eq!(recover(&shard.path).unwrap().tail, expected);
}

#[test]
fn half_a_header_of_garbage_at_the_end_is_cut() {
    let shard = shard_dir();
    append_and_close(&shard.path, records(0..3));
    let segment = segment_path(&shard.path, 0);
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0xAB; 7]).unwrap();

    assert_eq!(recover(&shard.path).unwrap().tail, records(0..3));
    assert_eq!(fs::metadata(&segment).unwrap().len(), good_length_bytes(&records(0..3)));
}

#[test]
fn checksum_mismatch_in_the_last_record_is_cut() {
    let shard = shard_dir();
    append_and_close(&shard.path, records(0..3));
    let segment = segment_path(&shard.path, 0);
    let mut bytes = fs::read(&segment).unwrap();
    let last_body_at = good_length_bytes(&records(0..2)) as usize + 16;
    bytes[last_body_at] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    assert_eq!(recover(&shard.path).unwrap().tail, records(0..2));
}

#[test]
fn zeroes_after_the_last_record_are_cut() {
    // A crash can leave the file longer than what reached the disk, filled with zeroes.
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    let mut bytes = framed(&records(0..2));
    bytes.extend_from_slice(&[0u8; 4096]);
    fs::write(segment_path(&shard.path, 0), &bytes).unwrap();

    assert_eq!(recover(&shard.path).unwrap().tail, records(0..2));
}
