//! Damaged snapshots and txn logs: the readers and recovery of a data directory.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zk_log::fuzzing::read_everything(data);
});
