"""Five methods on `shapes`, each with several seeds: frozen transfer, then fine-tuning, in-domain and OOD.

  python -m experiments.finetune_runs --seeds 3 --finetune_steps 600
  python -m experiments.finetune_runs --small --seeds 1 --lr_sweep 2   # smoke-sized: a few minutes

VICReg, SAG-VICReg, VISReg, LeJEPA and DINO pretrain a small CNN on the
bundled `shapes` at the scale of `configs/default.py` (1500 steps of batch
128, 16 px views; each method's own views and optimizer from its config
file). Each seed's encoder is then scored on `shapes` and `shapes_ood` (new
colours, textures, backgrounds, noise, blur and contrast; probes fit on
`shapes`) by `python -m jax_ssl.evaluate transfer`'s protocols, and
fine-tuned on `shapes` by `python -m jax_ssl.finetune`'s recipe for
convnets, with the fine-tuned network scored on both test sets. The
controls: the input pixels (frozen protocols) and the same network at
initialisation (frozen protocols and the same fine-tuning). The initial
network is a function of the seed alone (the backbone is built first, from
`config.seed`); the script checks that its arrays are equal across the
methods of a seed and fine-tunes it once per seed.

Runs go to `<workdir>/<method>/seed<seed>` (resumed or skipped when done;
the SAG-VICReg runs are `configs/default.py`'s, so a `transfer_runs`
workdir of it can be linked there). Writes
experiments/results/finetune_runs-shapes.json (every seed's numbers, mean
and std (ddof 1) per method) and a figure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common
from experiments import _pretraining
from experiments import config_runs
from jax_ssl import transfer_suite
from jax_ssl.train import finetune
from jax_ssl.train import finetune_recipe

PRETRAINING_STEPS = 1500  # configs/default.py's
METHODS = {
    "vicreg": f"configs/vicreg.py:shapes,train.num_steps={PRETRAINING_STEPS}",
    "sag_vicreg": "configs/default.py",
    "visreg": f"configs/visreg.py:shapes,train.num_steps={PRETRAINING_STEPS}",
    "lejepa": f"configs/lejepa.py:shapes,train.num_steps={PRETRAINING_STEPS}",
    "dino": f"configs/dino.py:shapes,train.num_steps={PRETRAINING_STEPS}",
}
DATASETS = ("shapes", "shapes_ood")
LEVEL = "label"  # the finest level: 36 classes
FROZEN = {"linear": lambda scores: scores["linear"]["accuracy"], "knn@20": lambda scores: scores["knn"]["20"],
          "10-shot": lambda scores: scores["few_shot"]["10"]["mean"]}
FINETUNE_DIR = "finetune_shapes"
# Chosen by the sweep on seed 0 of VICReg, both initialisations (`learning_rate_sweep`, in the results JSON).
FINETUNE_BASE_LR = 2.0


def finetune_config(steps: int, small: bool):
  """The convnet recipe (`jax_ssl.train.finetune`) on `shapes`, for `steps` steps."""
  config = finetune_recipe.default_config("convnet")
  config.data.name = "shapes"
  config.optim.base_lr = FINETUNE_BASE_LR
  config.train.update(num_steps=steps, log_every=max(1, steps // 10), checkpoint_every=max(1, steps // 2))
  if small:
    config.train.global_batch_size = 16
  return config


def run_seed(method: str, config_argument: str, seed: int, run_dir: pathlib.Path, data_dir: str | None, *,
             max_train: int, max_test: int, steps: int, small: bool) -> dict:
  """One method and seed: its report.json, transfer.json and fine-tuning result (each kept in `run_dir`)."""
  report = config_runs.run_seed(config_argument, seed, run_dir, data_dir)
  kept = run_dir / "transfer.json"
  if not kept.exists():
    grid = {"c_grid": (1.0,)} if small else {}
    _pretraining.write_json(kept, transfer_suite.evaluate_transfer(
        run_dir, list(DATASETS), data_dir=data_dir, max_train=max_train, max_test=max_test, **grid))
  transfer = json.loads(kept.read_text())
  tuned = finetune.finetune(finetune_config(steps, small), run_dir, run_dir / FINETUNE_DIR / "pretrained",
                            init="pretrained")
  print(f"{method} seed {seed}: fine-tuned top-1 {tuned['top1'][LEVEL]:.3f}", flush=True)
  return {"method": method, "seed": seed, "config": config_argument, "report": report["accuracy"],
          "transfer_settings": transfer["settings"],
          "transfer": {name: transfer["datasets"][name] for name in DATASETS}, "finetune": _finetune_scores(tuned)}


def _finetune_scores(result: dict) -> dict:
  return {"shapes": result["top1"][LEVEL], "shapes_ood": result["shifted"]["shapes_ood"]["top1"][LEVEL],
          "train_top1": result["train_top1"][LEVEL],  # on the last step's augmented batch
          "shapes_ood_by_shift": result["shifted"]["shapes_ood"]["groups"]["shift"], "steps": result["step"],
          "pretrained_step": result["pretrained_step"]}


def untrained_control(seed: int, run_dirs: list[pathlib.Path], steps: int, small: bool) -> dict:
  """The untrained network of `seed`, fine-tuned once: first checked equal across the methods' runs."""
  arrays = [finetune.backbone_arrays(run_dir, "untrained", None)[1:] for run_dir in run_dirs]
  for other, run_dir in zip(arrays[1:], run_dirs[1:]):
    equal = jax.tree.map(np.array_equal, arrays[0], other)
    if jax.tree.structure(arrays[0]) != jax.tree.structure(other) or not all(jax.tree.leaves(equal)):
      raise ValueError(f"the untrained network of {run_dir} differs from that of {run_dirs[0]}; fine-tune each.")
  tuned = finetune.finetune(finetune_config(steps, small), run_dirs[0], run_dirs[0] / FINETUNE_DIR / "untrained",
                            init="untrained")
  return _finetune_scores(tuned)


