//! The "big families" report: which parents have the most children, whose children hold
//! the most bytes, and which single znodes are largest. A family that outgrows
//! `jute.maxbuffer` makes getChildren unreadable for every client (each retries for ever),
//! so operators need to see the growth before it gets there.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::tree::DataTree;

/// Bytes of a getChildren reply body for `count` children whose names sum to `name_bytes`:
/// the vector length and, per child, a length-prefixed string.
pub fn children_list_bytes(count: usize, name_bytes: u64) -> u64 {
    4 + 4 * count as u64 + name_bytes
}

/// One parent and its direct children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    pub path: String,
    pub children: usize,
    /// Size of its getChildren reply body ([`children_list_bytes`]).
    pub children_list_bytes: u64,
    /// Data bytes held by the direct children.
    pub children_data_bytes: u64,
}

/// One znode's data size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BigNode {
    pub path: String,
    pub data_bytes: u64,
}

/// A whole subtree: the node and everything under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subtree {
    pub path: String,
    pub nodes: u64,
    pub data_bytes: u64,
}

/// The report: the top `n` of each list, largest first (ties by path), and totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BigFamilies {
    pub by_children: Vec<Family>,
    pub by_children_data: Vec<Family>,
    pub largest_nodes: Vec<BigNode>,
    /// Subtrees by node count and by data bytes (`zkcli find-big` lists the same).
    pub subtrees_by_nodes: Vec<Subtree>,
    pub subtrees_by_bytes: Vec<Subtree>,
    pub znodes: usize,
    pub data_bytes: u64,
}

/// Keeps the `n` largest items seen (by key, then smallest path first on ties).
struct TopN<T> {
    n: usize,
    heap: BinaryHeap<Reverse<(u64, Reverse<String>, T)>>,
}

impl<T: Ord> TopN<T> {
    fn new(n: usize) -> Self {
        TopN {
            n,
            heap: BinaryHeap::with_capacity(n + 1),
        }
    }

    /// Offers an item; `path` is built only when it makes the cut.
    fn offer(&mut self, key: u64, path: impl FnOnce() -> String, item: T) {
        if self.n == 0 {
            return;
        }
        if self.heap.len() == self.n {
            if let Some(Reverse((min, _, _))) = self.heap.peek() {
                if key <= *min {
                    return;
                }
            }
        }
        self.heap.push(Reverse((key, Reverse(path()), item)));
        if self.heap.len() > self.n {
            self.heap.pop();
        }
    }

    fn into_sorted(self) -> Vec<(String, T)> {
        let mut v: Vec<_> = self.heap.into_iter().map(|Reverse(x)| x).collect();
        v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1 .0.cmp(&b.1 .0)));
        v.into_iter().map(|(_, Reverse(p), t)| (p, t)).collect()
    }
}

impl DataTree {
    /// The size of `path`'s getChildren reply body, if the node exists.
    pub fn children_list_bytes(&self, path: &str) -> Option<u64> {
        self.node_of(path)
            .map(|n| children_list_bytes(n.child_count(), n.child_name_bytes()))
    }

    /// The big-families report over the whole tree, top `n` of each list. One pass over
    /// every node: meant for an operator's request, not for every write.
    pub fn big_families(&self, n: usize) -> BigFamilies {
        let mut by_children = TopN::new(n);
        let mut by_data = TopN::new(n);
        let mut largest = TopN::new(n);
        let mut report = BigFamilies::default();
        for (id, node) in self.nodes_iter() {
            report.znodes += 1;
            let data = node.data_len() as u64;
            report.data_bytes += data;
            largest.offer(data, || self.path_of(id), data);
            let kids = node.child_count();
            if kids == 0 {
                continue;
            }
            let children_data: u64 = node
                .child_ids()
                .filter_map(|id| self.node_by_id(id))
                .map(|k| k.data_len() as u64)
                .sum();
            let family = (
                kids as u64,
                children_list_bytes(kids, node.child_name_bytes()),
                children_data,
            );
            by_children.offer(kids as u64, || self.path_of(id), family);
            by_data.offer(children_data, || self.path_of(id), family);
        }
        let families = |top: TopN<(u64, u64, u64)>| {
            top.into_sorted()
                .into_iter()
                .map(|(path, (kids, list, data))| Family {
                    path,
                    children: kids as usize,
                    children_list_bytes: list,
                    children_data_bytes: data,
                })
                .collect()
        };
        report.by_children = families(by_children);
        report.by_children_data = families(by_data);
        report.largest_nodes = largest
            .into_sorted()
            .into_iter()
            .map(|(path, data_bytes)| BigNode { path, data_bytes })
            .collect();
        let (by_nodes, by_bytes) = self.subtrees(n);
        report.subtrees_by_nodes = by_nodes;
        report.subtrees_by_bytes = by_bytes;
        report
    }

