#!/usr/bin/env python3
"""Independent decryption of Signal Fabric archive segments (`archive` sink), using only the
`cryptography` package and hashlib.

Written from docs/security.md ("X-Wing", "Envelope files", "Chunked encryption", "The encrypted
archive": key files, keystore entries, segments), not from the Rust code, so that it checks the
documented format rather than the implementation.

    python3 tests/crypto/decrypt_archive.py --identity ID --keystore DIR --out OUT SEGMENT_OR_DIR...
    python3 tests/crypto/decrypt_archive.py --self-test X_WING_VECTORS_JSON

Folders are searched for `.sfa` files in path order. OUT receives the segments' plaintexts
(binary wire-format v1 messages) concatenated, and is written only if every segment decrypts.
Any failure raises (exit status non-zero) and writes nothing.
"""

import argparse
import hashlib
import json
import os
import re
import sys

from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF, HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


class Invalid(Exception):
    """A file does not parse or does not authenticate."""


# --- X-Wing (draft-connolly-cfrg-xwing-kem) -------------------------------------------------

XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")  # "\.//^\"
XWING_PK_LEN = 1216
XWING_CT_LEN = 1120
MLKEM_CT_LEN = 1088


class XWingKey:
    """The decapsulation key expanded from a 32-byte seed."""

    def __init__(self, seed: bytes):
        if len(seed) != 32:
            raise Invalid(f"an X-Wing seed is 32 bytes, not {len(seed)}")
        expanded = hashlib.shake_256(seed).digest(96)
        # cryptography's 64-byte ML-KEM seed is FIPS 203's (d, z): KeyGen_internal(d, z).
        self.sk_m = MLKEM768PrivateKey.from_seed_bytes(expanded[0:64])
        self.sk_x = X25519PrivateKey.from_private_bytes(expanded[64:96])
        self.pk_m = self.sk_m.public_key().public_bytes_raw()
        self.pk_x = self.sk_x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def public_key(self) -> bytes:
        return self.pk_m + self.pk_x

    def decapsulate(self, ct: bytes) -> bytes:
        if len(ct) != XWING_CT_LEN:
            raise Invalid(f"an X-Wing ciphertext is {XWING_CT_LEN} bytes, not {len(ct)}")
        ct_m, ct_x = ct[:MLKEM_CT_LEN], ct[MLKEM_CT_LEN:]
        ss_m = self.sk_m.decapsulate(ct_m)
        ss_x = self.sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
        return hashlib.sha3_256(ss_m + ss_x + ct_x + self.pk_x + XWING_LABEL).digest()


def self_test(path: str) -> None:
    """The X-Wing draft's vectors: the public key from the seed, and decapsulation of ct."""
    with open(path) as f:
        vectors = json.load(f)
    if not vectors:
        raise Invalid("no X-Wing vectors")
    for i, v in enumerate(vectors):
        key = XWingKey(bytes.fromhex(v["seed"]))
        if key.public_key() != bytes.fromhex(v["pk"]):
            raise Invalid(f"X-Wing vector {i}: public key differs")
        if key.decapsulate(bytes.fromhex(v["ct"])) != bytes.fromhex(v["ss"]):
            raise Invalid(f"X-Wing vector {i}: shared secret differs")
        # A modified ciphertext (ML-KEM part, then X25519 part) gives another secret.
        for pos in (0, MLKEM_CT_LEN):
            ct = bytearray.fromhex(v["ct"])
            ct[pos] ^= 1
            if key.decapsulate(bytes(ct)) == bytes.fromhex(v["ss"]):
                raise Invalid(f"X-Wing vector {i}: a modified ciphertext gave the same secret")
    print(f"decrypt_archive: X-Wing self-test passed ({len(vectors)} vectors)")


# --- key files ------------------------------------------------------------------------------

IDENTITY_TYPE = "sigfab-identity-v1"


