//! Byte estimates of what the tree holds in memory, by part, for the `memory` admin command:
//! "what is growing?" answered from the structures themselves rather than guessed from a
//! node count. Each estimate walks the real containers (their capacities, not just their
//! lengths) and prices every heap allocation as glibc's malloc does (a 16-byte-aligned chunk
//! with an 8-byte header, 32 bytes at least), so it tracks the process's resident growth.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::mem::size_of;

/// The heap bytes one allocation of `n` bytes costs (glibc malloc's chunk size).
pub fn heap_bytes(n: usize) -> u64 {
    if n == 0 {
        0
    } else {
        ((n + 8 + 15) & !15).max(32) as u64
    }
}

/// A std `HashMap`'s table: buckets (a power of two, 7/8 full at most) of entries plus one
/// control byte each and a group's worth of trailing control bytes.
pub fn hash_map_bytes<K, V, S>(m: &HashMap<K, V, S>) -> u64 {
    let cap = m.capacity();
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 {
        (cap + 1).next_power_of_two()
    } else {
        (cap * 8 / 7).next_power_of_two()
    };
    heap_bytes(buckets * size_of::<(K, V)>() + buckets + 16)
}

/// B-tree nodes for `len` entries of `entry` bytes each: one leaf when up to 11 fit;
/// beyond, leaves about two-thirds full and an internal node per 8 leaves (std's B = 6).
pub fn btree_bytes(len: usize, entry: usize) -> u64 {
    if len == 0 {
        return 0;
    }
    let leaf = heap_bytes(16 + 11 * entry);
    if len <= 11 {
        return leaf;
    }
    let leaves = len.div_ceil(8);
    let internals = leaves.div_ceil(8);
    leaves as u64 * leaf + internals as u64 * heap_bytes(16 + 11 * entry + 12 * 8)
}

/// A `BTreeMap`'s nodes (not what its keys and values own).
pub fn btree_map_bytes<K, V>(m: &BTreeMap<K, V>) -> u64 {
    btree_bytes(m.len(), size_of::<K>() + size_of::<V>())
}

/// A `BTreeSet`'s nodes (not what its keys own).
pub fn btree_set_bytes<K>(s: &BTreeSet<K>) -> u64 {
    btree_bytes(s.len(), size_of::<K>())
}

/// A `String`'s buffer.
pub fn string_bytes(s: &str) -> u64 {
    heap_bytes(s.len())
}

/// The tree's memory by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TreeMemory {
    pub nodes: usize,
    /// Node slots, the path index, each node's path and data, children sets.
    pub node_bytes: u64,
    /// Of `node_bytes`, the data and path bytes themselves.
    pub payload_bytes: u64,
    pub watches: usize,
    /// Both watch tables, both directions.
    pub watch_bytes: u64,
    /// ACL cache, ephemeral/container/TTL indexes and the session table.
    pub index_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malloc_chunks() {
        assert_eq!(heap_bytes(0), 0);
        assert_eq!(heap_bytes(1), 32);
        assert_eq!(heap_bytes(24), 32);
        assert_eq!(heap_bytes(25), 48);
        assert_eq!(heap_bytes(100), 112);
    }

    #[test]
    fn containers_grow_with_their_contents() {
        let mut m: HashMap<u64, u64> = HashMap::new();
        assert_eq!(hash_map_bytes(&m), 0);
        m.extend((0..1000).map(|i| (i, i)));
        let b = hash_map_bytes(&m);
        // At least 16 bytes an entry, at most twice that plus control bytes.
        assert!((16_000..=2 * 17 * 1024 + 64).contains(&(b as usize)), "{b}");
        assert_eq!(btree_bytes(3, 8), heap_bytes(16 + 88));
        assert!(btree_bytes(1000, 8) > 1000 * 8);
    }
}
