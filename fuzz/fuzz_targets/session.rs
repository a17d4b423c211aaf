//! Client connections, as bytes on the wire, against a whole in-memory server.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    zk_server::fuzzing::serve_streams(data);
});
