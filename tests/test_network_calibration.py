"""Few-shot calibration of a whole-network predictor: the ONNX map, the fit, `archcast measure` / `calibrate` / `check`,
and the service serving the result (the shipped cpu-ort-1t predictor as base, real onnxruntime sessions)."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fastapi.testclient import TestClient
from live_server import LiveServer
from onnx_fixtures import attention_block, conv_net, kv_cache_attention

from archcast.client import AsyncClient, Client
from model.calibration import (
    COSTS_FROM,
    NETWORK_SOURCES,
    SLOPE_FROM,
    Calibration,
    calibrated_network_onnx,
    choose_network_base,
    fit_network_calibration,
    network_design,
)
from model.card import ModelCard
from model.network_tokenizer import tokenize_networks, tokens_for_version
from model.onnx_graph import ParseOptions, parse_onnx
from service.app import create_app
from service.calibrate import persist
from service.calibrate_network import NetworkMeasurement, fit_network_device, network_measurements
from service.errors import ServiceError
from service.local import load_for_local, predict_onnx_local
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
BASE = "cpu-ort-1t-v1"
BASE_TOKENIZER = ModelCard.load(ROOT / "model" / "predictors" / f"{BASE}.card.json").tokenizer
RESOLUTIONS = (32, 48, 64, 80, 96, 128, 160, 192, 224, 256)  # 10: auto may fit a slope (SLOPE_FROM)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Only the shipped cpu-ort-1t network predictor (fast to load)."""
    directory = tmp_path_factory.mktemp("base")
    for suffix in (".onnx", ".card.json"):
        shutil.copy(ROOT / "model" / "predictors" / f"{BASE}{suffix}", directory)
    return directory


def base_ms(settings: Settings, data: bytes, resolution: int) -> float:
    return predict_onnx_local(data, resolution=resolution, predictor=BASE, settings=settings)["latency_ms"]["value"]


def new_device(ms: float) -> float:
    """A made-up CPU: a power law of the base device's latency."""
    return float(np.exp(0.5) * ms**1.1)


def conv_measurements(settings: Settings, resolutions: tuple[int, ...] = RESOLUTIONS) -> list[NetworkMeasurement]:
    data = conv_net().SerializeToString()
    return [NetworkMeasurement(data, new_device(base_ms(settings, data, r)), resolution=r) for r in resolutions]


def test_the_network_map_computes_value_and_std(base_dir: Path) -> None:
    base = onnx.load(str(base_dir / f"{BASE}.onnx"))
    graph = parse_onnx(conv_net().SerializeToString(), ParseOptions(resolution=64))
    batch = tokenize_networks([graph], version=BASE_TOKENIZER)
    feeds = {"tokens": tokens_for_version(batch.tokens, BASE_TOKENIZER), "mask": batch.mask, "features": batch.features}
    (before,) = ort.InferenceSession(base.SerializeToString()).run(["prediction"], feeds)
    totals = graph.totals()
    design = network_design(before[:, 0], [totals["macs"]], [totals["memory_bytes"]])
    fits = [
        Calibration((0,), NETWORK_SOURCES[:1], (1.1,), 0.5, "single", 0.0, 20, 0.1, 10.0),
        Calibration((0, 1, 2), NETWORK_SOURCES, (0.8, 0.15, -0.05), 0.3, "ridge", 1.0, 30, 0.1, 10.0),
        Calibration((1,), NETWORK_SOURCES[1:2], (0.9,), -9.0, "single", 0.0, 20, 0.1, 10.0),  # MACs alone
        Calibration((0,), NETWORK_SOURCES[:1], (1.0,), -0.4, "scale", 0.0, 5, 0.1, 10.0),
    ]
    for fit in fits:
        (after,) = ort.InferenceSession(calibrated_network_onnx(base, fit).SerializeToString()).run(["prediction"], feeds)
        value = fit.predict(design)[0]  # what the fit promised, from the parsed graph's own costs
        weight_ms = dict(zip(fit.columns, fit.weights, strict=True)).get(0, 0.0)
        relative = np.sqrt((weight_ms * before[0, 1] / before[0, 0]) ** 2 + fit.std_log**2)
        assert after.shape == (1, 2)
        assert after[0, 0] == pytest.approx(value, rel=1e-4)
        assert after[0, 1] == pytest.approx(value * relative, rel=1e-4)
    assert fits[0].predict(design)[0] == pytest.approx(np.exp(0.5) * before[0, 0] ** 1.1, rel=1e-6)
    with pytest.raises(ValueError, match="maps columns"):
        calibrated_network_onnx(base, Calibration((3,), ("x",), (1.0,), 0.0, "single", 0.0, 20, 0.1, 10.0))


