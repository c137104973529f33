#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): everything CI checks,
# runnable on a fresh machine with only the Rust toolchain installed.
#
# Real-data tests read ../shared/data (override with SIGFAB_SHARED_DATA);
# they fail, never skip, when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export SIGFAB_SHARED_DATA="${SIGFAB_SHARED_DATA:-$PWD/../shared/data}"
if [ ! -d "$SIGFAB_SHARED_DATA" ]; then
  echo "test.sh: the real recordings are missing: $SIGFAB_SHARED_DATA (set SIGFAB_SHARED_DATA)" >&2
  exit 1
fi

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check

step "lint"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests"
cargo test --workspace --locked

step "demo (README's first command)"
cargo run -q --locked --bin sigfab -- run pipelines/demo.yaml
test -s out/demo/frames.jsonl