def read_identity(path: str) -> XWingKey:
    with open(path) as f:
        lines = [line.strip() for line in f]
    keys = [line for line in lines if line and not line.startswith("#")]
    if len(keys) != 1:
        raise Invalid(f"{path}: expected exactly one key line, found {len(keys)}")
    parts = keys[0].split(":")
    if len(parts) != 3 or parts[0] != IDENTITY_TYPE:
        raise Invalid(f"{path}: not a {IDENTITY_TYPE} line")
    if len(parts[1]) != 64 or len(parts[2]) != 8:
        raise Invalid(f"{path}: wrong field lengths")
    seed = bytes.fromhex(parts[1])
    checksum = hashlib.sha256(IDENTITY_TYPE.encode() + b":" + seed).digest()[0:4]
    if not constant_time.bytes_eq(checksum, bytes.fromhex(parts[2])):
        raise Invalid(f"{path}: checksum mismatch")
    return XWingKey(seed)


# --- envelopes (keystore entries) -------------------------------------------------------------

ENVELOPE_MAGIC = b"SFE1"
SUITE_XWING = 0x01
SLOT_LEN = XWING_CT_LEN + 48
WRAP_INFO = b"sigfab.envelope.v1 data key wrap" + b"\x00"


def open_envelope_key(entry: bytes, identity: XWingKey, context: bytes) -> bytes:
    """The data key of an envelope without a body (a keystore entry: the patient key)."""
    if len(entry) < 6 or entry[0:4] != ENVELOPE_MAGIC:
        raise Invalid("keystore entry: bad magic")
    if entry[4] != SUITE_XWING:
        raise Invalid(f"keystore entry: unknown suite {entry[4]}")
    n = entry[5]
    if n < 1:
        raise Invalid("keystore entry: no recipient slots")
    if len(entry) != 6 + n * SLOT_LEN:
        raise Invalid(f"keystore entry: {len(entry)} bytes, expected {6 + n * SLOT_LEN}")
    aad = entry[0:6]
    for j in range(n):
        slot = entry[6 + j * SLOT_LEN : 6 + (j + 1) * SLOT_LEN]
        ss = identity.decapsulate(slot[:XWING_CT_LEN])
        kek = HKDF(hashes.SHA256(), 32, salt=b"", info=WRAP_INFO + context).derive(ss)
        try:
            key = AESGCM(kek).decrypt(b"\x00" * 12, slot[XWING_CT_LEN:], aad)
        except Exception:
            continue  # not our slot (X-Wing rejects implicitly, so the tag fails)
        if len(key) != 32:
            raise Invalid("keystore entry: the wrapped key is not 32 bytes")
        return key
    raise Invalid("no recipient slot opens with this identity")


# --- C2SP chunked encryption (AES-256-GCM, HKDF-SHA-512) ----------------------------------------

C2SP_INFO = b"c2sp.org/chunked-encryption@v1+" + b"AEAD_AES_256_GCM" + b"\x00"
CHUNK = 16384
TAG = 16
SEALED = CHUNK + TAG


def chunked_decrypt(data: bytes, input_key: bytes, context: bytes) -> bytes:
    if len(data) < 56:
        raise Invalid("chunked body: truncated inside its header")
    salt, commitment = data[0:24], data[24:56]
    okm = HKDFExpand(hashes.SHA512(), 76, C2SP_INFO + salt + context).derive(input_key)
    key, base_nonce, expected = okm[0:32], okm[32:44], okm[44:76]
    if not constant_time.bytes_eq(commitment, expected):
        raise Invalid("chunked body: commitment mismatch (wrong key or context)")
    aead = AESGCM(key)
    base = int.from_bytes(base_nonce, "big")
    out, offset, index = [], 56, 0
    while True:
        if index >= 1 << 38:
            raise Invalid("chunked body: more than 2^38 chunks")
        sealed = data[offset : offset + SEALED]
        if len(sealed) < TAG:
            raise Invalid(f"chunked body: truncated (chunk {index} has {len(sealed)} bytes)")
        nonce = (base ^ index).to_bytes(12, "big")
        out.append(aead.decrypt(nonce, sealed, None))  # InvalidTag propagates
        offset += len(sealed)
        if len(sealed) < SEALED:
            # The short chunk is the final one; the slice read it to the end of the file, so
            # trailing bytes became part of it and failed its tag.
            return b"".join(out)
        index += 1  # a full chunk is never final


# --- archive segments ---------------------------------------------------------------------------

SEGMENT_MAGIC = b"SFA1"
PATIENT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
SEGMENT_INFO = b"sigfab.archive.v1 segment key" + b"\x00"
KEYSTORE_INFO = b"sigfab.keystore.v1" + b"\x00"


