#!/usr/bin/env bash
# A real Kafka-protocol broker for tests: tansu, in memory, on a free loopback port.
#
#   scripts/broker.sh install        install tansu (cargo) unless it is already there
#   scripts/broker.sh start [DIR]    start a broker; writes DIR/broker.{pid,addr,log}, prints host:port
#   scripts/broker.sh stop [DIR]     stop the broker started into DIR
#
# DIR defaults to ./out/broker. Both start and stop are idempotent: start reuses a
# broker that is already running in DIR and answering; stop does nothing when none is.
# tansu needs its `dynostore` feature for the memory:// storage engine.
set -euo pipefail

TANSU_VERSION="${TANSU_VERSION:-0.6}"   # the version the e2e tests were checked with (shared/FIELD-NOTES.md)
START_TIMEOUT_S="${BROKER_START_TIMEOUT_S:-30}"

say() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

find_tansu() {
  if command -v tansu >/dev/null 2>&1; then
    command -v tansu
  elif [ -x "$HOME/.cargo/bin/tansu" ]; then
    echo "$HOME/.cargo/bin/tansu"
  else
    return 1
  fi
}

cmd_install() {
  local found
  if found="$(find_tansu)"; then
    say "tansu already installed: $found ($("$found" --version 2>/dev/null || echo 'version unknown'))"
    return 0
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo is needed to install tansu (install the Rust toolchain)"
  say "installing tansu $TANSU_VERSION: cargo install tansu --locked --features dynostore"
  say "(a first build takes 10-15 minutes on 2 cores)"
  cargo install tansu --version "^$TANSU_VERSION" --locked --features dynostore
  found="$(find_tansu)" || die "cargo install finished but no tansu binary was found"
  say "installed: $found"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() { # PIDFILE
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# Succeeds when ADDR accepts a TCP connection and answers a metadata request
# (confluent-kafka when installed, else a raw ApiVersions v0 request).
probe() { # ADDR
  python3 - "$1" <<'PY'
import socket, struct, sys

host, port = sys.argv[1].rsplit(":", 1)
with socket.create_connection((host, int(port)), timeout=2):
    pass
try:
    from confluent_kafka.admin import AdminClient
except ImportError:
    AdminClient = None
if AdminClient is not None:
    admin = AdminClient({"bootstrap.servers": sys.argv[1], "log_level": 0})
    metadata = admin.list_topics(timeout=3)
    sys.exit(0 if metadata.brokers else 1)
client = b"broker.sh"
body = struct.pack(">hhih", 18, 0, 7, len(client)) + client  # ApiVersions v0, correlation id 7
with socket.create_connection((host, int(port)), timeout=3) as s:
    s.sendall(struct.pack(">i", len(body)) + body)
    header = s.recv(8)
    sys.exit(0 if len(header) == 8 and struct.unpack(">ii", header)[1] == 7 else 1)
PY
}

cmd_start() {
  local dir tansu port addr pid deadline
  mkdir -p "$1"
  dir="$(cd "$1" && pwd)"
  if is_running "$dir/broker.pid" && [ -f "$dir/broker.addr" ] && probe "$(cat "$dir/broker.addr")" 2>/dev/null; then
    say "already running (pid $(cat "$dir/broker.pid"))"
    cat "$dir/broker.addr"
    return 0
  fi
  cmd_stop "$dir" 2>/dev/null   # a stale pid from an earlier run
  tansu="$(find_tansu)" || { cmd_install; tansu="$(find_tansu)"; }

  port="$(free_port)"
  addr="127.0.0.1:$port"
  say "starting $tansu broker on $addr (memory storage), log: $dir/broker.log"
  # tansu reads flags from environment variables and from a .env file in the working
  # directory or above (dotenv): run it in DIR, with every setting that matters given as
  # a flag and the optional ones that would change behaviour (schema validation,
  # telemetry export) unset.
  (
    cd "$dir"
    exec env -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u DATA_LAKE \
      nohup "$tansu" broker \
      --cluster-id sigfab-test \
      --storage-engine memory://tansu/ \
      --listener-url "tcp://$addr" \
      --advertised-listener-url "tcp://$addr" \
      >broker.log 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" >"$dir/broker.pid"
  echo "$addr" >"$dir/broker.addr"

  deadline=$((SECONDS + START_TIMEOUT_S))
  until probe "$addr" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$dir/broker.log" >&2 || true
      rm -f "$dir/broker.pid"
      die "tansu exited during start-up (log above, $dir/broker.log)"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$dir/broker.log" >&2 || true
      cmd_stop "$dir"
      die "tansu did not answer a metadata request on $addr within ${START_TIMEOUT_S}s"
    fi
    sleep 0.2
  done
  say "ready (pid $pid)"
  echo "$addr"
}

cmd_stop() {
  local dir="$1" pid
  if [ ! -f "$dir/broker.pid" ]; then
    say "no broker.pid in $dir: nothing to stop"
    return 0
  fi
  pid="$(cat "$dir/broker.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # reap it when it is our child; otherwise wait until it is gone
    wait "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  else
    say "pid $pid is not running"
  fi
  rm -f "$dir/broker.pid"
}

main() {
  local command="${1:-}" dir="${2:-out/broker}"
  case "$command" in
    install) cmd_install ;;
    start) cmd_start "$dir" ;;
    stop) cmd_stop "$dir" ;;
    *) die "usage: $0 install | start [DIR] | stop [DIR]" ;;
  esac
}

main "$@"
