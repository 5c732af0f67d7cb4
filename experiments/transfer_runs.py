"""A config trained with several seeds, then the transfer and OOD suite on each: mean and spread per protocol.

  python -m experiments.transfer_runs --config configs/default.py --seeds 3 --max_train 2000 --max_test 1000
  python -m experiments.transfer_runs --config configs/vicreg.py --small     # seconds; for the tests

Each seed is trained as `experiments/config_runs.py` trains it (into
`<workdir>/seed<seed>`, resumed or skipped when done), then scored by
`python -m jax_ssl.evaluate transfer` on the bundled `digits`, `shapes` and
`shapes_ood` (probes fit on `shapes`): the DINOv2-style logistic probe, kNN at
k = 10, 20, 100, 200 and few-shot ridge at 1, 5, 10, 25 shots, for the trained
encoder, the same network at initialisation and the input pixels. Writes
experiments/results/transfer_runs-<config>.json (every seed's numbers, and
mean and std (ddof 1) over the seeds) and a figure of the linear probe.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import matplotlib.pyplot as plt

from experiments import _common
from experiments import _pretraining
from experiments import config_runs
from jax_ssl import transfer_suite

ENCODERS = ("pixels", "initial", "trained")


def run_seed(config_argument: str, seed: int, run_dir: pathlib.Path, data_dir: str | None, *, max_train: int,
             max_test: int, c_grid) -> dict:
  """The transfer suite's result on the config trained with `seed` (kept in `run_dir/transfer.json`)."""
  kept = run_dir / "transfer.json"
  if kept.exists():
    return json.loads(kept.read_text())
  config_runs.run_seed(config_argument, seed, run_dir, data_dir)
  grid = {} if c_grid is None else {"c_grid": c_grid}
  result = transfer_suite.evaluate_transfer(run_dir, None, data_dir=data_dir, max_train=max_train, max_test=max_test,
                                            **grid)
  _pretraining.write_json(kept, result)
  return json.loads(kept.read_text())  # as written: JSON keys are strings


def summarise(results: list[dict]) -> dict:
  """{dataset: {encoder: {level: {"linear", "knn@k", "<n>-shot": mean_std}}}} over the seeds."""
  summary = {}
  for name, dataset in results[0]["datasets"].items():
    for encoder in ENCODERS:
      for level in dataset["levels"]:
        runs = [result["datasets"][name]["scores"][encoder][level] for result in results]
        cells = {"linear": [run["linear"]["accuracy"] for run in runs]}
        for k in runs[0]["knn"]:
          cells[f"knn@{k}"] = [run["knn"][k] for run in runs]
        for shots in runs[0]["few_shot"]:
          if all(shots in run["few_shot"] for run in runs):
            cells[f"{shots}-shot"] = [run["few_shot"][shots]["mean"] for run in runs]
        summary.setdefault(name, {}).setdefault(encoder, {})[level] = {
            probe: {**_pretraining.mean_std(values), "values": values} for probe, values in cells.items()}
      if "groups" in dataset:
        for key in dataset["groups"]["trained"][dataset["levels"][0]]:
          level = dataset["levels"][0]
          groups = [result["datasets"][name]["groups"][encoder][level][key] for result in results]
          summary[name][encoder].setdefault("groups", {})[key] = {
              group: {**_pretraining.mean_std([g[group] for g in groups]), "values": [g[group] for g in groups]}
              for group in groups[0]}
  return summary


def figure(summary: dict, title: str):
  datasets = list(summary)
  fig, axis = plt.subplots(figsize=(1.8 + 1.8 * len(datasets), 3.2))
  width = 0.8 / len(ENCODERS)
  for index, encoder in enumerate(ENCODERS):
    cells = [summary[name][encoder][next(iter(summary[name][encoder]))]["linear"] for name in datasets]
    axis.bar([p + (index - 1) * width for p in range(len(datasets))], [c["mean"] for c in cells], width,
             yerr=[c["std"] for c in cells], label=encoder, color=f"C{index}")
  axis.set_xticks(range(len(datasets)), datasets)
  axis.set_ylabel("linear probe accuracy (finest level)")
  axis.set_ylim(0, 1)
  axis.legend(fontsize=7)
  axis.set_title(title, fontsize=8)
  fig.tight_layout()
  return fig


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  config_runs.add_seed_flags(parser, "transfer_runs")
  parser.add_argument("--max_train", type=int, default=2000)
  parser.add_argument("--max_test", type=int, default=1000)
  args = parser.parse_args()
  started = time.perf_counter()
  config_argument, c_grid = args.config, None
  if args.small:
    config_argument += ",smoke" if ":" in config_argument else ":smoke"
    args.max_train, args.max_test, c_grid = min(args.max_train, 108), min(args.max_test, 54), (1.0,)
  name = config_runs.tag(config_argument)
  workdir = args.workdir or pathlib.Path("workdirs") / f"transfer_runs-{name}"
  results = [run_seed(config_argument, seed, workdir / f"seed{seed}", args.data_dir, max_train=args.max_train,
                      max_test=args.max_test, c_grid=c_grid) for seed in range(args.seeds)]
  summary = summarise(results)
  reading = config_runs.sag_vicreg_reading(config_argument)
  result = {"config": config_argument, "seeds": list(range(args.seeds)), "method": results[0]["method"],
            **({} if reading is None else {"sag_vicreg_reading": reading}), "backbone": results[0]["backbone"],
            "settings": results[0]["settings"], "summary": summary,
            "runs": [{key: value for key, value in run.items() if key != "workdir"} for run in results]}
  title = f"{config_argument}: {len(results)} seeds, linear probe (mean ± std)"
  _common.write_results(f"transfer_runs-{name}", args.output_dir, result, figure(summary, title), small=args.small,
                        started=started)


if __name__ == "__main__":
  main()
