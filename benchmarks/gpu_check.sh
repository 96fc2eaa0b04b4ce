#!/usr/bin/env bash
# The device check of the CUDA path, in one call on a GPU machine (`make gpu-check`): the tests
# marked cuda, the paper preset's training step, and a short real-data chain through `iugc stage`
# (benchmarks/gpu_check.py). It writes gpu_check.json, gpu_check.md, cuda_tests.xml and
# gpu_check.log into OUT (the first argument, else $OUT, else reports/gpu_check).
#
# Before, on a CPU machine with network, in the checkout (both folders are git-ignored):
#   make gpu-check-prepare       # .whl/: the wheels the GPU machine lacks (benchmarks/gpu_check_wheels.txt)
#                                # .gpucheck/: 48 real frames, params.yaml and the data stages, done
# Then on the GPU machine (Python 3.12 with torch, no network), the checkout with both folders:
#   bash benchmarks/gpu_check.sh "$OUT"
# Further arguments go to `gpu_check.py run` (the CPU rehearsal: OUT --tiny --folder FOLDER).
# It ends within 8 minutes: the step benchmark starts no further row after --budget seconds, and
# the whole run is stopped at 440 s (what it measured by then is already in OUT).
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${1:-${OUT:-reports/gpu_check}}
shift || true
mkdir -p "$out"
if [ -d .whl ]; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 2
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi -L 2>&1 | tee "$out/gpu_check.log"
timeout 440 "$python" benchmarks/gpu_check.py run --out "$out" --budget 300 "$@" 2>&1 | tee -a "$out/gpu_check.log"
