"""A real Prometheus scrapes the engine: the exposition passes promtool's
linter, and the values arrive in Prometheus's own queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from kafkautil import poll_until
from outage import free_port
from test_kafka_outage import base_url, get
from test_kafka_pipeline import stop

LIVE_PIPELINE = """\
settings:
  metrics_listen: 127.0.0.1:0
sources:
  ward:
    synthetic: { signal: ecg, pace: realtime, frame: 40ms, streams: 4, seed: 3 }
operators:
  checked:
    inputs: [ward]
    validate: { max_abs: 10.0 }
sinks:
  archive:
    inputs: [checked]
    file: { path: archive.jsonl }
dead_letter:
  path: dead-letters.jsonl
"""


def tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: tests/e2e/run.sh installs Debian's prometheus package", pytrace=False)
    return found


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus scraping the given target every second; yields a query function."""
    processes = []

    def start(target: str):
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global: { scrape_interval: 1s, evaluation_interval: 1s }\n"
            "scrape_configs:\n"
            f"  - job_name: sigfab\n    static_configs: [{{ targets: ['{target}'] }}]\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    tool("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

        def query(promql: str) -> list:
            url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response)["data"]["result"]
            except OSError:
                return []  # not up yet

        return query

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def test_prometheus_scrapes_the_engine(run_engine, prometheus):
    engine = run_engine(LIVE_PIPELINE, name="live")
    url = base_url(engine)
    poll_until(lambda: get(f"{url}/ready")[0] == 200, "the engine to be ready")

    exposition = get(f"{url}/metrics")[1]
    lint = subprocess.run([tool("promtool"), "check", "metrics"], input=exposition, capture_output=True, text=True)
    assert lint.returncode == 0, f"promtool check metrics:\n{lint.stdout}{lint.stderr}"
    for name in ("sigfab_node_items_in_total", "sigfab_sink_latency_seconds_bucket", "sigfab_ready"):
        assert name in exposition

    query = prometheus(url.removeprefix("http://"))
    poll_until(lambda: query('up{job="sigfab"} == 1'), "Prometheus to scrape the engine", 60)
    frames = poll_until(
        lambda: query('sigfab_node_items_in_total{node="archive",role="sink"} > 20'),
        "frames counted by the archive sink in Prometheus",
        60,
    )
    assert frames[0]["metric"]["role"] == "sink"
    assert query("sigfab_ready == 1"), "Prometheus sees the engine not ready"
    p99 = poll_until(
        lambda: query("histogram_quantile(0.99, rate(sigfab_sink_latency_seconds_bucket[5s]))"),
        "a latency quantile from the histogram",
        60,
    )
    assert 0 < float(p99[0]["value"][1]) < 0.05, p99  # inside the latency budget
    stop(engine)
