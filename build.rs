//! Build step: generates the protobuf messages edgelog decodes or answers with that no crate
//! ships (Loki's push request, google.rpc.Status) from the `.proto` files under `proto/`.
//!
//! `protox` compiles the `.proto` files in Rust (no `protoc` to install) and `prost-build`
//! writes the Rust types into `OUT_DIR`; nothing generated is checked in. OTLP's messages come
//! ready-made from the `opentelemetry-proto` crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["proto/loki/push.proto", "proto/google/rpc/status.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
