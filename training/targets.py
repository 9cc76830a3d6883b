"""Target registry: one name -> the benchmark table column it comes from, its unit and whether it is log-scaled.

Accuracies also carry their chance rate (100 / classes %, the test sets are balanced), the ``floor`` no prediction goes
below: a network whose output does not depend on its input (an NB201 cell with no path from input to output that is not
``none``) classifies at exactly that rate, and every such NB201 row reads 10 / 1 / 0.833 %. The regressed
log(100 - accuracy) barely weighs those cells (10 % and 3 % are 0.07 apart), so nb201-v1 1.3.0 read them 3.4 / 0.0 /
0.0 %, and they made 83 % of its CIFAR-10 test MAPE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Target:
    name: str
    table: str  # path relative to the data dir
    column: str
    unit: str
    transform: str  # what the network regresses: "log" (latency), "log_error" (log(100 - accuracy %)), "identity"
    description: str
    floor: float | None = None  # the lowest value a prediction takes (chance accuracy, %); None: unbounded


CLASSES = {"cifar10": 10, "cifar100": 100, "imagenet16": 120}  # ImageNet16-120: 120 classes


def chance_pct(dataset: str) -> float:
    """Accuracy (%) of a classifier that ignores its input, on the balanced test set of ``dataset``."""
    return 100.0 / CLASSES[dataset]


def _accuracy(dataset: str, column: str, label: str) -> Target:
    return Target(
        f"{dataset}_test_acc", "nb201/accuracy.csv.gz", column, "%", "log_error", f"{label} test accuracy after 200 epochs",
        chance_pct(dataset),
    )  # fmt: skip


def _accuracy_12ep(dataset: str, column: str, label: str) -> Target:
    return Target(
        f"{dataset}_test_acc_12ep", "nb201/accuracy.csv.gz", column, "%", "log_error",
        f"{label} test accuracy after 12 epochs", chance_pct(dataset),
    )  # fmt: skip


def _help_latency(device: str, label: str) -> Target:
    return Target(f"latency_{device}_ms", "nb201/latency_help_ms.csv.gz", device, "ms", "log", f"latency on {label} (HELP table)")


def _eagle_latency(column: str) -> Target:
    name = "latency_eagle_" + column.replace("-", "_").lower() + "_ms"
    return Target(name, "nb201/latency_eagle_ms.csv.gz", column, "ms", "log", f"latency on {column} (Eagle / LatBench table)")


def _nnmeter_latency(column: str) -> Target:
    name = "latency_nnmeter_" + column.lower() + "_ms"
    return Target(
        name, "nb201/latency_nnmeter_ms.csv.gz", column, "ms", "log", f"latency on {column} (nn-Meter table, 2,000 cells)"
    )


_HELP_GPUS = {
    "1080ti": "NVIDIA GTX 1080 Ti",
    "2080ti": "NVIDIA RTX 2080 Ti",
    "titan_rtx": "NVIDIA Titan RTX",
    "titanx": "NVIDIA Titan X",
    "titanxp": "NVIDIA Titan Xp",
}
_HELP_OTHERS = {
    "gold_6240": "Intel Xeon Gold 6240",
    "silver_4114": "Intel Xeon Silver 4114",
    "silver_4210r": "Intel Xeon Silver 4210R",
    "samsung_a50": "Samsung Galaxy A50",
    "samsung_s7": "Samsung Galaxy S7",
    "essential_ph_1": "Essential PH-1",
}
EAGLE_COLUMNS = (
    "desktop-cpu-core-i7-7820x-fp32",
    "desktop-gpu-gtx-1080ti-fp32",
    "desktop-gpu-gtx-1080ti-large",
    "embedded-gpu-jetson-nano-fp16",
    "embedded-gpu-jetson-nano-fp32",
    "embedded-tpu-edge-tpu-int8",
    "embedded-tpu-edgetpu-large",
    "mobile-cpu-snapdragon-450-cortex-a53-int8",
    "mobile-cpu-snapdragon-675-kryo-460-int8",
    "mobile-cpu-snapdragon-855-kryo-485-int8",
    "mobile-dsp-snapdragon-675-hexagon-685-int8",
    "mobile-dsp-snapdragon-855-hexagon-690-int8",
    "mobile-gpu-snapdragon-450-adreno-506-int8",
    "mobile-gpu-snapdragon-675-adreno-612-int8",
    "mobile-gpu-snapdragon-855-adreno-640-int8",
)
NNMETER_COLUMNS = (
    "pixel4_cortexA76cpu_tflite21",
    "mi9_adreno640gpu_tflite21",
    "pixel3xl_adreno630gpu_tflite21",
    "ncs2_myriadvpu_openvino2019r2",
)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        _accuracy("cifar10", "cifar10_test_200ep", "CIFAR-10"),
        _accuracy("cifar100", "cifar100_test_200ep", "CIFAR-100"),
        _accuracy("imagenet16", "imagenet16_test_200ep", "ImageNet16-120"),
        _help_latency("pixel3", "Google Pixel 3"),
        _help_latency("pixel2", "Google Pixel 2"),
        _help_latency("raspi4", "Raspberry Pi 4"),
        _help_latency("eyeriss", "Eyeriss ASIC"),
        _help_latency("fpga", "FPGA"),
        _help_latency("gold_6226", "Intel Xeon Gold 6226, batch 1"),
        _help_latency("titan_rtx_256", "NVIDIA Titan RTX, batch 256"),
    )
}
DEFAULT_TARGETS: tuple[str, ...] = tuple(TARGETS)
"""The targets of nb201-v1 up to 1.2.0 (now nb201-help-v1's network): 3 accuracies and 7 HELP latencies."""

for _dataset, _label in (("cifar10", "CIFAR-10"), ("cifar100", "CIFAR-100"), ("imagenet16", "ImageNet16-120")):
    _t = _accuracy_12ep(_dataset, f"{_dataset}_test_12ep", _label)
    TARGETS[_t.name] = _t
for _gpu, _label in _HELP_GPUS.items():
    for _batch in (1, 32, 256):
        _t = _help_latency(f"{_gpu}_{_batch}", f"{_label}, batch {_batch}")
        TARGETS.setdefault(_t.name, _t)
for _device, _label in _HELP_OTHERS.items():
    _t = _help_latency(_device, _label)
    TARGETS[_t.name] = _t
for _column in EAGLE_COLUMNS:
    _t = _eagle_latency(_column)
    TARGETS[_t.name] = _t
for _column in NNMETER_COLUMNS:
    _t = _nnmeter_latency(_column)
    TARGETS[_t.name] = _t

FBNET_COLUMNS = (
    "1080ti_1", "1080ti_32", "1080ti_64", "2080ti_1", "2080ti_32", "2080ti_64", "essential_ph_1", "eyeriss", "fpga",
    "gold_6226", "gold_6240", "pixel2", "pixel3", "raspi4", "samsung_a50", "samsung_s7", "silver_4114", "silver_4210r",
    "titan_rtx_1", "titan_rtx_32", "titan_rtx_64", "titanx_1", "titanx_32", "titanx_64", "titanxp_1", "titanxp_32",
    "titanxp_64",
)  # fmt: skip
OFA_COLUMNS = tuple(f"{gpu}_{batch}" for gpu in ("2080ti", "titan_rtx", "titan_xp", "v100") for batch in (1, 32, 64))
for _column in FBNET_COLUMNS:
    TARGETS[f"fbnet_latency_{_column}_ms"] = Target(
        f"fbnet_latency_{_column}_ms", "fbnet/latency_help_ms.csv.gz", _column, "ms", "log",
        f"FBNet-space network latency on {_column} (HELP table)",
    )  # fmt: skip
for _column in OFA_COLUMNS:
    TARGETS[f"ofa_latency_{_column}_ms"] = Target(
        f"ofa_latency_{_column}_ms", "ofa/latency_help_ms.csv.gz", _column, "ms", "log",
        f"OFA MobileNetV3 network latency on {_column} (HELP table)",
    )  # fmt: skip
TARGETS["nb101_cifar10_val_acc"] = Target(
    "nb101_cifar10_val_acc", "nb101/naslib_subset.json.gz", "val_accuracy", "%", "log_error",
    "NAS-Bench-101 CIFAR-10 validation accuracy (NASLib subset, 500 cells)", chance_pct("cifar10"),
)  # fmt: skip
TARGETS["darts_cifar10_val_acc"] = Target(
    "darts_cifar10_val_acc", "nb301/naslib_subset.json.gz", "val_accuracy", "%", "log_error",
    "DARTS-space CIFAR-10 validation accuracy (NAS-Bench-301 via NASLib subset, 725 cells)", chance_pct("cifar10"),
)  # fmt: skip
FBNET_LATENCY_TARGETS: tuple[str, ...] = tuple(f"fbnet_latency_{c}_ms" for c in FBNET_COLUMNS)
OFA_LATENCY_TARGETS: tuple[str, ...] = tuple(f"ofa_latency_{c}_ms" for c in OFA_COLUMNS)

HELP_LATENCY_TARGETS: tuple[str, ...] = tuple(n for n, t in TARGETS.items() if t.table == "nb201/latency_help_ms.csv.gz")
EAGLE_LATENCY_TARGETS: tuple[str, ...] = tuple(n for n, t in TARGETS.items() if t.table == "nb201/latency_eagle_ms.csv.gz")
NNMETER_LATENCY_TARGETS: tuple[str, ...] = tuple(n for n, t in TARGETS.items() if t.table == "nb201/latency_nnmeter_ms.csv.gz")
LATENCY_TARGETS: tuple[str, ...] = HELP_LATENCY_TARGETS + EAGLE_LATENCY_TARGETS + NNMETER_LATENCY_TARGETS


def prediction_floors(targets: list[str] | tuple[str, ...]) -> np.ndarray:
    """Per target, the lowest value a prediction takes (``Target.floor``; -inf where unbounded)."""
    return np.array([-np.inf if TARGETS[t].floor is None else TARGETS[t].floor for t in targets], dtype=np.float64)


HELP_FEWSHOT_DEVICES: tuple[str, ...] = (
    "latency_titan_rtx_256_ms",
    "latency_gold_6226_ms",
    "latency_pixel2_ms",
    "latency_raspi4_ms",
    "latency_eyeriss_ms",
    "latency_fpga_ms",
)
"""HELP's six meta-test devices (Lee et al., NeurIPS 2021): never seen by the few-shot source predictor."""
HELP_META_TRAIN_DEVICES: tuple[str, ...] = tuple(
    f"latency_{d}_ms"
    for d in (
        "1080ti_1",
        "1080ti_32",
        "1080ti_256",
        "silver_4114",
        "silver_4210r",
        "samsung_a50",
        "pixel3",
        "essential_ph_1",
        "samsung_s7",
    )
)
"""HELP's nine meta-training devices for NB201 (HayeonLee/HELP, script/run_nas_metad2a.sh)."""
FEWSHOT_SOURCE_TARGETS: tuple[str, ...] = tuple(t for t in LATENCY_TARGETS if t not in HELP_FEWSHOT_DEVICES)

ACCURACY_TARGETS: tuple[str, ...] = tuple(n for n, t in TARGETS.items() if t.table == "nb201/accuracy.csv.gz")
"""nb201-v1's targets since 1.3.0: the 3 accuracies after 200 epochs and after 12."""

TARGET_GROUPS: dict[str, tuple[str, ...]] = {
    "default": DEFAULT_TARGETS,
    "accuracy": ACCURACY_TARGETS,
    "latency": LATENCY_TARGETS,
    "fewshot_source": FEWSHOT_SOURCE_TARGETS,
    "help_meta_train": HELP_META_TRAIN_DEVICES,
    "all": tuple(t for t, v in TARGETS.items() if v.table.startswith("nb201/")),
    "fbnet_latency": FBNET_LATENCY_TARGETS,
    "ofa_latency": OFA_LATENCY_TARGETS,
}


def space_of(targets: list[str] | tuple[str, ...]) -> str:
    """The search space (nb201, fbnet, ofa, nb101, darts) of a target list; all must share one."""
    folders = {"nb301": "darts"}  # NAS-Bench-301 is the DARTS space
    spaces = {folders.get(TARGETS[t].table.split("/")[0], TARGETS[t].table.split("/")[0]) for t in targets}
    if len(spaces) != 1:
        raise ValueError(f"targets {list(targets)} come from several spaces {sorted(spaces)}; train one predictor per space")
    return spaces.pop()
