//! The tree digest ZooKeeper 3.6+ keeps (`DigestCalculator`, `AdHash`): each node's CRC32
//! over its path, data and persisted stat, summed over all nodes with wrapping addition,
//! so it can be updated incrementally and compared across servers at the same zxid.

use zk_proto::StatPersisted;

/// The digest algorithm version carried in `TxnDigest.version`.
pub const DIGEST_VERSION: i32 = 2;

/// One node's digest. Nodes under `/zookeeper/` count as 0 (their quota stats change
/// outside txns), and the root is digested under the path "".
pub fn node_digest(path: &str, data: Option<&[u8]>, stat: &StatPersisted) -> u64 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    let mut b = [0u8; 60];
    b[0..8].copy_from_slice(&stat.czxid.to_be_bytes());
    b[8..16].copy_from_slice(&stat.mzxid.to_be_bytes());
    b[16..24].copy_from_slice(&stat.pzxid.to_be_bytes());
    b[24..32].copy_from_slice(&stat.ctime.to_be_bytes());
    b[32..40].copy_from_slice(&stat.mtime.to_be_bytes());
    b[40..44].copy_from_slice(&stat.version.to_be_bytes());
    b[44..48].copy_from_slice(&stat.cversion.to_be_bytes());
    b[48..52].copy_from_slice(&stat.aversion.to_be_bytes());
    b[52..60].copy_from_slice(&stat.ephemeral_owner.to_be_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    if let Some(d) = data {
        crc.update(d);
    }
    crc.update(&b);
    u64::from(crc.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_subtree_is_excluded_and_root_is_empty_path() {
        let s = StatPersisted::default();
        assert_eq!(node_digest("/zookeeper/quota", Some(b""), &s), 0);
        assert_ne!(node_digest("/zookeeper", Some(b""), &s), 0);
        assert_eq!(node_digest("/", None, &s), node_digest("", None, &s));
        assert_ne!(
            node_digest("/a", Some(b"x"), &s),
            node_digest("/a", Some(b"y"), &s)
        );
    }
}
