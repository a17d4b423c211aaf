//! Size guardrails. The incident they answer: a znode's data or its children list grew past
//! `jute.maxbuffer`, every client reading it fails to decode the reply, reconnects and asks
//! again, for ever. ZooKeeper says nothing until then. zkd logs and counts writes that take a
//! node near the limit, replies already over it, frames refused for size, and (optionally)
//! caps the children per parent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use zk_proto::TxnBody;
use zk_tree::tree::DataTree;

/// How often the same path is warned about, at most.
const WARN_EVERY_MS: u64 = 60_000;
/// Paths remembered for that rate limit; the memory is cleared when it fills.
const WARNED_MAX: usize = 10_000;
/// Reply bytes besides the data: header (16), data length (4), Stat (68).
const GET_DATA_OVERHEAD: u64 = 16 + 4 + 68;
/// Reply bytes besides the children list: the header, and a Stat for getChildren2.
const GET_CHILDREN_OVERHEAD: u64 = 16 + 68;

/// Frames a client port refused for their size, counted by the connections.
#[derive(Debug, Default)]
pub struct FrameCounters {
    pub oversized_frames: AtomicU64,
}

/// What a connection needs to bound its frames.
#[derive(Debug, Clone)]
pub struct FrameLimit {
    /// The largest frame payload accepted (the port's `maxPacket`).
    pub max: usize,
    /// Where refusals are counted.
    pub counters: Arc<FrameCounters>,
}

impl FrameLimit {
    /// Records a frame refused for its size.
    pub fn refused(&self) {
        self.counters
            .oversized_frames
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Which size is near or over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Data,
    Children,
    Reply,
}

/// The guardrails' counters and warning state (on the core task).
#[derive(Debug)]
pub(crate) struct Guardrails {
    /// `jute.maxbuffer`: what a client accepts by default.
    limit: u64,
    /// Sizes at or above this are "near the limit" (`None`: warnings off).
    warn_at: Option<u64>,
    frames: Arc<FrameCounters>,
    last_warned: HashMap<(Kind, String), u64>,
    pub data_near_limit: u64,
    pub children_near_limit: u64,
    pub children_cap_refusals: u64,
    pub oversized_replies: u64,
}

impl Guardrails {
    pub(crate) fn new(jute_max_buffer: usize, warn_percent: u8) -> Guardrails {
        let limit = jute_max_buffer as u64;
        Guardrails {
            limit,
            warn_at: (warn_percent > 0).then(|| limit * u64::from(warn_percent) / 100),
            frames: Arc::default(),
            last_warned: HashMap::new(),
            data_near_limit: 0,
            children_near_limit: 0,
            children_cap_refusals: 0,
            oversized_replies: 0,
        }
    }

    /// The frame limit for a client port of `max` bytes, counting into these guardrails.
    pub(crate) fn frame_limit(&self, max: usize) -> FrameLimit {
        FrameLimit {
            max,
            counters: self.frames.clone(),
        }
    }

    /// Whether to log about `path` now (at most once a minute per path and kind).
    fn should_warn(&mut self, kind: Kind, path: &str, now_ms: u64) -> bool {
        let key = (kind, path.to_owned());
        if let Some(at) = self.last_warned.get(&key) {
            if now_ms.saturating_sub(*at) < WARN_EVERY_MS {
                return false;
            }
        }
        if self.last_warned.len() >= WARNED_MAX {
            self.last_warned.clear();
        }
        self.last_warned.insert(key, now_ms);
        true
    }

