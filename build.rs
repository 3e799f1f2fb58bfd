//! Build step: generates the protobuf messages edgelog decodes or answers with that no crate
//! ships (Loki's push request, google.rpc.Status) from the `.proto` files under `proto/`.
//!
//! `protox` compiles the `.proto` files in Rust (no `protoc` to install) and `prost-build`
//! writes the Rust types into `OUT_DIR`; nothing generated is checked in. OTLP's messages come
//! ready-made from the `opentelemetry-proto` crate.
//!
//! It also sets the component's stack to [`STACK_BYTES`] (Rust's wasm default is 1 MiB). The
//! stack sits at the bottom of linear memory, and every Spin host (wasmtime's pooling allocator,
//! which neither Spin nor edge-host lets scan for dirty pages) clears every byte of an instance's
//! linear memory, up to 2 MiB, after each request: with 1 MiB that reset was the largest single
//! cost of a publish (docs/BENCHMARKS.md, "Cost per event"). 192 KiB leaves room for `arena`'s
//! 32 KiB inside the same 512 KiB; the deepest accepted nesting still fits many times over
//! (tests/ingest_otlp.rs, tests/roundtrip; they fail with a 16 KiB stack).
//!
//! The instance also starts with [`HEAP_BYTES`] of heap (wasm-ld's `--initial-heap`; by default
//! the heap starts empty at the end of the static data). Growing linear memory costs the host
//! two `mprotect` calls per request — one to open the new pages, one to close them again when
//! the next instance takes the slot, a TLB shootdown on every core running the process — which
//! is far more than clearing the same pages (the reset clears the whole initial memory
//! after every request anyway): with an empty heap every 100-event publish grew by 64 KiB
//! (docs/BENCHMARKS.md, "Log lines straight to stderr, and room to start with"). Larger
//! requests still grow memory as before.
//!
//! And it gzips `docs/openapi.json` (172 KB of text, 18 KB compressed) for the component to
//! embed: static data is part of the linear-memory image each instance starts from (the
//! initial memory went from 640 to 512 KiB), so the contract is unpacked only when
//! `/openapi.json` is asked for.

/// The component's stack, in bytes.
const STACK_BYTES: u32 = 192 << 10;
/// The heap an instance starts with, in bytes: a 100-event publish's (the allocator's first
/// blocks, the body, the parsed events, the statement's parameters).
const HEAP_BYTES: u32 = 128 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=-zstack-size={STACK_BYTES}");
        println!("cargo:rustc-link-arg=--initial-heap={HEAP_BYTES}");
    }
    let files = ["proto/loki/push.proto", "proto/google/rpc/status.proto"];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    println!("cargo:rerun-if-changed=docs/openapi.json");
    let contract = std::fs::read("docs/openapi.json")?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &contract)?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("openapi.json.gz");
    std::fs::write(out, gz.finish()?)?;
    let descriptors = protox::compile(files, ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
