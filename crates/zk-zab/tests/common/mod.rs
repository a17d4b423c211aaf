//! The event queue the protocol simulations share: a seeded RNG and delivery that is FIFO per
//! lane (a link between two servers, or one server's disk), as Zab's TCP links and a log's
//! appends are.

// Each test binary uses part of this module.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use zk_zab::ServerId;

pub struct Scheduler<E> {
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, E>,
    lane_last: BTreeMap<(ServerId, ServerId), u64>,
    seq: u64,
    rng: u64,
    /// Simulated milliseconds: the time of the last event taken.
    pub now: u64,
}

impl<E> Scheduler<E> {
    pub fn new(seed: u64) -> Scheduler<E> {
        Scheduler {
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            lane_last: BTreeMap::new(),
            seq: 0,
            rng: seed | 1,
            now: 0,
        }
    }

    /// A number in `0..n` (xorshift).
    pub fn rand(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    /// `e` happens 1..=`max_delay` ms from now, never before an earlier event of its lane.
    pub fn schedule(&mut self, lane: (ServerId, ServerId), max_delay: u64, e: E) {
        let at = (self.now + 1 + self.rand(max_delay))
            .max(self.lane_last.get(&lane).copied().unwrap_or(0));
        self.lane_last.insert(lane, at);
        self.seq += 1;
        self.events.insert(self.seq, e);
        self.queue.push(Reverse((at, self.seq)));
    }

    /// The next event, moving the clock to it.
    pub fn pop(&mut self) -> Option<E> {
        let Reverse((at, seq)) = self.queue.pop()?;
        self.now = at;
        self.events.remove(&seq)
    }

    /// Forgets everything pending (a network that loses all in-flight messages).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.events.clear();
    }
}