def learning_rate_sweep(run_dir: pathlib.Path, rates: list[float], steps: int, small: bool) -> dict:
  """Fine-tuning top-1 on `shapes` per base learning rate, from the run's network and from its initialisation."""
  sweep = {}
  for rate in rates:
    config = finetune_config(steps, small)
    config.optim.base_lr = rate
    sweep[str(rate)] = {init: finetune.finetune(config, run_dir, run_dir / "finetune_lr_sweep" / f"{rate:g}" / init,
                                                init=init)["top1"][LEVEL] for init in finetune.INITS}
  return sweep


def _frozen_cells(runs: list[dict], encoder: str, cell) -> dict:
  """{"<dataset> <probe>": cell} of the frozen protocols, for the probes every run has (few-shot needs the shots)."""
  cells = {}
  for name in DATASETS:
    for probe, read in FROZEN.items():
      try:
        cells[f"{name} {probe}"] = cell([read(run["transfer"][name]["scores"][encoder][LEVEL]) for run in runs])
      except KeyError:
        continue
  return cells


def summarise(runs: list[dict], controls: list[dict]) -> dict:
  """{row: {column: mean_std with values}}: one row per method and per control, in a fixed column order."""
  def cell(values):
    return {**_pretraining.mean_std(values), "values": values}

  rows = {}
  for method in METHODS:
    seeds = [run for run in runs if run["method"] == method]
    if not seeds:
      continue
    row = _frozen_cells(seeds, "trained", cell)
    row.update({f"{name} fine-tuned": cell([run["finetune"][name] for run in seeds]) for name in DATASETS})
    rows[method] = row
  for encoder, label in (("initial", "untrained"), ("pixels", "pixels")):
    firsts = [next(run for run in runs if run["seed"] == seed) for seed in sorted({run["seed"] for run in runs})]
    row = _frozen_cells(firsts, encoder, cell)
    if label == "untrained":
      row.update({f"{name} fine-tuned": cell([control[name] for control in controls]) for name in DATASETS})
    rows[label] = row
  return rows


def verdicts(runs: list[dict], controls: list[dict]) -> dict:
  """Per method: whether fine-tuning beats the untrained network's, and frozen linear beats both controls, per seed."""
  by_seed = {control["seed"]: control for control in controls}
  result = {}
  for method in METHODS:
    seeds = [run for run in runs if run["method"] == method]
    if not seeds:
      continue
    result[method] = {
        name: {"fine-tuned above untrained in every seed": all(
                   run["finetune"][name] > by_seed[run["seed"]][name] for run in seeds),
               "linear above both controls in every seed": all(
                   run["transfer"][name]["scores"]["trained"][LEVEL]["linear"]["accuracy"]
                   > max(run["transfer"][name]["scores"][encoder][LEVEL]["linear"]["accuracy"]
                         for encoder in ("initial", "pixels")) for run in seeds)}
        for name in DATASETS}
  return result


