"""The end-of-run report: report.md with the probe accuracies, its figures, and report.json.

It answers the first question about a pretraining run: did the encoder learn
anything? The same probes (kNN and linear, per label level) run on the
trained encoder and on its two controls, the same architecture at
initialisation and the input pixels; the report puts them side by side with
the training curves. The gain is over the better control: on a dataset
whose pixels already separate the classes (digits), beating the untrained
network says nothing.
"""

from __future__ import annotations

import json
import pathlib

import ml_collections

REPORT_FILE = "report.md"
# The report's numbers, for results files that cite a run (experiments/RESULTS.md).
REPORT_JSON = "report.json"
# The encoders a report compares, in the order of its bars.
_ENCODERS = (("pixels", "input pixels"), ("initial", "initialisation"), ("trained", "trained"))
CURVES_FIGURE = "report_training.png"
# The kNN monitor's label-free spectra of the encoder (`evaluation.SpectrumMonitor`), as the report names them.
_MONITOR_SPECTRA = {"knn/rankme": "RankMe (effective rank) of its features",
                    "knn/lidar": "LiDAR (LDA rank over augmented views) of its first images"}
ACCURACY_FIGURE = "report_accuracy.png"


def _pyplot():
  """matplotlib's pyplot on the file-only Agg backend.

  Imported when a report draws: the second it takes to import is start-up
  time that a run without a report (`eval.report=False`) does not pay.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _plot_curves(records: list[dict], path: pathlib.Path) -> None:
  plt = _pyplot()
  panels = [("loss", [k for k in records[0] if k == "loss" or k.startswith("loss/")]),
            ("embedding std (mean over dimensions)", ["embedding/std"]),
            ("embedding effective rank", ["embedding/effective_rank"]),
            ("online probe and kNN accuracy", ["probe/accuracy", "knn_accuracy"]),
            ("kNN monitor: RankMe and LiDAR", list(_MONITOR_SPECTRA)),
            ("learning rate", ["lr"])]
  figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2))
  for axis, (title, keys) in zip(axes, panels):
    for key in keys:
      points = [(r["step"], r[key]) for r in records if key in r]
      if points:
        axis.plot(*zip(*points), label=key, marker="." if len(points) < 30 else None)
    axis.set_title(title)
    axis.set_xlabel("step")
    if axis.lines:
      axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def _monitor_lines(records: list[dict]) -> list[str]:
  """The report's lines on the last kNN monitor: its accuracy, RankMe and LiDAR (none if it never ran)."""
  evaluated = [r for r in records if any(key in r for key in ("knn_accuracy", *_MONITOR_SPECTRA))]
  if not evaluated:
    return []
  last = evaluated[-1]
  lines = ["", f"kNN monitor at step {last['step']}, its last evaluation:", ""]
  if "knn_accuracy" in last:
    lines.append(f"- kNN accuracy: {last['knn_accuracy']:.4g}")
  lines += [f"- {label}: {last[key]:.4g}" for key, label in _MONITOR_SPECTRA.items() if key in last]
  return lines


