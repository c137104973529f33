#!/usr/bin/env bash
# Independent decryption (Python `cryptography`, written from docs/security.md only):
# 1. files written by our ChunkedWriter decrypt with tests/crypto/decrypt_chunked.py, and
#    tampered ones are refused;
# 2. tests/crypto/decrypt_archive.py passes its X-Wing self-test on the draft's vectors, then
#    decrypts every segment the `archive` sink wrote for MIT-BIH record 100 (keys from
#    `sigfab keygen`, two recipients) to exactly the bytes of a plain binary `file` sink in the
#    same pipeline, and refuses tampered segments, a stranger's identity and a missing entry.
# Fails (never skips) when python3, cryptography, the record or the vectors are missing:
#   python3 -m pip install -r tests/crypto/requirements.txt
# The sigfab binary: $SIGFAB_BIN, else target/debug/sigfab (built here).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! python3 -c 'import cryptography' 2>/dev/null; then
  echo "python_interop.sh: python3 with the 'cryptography' package is required (python3 -m pip install cryptography)" >&2
  exit 1
fi
data="${SIGFAB_SHARED_DATA:-$PWD/../shared/data}"
vectors="${SIGFAB_SHARED_VECTORS:-$PWD/../shared/vectors}"
for needed in "$data/wfdb/100.hea" "$vectors/xwing/test-vectors.json"; do
  if [ ! -f "$needed" ]; then
    echo "python_interop.sh: missing $needed (set SIGFAB_SHARED_DATA / SIGFAB_SHARED_VECTORS)" >&2
    exit 1
  fi
done

cargo build -q --locked -p sigfab-engine --example chunked_encrypt
if [ -z "${SIGFAB_BIN:-}" ]; then
  cargo build -q --locked -p sigfab-engine --bin sigfab
fi
sigfab=$(realpath "${SIGFAB_BIN:-target/debug/sigfab}")
encrypt=target/debug/examples/chunked_encrypt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- chunked encryption -------------------------------------------------------------------
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
rm -f "$work/bad"

# --- the archive sink ---------------------------------------------------------------------
decrypt_archive=$PWD/tests/crypto/decrypt_archive.py
python3 "$decrypt_archive" --self-test "$vectors/xwing/test-vectors.json"

archive=$work/archive
mkdir "$archive"
patient=p1-0123456789abcdef0123456789abcdef # deidentify's pseudonym shape (pseudonyms_only)
(
  cd "$archive"
  for who in alice bob eve; do "$sigfab" keygen --out "$who" >/dev/null; done
  cat > p.yaml <<EOF
sources:
  ecg:
    file: { path: $data/wfdb/100.hea, frame: 40ms, stream_id: $patient }
sinks:
  plain: { inputs: [ecg], file: { path: out/plain.bin, format: binary } }
  sealed:
    inputs: [ecg]
    archive:
      path: out/archive
      keystore: keys
      recipients: [alice.recipient, bob.recipient]
      max_segment_bytes: 262144
EOF
  "$sigfab" run p.yaml >/dev/null
)
segments=$(find "$archive/out/archive" -name '*.sfa' | wc -l)
if [ "$segments" -lt 10 ] || find "$archive/out/archive" -name '*.part' | grep -q .; then
  echo "python_interop.sh: expected 10 or more finished segments, found $segments" >&2
  exit 1
fi
for who in alice bob; do
  python3 "$decrypt_archive" --identity "$archive/$who.identity" --keystore "$archive/keys" \
    --out "$archive/restored-$who.bin" "$archive/out/archive" >/dev/null
  cmp "$archive/out/plain.bin" "$archive/restored-$who.bin"
  echo "ok: $who decrypts $segments segments to the plain sink's $(stat -c %s "$archive/out/plain.bin") bytes"
done

# One segment, copied under its own name (the name must match its header), then tampered:
# every variant must be refused with nothing written.
one=$(find "$archive/out/archive" -name '*-0000000003.sfa')
name=$(basename "$one")
refused() { # refused WHAT IDENTITY KEYSTORE SEGMENT
  if python3 "$decrypt_archive" --identity "$2" --keystore "$3" --out "$work/bad" "$4" 2>/dev/null; then
    echo "python_interop.sh: $1 was accepted" >&2
    exit 1
  fi
  if [ -e "$work/bad" ]; then
    echo "python_interop.sh: $1 released output" >&2
    exit 1
  fi
  echo "ok: $1 refused"
}
mkdir "$work/seg"
cp "$one" "$work/seg/$name"
# Control: the untouched copy decrypts on its own.
python3 "$decrypt_archive" --identity "$archive/alice.identity" --keystore "$archive/keys" \
  --out "$work/one.bin" "$work/seg/$name" >/dev/null
test -s "$work/one.bin"
variants="chunk-bit final-tag-bit sequence-bit sequence-bit-renamed salt-bit cut-at-chunk cut-one-byte trailing-byte swapped-chunks"
python3 - "$one" "$work" $variants <<'PY'
import os, sys

src, work, names = sys.argv[1], sys.argv[2], sys.argv[3:]
data = bytes(open(src, "rb").read())
n = data[5]
body = 62 + n + 56  # the segment header, then the chunked header (salt, commitment)
full = 16400
assert len(data) > body + 2 * full, "segment too short for the chunk variants"


def flip(at):
    d = bytearray(data)
    d[at] ^= 0x01
    return bytes(d)


variants = {
    "chunk-bit": flip(body + 100),
    "final-tag-bit": flip(len(data) - 1),
    "sequence-bit": flip(29 + n),  # the name no longer matches the header
    "sequence-bit-renamed": flip(29 + n),  # named to match: the context (header) differs
    "salt-bit": flip(30 + n),
    "cut-at-chunk": data[: body + full],
    "cut-one-byte": data[:-1],
    "trailing-byte": data + b"\x00",
    "swapped-chunks": data[:body] + data[body + full : body + 2 * full] + data[body : body + full]
    + data[body + 2 * full :],
}
assert sorted(variants) == sorted(names)
for what, changed in variants.items():
    assert changed != data
    name = os.path.basename(src)
    if what == "sequence-bit-renamed":
        key_id, sequence = name[:-4].split("-")
        name = f"{key_id}-{int(sequence) ^ 1:010d}.sfa"
    os.makedirs(os.path.join(work, what))
    with open(os.path.join(work, what, name), "wb") as f:
        f.write(changed)
PY
for variant in $variants; do
  refused "a segment with $variant" "$archive/alice.identity" "$archive/keys" "$work/$variant"
done
refused "a stranger's identity" "$archive/eve.identity" "$archive/keys" "$work/seg/$name"
mkdir "$work/empty-keystore"
refused "a segment whose keystore entry is gone" "$archive/alice.identity" "$work/empty-keystore" "$work/seg/$name"
echo "python_interop.sh: all checks passed"
