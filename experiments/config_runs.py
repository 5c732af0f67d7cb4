"""A config file's launch command, run with several seeds: what its report.md shows, with mean and spread.

  python -m experiments.config_runs --config configs/sag_vicreg.py:shapes --seeds 3 --data_dir DIR
  python -m experiments.config_runs --config configs/vicreg.py --small          # seconds; for the tests

Each seed trains `python -m jax_ssl.main --config <config> --config.seed=<seed>`
into `<workdir>/seed<seed>` (resumed if it stopped, skipped if its report
exists) and leaves the run's report.json there: kNN and linear probe
accuracy per label level for the trained encoder and its two controls, the
same network at initialisation and the input pixels (and CLIP's zero-shot
accuracy, trained and at initialisation). Writes
experiments/results/config_runs-<config>.json (every seed's numbers, and the
mean and standard deviation over the seeds) and a figure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import matplotlib.pyplot as plt

from experiments import _common
from experiments import _pretraining
from jax_ssl import protocols
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train import report

ENCODERS = ("pixels", "initial", "trained")


def tag(config_argument: str) -> str:
  """`configs/sag_vicreg.py:shapes` -> `sag_vicreg-shapes`: the results file's name."""
  path, _, arg = config_argument.partition(":")
  return pathlib.Path(path).stem + (f"-{arg.replace(',', '-')}" if arg else "")


def run_seed(config_argument: str, seed: int, run_dir: pathlib.Path, data_dir: str | None) -> dict:
  """The report.json of the config trained with `seed` in `run_dir` (trained or resumed if it has none yet)."""
  numbers = run_dir / report.REPORT_JSON
  if not numbers.exists():
    config = protocols.load_config_file(config_argument)
    config.seed = seed
    config.eval.report = True
    if data_dir:
      config.data.data_dir = data_dir
    config_lib.validate(config, num_devices=jax.device_count())
    loop.require_completed(loop.train(config, run_dir))
  return json.loads(numbers.read_text())


def sag_vicreg_reading(config_argument: str) -> dict | None:
  """The SAG-VICReg reading (graph, scale_over, regularize) the config trains with; None for another method."""
  return _common.sag_vicreg_reading(protocols.load_config_file(config_argument))


def summarise(reports: list[dict]) -> dict:
  """`{encoder: {probe: {level: {"mean", "std" (ddof 1), "values"}}}}` over the seeds' reports."""
  summary = {}
  for encoder in ENCODERS:
    for probe, by_level in reports[0]["accuracy"][encoder].items():
      for level in by_level:
        values = [r["accuracy"][encoder][probe][level] for r in reports]
        spread = _pretraining.mean_std(values)
        summary.setdefault(encoder, {}).setdefault(probe, {})[level] = {
            "mean": spread["mean"], "std": spread["std"], "values": values}
  return summary


def figure(summary: dict, title: str):
  probes = list(summary["trained"])
  levels = list(summary["trained"][probes[0]])
  fig, axes = plt.subplots(1, len(probes), figsize=(4.5 * len(probes), 3.2), squeeze=False)
  width = 0.8 / len(ENCODERS)
  for axis, probe in zip(axes[0], probes):
    for index, encoder in enumerate(ENCODERS):
      if probe not in summary[encoder]:  # CLIP's zero-shot probe has no pixels control
        continue
      cells = [summary[encoder][probe][level] for level in levels]
      positions = [p + (index - 1) * width for p in range(len(levels))]
      axis.bar(positions, [c["mean"] for c in cells], width, yerr=[c["std"] for c in cells], label=encoder,
               color=f"C{index}")  # one colour per encoder in every panel, with or without the pixels
    axis.set_xticks(range(len(levels)), levels, fontsize=8)
    axis.set_title(f"{probe} probe accuracy")
    axis.legend(fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def add_seed_flags(parser: argparse.ArgumentParser, script: str) -> None:
  """The flags of a script that trains a config with several seeds: `--config`, `--seeds`, `--workdir`,
  `--data_dir`, and `--small`/`--output_dir` (`_common.add_output_flags`)."""
  _common.add_output_flags(parser)
  parser.add_argument("--config", required=True, help="configs/<x>.py[:arg], as for jax_ssl.main")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help=f"where the runs go (default: workdirs/{script}-<config>)")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: the config's)")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_seed_flags(parser, "config_runs")
  parser.add_argument("--from_results", action="store_true",
                      help="summarise the seeds' reports the results JSON already holds, without training")
  args = parser.parse_args()
  started = time.perf_counter()
  config_argument = args.config
  if args.small:
    config_argument += ",smoke" if ":" in config_argument else ":smoke"
  name = tag(config_argument)
  workdir = args.workdir or pathlib.Path("workdirs") / f"config_runs-{name}"
  if args.from_results:
    published = json.loads((args.output_dir / "results" / f"config_runs-{name}.json").read_text())
    reports = [report for report in published["reports"] if report["seed"] in range(args.seeds)]
  else:
    reports = [run_seed(config_argument, seed, workdir / f"seed{seed}", args.data_dir) for seed in range(args.seeds)]
  summary = summarise(reports)
  provenance = {}
  if args.from_results:  # when, where and from which commit the seeds trained, not this summary's
    provenance = {"trained": published.get("trained") or {
        key: published[key] for key in ("date", "run_time_s", "machine", "commit", "commit_dirty",
                                        "commit_of_results") if key in published}}
  reading = sag_vicreg_reading(config_argument)
  result = {**provenance, "config": config_argument, "seeds": list(range(args.seeds)),
            "method": reports[0]["method"], **({} if reading is None else {"sag_vicreg_reading": reading}),
            "dataset": reports[0]["dataset"], "backbone": reports[0]["backbone"],
            "steps": reports[0]["steps"], "accuracy": summary, "reports": reports}
  title = f"{config_argument}: {len(reports)} seeds, {reports[0]['steps']} steps (mean ± std)"
  _common.write_results(f"config_runs-{name}", args.output_dir, result, figure(summary, title), small=args.small,
                        started=started)


if __name__ == "__main__":
  main()