    /// Looks at an applied write: the data it wrote and the children list it grew.
    pub(crate) fn after_write(&mut self, tree: &DataTree, body: &TxnBody, now_ms: u64) {
        let Some(warn_at) = self.warn_at else {
            return;
        };
        match body {
            TxnBody::Create(t) => self.created(tree, &t.path, t.data.as_ref(), warn_at, now_ms),
            TxnBody::CreateTtl(t) => self.created(tree, &t.path, t.data.as_ref(), warn_at, now_ms),
            TxnBody::CreateContainer(t) => {
                self.created(tree, &t.path, t.data.as_ref(), warn_at, now_ms)
            }
            TxnBody::SetData(t) => self.data_written(
                &t.path,
                t.data.as_ref().map_or(0, |d| d.len()),
                warn_at,
                now_ms,
            ),
            TxnBody::Multi(ops) => {
                for (_, op) in ops {
                    self.after_write(tree, op, now_ms);
                }
            }
            _ => {}
        }
    }

    fn created(
        &mut self,
        tree: &DataTree,
        path: &str,
        data: Option<&bytes::Bytes>,
        warn_at: u64,
        now_ms: u64,
    ) {
        self.data_written(path, data.map_or(0, |d| d.len()), warn_at, now_ms);
        let parent = zk_tree::path::parent(path);
        let Some(list) = tree.children_list_bytes(parent) else {
            return;
        };
        if list + GET_CHILDREN_OVERHEAD >= warn_at {
            self.children_near_limit += 1;
            if self.should_warn(Kind::Children, parent, now_ms) {
                tracing::warn!(
                    path = parent,
                    children = tree.child_count(parent).unwrap_or(0),
                    children_list_bytes = list,
                    limit = self.limit,
                    "children list near jute.maxbuffer: past it, getChildren on this node fails \
                     in every client; see /commands/big_families"
                );
            }
        }
    }

    fn data_written(&mut self, path: &str, len: usize, warn_at: u64, now_ms: u64) {
        if len as u64 + GET_DATA_OVERHEAD < warn_at {
            return;
        }
        self.data_near_limit += 1;
        if self.should_warn(Kind::Data, path, now_ms) {
            tracing::warn!(
                path,
                data_bytes = len,
                limit = self.limit,
                "znode data near jute.maxbuffer: a bigger value cannot be written or read by \
                 clients with the default limit"
            );
        }
    }

    /// A reply of `payload` bytes about `path` is about to go out: if it is over what
    /// clients accept by default, they will fail to read it and reconnect.
    pub(crate) fn reply(&mut self, path: &str, payload: u64, what: &'static str, now_ms: u64) {
        if payload <= self.limit {
            return;
        }
        self.oversized_replies += 1;
        if self.should_warn(Kind::Reply, path, now_ms) {
            tracing::warn!(
                path,
                reply_bytes = payload,
                limit = self.limit,
                what,
                "reply over jute.maxbuffer: clients with the default limit cannot read it and \
                 will reconnect and retry"
            );
        }
    }

    /// The reply bytes of a getData of `len` bytes of data.
    pub(crate) fn get_data_payload(len: usize) -> u64 {
        len as u64 + GET_DATA_OVERHEAD
    }

    /// The reply bytes of a getChildren2 whose children list is `list` bytes.
    pub(crate) fn get_children_payload(list: u64) -> u64 {
        list + GET_CHILDREN_OVERHEAD
    }

    /// A create refused by `guardrails.maxChildren`.
    pub(crate) fn cap_refused(&mut self, parent: &str, limit: usize, now_ms: u64) {
        self.children_cap_refusals += 1;
        if self.should_warn(Kind::Children, parent, now_ms) {
            tracing::warn!(
                path = parent,
                limit,
                "create refused with QUOTAEXCEEDED: the parent has guardrails.maxChildren children"
            );
        }
    }

    /// Frames refused for their size on any client port.
    pub(crate) fn oversized_frames(&self) -> u64 {
        self.frames.oversized_frames.load(Ordering::Relaxed)
    }

