#!/usr/bin/env bash
# Every GPU measurement of issues 10 and 11, in one run of under 10 minutes on one H100/H200:
#
#   bash experiments/bench/gpu.sh              # on the GPU machine, from the repository root
#   SMALL=1 bash experiments/bench/gpu.sh      # tiny sizes, to check the script on a CPU
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
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The GPU machine has no network: jax with CUDA and the requirements must already be there (or travel as wheels).
device=$(python -c "from experiments.bench.losses import device_name; print(device_name())")
results=experiments/bench/results
mkdir -p "$results"
log="$results/gpu-$device.log"
data=$(mktemp -d)
small=${SMALL:-0}
if [ "$small" = 1 ]; then
  steps=6; batches="16"; jpegs="--small --workers 0,1"; readings="--small"; bench="--small"
else
  steps=300; batches="256 512 1024"; jpegs="--workers 1,2,4,8,16"; readings="--scale gpu --steps 1500"; bench=""
fi
run() { echo "+ $*" | tee -a "$log"; timeout "${LIMIT:-150}" "$@" 2>&1 | grep -v WARNING | tail -n 4 | tee -a "$log"; }

for dtype in float32 bfloat16; do
  for batch in $batches; do
    run python experiments/bench/train.py --end_to_end --config configs/vicreg.py --data_dir "$data" \
      --steps "$steps" --set data.name=shapes --set views.size=32 --set model.width=64 \
      --set model.projector=2048-2048-2048 --set train.global_batch_size="$batch" --set train.log_every=50 \
      --set model.dtype="$dtype" --output "$results/train-end-to-end-resnet18-$dtype-b$batch-$device.json"
  done
done
run python experiments/bench/train.py --end_to_end --config configs/visreg.py --data_dir "$data" --steps "$steps" \
  --set data.name=shapes --set views.size=32 --set views.local_size=16 --set views.num_local=6 \
  --set model.backbone=vit_small --set model.patch_size=4 --set model.dtype=bfloat16 \
  --set train.global_batch_size=256 --set train.log_every=50 \
  --output "$results/train-end-to-end-visreg-vits-$device.json"
run python experiments/bench/train.py $bench --data_dir "$data" --methods vicreg,tregs,sag_vicreg,visreg,lejepa
run python experiments/bench/losses.py $bench
LIMIT=120 run python experiments/bench/data.py --jpeg $jpegs
LIMIT=200 run python experiments/sag_vicreg_readings.py $readings --datasets shapes --seeds 1 \
  --variants vicreg,cross_view,cross_view_own,same_view --features projector --data_dir "$data" \
  --output_dir experiments --workdir "$(mktemp -d)"
# The device tool brings back at most 8 files from $OUT: one archive of everything written.
if [ -n "${OUT:-}" ]; then
  tar czf "$OUT/gpu-results-$device.tgz" "$log" "$results"/*"$device"* experiments/results/*gpu* 2>/dev/null
fi
echo "done; log in $log"
