"""Target registry: one name -> the benchmark table column it comes from, its unit and whether it is log-scaled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    name: str
    table: str  # path relative to the data dir
    column: str
    unit: str
    transform: str  # what the network regresses: "log" (latency), "log_error" (log(100 - accuracy %)), "identity"
    description: str


def _accuracy(dataset: str, column: str, label: str) -> Target:
    return Target(
        f"{dataset}_test_acc", "nb201/accuracy.csv.gz", column, "%", "log_error", f"{label} test accuracy after 200 epochs"
    )


def _help_latency(device: str, label: str) -> Target:
    return Target(f"latency_{device}_ms", "nb201/latency_help_ms.csv.gz", device, "ms", "log", f"latency on {label} (HELP table)")


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
