#!/usr/bin/env bash
# The CI-runner workflow end to end on this machine, with the real commands: export the 19 published classifiers of
# benchmarks/onnx_realworld.py (torch), `archcast measure` them, `archcast calibrate` on 12, predict the other 7.
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
cd "$ROOT"
"$PY" - "$WORK" "$OUT" "$t0" "$t1" "$t2" <<'PY'
import json, statistics, sys
from pathlib import Path
from benchmarks.machine import describe_machine
work, out, t0, t1, t2 = Path(sys.argv[1]), Path(sys.argv[2]), *map(float, sys.argv[3:])
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
])
out.write_text(text)
print(text)
PY
