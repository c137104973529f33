#!/usr/bin/env bash
# Files written by our ChunkedWriter decrypt with tests/crypto/decrypt_chunked.py, an
# independent implementation (Python `cryptography`) written from docs/security.md; and a
# tampered file is refused by it. Fails (never skips) when python3 or cryptography is missing:
#   python3 -m pip install -r tests/crypto/requirements.txt
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "python_interop.sh: python3 with the 'cryptography' package is required (python3 -m pip install cryptography)" >&2
  exit 1
fi

cargo build -q --locked -p sigfab-engine --example chunked_encrypt
encrypt=target/debug/examples/chunked_encrypt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

key=$(python3 -c 'import os; print(os.urandom(32).hex())')
context=$(printf 'patient-0001/epoch-7' | od -An -tx1 | tr -d ' \n')
for size in 0 1 100 16383 16384 16385 32768 50000 200000; do
  head -c "$size" /dev/urandom > "$work/plain"
  "$encrypt" "$key" "$context" "$work/plain" "$work/sealed"
  python3 tests/crypto/decrypt_chunked.py --key-hex "$key" --context-hex "$context" "$work/sealed" "$work/opened"
  cmp "$work/plain" "$work/opened"
  echo "ok: $size bytes"
done

# A flipped bit, a wrong context and a cut at a chunk boundary must all be refused.
python3 - "$work/sealed" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[len(data) // 2] ^= 1
open(sys.argv[1] + ".flipped", "wb").write(data)
open(sys.argv[1] + ".cut", "wb").write(open(sys.argv[1], "rb").read()[: 56 + 16400])
PY
for variant in flipped cut; do
  if python3 tests/crypto/decrypt_chunked.py --key-hex "$key" --context-hex "$context" "$work/sealed.$variant" "$work/bad" 2>/dev/null; then
    echo "python_interop.sh: the $variant file was accepted" >&2
    exit 1
  fi
  echo "ok: $variant file refused"
done
if python3 tests/crypto/decrypt_chunked.py --key-hex "$key" --context-hex 00 "$work/sealed" "$work/bad" 2>/dev/null; then
  echo "python_interop.sh: a wrong context was accepted" >&2
  exit 1
fi
echo "ok: wrong context refused"
echo "python_interop.sh: all checks passed"
