//! Record ids: the 24-hex `marker` of IoTDA list pages.
//!
//! A record id is 96 bits: the creation time in unix milliseconds (48 bits) followed by a
//! 48-bit sequence. Every shard's front desk hands them out from its own generator; the ids of
//! shard k are all ≡ k modulo the shard count, so they never collide, and they increase with
//! creation time; lists show newest first by sorting on them.

use std::cell::Cell;

/// The largest id a marker can name (`ffffffffffffffffffffffff`, IoTDA's default marker).
pub const RECORD_ID_MAX: u128 = (1u128 << 96) - 1;

#[derive(Debug)]
pub struct RecordIdGenerator {
    last: Cell<u128>,
    /// Ids are ≡ `residue` modulo `modulus` (the shard and the shard count).
    residue: u128,
    modulus: u128,
}

impl Default for RecordIdGenerator {
    fn default() -> Self {
        RecordIdGenerator { last: Cell::new(0), residue: 0, modulus: 1 }
    }
}

impl RecordIdGenerator {
    /// A generator whose ids all lie above `record_id_max` (the highest id already stored).
    pub fn above(record_id_max: u128) -> Self {
        RecordIdGenerator { last: Cell::new(record_id_max), ..Default::default() }
    }

    /// The generator of shard `shard` of `shard_count`, above `record_id_max`.
    pub fn for_shard(record_id_max: u128, shard: usize, shard_count: usize) -> Self {
        RecordIdGenerator {
            last: Cell::new(record_id_max),
            residue: shard as u128,
            modulus: shard_count.max(1) as u128,
        }
    }

    /// The next id: above every id handed out before, at least `now_ms << 48`, and in this
    /// generator's residue class.
    pub fn next(&self, now_ms: i64) -> u128 {
        let time_floor = (u128::from(now_ms.max(0) as u64) & ((1 << 48) - 1)) << 48;
        let candidate = time_floor.max(self.last.get() + 1);
        let id = candidate + (self.residue + self.modulus - candidate % self.modulus) % self.modulus;
        assert!(id <= RECORD_ID_MAX, "record ids exhausted");
        self.last.set(id);
        id
    }
}

/// `marker` text for an id.
pub fn format_marker(record_id: u128) -> String {
    format!("{record_id:024x}")
}

/// Parses a 24-hex marker. `None` for anything else.
pub fn parse_marker(marker: &str) -> Option<u128> {
    if marker.len() != 24 || !marker.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(marker, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_within_and_across_milliseconds() {
        let ids = RecordIdGenerator::default();
        let a = ids.next(1_700_000_000_000);
        let b = ids.next(1_700_000_000_000);
        let c = ids.next(1_699_999_999_000); // a clock step back still moves forward
        let d = ids.next(1_700_000_000_001);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
    }

    #[test]
    fn a_generator_seeded_after_a_restart_stays_above_stored_ids() {
        let stored = RecordIdGenerator::default().next(1_800_000_000_000);
        // The clock stepped back an hour across the restart.
        let ids = RecordIdGenerator::above(stored);
        assert!(ids.next(1_799_996_400_000) > stored);
    }

    #[test]
    fn shards_never_hand_out_the_same_id() {
        let generators: Vec<_> = (0..3).map(|shard| RecordIdGenerator::for_shard(7, shard, 3)).collect();
        let mut seen = std::collections::HashSet::new();
        for round in 0..100 {
            for (shard, ids) in generators.iter().enumerate() {
                let id = ids.next(1_700_000_000_000 + round / 10);
                assert_eq!(id % 3, shard as u128);
                assert!(id > 7 && seen.insert(id), "unique: {id}");
            }
        }
    }

    #[test]
    fn markers_round_trip_and_reject_garbage() {
        assert_eq!(format_marker(RECORD_ID_MAX), "ffffffffffffffffffffffff");
        assert_eq!(parse_marker("ffffffffffffffffffffffff"), Some(RECORD_ID_MAX));
        assert_eq!(parse_marker(&format_marker(12345)), Some(12345));
        assert_eq!(parse_marker("fff"), None);
        assert_eq!(parse_marker("gggggggggggggggggggggggg"), None);
    }
}
