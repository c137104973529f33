"""A record the Kafka sink cannot deliver: it counts as failed, the records
after it still flow, the partition's commit stays at it, /ready says why, and
a restart reads it again and delivers it (at least once, never lost)."""

from __future__ import annotations

import time

import pytest

from frames import record_100_frames
from kafkautil import committed_offsets, poll_until, produce, read_all
from test_kafka_outage import base_url, get
from test_kafka_pipeline import DELIVERY_TIMEOUT_S, as_records, pipeline, stop, topics
from wire import Channel, decode

pytestmark = pytest.mark.engine_kafka

SINK_MARKER = "      linger: 5ms\n"


def with_sink_limit(yaml: str, max_bytes: int) -> str:
    """The pipeline with a metrics listener and a Kafka sink that refuses records over max_bytes."""
    assert yaml.count(SINK_MARKER) == 1
    limited = yaml.replace(SINK_MARKER, SINK_MARKER + f'      properties: {{ message.max.bytes: "{max_bytes}" }}\n')
    return "settings:\n  metrics_listen: 127.0.0.1:0\n" + limited


def test_a_refused_record_holds_the_commit_until_a_restart_delivers_it(broker, unique, sigfab, shared_data, run_engine):
    source, dead_letters, out, group = topics(broker, unique, input_partitions=1)
    frames = record_100_frames(sigfab, shared_data, "bed-1", start_s=0, duration_s=4)
    big = frames[50]
    # Valid, but far larger than the limited sink takes: 2,000 samples per channel.
    big.channels = [Channel(c.name, c.unit, c.rate, (c.samples * 200)[:2000]) for c in big.channels]
    produce(broker, source, as_records(frames))
    plain = pipeline(broker, source, group, dead_letters, out)

    engine = run_engine(with_sink_limit(plain, 10_000), name="limited")
    url = base_url(engine)
    poll_until(lambda: len(read_all(broker, out)) >= 99, "every other frame through", DELIVERY_TIMEOUT_S)
    poll_until(lambda: committed_offsets(broker, group, source) == {0: 50}, "the commit to stop at the refused record")
    status, body = poll_until(
        lambda: (r := get(f"{url}/ready"))[0] == 503 and r, "/ready to report the held commit", 30
    )
    assert "holds its partition's commit" in body, body
    time.sleep(1)  # a few more commit ticks: the commit must not pass it
    assert committed_offsets(broker, group, source) == {0: 50}
    assert "record refused" in engine.log()
    engine.assert_running()
    assert engine.terminate() == 1, "a failed frame must make the run's exit status 1"

    delivered = {(f.stream_id, f.sequence) for f in (decode(m.value) for m in read_all(broker, out))}
    assert (big.stream_id, big.sequence) not in delivered
    assert len(delivered) == 99

    restart = run_engine(plain, name="restart")
    poll_until(
        lambda: committed_offsets(broker, group, source) == {0: 100}, "the restart to commit to the end", DELIVERY_TIMEOUT_S
    )
    stop(restart)
    received = [decode(m.value) for m in read_all(broker, out)]
    assert {(f.stream_id, f.sequence) for f in received} == {(f.stream_id, f.sequence) for f in frames}
    assert [f for f in received if f.sequence == big.sequence][0].channels[0].samples == big.channels[0].samples
    # The restart re-read from the refused record: it and the 49 after it again.
    assert len(received) == 99 + 50
