//! The checker: what a run's history must satisfy, whatever the faults were.
//!
//! - one leader per epoch;
//! - every acknowledged write is in the committed sequence at its zxid, with the reply a
//!   replay of that sequence through a fresh tree (the model) gives;
//! - acknowledged writes are linearizable: one that was acknowledged before another was
//!   invoked has the smaller zxid;
//! - every read returns the model's value at the zxid the server had applied, and a
//!   client's reads never go back in time (checked as they happen);
//! - `sync`: once answered, the server has applied every write acknowledged before the
//!   sync was invoked;
//! - every snapshot installed by a sync equals the model's state at its zxid;
//! - ephemerals vanish exactly with their session (never before, never after);
//! - a watch fires exactly once, for the first change of its node after it was set, with
//!   that change's zxid and event type (unless its connection ended first);
//! - after healing, every server serves, has applied every committed txn and agrees with
//!   the model's digest.
//!
//! Agreement and gap-freedom of commits are checked as they happen (see `World::commit`).

use std::collections::BTreeMap;

use bytes::Bytes;
use zk_proto::TxnEntry;
use zk_tree::{DataTree, TreeConfig, TxnResult};
use zk_zab::Zxid;

/// A key's values after each txn that touched it (`None`: absent).
type KeyHistory = Vec<(Zxid, Option<Vec<u8>>)>;

/// A write the client got an answer for.
#[derive(Debug, Clone)]
pub struct AckedWrite {
    pub client: usize,
    pub session: i64,
    /// The request's xid, when the client exposes it (kazoo and zk-client do not: their
    /// writes are matched by session, zxid and reply).
    pub cxid: Option<i32>,
    pub zxid: Zxid,
    pub result: TxnResult,
    pub invoked: u64,
    pub responded: u64,
}

/// A read and what it returned.
#[derive(Debug, Clone)]
pub struct Read {
    pub client: usize,
    pub key: String,
    pub zxid: Zxid,
    pub value: Option<Vec<u8>>,
}

/// A linearizable read (its value is checked as a [`Read`] too): when it was asked and
/// answered, and the state (zxid) it was served from.
#[derive(Debug, Clone)]
pub struct LinRead {
    pub client: usize,
    pub key: String,
    pub zxid: Zxid,
    pub invoked: u64,
    pub responded: u64,
}

/// A watch a client set (`exists` with a watch) and what it delivered.
#[derive(Debug, Clone)]
pub struct WatchRecord {
    pub client: usize,
    pub key: String,
    /// The server's last applied zxid when the watch was set.
    pub set_at: Zxid,
    pub existed: bool,
    /// (zxid, event type) of each event delivered.
    pub fired: Vec<(Zxid, i32)>,
    /// The client's connection ended before the watch fired.
    pub cancelled: bool,
}

/// A `sync` a client got an answer for: the zxid its server had applied then.
#[derive(Debug, Clone)]
pub struct SyncRecord {
    pub client: usize,
    pub invoked: u64,
    pub zxid: Zxid,
}

/// Everything a run recorded.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Every txn any server committed, by zxid.
    pub commits: BTreeMap<Zxid, Vec<u8>>,
    pub acked: Vec<AckedWrite>,
    pub reads: Vec<Read>,
    /// (epoch, server) for every server that started leading.
    pub leaders: Vec<(u32, usize)>,
    /// (server, zxid, digest) of every snapshot installed by a sync.
    pub installs: Vec<(usize, Zxid, i64)>,
    /// (server, last applied zxid, digest, serving) at the end.
    pub finals: Vec<(usize, Zxid, i64, bool)>,
    pub watches: Vec<WatchRecord>,
    pub syncs: Vec<SyncRecord>,
    pub lin_reads: Vec<LinRead>,
}

