//! The client's half of watches: which local watchers wait on which server path, which of
//! them an incoming notification fires (ZooKeeper's `ZKWatchManager.materialize` rules), and
//! what to re-arm with `setWatches2` after a reconnect.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};
use zk_proto::{EventType, KeeperState, SetWatches2, WatcherType};

/// A change on the server, or a change of the session's state (`event_type` `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedEvent {
    pub event_type: EventType,
    pub state: KeeperState,
    /// The znode, relative to the client's chroot; `None` for session events.
    pub path: Option<String>,
}

impl WatchedEvent {
    pub(crate) fn session(state: KeeperState) -> WatchedEvent {
        WatchedEvent {
            event_type: EventType::None,
            state,
            path: None,
        }
    }
}

impl std::fmt::Display for WatchedEvent {
    /// As the Java client prints it (`WatchedEvent.toString`), which zkCli shows.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WatchedEvent state:{:?} type:{:?} path:{}",
            self.state,
            self.event_type,
            self.path.as_deref().unwrap_or("null")
        )
    }
}

/// Where a fired watch goes.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A one-shot watch handed to the caller.
    Once(oneshot::Sender<WatchedEvent>),
    /// A persistent watch's stream.
    Stream(mpsc::UnboundedSender<WatchedEvent>),
    /// The client's default watcher (the Java client's `watch = true`).
    Default,
}

/// The five kinds of registration the Java client keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Data = 0,
    Exist = 1,
    Child = 2,
    Persistent = 3,
    Recursive = 4,
}

/// Local watch registrations by server path (chroot included).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    maps: [HashMap<String, Vec<Sink>>; 5],
}

impl Registry {
    pub(crate) fn add(&mut self, kind: Kind, path: String, sink: Sink) {
        let sinks = self.maps[kind as usize].entry(path).or_default();
        // The default watcher is one watcher, as in Java: registered once per path and kind.
        if matches!(sink, Sink::Default) && sinks.iter().any(|s| matches!(s, Sink::Default)) {
            return;
        }
        sinks.push(sink);
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.maps.iter().all(HashMap::is_empty)
    }

    /// The sinks an event of `event_type` on `path` fires; one-shot ones are removed.
    pub(crate) fn fire(&mut self, event_type: EventType, path: &str) -> Vec<Sink> {
        let mut out = Vec::new();
        let mut take = |map: &mut HashMap<String, Vec<Sink>>| {
            if let Some(v) = map.remove(path) {
                out.extend(v);
            }
        };
        match event_type {
            EventType::NodeDataChanged | EventType::NodeCreated => {
                take(&mut self.maps[Kind::Data as usize]);
                take(&mut self.maps[Kind::Exist as usize]);
            }
            EventType::NodeChildrenChanged => take(&mut self.maps[Kind::Child as usize]),
            EventType::NodeDeleted => {
                take(&mut self.maps[Kind::Data as usize]);
                take(&mut self.maps[Kind::Exist as usize]);
                take(&mut self.maps[Kind::Child as usize]);
            }
            _ => {}
        }
        let mut keep = |kind: Kind, p: &str, out: &mut Vec<Sink>| {
            if let Some(v) = self.maps[kind as usize].get_mut(p) {
                v.retain(|s| !matches!(s, Sink::Stream(tx) if tx.is_closed()));
                out.extend(v.iter().map(|s| match s {
                    Sink::Stream(tx) => Sink::Stream(tx.clone()),
                    _ => Sink::Default,
                }));
            }
        };
        keep(Kind::Persistent, path, &mut out);
        if event_type != EventType::NodeChildrenChanged {
            let mut p = path;
            loop {
                keep(Kind::Recursive, p, &mut out);
                if p == "/" {
                    break;
                }
                p = match p.rfind('/') {
                    Some(0) | None => "/",
                    Some(i) => &p[..i],
                };
            }
        }
        out
    }

    /// Whether anything of `wtype` is registered on `path`.
    pub(crate) fn has(&self, path: &str, wtype: WatcherType) -> bool {
        kinds(wtype)
            .iter()
            .any(|k| self.maps[*k as usize].contains_key(path))
    }

    /// Removes the registrations of `wtype` on `path`, with the event each removed watcher
    /// is told (`DataWatchRemoved`, ...).
    pub(crate) fn remove(&mut self, path: &str, wtype: WatcherType) -> Vec<(Sink, EventType)> {
        let mut out = Vec::new();
        for kind in kinds(wtype) {
            let event = match kind {
                Kind::Data | Kind::Exist => EventType::DataWatchRemoved,
                Kind::Child => EventType::ChildWatchRemoved,
                Kind::Persistent | Kind::Recursive => EventType::PersistentWatchRemoved,
            };
            if let Some(v) = self.maps[*kind as usize].remove(path) {
                for s in v {
                    let dup = matches!(s, Sink::Default)
                        && out
                            .iter()
                            .any(|(o, e)| matches!(o, Sink::Default) && *e == event);
                    if !dup {
                        out.push((s, event));
                    }
                }
            }
        }
        out
    }