def _plot_accuracies(results: dict, path: pathlib.Path) -> None:
  plt = _pyplot()
  probes = list(results["trained"])
  levels = list(results["trained"][probes[0]])
  encoders = [(name, label) for name, label in _ENCODERS if name in results]
  width = 0.8 / len(encoders)
  figure, axes = plt.subplots(1, len(probes), figsize=(4.5 * len(probes), 3.2), squeeze=False)
  for axis, probe in zip(axes[0], probes):
    positions = range(len(levels))
    for index, (name, label) in enumerate(encoders):
      offset = (index - (len(encoders) - 1) / 2) * width
      if probe in results[name]:
        axis.bar([p + offset for p in positions], [results[name][probe][level] for level in levels], width,
                 label=label, color=f"C{index}")
    axis.set_xticks(list(positions), levels, fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_title(f"{probe} probe accuracy")
    axis.legend(fontsize=7)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def _head(config: ml_collections.ConfigDict) -> str:
  """The method's head on the backbone, in the report's header: MAE's decoder, I-JEPA's predictor, the MLP."""
  section = config.method[config.method.name.removesuffix("+tregs")]

  def sizes(prefix: str) -> str:
    return (f"{section[f'{prefix}_width']} wide, {section[f'{prefix}_depth']} blocks, "
            f"{section[f'{prefix}_heads']} heads")

  if "decoder_width" in section:
    return f"decoder {sizes('decoder')}"
  if "predictor_width" in section:
    return f"predictor {sizes('predictor')}"
  if "text_width" in section:
    return f"projector `{config.model.projector}`, text transformer {sizes('text')}"
  return f"projector `{config.model.projector}`"


def write_report(workdir: str | pathlib.Path, config: ml_collections.ConfigDict, results: dict,
                 records: list[dict]) -> pathlib.Path:
  """Write report.md (and its figures) and report.json in `workdir`; returns report.md's path.

  The accuracy figure is always drawn; the training-curves figure and the final-metrics list only when
  `records` is not empty.

  Args:
    workdir: the run's directory; the files are written there (it must exist).
    config: the run config; reads `method.name` and its head's sizes, `data.name`, `model.backbone`, `model.projector`,
      `train.global_batch_size`, `seed` and `eval.knn_k` for the report's header.
    results: {"trained": {probe: {level: accuracy}}, "initial": {...}, "pixels": {...}}, with the same
      probes and levels in each, but `zero_shot` (CLIP), which the pixels lack.
    records: the logged metrics (`monitor.read_metrics`), one dict per step in step order; may be empty.

  Returns:
    The path of the written report.md.
  """
  workdir = pathlib.Path(workdir)
  steps = records[-1]["step"] if records else 0
  lines = [
      f"# Pretraining report: {config.method.name} on {config.data.name}",
      "",
      f"Backbone `{config.model.backbone}`, {_head(config)}, global batch "
      f"{config.train.global_batch_size}, {steps} steps, seed {config.seed}.",
      "",
      "Accuracy on the test split of probes on frozen backbone features: kNN (k = "
      f"{config.eval.knn_k}, cosine, weighted) and a linear probe (multinomial logistic regression). "
      "The controls are the input pixels (each image flattened) and the same architecture at initialisation; "
      "the gain is over the better of the two." + (
          " The zero-shot probe (CLIP) predicts the class whose caption prompts lie nearest in the joint space; "
          "the pixels have no text side, so its gain is over initialisation." if "zero_shot" in results["trained"]
          else ""),
      "",
      "| probe | label level | pixels | initialisation | trained | gain over the better control |",
      "| --- | --- | --- | --- | --- | --- |",
  ]
  for probe, by_level in results["trained"].items():
    for level, accuracy in by_level.items():
      initial = results["initial"][probe][level]
      pixels = results["pixels"].get(probe, {}).get(level)  # none for zero-shot: pixels have no text side
      lines.append(f"| {probe} | {level} | {'n/a' if pixels is None else f'{pixels:.3f}'} | {initial:.3f} | "
                   f"{accuracy:.3f} | {accuracy - max(initial, -1.0 if pixels is None else pixels):+.3f} |")
  if records:
    last = records[-1]
    lines += ["", "Final training metrics:", ""]
    lines += [f"- {key}: {value:.4g}" for key, value in last.items() if key != "step"]
    lines += _monitor_lines(records)
    _plot_curves(records, workdir / CURVES_FIGURE)
    lines += ["", f"![training curves]({CURVES_FIGURE})"]
  _plot_accuracies(results, workdir / ACCURACY_FIGURE)
  lines += ["", f"![probe accuracies]({ACCURACY_FIGURE})", ""]
  path = workdir / REPORT_FILE
  path.write_text("\n".join(lines))
  numbers = {"method": config.method.name, "dataset": config.data.name, "backbone": config.model.backbone,
             "steps": steps, "seed": config.seed, "accuracy": results,
             "final_metrics": {k: v for k, v in records[-1].items() if k != "step"} if records else {}}
  (workdir / REPORT_JSON).write_text(json.dumps(numbers, indent=1) + "\n")
  return path
