"""Fixtures for the end-to-end tests: a real broker (tansu), the sigfab binary, the engine as a process."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BROKER_SH = REPO / "scripts" / "broker.sh"


@pytest.fixture(scope="session")
def broker_dir(tmp_path_factory) -> Path:
    """Where the session's broker keeps broker.pid, broker.addr and broker.log."""
    return tmp_path_factory.mktemp("broker")


@pytest.fixture(scope="session")
def broker(broker_dir) -> str:
    """Bootstrap address (127.0.0.1:PORT) of a tansu broker that lives for the whole session."""
    state = broker_dir
    started = subprocess.run(
        [str(BROKER_SH), "start", str(state)], capture_output=True, text=True, timeout=1800
    )
    if started.returncode != 0:
        pytest.fail(f"scripts/broker.sh start failed ({started.returncode}):\n{started.stderr}", pytrace=False)
    address = (state / "broker.addr").read_text().strip()
    assert started.stdout.strip() == address
    yield address
    subprocess.run([str(BROKER_SH), "stop", str(state)], capture_output=True, timeout=60, check=True)


@pytest.fixture(scope="session")
def sigfab() -> Path:
    """The sigfab binary: $SIGFAB_BIN, else target/debug/sigfab."""
    path = Path(os.environ.get("SIGFAB_BIN", REPO / "target" / "debug" / "sigfab"))
    if not path.is_absolute():
        path = REPO / path
    if not os.access(path, os.X_OK):
        pytest.fail(f"no sigfab binary at {path}: run `cargo build --bin sigfab` or set SIGFAB_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real recordings: $SIGFAB_SHARED_DATA, else ../shared/data beside the repository."""
    path = Path(os.environ.get("SIGFAB_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (path / "wfdb" / "100.hea").is_file():
        pytest.fail(f"the real recordings are missing: {path} (set SIGFAB_SHARED_DATA)", pytrace=False)
    return path


@pytest.fixture
def unique() -> str:
    """A short suffix that keeps each test's topics and groups apart on the shared broker."""
    return uuid.uuid4().hex[:8]


class Engine:
    """`sigfab run PIPELINE` as a child process, its output in a log file."""

    def __init__(self, sigfab: Path, pipeline: Path):
        self.log_path = pipeline.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(sigfab), "run", str(pipeline)],
            cwd=pipeline.parent,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_BACKTRACE": "1"},
        )

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"sigfab exited early with {code}:\n{self.log()[-4000:]}"

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM, then wait for the drain; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"sigfab did not exit within {timeout_s}s of SIGTERM:\n{self.log()[-4000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture
def run_engine(sigfab, tmp_path):
    """Start `sigfab run` on a pipeline text; every engine started is killed at teardown."""
    engines: list[Engine] = []

    def start(pipeline_yaml: str, name: str = "pipeline") -> Engine:
        pipeline = tmp_path / f"{name}.yaml"
        pipeline.write_text(pipeline_yaml)
        engine = Engine(sigfab, pipeline)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.kill()
    # pytest shows a test's captured output only when it fails: then these tails say what the engines saw.
    for engine in engines:
        print(f"--- {engine.log_path.name} (last 60 lines) ---")
        print("\n".join(engine.log().splitlines()[-60:]))
