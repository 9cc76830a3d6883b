#!/usr/bin/env bash
# The CI-runner workflow end to end on this machine, with the real commands: export the 19 published classifiers of
# benchmarks/onnx_realworld.py (torch), `archcast measure` them, `archcast calibrate` on 12, predict the other 7;
# then the same calibration through a running service (`archcast calibrate --url`, weight-free uploads).
#   bash benchmarks/calibrate_e2e.sh [OUT]   (default benchmarks/results/onnx_calibration_e2e.md; ~3 min, ~800 MB in a temp dir)
set -euo pipefail
OUT=${1:-benchmarks/results/onnx_calibration_e2e.md}
ROOT=$(pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
HELD_OUT="resnet50 mobilenet_v2 efficientnet_b0 vit_small_16 swin_tiny densenet121 regnet_y_800mf"
PYTHONPATH=$ROOT "$PY" -c "
from benchmarks.onnx_realworld import canonical_networks
from training.netgen.export import build_network, export_onnx_bytes
import pathlib
for fam, name, spec in canonical_networks():
    pathlib.Path('$WORK', name + '.onnx').write_bytes(export_onnx_bytes(build_network(fam, spec), 224))
"
cd "$WORK"
t0=$(date +%s.%N)
"$PY" -m archcast.cli measure ./*.onnx --out all.jsonl > measure.txt 2> measure.log
t1=$(date +%s.%N)
pattern=$(echo "$HELD_OUT" | sed 's/ /|/g')
grep -v -E "\"($pattern).onnx\"" all.jsonl > calibrate.jsonl
"$PY" -m archcast.cli calibrate --device this-cpu --measurements calibrate.jsonl --out cal > calibrate.txt
t2=$(date +%s.%N)
for m in $HELD_OUT; do
  zero=$("$PY" -m archcast.cli predict "$m.onnx")
  cal=$(ARCHCAST_CALIBRATION_DIR=cal "$PY" -m archcast.cli predict "$m.onnx" --device this-cpu)
  echo "{\"network\": \"$m\", \"zero\": $zero, \"cal\": $cal}" | tr -d '\n' >> held_out.jsonl
  echo >> held_out.jsonl
done
PORT=$("$PY" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
URL=http://127.0.0.1:$PORT
PYTHONPATH=$ROOT ARCHCAST_PORT=$PORT ARCHCAST_PROVIDERS=cpu "$PY" -m service > service.log 2>&1 &
SERVICE=$!
trap 'kill $SERVICE 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 120); do curl -sf "$URL/readyz" > /dev/null && break; sleep 0.5; done
t3=$(date +%s.%N)
"$PY" -m archcast.cli calibrate --device this-cpu-http --measurements calibrate.jsonl --url "$URL" > calibrate_http.txt
t4=$(date +%s.%N)
for m in $HELD_OUT; do
  "$PY" -m archcast.cli predict "$m.onnx" --device this-cpu-http --url "$URL" | tr -d '\n' >> held_out_http.jsonl
  echo >> held_out_http.jsonl
done
cd "$ROOT"
"$PY" - "$WORK" "$OUT" "$t0" "$t1" "$t2" "$t3" "$t4" <<'PY'
import json, statistics, sys
from pathlib import Path
from benchmarks.machine import describe_machine
work, out, t0, t1, t2, t3, t4 = Path(sys.argv[1]), Path(sys.argv[2]), *map(float, sys.argv[3:])
measured = {Path(r["onnx"]).stem: r for r in map(json.loads, (work / "all.jsonl").read_text().splitlines())}
rows, zero_err, cal_err = [], [], []
for item in map(json.loads, (work / "held_out.jsonl").read_text().splitlines()):
    true = measured[item["network"]]["latency_ms"]
    zero, cal = item["zero"]["latency_ms"]["value"], item["cal"]["latency_ms"]
    zero_err.append(100 * abs(zero - true) / true)
    cal_err.append(100 * abs(cal["value"] - true) / true)
    rows.append(f"| {item['network']} | {true:.2f} | {zero:.2f} ({100 * (zero - true) / true:+.1f}) | "
                f"{cal['value']:.2f} ± {cal['std']:.2f} ({100 * (cal['value'] - true) / true:+.1f}) |")
summary = (work / "calibrate.txt").read_text().splitlines()[-1]
http_summary = (work / "calibrate_http.txt").read_text().splitlines()[-1]
local = {r["network"]: r["cal"]["latency_ms"]["value"] for r in map(json.loads, (work / "held_out.jsonl").read_text().splitlines())}
served = [json.loads(line)["latency_ms"]["value"] for line in (work / "held_out_http.jsonl").read_text().splitlines()]
differences = [abs(s - v) / v for s, v in zip(served, local.values(), strict=True)]
spread = statistics.median(r["spread_pct"] for r in measured.values())
text = "\n".join([
    "# archcast measure + calibrate + predict, end to end on this machine",
    "",
    f"Machine: {describe_machine()}; {next(iter(measured.values()))['environment']}. Command: `bash benchmarks/calibrate_e2e.sh`.",
    "",
    f"`archcast measure` of the 19 published classifiers (776 MB of ONNX): {t1 - t0:.0f} s, passes differ by a median "
    f"{spread:.1f} %. `archcast calibrate` on the 12 not held out: {t2 - t1:.1f} s end to end (parsing included). {summary}",
    "",
    "| held-out network | measured ms | cpu-ort-1t-v1 as shipped (error %) | calibrated ± std (error %) |",
    "|---|---|---|---|",
    *rows,
    "",
    f"MAPE on the 7 held out: shipped **{statistics.fmean(zero_err):.1f} %**, calibrated **{statistics.fmean(cal_err):.1f} %**.",
    "",
    f"Through a running service (`archcast calibrate --url`: weight-free copies uploaded to `POST /v1/calibrate/onnx`): "
    f"{t4 - t3:.1f} s; its predictions of the 7 held out (`archcast predict --url --device this-cpu-http`) differ from "
    f"the in-process calibration's by at most {max(differences):.2g} (relative). {http_summary}",
    "",
])
out.write_text(text)
print(text)
PY
