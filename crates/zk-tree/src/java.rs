//! Java's hash-set iteration order, where ZooKeeper lets it show on the wire or on disk.
//! A closeSession deletes the session's ephemerals in the order ZooKeeper's prep put them
//! in the txn (`CloseSessionTxn.paths2Delete`): the order of a `HashSet<String>` copy of the
//! session's ephemerals. Clients watching those nodes see the NodeDeleted events in that
//! order, and the txn log lists them so. A `java.util.HashMap` iterates by bucket (the
//! key's `String.hashCode`, spread as `h ^ (h >>> 16)`, masked by the table size), and in
//! insertion order within a bucket; a table doubles once it holds more than 3/4 of its
//! size, keeping that order, and a copy (`clone`) is sized for its contents alone.

/// Java's `String.hashCode` (over UTF-16 code units).
pub fn string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)))
}

/// `HashMap.hash`: the hash code with its high half folded into the low half.
fn spread(s: &str) -> usize {
    let h = string_hash(s) as u32;
    (h ^ (h >> 16)) as usize
}

/// `HashMap.tableSizeFor`: the power of two at or above `n` (1 at least).
fn table_size_for(n: usize) -> usize {
    n.max(1).next_power_of_two()
}

/// Whether a table of `cap` buckets holding `len` entries has grown past its threshold.
fn over_threshold(len: usize, cap: usize) -> bool {
    len > cap * 3 / 4
}

/// Orders `seq` (in insertion order) as a table of `cap` buckets iterates it.
fn by_bucket(mut seq: Vec<String>, cap: usize) -> Vec<String> {
    // A stable sort: insertion order within a bucket.
    seq.sort_by_key(|p| spread(p) & (cap - 1));
    seq
}

/// The iteration order of a `HashSet<String>` built by adding `created` in order (a
/// session's ephemerals set, as ZooKeeper's `DataTree` keeps it: 16 buckets to start).
pub fn set_order(created: Vec<String>) -> Vec<String> {
    let mut cap = 16;
    while over_threshold(created.len(), cap) {
        cap *= 2;
    }
    by_bucket(created, cap)
}

/// The paths a closeSession deletes, in ZooKeeper's order: the session's ephemerals
/// (`created`, in creation order) copied into a new set, then changed by the writes still
/// pending (`(path, true)`: an ephemeral of the session being created; `(path, false)`:
/// a node being deleted), in the order they were prepared.
pub fn close_session_order(
    created: Vec<String>,
    pending: impl IntoIterator<Item = (String, bool)>,
) -> Vec<String> {
    let source = set_order(created);
    // `HashSet.clone` sizes the copy for its contents: tableSizeFor(size / 0.75 + 1).
    let mut cap = if source.is_empty() {
        16
    } else {
        table_size_for((source.len() as f64 / 0.75 + 1.0) as usize)
    };
    let mut seq = source;
    for (path, added) in pending {
        if added {
            if !seq.contains(&path) {
                seq.push(path);
                while over_threshold(seq.len(), cap) {
                    cap *= 2;
                }
            }
        } else {
            seq.retain(|p| *p != path);
        }
    }
    by_bucket(seq, cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn string_hash_is_javas() {
        // "hello".hashCode() == 99162322; "".hashCode() == 0; non-ASCII by UTF-16 unit.
        assert_eq!(string_hash("hello"), 99_162_322);
        assert_eq!(string_hash(""), 0);
        assert_eq!(string_hash("é"), 0xe9);
        assert_eq!(string_hash("😀"), 0xd83d * 31 + 0xde00);
    }

    #[test]
    fn sets_iterate_by_bucket_then_insertion() {
        // Two paths in one bucket keep their insertion order; a later bucket comes later.
        let a = "/a";
        let mut same = None;
        for i in 0..10_000 {
            let p = format!("/x{i}");
            if spread(&p) & 15 == spread(a) & 15 {
                same = Some(p);
                break;
            }
        }
        let same = same.expect("some path shares /a's bucket");
        assert_eq!(set_order(v(&[&same, a])), v(&[&same, a]));
        assert_eq!(set_order(v(&[a, &same])), v(&[a, &same]));
        // The copy of a one-element set has 2 buckets; adding a second doubles it to 4.
        let out = close_session_order(v(&["/p1"]), [("/p2".to_owned(), true)]);
        let mut expect = v(&["/p1", "/p2"]);
        expect.sort_by_key(|p| spread(p) & 3);
        assert_eq!(out, expect);
        // A pending delete removes; an unknown path removed changes nothing.
        assert_eq!(
            close_session_order(v(&["/p1", "/p2"]), [("/p1".to_owned(), false)]),
            v(&["/p2"])
        );
    }
}
