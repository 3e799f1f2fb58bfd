# Shared by scripts/profile-publish.sh and scripts/count-instructions.sh (sourced, not run):
# their arguments (`[postgres|sqlite] [--requests N]`) and their builds, with symbols, so
# `perf` and callgrind can name functions (the shipped edge-host and .wasm stay stripped).
#
# In: PROFILE_DEFAULT_REQUESTS, the script's arguments. Out: $store, $requests, say().

store=postgres
requests=$PROFILE_DEFAULT_REQUESTS
while [ $# -gt 0 ]; do
  case $1 in
    postgres | sqlite) store=$1 ;;
    --requests) requests=$2; shift ;;
    *) echo "usage: $0 [postgres|sqlite] [--requests N]" >&2; exit 2 ;;
  esac
  shift
done
say() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# Builds loadgen (release), edge-host into target/profile/host and the component into
# target/profile/wasm, both with symbols.
build_profiled() {
  say "building loadgen (release), and edge-host and the component with symbols"
  cargo build --release -p loadgen
  CARGO_PROFILE_RELEASE_STRIP=false cargo build --release -p edge-host --target-dir target/profile/host
  CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=false \
    scripts/build-component.sh --target-dir target/profile/wasm
}
