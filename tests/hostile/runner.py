"""Load the hostile corpus (tests/hostile/corpus.json) and send its entries through an in-process app.

Shared by tests/test_hostile_corpus.py and benchmarks/hostile_corpus.py. Two ways to see a file being opened:
``watch_opens`` (one process-wide audit hook, active only inside the block: Python-level opens of this process only)
and ``inotify_opens`` (Linux inotify on one file: every open or read by any code, C++ included, e.g. onnx's
external-data loader, which opens files in C++ where no audit hook sees it).
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from . import generators

HERE = Path(__file__).parent
CORPUS = HERE / "corpus.json"
FILES = HERE / "files"
STREAM_CHUNK = 64 * 1024
REQUIRED = ("name", "description", "method", "path", "content_type", "expect_status", "expect_code")


def load_corpus(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The corpus entries, checked for the required fields and exactly one of body_file / generator."""
    entries = json.loads(path.read_text())
    for entry in entries:
        missing = [key for key in REQUIRED if key not in entry]
        if missing or ("body_file" in entry) == ("generator" in entry):
            raise ValueError(f"corpus entry {entry.get('name')!r}: missing {missing} or not exactly one of body_file/generator")
    return entries


def body_of(entry: dict[str, Any]) -> bytes:
    if "body_file" in entry:
        return (FILES / entry["body_file"]).read_bytes()
    return getattr(generators, entry["generator"])()


_watched: list[str] = []
_opened: list[str] = []
_hook_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _watched and args and isinstance(args[0], str | bytes | os.PathLike):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path in _watched:
            _opened.append(path)


@contextmanager
def watch_opens(paths: list[str]) -> Iterator[list[str]]:
    """Collects every Python-level ``open`` (builtins.open, io.open, os.open) of one of ``paths`` inside the block."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    opened: list[str] = []
    _watched[:] = [os.path.realpath(p) for p in paths]
    _opened.clear()
    try:
        yield opened
    finally:
        opened.extend(_opened)
        _watched.clear()
        _opened.clear()


IN_ACCESS, IN_OPEN = 0x1, 0x20
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then len bytes of name)


def inotify_available() -> bool:
    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "inotify_init1")


@contextmanager
def inotify_opens(path: Path) -> Iterator[list[int]]:
    """Collects the inotify IN_OPEN / IN_ACCESS events of ``path`` (by any code of any process) inside the block."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1 failed")
    events: list[int] = []
    try:
        if libc.inotify_add_watch(fd, os.fsencode(path), IN_OPEN | IN_ACCESS) < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch failed on {path}")
        yield events
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            data = b""
        offset = 0
        while offset < len(data):
            _, mask, _, length = _EVENT.unpack_from(data, offset)
            events.append(mask & (IN_OPEN | IN_ACCESS))
            offset += _EVENT.size + length
    finally:
        os.close(fd)


@dataclass
class Outcome:
    name: str
    status: int
    code: str
    seconds: float
    bytes_sent: int
    bytes_read: int  # by the app, for streamed entries; = bytes_sent otherwise
    opened: list[str] = field(default_factory=list)

    def ok(self, entry: dict[str, Any]) -> bool:
        fast = self.seconds <= entry.get("max_seconds", float("inf"))
        unread = not entry.get("stream") or self.bytes_read < self.bytes_sent
        return (self.status, self.code) == (entry["expect_status"], entry["expect_code"]) and fast and unread and not self.opened


def send(client: TestClient, entry: dict[str, Any]) -> Outcome:
    """Post one corpus entry; streamed entries declare their Content-Length and count what the app reads."""
    data = body_of(entry)
    headers = {"content-type": entry["content_type"], **entry.get("headers", {})}
    read = [0]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), STREAM_CHUNK):
            read[0] += len(data[start:start + STREAM_CHUNK])
            yield data[start:start + STREAM_CHUNK]

    content: bytes | Iterator[bytes] = data
    if entry.get("stream"):
        headers["content-length"] = str(len(data))
        content = chunks()
    with watch_opens(entry.get("watch_paths", [])) as opened:
        started = time.perf_counter()
        response = client.request(entry["method"], entry["path"], content=content, headers=headers)
        seconds = time.perf_counter() - started
    try:
        code = response.json().get("error", {}).get("code", "")
    except ValueError:
        code = ""
    return Outcome(entry["name"], response.status_code, code, seconds, len(data), read[0] if entry.get("stream") else len(data),
                   opened)


class Clients:
    """One started TestClient per distinct settings override, on ``predictor_dir`` (closed with ``close``)."""

    def __init__(self, predictor_dir: Path | None = None) -> None:
        self.predictor_dir = predictor_dir
        self._stack = ExitStack()
        self._clients: dict[str, TestClient] = {}

    def get(self, overrides: dict[str, Any] | None = None) -> TestClient:
        from service.app import create_app
        from service.settings import Settings

        key = json.dumps(overrides or {}, sort_keys=True)
        if key not in self._clients:
            fields: dict[str, Any] = {"providers": "cpu", **(overrides or {})}
            if self.predictor_dir is not None:
                fields["predictor_dir"] = self.predictor_dir
            client = TestClient(create_app(Settings(**fields)), raise_server_exceptions=False)
            self._clients[key] = self._stack.enter_context(client)
        return self._clients[key]

    def close(self) -> None:
        self._stack.close()
