#!/usr/bin/env bash
# The project's test command (README.md, .ci/run): everything CI checks,
# runnable on a fresh machine with the Rust toolchain and Python 3: it installs
# what else it needs (the tansu broker, ~15 min to build the first time; the
# confluent-kafka, pytest and cryptography packages; Debian's prometheus).
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

step "Kafka end to end (real broker: tansu; independent client: confluent-kafka)"
SIGFAB_BIN="$PWD/target/debug/sigfab" ./tests/e2e/run.sh

step "crypto interop (independent decryption: Python cryptography)"
if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "test.sh: installing tests/crypto/requirements.txt" >&2
  python3 -m pip install -q -r tests/crypto/requirements.txt
fi
./tests/crypto/python_interop.sh

step "demo (README's first command)"
cargo run -q --locked --bin sigfab -- run pipelines/demo.yaml
test -s out/demo/frames.jsonl
