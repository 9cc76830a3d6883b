"""Shared check of the zoo's spec samplers: the same seeds give the same specs, and specs survive JSON."""

from __future__ import annotations

import json
import random

from training.netgen.registry import family


def reproducible_samples(name: str, count: int = 20) -> list[dict]:
    """``count`` specs of family ``name``, drawn twice from the same seeds (they must agree), each JSON round-trip safe."""
    fam = family(name)
    specs = [fam.sample(random.Random(f"t:{i}")) for i in range(count)]
    assert specs == [fam.sample(random.Random(f"t:{i}")) for i in range(count)]
    assert all(json.loads(json.dumps(spec)) == spec for spec in specs)
    return specs


def distinct(specs: list[dict]) -> int:
    return len({json.dumps(spec, sort_keys=True) for spec in specs})


def small_sample(name: str, max_macs: float, tries: int = 200) -> dict:
    """The first sample of ``name`` (seeds "small:i") under ``max_macs`` multiply-accumulates: quick to export and run."""
    from training.netgen.export import build_network
    from training.netgen.generate import count_macs

    fam = family(name)
    for i in range(tries):
        spec = fam.sample(random.Random(f"small:{i}"))
        if count_macs(build_network(name, spec), fam.example_input(spec)) < max_macs:
            return spec
    raise AssertionError(f"no {name} sample under {max_macs:g} MACs in {tries} tries")