def test_auto_offers_the_costs_from_twenty_models() -> None:
    rng = np.random.default_rng(0)
    base_ms, macs, memory = rng.uniform(1, 100, 40), rng.uniform(1e6, 1e10, 40), rng.uniform(1e6, 1e9, 40)
    design = network_design(base_ms, macs, memory)
    measured = np.exp(0.2) * base_ms**0.7 * (1 + memory) ** 0.3 * rng.lognormal(0, 0.01, 40)  # memory-bound new CPU
    few = fit_network_calibration(design[:COSTS_FROM - 1], measured[:COSTS_FROM - 1])
    many = fit_network_calibration(design[:COSTS_FROM], measured[:COSTS_FROM])
    assert few.columns == (0,) and few.method == "single"
    assert many.method == "ridge" and many.columns == (0, 1, 2) and many.loo_rmse_log < few.loo_rmse_log
    assert fit_network_calibration(design, measured, "single").columns == (0,)


def test_scale_is_one_factor_with_exact_leave_one_out_and_auto_takes_it_below_ten_models() -> None:
    rng = np.random.default_rng(1)
    base_ms = rng.uniform(5, 8, 12)  # a narrow range: models of one family
    design = network_design(base_ms, np.full(12, 1e9), np.full(12, 1e8))
    measured = 1.5 * base_ms * rng.lognormal(0, 0.05, 12)
    few = slice(0, SLOPE_FROM - 1)
    scale = fit_network_calibration(design[few], measured[few], "scale")
    offsets = np.log(measured[few]) - np.log(base_ms[few])
    assert scale.method == "scale" and scale.weights == (1.0,) and scale.bias == pytest.approx(offsets.mean())
    brute = [offsets[i] - np.delete(offsets, i).mean() for i in range(len(offsets))]  # refit without each model
    assert scale.loo_rmse_log == pytest.approx(float(np.sqrt(np.mean(np.square(brute)))), rel=1e-9)
    assert np.allclose(scale.predict(design[few]), base_ms[few] * np.exp(offsets.mean()))
    assert scale.loo_rmse_log < fit_network_calibration(design[few], measured[few], "single").loo_rmse_log
    power_law = np.exp(0.5) * base_ms**1.6  # a real slope, no noise
    assert fit_network_calibration(design[few], power_law[few]).method == "scale"  # below SLOPE_FROM: one factor
    assert fit_network_calibration(design[:SLOPE_FROM], power_law[:SLOPE_FROM]).method == "single"  # then by LOO
    assert fit_network_calibration(design[:SLOPE_FROM], measured[:SLOPE_FROM]).method == "scale"


