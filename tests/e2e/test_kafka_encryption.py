"""Encrypted Kafka records end to end (docs/security.md, "Encrypted Kafka records").

Engine A replays MIT-BIH record 100 as two streams into a Kafka sink with `encrypt` and, beside
it, into a plain binary file sink. The records on the topic are decrypted here with the Python
`cryptography` package from the spec alone (HKDF-SHA-256, AES-256-GCM, the AAD as written),
and must give engine A's wire messages byte for byte. Engine B, a Kafka source with `encrypt`
(key from an environment variable this time) into a binary file sink, must reproduce the same
messages. Then copies of records are produced the way an attacker with write access to the
topic could (appended again, under the other stream's key, on the other partition, with a bit
flipped, with the sequence rewritten): each lands in the dead letters with its reason and is
counted, engine B's output does not change, and the offsets still advance past them.
"""

from __future__ import annotations

import os
import re
import struct
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kafkautil import Message, TopicReader, committed_offsets, create_topic, poll_until, produce, read_all

pytestmark = pytest.mark.engine_kafka

TIMEOUT_S = 300  # a debug build on a busy 2-core machine
STREAMS = ("bed-a", "bed-b")
KEY_VERSION = 7
METRICS_AT = re.compile(r"metrics on (http://\S+)/metrics")

# The record format, from docs/security.md.
MAGIC = b"SFR1"
HEADER_LEN = 33
KEY_INFO = b"sigfab.records.v1 stream key"
AAD_LABEL = b"sigfab.records.v1"


class Opened:
    def __init__(self, schema: int, key_version: int, epoch: bytes, sequence: int, plaintext: bytes):
        self.schema, self.key_version, self.epoch, self.sequence, self.plaintext = schema, key_version, epoch, sequence, plaintext


def open_record(master: bytes, stream: str, record: bytes) -> Opened:
    """Decrypts one record of `stream` as docs/security.md specifies; raises InvalidTag or ValueError."""
    if len(record) < HEADER_LEN + 16 or record[:4] != MAGIC:
        raise ValueError("not an encrypted record")
    header = record[:HEADER_LEN]
    schema = header[4]
    (key_version,) = struct.unpack(">I", header[5:9])
    epoch = header[9:25]
    (sequence,) = struct.unpack(">Q", header[25:33])
    sid = stream.encode()
    info = KEY_INFO + b"\x00" + struct.pack(">I", key_version) + sid
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=epoch, info=info).derive(master)
    nonce = b"\x00" * 4 + struct.pack(">Q", sequence)
    aad = AAD_LABEL + b"\x00" + struct.pack(">H", len(sid)) + sid + header
    plaintext = AESGCM(key).decrypt(nonce, record[HEADER_LEN:], aad)
    return Opened(schema, key_version, epoch, sequence, plaintext)


def split_messages(data: bytes) -> list[bytes]:
    """Binary wire messages (docs/wire-format.md §3.1: total length, u32 LE at offset 8)."""
    messages, at = [], 0
    while at < len(data):
        assert data[at : at + 4] == b"SGFB", f"no wire message at byte {at}"
        (length,) = struct.unpack("<I", data[at + 8 : at + 12])
        messages.append(data[at : at + length])
        at += length
    return messages


def stream_of(message: bytes) -> str:
    """The stream id of a binary frame (§3.2: a u16 LE length and the bytes, at byte 12)."""
    (n,) = struct.unpack("<H", message[12:14])
    return message[14 : 14 + n].decode()


def by_stream(messages: list[bytes]) -> dict[str, list[bytes]]:
    grouped: dict[str, list[bytes]] = defaultdict(list)
    for m in messages:
        grouped[stream_of(m)].append(m)
    return dict(grouped)


def sealing_pipeline(broker: str, topic: str, record: Path, plain: str) -> str:
    sources = "".join(
        f"""\
  {s.replace('-', '_')}:
    file:
      path: {record}
      frame: 2s
      stream_id: {s}
"""
        for s in STREAMS
    )
    inputs = ", ".join(s.replace("-", "_") for s in STREAMS)
    return f"""\
sources:
{sources}sinks:
  sealed:
    inputs: [{inputs}]
    kafka:
      brokers: {broker}
      topic: {topic}
      encoding: binary
      encrypt:
        key_file: kafka.key
        key_version: {KEY_VERSION}
      properties:
        batch.num.messages: "1"  # tansu: one record per batch (see kafkautil.py)
  plain:
    inputs: [{inputs}]
    file:
      path: {plain}
      format: binary
"""


def opening_pipeline(broker: str, topic: str, group: str, dead_letters: str, out: str) -> str:
    return f"""\
settings:
  metrics_listen: 127.0.0.1:0
sources:
  sealed:
    kafka:
      brokers: {broker}
      topics: [{topic}]
      group: {group}
      encoding: binary
      dead_letter_topic: {dead_letters}
      start: earliest
      commit_interval: 100ms
      encrypt:
        key_env: SIGFAB_E2E_RECORD_KEY
        key_version: {KEY_VERSION}
sinks:
  out:
    inputs: [sealed]
    file:
      path: {out}
      format: binary
"""


def rejected_count(engine) -> float:
    base = poll_until(lambda: METRICS_AT.search(engine.log()), "the metrics address in the log", 30).group(1)
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith("sigfab_node_rejected_total{") and 'node="sealed"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sigfab_node_rejected_total for node sealed in:\n{text}")


