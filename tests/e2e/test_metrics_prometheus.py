"""A real Prometheus scrapes the engine: the exposition passes promtool's
linter, and the values arrive in Prometheus's own queries."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from kafkautil import poll_until
from outage import free_port
from test_kafka_outage import base_url, get
from test_kafka_pipeline import stop

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "docker" / "prometheus"
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "sigfab.json"

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
            f"rule_files: ['{PROMETHEUS_DIR / 'sigfab-alerts.yml'}']\n"
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

        def api(path: str, **params) -> dict:
            url = f"http://127.0.0.1:{port}/api/v1/{path}?" + urllib.parse.urlencode(params)
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response)["data"]
            except OSError:
                return {}  # not up yet

        def query(promql: str) -> list:
            return api("query", query=promql).get("result", [])

        query.api = api
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

    # The shipped alert rules load and stay quiet; every dashboard query returns data.
    rules = poll_until(lambda: query.api("rules").get("groups"), "the alert rules to load")
    alerts = [rule for group in rules for rule in group["rules"]]
    assert {rule["name"] for rule in alerts} >= {"SigfabNotReady", "SigfabDown", "SigfabLatencyBudget"}
    poll_until(lambda: all(rule.get("health") == "ok" for group in query.api("rules").get("groups", []) for rule in group["rules"]), "every rule evaluated without error")
    assert not [rule["name"] for rule in alerts if rule["state"] != "inactive"], alerts
    for expr in dashboard_queries():
        poll_until(lambda: query(expr), f"data for the dashboard query {expr}", 60)
    stop(engine)


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_shipped_prometheus_config_and_alert_rules(tmp_path):
    """docker/prometheus passes promtool's checks, and the alert rules' unit tests pass."""
    config = subprocess.run([tool("promtool"), "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")], capture_output=True, text=True)
    assert config.returncode == 0, config.stdout + config.stderr
    tests = subprocess.run([tool("promtool"), "test", "rules", "sigfab-alerts.test.yml"], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    # Every dashboard query is valid PromQL: promtool checks them as recording rules.
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(dashboard_queries())]}]}
    rules_file = tmp_path / "dashboard-rules.yml"
    rules_file.write_text(json.dumps(rules))  # JSON is YAML
    checked = subprocess.run([tool("promtool"), "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