def test_choose_network_base_keeps_the_base_the_measurements_follow() -> None:
    rng = np.random.default_rng(2)
    a_ms = rng.uniform(1, 100, 12)
    b_ms = a_ms * rng.lognormal(0, 0.3, 12)  # two base devices that disagree model by model
    macs, memory = rng.uniform(1e6, 1e10, 12), rng.uniform(1e6, 1e9, 12)
    designs = {"a": network_design(a_ms, macs, memory), "b": network_design(b_ms, macs, memory)}
    measured = 2.0 * b_ms * rng.lognormal(0, 0.02, 12)  # a new device of b's kind, twice as slow
    name, fit, scores = choose_network_base(designs, measured, "single")
    assert name == "b" and set(scores) == {"a", "b"} and scores["b"] < scores["a"] / 5
    assert scores["b"] == pytest.approx(fit_network_calibration(designs["b"], measured, "scale").loo_rmse_log)
    assert fit.method == "single" and fit.weights[0] == pytest.approx(1.0, abs=0.05)  # the fit asked for, on base b
    assert choose_network_base({"first": designs["b"], "second": designs["b"]}, measured)[0] == "first"  # tie
    with pytest.raises(ValueError, match="no base"):
        choose_network_base({}, measured)


def test_without_a_base_the_calibration_maps_from_the_shipped_predictor_that_fits_best(tmp_path: Path) -> None:
    directory = tmp_path / "bases"
    directory.mkdir()
    for name in (BASE, "cpu-ort-1t-epyc-v1"):
        for suffix in (".onnx", ".card.json"):
            shutil.copy(ROOT / "model" / "predictors" / f"{name}{suffix}", directory)
    settings = Settings(predictor_dir=directory, providers="cpu")
    registry = load_for_local(settings)
    data = conv_net().SerializeToString()
    epyc_ms = [predict_onnx_local(data, resolution=r, predictor="cpu-ort-1t-epyc-v1", settings=settings) for r in RESOLUTIONS]
    measurements = [  # a new AMD CPU: 1.7x the shipped EPYC on every model
        NetworkMeasurement(data, 1.7 * body["latency_ms"]["value"], resolution=r)
        for body, r in zip(epyc_ms, RESOLUTIONS, strict=True)
    ]
    chosen = fit_network_device("zen4", measurements, registry, settings)
    tried = chosen.card.calibration["bases_scale_loo_rmse_log"]
    assert chosen.card.calibration["base"] == "cpu-ort-1t-epyc-v1" and chosen.card.device["calibrated_from"] == "cpu-ort-1t-epyc"
    assert set(tried) == {BASE, "cpu-ort-1t-epyc-v1"} and tried["cpu-ort-1t-epyc-v1"] < tried[BASE]
    assert chosen.calibration.method == "scale" and chosen.calibration.bias == pytest.approx(np.log(1.7), abs=1e-4)
    assert chosen.summary()["bases_scale_loo_rmse_log"] == tried
    named = fit_network_device("zen4", measurements, registry, settings, base_name=BASE)
    assert named.card.calibration["base"] == BASE and set(named.card.calibration["bases_scale_loo_rmse_log"]) == {BASE}
    with pytest.raises(ServiceError, match="own device of predictor cpu-ort-1t-epyc-v1"):
        fit_network_device("cpu-ort-1t-epyc", measurements, registry, settings, base_name=BASE)


def test_fit_recovers_the_new_device_and_predicts_unseen_models(base_dir: Path) -> None:
    settings = Settings(predictor_dir=base_dir, providers="cpu")
    calibrated = fit_network_device("my-cpu", conv_measurements(settings), load_for_local(settings), settings)
    card = calibrated.card
    assert card.name == "calibrated-my-cpu" and card.kind == "network" and card.tokenizer == BASE_TOKENIZER
    assert card.device["device"] == "my-cpu" and card.device["calibrated_from"] == "cpu-ort-1t"
    assert calibrated.calibration.weights[0] == pytest.approx(1.1, rel=1e-3)
    assert calibrated.calibration.bias == pytest.approx(0.5, abs=1e-2)
    out = base_dir.parent / "calibrated"
    persist(calibrated, out)
    served = Settings(predictor_dir=base_dir, providers="cpu", calibration_dir=out)
    unseen = attention_block().SerializeToString()  # a model family the calibration never saw
    body = predict_onnx_local(unseen, device="my-cpu", settings=served)
    assert body["predictor"] == "calibrated-my-cpu" and body["device"] == "my-cpu"
    assert body["latency_ms"]["value"] == pytest.approx(new_device(base_ms(settings, unseen, 224)), rel=1e-3)
    assert body["latency_ms"]["std"] >= body["latency_ms"]["value"] * calibrated.calibration.std_log * 0.999
    default = predict_onnx_local(unseen, settings=served)  # a calibration never becomes the default predictor
    assert default["predictor"] == BASE