    /// Every sink, for a terminal session event; the registry is left empty.
    pub(crate) fn drain(&mut self) -> Vec<Sink> {
        self.maps
            .iter_mut()
            .flat_map(|m| m.drain().flat_map(|(_, v)| v))
            .collect()
    }

    /// The `setWatches2` records that re-arm everything, split so that no packet carries
    /// more than about 128 KB of paths (as the Java client does).
    pub(crate) fn set_watches(&self, relative_zxid: i64) -> Vec<SetWatches2> {
        const BATCH_BYTES: usize = 128 * 1024;
        let mut out = Vec::new();
        let empty = || SetWatches2 {
            relative_zxid,
            data_watches: Vec::new(),
            exist_watches: Vec::new(),
            child_watches: Vec::new(),
            persistent_watches: Vec::new(),
            persistent_recursive_watches: Vec::new(),
        };
        let mut cur = empty();
        let mut bytes = 0;
        for (i, map) in self.maps.iter().enumerate() {
            let mut paths: Vec<&String> = map.keys().collect();
            paths.sort();
            for p in paths {
                if bytes + p.len() > BATCH_BYTES && bytes > 0 {
                    out.push(std::mem::replace(&mut cur, empty()));
                    bytes = 0;
                }
                bytes += p.len() + 4;
                let list = match i {
                    0 => &mut cur.data_watches,
                    1 => &mut cur.exist_watches,
                    2 => &mut cur.child_watches,
                    3 => &mut cur.persistent_watches,
                    _ => &mut cur.persistent_recursive_watches,
                };
                list.push(p.clone());
            }
        }
        if bytes > 0 {
            out.push(cur);
        }
        out
    }
}

fn kinds(wtype: WatcherType) -> &'static [Kind] {
    match wtype {
        WatcherType::Children => &[Kind::Child],
        WatcherType::Data => &[Kind::Data, Kind::Exist],
        WatcherType::Any => &[
            Kind::Data,
            Kind::Exist,
            Kind::Child,
            Kind::Persistent,
            Kind::Recursive,
        ],
        WatcherType::Persistent => &[Kind::Persistent],
        WatcherType::PersistentRecursive => &[Kind::Recursive],
    }
}

/// A one-shot watch: resolves with the first event on its node, or with a session event
/// (`Expired`, `Closed`, `AuthFailed`) if the session ends first.
#[derive(Debug)]
pub struct OneshotWatch {
    pub(crate) rx: oneshot::Receiver<WatchedEvent>,
}

impl OneshotWatch {
    /// Waits for the event. If the client is dropped first, a `Closed` session event.
    pub async fn changed(self) -> WatchedEvent {
        self.rx
            .await
            .unwrap_or_else(|_| WatchedEvent::session(KeeperState::Closed))
    }
}

/// A persistent (or persistent recursive) watch: a stream of events until removed or the
/// session ends.
#[derive(Debug)]
pub struct PersistentWatch {
    pub(crate) rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl PersistentWatch {
    /// The next event; `None` once the watch is removed or the session is over.
    pub async fn next(&mut self) -> Option<WatchedEvent> {
        self.rx.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn once(r: &mut Registry, kind: Kind, path: &str) -> oneshot::Receiver<WatchedEvent> {
        let (tx, rx) = oneshot::channel();
        r.add(kind, path.into(), Sink::Once(tx));
        rx
    }

    #[test]
    fn materialize_rules() {
        let mut r = Registry::default();
        let _d = once(&mut r, Kind::Data, "/a");
        let _c = once(&mut r, Kind::Child, "/a");
        let (tx, _rx) = mpsc::unbounded_channel();
        r.add(Kind::Recursive, "/".into(), Sink::Stream(tx));
        assert_eq!(r.fire(EventType::NodeDataChanged, "/a").len(), 2);
        // The data watch is gone, the child watch and the recursive watch stay.
        assert_eq!(r.fire(EventType::NodeDataChanged, "/a").len(), 1);
        // Recursive watches never see child events.
        assert_eq!(r.fire(EventType::NodeChildrenChanged, "/a").len(), 1);
        assert_eq!(r.fire(EventType::NodeChildrenChanged, "/a").len(), 0);
        let sw = r.set_watches(7);
        assert_eq!(sw.len(), 1);
        assert_eq!(sw[0].persistent_recursive_watches, ["/"]);
        assert!(r.has("/", WatcherType::Any));
        assert_eq!(r.remove("/", WatcherType::Any).len(), 1);
        assert!(r.is_empty());
    }
}
