"""A broker that can go away and come back: tansu behind a TCP proxy.

tansu keeps its topics in memory, so stopping it would lose them. Instead
tansu advertises the proxy's port, every client connects through the proxy,
and the proxy can be taken down (listener closed, every connection cut:
clients see "connection refused") and brought back on the same port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_tansu() -> str:
    found = shutil.which("tansu") or str(Path.home() / ".cargo" / "bin" / "tansu")
    if not os.access(found, os.X_OK):
        raise RuntimeError("tansu is not installed: run scripts/broker.sh install")
    return found


class Proxy:
    """Forwards 127.0.0.1:port to target; starts down."""

    def __init__(self, port: int, target: tuple[str, int]):
        self.port = port
        self.target = target
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._connections: list[socket.socket] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Close the listener and cut every connection."""
        with self._lock:
            listener, self._listener = self._listener, None
            connections, self._connections = self._connections, []
        for s in ([listener] if listener else []) + connections:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # went down meanwhile
                    client.close()
                    upstream.close()
                    return
                self._connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class BrokerBehindProxy:
    """A private tansu on its own port, reachable only through a Proxy."""

    def __init__(self, workdir: Path):
        self.proxy = Proxy(free_port(), ("127.0.0.1", free_port()))
        broker_port = self.proxy.target[1]
        self.log_path = workdir / "tansu.log"
        env = {k: v for k, v in os.environ.items() if k not in ("SCHEMA_REGISTRY", "OTEL_EXPORTER_OTLP_ENDPOINT", "DATA_LAKE")}
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                find_tansu(),
                "broker",
                "--cluster-id",
                "sigfab-outage",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                f"tcp://127.0.0.1:{broker_port}",
                "--advertised-listener-url",
                f"tcp://{self.proxy.address}",
            ],
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(self.proxy.target, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(f"tansu did not start; see {self.log_path}")
                time.sleep(0.1)

    @property
    def address(self) -> str:
        """What clients bootstrap from: the proxy."""
        return self.proxy.address

    def close(self) -> None:
        self.proxy.down()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log.close()
