"""Few-shot calibration: the fit (model.calibration), the ONNX graph it builds, POST /v1/calibrate and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import ToyPredictor
from fastapi.testclient import TestClient

from model.calibration import STD_INFLATION, calibrated_onnx, fit_calibration, std_inflation
from model.canonical import canonicalize
from model.parsers import NB201_OPS, nb201_arch_str, parse_nb201
from model.tokenizer import tokenize_graphs

ROOT = Path(__file__).resolve().parent.parent


def nb201_archs(count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(nb201_arch_str([NB201_OPS[i] for i in rng.integers(1, 5, size=6)]) for _ in range(count)))


def toy_latency(toy: ToyPredictor, archs: list[str]) -> np.ndarray:
    graphs = [parse_nb201(a) for a in archs]
    graphs = [g.renumbered(canonicalize(g).order) for g in graphs]
    return toy.expected(graphs)[:, 2]  # toy-cell's third target, gpu_latency (ms)


def new_device(base_ms: np.ndarray) -> np.ndarray:
    """A made-up device whose latency is a power law of the base latency."""
    return np.exp(0.4) * base_ms**1.3


# --- the fit -----------------------------------------------------------------------------------------------------------


def test_single_device_fit_recovers_a_power_law() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(1, 20, size=(12, 4))
    measured = np.exp(0.3) * base[:, 2] ** 1.2
    fit = fit_calibration(base, measured, [0, 1, 2, 3], ["a", "b", "c", "d"], method="single")
    assert fit.sources == ("c",) and fit.columns == (2,)
    assert fit.weights[0] == pytest.approx(1.2, abs=1e-9) and fit.bias == pytest.approx(0.3, abs=1e-9)
    assert fit.loo_rmse_log < 1e-9
    new = rng.uniform(1, 20, size=(50, 4))
    np.testing.assert_allclose(fit.predict(new), np.exp(0.3) * new[:, 2] ** 1.2, rtol=1e-9)


def test_auto_picks_ridge_when_the_device_mixes_several_sources() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(1, 20, size=(30, 5))
    measured = np.exp(0.5 * np.log(base[:, 0]) + 0.5 * np.log(base[:, 3]))
    fit = fit_calibration(base, measured, range(5), list("abcde"))
    assert fit.method == "ridge"
    new = rng.uniform(1, 20, size=(200, 5))
    truth = np.sqrt(new[:, 0] * new[:, 3])
    assert np.median(np.abs(fit.predict(new) / truth - 1)) < 0.05
    single = fit_calibration(base, measured, range(5), list("abcde"), method="single")
    assert fit.loo_rmse_log < single.loo_rmse_log


def test_leave_one_out_error_is_the_honest_one() -> None:
    """The LOO RMSE is larger than the in-sample one and close to the error on fresh data."""
    rng = np.random.default_rng(2)
    base = rng.uniform(1, 20, size=(400, 3))
    measured = base[:, 1] * np.exp(rng.normal(scale=0.1, size=400))
    fit = fit_calibration(base[:20], measured[:20], [0, 1, 2], ["a", "b", "c"], method="single")
    in_sample = np.sqrt(np.mean((np.log(measured[:20]) - np.log(fit.predict(base[:20]))) ** 2))
    fresh = np.sqrt(np.mean((np.log(measured[20:]) - np.log(fit.predict(base[20:]))) ** 2))
    assert fit.loo_rmse_log > in_sample
    assert 0.5 * fresh < fit.loo_rmse_log < 2.0 * fresh


def test_std_is_the_leave_one_out_error_inflated_for_few_measurements() -> None:
    """Fewer measurements, wider std: the table's factors at its sizes, interpolated between, flat beyond."""
    assert [std_inflation(n) for n in sorted(STD_INFLATION)] == [STD_INFLATION[n] for n in sorted(STD_INFLATION)]
    factors = [std_inflation(n) for n in range(5, 201)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False)) and factors[-1] >= 1.0
    assert STD_INFLATION[10] > std_inflation(12) > STD_INFLATION[15]
    rng = np.random.default_rng(3)
    base = rng.uniform(1, 20, size=(12, 2))
    fit = fit_calibration(base, base[:, 0] * np.exp(rng.normal(scale=0.1, size=12)), [0, 1], ["a", "b"])
    assert fit.std_log == pytest.approx(fit.loo_rmse_log * std_inflation(12))


