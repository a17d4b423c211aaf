//! Generates the peer service from `proto/zk_peer.proto` (needs `protoc`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=../../proto/zk_peer.proto");
    tonic_build::configure()
        .build_server(true)
        .build_client(true)
        // A txn's data is shared, not copied, by the peer log, the commit and each message.
        .bytes([".zkpeer.v1.Txn.data"])
        .compile_protos(&["../../proto/zk_peer.proto"], &["../../proto"])?;
    Ok(())
}
