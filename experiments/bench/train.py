"""Benchmark of the training step: images/s for VICReg, and each method's step time relative to VICReg.

  python experiments/bench/train.py           # writes results/train-<device>.json
  python experiments/bench/train.py --small   # seconds; for a quick check

The trainer's own jitted step (augmentation on device, ResNet-18 with the CIFAR
stem, a 2048-2048-2048 projector, the loss, LARS), on two 32 px views of the
bundled `shapes` images (CIFAR's size; CIFAR itself needs a download). Every
method sees the same two views, so a ratio to VICReg is the cost of its
objective: SAG-VICReg's kNN graph and random walk (paper: +28.5% per epoch;
goal < +5%), VISReg's and LeJEPA's sliced regularizers, T-REGS's MST (goal < +10%).
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import tempfile

import jax

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))
from experiments.bench.losses import device_description  # noqa: E402
from experiments.bench.losses import device_name  # noqa: E402
from experiments.bench.losses import time_call  # noqa: E402
from jax_ssl.train import config as config_lib  # noqa: E402
from jax_ssl.train import loop  # noqa: E402

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
METHODS = ("vicreg", "sag_vicreg", "visreg", "lejepa", "tregs")
GOALS = {"sag_vicreg": 0.05, "tregs": 0.10}


def method_config(method: str, batch: int, backbone: str, width: int, projector: str, data_dir: str):
  config = config_lib.base_config()
  config.method.update(name=method, num_slices=1024)
  config.data.update(name="shapes", data_dir=data_dir)
  if method in ("visreg", "lejepa"):
    config.views.update(recipe="multicrop", num_global=2, num_local=0)
  config.views.size = 32
  config.model.update(backbone=backbone, stem="cifar", width=width, projector=projector)
  config.train.update(global_batch_size=batch, num_steps=1000, log_every=1000)
  return config


def step_time(config, workdir: pathlib.Path, repeats: int) -> float:
  run = loop.Run(config, workdir)
  batch = run.next_batch()

  def step(state):
    return run.train_step(state, batch)

  # The step donates its state: keep feeding it the state it returns.
  holder = {"state": run.state}

  def timed_step():
    holder["state"], metrics = step(holder["state"])
    return metrics

  seconds = time_call(timed_step, repeats=repeats, min_total_s=0)
  run.checkpointer.close()
  return seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--small", action="store_true", help="a tiny network, for a quick check")
  parser.add_argument("--batch", type=int, default=None, help="global batch (default: 64 on CPU, 256 elsewhere)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--methods", default=",".join(METHODS), help="vicreg first; the others are timed against it")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--output", type=pathlib.Path, default=None)
  args = parser.parse_args()
  on_cpu = jax.devices()[0].platform == "cpu"
  if args.small:
    batch, backbone, width, projector, repeats = 16, "small_cnn", 4, "32-32", 1
  else:
    batch, backbone, width, projector = args.batch or (64 if on_cpu else 256), "resnet18", 64, "2048-2048-2048"
    repeats = args.repeats
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_bench_")
  workdirs = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_bench_runs_"))
  methods = args.methods.split(",")
  if methods[0] != "vicreg" or not set(methods) <= set(METHODS):
    parser.error(f"--methods must start with vicreg and name some of {', '.join(METHODS)}")
  times = {}
  for method in methods:
    config = method_config(method, batch, backbone, width, projector, data_dir)
    times[method] = step_time(config, workdirs / method, repeats)
    print(f"{method:12s} {times[method]:8.3f} s/step", flush=True)
  rows = []
  for method in methods:
    overhead = times[method] / times["vicreg"] - 1
    goal = None if args.small else GOALS.get(method)
    rows.append({"method": method, "step_s": times[method], "images_per_s": batch / times[method],
                 "overhead_vs_vicreg": overhead, "goal": goal, "meets_goal": None if goal is None else overhead < goal})
  result = {
      "benchmark": "train",
      "device": device_name(),
      "device_description": device_description(),
      "jax_version": jax.__version__,
      "date": datetime.date.today().isoformat(),
      "small": args.small,
      "setup": f"{backbone} (width {width}) + projector {projector}, 2 views of 32 px, global batch {batch}, "
               "LARS; bundled shapes images as CIFAR stand-ins",
      "vicreg_images_per_s": batch / times["vicreg"],
      "rows": rows,
      "timing": "median step time after a warm-up step; all methods in this run",
  }
  for row in rows:
    goal = "" if row["goal"] is None else f"  goal < {100 * row['goal']:.0f}%: " + ("met" if row["meets_goal"] else "MISSED")
    print(f"{row['method']:12s} {row['images_per_s']:8.1f} img/s  {100 * row['overhead_vs_vicreg']:+6.1f}% vs vicreg{goal}")
  output = args.output or RESULTS_DIR / f"train-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {output}")


if __name__ == "__main__":
  main()