/// Checks a history; every violation is one line.
pub fn check(h: &History) -> Vec<String> {
    let mut v = Vec::new();

    let mut leader_of: BTreeMap<u32, usize> = BTreeMap::new();
    for &(epoch, server) in &h.leaders {
        match leader_of.get(&epoch) {
            Some(&other) if other != server => v.push(format!(
                "epoch {epoch} has two leaders: {other} and {server}"
            )),
            _ => {
                leader_of.insert(epoch, server);
            }
        }
    }

    // The model: the committed sequence replayed through a fresh tree.
    let mut model = DataTree::new(TreeConfig::default());
    let mut digests: BTreeMap<Zxid, i64> = BTreeMap::new();
    digests.insert(0, model.digest());
    let mut results: BTreeMap<Zxid, (i64, i32, TxnResult)> = BTreeMap::new();
    let mut values: BTreeMap<String, KeyHistory> = BTreeMap::new();
    for (&zxid, data) in &h.commits {
        let entry = match TxnEntry::decode(Bytes::copy_from_slice(data)) {
            Ok(e) => e,
            Err(e) => {
                v.push(format!("committed txn {zxid:#x} does not decode: {e:?}"));
                continue;
            }
        };
        let before = model.ephemerals().clone();
        let applied = model.apply(&entry.header, &entry.body);
        digests.insert(zxid, model.digest());
        ephemerals_follow_sessions(&model, &before, &entry, &mut v);
        for path in touched(&entry) {
            let now = model.data(&path).map(|d| d.unwrap_or_default().to_vec());
            values.entry(path).or_default().push((zxid, now));
        }
        results.insert(
            zxid,
            (entry.header.client_id, entry.header.cxid, applied.result),
        );
    }

    for a in &h.acked {
        match results.get(&a.zxid) {
            None => v.push(format!(
                "client {} write {:?} acknowledged at {:#x}, which is not committed",
                a.client, a.cxid, a.zxid
            )),
            Some((session, cxid, result)) => {
                if *session != a.session || a.cxid.is_some_and(|c| c != *cxid) {
                    v.push(format!(
                        "client {} write {:?} acknowledged at {:#x}, which holds another txn",
                        a.client, a.cxid, a.zxid
                    ));
                } else if *result != a.result {
                    v.push(format!(
                        "client {} write {:?} at {:#x}: reply {:?}, the model says {:?}",
                        a.client, a.cxid, a.zxid, a.result, result
                    ));
                }
            }
        }
    }

    // Real-time order: going down the zxids, the earliest response among later txns must
    // not precede this one's invocation.
    let mut by_zxid: Vec<&AckedWrite> = h.acked.iter().collect();
    by_zxid.sort_by_key(|a| a.zxid);
    let mut earliest_later: Option<&AckedWrite> = None;
    for a in by_zxid.iter().rev() {
        if let Some(l) = earliest_later {
            if l.responded < a.invoked {
                v.push(format!(
                    "not linearizable: write {:#x} was acknowledged at {} ms, before write {:#x} was invoked at {} ms",
                    l.zxid, l.responded, a.zxid, a.invoked
                ));
            }
        }
        if earliest_later.is_none_or(|l| a.responded < l.responded) {
            earliest_later = Some(a);
        }
    }

    for r in &h.reads {
        if r.zxid != 0 && !h.commits.contains_key(&r.zxid) {
            v.push(format!(
                "client {} read at {:#x}, which is not committed",
                r.client, r.zxid
            ));
            continue;
        }
        let expected = values
            .get(&r.key)
            .and_then(|hist| hist.iter().rev().find(|(z, _)| *z <= r.zxid))
            .and_then(|(_, val)| val.clone());
        if expected != r.value {
            v.push(format!(
                "client {} read {} at {:#x}: {:?}, the model says {:?}",
                r.client,
                r.key,
                r.zxid,
                r.value.as_deref().map(String::from_utf8_lossy),
                expected.as_deref().map(String::from_utf8_lossy)
            ));
        }
    }

    // A sync makes its server catch up with every write acknowledged before it began.
    let mut by_response: Vec<&AckedWrite> = h.acked.iter().collect();
    by_response.sort_by_key(|a| a.responded);
    for sy in &h.syncs {
        let newest = by_response
            .iter()
            .take_while(|a| a.responded < sy.invoked)
            .map(|a| a.zxid)
            .max();
        if let Some(z) = newest.filter(|z| *z > sy.zxid) {
            v.push(format!(
                "client {}'s sync at {} ms left its server at {:#x}, before the acknowledged {z:#x}",
                sy.client, sy.invoked, sy.zxid
            ));
        }
    }

    lin_reads_are_linearizable(h, &values, &by_response, &mut v);

    // Watches fire exactly once, for the first change of their key after they were set.
    for w in &h.watches {
        let next = values
            .get(&w.key)
            .and_then(|hist| hist.iter().find(|(z, _)| *z > w.set_at));
        let expected = next.map(|(z, value)| {
            let kind = match (w.existed, value) {
                (false, _) => zk_proto::EventType::NodeCreated,
                (true, None) => zk_proto::EventType::NodeDeleted,
                (true, Some(_)) => zk_proto::EventType::NodeDataChanged,
            };
            (*z, kind as i32)
        });
        match (w.fired.as_slice(), expected) {
            ([], _) if w.cancelled => {}
            ([], None) => {}
            ([got], Some(want)) if *got == want => {}
            (fired, want) => v.push(format!(
                "client {}'s watch on {} set at {:#x}: fired {fired:?}, expected {want:?}",
                w.client, w.key, w.set_at
            )),
        }
    }

    for &(server, zxid, digest) in &h.installs {
        if digests.get(&zxid) != Some(&digest) {
            v.push(format!(
                "server {server} installed a snapshot at {zxid:#x} that differs from the model"
            ));
        }
    }

    let last = h.commits.keys().next_back().copied().unwrap_or(0);
    for &(server, zxid, digest, serving) in &h.finals {
        if !serving {
            v.push(format!("server {server} is not serving at the end"));
        } else if zxid != last {
            v.push(format!(
                "server {server} ends at {zxid:#x}, the last committed txn is {last:#x}"
            ));
        } else if digests.get(&zxid) != Some(&digest) {
            v.push(format!(
                "server {server}'s tree differs from the model at {zxid:#x}"
            ));
        }
    }
    v
}

