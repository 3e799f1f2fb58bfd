//! Build step: generates Loki's push messages (`logproto.PushRequest`), which no crate ships,
//! from the repository's `proto/loki/push.proto`, the same file the service decodes with, so
//! `--protocol loki` sends exactly what the service reads. `protox` compiles the `.proto` in
//! Rust (no `protoc`), `prost-build` writes the types into `OUT_DIR`; nothing is checked in.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = "../proto/loki/push.proto";
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], ["../proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
