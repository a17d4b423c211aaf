//! The simulator through its public interface: seeds replay exactly, a fault-heavy run keeps
//! every invariant, and it reaches what it claims to test (every sync kind, leader changes,
//! session expiries, watches).

use zk_sim::{run, Coverage, Options};

#[test]
fn a_seed_replays_exactly() {
    let a = run(&Options::new(7, 3));
    let b = run(&Options::new(7, 3));
    assert_eq!(a.coverage, b.coverage);
    assert_eq!(a.violations, b.violations);
    assert_eq!(a.heal_to_write_ms, b.heal_to_write_ms);
}

#[test]
fn seeds_keep_every_invariant_and_reach_every_sync() {
    let mut total = Coverage::default();
    for seed in 1..=24 {
        let nodes = if seed % 2 == 0 { 5 } else { 3 };
        let report = run(&Options::new(seed, nodes));
        assert!(
            report.violations.is_empty(),
            "seed {seed}: {:?}",
            report.violations
        );
        total.add(&report.coverage);
    }
    assert!(total.leader_changes > 24, "{total}");
    assert!(total.diff_syncs > 0, "{total}");
    assert!(total.snap_syncs > 0, "{total}");
    assert!(total.trunc_syncs + total.trunc_diff_syncs > 0, "{total}");
    assert!(total.acked_writes > 1000 && total.reads > 1000, "{total}");
    assert!(
        total.session_expiries > 0 && total.ephemerals_created > 0,
        "{total}"
    );
}
