//! A deterministic simulator for whole ensembles: the real [`zk_zab::peer::Peer`] and the
//! real [`zk_tree::DataTree`] of every server, simulated disks, FIFO links and clients, all in
//! one thread and driven by one seed. Faults: crashes, power loss (unsynced writes lost),
//! partitions (noisy, silent, one-way), dropped connections, slow links, pauses, clock skew.
//!
//! [`run`] plays one seed and checks the history it produced ([`check`]); the `zk-sim`
//! binary runs many seeds and prints `N seeds, V violations` with coverage counts.

pub mod check;
mod rng;
mod world;

pub use rng::Rng;
pub use world::{run, Coverage, Options, Report};
