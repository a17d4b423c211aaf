//! Feeds arbitrary bytes through every decoder of zk-proto; see `zk_proto::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zk_proto::fuzzing::decode_everything(data);
});