@pytest.mark.parametrize(
    ("measured", "message"),
    [([1.0, 2.0, 3.0], "at least 5"), ([1.0, 2.0, 3.0, 0.0, 4.0], "> 0"), ([1.0, 2.0, np.nan, 3.0, 4.0], "finite")],
)
def test_bad_measurements_are_refused(measured: list[float], message: str) -> None:
    base = np.ones((len(measured), 2))
    with pytest.raises(ValueError, match=message):
        fit_calibration(base, np.asarray(measured), [0, 1], ["a", "b"])


def test_calibrated_onnx_computes_what_the_fit_predicts(toy_predictors: tuple[Path, dict[str, ToyPredictor]]) -> None:
    directory, toys = toy_predictors
    base_model = onnx.load(str(directory / "toy-cell.onnx"))
    archs = nb201_archs(40, seed=3)
    graphs = [parse_nb201(a) for a in archs]
    batch = tokenize_graphs([g.renumbered(canonicalize(g).order) for g in graphs])
    feeds = {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}
    base_out = ort.InferenceSession(base_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    base_out = np.abs(base_out) + 1.0  # all heads positive, as latency heads are
    fit = fit_calibration(base_out[:12], new_device(base_out[:12, 2]) * 1.01, [0, 1, 2], ["a", "b", "gpu_latency"])
    session = ort.InferenceSession(calibrated_onnx(base_model, fit).SerializeToString(), providers=["CPUExecutionProvider"])
    (calibrated,) = session.run(["prediction"], feeds)
    assert calibrated.shape == (len(archs), 1)
    raw = ort.InferenceSession(base_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    np.testing.assert_allclose(calibrated[:, 0], fit.predict(np.maximum(raw, 1e-12)), rtol=1e-4)


# --- the service -------------------------------------------------------------------------------------------------------


def _payload(archs: list[str], latencies: np.ndarray, device: str = "my-phone", **extra: object) -> dict:
    measurements = [
        {"architecture": {"space": "nb201", "arch": a}, "latency_ms": float(ms)} for a, ms in zip(archs, latencies, strict=True)
    ]
    return {"device": device, "measurements": measurements, "base": "toy-cell", **extra}


def test_calibrate_then_predict_the_new_device(
    make_client: Callable[..., TestClient], toy_predictors: tuple[Path, dict[str, ToyPredictor]]
) -> None:
    toy = toy_predictors[1]["toy-cell"]
    archs = nb201_archs(60, seed=4)
    measured, held_out = archs[:12], archs[12:]
    client = make_client()
    response = client.post("/v1/calibrate", json=_payload(measured, new_device(toy_latency(toy, measured))))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["predictor"] == "calibrated-my-phone" and body["target"] == "latency_my_phone_ms"
    assert body["n_samples"] == 12 and body["base"] == "toy-cell" and body["persisted"] is False
    assert body["sources"] == {"gpu_latency": pytest.approx(1.3, abs=1e-3)}
    assert body["loo_mape"] < 0.1

    predict = {"architectures": [{"space": "nb201", "arch": a} for a in held_out], "predictor": "calibrated-my-phone"}
    results = client.post("/v1/predict", json=predict).json()["results"]
    got = np.array([r["predictions"]["latency_my_phone_ms"]["value"] for r in results])
    np.testing.assert_allclose(got, new_device(toy_latency(toy, held_out)), rtol=1e-3)
    assert all(r["predictions"]["latency_my_phone_ms"]["std"] >= 0 for r in results)

    listed = {p["name"]: p for p in client.get("/v1/predictors").json()["predictors"]}
    assert listed["calibrated-my-phone"]["targets"][0]["metrics"]["n"] == 12
    # a request naming no predictor still gets the shipped default, not the calibrated one
    default = client.post("/v1/predict", json={"architectures": [{"space": "nb201", "arch": held_out[0]}]}).json()
    assert default["predictor"] == "toy-cell"


def test_calibration_std_covers_noisy_measurements(
    make_client: Callable[..., TestClient], toy_predictors: tuple[Path, dict[str, ToyPredictor]]
) -> None:
    """With 10 % log-normal noise on the device, about 2/3 of fresh measurements land within the predicted std."""
    toy = toy_predictors[1]["toy-cell"]
    archs = nb201_archs(400, seed=5)
    rng = np.random.default_rng(5)
    noisy = new_device(toy_latency(toy, archs)) * np.exp(rng.normal(scale=0.1, size=len(archs)))
    client = make_client()
    assert client.post("/v1/calibrate", json=_payload(archs[:30], noisy[:30])).status_code == 200
    predict = {"architectures": [{"space": "nb201", "arch": a} for a in archs[30:]], "predictor": "calibrated-my-phone"}
    results = client.post("/v1/predict", json=predict).json()["results"]
    value = np.array([r["predictions"]["latency_my_phone_ms"]["value"] for r in results])
    std = np.array([r["predictions"]["latency_my_phone_ms"]["std"] for r in results])
    inside = np.mean(np.abs(noisy[30:] - value) <= std)
    assert 0.5 < inside < 0.9


def test_calibration_is_persisted_and_seen_by_another_worker(
    make_client: Callable[..., TestClient], toy_predictors: tuple[Path, dict[str, ToyPredictor]], tmp_path: Path
) -> None:
    toy = toy_predictors[1]["toy-cell"]
    archs = nb201_archs(30, seed=6)
    first = make_client(calibration_dir=tmp_path)
    second = make_client(calibration_dir=tmp_path)  # started before the calibration exists, like a second worker
    response = first.post("/v1/calibrate", json=_payload(archs[:10], new_device(toy_latency(toy, archs[:10]))))
    assert response.json()["persisted"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calibrated-my-phone.card.json", "calibrated-my-phone.onnx"]
    predict = {"architectures": [{"space": "nb201", "arch": archs[20]}], "predictor": "calibrated-my-phone"}
    a, b = first.post("/v1/predict", json=predict).json(), second.post("/v1/predict", json=predict).json()
    assert a == b and a["version"] == response.json()["version"]
    # a restart loads it at start-up
    third = make_client(calibration_dir=tmp_path)
    assert "calibrated-my-phone" in {p["name"] for p in third.get("/v1/predictors").json()["predictors"]}
    # re-calibrating with other data gives a new version, which the other worker picks up
    again = first.post("/v1/calibrate", json=_payload(archs[:10], 2 * new_device(toy_latency(toy, archs[:10]))))
    assert again.json()["version"] != response.json()["version"]
    assert second.post("/v1/predict", json=predict).json()["version"] == again.json()["version"]


def test_a_broken_persisted_card_is_reported_once_per_file_version(
    make_client: Callable[..., TestClient], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(calibration_dir=tmp_path)
    (tmp_path / "calibrated-broken.card.json").write_text("{not json")  # written after start-up, as by another worker
    predict = {"architectures": [{"space": "nb201", "index": 1}], "predictor": "calibrated-broken"}
    caplog.clear()
    for _ in range(3):
        assert client.post("/v1/predict", json=predict).status_code == 404
    assert sum("cannot load calibrated predictor calibrated-broken" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("change", "status", "code", "named"),
    [
        ({"device": "My Phone"}, 422, "invalid_request", "device"),
        ({"base": "nope"}, 404, "unknown_predictor", "'nope'"),
        ({"base": "toy-darts"}, 422, "invalid_base", "no latency (ms) targets"),
        ({"measurements": []}, 422, "invalid_request", "at least 5"),
        ({"method": "magic"}, 422, "invalid_request", "method"),
    ],
)
def test_bad_calibration_requests_get_clear_4xx(
    make_client: Callable[..., TestClient],
    toy_predictors: tuple[Path, dict[str, ToyPredictor]],
    change: dict,
    status: int,
    code: str,
    named: str,
) -> None:
    toy = toy_predictors[1]["toy-cell"]
    archs = nb201_archs(10, seed=7)
    payload = _payload(archs, new_device(toy_latency(toy, archs))) | change
    response = make_client().post("/v1/calibrate", json=payload)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and named in error["message"], error


def test_bad_latencies_and_limits(make_client: Callable[..., TestClient]) -> None:
    archs = nb201_archs(10, seed=8)
    client = make_client(max_calibration_samples=8, max_calibrated_predictors=1)
    negative = client.post("/v1/calibrate", json=_payload(archs[:6], np.array([1.0, 2, 3, 4, 5, -1])))
    assert negative.status_code == 422 and "latency_ms" in negative.json()["error"]["message"]
    too_many = client.post("/v1/calibrate", json=_payload(archs, np.arange(1.0, 11.0)))
    assert too_many.status_code == 413 and "ARCHCAST_MAX_CALIBRATION_SAMPLES" in too_many.json()["error"]["message"]
    assert client.post("/v1/calibrate", json=_payload(archs[:6], np.arange(1.0, 7.0), device="a")).status_code == 200
    assert client.post("/v1/calibrate", json=_payload(archs[:6], np.arange(2.0, 8.0), device="a")).status_code == 200
    over = client.post("/v1/calibrate", json=_payload(archs[:6], np.arange(1.0, 7.0), device="b"))
    assert over.status_code == 409 and over.json()["error"]["code"] == "too_many_calibrations"
    unsupported = _payload(archs[:6], np.arange(1.0, 7.0)) | {
        "measurements": [{"architecture": {"space": "darts", "normal": [], "reduce": []}, "latency_ms": 1.0}] * 6
    }
    assert client.post("/v1/calibrate", json=unsupported).status_code == 422


# --- the CLI -----------------------------------------------------------------------------------------------------------


def test_cli_calibrate_writes_a_predictor_the_service_serves(
    toy_predictors: tuple[Path, dict[str, ToyPredictor]], tmp_path: Path
) -> None:
    directory, toys = toy_predictors
    archs = nb201_archs(20, seed=9)
    latencies = new_device(toy_latency(toys["toy-cell"], archs))
    csv_file = tmp_path / "phone.csv"
    csv_file.write_text("arch,latency_ms\n" + "".join(f"{a},{ms}\n" for a, ms in zip(archs[:12], latencies, strict=False)))
    env = {"ARCHCAST_PREDICTOR_DIR": str(directory), "ARCHCAST_PROVIDERS": "cpu", "PATH": "/usr/bin:/bin"}
    out = tmp_path / "calibrated"
    command = [sys.executable, "-m", "archcast.cli", "calibrate", "--device", "phone", "--measurements", str(csv_file)]
    done = subprocess.run(
        [*command, "--base", "toy-cell", "--out", str(out)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert summary["predictor"] == "calibrated-phone" and summary["n_samples"] == 12
    predicted = subprocess.run(
        [sys.executable, "-m", "archcast.cli", "predict", archs[15], "--predictor", "calibrated-phone"],
        capture_output=True, text=True, env=env | {"ARCHCAST_CALIBRATION_DIR": str(out)}, cwd=ROOT, timeout=120,
    )
    assert predicted.returncode == 0, predicted.stderr
    value = json.loads(predicted.stdout)["results"][0]["predictions"]["latency_phone_ms"]["value"]
    assert value == pytest.approx(latencies[15], rel=1e-3)

    bad = tmp_path / "bad.csv"
    bad.write_text("arch,latency_ms\n" + archs[0] + ",fast\n")
    refused = subprocess.run([*command[:-1], str(bad)], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert refused.returncode == 2 and "latency_ms 'fast' is not a number" in refused.stderr


def test_extreme_fits_never_produce_non_finite_latencies(toy_predictors: tuple[Path, dict[str, ToyPredictor]]) -> None:
    """A fit that would overflow float32 on other architectures is clipped to 10^7 ms (and 1e-6 ms below)."""
    from model.calibration import Calibration

    directory, _ = toy_predictors
    base_model = onnx.load(str(directory / "toy-cell.onnx"))
    batch = tokenize_graphs([parse_nb201(a) for a in nb201_archs(8, seed=10)])
    feeds = {"tokens": batch.tokens, "mask": batch.mask, "depth": batch.depth}
    for weight in (500.0, -500.0):
        fit = Calibration((2,), ("gpu_latency",), (weight,), 0.0, "single", 0.0, 10, 0.1, 10.0)
        session = ort.InferenceSession(calibrated_onnx(base_model, fit).SerializeToString(), providers=["CPUExecutionProvider"])
        (out,) = session.run(["prediction"], feeds)
        assert np.all(np.isfinite(out)) and np.all(out > 0)
        assert np.allclose(out, 1e7 if weight > 0 else 1e-6, rtol=1e-3)
