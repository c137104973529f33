#!/usr/bin/env python3
"""Independent decryption of a C2SP chunked-encryption file (AES-256-GCM, HKDF-SHA-512), as
written by Signal Fabric's ChunkedWriter, using only the `cryptography` package.

Written from docs/security.md ("Chunked encryption"), not from the Rust code, so that it checks
the format rather than the implementation.

    python3 tests/crypto/decrypt_chunked.py --key-hex KEY64HEX [--context-hex HEX] IN OUT

Writes OUT only if the whole file authenticates; exits 1 (and says why) otherwise.
"""

import argparse
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import constant_time, hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

SALT_LEN = 24
COMMITMENT_LEN = 32
HEADER_LEN = SALT_LEN + COMMITMENT_LEN
CHUNK_SIZE = 16384
TAG_LEN = 16
SEALED_CHUNK = CHUNK_SIZE + TAG_LEN
MAX_CHUNKS = 1 << 38
INFO_PREFIX = b"c2sp.org/chunked-encryption@v1+" + b"AEAD_AES_256_GCM" + b"\x00"


class Invalid(Exception):
    """The file does not decrypt: truncated, modified, or wrong key or context."""


def derive(input_key: bytes, salt: bytes, context: bytes):
    okm = HKDFExpand(hashes.SHA512(), 76, INFO_PREFIX + salt + context).derive(input_key)
    return okm[0:32], okm[32:44], okm[44:76]


def chunk_nonce(base_nonce: bytes, index: int) -> bytes:
    return (int.from_bytes(base_nonce, "big") ^ index).to_bytes(12, "big")


def decrypt(data: bytes, input_key: bytes, context: bytes) -> bytes:
    if len(input_key) != 32:
        raise Invalid(f"the input key must be 32 bytes, not {len(input_key)}")
    if len(data) < HEADER_LEN:
        raise Invalid("shorter than the 56-byte header")
    salt, commitment = data[:SALT_LEN], data[SALT_LEN:HEADER_LEN]
    key, base_nonce, expected = derive(input_key, salt, context)
    if not constant_time.bytes_eq(commitment, expected):
        raise Invalid("commitment mismatch: wrong key or context, or a modified header")
    aead = AESGCM(key)
    body = data[HEADER_LEN:]
    plaintext = []
    index, offset = 0, 0
    while True:
        if index >= MAX_CHUNKS:
            raise Invalid("more than 2^38 chunks")
        sealed = body[offset : offset + SEALED_CHUNK]
        if len(sealed) < TAG_LEN:
            raise Invalid(f"truncated: no final chunk (chunk {index} has {len(sealed)} bytes)")
        try:
            chunk = aead.decrypt(chunk_nonce(base_nonce, index), sealed, None)
        except InvalidTag:
            raise Invalid(f"chunk {index} failed authentication") from None
        plaintext.append(chunk)
        offset += len(sealed)
        if len(chunk) < CHUNK_SIZE:
            # The final chunk is the short one; it was read up to the end of the file.
            if offset != len(body):
                raise Invalid("data after the final chunk")
            return b"".join(plaintext)
        index += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key-hex", required=True, help="the 32-byte input key, hex")
    parser.add_argument("--context-hex", default="", help="the context, hex (default: empty)")
    parser.add_argument("input")
    parser.add_argument("output")
    args = parser.parse_args()
    with open(args.input, "rb") as f:
        data = f.read()
    try:
        plaintext = decrypt(data, bytes.fromhex(args.key_hex), bytes.fromhex(args.context_hex))
    except Invalid as error:
        print(f"decrypt_chunked: {args.input}: {error}", file=sys.stderr)
        return 1
    with open(args.output, "wb") as f:
        f.write(plaintext)
    return 0


if __name__ == "__main__":
    sys.exit(main())
