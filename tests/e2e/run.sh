#!/usr/bin/env bash
# End-to-end tests: sigfab between topics of a real Kafka-protocol broker (tansu),
# checked with an independent client (confluent-kafka) and wire decoder (wire.py).
#
#   tests/e2e/run.sh                      everything
#   tests/e2e/run.sh -m "not engine_kafka"   what needs no Kafka support in the engine
#   tests/e2e/run.sh -k poisoned          extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/../.."

export SIGFAB_SHARED_DATA="${SIGFAB_SHARED_DATA:-$PWD/../shared/data}"

if ! python3 -c 'import confluent_kafka, pytest' 2>/dev/null; then
  echo "run.sh: installing tests/e2e/requirements.txt" >&2
  python3 -m pip install -q -r tests/e2e/requirements.txt
fi

if [ -z "${SIGFAB_BIN:-}" ]; then
  cargo build --locked --bin sigfab
fi

scripts/broker.sh install

python3 -m pytest -q tests/e2e "$@"
