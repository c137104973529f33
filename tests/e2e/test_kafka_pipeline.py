"""The engine between two Kafka topics on a real broker, checked with an independent client.

These need the engine's Kafka source and sink: run them with `-m engine_kafka`.
"""

from __future__ import annotations

import pytest

from frames import record_100_frames
from kafkautil import TopicReader, committed_offsets, create_topic, end_offsets, produce, read_all
from wire import Frame, WireError, decode, encode

pytestmark = pytest.mark.engine_kafka

DELIVERY_TIMEOUT_S = 120  # generous: a debug build on a busy 2-core machine
DEAD_LETTER_HEADERS = ("sigfab.reason", "sigfab.source.topic", "sigfab.source.partition", "sigfab.source.offset")


def pipeline(broker: str, topic: str, group: str, dead_letters: str, out: str) -> str:
    return f"""\
sources:
  monitors:
    kafka:
      brokers: {broker}
      topics: [{topic}]
      group: {group}
      encoding: json
      dead_letter_topic: {dead_letters}
      start: earliest
      commit_interval: 100ms
operators:
  pass:
    inputs: [monitors]
    passthrough: {{}}
sinks:
  out:
    inputs: [pass]
    kafka:
      brokers: {broker}
      topic: {out}
      encoding: json
      linger: 5ms
"""


def topics(broker: str, unique: str, input_partitions: int) -> tuple[str, str, str, str]:
    """Input, dead-letter and output topics (created), and a fresh group name."""
    names = (f"waveforms-{unique}", f"waveforms-{unique}.dead-letter", f"waveforms-{unique}.out")
    create_topic(broker, names[0], input_partitions)
    create_topic(broker, names[1], 1)
    create_topic(broker, names[2], 1)  # one partition: its order is the engine's output order
    return (*names, f"sigfab-test-{unique}")


def as_records(frames: list[Frame]) -> list[tuple[bytes, bytes]]:
    return [(f.stream_id.encode(), encode(f)) for f in frames]


def wait_for(reader: TopicReader, count: int, what: str, engine) -> list:
    """Read until the topic holds `count` records, failing early if the engine exits."""
    try:
        return reader.read_until(lambda m: len(m) >= count, what, DELIVERY_TIMEOUT_S, engine.assert_running)
    except AssertionError as e:
        if engine.process.poll() is not None:
            raise  # assert_running's message already holds the log
        raise AssertionError(f"{e}\nengine log:\n{engine.log()[-4000:]}") from None


def frames_out(reader: TopicReader, expected: int, engine) -> list[Frame]:
    """Wait until the output topic holds `expected` records; decode them."""
    return [decode(m.value) for m in wait_for(reader, expected, f"{expected} frames", engine)]


def stop(engine) -> None:
    code = engine.terminate()
    assert code == 0, f"sigfab exited with {code} after SIGTERM:\n{engine.log()[-4000:]}"


def assert_delivered_in_order(sent: list[Frame], received: list[Frame]) -> None:
    """Every sent frame arrives once, unchanged; per stream, in sequence order."""
    by_id = {(f.stream_id, f.sequence): f for f in received}
    missing = [key for key in ((f.stream_id, f.sequence) for f in sent) if key not in by_id]
    assert not missing, f"{len(missing)} frames never arrived, first {missing[:5]}"
    for f in sent:
        assert by_id[(f.stream_id, f.sequence)] == f, f"frame {(f.stream_id, f.sequence)} changed on the way"
    for stream in {f.stream_id for f in sent}:
        sequences = [f.sequence for f in received if f.stream_id == stream]
        assert sequences == sorted(set(sequences)), f"{stream}: out of order or duplicated in a clean run"
    assert len(received) == len(sent), f"{len(received) - len(sent)} unexpected extra frames"


