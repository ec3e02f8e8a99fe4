//! Record framing: encode a record into a buffer, decode one from a byte slice.
//!
//! Pure functions over byte slices; no I/O. The layout is described in the parent module.

use std::fmt;

/// Bytes in a record header.
pub(crate) const HEADER_BYTES: usize = 16;
/// Every record starts at a multiple of this many bytes.
pub(crate) const ALIGNMENT_BYTES: usize = 16;
/// Largest body a record may carry.
pub const RECORD_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Kinds from here up belong to the log itself; callers may not append them.
pub const KIND_RESERVED_MIN: u16 = 0xFF00;
/// The last record of a complete snapshot file.
pub(crate) const KIND_SNAPSHOT_FOOTER: u16 = 0xFFFF;
/// "RLOG" read as a little-endian `u32`: marks a record header.
const RECORD_MAGIC: u32 = u32::from_le_bytes(*b"RLOG");

/// The 16-byte header in front of every body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    length_bytes: u32,
    crc32c: u32,
    kind: u16,
    version: u16,
    magic: u32,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_BYTES] {
        let mut bytes = [0u8; HEADER_BYTES];
        bytes[0..4].copy_from_slice(&self.length_bytes.to_le_bytes());
        bytes[4..8].copy_from_slice(&self.crc32c.to_le_bytes());
        bytes[8..10].copy_from_slice(&self.kind.to_le_bytes());
        bytes[10..12].copy_from_slice(&self.version.to_le_bytes());
        bytes[12..16].copy_from_slice(&self.magic.to_le_bytes());
        bytes
    }

    fn decode(bytes: &[u8; HEADER_BYTES]) -> Header {
        let u32_at = |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let u16_at = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        Header {
            length_bytes: u32_at(0),
            crc32c: u32_at(4),
            kind: u16_at(8),
            version: u16_at(10),
            magic: u32_at(12),
        }
    }
}

/// Checksum over kind, version (little-endian) and body.
pub(crate) fn checksum(kind: u16, version: u16, body: &[u8]) -> u32 {
    let mut prefix = [0u8; 4];
    prefix[0..2].copy_from_slice(&kind.to_le_bytes());
    prefix[2..4].copy_from_slice(&version.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&prefix), body)
}

/// Bytes a record with a body of `body_bytes` takes on disk: header, body, padding.
pub(crate) fn framed_bytes(body_bytes: usize) -> usize {
    (HEADER_BYTES + body_bytes).next_multiple_of(ALIGNMENT_BYTES)
}

/// Appends one framed record to `buffer` (which must hold whole records) and returns the
/// number of bytes added. Panics if `body` is over [`RECORD_BYTES_MAX`] or `buffer`'s length
/// is not a multiple of 16 (callers' bugs, not input).
pub fn encode_into(buffer: &mut Vec<u8>, kind: u16, version: u16, body: &[u8]) -> usize {
    assert!(body.len() <= RECORD_BYTES_MAX);
    assert_eq!(buffer.len() % ALIGNMENT_BYTES, 0);
    let start = buffer.len();
    let header = Header {
        length_bytes: u32::try_from(body.len()).expect("bounded by RECORD_BYTES_MAX"),
        crc32c: checksum(kind, version, body),
        kind,
        version,
        magic: RECORD_MAGIC,
    };
    buffer.extend_from_slice(&header.encode());
    buffer.extend_from_slice(body);
    buffer.resize(start + framed_bytes(body.len()), 0);
    assert_eq!(buffer.len() % ALIGNMENT_BYTES, 0);
    buffer.len() - start
}

/// Asserts that `bytes` is a run of whole, valid records: called on a batch right before it
/// is written, so a bug that damaged the buffer never reaches the disk.
pub(crate) fn assert_records_valid(bytes: &[u8]) {
    assert_eq!(bytes.len() % ALIGNMENT_BYTES, 0);
    let mut offset = 0;
    // Each record takes at least HEADER_BYTES, which bounds the loop.
    for _ in 0..=bytes.len() / HEADER_BYTES {
        match decode_at(bytes, offset) {
            Decoded::End => return,
            Decoded::Record(record) => offset += record.framed_bytes,
            Decoded::Bad(bad) => panic!("batch record at byte {offset} {bad} before writing"),
        }
    }
    unreachable!("more records than the buffer can hold");
}

/// A record read in place from a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    pub(crate) kind: u16,
    pub(crate) version: u16,
    pub(crate) body: &'a [u8],
    /// Header, body and padding: where the next record starts, relative to this one.
    pub(crate) framed_bytes: usize,
}

/// What sits at an offset of a segment or snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decoded<'a> {
    /// A whole record whose checksum matches.
    Record(RecordView<'a>),
    /// The offset is exactly the end of the bytes.
    End,
    /// Something that is not a valid record.
    Bad(BadRecord),
}

/// Why the bytes at an offset are not a valid record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRecord {
    ShortHeader { available_bytes: usize },
    BadMagic,
    TooLarge { length_bytes: u32 },
    ShortBody { length_bytes: u32, available_bytes: usize },
    ChecksumMismatch,
    PaddingNotZero,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadRecord::ShortHeader { available_bytes } => {
                write!(f, "has a short header ({available_bytes} of {HEADER_BYTES} bytes)")
            }
            BadRecord::BadMagic => write!(f, "has no record header (bad magic)"),
            BadRecord::TooLarge { length_bytes } => {
                write!(f, "claims a {length_bytes}-byte body, over the {RECORD_BYTES_MAX}-byte limit")
            }
            BadRecord::ShortBody { length_bytes, available_bytes } => write!(
                f,
                "is cut short ({available_bytes} bytes left for a {length_bytes}-byte body and its padding)"
            ),
            BadRecord::ChecksumMismatch => write!(f, "fails its checksum"),
            BadRecord::PaddingNotZero => write!(f, "has non-zero padding"),
        }
    }
}

