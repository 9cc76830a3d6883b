"""The shipped multi-device latency predictor (nb201-latency-v1): coverage, default choice, few-shot calibration on it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from scipy import stats

from model.card import PREDICTOR_DIR, ModelCard

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
CARD = PREDICTOR_DIR / "nb201-latency-v1.card.json"
pytestmark = pytest.mark.skipif(not CARD.exists(), reason=f"{CARD} is not committed")


@pytest.fixture(scope="module")
def shipped() -> Iterator[TestClient]:
    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(predictor_dir=PREDICTOR_DIR, providers="cpu")), raise_server_exceptions=False) as c:
        yield c


def test_card_covers_every_published_latency_table() -> None:
    card = ModelCard.load(CARD)
    names = card.target_names
    assert len(names) == 46 and all(t.unit == "ms" for t in card.targets)
    assert sum(n.startswith("latency_eagle_") for n in names) == 15
    assert sum(n.startswith("latency_nnmeter_") for n in names) == 4
    assert {"latency_titan_rtx_256_ms", "latency_gold_6226_ms", "latency_pixel2_ms", "latency_fpga_ms"} <= set(names)
    for target in card.targets:  # measured on the split's test cells, never on training or validation cells
        assert target.metrics["n"] > 900 and -1 <= target.metrics["spearman"] <= 1


def test_requested_targets_choose_the_predictor(shipped: TestClient) -> None:
    arch = {"space": "nb201", "arch": ARCH}
    plain = shipped.post("/v1/predict", json={"architectures": [arch]}).json()
    assert plain["predictor"] == "nb201-v1"  # the default keeps its place (priority)
    target = "latency_eagle_embedded_tpu_edge_tpu_int8_ms"
    chosen = shipped.post("/v1/predict", json={"architectures": [arch], "targets": [target]})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["predictor"] == "nb201-latency-v1"
    assert chosen.json()["results"][0]["predictions"][target]["value"] > 0
    unknown = shipped.post("/v1/predict", json={"architectures": [arch], "targets": ["latency_toaster_ms"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_target"


def test_accuracy_and_latency_in_one_request(shipped: TestClient) -> None:
    """The default nb201-v1 predicts accuracies only; a HELP latency comes from nb201-help-v1, an Eagle one from
    nb201-latency-v1, each the same value as when that predictor is named."""
    arch = {"space": "nb201", "arch": ARCH}
    targets = ["cifar10_test_acc", "latency_pixel3_ms", "latency_eagle_embedded_tpu_edge_tpu_int8_ms"]
    response = shipped.post("/v1/predict", json={"architectures": [arch], "targets": targets})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictor"] == "nb201-v1"
    assert [(p["predictor"], p["targets"]) for p in body["answered_by"]] == [
        ("nb201-v1", ["cifar10_test_acc"]),
        ("nb201-help-v1", ["latency_pixel3_ms"]),
        ("nb201-latency-v1", ["latency_eagle_embedded_tpu_edge_tpu_int8_ms"]),
    ]
    predictions = body["results"][0]["predictions"]
    assert list(predictions) == targets
    for part in body["answered_by"]:
        alone = shipped.post("/v1/predict", json={"architectures": [arch], "predictor": part["predictor"]}).json()
        for target in part["targets"]:
            assert predictions[target] == alone["results"][0]["predictions"][target]


def test_calibrating_a_device_from_ten_real_measurements(shipped: TestClient) -> None:
    """Ten HELP measurements of the Eyeriss accelerator rank 2,000 other cells almost exactly like the table."""
    from model.tables import read_csv_table

    try:
        table = read_csv_table("nb201/latency_help_ms.csv.gz")
    except FileNotFoundError as exc:
        pytest.skip(f"benchmark tables absent: {exc}")
    rng = np.random.default_rng(0)
    rows = rng.choice(len(table["arch_str"]), 2010, replace=False)
    archs = [table["arch_str"][r] for r in rows]
    measured = np.array([float(table["eyeriss"][r]) for r in rows])
    body = {
        "device": "eyeriss-again",
        "measurements": [
            {"architecture": {"space": "nb201", "arch": a}, "latency_ms": float(ms)}
            for a, ms in zip(archs[:10], measured[:10], strict=True)
        ],
    }
    response = shipped.post("/v1/calibrate", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["base"] == "nb201-latency-v1"
    predict = {"architectures": [{"space": "nb201", "arch": a} for a in archs[10:]], "predictor": "calibrated-eyeriss-again"}
    results = shipped.post("/v1/predict", json=predict).json()["results"]
    predicted = np.array([r["predictions"]["latency_eyeriss_again_ms"]["value"] for r in results])
    assert stats.spearmanr(predicted, measured[10:]).statistic > 0.95
    assert np.median(np.abs(predicted / measured[10:] - 1)) < 0.1


@pytest.mark.parametrize("name", ["nb201-v1", "nb201-help-v1", "nb201-latency-v1"])
def test_every_shipped_target_has_a_checked_std(shipped: TestClient, name: str) -> None:
    card = ModelCard.load(PREDICTOR_DIR / f"{name}.card.json")
    for target in card.targets:  # fitted on validation cells, coverage counted on test cells
        assert target.metrics["std_log"] > 0
        assert 85 <= target.metrics["within_2sigma"] <= 100, target.name
    body = shipped.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": ARCH}], "predictor": name}).json()
    for target in card.targets:
        prediction = body["results"][0]["predictions"][target.name]
        assert 0 < prediction["std"] < prediction["value"]


def test_predictive_std_in_target_units() -> None:
    from service.pipeline import predictive_std

    sigma = 0.05
    spread = np.sqrt(np.expm1(sigma**2) * np.exp(sigma**2))
    assert predictive_std(20.0, "log", sigma) == pytest.approx(20.0 * spread)  # latency: log-normal around 20 ms
    assert predictive_std(93.0, "log_error", sigma) == pytest.approx(7.0 * spread)  # accuracy: the 7 % error is log-normal
    samples = 20.0 * np.exp(np.random.default_rng(0).normal(scale=sigma, size=200_000))
    assert np.std(samples) == pytest.approx(predictive_std(20.0, "log", sigma), rel=0.01)
