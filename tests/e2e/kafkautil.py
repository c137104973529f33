"""Kafka helpers on confluent-kafka, the client independent of the engine."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


def _quiet(config: dict) -> dict:
    return {"log_level": 3, **config}  # errors only: a broker going away at teardown is not news


def create_topic(brokers: str, name: str, partitions: int) -> None:
    """Create a topic and wait until its metadata shows every partition."""
    admin = AdminClient(_quiet({"bootstrap.servers": brokers}))
    future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
    future.result(timeout=TIMEOUT_S)
    poll_until(lambda: len(partitions_of(brokers, name)) == partitions, f"topic {name} with {partitions} partitions")


def partitions_of(brokers: str, topic: str) -> list[int]:
    admin = AdminClient(_quiet({"bootstrap.servers": brokers}))
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
    if metadata is None or metadata.error is not None:
        return []
    return sorted(metadata.partitions)


# tansu 0.6 (memory storage) mishandles record batches of more than one record: a fetch
# from an offset inside a batch returns nothing (it serves only batches whose *base*
# offset is at or after the requested one, so the rest of that batch is skipped), and
# ListOffsets(latest) answers the last batch's base offset + 1. With one record per
# batch both are right, so whatever the tests produce is sent one record per batch.
ONE_RECORD_PER_BATCH = {"batch.num.messages": 1}


def produce(brokers: str, topic: str, records: list[tuple[bytes | None, bytes]], partition: int | None = None) -> None:
    """Produce (key, value) records in order, and fail unless every one was acknowledged."""
    producer = Producer(
        _quiet(
            {
                "bootstrap.servers": brokers,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                **ONE_RECORD_PER_BATCH,
            }
        )
    )
    errors: list[KafkaError] = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    for key, value in records:
        kwargs = {} if partition is None else {"partition": partition}
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=on_delivery, **kwargs)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT_S)
    assert remaining == 0, f"{remaining} records to {topic} still undelivered after {TIMEOUT_S}s"
    assert not errors, f"{len(errors)} records to {topic} failed, first: {errors[0]}"


def end_offsets(brokers: str, topic: str) -> dict[int, int]:
    """Per partition, the offset the next record will get (the high watermark).

    Right on tansu only for topics written one record per batch (see ONE_RECORD_PER_BATCH).
    """
    consumer = Consumer(_quiet({"bootstrap.servers": brokers, "group.id": "e2e-watermarks"}))
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)[1]
            for p in partitions_of(brokers, topic)
        }
    finally:
        consumer.close()


def committed_offsets(brokers: str, group: str, topic: str) -> dict[int, int]:
    """Per partition, the group's committed offset (the next to read), or None where it has none."""
    consumer = Consumer(_quiet({"bootstrap.servers": brokers, "group.id": group, "enable.auto.commit": False}))
    try:
        wanted = [TopicPartition(topic, p) for p in partitions_of(brokers, topic)]
        return {tp.partition: (tp.offset if tp.offset >= 0 else None) for tp in consumer.committed(wanted, timeout=TIMEOUT_S)}
    finally:
        consumer.close()


class TopicReader:
    """Reads every partition of a topic from the beginning, without a consumer group."""

    def __init__(self, brokers: str, topic: str):
        self.topic = topic
        self.messages: list[Message] = []
        self._consumer = Consumer(
            _quiet(
                {
                    "bootstrap.servers": brokers,
                    "group.id": "e2e-reader",  # required by the client; assign() never joins it
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                }
            )
        )
        self._partitions = partitions_of(brokers, topic)
        assert self._partitions, f"topic {topic} has no partitions"
        self._at_end: set[int] = set()
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._partitions])

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def _poll_once(self, timeout_s: float) -> None:
        msg = self._consumer.poll(timeout_s)
        if msg is None:
            return
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                self._at_end.add(msg.partition())
                return
            raise AssertionError(f"reading {self.topic}: {msg.error()}")
        self._at_end.discard(msg.partition())
        self.messages.append(
            Message(
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                key=msg.key(),
                value=msg.value(),
                headers={k: v for k, v in (msg.headers() or [])},
            )
        )

    def read_until(self, done, what: str, timeout_s: float, check=lambda: None) -> list[Message]:
        """Read until done(messages) holds; fail after timeout_s, or as soon as check() raises."""
        deadline = time.monotonic() + timeout_s
        while not done(self.messages):
            check()
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.topic}: no {what} after {timeout_s}s ({len(self.messages)} records read)")
            self._poll_once(0.2)
        return self.messages

    def read_to_end(self, timeout_s: float = TIMEOUT_S) -> list[Message]:
        """Read until every partition has reported its end (what the broker holds now)."""
        return self.read_until(lambda _: self._at_end >= set(self._partitions), "end of every partition", timeout_s)


def read_all(brokers: str, topic: str, timeout_s: float = TIMEOUT_S) -> list[Message]:
    """Every record a topic holds now, in partition order then offset order."""
    with TopicReader(brokers, topic) as reader:
        messages = reader.read_to_end(timeout_s)
    return sorted(messages, key=lambda m: (m.partition, m.offset))


def poll_until(condition, what: str, timeout_s: float = TIMEOUT_S, interval_s: float = 0.1):
    """Evaluate condition() until it returns something truthy; fail with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