/// Linearizable reads: each is served from a state that holds every write acknowledged
/// before it was asked (so an old leader cut off from the quorum cannot answer), holds no
/// acknowledged write asked after it was answered, and never shows a key older than a
/// read of the same key answered before it was asked.
fn lin_reads_are_linearizable(
    h: &History,
    values: &BTreeMap<String, KeyHistory>,
    by_response: &[&AckedWrite],
    v: &mut Vec<String>,
) {
    // The zxid of the last change to `key` at or before `zxid` (0: never changed).
    let touched_at = |key: &str, zxid: Zxid| -> Zxid {
        values
            .get(key)
            .and_then(|hist| hist.iter().rev().find(|(z, _)| *z <= zxid))
            .map_or(0, |(z, _)| *z)
    };
    let invoked_of: BTreeMap<Zxid, u64> = h.acked.iter().map(|a| (a.zxid, a.invoked)).collect();
    for r in &h.lin_reads {
        let newest = by_response
            .iter()
            .take_while(|a| a.responded < r.invoked)
            .map(|a| a.zxid)
            .max();
        if let Some(z) = newest.filter(|z| *z > r.zxid) {
            v.push(format!(
                "client {}'s linearizable read of {} asked at {} ms was served at {:#x}, before the acknowledged {z:#x}",
                r.client, r.key, r.invoked, r.zxid
            ));
        }
        let source = touched_at(&r.key, r.zxid);
        if let Some(&asked) = invoked_of.get(&source) {
            if asked > r.responded {
                v.push(format!(
                    "client {}'s linearizable read of {} answered at {} ms shows {source:#x}, asked only at {asked} ms",
                    r.client, r.key, r.responded
                ));
            }
        }
    }
    // Reads of a key answered before another was asked: the later one is not older.
    let mut events: Vec<(u64, bool, usize)> = Vec::new();
    for (i, r) in h.lin_reads.iter().enumerate() {
        events.push((r.invoked, false, i));
        events.push((r.responded, true, i));
    }
    // At equal times an invocation comes first: those reads overlap.
    events.sort();
    let mut newest_seen: BTreeMap<&str, (Zxid, usize)> = BTreeMap::new();
    for (_, answered, i) in events {
        let r = &h.lin_reads[i];
        let at = touched_at(&r.key, r.zxid);
        if answered {
            let e = newest_seen.entry(r.key.as_str()).or_insert((at, i));
            if at > e.0 {
                *e = (at, i);
            }
        } else if let Some(&(seen, j)) = newest_seen.get(r.key.as_str()) {
            if at < seen {
                v.push(format!(
                    "client {}'s linearizable read of {} shows {at:#x}, older than client {}'s read answered before it was asked ({seen:#x})",
                    r.client, r.key, h.lin_reads[j].client
                ));
            }
        }
    }
}