    /// The top `n` subtrees by node count and by data bytes: a pre-order walk, then totals
    /// summed children-first.
    fn subtrees(&self, n: usize) -> (Vec<Subtree>, Vec<Subtree>) {
        let Some(root) = self.find_id("/") else {
            return (Vec::new(), Vec::new());
        };
        // (node, index of its parent in `order`, nodes, bytes)
        let mut order: Vec<(crate::store::NodeId, usize, u64, u64)> = Vec::new();
        let mut stack = vec![(root, usize::MAX)];
        while let Some((id, parent)) = stack.pop() {
            let Some(node) = self.node_by_id(id) else {
                continue;
            };
            let me = order.len();
            order.push((id, parent, 1, node.data_len() as u64));
            stack.extend(node.child_ids().map(|c| (c, me)));
        }
        for i in (1..order.len()).rev() {
            let (_, parent, nodes, bytes) = order[i];
            if let Some(p) = order.get_mut(parent) {
                p.2 += nodes;
                p.3 += bytes;
            }
        }
        let mut by_nodes = TopN::new(n);
        let mut by_bytes = TopN::new(n);
        for (id, _, nodes, bytes) in &order {
            let path = || self.path_of(*id);
            by_nodes.offer(*nodes, path, (*nodes, *bytes));
            by_bytes.offer(*bytes, path, (*nodes, *bytes));
        }
        let list = |top: TopN<(u64, u64)>| {
            top.into_sorted()
                .into_iter()
                .map(|(path, (nodes, data_bytes))| Subtree {
                    path,
                    nodes,
                    data_bytes,
                })
                .collect()
        };
        (list(by_nodes), list(by_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::create;
    use crate::tree::TreeConfig;
    use zk_proto::{TxnBody, TxnHeader};

    #[test]
    fn reports_the_biggest_families_and_nodes() {
        let mut t = DataTree::new(TreeConfig::default());
        let mut z = 1;
        let mut mk = |t: &mut DataTree, p: &str, d: &[u8]| {
            create(t, z, p, d);
            z += 1;
        };
        mk(&mut t, "/many", b"");
        for i in 0..50 {
            mk(&mut t, &format!("/many/k{i:02}"), b"x");
        }
        mk(&mut t, "/heavy", b"");
        for i in 0..3 {
            mk(&mut t, &format!("/heavy/h{i}"), &[7u8; 1000]);
        }
        mk(&mut t, "/single", &[1u8; 5000]);

        let r = t.big_families(2);
        assert_eq!(r.by_children[0].path, "/many");
        assert_eq!(r.by_children[0].children, 50);
        // 4 + 50 * (4 + 3)
        assert_eq!(r.by_children[0].children_list_bytes, 354);
        assert_eq!(t.children_list_bytes("/many"), Some(354));
        assert_eq!(r.by_children[1].path, "/");
        assert_eq!(r.by_children_data[0].path, "/");
        assert_eq!(r.by_children_data[0].children_data_bytes, 5000);
        assert_eq!(r.by_children_data[1].path, "/heavy");
        assert_eq!(r.by_children_data[1].children_data_bytes, 3000);
        assert_eq!(
            r.largest_nodes,
            vec![
                BigNode {
                    path: "/single".into(),
                    data_bytes: 5000
                },
                BigNode {
                    path: "/heavy/h0".into(),
                    data_bytes: 1000
                },
            ]
        );
        assert_eq!(
            r.data_bytes,
            50 + 3000
                + 5000
                + t.data("/zookeeper/config")
                    .flatten()
                    .map_or(0, |d| d.len() as u64)
                + t.data("/zookeeper/quota")
                    .flatten()
                    .map_or(0, |d| d.len() as u64)
        );
        assert_eq!(r.znodes, t.node_count());
        // Subtrees: the root holds everything; /many is next by nodes, /single by bytes.
        assert_eq!(r.subtrees_by_nodes[0].path, "/");
        assert_eq!(r.subtrees_by_nodes[0].nodes, t.node_count() as u64);
        assert_eq!(r.subtrees_by_nodes[0].data_bytes, r.data_bytes);
        assert_eq!(
            r.subtrees_by_nodes[1],
            Subtree {
                path: "/many".into(),
                nodes: 51,
                data_bytes: 50
            }
        );
        assert_eq!(r.subtrees_by_bytes[1].path, "/single");
        assert_eq!(r.subtrees_by_bytes[1].data_bytes, 5000);
    }

    #[test]
    fn children_list_bytes_follow_creates_and_deletes() {
        let mut t = DataTree::new(TreeConfig::default());
        create(&mut t, 1, "/p", b"");
        assert_eq!(t.children_list_bytes("/p"), Some(4));
        create(&mut t, 2, "/p/abc", b"");
        create(&mut t, 3, "/p/de", b"");
        assert_eq!(t.children_list_bytes("/p"), Some(4 + 7 + 6));
        let h = TxnHeader {
            client_id: 1,
            cxid: 1,
            zxid: 4,
            time: 1,
            r#type: zk_proto::OpCode::Delete.code(),
        };
        let body = TxnBody::Delete(zk_proto::DeleteTxn {
            path: "/p/abc".into(),
        });
        assert_eq!(t.apply(&h, &body).result.err(), 0);
        assert_eq!(t.children_list_bytes("/p"), Some(4 + 6));
        assert_eq!(t.children_list_bytes("/nope"), None);
    }
}
