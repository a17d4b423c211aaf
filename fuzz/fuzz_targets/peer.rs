//! Another member's frames, decoded and stepped through a zk-zab peer.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zk_peer::fuzzing::drive_peer(data);
});
