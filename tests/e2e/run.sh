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

# A real Prometheus (and promtool) for the metrics checks: Debian's package.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "run.sh: installing Debian's prometheus package (for the metrics checks)" >&2
  as_root=""
  [ "$(id -u)" -eq 0 ] || as_root="sudo"
  apt_install() { $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; }
  apt_install >/dev/null || { $as_root apt-get update -q >/dev/null && apt_install >/dev/null; }
fi

if [ -z "${SIGFAB_BIN:-}" ]; then
  cargo build --locked --bin sigfab
fi

scripts/broker.sh install

python3 -m pytest -q tests/e2e "$@"