def test_bad_measurements_get_clear_errors(base_dir: Path, tmp_path: Path) -> None:
    settings = Settings(predictor_dir=base_dir, providers="cpu")
    registry = load_for_local(settings)
    good = conv_measurements(settings)
    cases = [
        (good[:4], 422, "at least 5"),
        ([good[0]] * 6, 422, "6 measurement"),  # counted below: 1 distinct model
        (good, 422, "own device of predictor cpu-ort-1t-v1"),
        ([*good, NetworkMeasurement(b"not onnx", 1.0, label="bad.jsonl:3")], 422, "bad.jsonl:3"),
        ([*good, NetworkMeasurement(tmp_path / "gone.onnx", 1.0, label="m.jsonl:9")], 422, "cannot read the model"),
    ]
    for measurements, status, fragment in cases:
        device = "cpu-ort-1t" if fragment.startswith("own device") else "dev"
        with pytest.raises(ServiceError) as raised:
            fit_network_device(device, measurements, registry, settings)
        assert raised.value.status == status
        message = raised.value.message
        assert (fragment in message) or (fragment == "6 measurement" and "1 distinct model" in message), message
    small = Settings(predictor_dir=base_dir, providers="cpu", max_onnx_bytes=100)
    with pytest.raises(ServiceError) as raised:
        fit_network_device("dev", good, registry, small)
    assert raised.value.status == 413 and "ARCHCAST_MAX_ONNX_BYTES" in raised.value.message


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archcast.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_measure_calibrate_check_from_the_command_line(base_dir: Path, tmp_path: Path) -> None:
    """The CI runner's workflow: measure a few models here, calibrate, gate a model on the calibrated device."""
    onnx.save(conv_net(), tmp_path / "conv.onnx")
    onnx.save(attention_block(), tmp_path / "attention.onnx")
    env = {"ARCHCAST_PREDICTOR_DIR": str(base_dir), "ARCHCAST_PROVIDERS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    measured = tmp_path / "runner.jsonl"
    for resolution in (32, 64, 96, 128, 160):
        done = run_cli("measure", "conv.onnx", "--out", str(measured), "--resolution", str(resolution), "--min-time", "0.02",
                       env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    again = run_cli("measure", "conv.onnx", "--out", str(measured), "--resolution", "32", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "already in" in again.stderr  # resumes: nothing measured twice
    records = [json.loads(line) for line in measured.read_text().splitlines()]
    assert [r["resolution"] for r in records] == [32, 64, 96, 128, 160]
    assert all(r["onnx"] == "conv.onnx" and r["latency_ms"] > 0 and len(r["passes_min_ms"]) == 2 for r in records)
    assert records[-1]["latency_ms"] > records[0]["latency_ms"]  # 25x the pixels take longer
    assert records[0]["environment"]["threads"] == 1 and records[0]["environment"]["onnxruntime"] == ort.__version__

    out = tmp_path / "calibrated"
    done = run_cli("calibrate", "--device", "ci-runner", "--measurements", str(measured), "--out", str(out), env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
    assert summary["predictor"] == "calibrated-ci-runner" and summary["n_samples"] == 5 and summary["base"] == BASE
    assert summary["method"] == "scale" and f"5 measured ONNX models, base {BASE}, map scale," in done.stdout  # 5 < SLOPE_FROM
    card = json.loads((out / "calibrated-ci-runner.card.json").read_text())
    assert card["device"]["cpu_id"] == records[0]["environment"]["cpu_id"]  # where the measurements were taken

    served = env | {"ARCHCAST_CALIBRATION_DIR": str(out)}
    model = str(tmp_path / "conv.onnx")
    predicted = run_cli("predict", model, "--device", "ci-runner", "--resolution", "64", env=served, cwd=ROOT)
    value = json.loads(predicted.stdout)["latency_ms"]["value"]
    passed = run_cli("check", model, "--device", "ci-runner", "--resolution", "64", "--max-latency-ms", str(value * 1.01),
                     env=served, cwd=ROOT)
    failed = run_cli("check", model, "--device", "ci-runner", "--resolution", "64", "--max-latency-ms", str(value * 0.99),
                     env=served, cwd=ROOT)
    assert passed.returncode == 0 and "PASS" in passed.stdout and "on ci-runner" in passed.stdout
    assert failed.returncode == 1 and "FAIL" in failed.stdout


def test_measure_records_the_past_length_and_calibration_reads_it(tmp_path: Path) -> None:
    """A decoder step measured at two cache lengths: two records, each parsed back at its own length (a file written
    before the field reads as the default)."""
    from archcast.measure import measure_models
    from training.netgen.measure import MeasureSettings

    onnx.save(kv_cache_attention(), tmp_path / "step.onnx")
    out = tmp_path / "measured.jsonl"
    quick = MeasureSettings(warmup=1, min_runs=2, max_runs=3, min_time_s=0.0)
    for past in (16, 512):
        measure_models([tmp_path / "step.onnx"], out, ParseOptions(sequence_length=1, past_length=past), quick, log=None)
    assert measure_models([tmp_path / "step.onnx"], out, ParseOptions(sequence_length=1, past_length=16), quick) == []
    lines = out.read_text().splitlines()
    read = network_measurements("\n".join(lines), lambda name: tmp_path / name, "measured.jsonl")
    assert [m.past_length for m in read] == [16, 512] and all(m.sequence_length == 1 for m in read)
    old = json.loads(lines[0])
    del old["past_length"]
    (legacy,) = network_measurements(json.dumps(old), lambda name: tmp_path / name, "old.jsonl")
    assert legacy.past_length == ParseOptions.past_length


def test_calibrate_command_refuses_bad_files(base_dir: Path, tmp_path: Path) -> None:
    env = {"ARCHCAST_PREDICTOR_DIR": str(base_dir), "ARCHCAST_PROVIDERS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    cases = {
        '{"onnx": "a.onnx"}\n': "expected an object with 'onnx'",
        '{"onnx": "a.onnx", "latency_ms": 2, "batch": 0}\n': "batch must be a positive integer",
        '{"onnx": "a.onnx", "latency_ms": -1}\n': "latency_ms must be a finite number > 0",
        '{"onnx": "missing.onnx", "latency_ms": 1}\n' * 5: "cannot read the model",
    }
    for text, message in cases.items():
        path = tmp_path / "m.jsonl"
        path.write_text(text)
        done = run_cli("calibrate", "--device", "dev", "--measurements", str(path), env=env, cwd=tmp_path)
        assert done.returncode == 2 and message in done.stderr, done.stderr
    done = run_cli("calibrate", "--device", "Bad Name", "--measurements", str(path), env=env, cwd=tmp_path)
    assert done.returncode == 2 and "invalid_device" in done.stderr
    done = run_cli("measure", "nothing.onnx", "--out", str(tmp_path / "o.jsonl"), env=env, cwd=tmp_path)
    assert done.returncode == 2 and "not a file" in done.stderr


def test_service_loads_a_calibration_written_after_it_started(base_dir: Path, tmp_path: Path) -> None:
    """`archcast calibrate` on the CI runner, the running service picks the file up on the first request naming it."""
    settings = Settings(predictor_dir=base_dir, providers="cpu", calibration_dir=tmp_path / "cal")
    data = conv_net().SerializeToString()
    with TestClient(create_app(settings)) as client:
        missing = client.post("/v1/predict/onnx?device=late-cpu&resolution=64", content=data)
        assert missing.status_code == 404 and "late-cpu" in missing.json()["error"]["message"]
        local = Settings(predictor_dir=base_dir, providers="cpu")
        persist(fit_network_device("late-cpu", conv_measurements(local), load_for_local(local), local), tmp_path / "cal")
        found = client.post("/v1/predict/onnx?device=late-cpu&resolution=64", content=data)
        assert found.status_code == 200, found.text
        assert found.json()["predictor"] == "calibrated-late-cpu"
        assert found.json()["latency_ms"]["value"] == pytest.approx(new_device(base_ms(local, data, 64)), rel=1e-3)
        listed = client.get("/v1/predictors").json()
        assert "calibrated-late-cpu" in json.dumps(listed)


def measured_lines(settings: Settings, name: str = "conv.onnx") -> str:
    """`archcast measure`-style lines for conv_net at every resolution, timed on the made-up device."""
    data = conv_net().SerializeToString()
    lines = [{"onnx": name, "latency_ms": new_device(base_ms(settings, data, r)), "resolution": r} for r in RESOLUTIONS]
    return "".join(json.dumps(line) + "\n" for line in lines)


def test_service_calibrates_uploaded_onnx_models(base_dir: Path, tmp_path: Path) -> None:
    """POST /v1/calibrate/onnx: the measured models and their lines in one multipart form; served by device at once."""
    local = Settings(predictor_dir=base_dir, providers="cpu")
    settings = Settings(predictor_dir=base_dir, providers="cpu", calibration_dir=tmp_path / "cal")
    data = conv_net().SerializeToString()
    form = {"device": "up-cpu", "measurements": "# measured on the runner\n" + measured_lines(local, "runs/conv.onnx")}
    with TestClient(create_app(settings)) as client:
        answer = client.post("/v1/calibrate/onnx", data=form, files=[("models", ("conv.onnx", data))])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictor"] == "calibrated-up-cpu" and body["n_samples"] == len(RESOLUTIONS) and body["persisted"]
        assert body["base"] == BASE and body["method"] == "single" and body["loo_mape"] < 0.5
        predicted = client.post("/v1/predict/onnx?device=up-cpu&resolution=64", content=data)
        assert predicted.status_code == 200, predicted.text
        assert predicted.json()["latency_ms"]["value"] == pytest.approx(new_device(base_ms(local, data, 64)), rel=1e-3)
        # where the time goes on the new device: the base's shares, scaled to the calibrated value
        parts = client.post("/v1/predict/onnx?device=up-cpu&resolution=64&breakdown=true", content=data).json()
        base = client.post(f"/v1/predict/onnx?predictor={BASE}&resolution=64&breakdown=true", content=data).json()
        value = predicted.json()["latency_ms"]["value"]
        assert sum(r["ms"] for r in parts["breakdown"]["by_op_type"]) == pytest.approx(value, rel=1e-5)
        shares = {r["op_type"]: r["share"] for r in parts["breakdown"]["by_op_type"]}
        assert shares == pytest.approx({r["op_type"]: r["share"] for r in base["breakdown"]["by_op_type"]}, rel=1e-5)
    assert (tmp_path / "cal" / "calibrated-up-cpu.card.json").is_file()  # every worker and a restart serve it


def test_onnx_calibration_upload_errors_name_the_problem(base_dir: Path) -> None:
    local = Settings(predictor_dir=base_dir, providers="cpu")
    lines = measured_lines(local)
    data = conv_net().SerializeToString()
    model = [("models", ("conv.onnx", data))]
    cases = [  # (form fields, files, status, code, fragment)
        ({"measurements": lines}, model, 422, "invalid_form", "'device' is missing"),
        ({"device": "Big CPU", "measurements": lines}, model, 422, "invalid_device", "lower case"),
        ({"device": "d", "measurements": lines, "method": "best"}, model, 422, "invalid_form", "auto, scale, single, ridge"),
        ({"device": "d"}, model, 422, "invalid_form", "'measurements'"),
        ({"device": "d", "measurements": lines}, [], 422, "invalid_form", "no ONNX models uploaded"),
        ({"device": "d", "measurements": lines.replace("conv.onnx", "resnet.onnx", 1)}, model, 422, "invalid_measurements",
         "measurements:1: model 'resnet.onnx' was not uploaded as a 'models' file (uploaded: conv.onnx)"),
        ({"device": "d", "measurements": lines}, [*model, ("models", ("extra.onnx", data))], 422, "invalid_measurements",
         "extra.onnx named by no measurement line"),
        ({"device": "d", "measurements": lines + '{"onnx": "conv.onnx", "latency_ms": 0}\n'}, model, 422,
         "invalid_measurements", "measurements:11: latency_ms must be a finite number > 0"),
        ({"device": "d", "measurements": lines + "{oops\n"}, model, 422, "invalid_measurements",
         "measurements:11: not valid JSON"),
        ({"device": "d", "measurements": lines}, [("models", ("conv.onnx", b"not onnx"))], 422, "invalid_onnx", "measurements:1"),
        ({"device": "d", "measurements": lines}, [*model, ("models", ("conv.onnx", data))], 422, "invalid_form",
         "two uploaded models are named 'conv.onnx'"),
    ]
    with TestClient(create_app(local)) as client:
        for fields, files, status, code, fragment in cases:
            answer = client.post("/v1/calibrate/onnx", data=fields, files=files or [("other", ("x", b""))])
            assert answer.status_code == status, (fragment, answer.text)
            error = answer.json()["error"]
            assert error["code"] == code and fragment in error["message"], (fragment, error)
        as_json = client.post("/v1/calibrate/onnx", json={"device": "d"})
        assert as_json.status_code == 415 and "multipart/form-data" in as_json.json()["error"]["message"]
    small = Settings(predictor_dir=base_dir, providers="cpu", max_calibration_upload_bytes=len(data))
    with TestClient(create_app(small)) as client:
        answer = client.post("/v1/calibrate/onnx", data={"device": "d", "measurements": lines}, files=model)
        assert answer.status_code == 413 and "ARCHCAST_MAX_CALIBRATION_UPLOAD_BYTES" in answer.json()["error"]["message"]
    with TestClient(create_app(Settings(predictor_dir=base_dir, providers="cpu", max_calibration_samples=5))) as client:
        files = [("models", (f"{n}.onnx", b"x")) for n in range(7)]  # more files than measurements may be
        answer = client.post("/v1/calibrate/onnx", data={"device": "d", "measurements": lines}, files=files)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_multipart"
        assert "Too many files" in answer.json()["error"]["message"]
        answer = client.post("/v1/calibrate/onnx", data={"device": "d", "measurements": lines}, files=model)  # 10 lines > 5
        assert answer.status_code == 413 and "ARCHCAST_MAX_CALIBRATION_SAMPLES" in answer.json()["error"]["message"]


def test_calibrate_command_uploads_to_a_running_service(base_dir: Path, tmp_path: Path) -> None:
    """`archcast calibrate --url` on `archcast measure`'s file: same-named models in two folders go up as two models."""
    local = Settings(predictor_dir=base_dir, providers="cpu")
    for folder, model in (("a", conv_net()), ("b", attention_block())):
        (tmp_path / folder).mkdir()
        onnx.save(model, tmp_path / folder / "model.onnx")
    attention = attention_block().SerializeToString()
    lines = measured_lines(local, "a/model.onnx") + "".join(
        json.dumps({"onnx": "b/model.onnx", "latency_ms": new_device(base_ms(local, attention, 224)), "sequence_length": n})
        + "\n"
        for n in (64, 128)
    )
    (tmp_path / "runner.jsonl").write_text(lines)
    env = {"ARCHCAST_PROVIDERS": "cpu", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    with LiveServer(create_app(Settings(predictor_dir=base_dir, providers="cpu"))) as live:
        done = run_cli("calibrate", "--device", "far-cpu", "--measurements", "runner.jsonl", "--url", live.url,
                       env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert "loaded by the service at" in done.stdout
        summary = json.loads(done.stdout[: done.stdout.rindex("}") + 1])
        assert summary["predictor"] == "calibrated-far-cpu" and summary["n_samples"] == len(RESOLUTIONS) + 2
        assert not summary["persisted"]  # no ARCHCAST_CALIBRATION_DIR: held by the serving process
        predicted = run_cli("predict", str(tmp_path / "a" / "model.onnx"), "--device", "far-cpu", "--resolution", "64",
                            "--url", live.url, env=env, cwd=tmp_path)
        assert predicted.returncode == 0, predicted.stderr
        value = json.loads(predicted.stdout)["latency_ms"]["value"]
        assert value == pytest.approx(new_device(base_ms(local, conv_net().SerializeToString(), 64)), rel=0.05)
        (tmp_path / "b" / "model.onnx").unlink()
        gone = run_cli("calibrate", "--device", "far-cpu", "--measurements", "runner.jsonl", "--url", live.url,
                       env=env, cwd=tmp_path)
        assert gone.returncode == 2 and "model.onnx" in gone.stderr


def test_async_client_calibrates_and_predicts_whole_networks(base_dir: Path, tmp_path: Path) -> None:
    """AsyncClient: calibrate_onnx uploads `archcast measure`'s file; predict_onnx of a weight-free copy answers as the
    sync Client does with the whole model."""
    local = Settings(predictor_dir=base_dir, providers="cpu")
    (tmp_path / "conv.onnx").write_bytes(conv_net().SerializeToString())
    (tmp_path / "runner.jsonl").write_text(measured_lines(local))
    data = attention_block().SerializeToString()  # 16 kB weights: the weight-free copy is a fifth of it

    async def calibrate_and_predict(url: str) -> tuple[dict, dict]:
        async with AsyncClient(url) as client:
            fit = await client.calibrate_onnx("async-cpu", tmp_path / "runner.jsonl")
            return fit, await client.predict_onnx(data, device="async-cpu", weight_free=True)

    with LiveServer(create_app(local)) as live:
        fit, predicted = asyncio.run(calibrate_and_predict(live.url))
        with Client(live.url) as client:
            same = client.predict_onnx(data, device="async-cpu")
    assert fit["predictor"] == "calibrated-async-cpu" and fit["n_samples"] == len(RESOLUTIONS)
    assert predicted["predictor"] == "calibrated-async-cpu" and predicted["latency_ms"] == same["latency_ms"]
    assert predicted["cost"] == same["cost"] and not same["cached"]  # another upload, the same answer
    assert predicted["latency_ms"]["value"] == pytest.approx(new_device(base_ms(local, data, 224)), rel=1e-3)


def test_calibration_benchmark_scores_networks_generated_after_training(tmp_path: Path) -> None:
    """``--pool unseen``: the H200 predictor was trained on ids below 476; the second machine's ids from 476 on are scored."""
    from benchmarks import onnx_calibration

    target = Path(__file__).parents[1] / "training" / "datasets" / "cuda-ort-h200-b"
    out = tmp_path / "calibration"
    onnx_calibration.main(
        ["--target", str(target), "--predictor", "cuda-ort-h200-v1", "--pool", "unseen", "--sizes", "5", "--draws", "2",
         "--out", str(out)]
    )
    report = json.loads(out.with_suffix(".json").read_text())
    ids = [json.loads(line)["id"] for line in (target / "measurements.jsonl").read_text().splitlines()]
    assert report["pool"] == "unseen" and report["networks"] == sum(i >= 476 for i in ids) == 140
    assert "generated after its training" in out.with_suffix(".md").read_text()