/// Decodes the record at `offset`, verifying its checksum.
pub(crate) fn decode_at(bytes: &[u8], offset: usize) -> Decoded<'_> {
    assert_eq!(offset % ALIGNMENT_BYTES, 0);
    assert!(offset <= bytes.len());
    let rest = &bytes[offset..];
    if rest.is_empty() {
        return Decoded::End;
    }
    let Some(header_bytes) = rest.first_chunk::<HEADER_BYTES>() else {
        return Decoded::Bad(BadRecord::ShortHeader { available_bytes: rest.len() });
    };
    let header = Header::decode(header_bytes);
    if header.magic != RECORD_MAGIC {
        return Decoded::Bad(BadRecord::BadMagic);
    }
    let body_bytes = header.length_bytes as usize;
    if body_bytes > RECORD_BYTES_MAX {
        return Decoded::Bad(BadRecord::TooLarge { length_bytes: header.length_bytes });
    }
    let framed = framed_bytes(body_bytes);
    if rest.len() < framed {
        return Decoded::Bad(BadRecord::ShortBody {
            length_bytes: header.length_bytes,
            available_bytes: rest.len() - HEADER_BYTES,
        });
    }
    let body = &rest[HEADER_BYTES..HEADER_BYTES + body_bytes];
    if checksum(header.kind, header.version, body) != header.crc32c {
        return Decoded::Bad(BadRecord::ChecksumMismatch);
    }
    if rest[HEADER_BYTES + body_bytes..framed].iter().any(|&byte| byte != 0) {
        return Decoded::Bad(BadRecord::PaddingNotZero);
    }
    Decoded::Record(RecordView { kind: header.kind, version: header.version, body, framed_bytes: framed })
}

/// The offset of the first valid record after the bad one at `bad_offset`, if any.
///
/// Records are aligned, so probing every aligned offset finds any record that survived.
pub(crate) fn next_valid_record_after(bytes: &[u8], bad_offset: usize) -> Option<usize> {
    assert_eq!(bad_offset % ALIGNMENT_BYTES, 0);
    (bad_offset + ALIGNMENT_BYTES..bytes.len())
        .step_by(ALIGNMENT_BYTES)
        .find(|&offset| matches!(decode_at(bytes, offset), Decoded::Record(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(records: &[(u16, u16, &[u8])]) -> Vec<u8> {
        let mut buffer = Vec::new();
        for (kind, version, body) in records {
            encode_into(&mut buffer, *kind, *version, body);
        }
        buffer
    }

    #[test]
    fn round_trips_and_pads_to_sixteen_bytes() {
        let bytes = encoded(&[(1, 2, b"hello"), (3, 4, b""), (5, 6, &[7u8; 16])]);
        assert_eq!(bytes.len(), 32 + 16 + 32);
        let mut offset = 0;
        let mut seen = Vec::new();
        while let Decoded::Record(record) = decode_at(&bytes, offset) {
            seen.push((record.kind, record.version, record.body.to_vec()));
            offset += record.framed_bytes;
        }
        assert_eq!(decode_at(&bytes, offset), Decoded::End);
        assert_eq!(seen[0], (1, 2, b"hello".to_vec()));
        assert_eq!(seen[1], (3, 4, Vec::new()));
        assert_eq!(seen[2], (5, 6, vec![7u8; 16]));
        assert_records_valid(&bytes);
    }

    #[test]
    fn header_is_little_endian_with_magic() {
        let bytes = encoded(&[(0x0102, 0x0304, b"ab")]);
        assert_eq!(&bytes[0..4], &[2, 0, 0, 0]);
        assert_eq!(&bytes[8..12], &[0x02, 0x01, 0x04, 0x03]);
        assert_eq!(&bytes[12..16], b"RLOG");
        assert_eq!(&bytes[4..8], &checksum(0x0102, 0x0304, b"ab").to_le_bytes());
    }

    #[test]
    fn detects_damage() {
        let bytes = encoded(&[(1, 1, b"payload")]);
        let mut flipped = bytes.clone();
        flipped[HEADER_BYTES] ^= 1;
        assert_eq!(decode_at(&flipped, 0), Decoded::Bad(BadRecord::ChecksumMismatch));
        let mut version_changed = bytes.clone();
        version_changed[10] ^= 1;
        assert_eq!(decode_at(&version_changed, 0), Decoded::Bad(BadRecord::ChecksumMismatch));
        assert!(matches!(
            decode_at(&bytes[..10], 0),
            Decoded::Bad(BadRecord::ShortHeader { available_bytes: 10 })
        ));
        assert!(matches!(decode_at(&bytes[..20], 0), Decoded::Bad(BadRecord::ShortBody { .. })));
        let mut padding = bytes.clone();
        padding[31] = 1;
        assert_eq!(decode_at(&padding, 0), Decoded::Bad(BadRecord::PaddingNotZero));
        assert_eq!(decode_at(&[0u8; 32], 0), Decoded::Bad(BadRecord::BadMagic));
    }

    #[test]
    fn finds_a_valid_record_after_a_bad_one() {
        let mut bytes = encoded(&[(1, 1, b"first"), (2, 1, b"second")]);
        bytes[HEADER_BYTES] ^= 1;
        assert_eq!(next_valid_record_after(&bytes, 0), Some(32));
        assert_eq!(next_valid_record_after(&bytes[..32], 0), None);
    }
}