def figure(summary: dict, title: str):
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
  rows = list(summary)
  for axis, name in zip(axes, DATASETS):
    columns = [f"{name} linear", f"{name} fine-tuned"]
    width = 0.8 / len(columns)
    for index, column in enumerate(columns):
      cells = [summary[row].get(column) for row in rows]
      axis.bar([p + (index - 0.5) * width for p in range(len(rows))], [c["mean"] if c else 0 for c in cells], width,
               yerr=[c["std"] if c and c["std"] is not None else 0 for c in cells],
               label=column.split(" ", 1)[1], color=f"C{index}")
    axis.set_xticks(range(len(rows)), rows, rotation=30, fontsize=7)
    axis.set_title(f"{name}: top-1 at the finest level (36 classes)", fontsize=8)
    axis.legend(fontsize=7)
  axes[0].set_ylabel("accuracy")
  fig.suptitle(title, fontsize=8)
  fig.tight_layout()
  return fig


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, from " + ", ".join(METHODS))
  parser.add_argument("--finetune_steps", type=int, default=600)
  parser.add_argument("--lr_sweep", type=lambda text: [float(v) for v in text.split(",")], default=[0.1, 0.5, 2.0, 4.0],
                      help="base learning rates fine-tuned on the first method's seed 0")
  parser.add_argument("--max_train", type=int, default=2000)
  parser.add_argument("--max_test", type=int, default=1000)
  parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("workdirs/finetune_runs"))
  parser.add_argument("--data_dir", default=None)
  parser.add_argument("--output_dir", type=pathlib.Path, default=pathlib.Path(__file__).parent)
  parser.add_argument("--small", action="store_true", help="smoke-sized runs (seconds), for the tests")
  args = parser.parse_args()
  started = time.perf_counter()
  methods = [name.strip() for name in args.methods.split(",") if name.strip()]
  unknown = [name for name in methods if name not in METHODS]
  if unknown:
    parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
  steps = args.finetune_steps
  if args.small:
    # Enough train images for 10 shots of each of the 36 classes.
    args.max_train, args.max_test, steps = min(args.max_train, 400), min(args.max_test, 54), min(steps, 2)
  runs, controls = [], []
  for seed in range(args.seeds):
    run_dirs = []
    for method in methods:
      config_argument = METHODS[method]
      if args.small:  # smoke's two steps, after the file's own train.num_steps
        config_argument += (",smoke" if ":" in config_argument else ":smoke") + ",train.num_steps=2"
      run_dir = args.workdir / method / f"seed{seed}"
      runs.append(run_seed(method, config_argument, seed, run_dir, args.data_dir, max_train=args.max_train,
                           max_test=args.max_test, steps=steps, small=args.small))
      run_dirs.append(run_dir)
    controls.append({"seed": seed, **untrained_control(seed, run_dirs, steps, args.small)})
  # The base learning rate, chosen on the first method's seed 0 (both initialisations) over this grid.
  sweep = learning_rate_sweep(args.workdir / methods[0] / "seed0", args.lr_sweep, steps, args.small)
  summary = summarise(runs, controls)
  config = finetune_config(steps, args.small)
  readings = {method: reading for method in methods if (reading := config_runs.sag_vicreg_reading(METHODS[method]))}
  result = {"methods": {method: METHODS[method] for method in methods}, "sag_vicreg_readings": readings,
            "seeds": list(range(args.seeds)),
            "level": LEVEL, "finetune_config": json.loads(config.to_json()),
            "transfer_settings": runs[0]["transfer_settings"],
            "learning_rate_sweep": {"run": f"{methods[0]} seed 0", "top1": sweep}, "summary": summary,
            "verdicts": verdicts(runs, controls), "runs": runs, "untrained_finetune": controls}
  title = (f"{len(methods)} methods x {args.seeds} seeds on shapes; frozen linear probe and {steps}-step fine-tuning "
           "(mean ± std)")
  _common.write_results("finetune_runs-shapes", args.output_dir, result, figure(summary, title), small=args.small,
                        started=started)


if __name__ == "__main__":
  main()
