#!/usr/bin/env bash
# Every GPU measurement of issues 10 and 11, in one run of under 10 minutes on one H100/H200:
#
#   bash experiments/bench/gpu.sh              # on the GPU machine, from the repository root
#   SMALL=1 bash experiments/bench/gpu.sh      # tiny sizes, to check the script on a CPU
#
# On the lent machine (no network; its image has jax with CUDA, flax, optax, orbax, chex, but not
# grain, tfds, ml_collections, dm-pix or tensorboardX), carry cp312 wheels of those and install them
# first, then run this with the device tool's timeout above BUDGET:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 \
#     --platform manylinux2014_x86_64 --platform any -d .gpu_wheels tensorflow-datasets grain ml-collections \
#     dm-pix tensorboardX array-record importlib_resources dm-tree simple-parsing tensorflow-metadata \
#     immutabledict termcolor toml docstring-parser portpicker googleapis-common-protos   # and promise's sdist
#   (on the device) python3 -m pip install --no-index --no-deps .gpu_wheels/* && BUDGET=480 bash experiments/bench/gpu.sh
# The image's python3 is a virtual environment: PYTHON defaults to python3 (a `python` symlink to it
# would lose its packages).
#
# Every step is bounded by what is left of BUDGET seconds (default 480) and killed with its children;
# after each step everything written so far is packed into $OUT/gpu-results-<device>.tgz (renamed
# into place, so a cut-off run still leaves a readable archive).
#
# Writes into experiments/bench/results/ (and experiments/results/ for the two-model runs), every file
# named after the device, and the log of the whole run to experiments/bench/results/gpu-<device>.log.
#   1. the whole run against its step (train.py --end_to_end): ResNet-18 (CIFAR stem, width 64,
#      2048-2048-2048 projector), 2 views of 32 px of `shapes`, float32 and bfloat16 at batch 256, 512
#      and 1024 (goal: >= 30,000 images/s end to end, ratio >= 0.90);
#   2. the VISReg recipe with 2 global + 6 local views on a ViT-S at 32 px, end to end;
#   3. each method's step against VICReg's (T-REGS overhead: goal <= +3% at batch 256);
#   4. the losses and kernels (the MST by Prim's and Borůvka's);
#   5. the host JPEG path by worker count (1 to 16 grain processes);
#   6. the two-model protocol for VICReg and SAG-VICReg's readings on `shapes` at 32 px (one seed).
set -uo pipefail
cd "$(dirname "$0")/../.."
# The GPU machine has no network: jax with CUDA and the requirements must already be there (or travel as wheels).
python_bin=${PYTHON:-python3}
device=$("$python_bin" -c "from experiments.bench.losses import device_name; print(device_name())")
results=experiments/bench/results
outputs=experiments
if [ "${SMALL:-0}" = 1 ]; then  # a check of the script: keep the committed results untouched
  outputs=$(mktemp -d); results="$outputs/bench/results"
fi
mkdir -p "$results"
log="$results/gpu-$device.log"
data=$(mktemp -d)
small=${SMALL:-0}
if [ "$small" = 1 ]; then
  steps=6; log_every=2; batches="16"; vit_batch=16; jpegs="--small --workers 0,1"; readings="--small"
  bench="--small"
else
  steps=300; log_every=50; batches="256 512 1024"; vit_batch=256; jpegs="--workers 1,2,4,8,16"
  readings="--scale gpu --steps 1500"; bench=""
fi
deadline=$((SECONDS + ${BUDGET:-480}))
pack() {  # everything written so far, into one archive under $OUT (the device tool returns few files)
  [ -n "${OUT:-}" ] || return 0
  tar czf "$OUT/.gpu-results.tgz" "$log" "$results"/*"$device"* "$outputs"/results/*gpu* 2>/dev/null
  mv -f "$OUT/.gpu-results.tgz" "$OUT/gpu-results-$device.tgz"
}
run() {
  local left=$((deadline - SECONDS)) limit=${LIMIT:-150}
  if [ "$left" -lt 30 ]; then echo "skipped (budget spent): $*" | tee -a "$log"; return; fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "+ $* (limit ${limit}s)" | tee -a "$log"
  # The step and its children are killed at the limit; the output goes to the log whole.
  timeout -k 5 "$limit" "$python_bin" "$@" >>"$log" 2>&1
  echo "  exit $? after $((SECONDS - deadline + ${BUDGET:-480}))s of the budget" | tee -a "$log"
  pack
}

resnet_end_to_end() {  # dtype, global batch
  run -m experiments.bench.train --end_to_end --config configs/vicreg.py --data_dir "$data" \
    --steps "$steps" --set data.name=shapes --set views.size=32 --set model.width=64 \
    --set model.projector=2048-2048-2048 --set train.global_batch_size="$2" --set train.log_every="$log_every" \
    --set model.dtype="$1" --output "$results/train-end-to-end-resnet18-$1-b$2-$device.json"
}

# Most wanted first, in case the budget runs out: the 30,000 images/s goal at the first batch size,
# then the T-REGS overhead, the kernels, the ViT recipe, the other batch sizes, the host path, the readings.
first_batch=${batches%% *}
for dtype in float32 bfloat16; do resnet_end_to_end "$dtype" "$first_batch"; done
run -m experiments.bench.train $bench --data_dir "$data" --methods vicreg,tregs,sag_vicreg,visreg,lejepa \
  --output "$results/train-$device.json"
run -m experiments.bench.losses $bench --output "$results/losses-$device.json"
run -m experiments.bench.train --end_to_end --config configs/visreg.py --data_dir "$data" --steps "$steps" \
  --set data.name=shapes --set views.size=32 --set views.local_size=16 --set views.num_local=6 \
  --set model.backbone=vit_small --set model.patch_size=4 --set model.dtype=bfloat16 \
  --set train.global_batch_size="$vit_batch" --set train.log_every="$log_every" \
  --output "$results/train-end-to-end-visreg-vits-$device.json"
for batch in ${batches#"$first_batch"}; do
  for dtype in bfloat16 float32; do resnet_end_to_end "$dtype" "$batch"; done
done
LIMIT=120 run -m experiments.bench.data --jpeg $jpegs --output "$results/data-jpeg-$device.json"
LIMIT=200 run -m experiments.sag_vicreg_readings $readings --datasets shapes --seeds 1 \
  --variants vicreg,cross_view,cross_view_own,same_view --features projector --data_dir "$data" \
  --output_dir "$outputs" --workdir "$(mktemp -d)"
pack
echo "done; log in $log"
