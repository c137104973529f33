"""The test broker and the harness's own Kafka helpers, checked against each other (no engine)."""

from __future__ import annotations

import subprocess

from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import BROKER_SH
from kafkautil import TIMEOUT_S, committed_offsets, create_topic, end_offsets, partitions_of, poll_until, produce, read_all


def test_start_is_idempotent(broker, broker_dir):
    again = subprocess.run([str(BROKER_SH), "start", str(broker_dir)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == broker
    assert "already running" in again.stderr


def test_start_and_stop_a_second_broker(tmp_path):
    started = subprocess.run([str(BROKER_SH), "start", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    pid = int((tmp_path / "broker.pid").read_text())
    address = started.stdout.strip()
    assert address.startswith("127.0.0.1:") and address == (tmp_path / "broker.addr").read_text().strip()
    assert partitions_of(address, "absent") == []  # metadata answers

    for _ in range(2):  # stopping twice is harmless
        stopped = subprocess.run([str(BROKER_SH), "stop", str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
    assert not (tmp_path / "broker.pid").exists()
    assert subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0


def test_produce_and_read_back_keyed_records(broker, unique):
    topic = f"helpers-{unique}"
    create_topic(broker, topic, 3)
    records = [(f"key-{i % 5}".encode(), f"value-{i}".encode()) for i in range(100)]
    produce(broker, topic, records)

    assert sum(end_offsets(broker, topic).values()) == 100
    messages = read_all(broker, topic)
    assert sorted(m.value for m in messages) == sorted(v for _, v in records)
    for key in {k for k, _ in records}:  # one key, one partition, producer order
        of_key = [m for m in messages if m.key == key]
        assert len({m.partition for m in of_key}) == 1
        assert [m.value for m in of_key] == [v for k, v in records if k == key]


def test_committed_offsets_of_a_group(broker, unique):
    topic, group = f"commits-{unique}", f"group-{unique}"
    create_topic(broker, topic, 2)
    produce(broker, topic, [(None, b"x")] * 10, partition=0)
    assert committed_offsets(broker, group, topic) == {0: None, 1: None}

    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
    finally:
        consumer.close()
    assert committed_offsets(broker, group, topic) == {0: 7, 1: None}
    assert end_offsets(broker, topic) == {0: 10, 1: 0}
    assert [(m.partition, m.offset) for m in read_all(broker, topic)] == [(0, i) for i in range(10)]


def test_reading_an_empty_topic_ends(broker, unique):
    topic = f"empty-{unique}"
    create_topic(broker, topic, 2)
    assert read_all(broker, topic) == []


def test_fetching_from_any_offset_of_what_the_harness_produced(broker, unique):
    # The harness writes one record per batch because tansu 0.6 skips the rest of a
    # batch when a fetch starts inside it (kafkautil.ONE_RECORD_PER_BATCH).
    topic = f"resume-{unique}"
    create_topic(broker, topic, 1)
    produce(broker, topic, [(None, str(i).encode()) for i in range(20)])
    assert end_offsets(broker, topic) == {0: 20}

    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"g-{unique}", "log_level": 3})
    consumer.assign([TopicPartition(topic, 0, 7)])
    try:
        got = poll_until(lambda: consumer.consume(20, timeout=0.5), "records from offset 7")
    finally:
        consumer.close()
    assert [(m.offset(), m.value()) for m in got][:3] == [(7, b"7"), (8, b"8"), (9, b"9")]


def test_tansu_fetch_mid_batch_quirk(broker, unique):
    """Documents a tansu 0.6 (memory storage) bug the harness works around; fails once fixed.

    A fetch serves only batches whose base offset is at or after the requested offset,
    so a fetch starting inside a batch silently skips the rest of it; and
    ListOffsets(latest) answers the last batch's base offset + 1.
    """
    topic = f"quirk-{unique}"
    create_topic(broker, topic, 1)
    batched = Producer({"bootstrap.servers": broker, "linger.ms": 200, "log_level": 3})
    for batch_start, size in ((0, 10), (10, 3)):  # two batches: offsets 0-9 and 10-12
        for i in range(batch_start, batch_start + size):
            batched.produce(topic, str(i).encode(), partition=0)
        assert batched.flush(TIMEOUT_S) == 0
        if batch_start == 0:
            # BUG: a correct broker answers 10 here.
            assert end_offsets(broker, topic) == {0: 1}

    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"g-{unique}", "log_level": 3})
    consumer.assign([TopicPartition(topic, 0, 3)])
    try:
        got = poll_until(lambda: consumer.consume(20, timeout=0.5), "records from offset 3")
    finally:
        consumer.close()
    # BUG: a correct broker starts at offset 3; tansu skips 3-9 and starts at the next batch.
    assert got[0].offset() == 10
    assert all(m.offset() >= 10 for m in got)
