//! The shard hash: which shard of a hash-distributed table owns a key.
//!
//! A distributed table's rows are split by the hash of their shard key into
//! `n` shards, each owning one contiguous range of the signed 64-bit hash
//! space (DESIGN.md §6), so a split halves a range:
//!
//! ```text
//!   key 7 (integer)  ─ xxHash64(7i64 little-endian), sign bit flipped ─▶  hash -1 845 …  ─▶  shard 2 of 4
//!   i64::MIN ┃ shard 1 ┃ shard 2 ┃ shard 3 ┃ shard 4 ┃ i64::MAX
//! ```
//!
//! The hash is xxHash64 (seed 0) of the key's canonical bytes: an integer of
//! any width as its `i64` in little-endian order, text as its UTF-8 bytes.
//! Flipping the sign bit maps the unsigned hash onto `i64` in the same order,
//! so ranges stay contiguous in SQL's signed `bigint`. The values are part of
//! the on-disk format and of the ORM's routing: they must never change.
//! A NULL key belongs to the first shard.

use std::hash::Hasher as _;

use twox_hash::XxHash64;

/// The key types a table may be distributed by: the canonical bytes of
/// anything else would need a definition first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// `smallint`, `integer`, `bigint`.
    Integer,
    /// `text`, `varchar`.
    Text,
}

/// The hash of an integer key.
pub fn hash_integer(key: i64) -> i64 {
    hash_bytes(&key.to_le_bytes())
}

/// The hash of a text key.
pub fn hash_text(key: &str) -> i64 {
    hash_bytes(key.as_bytes())
}

fn hash_bytes(bytes: &[u8]) -> i64 {
    let mut h = XxHash64::with_seed(0);
    h.write(bytes);
    (h.finish() ^ (1 << 63)) as i64
}

/// The hash of the NULL key: the lowest, so NULLs live in the first shard.
pub const NULL_HASH: i64 = i64::MIN;

/// The inclusive hash range `[min, max]` of shard `index` (0-based) of
/// `count` equal shards.
pub fn range(index: u32, count: u32) -> (i64, i64) {
    let count = count.max(1) as i128;
    let index = (index as i128).min(count - 1);
    let span = 1i128 << 64;
    // Shard i starts at ⌈i·2⁶⁴/n⌉ above i64::MIN.
    let start = |i: i128| i64::MIN as i128 + (i * span + count - 1) / count;
    (start(index) as i64, (start(index + 1) - 1) as i64)
}

/// The shard (0-based) of `count` equal shards that owns `hash`.
pub fn shard_of(hash: i64, count: u32) -> u32 {
    let offset = (hash as i128 - i64::MIN as i128) as u128;
    ((offset * count.max(1) as u128) >> 64) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_never_changes() {
        // Pinned values: changing the function would move every row.
        // xxHash64's published values for 8 zero bytes and for "" (seed 0) …
        assert_eq!(hash_integer(0), (0x34c96acdcadb1bbb_u64 ^ (1 << 63)) as i64);
        assert_eq!(hash_text(""), (0xef46db3751d8e999_u64 ^ (1 << 63)) as i64);
        // … and two as this function first computed them, kept as they are.
        assert_eq!(hash_integer(7), -8613471560742869931);
        assert_eq!(hash_text("abc"), -4270488912965203559);
        assert_ne!(hash_integer(1), hash_integer(2));
        assert_ne!(hash_text("1"), hash_integer(1), "a key's type is part of its bytes");
    }

    #[test]
    fn ranges_tile_the_hash_space_and_agree_with_shard_of() {
        for count in [1u32, 2, 3, 4, 7, 8, 1024] {
            let mut next = i64::MIN as i128;
            for i in 0..count {
                let (min, max) = range(i, count);
                assert_eq!(min as i128, next, "shard {i} of {count} starts where the last ended");
                assert!(min <= max);
                assert_eq!(shard_of(min, count), i);
                assert_eq!(shard_of(max, count), i);
                next = max as i128 + 1;
            }
            assert_eq!(next, i64::MAX as i128 + 1, "the last shard ends at i64::MAX");
        }
        assert_eq!(shard_of(NULL_HASH, 8), 0);
    }

    #[test]
    fn keys_spread_over_the_shards() {
        let mut counts = [0u32; 8];
        for k in 0..8000 {
            counts[shard_of(hash_integer(k), 8) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (800..1200).contains(&c)), "{counts:?}");
    }
}
