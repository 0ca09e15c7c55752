#!/usr/bin/env bash
# Full retrain on the lent GPU machine (no network; its own python3 has torch, onnx, onnxruntime,
# tokenizers, safetensors). Run from the repository root there, after the parts made by
#   training/gpu_stage.py stage DIR --parts 3
# were copied (one per `run` call, 64 MiB limit) into STAGE:
#   training/gpu_repro.sh STAGE [SECONDS]
# In one command, in parallel on the one GPU:
#   - `make models DEVICE=cuda JOBS=5 PROTOCOL=dev`: the five shipped configurations, dev held out,
#     best-on-dev checkpoint (into $WORK/dev, never over models/);
#   - sweep.py --plan dev: the deciding layer comparisons on dev (snips L4, banking77 L6, CAIS L3/L4,
#     NLU++ L4);
#   - support-en with PROTOCOL=v1 (train folds 0-15, last epoch): must give the shipped v1 metrics.
# Everything small it produced (logs, meta.json, model.json, RESULTS.md) goes to $OUT/gpu-repro.tgz.
set -u
STAGE=$1; LIMIT=${2:-500}
WORK=/tmp/kiln-gpu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
python3 "$ROOT/training/gpu_stage.py" expand "$STAGE" "$WORK/in" || exit 1
export KILN_BASE_MODEL=$WORK/in/base KILN_DATA=$WORK/in/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
cd "$ROOT"
if command -v make >/dev/null; then
  MAKE_MODELS=(make models DEVICE=cuda JOBS=5 PROTOCOL=dev TRAIN_PY=python3 MODELS_OUT=$WORK/dev)
else  # the same command line make would run
  MAKE_MODELS=(bash -c "cd training && nice -n 15 python3 build_models.py --device cuda --jobs 5 --protocol dev --out $WORK/dev")
fi
nvidia-smi -L; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name())'
t0=$(date +%s)
timeout "$LIMIT" "${MAKE_MODELS[@]}" > "$WORK/make-models.log" 2>&1 & p1=$!
timeout "$LIMIT" python3 training/sweep.py --plan dev --device cuda --jobs 5 --out "$WORK/sweep-dev" > "$WORK/sweep-dev.log" 2>&1 & p2=$!
timeout "$LIMIT" python3 training/build_models.py --device cuda --only support-en --protocol v1 --out "$WORK/v1" > "$WORK/v1.log" 2>&1 & p3=$!
wait $p1; r1=$?; wait $p2; r2=$?; wait $p3; r3=$?
echo "make models rc=$r1 sweep rc=$r2 v1 rc=$r3 after $(( $(date +%s) - t0 )) s"
tail -n 20 "$WORK/make-models.log"; tail -n 8 "$WORK/sweep-dev.log" "$WORK/v1.log"
cd "$WORK" && find . \( -name '*.log' -o -name 'meta.json' -o -name 'model.json' -o -name 'RESULTS.md' \
  -o -name summary.json -o -name repository.json \) -not -path './in/*' -print0 \
  | xargs -0 tar czf "${OUT:-/tmp}/gpu-repro.tgz"
ls -la "${OUT:-/tmp}/gpu-repro.tgz"
