use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        root.join("dirsync/v1/api.proto"),
        root.join("dirsync/v1/bus.proto"),
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // Slices of the staged batch, not copies.
        .bytes(".dirsync.bus.v1.ObjectBatchEntries.entries")
        .bytes(".dirsync.bus.v1.StagedCollectorEvent.batch")
        .bytes(".dirsync.bus.v1.StagedCollectorEvent.batch_lz4")
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
