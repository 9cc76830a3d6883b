"""The stage profile benchmark runs end to end on the shipped NB201 predictor (its figures come from the benchmark)."""

from __future__ import annotations

from benchmarks.stage_profile import profile


def test_every_stage_is_timed_and_the_shares_add_up() -> None:
    result = profile(cells=16, repeats=1)
    stages = {s["stage"] for s in result["stages"]}
    assert {"tokenize", "onnxruntime run", "response serialisation"} <= stages
    assert all(s["ms"] > 0 for s in result["stages"])
    assert abs(sum(s["share"] for s in result["stages"]) - 1) < 1e-9
    assert result["serialise_pydantic_ms"] > 0 and result["plan_with_warm_memo_ms"] > 0
    assert result["predictor"].startswith("nb201-v1")