def test_passthrough_delivers_every_frame(broker, unique, sigfab, shared_data, run_engine):
    source, dead_letters, out, group = topics(broker, unique, input_partitions=3)
    streams = [record_100_frames(sigfab, shared_data, f"bed-{i + 1}", start_s=20 * i, duration_s=20) for i in range(4)]
    sent = [f for batch in zip(*streams) for f in batch]  # the beds interleaved, each in order
    produce(broker, source, as_records(sent))
    spread = end_offsets(broker, source)
    assert sum(spread.values()) == 2000 and sum(1 for n in spread.values() if n) >= 2, spread

    engine = run_engine(pipeline(broker, source, group, dead_letters, out))
    with TopicReader(broker, out) as reader:
        received = frames_out(reader, len(sent), engine)
    stop(engine)

    assert_delivered_in_order(sent, received)
    assert read_all(broker, dead_letters) == []
    committed = committed_offsets(broker, group, source)
    assert {p: c or 0 for p, c in committed.items()} == spread  # an empty partition may have none


def test_poisoned_record_is_dead_lettered_and_passed(broker, unique, sigfab, shared_data, run_engine):
    source, dead_letters, out, group = topics(broker, unique, input_partitions=1)
    frames = record_100_frames(sigfab, shared_data, "bed-1", start_s=0, duration_s=4)
    assert len(frames) == 100
    garbage = b"not a frame"
    # A frame whose channels are arrays, not objects: the shape the spec rules out.
    misshapen = encode(frames[0]).replace(b'"channels":[{', b'"channels":[[{', 1).replace(b'}],"metadata"', b'}]],"metadata"', 1)
    for poison in (garbage, misshapen):
        with pytest.raises(WireError):
            decode(poison)
    records = as_records(frames[:50]) + [(b"bed-1", garbage), (b"bed-1", misshapen)] + as_records(frames[50:])
    produce(broker, source, records)
    assert end_offsets(broker, source) == {0: 102}

    engine = run_engine(pipeline(broker, source, group, dead_letters, out))
    with TopicReader(broker, out) as reader:
        received = frames_out(reader, 100, engine)
    with TopicReader(broker, dead_letters) as reader:
        dead = wait_for(reader, 2, "2 dead letters", engine)
    stop(engine)

    assert_delivered_in_order(frames, received)
    assert len(read_all(broker, dead_letters)) == 2
    for message, original, offset in zip(dead, (garbage, misshapen), (50, 51)):
        assert message.value == original
        missing = [h for h in DEAD_LETTER_HEADERS if h not in message.headers]
        assert not missing, f"dead letter at {offset} lacks headers {missing}"
        assert message.headers["sigfab.reason"].strip()
        assert message.headers["sigfab.source.topic"] == source.encode()
        assert message.headers["sigfab.source.partition"] == b"0"
        assert message.headers["sigfab.source.offset"] == str(offset).encode()
    assert committed_offsets(broker, group, source) == {0: 102}


def test_sigterm_mid_stream_drains_then_commits(broker, unique, sigfab, shared_data, run_engine):
    source, dead_letters, out, group = topics(broker, unique, input_partitions=1)
    # 10 beds × 60 s: 15 000 frames, enough that the engine is still busy when stopped.
    streams = [record_100_frames(sigfab, shared_data, f"bed-{i + 1}", start_s=60 * i, duration_s=60) for i in range(10)]
    sent = [f for batch in zip(*streams) for f in batch]
    produce(broker, source, as_records(sent))
    offset_of = {(f.stream_id, f.sequence): offset for offset, f in enumerate(sent)}  # one partition, in order

    engine = run_engine(pipeline(broker, source, group, dead_letters, out))
    with TopicReader(broker, out) as reader:
        wait_for(reader, 100, "the first 100 frames", engine)
    stop(engine)  # while most of the 2000 frames are still to come

    delivered = {offset_of[(f.stream_id, f.sequence)] for f in (decode(m.value) for m in read_all(broker, out))}
    assert len(delivered) < len(sent), "the engine finished before SIGTERM: the test needs more input"
    committed = committed_offsets(broker, group, source)[0]
    assert committed is not None, "nothing committed on shutdown"
    # At least once: every record below the committed offset reached the output.
    lost = sorted(set(range(committed)) - delivered)
    assert not lost, f"committed {committed} but {len(lost)} records below it never arrived, first {lost[:5]}"
    # Drain, then commit: every record that reached the output is covered by the commit.
    uncommitted = sorted(o for o in delivered if o >= committed)
    assert not uncommitted, f"{len(uncommitted)} delivered records above the committed offset {committed}"
