//! Damage that is not a torn tail stops the start with an error an operator can act on.

use std::fs;

use super::{framed, records, segment_path, shard_dir};
use crate::log::{recover, LogError};

#[test]
fn flipped_byte_in_the_first_of_three_records_refuses_to_start() {
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    let segment = segment_path(&shard.path, 0);
    let mut bytes = framed(&records(0..3));
    bytes[20] ^= 0x40;
    fs::write(&segment, &bytes).unwrap();

    let error = recover(&shard.path).unwrap_err();
    let LogError::Corrupt { path, offset_bytes, .. } = &error else {
        panic!("expected Corrupt, got {error:?}");
    };
    assert_eq!(path, &segment);
    assert_eq!(*offset_bytes, 0);
    let message = error.to_string();
    assert!(message.contains("shard-1/segment-00000000000000000000.log"), "{message}");
    assert!(message.contains("record at byte 0 fails its checksum"), "{message}");
    assert!(message.contains("damaged in the middle"), "{message}");
    assert!(message.contains("refusing to start"), "{message}");
    assert!(message.contains("Restore from backup"), "{message}");
    // Nothing was cut: the operator still has the evidence.
    assert_eq!(fs::read(&segment).unwrap(), bytes);
}

#[test]
fn damaged_segment_before_the_last_refuses_to_start() {
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    let first = framed(&records(0..2));
    fs::write(segment_path(&shard.path, 0), &first[..first.len() - 3]).unwrap();
    fs::write(segment_path(&shard.path, 1), framed(&records(2..4))).unwrap();

    let error = recover(&shard.path).unwrap_err();
    assert!(
        matches!(&error, LogError::Corrupt { path, .. } if path == &segment_path(&shard.path, 0)),
        "{error:?}"
    );
    assert!(error.to_string().contains("a segment before the last"), "{error}");
}

#[test]
fn missing_segment_refuses_to_start() {
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    fs::write(segment_path(&shard.path, 0), framed(&records(0..2))).unwrap();
    fs::write(segment_path(&shard.path, 2), framed(&records(2..4))).unwrap();

    let error = recover(&shard.path).unwrap_err();
    assert!(error.to_string().contains("segment 1 is missing"), "{error}");
}

#[test]
fn segments_without_the_snapshot_that_covers_them_refuse_to_start() {
    let shard = shard_dir();
    fs::create_dir_all(&shard.path).unwrap();
    fs::write(segment_path(&shard.path, 3), framed(&records(0..2))).unwrap();

    let error = recover(&shard.path).unwrap_err();
    assert!(error.to_string().contains("no complete snapshot covers"), "{error}");
}