/// Ephemerals vanish exactly with their session: every owner is a live session, and an
/// ephemeral only disappears when its owner's session closes (the simulator's clients never
/// delete their ephemerals themselves).
fn ephemerals_follow_sessions(
    model: &DataTree,
    before: &BTreeMap<i64, std::collections::BTreeSet<String>>,
    entry: &TxnEntry,
    v: &mut Vec<String>,
) {
    let zxid = entry.header.zxid;
    for (owner, paths) in model.ephemerals() {
        if !paths.is_empty() && !model.sessions().contains_key(owner) {
            v.push(format!(
                "after {zxid:#x}, ephemerals {paths:?} belong to session {owner:#x}, which is closed"
            ));
        }
    }
    let closed = match entry.body {
        zk_proto::TxnBody::CloseSession(_) => Some(entry.header.client_id),
        _ => None,
    };
    for (owner, paths) in before {
        let now = model.ephemerals().get(owner);
        for p in paths {
            let gone = now.is_none_or(|set| !set.contains(p));
            if gone && closed != Some(*owner) {
                v.push(format!(
                    "ephemeral {p} of session {owner:#x} vanished at {zxid:#x} while the session lives"
                ));
            }
        }
        if closed == Some(*owner) && now.is_some_and(|set| !set.is_empty()) {
            v.push(format!(
                "session {owner:#x} closed at {zxid:#x} but kept ephemerals {now:?}"
            ));
        }
    }
}

