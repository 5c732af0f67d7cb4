"""The methods side by side on the bundled hierarchical data: probes and Rand index per level, two-model structure.

  python experiments/compare_methods.py                 # shapes and digits, 3 seeds, the CPU scale (< 1 hour)
  python experiments/compare_methods.py --scale gpu     # ResNet-18 on 32 px views, longer training
  python experiments/compare_methods.py --small         # seconds; for the tests

For each dataset, method and seed: pretrain on all classes and evaluate the
backbone (kNN and linear probe per level of the label hierarchy, hierarchical
Rand index per level); then run the two-model protocol (SAG-VICReg Sec. 5.3:
models trained on each half of the classes, compared on the first half's test
images by LCA and cophenetic similarity). Methods start from their configs in
configs/ (the digits recipes), moved to the dataset and scale chosen here.

Writes experiments/results/compare_methods[-<scale>].json (every seed's numbers
and their mean and standard deviation) and the figure of scores by level.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import sys
import tempfile
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from experiments.bench.losses import device_description  # noqa: E402
from experiments.bench.losses import device_name  # noqa: E402
from jax_ssl.eval import protocols  # noqa: E402
from jax_ssl.train import config as config_lib  # noqa: E402
from jax_ssl.train import loop  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
CONFIG_FILES = {"vicreg": "vicreg.py", "sag_vicreg": "sag_vicreg.py", "visreg": "visreg.py", "lejepa": "lejepa.py",
                "tregs": "tregs.py", "byol+tregs": "byol_tregs.py"}

# What changes with the scale: backbone, view size, steps, and how much is evaluated.
SCALES = {
    "cpu": dict(backbone="small_cnn", width=16, size=16, local_size=8, batch=128, steps=300, max_train=2000,
                max_items=500, probe_epochs=30),
    "gpu": dict(backbone="resnet18", width=32, size=32, local_size=16, batch=256, steps=800, max_train=5000,
                max_items=1000, probe_epochs=50),
    "small": dict(backbone="small_cnn", width=4, size=8, local_size=8, batch=16, steps=2, max_train=400,
                  max_items=40, probe_epochs=2),
}
SCORES = ("knn", "linear", "rand_index")
STRUCTURE = ("lca_pearson", "lca_spearman", "lca_kendall", "cophenetic_d1_to_p2", "cophenetic_d2_to_p1")


def method_config(method: str, dataset: str, seed: int, scale: dict, data_dir: str):
  config = protocols.load_config_file(str(REPO / "configs" / CONFIG_FILES[method]))
  config.seed = seed
  config.data.update(name=dataset, data_dir=data_dir)
  config.views.update(size=scale["size"], local_size=min(scale["local_size"], scale["size"]))
  config.model.update(backbone=scale["backbone"], width=scale["width"])
  config.train.update(global_batch_size=scale["batch"], num_steps=scale["steps"], log_every=max(scale["steps"] // 10, 1),
                      checkpoint_every=scale["steps"], eval_every=0)
  config.method.num_slices = min(config.method.num_slices, 256)
  config.optim.warmup_epochs = min(config.optim.warmup_epochs, 1.0)
  config.eval.report = False
  return config


def summarise(runs: list[dict]) -> dict:
  """Mean and standard deviation (ddof=1 when there are several seeds) of every number over seeds."""
  summary = {}
  for score in SCORES:
    summary[score] = {}
    for level in runs[0][score]:
      values = np.array([run[score][level] for run in runs])
      summary[score][level] = {"mean": float(values.mean()), "std": float(values.std(ddof=1) if len(values) > 1 else 0)}
  summary["generalization"] = {}
  for key in STRUCTURE:
    values = np.array([run["generalization"][key] for run in runs])
    summary["generalization"][key] = {"mean": float(values.mean()),
                                      "std": float(values.std(ddof=1) if len(values) > 1 else 0)}
  return summary


def figure(results: dict, path: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  datasets = list(results)
  fig, axes = plt.subplots(len(datasets), len(SCORES) + 1, figsize=(4.2 * (len(SCORES) + 1), 3.2 * len(datasets)),
                           squeeze=False)
  for row, dataset in enumerate(datasets):
    methods = list(results[dataset])
    width = 0.8 / len(methods)
    for column, score in enumerate((*SCORES, "generalization")):
      axis = axes[row][column]
      keys = (list(results[dataset][methods[0]]["summary"][score]) if score != "generalization"
              else ["lca_kendall", "cophenetic_d1_to_p2"])
      positions = np.arange(len(keys))
      for index, method in enumerate(methods):
        entry = results[dataset][method]["summary"][score]
        axis.bar(positions + (index - (len(methods) - 1) / 2) * width, [entry[k]["mean"] for k in keys], width,
                 yerr=[entry[k]["std"] for k in keys], capsize=2, label=method)
      axis.set_xticks(positions, [k.replace("label_", "").replace("cophenetic_", "coph ") for k in keys], fontsize=8)
      axis.set_title(f"{dataset}: {score.replace('_', ' ')}", fontsize=9)
      axis.set_ylim(0 if score != "generalization" else -0.2, 1)
    axes[row][0].legend(fontsize=7, loc="lower left")
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--scale", choices=("cpu", "gpu"), default="cpu")
  parser.add_argument("--small", action="store_true", help="tiny runs, for the tests")
  parser.add_argument("--datasets", default="shapes,digits")
  parser.add_argument("--methods", default=",".join(CONFIG_FILES))
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=None, help="override the scale's training steps")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--workdir", type=pathlib.Path, default=None, help="training runs (default: a temporary dir)")
  parser.add_argument("--output_dir", type=pathlib.Path, default=None,
                      help="write DIR/results and DIR/figures (default: experiments/)")
  args = parser.parse_args()
  scale_name = "small" if args.small else args.scale
  scale = dict(SCALES[scale_name])
  if args.steps:
    scale["steps"] = args.steps
  methods = [m for m in args.methods.split(",") if m]
  unknown = sorted(set(methods) - set(CONFIG_FILES))
  if unknown:
    parser.error(f"unknown methods {unknown}; choose from {', '.join(CONFIG_FILES)}")
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_compare_data_")
  workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_compare_"))
  started = time.monotonic()
  results = {}
  for dataset in args.datasets.split(","):
    results[dataset] = {}
    for method in methods:
      runs = []
      for seed in range(args.seeds):
        config = method_config(method, dataset, seed, scale, data_dir)
        config_lib.validate(config, num_devices=jax.device_count())
        run_dir = workdir / dataset / method.replace("+", "_") / f"seed{seed}"
        loop.train(config, run_dir / "all_classes")
        run = protocols.evaluate_checkpoint(run_dir / "all_classes", dataset, data_dir=data_dir,
                                            max_train=scale["max_train"], max_items=scale["max_items"],
                                            probe_epochs=scale["probe_epochs"], seed=seed)
        run = {key: value for key, value in run.items() if not isinstance(value, np.ndarray)}  # JSON-ready
        two_models = protocols.generalization(config, run_dir / "halves", max_items=scale["max_items"], seed=seed)
        run["generalization"] = two_models["a_vs_b"]
        run["generalization_pixels_vs_a"] = two_models["a_vs_pixels"]
        runs.append({"seed": seed, **run})
        print(f"{dataset:7s} {method:11s} seed {seed}: kNN {run['knn']} linear {run['linear']} "
              f"rand {run['rand_index']} LCA-tau A-vs-B {run['generalization']['lca_kendall']:.3f} "
              f"({time.monotonic() - started:.0f} s)", flush=True)
      results[dataset][method] = {"runs": runs, "summary": summarise(runs)}
      write_results(args, scale_name, scale, results, started)  # after every method: a cut-off run keeps them
  write_results(args, scale_name, scale, results, started, final=True)


def write_results(args, scale_name: str, scale: dict, results: dict, started: float, final: bool = False) -> None:
  device = device_name()
  name = "compare_methods" + ("" if scale_name == "cpu" else f"-{scale_name}") + ("" if device == "cpu" else f"-{device}")
  output = {
      "experiment": "compare_methods", "device": device, "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(), "scale_name": scale_name,
      "scale": scale, "seeds": args.seeds, "wall_s": time.monotonic() - started,
      "command": "python experiments/compare_methods.py " + " ".join(sys.argv[1:]), "results": results,
  }
  results_dir = (args.output_dir or EXPERIMENTS) / "results"
  figures_dir = (args.output_dir or EXPERIMENTS) / "figures"
  results_dir.mkdir(parents=True, exist_ok=True)
  figures_dir.mkdir(parents=True, exist_ok=True)
  (results_dir / f"{name}.json").write_text(json.dumps(output, indent=2, default=float) + "\n")
  if not final:
    return
  figure(results, figures_dir / f"{name}.png")
  print(markdown_table(results))
  print(f"wrote {results_dir / (name + '.json')} in {output['wall_s']:.0f} s")


def markdown_table(results: dict) -> str:
  lines = []
  for dataset, by_method in results.items():
    levels = list(next(iter(by_method.values()))["summary"]["knn"])
    header = ["method"] + [f"{s} {lvl.replace('label_', '')}" for s in ("kNN", "linear", "Rand") for lvl in levels]
    header += ["A-vs-B LCA tau", "A-vs-B coph d1->p2"]
    lines += [f"{dataset}:", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for method, entry in by_method.items():
      summary = entry["summary"]
      cells = [f"{summary[s][lvl]['mean']:.3f} ± {summary[s][lvl]['std']:.3f}" for s in SCORES for lvl in levels]
      cells += [f"{summary['generalization'][k]['mean']:.3f} ± {summary['generalization'][k]['std']:.3f}"
                for k in ("lca_kendall", "cophenetic_d1_to_p2")]
      lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
  return "\n".join(lines)


if __name__ == "__main__":
  main()
