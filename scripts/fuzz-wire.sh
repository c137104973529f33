#!/usr/bin/env bash
# Fuzzes the wire decoders (engine/fuzz/fuzz_targets/decode.rs).
#
#   scripts/fuzz-wire.sh [SECONDS]      default 600
#
# Seeds engine/fuzz/corpus/decode from the encoder (an ignored unit test
# writes a few encoded frames and records), then runs libFuzzer for SECONDS.
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo-fuzz uses
# nightly-only rustc flags; RUSTC_BOOTSTRAP=1 lets a stable toolchain accept
# them. Crashes land in engine/fuzz/artifacts/decode/.
#
# `-s none`: no AddressSanitizer. The engine links librdkafka, whose C
# configure step cannot link test programs under ASAN flags, and the wire
# decoders are safe Rust (no `unsafe`), where ASAN has nothing to find;
# libFuzzer still catches panics, overflows (debug assertions on), hangs
# and out-of-memory.
set -euo pipefail

seconds="${1:-600}"
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$root/engine/fuzz/corpus/decode"

mkdir -p "$corpus"
SIGFAB_FUZZ_SEEDS="$corpus" cargo test -p sigfab-engine --lib wire::tests::write_fuzz_seeds \
    --manifest-path "$root/Cargo.toml" -- --ignored --quiet

cd "$root/engine"
RUSTC_BOOTSTRAP=1 cargo fuzz run -s none decode "$corpus" -- \
    -max_total_time="$seconds" -dict=fuzz/wire.dict -print_final_stats=1
