#!/usr/bin/env bash
# The component's build command (spin.toml `[component.edgelog.build]`, run by `spin build`,
# `spin up --build` and `edge-host up --build`): builds target/wasm32-wasip2/release/edgelog.wasm.
#
# rustup (1.29) does not add the targets listed in rust-toolchain.toml to a toolchain that is
# already installed, so on a fresh machine (rustup + stable, nothing else) a plain
# `cargo build --target wasm32-wasip2` stops with "can't find crate for `core`". This adds the
# target first when rustup is there and the target is missing; without rustup (a distribution's
# Rust, a CI image with the target baked in) it just runs the build.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1 \
  && ! rustup target list --installed 2>/dev/null | grep -x 'wasm32-wasip2' >/dev/null; then
  echo "[build-component] adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)" >&2
  rustup target add wasm32-wasip2
fi

# Whole-program optimisation for the component only (edge-host's release build would take far
# longer with it): serde_json, spin-sdk and std inline into the handlers. Issue 17's instruction
# counts: 14 % fewer guest instructions per single publish.
# tests/support/mod.rs builds with the same two settings.
export CARGO_PROFILE_RELEASE_LTO=${CARGO_PROFILE_RELEASE_LTO:-fat}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}
exec cargo build --target wasm32-wasip2 --release -p edgelog "$@"
