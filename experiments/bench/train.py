"""Benchmark of the training step, and of the whole run against its step.

  python -m experiments.bench.train           # writes results/train-<device>.json
  python -m experiments.bench.train --small   # seconds; for a quick check
  python -m experiments.bench.train --end_to_end --config configs/vicreg.py --output FILE
  python -m experiments.bench.train --conv_backward   # lax's conv backward against jax_ssl.models.conv's

`--end_to_end` times what a user runs: `jax_ssl.main`'s loop on the config
(data, augmentation, logging and checkpoints as configured; no final report),
in steady state (the loop's images/s count from the end of the compiling
first step; the first logging interval, one step short, is left out),
against the bare jitted step on one fixed batch of the same config, timed in
the same process over as many steps as the run's window, each rate all its
images over all its time: `ratio = end_to_end_images_per_s / step_images_per_s`
(`ratio_to_median_step` takes the median repeat of 10 steps instead, which
leaves out the machine's slow spells that the run's own rate keeps).

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
import tempfile
import time

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments import _common
from experiments.bench.losses import device_description
from experiments.bench.losses import device_name
from jax_ssl import protocols
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train import monitor
from jax_ssl.train import step as step_lib
from jax_ssl.train.state import DATA_AXIS

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
METHODS = ("vicreg", "sag_vicreg", "visreg", "lejepa", "tregs")
GOALS = {"sag_vicreg": 0.05, "tregs": 0.10}


def method_config(method: str, batch: int, backbone: str, width: int, projector: str, data_dir: str):
  config = config_lib.base_config()
  config.method.name = method  # the sliced methods at their default K = 1024
  config.data.update(name="shapes", data_dir=data_dir)
  if method in ("visreg", "lejepa"):
    config.views.update(recipe="multicrop", num_global=2, num_local=0)
  config.views.size = 32
  config.model.update(backbone=backbone, stem="cifar", width=width, projector=projector)
  config.train.update(global_batch_size=batch, num_steps=1000, log_every=1000)
  return config


def _reading_field(config) -> dict:
  """`{"sag_vicreg_reading": ...}` when the config trains SAG-VICReg (its graph, scale_over, regularize), else {}."""
  reading = _common.sag_vicreg_reading(config)
  return {} if reading is None else {"sag_vicreg_reading": reading}


def bare_step_times(run: loop.Run, repeats: int, steps_per_repeat: int = 10) -> tuple[float, float]:
  """(median, mean) seconds per step of the jitted step alone, fed one fixed host batch.

  Each repeat chains `steps_per_repeat` steps and syncs once (no data work). The median over repeats
  leaves out the machine's slow spells; the mean (all the repeats' time over all their steps) keeps
  them, as a run's own rate over its window does.
  """
  fixed = step_lib.jit_train_step(run.step_config, run.shardings)
  source = run.source
  batch_size = run.config.train.global_batch_size
  records = [source[i] for i in range(batch_size)]
  sharding = NamedSharding(run.mesh, P(DATA_AXIS))
  batch = {key: jax.make_array_from_process_local_data(sharding, np.stack([r[key] for r in records]))
           for key in ("image", "label")}
  # The step donates its state and guard: keep feeding it what it returns.
  carry = {"state": run.state, "guard": run.guard}

  def steps():
    for _ in range(steps_per_repeat):
      carry["state"], carry["guard"], metrics = fixed(carry["state"], carry["guard"], batch)
    return metrics

  jax.block_until_ready(steps())  # compiles
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    jax.block_until_ready(steps())
    times.append(time.perf_counter() - started)
  run.state, run.guard = carry["state"], carry["guard"]
  return float(np.median(times)) / steps_per_repeat, sum(times) / (repeats * steps_per_repeat)


def bare_step_time(run: loop.Run, repeats: int, steps_per_repeat: int = 10) -> float:
  """Median seconds per step of the jitted step alone (see `bare_step_times`)."""
  return bare_step_times(run, repeats, steps_per_repeat)[0]


def step_time(config, workdir: pathlib.Path, repeats: int) -> float:
  run = loop.Run(config, workdir)
  seconds = bare_step_time(run, repeats)
  run.checkpointer.close()
  return seconds


def steady_state_images_per_s(workdir: pathlib.Path, batch_size: int) -> tuple[float, int]:
  """Images/s over the logged intervals after the first, and the steps they span.

  The loop's first logged rate counts from the end of the compiling first step, so its interval is one step short
  of the others and is left out.
  """
  records = monitor.read_metrics(workdir)
  steps = [r["step"] for r in records]
  intervals = [(b - a, r["images_per_second"]) for a, b, r in zip(steps, steps[1:], records[1:])]
  images = sum(n * batch_size for n, _ in intervals)
  seconds = sum(n * batch_size / rate for n, rate in intervals)
  return images / seconds, sum(n for n, _ in intervals)


def end_to_end(args) -> None:
  config = protocols.load_config_file(args.config)
  if args.data_dir:
    config.data.data_dir = args.data_dir
  for assignment in args.set:
    key, _, text = assignment.partition("=")
    *sections, field = key.split(".")  # e.g. train.num_steps, method.visreg.lam
    node = config
    for section in sections:
      node = node[section]
    current = node[field]
    node[field] = type(current)(text) if not isinstance(current, bool) else text.lower() == "true"
  if args.steps:
    config.train.num_steps = args.steps
  config.eval.report = False
  config_lib.validate(config, num_devices=jax.device_count())
  # Rounds alternate a whole run and the bare step, so slow drifts of a shared machine reach both; the
  # published ratio is the median of the rounds' ratios.
  rounds = []
  for index in range(args.rounds):
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_bench_e2e_"))
    started = time.perf_counter()
    loop.train(config, workdir / "run")
    wall = time.perf_counter() - started
    end_to_end_rate, steady_steps = steady_state_images_per_s(workdir / "run", config.train.global_batch_size)
    run = loop.Run(config, workdir / "bare")
    # As many steps as the run's steady state: a median of a few short repeats swings by 10% on a shared
    # CPU while the run's own rate, averaged over its whole window, does not.
    steps_per_repeat = 10
    step_repeats = max(args.repeats, steady_steps // steps_per_repeat)
    median_s, mean_s = bare_step_times(run, step_repeats, steps_per_repeat)
    step_rate, step_median_rate = config.train.global_batch_size / mean_s, config.train.global_batch_size / median_s
    run.checkpointer.close()
    rounds.append({"wall_s": wall, "steady_state_steps": steady_steps, "end_to_end_images_per_s": end_to_end_rate,
                   "step_images_per_s": step_rate, "ratio": end_to_end_rate / step_rate,
                   "step_median_images_per_s": step_median_rate,
                   "ratio_to_median_step": end_to_end_rate / step_median_rate})
    print(f"round {index + 1}/{args.rounds}: step {step_rate:,.0f} img/s (median {step_median_rate:,.0f}), "
          f"end to end {end_to_end_rate:,.0f} img/s, ratio {rounds[-1]['ratio']:.3f} "
          f"(to the median step {rounds[-1]['ratio_to_median_step']:.3f})")
  median_round = sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]
  wall, steady_steps = median_round["wall_s"], median_round["steady_state_steps"]
  step_rate = float(np.median([r["step_images_per_s"] for r in rounds]))
  end_to_end_rate = float(np.median([r["end_to_end_images_per_s"] for r in rounds]))
  result = {
      "benchmark": "train_end_to_end", "device": device_name(), "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(),
      "command": _common.reproducing_command(), "invoked_as": _common.command_line(), **_common.git_commit(),
      "config": args.config, **_reading_field(config), "overrides": args.set, "dtype": config.model.dtype,
      "on_device": run.on_device, "global_batch_size": config.train.global_batch_size,
      "log_every": config.train.log_every, "checkpoint_every": config.train.checkpoint_every,
      "total_steps": run.total_steps, "steady_state_steps": steady_steps, "wall_s": wall,
      "step_images_per_s": step_rate, "end_to_end_images_per_s": end_to_end_rate,
      "ratio": float(np.median([r["ratio"] for r in rounds])),
      "ratio_to_median_step": float(np.median([r["ratio_to_median_step"] for r in rounds])), "rounds": rounds,
      "timing": "per round, end to end: images/s logged by the loop, weighted over every logging interval but the "
                "first; step: repeats of 10 chained steps on one fixed batch, synced once per repeat, as many "
                "steps as the run's steady state (at least --repeats repeats), its rate all those steps over all "
                "their time (like the run's rate over its window; earlier files took the median repeat's rate, kept "
                "here as step_median_images_per_s and ratio_to_median_step). "
                "ratio: the median of the rounds' ratios; the rates: the medians of the rounds' rates",
  }
  print(f"{args.config}: step {step_rate:,.0f} img/s, end to end {end_to_end_rate:,.0f} img/s, "
        f"ratio {result['ratio']:.3f} ({'on the devices' if run.on_device else 'host-fed'})")
  output = args.output or RESULTS_DIR / f"train-end-to-end-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {output}")


def conv_backward(args) -> None:
  """The ResNet-18 step with lax's convolution backward pass against `jax_ssl.models.conv`'s, in one process.

  Issue 11's CPU comparison with torch: ResNet-18 (CIFAR stem, width 64), a
  2048-2048-2048 projector, VICReg, two 32 px views, batch 64. The model reads
  `conv.conv_general_dilated` when it is built, so each network is built with
  one implementation in place.
  """
  from unittest import mock  # noqa: PLC0415  (only this mode swaps the implementation)

  from jax import lax  # noqa: PLC0415

  from jax_ssl.models import conv  # noqa: PLC0415

  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_bench_")
  workdirs = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_bench_conv_"))
  batch = args.batch or 64
  config = method_config("vicreg", batch, "resnet18", 64, "2048-2048-2048", data_dir)
  seconds = {}
  for name, implementation in (("lax", lax.conv_general_dilated), ("jax_ssl", conv.conv_general_dilated)):
    with mock.patch.object(conv, "conv_general_dilated", implementation):
      run = loop.Run(config, workdirs / name)
    seconds[name] = bare_step_time(run, args.repeats, steps_per_repeat=2)
    run.checkpointer.close()
    print(f"{name:8s} {seconds[name]:7.2f} s/step", flush=True)
  result = {
      "benchmark": "conv_backward", "device": device_name(), "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(),
      "command": _common.reproducing_command(), "invoked_as": _common.command_line(), **_common.git_commit(),
      "setup": f"resnet18 (CIFAR stem, width 64) + projector 2048-2048-2048, VICReg, 2 views of 32 px, batch {batch}",
      "step_s": seconds, "speedup": seconds["lax"] / seconds["jax_ssl"],
      "torch_step_s_reported": {"value": 2.47, "source": "issue 11: torch 2.14 on 2 threads, same model and batch"},
      "timing": "median over repeats of 2 chained steps on one fixed batch, after a warm-up",
  }
  output = args.output or RESULTS_DIR / f"conv-backward-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"speedup {result['speedup']:.2f}x; wrote {output}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--small", action="store_true", help="a tiny network, for a quick check")
  parser.add_argument("--batch", type=int, default=None, help="global batch (default: 64 on CPU, 256 elsewhere)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--methods", default=",".join(METHODS), help="vicreg first; the others are timed against it")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--output", type=pathlib.Path, default=None)
  parser.add_argument("--end_to_end", action="store_true", help="time the whole run of --config against its step")
  parser.add_argument("--config", default="configs/vicreg.py", help="configs/<x>.py[:arg], for --end_to_end")
  parser.add_argument("--steps", type=int, default=None, help="--end_to_end: override train.num_steps")
  parser.add_argument("--rounds", type=int, default=3, help="--end_to_end: runs, each against its own bare step")
  parser.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                      help="--end_to_end: override a config field (repeatable), e.g. --set model.dtype=bfloat16")
  parser.add_argument("--conv_backward", action="store_true",
                      help="time the ResNet-18 step with lax's conv backward against jax_ssl.models.conv's")
  args = parser.parse_args()
  if args.conv_backward:
    conv_backward(args)
    return
  if args.end_to_end:
    end_to_end(args)
    return
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
  times, readings = {}, {}
  for method in methods:
    config = method_config(method, batch, backbone, width, projector, data_dir)
    readings.update(_reading_field(config))
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
      "command": _common.reproducing_command(),
      "invoked_as": _common.command_line(),
      **_common.git_commit(),
      "small": args.small,
      **readings,
      "setup": f"{backbone} (width {width}) + projector {projector}, 2 views of 32 px, global batch {batch}, "
               "LARS; bundled shapes images as CIFAR stand-ins",
      "vicreg_images_per_s": batch / times["vicreg"],
      "rows": rows,
      "timing": "median step time after a warm-up step; all methods in this run",
  }
  for row in rows:
    verdict = "met" if row["meets_goal"] else "MISSED"
    goal = "" if row["goal"] is None else f"  goal < {100 * row['goal']:.0f}%: {verdict}"
    overhead = 100 * row["overhead_vs_vicreg"]
    print(f"{row['method']:12s} {row['images_per_s']:8.1f} img/s  {overhead:+6.1f}% vs vicreg{goal}")
  output = args.output or RESULTS_DIR / f"train-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {output}")


if __name__ == "__main__":
  main()
