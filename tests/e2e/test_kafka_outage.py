"""The broker is not up when the engine starts, then goes away for a while.

The engine must log it clearly, keep retrying with backoff, report not-ready
on /ready (and sigfab_ready 0 on /metrics), and carry on when the broker is
back — with nothing lost and the offsets committed to the end.
"""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request

import pytest

from frames import record_100_frames
from kafkautil import committed_offsets, create_topic, poll_until, produce, read_all
from outage import BrokerBehindProxy
from test_kafka_pipeline import DELIVERY_TIMEOUT_S, as_records, pipeline, stop
from wire import decode

pytestmark = pytest.mark.engine_kafka

METRICS_AT = re.compile(r"metrics on (http://\S+)/metrics")
# Long enough for several reconnect attempts with backoff, and well inside
# SESSION_TIMEOUT_MS, so the member keeps its partition: this test is about
# riding out a broker outage, not about a rebalance (tansu may assign a
# rejoining member nothing after its session expired; see the blocked note on
# issue 3). Under CI load the real outage has run ~2 s past OUTAGE_S and the
# engine's default 10 s session expired, so the pipeline here sets 30 s, as a
# deployment that must ride out broker restarts would.
OUTAGE_S = 8
SESSION_TIMEOUT_MS = 30000


@pytest.fixture
def outage_broker(tmp_path):
    broker = BrokerBehindProxy(tmp_path)
    yield broker
    broker.close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def base_url(engine) -> str:
    found = poll_until(lambda: METRICS_AT.search(engine.log()), "the metrics listener's address in the log", 30)
    return found.group(1)


def test_broker_down_at_start_and_away_for_a_while(outage_broker, unique, sigfab, shared_data, run_engine):
    broker = outage_broker.address
    source, dead_letters, out = f"outage-{unique}", f"outage-{unique}.dead-letter", f"outage-{unique}.out"
    group = f"sigfab-outage-{unique}"
    # The topics exist, as in a deployment (a consumer that subscribes to a
    # missing topic waits for librdkafka's 5-minute metadata refresh).
    outage_broker.proxy.up()
    for topic in (source, dead_letters, out):
        create_topic(broker, topic, 1)
    outage_broker.proxy.down()
    riding_out_restarts = f'      properties: {{ session.timeout.ms: "{SESSION_TIMEOUT_MS}" }}\n'
    yaml = "settings:\n  metrics_listen: 127.0.0.1:0\n" + pipeline(broker, source, group, dead_letters, out).replace(
        "      commit_interval: 100ms\n", "      commit_interval: 100ms\n" + riding_out_restarts
    )
    assert riding_out_restarts in yaml, "the session setting must reach the pipeline"
    engine = run_engine(yaml, name="outage")
    url = base_url(engine)

    # Down at start: running, saying so, not ready.
    poll_until(lambda: "not ready: kafka brokers unreachable" in engine.log(), "the engine to log the outage", 30)
    time.sleep(2)  # several reconnect attempts
    engine.assert_running()
    status, body = get(f"{url}/ready")
    assert status == 503 and "node 'monitors'" in body, body
    assert "sigfab_ready 0" in get(f"{url}/metrics")[1]
    assert get(f"{url}/live")[0] == 200

    # The broker comes up: ready, and frames flow.
    outage_broker.proxy.up()
    frames = record_100_frames(sigfab, shared_data, "bed-1", start_s=0, duration_s=40)
    first, second = frames[: len(frames) // 2], frames[len(frames) // 2 :]
    produce(broker, source, as_records(first))
    poll_until(lambda: get(f"{url}/ready")[0] == 200, "/ready to answer 200 once the broker is up", DELIVERY_TIMEOUT_S)
    poll_until(lambda: len(read_all(broker, out)) >= len(first), "the first half through", DELIVERY_TIMEOUT_S)
    assert "ready: brokers reachable" in engine.log()

    # It goes away for a while: not ready, logged once, still running.
    outages_logged = engine.log().count("not ready: kafka brokers unreachable")
    outage_broker.proxy.down()
    down_since = time.monotonic()
    poll_until(lambda: get(f"{url}/ready")[0] == 503, "/ready to answer 503 while the broker is away", 30)
    noticed_s = time.monotonic() - down_since
    assert "brokers unreachable" in get(f"{url}/ready")[1]
    time.sleep(max(0.0, OUTAGE_S - noticed_s))
    engine.assert_running()
    assert engine.log().count("not ready: kafka brokers unreachable") > outages_logged, "the outage was not logged"

    # Back: ready again, the rest flows, nothing is missing.
    outage_broker.proxy.up()
    produce(broker, source, as_records(second))
    poll_until(lambda: get(f"{url}/ready")[0] == 200, "/ready to answer 200 after the outage", DELIVERY_TIMEOUT_S)

    def distinct_out() -> set:
        return {(f.stream_id, f.sequence) for f in (decode(m.value) for m in read_all(broker, out))}

    poll_until(lambda: len(distinct_out()) >= len(frames), "every frame through after the outage", DELIVERY_TIMEOUT_S)
    metrics = get(f"{url}/metrics")[1]
    assert "sigfab_ready 1" in metrics
    # At least once: a rebalance after the outage may re-read some records
    # (duplicates); none may fail or go missing.
    settled = dict(re.findall(r'sigfab_acknowledgements_total\{status="(\w+)"\} (\d+)', metrics))
    assert int(settled["delivered"]) >= len(frames), metrics
    assert all(int(settled[s]) == 0 for s in ("failed", "abandoned", "rejected")), metrics
    stop(engine)

    missing = {(f.stream_id, f.sequence) for f in frames} - distinct_out()
    assert not missing, f"{len(missing)} frames lost across the outage"
    assert committed_offsets(broker, group, source) == {0: len(frames)}