def test_encrypted_records_open_here_and_in_the_engine_and_moved_copies_are_dead_lettered(
    broker, unique, sigfab, shared_data, run_engine, tmp_path, monkeypatch
):
    topic, dead_letters, group = f"sealed-{unique}", f"sealed-{unique}.dead-letter", f"sigfab-sealed-{unique}"
    create_topic(broker, topic, 2)
    create_topic(broker, dead_letters, 1)
    master = os.urandom(32)
    key_file = tmp_path / "kafka.key"
    key_file.write_text(master.hex() + "\n")
    key_file.chmod(0o600)

    # Engine A: the recording, sealed onto the topic and in clear into a file.
    engine_a = run_engine(sealing_pipeline(broker, topic, shared_data / "wfdb" / "100", "plain.bin"), "seal")
    try:
        code = engine_a.process.wait(timeout=TIMEOUT_S)
    except Exception:
        raise AssertionError(f"engine A did not finish:\n{engine_a.log()[-4000:]}")
    assert code == 0, f"engine A exited with {code}:\n{engine_a.log()[-4000:]}"
    plain = split_messages((tmp_path / "plain.bin").read_bytes())
    expected = by_stream(plain)
    assert sorted(expected) == list(STREAMS)
    frames_per_stream = len(expected["bed-a"])
    assert frames_per_stream == len(expected["bed-b"]) >= 900  # 30 min of record 100 in 2 s frames

    # The records on the topic, decrypted independently.
    records = read_all(broker, topic, timeout_s=60)
    assert len(records) == len(plain)
    partition_of: dict[str, int] = {}
    opened: dict[str, list[Opened]] = defaultdict(list)
    for m in sorted(records, key=lambda m: (m.partition, m.offset)):
        stream = m.key.decode()
        assert partition_of.setdefault(stream, m.partition) == m.partition, "a stream on two partitions"
        assert m.value[:4] == MAGIC and b"SGFB" not in m.value, "a record in clear"
        opened[stream].append(open_record(master, stream, m.value))
    for stream in STREAMS:
        got = opened[stream]
        assert [o.plaintext for o in got] == expected[stream], f"{stream}: decrypted records differ from the wire frames"
        assert [o.sequence for o in got] == list(range(frames_per_stream)), f"{stream}: record sequences"
        assert {(o.schema, o.key_version) for o in got} == {(1, KEY_VERSION)}
        assert len({o.epoch for o in got}) == 1
    assert opened["bed-a"][0].epoch != opened["bed-b"][0].epoch, "each stream draws its own epoch"
    # Bound to the stream and the key: the wrong stream id or master key fails here too.
    sample = next(m for m in records if m.key == b"bed-a")
    for stream, key in (("bed-b", master), ("bed-a", bytes(32))):
        with pytest.raises(InvalidTag):
            open_record(key, stream, sample.value)

    # Engine B: the topic, opened, into a file.
    monkeypatch.setenv("SIGFAB_E2E_RECORD_KEY", master.hex())
    engine_b = run_engine(opening_pipeline(broker, topic, group, dead_letters, "opened.bin"), "open")
    out = tmp_path / "opened.bin"
    total = len(b"".join(plain))

    def output_size() -> int:
        engine_b.assert_running()
        return out.stat().st_size if out.exists() else 0

    poll_until(lambda: output_size() >= total, f"{total} bytes of opened frames", TIMEOUT_S)
    assert by_stream(split_messages(out.read_bytes())) == expected

    # Copies an attacker with write access could produce.
    a = sorted((m for m in records if m.key == b"bed-a"), key=lambda m: m.offset)
    b_partition = partition_of["bed-b"]
    other_partition = 1 - partition_of["bed-a"]
    flipped = bytearray(a[5].value)
    flipped[HEADER_LEN + 10] ^= 0x01
    renumbered = bytearray(a[5].value)
    renumbered[HEADER_LEN - 1] ^= 0x07  # sequence 5 → 2 in the header
    tampered = [
        ("replayed", partition_of["bed-a"], b"bed-a", a[3].value, "replayed"),
        ("other stream", b_partition, b"bed-b", a[4].value, "failed authentication"),
        ("other partition", other_partition, b"bed-a", a[frames_per_stream - 1].value, "moved"),
        ("bit flip", partition_of["bed-a"], b"bed-a", bytes(flipped), "failed authentication"),
        ("renumbered", partition_of["bed-a"], b"bed-a", bytes(renumbered), "failed authentication"),
    ]
    for _, partition, key, value, _ in tampered:
        produce(broker, topic, [(key, value)], partition=partition)
    with TopicReader(broker, dead_letters) as reader:
        dead = reader.read_until(lambda got: len(got) >= len(tampered), "the dead letters", TIMEOUT_S, engine_b.assert_running)
    assert len(dead) == len(tampered)
    # The two partitions are read in no set order: match the dead letters by content.
    letters = {m.value: m for m in dead}
    for what, partition, key, value, reason in tampered:
        letter = letters.get(value)
        assert letter is not None and letter.key == key, f"{what}: not dead-lettered as produced"
        assert reason in letter.headers["sigfab.reason"].decode(), (what, letter.headers["sigfab.reason"])
        assert letter.headers["sigfab.source.partition"] == str(partition).encode(), what
        assert b"bed-" not in letter.headers["sigfab.reason"], "a stream id in a reason"
    assert rejected_count(engine_b) == len(tampered)
    time.sleep(1)  # anything wrongly accepted would have reached the file by now
    assert by_stream(split_messages(out.read_bytes())) == expected, "a tampered copy reached the output"

    code = engine_b.terminate()
    assert code == 0, f"engine B exited with {code}:\n{engine_b.log()[-4000:]}"
    # The offsets advanced past the dead letters, per the delivery contract.
    final = read_all(broker, topic, timeout_s=60)
    ends: dict[int, int] = {}
    for m in final:
        ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
    committed = committed_offsets(broker, group, topic)
    assert {p: c for p, c in committed.items() if p in ends} == ends
    log = engine_b.log()
    assert master.hex() not in log and "bed-a" not in log and "bed-b" not in log
