"""The full quality table of issue 3 in one page, built from the committed result files of ``benchmarks/quality``.

Reads ``benchmarks/results/quality/*.json`` and the shipped model cards; computes nothing new. One row per headline
target and training size: ArchCast, its ablations and every baseline (mean ± std over seeds), the best baseline,
whether ArchCast is ahead, and the goal where the issue sets one.

    python -m benchmarks.quality.summary
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.card import PREDICTOR_DIR

RESULTS = Path(__file__).resolve().parent.parent / "results" / "quality"
ACCURACY_HEADLINE = ("cifar10_test_acc", "cifar100_test_acc", "imagenet16_test_acc")
ACCURACY_GOALS = {("cifar10_test_acc", "156"): 0.82, ("cifar10_test_acc", "781"): 0.88, ("cifar10_test_acc", "1563"): 0.91}
CELL_PREDICTORS = ("nb201-v1", "nb201-help-v1", "nb201-latency-v1", "fbnet-latency-v1", "ofa-latency-v1")


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _pm(pair: list[float] | tuple[float, float], digits: int = 3) -> str:
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}"


EARLIER_RECIPE = "augment_throughout"  # ArchCast's own earlier recipe: shown, but not a rival
PLAIN_READOUT = "plain_readout"  # ArchCast without the node-sum readout, where the node-sum readout is the recipe
OTHER_CANDIDATE = "other_candidate"  # the recipe candidate validation did not choose (e.g. the other loss)
NO_AUG = "no_aug_no_consistency"
ABLATIONS = (EARLIER_RECIPE, NO_AUG, "no_pretraining", PLAIN_READOUT, OTHER_CANDIDATE)
NOT_RIVALS = (EARLIER_RECIPE, OTHER_CANDIDATE)  # shown beside ArchCast, not counted against it in the "ahead" column
RECIPE_ABLATIONS = {"node_sum": {NO_AUG: "node_sum_no_aug"}, "node_sum_huber": {NO_AUG: "node_sum_huber_no_aug"}}
"""Per candidate recipe, the runs that are its own ablations: shown in the ablation's column when it is chosen,
left out of the row when another candidate is (they ablate a recipe that is not ArchCast's there)."""


def _row(label: str, methods: dict[str, tuple[float, float]], goal: float | None = None) -> str:
    baselines = {m: v for m, v in methods.items() if m != "archcast" and m not in ABLATIONS}
    best_name, best = max(baselines.items(), key=lambda kv: kv[1][0])
    ours = methods["archcast"]
    # baselines and ablations; the other candidate is ArchCast too, the one validation did not choose: shown, no rival
    rivals = [v[0] for m, v in methods.items() if m != "archcast" and m not in NOT_RIVALS]
    ahead = "yes" if ours[0] > max(rivals) else "no"
    ablations = [_pm(methods[a]) if a in methods else "-" for a in ABLATIONS]
    goal_text = "-" if goal is None else f"{goal:.2f} ({'met' if ours[0] >= goal else 'not met'})"
    return f"| {label} | {_pm(ours)} | {' | '.join(ablations)} | {best_name} {_pm(best)} | {ahead} | {goal_text} |"


HEADER = [
    "| target | ArchCast | augmentation throughout (earlier recipe) | without augmentation / consistency "
    "| without pre-training | without the node-sum readout | the other candidate (not chosen on validation; no rival) "
    "| best baseline "
    "| ArchCast ahead of baselines and ablations | goal |",
    "|---|---|---|---|---|---|---|---|---|---|",
]


def with_recipe(methods: dict, recipe: str, candidates: tuple[str, ...] = ()) -> dict:
    """``methods`` with ``recipe`` as ArchCast and the other ``candidates`` (validation did not choose them) in their
    own column. Where ``archcast`` is no candidate, its runs become the ablation without the node-sum readout. The
    recipe's own ablations (``RECIPE_ABLATIONS``) take their columns; other candidates' ablations leave the row."""
    if recipe not in methods:
        return methods
    ours = RECIPE_ABLATIONS.get(recipe, {})
    theirs = {run for m in candidates if m != recipe for run in RECIPE_ABLATIONS.get(m, {}).values()}
    others = [m for m in candidates if m != recipe and m in methods]
    if recipe == "archcast" and not others and not theirs & set(methods):
        return methods
    own = {column: methods[run] for column, run in ours.items() if run in methods}  # they replace archcast's
    moved = {*candidates, recipe, "archcast", *theirs, *ours.values(), *own}
    rest = {m: v for m, v in methods.items() if m not in moved}
    columns = {"archcast": methods[recipe]}
    if "archcast" not in candidates and recipe != "archcast" and "archcast" in methods:
        columns[PLAIN_READOUT] = methods["archcast"]
    if others:
        columns[OTHER_CANDIDATE] = methods[others[0]]
    return rest | columns | own


def validation_line(summary: dict, methods: tuple[str, ...]) -> str:
    """Mean validation score over seeds per size of ``methods`` and ``archcast``, from the runs that record it."""
    methods = tuple(dict.fromkeys((*[m for m in methods if m in summary], "archcast")))
    sizes = sorted((n for n in summary.get(methods[0], {}) if "val_scores" in summary[methods[0]][n]), key=int)
    if not sizes or any("val_scores" not in summary.get(m, {}).get(n, {}) for m in methods for n in sizes):
        return ""
    scores = [f"`{m}` " + " / ".join(f"{np.mean(summary[m][n]['val_scores']):.4f}" for n in sizes) for m in methods]
    return f"Mean validation score over seeds at {' / '.join(sizes)} cells: {'; '.join(scores)}."


def sizes_section(task: str, metric: str, folder: str = "", recipes: tuple[str, ...] = ()) -> list[str]:
    """``folder``: a sub-folder of the results holding another run of the task (e.g. ``long``: more steps).

    ``recipes``: the candidates for ArchCast's recipe in this table (``sample_sizes.recipe_of`` picks one per size on
    validation); the ``archcast`` runs become the ablation without the node-sum readout, the candidate not chosen
    its own column. Empty: ``archcast`` is the recipe.
    """
    from benchmarks.quality.sample_sizes import recipe_of

    data = _load(f"{folder}/{task}_sizes" if folder else f"{task}_sizes")
    if data is None:
        return [f"(no `{folder or '.'}/{task}_sizes.json`: run `python -m benchmarks.quality.sample_sizes --task {task}`)", ""]
    raw = data["summary"]
    recipe_runs = [m for m in ("archcast", *recipes) if m in raw]
    if not recipe_runs:
        return [f"(`{folder or '.'}/{task}_sizes.json` has no archcast runs yet: run `python -m benchmarks.quality.sample_sizes "
                f"--task {task} --variants archcast --merge`)", ""]  # fmt: skip
    validation = validation_line(raw, recipes) if recipes else ""
    sizes = sorted({n for m in recipe_runs for n in raw[m]}, key=int)
    by_size = {  # per size: method -> that size's results, the recipe chosen there as "archcast"
        n: with_recipe({m: raw[m][n] for m in raw if n in raw[m]}, recipe_of(task, raw, n) if recipes else "archcast", recipes)
        for n in sizes
    }
    lines = [*([validation, ""] if validation else []), *HEADER]
    if task == "accuracy":
        for t in ACCURACY_HEADLINE:
            for n in sizes:
                methods = {m: tuple(r["targets"][t][metric]) for m, r in by_size[n].items()}
                lines.append(_row(f"{t}, {n} cells", methods, ACCURACY_GOALS.get((t, n))))
    else:
        from benchmarks.quality.sample_sizes import MOBILE_EDGE

        for n in sizes:
            methods = {}
            for m, r in by_size[n].items():
                per_seed_means = np.array([r["targets"][t][metric][0] for t in MOBILE_EDGE])
                methods[m] = (float(per_seed_means.mean()), float(per_seed_means.std()))
            lines.append(_row(f"mean of {len(MOBILE_EDGE)} mobile / edge devices, {n} cells (± = spread over devices)", methods))
        ahead = {}
        for n in sizes:
            ahead[n] = sum(
                by_size[n]["archcast"]["targets"][t][metric][0]
                >= max(r["targets"][t][metric][0] for m, r in by_size[n].items() if m not in NOT_RIVALS)
                for t in MOBILE_EDGE
            )
        counts = ", ".join(f"{ahead[n]} of {len(MOBILE_EDGE)} at {n} cells" for n in sizes)
        lines += ["", f"Devices where ArchCast has the best Spearman of all baselines and ablations: {counts}."]
    return [*lines, ""]


def network_section() -> list[str]:
    data = _load("network_spaces")
    if data is None:
        return ["(no `network_spaces.json`)", ""]
    lines, best = [*HEADER], []
    for name, result in data["results"].items():
        targets = result["targets"]
        methods = {}
        for m in next(iter(targets.values())):
            per_target = np.array([v[m]["spearman"][0] for v in targets.values()])  # (mean, std) over seeds
            methods[m] = (float(per_target.mean()), float(per_target.std()))
        lines.append(_row(f"{name}: mean Spearman of {len(targets)} devices (± = spread over devices)", methods))
        margins = [  # at the reported precision: ArchCast's Spearman minus the best baseline's
            round(v["archcast"]["spearman"][0], 3) - max(round(r["spearman"][0], 3) for m, r in v.items() if m != "archcast")
            for v in targets.values()
        ]
        ahead, behind = sum(d > 1e-9 for d in margins), sum(d < -1e-9 for d in margins)
        best.append(
            f"{name} (Spearman to 3 decimals): ArchCast ahead of every baseline on {ahead} of {len(targets)} devices, "
            f"tied on {len(targets) - ahead - behind}, behind on {behind}."
        )
    return [*lines, "", *best, ""]


def small_sample_section() -> list[str]:
    data = _load("small_sample")
    if data is None:
        return ["(no `small_sample.json`)", ""]
    lines, notes = [*HEADER], []
    for space, methods in data["summary"].items():
        taus = {m: tuple(v["kendall_tau"]) for m, v in methods.items()}
        label = f"{space} Kendall tau"
        if "node_sum" in taus:  # a screened variant: ArchCast's recipe where validation chose it, dropped where not
            node_sum, plain = (methods[m].get("val_score", (float("-inf"),))[0] for m in ("node_sum", "archcast"))
            chosen = node_sum > plain
            taus = with_recipe(taus, "node_sum") if chosen else {m: v for m, v in taus.items() if m != "node_sum"}
            notes.append(f"{space}: validation {'chose' if chosen else 'did not choose'} the node-sum readout "
                         f"(mean validation Kendall tau {node_sum:.3f} against {plain:.3f} without it).")  # fmt: skip
        if "archcast" not in taus:  # the current recipe was not run on this space: show the earlier one, and say so
            taus["archcast"] = taus.pop(EARLIER_RECIPE)
            label += " (ArchCast column: the earlier recipe; the current one was not run here)"
        lines.append(_row(label, taus))
    return [*lines, "", *notes, ""] if notes else [*lines, ""]


def fewshot_section() -> list[str]:
    data = _load("fewshot")
    if data is None:
        return ["(no `fewshot.json`)", ""]
    lines = ["| source | 10 cells | 20 cells | goal (HELP, 10 cells) |", "|---|---|---|---|"]
    for source, result in data["summary"].items():
        per_seed = result["mean_spearman_per_seed"]
        ten, twenty = (np.mean(per_seed["10"]), np.std(per_seed["10"])), (np.mean(per_seed["20"]), np.std(per_seed["20"]))
        met = "met" if ten[0] > 0.932 else "not met"
        lines.append(f"| {source} | {_pm(ten)} | {_pm(twenty)} | above 0.932 ({met}) |")
    return [*lines, ""]


def uncertainty_section() -> list[str]:
    lines = ["| predictor | targets | ±1σ on test (min-max) | ±2σ on test (min-max) |", "|---|---|---|---|"]
    for name in CELL_PREDICTORS:
        path = PREDICTOR_DIR / f"{name}.card.json"
        if not path.exists():
            continue
        targets = json.loads(path.read_text())["targets"]
        one = [t["metrics"]["within_1sigma"] for t in targets if "within_1sigma" in t["metrics"]]
        two = [t["metrics"]["within_2sigma"] for t in targets if "within_2sigma" in t["metrics"]]
        if one:
            lines.append(f"| {name} | {len(targets)} | {min(one):.0f}-{max(one):.0f} % | {min(two):.0f}-{max(two):.0f} % |")
    calibration = _load("calibration_std")
    if calibration is not None:
        rows = calibration["sizes"]
        shares = ", ".join(
            f"{n} cells {r['inflated_within_1sigma']:.0f} / {r['inflated_within_2sigma']:.0f} %" for n, r in rows.items()
        )
        lines += ["", f"Calibrated devices (31 settings other than HELP's test devices), ±1σ / ±2σ: {shares}."]
    return [*lines, ""]


def label_noise_section() -> list[str]:
    data = _load("label_noise")
    if data is None:
        return ["(no `label_noise.json`)", ""]
    goals = {t: r["goal"] for t, r in data["targets"].items() if "goal" in r}
    lines = [
        f"{data['pairs']:,} pairs of twin cells (one network, two table rows, measured separately) show each table's own "
        "noise and the best any predictor can score against it: the Spearman ceiling sqrt(twin Spearman) and an "
        "Acc(10 %) bound. For the 900-cell goal on the mobile / edge devices:",
        "",
        "| verdict | devices |",
        "|---|---|",
    ]
    for verdict in sorted(set(goals.values())):
        names = [t.removeprefix("latency_").removesuffix("_ms") for t, v in goals.items() if v == verdict]
        lines.append(f"| {verdict} | {len(names)}: {', '.join(names)} |")
    return [*lines, ""]


def shipped_choice_line(name: str) -> str:
    """Which run a shipped card was exported from and the validation scores it was chosen on (from the card)."""
    path = PREDICTOR_DIR / f"{name}.card.json"
    if not path.exists():
        return ""
    card = json.loads(path.read_text())
    candidates = card.get("training", {}).get("selected_on_validation", [])
    if not candidates:
        return ""
    scores = ", ".join(f"`{c['run']}` {c['best_val_score']:.4f}" for c in candidates)
    return f"The shipped `{name}` {card['version']} is the candidate with the best validation score ({scores})."


def build() -> str:
    from benchmarks.quality.sample_sizes import TASKS

    lines = [
        "# Predictor quality: the full table",
        "",
        "Built by `python -m benchmarks.quality.summary` from the result files next to it (each names its machine, "
        "command and seeds); `python -m benchmarks.quality` re-runs everything from scratch. Disjoint train / "
        "validation / test splits (committed), checkpoints chosen on validation, mean ± std over 3 seeds unless said.",
        "",
        "## NB201 accuracy (Kendall tau on the test cells; `accuracy_sizes.md`)",
        "",
        "ArchCast starts from an encoder pre-trained without labels on every NB201 graph (`training/pretrain.py`), "
        "trains the first half of its steps with augmentation + consistency loss and the second half on the canonical "
        "node order alone, and keeps the checkpoint with the best validation score over both halves. At each size it "
        "is whichever of two candidates has the better mean validation score: `archcast` (squared error, fusion "
        "readout) or `node_sum_huber` (the node-sum readout of `training.network` and the Huber form of the squared "
        "error, `training.losses.masked_mse`, as the shipped `nb201-v1`); `the other candidate` is the one not "
        "chosen. `without augmentation / consistency` is the chosen candidate trained on the canonical order alone. "
        "`augmentation throughout` (the earlier recipe: augmentation + consistency at every step) and `without "
        "pre-training` (that recipe from random weights) ablate `archcast`.",
        "",
        *sizes_section("accuracy", "kendall_tau", recipes=TASKS["accuracy"]["recipe"]),
        "## NB201 accuracy, 100 epochs at 7,813 cells (Kendall tau; `long/accuracy_sizes.md`)",
        "",
        "The table above takes 2,000 optimiser steps at every size, about 33 epochs at 7,813 cells, where augmentation "
        "did not pay. The shipped `nb201-v1` trains 100 epochs (6,200 steps); these runs do the same on the same splits, "
        "seeds and pre-trained encoders: its recipe (`node_sum_huber`, which validation chose at 7,813 cells above) and "
        "that recipe without augmentation / consistency. `archcast` and the other ablations were not run at this length. "
        f"{shipped_choice_line('nb201-v1')} The same seeds trained beside 7 HELP latencies (`nb201-v1` 1.2.0's "
        "configuration): `long/latency_targets_cost.md`.",
        "",
        *sizes_section("accuracy", "kendall_tau", folder="long", recipes=("node_sum_huber",)),
        "## NB201 latency, 46 settings in one model (Spearman; `latency_sizes.md`, per device and goal check there)",
        "",
        *sizes_section("latency", "spearman"),
        "## NB201 latency with the pre-trained encoder (Spearman; `latency_pretraining_sizes.md`, goal check there)",
        "",
        "The `latency` task above predates pre-training (its ArchCast starts from random weights and augments at "
        "every step); this one adds both. ArchCast here also has the node-sum readout (`training.network`: each "
        "encoded node adds its own per-device term to the fusion readout), which validation chose at every size; "
        "`without the node-sum readout` is the same recipe without it. At each size ArchCast trains on the squared "
        "error (`node_sum`) or its Huber form (`node_sum_huber`, `training.losses.masked_mse`), whichever has the "
        "better mean validation score; `the other candidate` is the one not chosen. `without augmentation / "
        "consistency` is the chosen one trained on the canonical order alone (`node_sum_huber_no_aug`, `node_sum_no_aug`).",
        "",
        *sizes_section("latency_pretraining", "spearman", recipes=TASKS["latency_pretraining"]["recipe"]),
        "## NB201 latency with the pre-trained encoder, 100 epochs (Spearman; `long/latency_pretraining_sizes.md`)",
        "",
        "The runs above take 2,000 optimiser steps at every size, about 33 epochs at 7,813 cells. The shipped "
        "`nb201-latency-v1` trains 100 epochs; these runs do the same (6,200 steps) on the same splits and seeds.",
        "",
        *sizes_section("latency_pretraining", "spearman", folder="long"),
        "## What the NB201 latency labels allow (`label_noise.md`)",
        "",
        *label_noise_section(),
        "## FBNet and OFA latency (`network_spaces.md`)",
        "",
        "ArchCast here is each shipped card's configuration (pre-trained encoder; with or without augmentation as "
        "validation chose; `fbnet-latency-v1` and `ofa-latency-v1` 1.2.0 add the node-sum readout, "
        "`training.network`; both 1.3.0 cards train on the Huber form of the squared error, which validation "
        "chose); the half-and-half recipe has not been run on these spaces.",
        "",
        *network_section(),
        "## NB101 and DARTS small subsets (`small_sample.md`)",
        "",
        "Both spaces were re-run with the current recipe (augmentation + consistency for the first half of the steps). "
        "The node-sum readout was then screened on both (`--variants archcast node_sum --merge`); where validation "
        "chose it, it is ArchCast's column and the run without it moves to its own column.",
        "",
        *small_sample_section(),
        "## Few-shot calibration of unseen devices, mean Spearman over HELP's six test devices (`fewshot.md`)",
        "",
        *fewshot_section(),
        "## Uncertainty: share of test values inside the predicted interval",
        "",
        *uncertainty_section(),
    ]
    return "\n".join(lines)


def main() -> None:
    text = build()
    (RESULTS / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