def parse_segment_header(data: bytes):
    if len(data) < 6 or data[0:4] != SEGMENT_MAGIC:
        raise Invalid("segment: bad magic")
    if data[4] != 0x01:
        raise Invalid(f"segment: unknown version {data[4]}")
    n = data[5]
    if not 1 <= n <= 128 or len(data) < 62 + n:
        raise Invalid("segment: bad patient id length or truncated header")
    patient = data[6 : 6 + n].decode("ascii")
    if not PATIENT_RE.fullmatch(patient) or patient.startswith("."):
        raise Invalid("segment: invalid patient id")
    key_id = data[6 + n : 22 + n]
    sequence = int.from_bytes(data[22 + n : 30 + n], "big")
    salt = data[30 + n : 62 + n]
    return n, patient, key_id, sequence, salt


def check_wire_messages(plaintext: bytes, patient: str) -> int:
    """Frames the plaintext into wire-format v1 messages (docs/wire-format.md §3.1) and checks
    each one's stream id is the header's patient. (CRC-32C is left to the AEAD's integrity.)"""
    offset, count = 0, 0
    while offset < len(plaintext):
        header = plaintext[offset : offset + 12]
        if len(header) < 12 or header[0:4] != b"SGFB" or header[4] != 1 or header[5] not in (1, 2):
            raise Invalid(f"wire message {count}: bad header")
        length = int.from_bytes(header[8:12], "little")
        if length < 16 or offset + length > len(plaintext):
            raise Invalid(f"wire message {count}: bad length")
        id_len = int.from_bytes(plaintext[offset + 12 : offset + 14], "little")
        stream = plaintext[offset + 14 : offset + 14 + id_len].decode("utf-8")
        if stream != patient:
            raise Invalid(f"wire message {count}: belongs to another stream")
        offset += length
        count += 1
    return count


def decrypt_segment(path: str, identity: XWingKey, keystore: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    n, patient, key_id, sequence, salt = parse_segment_header(data)
    if os.path.basename(path) != f"{key_id.hex()}-{sequence:010d}.sfa":
        raise Invalid(f"{path}: the file name does not match the segment header")
    entry_path = os.path.join(keystore, patient, key_id.hex() + ".key")
    with open(entry_path, "rb") as f:  # a missing entry (shredded) raises here
        entry = f.read()
    entry_context = KEYSTORE_INFO + patient.encode("ascii") + b"\x00" + key_id
    patient_key = open_envelope_key(entry, identity, entry_context)
    segment_key = HKDF(
        hashes.SHA256(), 32, salt=salt, info=SEGMENT_INFO + data[0 : 30 + n]
    ).derive(patient_key)
    plaintext = chunked_decrypt(data[62 + n :], segment_key, data[0 : 62 + n])
    check_wire_messages(plaintext, patient)
    return plaintext


def segment_paths(args) -> list:
    """Files as given; folders searched depth first, each folder's entries sorted by name."""

    def walk(folder, out):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                walk(path, out)
            elif name.endswith(".sfa"):
                out.append(path)

    paths = []
    for arg in args:
        if os.path.isdir(arg):
            walk(arg, paths)
        else:
            paths.append(arg)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--self-test", metavar="VECTORS", help="check X-Wing against its vectors")
    parser.add_argument("--identity", help="a sigfab-identity-v1 file (sigfab keygen)")
    parser.add_argument("--keystore", help="the archive sink's keystore folder")
    parser.add_argument("--out", help="where the concatenated wire messages go")
    parser.add_argument("segments", nargs="*", help=".sfa files or folders")
    args = parser.parse_args()
    if args.self_test:
        self_test(args.self_test)
        if not args.segments:
            return 0
    if not (args.identity and args.keystore and args.out and args.segments):
        parser.error("--identity, --keystore, --out and at least one segment are required")
    identity = read_identity(args.identity)
    paths = segment_paths(args.segments)
    if not paths:
        raise Invalid("no .sfa segments found")
    plaintexts = [decrypt_segment(path, identity, args.keystore) for path in paths]
    with open(args.out, "wb") as f:
        f.write(b"".join(plaintexts))
    print(f"decrypt_archive: {len(paths)} segments, {sum(map(len, plaintexts))} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
