"""``sample_sizes --merge``: a run of some variants joins the saved results without losing the others."""

from __future__ import annotations

import pytest

pytest.importorskip("torch", reason="the quality benchmarks need the 'train' extra (torch)")

from benchmarks.quality.sample_sizes import merge_results  # noqa: E402


def _meta(machine: str, command: str, steps: int = 2000) -> dict:
    return {"machine": machine, "command": command, "seeds": [0, 1, 2], "steps": steps, "label_facts": {}}


def test_merge_replaces_what_ran_and_keeps_the_rest() -> None:
    saved = {
        "meta": _meta("EPYC", "python -m benchmarks.quality.sample_sizes --task accuracy"),
        "summary": {"augment_throughout": {"78": "old", "156": "old"}, "flops": {"78": "old flops"}},
    }
    new = {"archcast": {"78": "new"}, "flops": {"78": "new flops"}}
    merged, meta = merge_results(saved, new, _meta("Xeon", "... --variants archcast --merge"), ["archcast"])
    assert merged == {"augment_throughout": {"78": "old", "156": "old"}, "flops": {"78": "new flops"}, "archcast": {"78": "new"}}
    assert meta["machine"] == "EPYC; archcast: Xeon"
    assert meta["command"].startswith("python -m benchmarks.quality.sample_sizes --task accuracy`, then `")


def test_merge_refuses_results_made_with_another_step_budget() -> None:
    saved = {"meta": _meta("EPYC", "cmd", steps=6200), "summary": {}}
    with pytest.raises(SystemExit, match="steps 6200"):
        merge_results(saved, {}, _meta("EPYC", "cmd"), ["archcast"])
