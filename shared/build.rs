//! Generates the Rust code for every `.proto` under `proto/` at build time.
//!
//! protox compiles the protos in pure Rust, so no `protoc` binary is needed on any machine
//! (developer, CI or Docker build). The encoded descriptor set is written next to the generated
//! code because gRPC server reflection serves it.

use std::path::{Path, PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not with env!(): cargo reuses a compiled build script for a checkout at
    // another path (worktrees, CI clones sharing CARGO_TARGET_DIR).
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();

    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = descriptors.encode_to_vec();
    std::fs::write(out_dir.join("rowferry_descriptor.bin"), &encoded)?;
    // serde implementations following the proto3 JSON mapping (what grpcurl prints), next to
    // the prost code as `<package>.serde.rs`.
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .build(&[".rowferry"])?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Well-known types with serde (pbjson) so that whole messages serialize to JSON.
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