/// The paths a txn may change (the simulator's clients use single-path writes).
fn touched(entry: &TxnEntry) -> Vec<String> {
    use zk_proto::TxnBody;
    match &entry.body {
        TxnBody::Create(t) => vec![t.path.clone()],
        TxnBody::SetData(t) => vec![t.path.clone()],
        TxnBody::Delete(t) => vec![t.path.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::records::{CreateTxn, TxnHeader};
    use zk_proto::TxnBody;

    fn create(zxid: Zxid, session: i64, cxid: i32, path: &str) -> Vec<u8> {
        TxnEntry {
            header: TxnHeader {
                client_id: session,
                cxid,
                zxid,
                time: 0,
                r#type: zk_proto::OpCode::Create.code(),
            },
            body: TxnBody::Create(CreateTxn {
                path: path.to_owned(),
                data: Some(Bytes::from_static(b"v")),
                acl: zk_proto::modes::ids::open_acl_unsafe(),
                ephemeral: false,
                parent_c_version: 1,
            }),
            digest: None,
        }
        .encode()
        .to_vec()
    }

    fn history() -> History {
        let mut h = History::default();
        h.commits
            .insert(0x1_0000_0001, create(0x1_0000_0001, 9, 1, "/a"));
        h.commits
            .insert(0x1_0000_0002, create(0x1_0000_0002, 9, 2, "/b"));
        let mut model = DataTree::new(TreeConfig::default());
        let mut results = Vec::new();
        for data in h.commits.values() {
            let e = TxnEntry::decode(Bytes::copy_from_slice(data)).unwrap();
            results.push((
                e.header.zxid,
                e.header.cxid,
                model.apply(&e.header, &e.body),
            ));
        }
        for (zxid, cxid, applied) in results {
            h.acked.push(AckedWrite {
                client: 0,
                session: 9,
                cxid: Some(cxid),
                zxid,
                result: applied.result,
                invoked: zxid as u64 & 0xff,
                responded: (zxid as u64 & 0xff) + 10,
            });
        }
        h.finals = vec![(1, 0x1_0000_0002, model.digest(), true)];
        h.leaders = vec![(1, 1)];
        h
    }

    #[test]
    fn a_consistent_history_passes() {
        assert_eq!(check(&history()), Vec::<String>::new());
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught() {
        let mut h = history();
        h.commits.remove(&0x1_0000_0002);
        let v = check(&h);
        assert!(v.iter().any(|l| l.contains("not committed")), "{v:?}");
    }

    #[test]
    fn two_leaders_in_one_epoch_are_caught() {
        let mut h = history();
        h.leaders.push((1, 2));
        assert!(check(&h).iter().any(|l| l.contains("two leaders")));
    }

    #[test]
    fn a_stale_or_wrong_read_is_caught() {
        let mut h = history();
        h.reads.push(Read {
            client: 0,
            key: "/b".to_owned(),
            zxid: 0x1_0000_0002,
            value: None,
        });
        assert!(check(&h).iter().any(|l| l.contains("the model says")));
    }

    fn lin(key: &str, zxid: Zxid, invoked: u64, responded: u64) -> LinRead {
        LinRead {
            client: 1,
            key: key.to_owned(),
            zxid,
            invoked,
            responded,
        }
    }

    #[test]
    fn linearizable_reads_are_checked_against_real_time() {
        let mut h = history();
        h.lin_reads.push(lin("/b", 0x1_0000_0002, 20, 25));
        assert_eq!(check(&h), Vec::<String>::new());
        // Served from a state without /b, though its create was acknowledged first: the
        // stale leader's answer.
        let mut h = history();
        h.lin_reads.push(lin("/b", 0x1_0000_0001, 20, 25));
        let v = check(&h);
        assert!(
            v.iter().any(|l| l.contains("before the acknowledged")),
            "{v:?}"
        );
        // Showing a write asked only after the read was answered.
        let mut h = history();
        h.lin_reads.push(lin("/b", 0x1_0000_0002, 0, 1));
        let v = check(&h);
        assert!(v.iter().any(|l| l.contains("asked only at")), "{v:?}");
        // A read older than one answered before it was asked.
        let mut h = history();
        h.lin_reads.push(lin("/b", 0x1_0000_0002, 5, 8));
        h.lin_reads.push(lin("/b", 0x1_0000_0001, 9, 10));
        let v = check(&h);
        assert!(v.iter().any(|l| l.contains("older than client")), "{v:?}");
        // Overlapping reads may see either.
        let mut h = history();
        h.lin_reads.push(lin("/b", 0x1_0000_0002, 5, 9));
        h.lin_reads.push(lin("/b", 0x1_0000_0001, 9, 10));
        assert_eq!(check(&h), Vec::<String>::new());
    }

    #[test]
    fn real_time_order_is_enforced() {
        let mut h = history();
        // The write at the higher zxid answered before the lower one was even invoked.
        h.acked[1].invoked = 1;
        h.acked[1].responded = 2;
        h.acked[0].invoked = 50;
        h.acked[0].responded = 60;
        assert!(check(&h).iter().any(|l| l.contains("not linearizable")));
    }

    #[test]
    fn watches_must_fire_once_for_the_next_change() {
        let watch = |fired: Vec<(Zxid, i32)>| WatchRecord {
            client: 0,
            key: "/b".to_owned(),
            set_at: 0x1_0000_0001,
            existed: false,
            fired,
            cancelled: false,
        };
        let created = zk_proto::EventType::NodeCreated as i32;
        let mut h = history();
        h.watches.push(watch(vec![(0x1_0000_0002, created)]));
        assert_eq!(check(&h), Vec::<String>::new());
        for wrong in [
            vec![],
            vec![(0x1_0000_0002, created), (0x1_0000_0002, created)],
            vec![(0x1_0000_0001, created)],
            vec![(0x1_0000_0002, zk_proto::EventType::NodeDeleted as i32)],
        ] {
            let mut h = history();
            h.watches.push(watch(wrong.clone()));
            assert!(
                check(&h).iter().any(|l| l.contains("watch on /b")),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn a_server_that_diverged_is_caught() {
        let mut h = history();
        h.finals.push((2, 0x1_0000_0002, 12345, true));
        h.finals.push((3, 0x1_0000_0001, 0, true));
        let v = check(&h);
        assert!(
            v.iter().any(|l| l.contains("differs from the model")),
            "{v:?}"
        );
        assert!(v.iter().any(|l| l.contains("ends at")), "{v:?}");
    }
}