    /// The counters, for `monitor` and `/metrics`.
    pub(crate) fn metrics(&self) -> Value {
        json!({
            "guardrail_data_near_limit": self.data_near_limit,
            "guardrail_children_near_limit": self.children_near_limit,
            "guardrail_children_cap_refusals": self.children_cap_refusals,
            "guardrail_oversized_replies": self.oversized_replies,
            "guardrail_oversized_frames": self.oversized_frames(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zk_proto::{CreateTxn, SetDataTxn, TxnHeader};
    use zk_tree::tree::TreeConfig;

    fn apply(t: &mut DataTree, zxid: i64, body: &TxnBody) {
        let h = TxnHeader {
            client_id: 1,
            cxid: 1,
            zxid,
            time: 1,
            r#type: match body {
                TxnBody::SetData(_) => zk_proto::OpCode::SetData.code(),
                _ => zk_proto::OpCode::Create.code(),
            },
        };
        assert_eq!(t.apply(&h, body).result.err(), 0);
    }

    fn create(path: &str, data: usize, cversion: i32) -> TxnBody {
        TxnBody::Create(CreateTxn {
            path: path.into(),
            data: Some(vec![0u8; data].into()),
            acl: zk_proto::well_known::open_acl_unsafe(),
            ephemeral: false,
            parent_c_version: cversion,
        })
    }

    #[test]
    fn counts_writes_near_the_limit_and_replies_over_it() {
        // A 2,000-byte limit, warning at 50%: 1,000 bytes.
        let mut g = Guardrails::new(2000, 50);
        let mut t = DataTree::new(TreeConfig::default());
        let small = create("/small", 100, 1);
        apply(&mut t, 1, &small);
        g.after_write(&t, &small, 0);
        assert_eq!((g.data_near_limit, g.children_near_limit), (0, 0));
        let big = create("/big", 950, 2);
        apply(&mut t, 2, &big);
        g.after_write(&t, &big, 0);
        assert_eq!(g.data_near_limit, 1, "950 + 88 reply bytes is past 1,000");
        let set = TxnBody::SetData(SetDataTxn {
            path: "/small".into(),
            data: Some(vec![1u8; 1500].into()),
            version: 1,
        });
        apply(&mut t, 3, &set);
        g.after_write(&t, &set, 0);
        assert_eq!(g.data_near_limit, 2);
        // Children named "c000".. cost 8 list bytes each.
        apply(&mut t, 4, &create("/p", 0, 3));
        let mut crossed_at = None;
        for i in 0..140 {
            let c = create(&format!("/p/c{i:03}"), 0, i + 1);
            apply(&mut t, 5 + i64::from(i), &c);
            g.after_write(&t, &c, 0);
            if g.children_near_limit == 1 && crossed_at.is_none() {
                crossed_at = Some(i);
            }
        }
        // 4 + n * 8 + 84 >= 1000 first at n = 114.
        assert_eq!(crossed_at, Some(113));
        assert_eq!(g.children_near_limit, 140 - 113);
        g.reply("/p", 2000, "getChildren", 0);
        assert_eq!(g.oversized_replies, 0, "at the limit is still readable");
        g.reply("/p", 2001, "getChildren", 0);
        assert_eq!(g.oversized_replies, 1);
        let m = g.metrics();
        assert_eq!(m["guardrail_oversized_replies"], json!(1));
        assert_eq!(m["guardrail_data_near_limit"], json!(2));
    }

    #[test]
    fn warnings_are_rate_limited_per_path() {
        let mut g = Guardrails::new(1000, 10);
        assert!(g.should_warn(Kind::Data, "/a", 0));
        assert!(!g.should_warn(Kind::Data, "/a", 59_999));
        assert!(g.should_warn(Kind::Children, "/a", 1), "another kind");
        assert!(g.should_warn(Kind::Data, "/b", 1), "another path");
        assert!(g.should_warn(Kind::Data, "/a", 60_000));
        let mut off = Guardrails::new(1000, 0);
        let t = DataTree::new(TreeConfig::default());
        off.after_write(&t, &create("/x", 999, 1), 0);
        assert_eq!(off.data_near_limit, 0, "0% turns warnings off");
    }
}
