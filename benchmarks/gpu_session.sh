#!/usr/bin/env bash
# One lent GPU machine, one prepared run: the service's CUDA check, then H200 latency measurements until the deadline.
#
# Run from the repository root on the GPU machine (numpy, onnx, httpx, prometheus-client and the CUDA 13 / cuDNN 9
# pip libraries already there; no torch needed), with these prepared here in the ignored folder .whl/:
#   - the service's pure-Python wheels for the machine's Python (pip download --python-version 3.12 ..., see
#     docs/reproduce.md),
#   - ort_sm90.tar.xz: onnxruntime-gpu's package made small enough to travel by benchmarks/trim_ort_gpu.py,
#   - pack.tar.xz: python -m training.netgen.pack export --data training/datasets/cpu-ort-1t-epyc --count 2100,
#   - done.jsonl (optional): measurements already made; their ids are skipped (a fresh machine resumes an old run).
# Environment: OUT (where results go), STEPS (default "check measure"; "warmup" runs benchmarks.gpu_warmup on networks
# 0-27), DEADLINE_S (seconds from start when measuring must have stopped, default 520), CHECK_TIMEOUT_S (the CUDA
# check's limit, default 240).
set -u
start=$(date +%s)
out=${OUT:-/tmp/gpu_session}
deadline=${DEADLINE_S:-520}
elapsed() { echo $(( $(date +%s) - start )); }
log() { echo "[$(elapsed) s] $*"; }
mkdir -p "$out/h200" "$out/check" "$out/warmup"

python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
tar xJf .whl/ort_sm90.tar.xz -C /tmp/site || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 CUDA_MODULE_LOADING=LAZY
site=$(python3 -c 'import numpy, pathlib; print(pathlib.Path(numpy.__file__).parents[1])')
libs=$(find "$site/nvidia" -name 'lib*.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"
log "installed; $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

# A CUDA session on one shipped predictor, or the reason there is none.
python3 - <<'EOF' || ldd /tmp/site/onnxruntime/capi/libonnxruntime_providers_cuda.so | grep 'not found'
import onnxruntime as ort
s = ort.InferenceSession("model/predictors/nb201-v1.onnx", providers=["CUDAExecutionProvider"])
print("probe:", ort.__version__, s.get_providers())
assert s.get_providers()[0] == "CUDAExecutionProvider"
EOF

steps=" ${STEPS:-check measure} "
if [[ $steps == *" check "* ]]; then
    log "CUDA check of the service"
    timeout -k 5 "${CHECK_TIMEOUT_S:-240}" python3 -m benchmarks.gpu_check --pack .whl/pack.tar.xz --out "$out/check" \
        > "$out/check/log.txt" 2>&1
    log "CUDA check rc $?"; tail -n 40 "$out/check/log.txt"
fi

if [[ $steps == *" warmup "* ]]; then
    budget=$(( deadline - $(elapsed) ))
    log "short against sustained timing with a ${budget} s budget"
    python3 -m benchmarks.gpu_warmup --pack .whl/pack.tar.xz --ids 0-27 --rounds 2 --sustain-s 0.8 \
        --budget-s "$budget" --out "$out/warmup"
fi

if [[ $steps == *" measure "* ]]; then
    [ -f .whl/done.jsonl ] && cp .whl/done.jsonl "$out/h200/measurements.jsonl"
    budget=$(( deadline - $(elapsed) ))
    log "measuring with a ${budget} s budget"
    python3 -m training.netgen.pack measure --pack .whl/pack.tar.xz --out "$out/h200" --device cuda-ort-h200 \
        --provider cuda --min-time-s 0.1 --chunk 28 --budget-s "$budget" 2>&1 | tr '\r' '\n' | grep -v '^$' | tail -n 5
    log "done: $(wc -l < "$out/h200/measurements.jsonl") measurement lines"
fi
