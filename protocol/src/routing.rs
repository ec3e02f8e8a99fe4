//! Which shard owns a device.
//!
//! `stable_hash` is 64-bit FNV-1a over the UTF-8 bytes of the device id:
//! offset basis `0xcbf29ce484222325`, prime `0x100000001b3`, for each byte `h ^= b; h *= p`
//! (wrapping). It is written down here, not taken from `std::hash`, because std's hashers may
//! change between Rust versions and the per-shard logs depend on the result never changing.
//! `home_shard = stable_hash(device_id) % shard_count`.

/// The index of a shard, `0..shard_count`.
pub type ShardId = usize;

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// 64-bit FNV-1a of the device id. Stable across restarts, platforms and versions.
pub fn stable_hash(device_id: &str) -> u64 {
    device_id.bytes().fold(FNV_OFFSET_BASIS, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(FNV_PRIME))
}

/// The shard that owns everything about `device_id`.
pub fn home_shard(device_id: &str, shard_count: usize) -> ShardId {
    assert!(shard_count > 0, "shard_count must be positive");
    (stable_hash(device_id) % shard_count as u64) as ShardId
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed vectors: if one of these changes, every existing data directory misroutes.
    #[test]
    fn stable_hash_fixed_vectors() {
        // Published FNV-1a 64 vectors.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
        // Device ids as IoTDA builds them (`{product_id}_{node_id}`).
        assert_eq!(stable_hash("prod1_node1"), stable_hash("prod1_node1"));
        assert_eq!(home_shard("a", 2), (0xaf63_dc4c_8601_ec8cu64 % 2) as usize);
        assert_eq!(home_shard("foobar", 3), (0x8594_4171_f739_67e8u64 % 3) as usize);
    }

    #[test]
    fn home_shard_spreads_devices() {
        let mut counts = [0usize; 4];
        for n in 0..4000 {
            counts[home_shard(&format!("product_{n}"), 4)] += 1;
        }
        for count in counts {
            assert!((800..1200).contains(&count), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn one_shard_owns_everything() {
        assert_eq!(home_shard("anything", 1), 0);
    }
}
