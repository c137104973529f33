"""Failures: the engine killed with SIGKILL, and one of two group members dying.

At least once means nothing is missing afterwards; duplicates are exactly the
records that were output but not yet committed when the process died.

tansu 0.6 does not reliably expire the session of a member that died: once a
new member of the group got no partition for 40 s (docs/delivery.md, "Test
broker quirks"). So a restarted engine reclaims its partitions through static
membership (`group.instance.id`, KIP-345), which is also what a deployment with
stable instance names should use. On Kafka, the session timeout hands a dead
member's partitions to the survivors as well.

The replacement must arrive before the dead member's session expires: when
tansu 0.6 does expire a static member, the rebalance that follows can stall
with the survivors' partitions revoked and never reassigned (seen in CI under
load: no assignment for 120 s). So a killed engine's replacement starts at
once, and the static members here get a 15 s session (librdkafka allows no
more than max.poll.interval.ms, which stays 15 s: see with_instance_id).
"""

from __future__ import annotations

import re

import pytest

from frames import record_100_frames
from kafkautil import TopicReader, committed_offsets, create_topic, poll_until, produce, read_all
from test_kafka_pipeline import DELIVERY_TIMEOUT_S, as_records, pipeline, stop, wait_for
from wire import decode

pytestmark = pytest.mark.engine_kafka

ASSIGNED = re.compile(r"kafka partitions assigned partitions=(\d+)")


def settled_count(broker: str, topic: str) -> int:
    """Records in a topic once the count stops changing (a killed producer's
    last requests may still be landing)."""
    counts = [len(read_all(broker, topic))]
    poll_until(lambda: counts.append(len(read_all(broker, topic))) or counts[-1] == counts[-2], f"{topic} to settle")
    return counts[-1]


def with_instance_id(yaml: str, instance: str) -> str:
    """The pipeline with static group membership for its Kafka source."""
    marker = "      commit_interval: 100ms\n"
    assert marker in yaml
    # librdkafka sends max.poll.interval.ms as the rebalance timeout; tansu
    # waits that long for a replaced static member before finishing a
    # rebalance, so keep it short (the engine polls continuously).
    # The session outlives a restart, so a replacement takes over without a
    # rebalance (see the module note).
    properties = (
        f'{{ group.instance.id: {instance}, max.poll.interval.ms: "15000", session.timeout.ms: "15000" }}'
    )
    return yaml.replace(marker, marker + f"      properties: {properties}\n", 1)


def last_assignment(engine) -> int | None:
    found = ASSIGNED.findall(engine.log())
    return int(found[-1]) if found else None


def test_sigkill_then_restart_loses_nothing(broker, unique, sigfab, shared_data, run_engine):
    source, dead_letters, out = f"kill-{unique}", f"kill-{unique}.dead-letter", f"kill-{unique}.out"
    for topic in (source, dead_letters, out):
        create_topic(broker, topic, 1)
    group = f"sigfab-kill-{unique}"
    streams = [record_100_frames(sigfab, shared_data, f"bed-{i + 1}", start_s=60 * i, duration_s=60) for i in range(10)]
    sent = [f for batch in zip(*streams) for f in batch]
    produce(broker, source, as_records(sent))
    yaml = with_instance_id(pipeline(broker, source, group, dead_letters, out), f"node-{unique}")

    first = run_engine(yaml, name="first")
    with TopicReader(broker, out) as reader:
        wait_for(reader, 300, "the first 300 frames", first)
    first.kill()  # SIGKILL: no drain, no final commit
    output_at_kill = settled_count(broker, out)
    committed_at_kill = committed_offsets(broker, group, source).get(0) or 0
    assert output_at_kill < len(sent), "the engine finished before the kill: the test needs more input"
    assert committed_at_kill <= output_at_kill, "committed past what reached the output"

    second = run_engine(yaml, name="restart")  # same instance id: takes the partition over at once
    expected = output_at_kill + len(sent) - committed_at_kill
    with TopicReader(broker, out) as reader:
        received = [decode(m.value) for m in wait_for(reader, expected, f"{expected} records", second)]
    stop(second)

    keys = [(f.stream_id, f.sequence) for f in received]
    missing = {(f.stream_id, f.sequence) for f in sent} - set(keys)
    assert not missing, f"{len(missing)} frames lost across the crash, e.g. {sorted(missing)[:3]}"
    duplicates = len(keys) - len(set(keys))
    # The restart re-reads from the committed offset: the duplicates are exactly
    # the records output but not yet committed when the process died.
    assert duplicates == output_at_kill - committed_at_kill, (duplicates, output_at_kill, committed_at_kill)
    assert committed_offsets(broker, group, source) == {0: len(sent)}


def test_two_members_share_partitions_and_a_replacement_takes_over(broker, unique, sigfab, shared_data, run_engine):
    partitions = 4
    source, dead_letters = f"pair-{unique}", f"pair-{unique}.dead-letter"
    outs = (f"pair-{unique}.out-a", f"pair-{unique}.out-b")
    create_topic(broker, source, partitions)
    for topic in (dead_letters, *outs):
        create_topic(broker, topic, 1)
    group = f"sigfab-pair-{unique}"
    member_a = with_instance_id(pipeline(broker, source, group, dead_letters, outs[0]), f"a-{unique}")
    member_b = with_instance_id(pipeline(broker, source, group, dead_letters, outs[1]), f"b-{unique}")
    a = run_engine(member_a, name="member-a")
    b = run_engine(member_b, name="member-b")
    poll_until(lambda: last_assignment(a) == 2 and last_assignment(b) == 2, "both members to hold 2 partitions", DELIVERY_TIMEOUT_S)

    beds = [record_100_frames(sigfab, shared_data, f"bed-{p + 1}", start_s=0, duration_s=40) for p in range(partitions)]
    halves = [[bed[: len(bed) // 2] for bed in beds], [bed[len(bed) // 2 :] for bed in beds]]
    for p, frames in enumerate(halves[0]):
        produce(broker, source, as_records(frames), partition=p)
    half = sum(len(f) for f in halves[0])
    poll_until(lambda: len(read_all(broker, outs[0])) + len(read_all(broker, outs[1])) >= half, "the first half through both members", DELIVERY_TIMEOUT_S)
    assert read_all(broker, outs[0]) and read_all(broker, outs[1]), "one member did all the work: partitions were not shared"

    a.kill()  # SIGKILL; its partitions go to the replacement with the same instance id
    replacement = run_engine(member_a, name="member-a-again")
    for p, frames in enumerate(halves[1]):
        produce(broker, source, as_records(frames), partition=p)
    total = sum(len(bed) for bed in beds)

    def distinct_out() -> int:
        return len({(f.stream_id, f.sequence) for topic in outs for f in (decode(m.value) for m in read_all(broker, topic))})

    poll_until(lambda: distinct_out() >= total, "every frame through one member or the other", DELIVERY_TIMEOUT_S)
    stop(replacement)
    stop(b)

    received = {(f.stream_id, f.sequence) for topic in outs for f in (decode(m.value) for m in read_all(broker, topic))}
    missing = {(f.stream_id, f.sequence) for bed in beds for f in bed} - received
    assert not missing, f"{len(missing)} frames lost when a member died"
    committed = committed_offsets(broker, group, source)
    assert committed == {p: len(beds[p]) for p in range(partitions)}, committed
