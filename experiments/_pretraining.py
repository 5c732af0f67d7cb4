"""Pretrain, evaluate with controls, run the two-model protocol: what compare_methods and sag_vicreg_readings share.

A *variant* is a config file of configs/ plus overrides (for example
configs/sag_vicreg.py with `method.sag_vicreg.graph = "same_view"`). For each dataset,
variant and seed a *run* trains on all classes and evaluates the encoder
(kNN and linear probes and the Rand index per label level, the structure
against the pixels), runs the two-model protocol (models A and B on the two
halves of the classes, B from another initialisation), and reads the pairing
statistics of its training from metrics.jsonl. The *controls* (the same
architecture at initialisation, and the input pixels) go through the same
evaluation code for every dataset and seed: every table carries them.

Every finished run writes `<workdir>/runs/<dataset>/<config>-<hash>/seed<k>.json`
(the hash covers the declared variant and the evaluation, so two scripts that
share a workdir share the same runs). A rerun skips finished runs, and
several workers (`--worker i --num_workers n`) can share a workdir, each
taking every n-th job; the results JSON is assembled from the runs done.

A workdir is machine-local; the results JSON is what lands. With
`--keep_published` a run that a published results JSON already holds, under the
same declaration (config file, overrides, scale, features, two-model protocol),
is taken from it instead of being trained again, so that a grid of many hours can
be finished over several sessions. Each run records the commit it trained on,
the results JSON the commit that wrote it, and each SAG-VICReg variant its reading.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence

import jax
import ml_collections
import numpy as np

from experiments import _common
from jax_ssl import methods
from jax_ssl import protocols
from jax_ssl.data import catalog
from jax_ssl.data import sources
from jax_ssl.eval import scores
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train import monitor

REPO = _common.REPO_ROOT

# What changes with the scale: backbone, view size, steps, and how much is evaluated.
SCALES = {
    "cpu": dict(backbone="small_cnn", width=16, size=16, local_size=8, batch=128, steps=3000, max_train=2000,
                max_items=500, probe_epochs=30),
    "gpu": dict(backbone="resnet18", width=32, size=32, local_size=16, batch=256, steps=8000, max_train=5000,
                max_items=1000, probe_epochs=50),
    # The tests' scale. Host-fed: the two halves then train the same program (on the devices, each half's
    # split is another input shape, so another compilation).
    "small": dict(backbone="small_cnn", width=4, size=8, local_size=8, batch=16, steps=2, max_train=400,
                  max_items=40, probe_epochs=2, host_fed=True),
}
SCORES = ("knn", "linear", "rand_index")
STRUCTURE = scores.STRUCTURE_KEYS
TWO_MODEL = ("a_vs_b", "a_vs_pixels", "b_vs_pixels")
CONTROLS = ("untrained", "pixels")
FEATURES = ("backbone", "projector")
# Logged training metrics summarised per run: SAG-VICReg's pairing, the embedding's health, and the
# terms of a base loss plus T-REG (how far the add-on outweighs the base).
TRAINING_METRICS = ("loss/self_pair_rate", "loss/pair_weight", "embedding/std", "embedding/effective_rank",
                    "probe/accuracy", "loss/regression", "loss/t_reg")


@dataclasses.dataclass(frozen=True)
class Variant:
  """A config file of configs/ with `overrides` applied: ((dotted key, value), ...)."""

  name: str
  config_file: str
  overrides: tuple[tuple[str, object], ...] = ()


def variant_config(variant: Variant, dataset: str, seed: int, scale: dict, data_dir: str) -> ml_collections.ConfigDict:
  """The variant's config moved to `dataset` and the scale: backbone, views, steps; no end-of-run report."""
  config = protocols.load_config_file(str(REPO / "configs" / variant.config_file))
  config.seed = seed
  config.data.update(name=dataset, data_dir=data_dir)
  config.views.update(size=scale["size"], local_size=min(scale["local_size"], scale["size"]))
  config.model.update(backbone=scale["backbone"], width=scale["width"])
  config.train.update(global_batch_size=scale["batch"], num_steps=scale["steps"],
                      log_every=max(scale["steps"] // 50, 1), checkpoint_every=max(scale["steps"] // 4, 1),
                      eval_every=0, keep_checkpoints=1)
  for name in methods.METHODS:
    if "num_slices" in config.method[name]:
      config.method[name].num_slices = min(config.method[name].num_slices, 256)
  config.optim.warmup_epochs = min(config.optim.warmup_epochs, 1.0)
  config.eval.report = False
  if scale.get("host_fed"):
    config.data.update(on_device="false", worker_count=0)
  for key, value in variant.overrides:
    *sections, field = key.split(".")
    node = config
    for section in sections:
      node = node[section]
    node[field] = value
  return config


# A method hyperparameter's key before each method had its own config section: run identities keep
# hashing the old spelling, so the runs finished before the change stay found.
_IDENTITY_KEYS = {f"method.{new}": f"method.{old}"
                  for old, news in config_lib.LEGACY_METHOD_KEYS.items() for new in news}


def _run_key(variant: Variant, scale: dict, features: Sequence[str], two_model: bool) -> str:
  """A hash of what a run is declared to be: config file, overrides, scale and evaluation (not its name or seed).

  Two scripts sharing a workdir share the runs of the same declared variant
  (compare_methods takes VICReg and the default SAG-VICReg reading from the
  readings experiment). A declared variant means the same thing only as long
  as the code does: a new workdir for a new version of the library.
  """
  overrides = sorted((_IDENTITY_KEYS.get(key, key), value) for key, value in variant.overrides)
  identity = {"config_file": variant.config_file, "overrides": overrides, "scale": scale,
              "features": list(features)}
  if not two_model:
    identity["two_model"] = False
  return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _json_ready(result: dict) -> dict:
  return {key: value for key, value in result.items() if not isinstance(value, np.ndarray)}


def _scores(evaluation: dict) -> dict:
  return {score: evaluation[score] for score in (*SCORES, "structure_to_inputs")}


def training_statistics(workdir: pathlib.Path) -> dict:
  """Mean, first and last value over the logged steps of `TRAINING_METRICS`, and their series."""
  records = monitor.read_metrics(workdir)
  stats = {}
  for key in TRAINING_METRICS:
    points = [(r["step"], r[key]) for r in records if key in r]
    if points:
      steps, values = zip(*points)
      stats[key] = {"mean": float(np.mean(values)), "first": float(values[0]), "last": float(values[-1]),
                    "steps": list(steps), "values": [float(v) for v in values]}
  return stats


def run_variant(variant: Variant, dataset: str, seed: int, scale: dict, data_dir: str, run_dir: pathlib.Path,
                features: Sequence[str], two_model: bool = True) -> dict:
  """Train the variant on all classes (and, with `two_model`, on each half), evaluate with each `features` output."""
  config = variant_config(variant, dataset, seed, scale, data_dir)
  config_lib.validate(config, num_devices=jax.device_count())
  # A preempted run returns with its checkpoint: evaluating it would publish a half-trained model.
  loop.require_completed(loop.train(config, run_dir / "all_classes"))
  result = {"seed": seed, "training": training_statistics(run_dir / "all_classes")}
  for output in features:
    evaluation = protocols.evaluate_checkpoint(run_dir / "all_classes", dataset, data_dir=data_dir,
                                               max_train=scale["max_train"], max_items=scale["max_items"],
                                               probe_epochs=scale["probe_epochs"], seed=seed, output=output)
    result[output] = _scores(evaluation)
    if two_model:
      two_models = protocols.generalization(config, run_dir / "halves", max_items=scale["max_items"], seed=seed,
                                            output=output)
      result[output]["generalization"] = {key: two_models[key] for key in TWO_MODEL}
  return result


def run_controls(reference: Variant, dataset: str, seed: int, scale: dict, data_dir: str,
                 features: Sequence[str], two_model: bool = True) -> dict:
  """The untrained encoder (the reference variant's architecture at initialisation) and the pixels."""
  from jax_ssl.train.encoder import initial_encoder
  config = variant_config(reference, dataset, seed, scale, data_dir)
  evaluate = dict(data_dir=data_dir, max_train=scale["max_train"], max_items=scale["max_items"],
                  knn_k=config.eval.knn_k, knn_temperature=config.eval.knn_temperature,
                  probe_epochs=scale["probe_epochs"], seed=seed)
  result = {"seed": seed}
  pixel_scores = _scores(scores.evaluate_embedding(scores.pixels, dataset, **evaluate))
  for output in features:
    untrained = _scores(scores.evaluate_embedding(initial_encoder(config, output), dataset, **evaluate))
    result[output] = {"untrained": untrained, "pixels": dict(pixel_scores)}
    if two_model:
      two_models = protocols.untrained_generalization(config, max_items=scale["max_items"], seed=seed, output=output)
      for control in CONTROLS:
        result[output][control]["generalization"] = two_models[control]
  return result


def _commit() -> str | None:
  """The repository's commit (12 digits), with "+changes" when tracked files differ from it; None outside git."""
  found = _common.git_commit()
  if found["commit"] is None:
    return None
  return found["commit"][:12] + ("+changes" if found["commit_dirty"] else "")


mean_std = _common.mean_std  # {mean, std (ddof = 1; 0 for one value), n}: how every summary of these scripts reads


def summarise(entries: list[dict]) -> dict:
  """Mean and standard deviation (ddof = 1) over seeds of every score of `entries` (one features output each)."""
  summary = {score: {level: mean_std([e[score][level] for e in entries]) for level in entries[0][score]}
             for score in SCORES}
  if "generalization" in entries[0]:
    summary["generalization"] = {
        part: {key: mean_std([e["generalization"][part][key] for e in entries]) for key in STRUCTURE}
        for part in TWO_MODEL}
  if entries[0].get("structure_to_inputs"):
    summary["structure_to_inputs"] = {key: mean_std([e["structure_to_inputs"][key] for e in entries])
                                      for key in STRUCTURE}
  return summary


def summarise_training(runs: list[dict]) -> dict:
  keys = set.intersection(*(set(run["training"]) for run in runs))
  return {key: {"mean_over_training": mean_std([run["training"][key]["mean"] for run in runs]),
                "last": mean_std([run["training"][key]["last"] for run in runs])} for key in sorted(keys)}


@dataclasses.dataclass
class Experiment:
  """The jobs of one script: variants (the first one's architecture is the controls'), datasets, seeds."""

  name: str
  variants: Sequence[Variant]
  datasets: Sequence[str]
  seeds: int
  scale_name: str
  scale: dict
  data_dir: str
  workdir: pathlib.Path
  features: Sequence[str]
  output_dir: pathlib.Path
  two_model: bool = True

  @property
  def results_name(self) -> str:
    from experiments.bench.losses import device_name
    device = device_name()
    return self.name + ("" if self.scale_name == "cpu" else f"-{self.scale_name}") + (
        "" if device == "cpu" else f"-{device}")

  def jobs(self) -> list[tuple[str, str, int]]:
    """(dataset, variant name or "controls", seed): the controls, then variant by variant in the given order."""
    jobs = [(d, "controls", s) for d in self.datasets for s in range(self.seeds)]
    return jobs + [(d, v.name, s) for v in self.variants for d in self.datasets for s in range(self.seeds)]

  def run_file(self, dataset: str, name: str, seed: int) -> pathlib.Path:
    variant = self.variants[0] if name == "controls" else next(v for v in self.variants if v.name == name)
    tag = "controls" if name == "controls" else variant.config_file.removesuffix(".py")
    key = _run_key(variant, self.scale, self.features, self.two_model)
    return self.workdir / "runs" / dataset / f"{tag}-{key}" / f"seed{seed}.json"

  def run_job(self, dataset: str, name: str, seed: int) -> None:
    path = self.run_file(dataset, name, seed)
    if path.exists():
      return
    started = time.monotonic()
    if name == "controls":
      result = run_controls(self.variants[0], dataset, seed, self.scale, self.data_dir, self.features,
                            self.two_model)
    else:
      variant = next(v for v in self.variants if v.name == name)
      result = run_variant(variant, dataset, seed, self.scale, self.data_dir, path.parent / f"seed{seed}",
                           self.features, self.two_model)
    result["wall_s"] = time.monotonic() - started
    result["commit"] = _commit()
    write_json(path, result)
    print(f"{dataset} {name} seed {seed}: done in {result['wall_s']:.0f} s", flush=True)

  def collect(self) -> dict:
    """{dataset: {"controls": ..., "variants": {name: ...}}} over the runs finished so far."""
    results = {}
    for dataset in self.datasets:
      entry = {"controls": {}, "variants": {}}
      controls = [json.loads(p.read_text()) for s in range(self.seeds)
                  if (p := self.run_file(dataset, "controls", s)).exists()]
      if controls:
        entry["controls"] = {"runs": controls, "summary": {
            output: {control: summarise([run[output][control] for run in controls]) for control in CONTROLS}
            for output in self.features}}
      for variant in self.variants:
        runs = [json.loads(p.read_text()) for s in range(self.seeds)
                if (p := self.run_file(dataset, variant.name, s)).exists()]
        if runs:
          entry["variants"][variant.name] = {
              "config_file": variant.config_file, "overrides": dict(variant.overrides), "runs": runs,
              "summary": {output: summarise([run[output] for run in runs]) for output in self.features},
              "training": summarise_training(runs)}
      results[dataset] = entry
    return results

  def complete(self) -> bool:
    return all(self.run_file(*job).exists() for job in self.jobs())

  @property
  def results_path(self) -> pathlib.Path:
    return self.output_dir / "results" / f"{self.results_name}.json"

  def keep_published(self) -> int:
    """Writes into the workdir every job's run that published results hold; returns how many it wrote.

    Every results JSON of `output_dir/results` written by this module is read,
    this experiment's first. A published run is this experiment's run when its
    declaration hashes to the same key (`_run_key`): the same config file and
    overrides, scale, features and two-model protocol, whatever the variant's
    name or the script (compare_methods takes VICReg, the default SAG-VICReg
    reading and the controls from sag_vicreg_readings). Runs already in the
    workdir stay as they are.
    """
    others = sorted(p for p in self.results_path.parent.glob("*.json") if p != self.results_path)
    published = {}  # (dataset, run key, seed) -> run
    for path in (self.results_path, *others):
      if path.exists():
        for found, run in _published_runs(json.loads(path.read_text())).items():
          published.setdefault(found, run)
    written = 0
    for dataset, name, seed in self.jobs():
      path = self.run_file(dataset, name, seed)
      variant = self.variants[0] if name == "controls" else next(v for v in self.variants if v.name == name)
      run = published.get((dataset, name == "controls", _run_key(variant, self.scale, self.features, self.two_model),
                           seed))
      if run is not None and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(run, indent=1) + "\n")
        written += 1
    return written


def _published_runs(published: dict) -> dict:
  """{(dataset, is the controls, run key, seed): run} of a results JSON that `write_results` wrote."""
  if not all(key in published for key in ("variants", "scale", "features", "results")) or not published["variants"]:
    return {}
  # Before the JSON said so, the protocol's text told whether the halves were trained.
  two_model = published.get("two_model", "two-model protocol" in published.get("protocol", ""))
  declared = {name: Variant(name, v["config_file"], tuple(v["overrides"].items()))
              for name, v in published["variants"].items()}
  keys = {name: _run_key(v, published["scale"], published["features"], two_model) for name, v in declared.items()}
  controls_key = keys[next(iter(declared))]  # the controls are those of the first variant
  runs = {}
  for dataset, entry in published["results"].items():
    for run in entry.get("controls", {}).get("runs", []):
      runs[dataset, True, controls_key, run["seed"]] = run
    for name, variant_entry in entry.get("variants", {}).items():
      for run in variant_entry["runs"]:
        runs[dataset, False, keys[name], run["seed"]] = run
  return runs


def add_flags(parser: argparse.ArgumentParser, default_seeds: int = 3) -> None:
  """The flags of every script built on this module."""
  parser.add_argument("--scale", choices=("cpu", "gpu"), default="cpu")
  parser.add_argument("--small", action="store_true", help="tiny runs (seconds), for the tests")
  parser.add_argument("--datasets", default="digits,shapes")
  parser.add_argument("--seeds", type=int, default=default_seeds)
  parser.add_argument("--steps", type=int, default=None, help="override the scale's training steps")
  parser.add_argument("--features", default=",".join(FEATURES),
                      help="evaluate backbone features, projector embeddings (the paper's), or both")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help="runs go here; a rerun with the same workdir skips finished runs")
  parser.add_argument("--worker", type=int, default=0, help="this worker's index, for parallel workers")
  parser.add_argument("--num_workers", type=int, default=1, help="workers sharing --workdir; each takes every n-th job")
  parser.add_argument("--collect_only", action="store_true", help="write the results of the finished runs and stop")
  parser.add_argument("--keep_published", action="store_true",
                      help="take the runs that published results JSONs already hold (same declaration) instead "
                           "of training them again")
  parser.add_argument("--output_dir", type=pathlib.Path, default=None,
                      help="write DIR/results and DIR/figures (default: experiments/)")


def add_variants_flag(parser: argparse.ArgumentParser, variants: Sequence[Variant],
                      description: str = "a subset, comma-separated") -> None:
  """`--variants`: a comma-separated subset of the script's declared variants (default: all)."""
  parser.add_argument("--variants", default=",".join(v.name for v in variants), help=description)


def chosen_variants(args, variants: Sequence[Variant], parser) -> list[Variant]:
  """The variants `--variants` names, in the order given; a parser error names the known ones."""
  known = {v.name: v for v in variants}
  names = [n for n in args.variants.split(",") if n]
  if not names or set(names) - set(known):
    parser.error(f"--variants takes some of {', '.join(known)}")
  return [known[n] for n in names]


def experiment_from_flags(name: str, args, variants: Sequence[Variant], parser, *, two_model: bool = True,
                          steps: int | None = None) -> Experiment:
  """The experiment the flags describe.

  `two_model=False` skips the halves; `steps` replaces the scale's (not under --small).
  """
  features = [f for f in args.features.split(",") if f]
  if not features or set(features) - set(FEATURES):
    parser.error(f"--features takes {' or '.join(FEATURES)} (comma-separated)")
  if not 0 <= args.worker < args.num_workers:
    parser.error("--worker must lie in [0, --num_workers)")
  scale_name = "small" if args.small else args.scale
  scale = dict(SCALES[scale_name])
  if steps and scale_name != "small":
    scale["steps"] = steps
  if args.steps:
    scale["steps"] = args.steps
  workdir = args.workdir or pathlib.Path(os.path.expanduser("~")) / "jax_ssl_experiments" / name
  data_dir = str(args.data_dir or workdir / "data")
  datasets = [d for d in args.datasets.split(",") if d]
  for dataset in datasets:
    if catalog.get_spec(dataset).bundled:
      sources.prepare(dataset, data_dir)
  # The persistent compilation cache: the halves and the seeds of a variant compile the same step.
  # A cache the caller already chose (the test suite's, shared by all its runs) is kept, with its threshold.
  cache = os.environ.get("JAX_COMPILATION_CACHE_DIR", str(workdir / "jax_cache"))
  jax.config.update("jax_compilation_cache_dir", cache)
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  return Experiment(name, variants, datasets, args.seeds, scale_name, scale, data_dir, workdir, features,
                    args.output_dir or REPO / "experiments", two_model)


def run(experiment: Experiment, args) -> None:
  """This worker's jobs, writing the collected results after each; figures and tables when everything is done."""
  started = time.monotonic()
  if args.keep_published:
    print(f"kept {experiment.keep_published()} runs from {experiment.results_path.parent}/*.json", flush=True)
  if not args.collect_only:
    for index, job in enumerate(experiment.jobs()):
      if index % args.num_workers == args.worker:
        try:
          experiment.run_job(*job)
        except loop.TrainingStoppedError as error:
          write_results(experiment, final=False)
          sys.exit(f"{job[0]} {job[1]} seed {job[2]}: {error}")
        write_results(experiment, final=False)
  complete = experiment.complete()
  write_results(experiment, final=complete)
  print(f"{'all runs done' if complete else 'some runs are still missing'} ({time.monotonic() - started:.0f} s)")


def write_results(experiment: Experiment, final: bool) -> None:
  """`results/<name>.json` from the runs done so far; with `final`, a figure per features output and the tables."""
  results = experiment.collect()
  data = {
      "experiment": experiment.name, "command": _common.reproducing_command(),
      "invoked_as": _common.command_line(), **_common.git_commit(),
      "date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": _common.machine_info(),
      "scale_name": experiment.scale_name, "scale": experiment.scale, "seeds": experiment.seeds,
      "features": list(experiment.features), "two_model": experiment.two_model, "complete": experiment.complete(),
      "protocol": "per run: train on all classes, probes and Rand index per level on the test split, structure "
                  "against the pixels" + ("; two-model protocol on the two halves of the classes (model B from "
                                          "seed + 1)" if experiment.two_model else "") +
                  ". Controls: the first variant's architecture at initialisation, and the input pixels.",
      "variants": {v.name: _declaration(experiment, v) for v in experiment.variants},
      "results": results,
  }
  write_json(experiment.results_path, data)
  if final:
    for output in experiment.features:
      figure(results, output, experiment.output_dir / "figures" / f"{experiment.results_name}-{output}.png")
      print(markdown_tables(results, output))


def _declaration(experiment: Experiment, variant: Variant) -> dict:
  """A variant as the results JSON declares it: config file and overrides, and its SAG-VICReg reading if it has one."""
  declared = {"config_file": variant.config_file, "overrides": dict(variant.overrides)}
  config = variant_config(variant, experiment.datasets[0], 0, experiment.scale, experiment.data_dir)
  reading = _common.sag_vicreg_reading(config)
  return declared if reading is None else {**declared, "sag_vicreg_reading": reading}


def write_json(path: pathlib.Path, data: dict) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_suffix(".tmp")
  temporary.write_text(json.dumps(_common._jsonable(data), indent=1, allow_nan=False) + "\n")
  temporary.replace(path)


def _number(value) -> float:
  """A score as read back from JSON, where null stands for undefined (NaN)."""
  return math.nan if value is None else float(value)


def _cell(entry: dict) -> str:
  # A score undefined for some seed (NaN in memory, null once written) has no mean over the seeds.
  if entry["mean"] is None or not math.isfinite(entry["mean"]):
    return "undefined"
  return f"{entry['mean']:.3f} ± {entry['std']:.3f}" if entry["n"] > 1 else f"{entry['mean']:.3f}"


def markdown_tables(results: dict, output: str, levels_shown: int = 3) -> str:
  """Per dataset: probes and Rand index per level, then the two-model protocol, controls as rows."""
  lines = []
  for dataset, entry in results.items():
    rows = {name: v["summary"][output] for name, v in entry["variants"].items()}
    if entry["controls"]:
      rows.update({f"({control})": entry["controls"]["summary"][output][control] for control in CONTROLS})
    if not rows:
      continue
    levels = list(next(iter(rows.values()))["knn"])[:levels_shown]
    header = [f"{s} {lvl.replace('label_', '')}" for s in ("kNN", "linear", "Rand") for lvl in levels]
    lines += [f"**{dataset}**, {output} features: probes and Rand index per level (test split)", "",
              "| variant | " + " | ".join(header) + " |", "| --- |" + " --- |" * len(header)]
    for name, summary in rows.items():
      cells = [_cell(summary[s][lvl]) for s in SCORES for lvl in levels]
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if "generalization" not in next(iter(rows.values())):
      lines.append("")
      continue
    lines += ["", f"**{dataset}**, {output} features: two-model protocol (LCA Kendall tau-b, cophenetic d1->p2)", "",
              "| variant | A vs B LCA tau | A vs B coph | A vs pixels LCA tau | B vs pixels LCA tau |",
              "| --- | --- | --- | --- | --- |"]
    for name, summary in rows.items():
      g = summary["generalization"]
      lines.append(f"| {name} | {_cell(g['a_vs_b']['lca_kendall'])} | {_cell(g['a_vs_b']['cophenetic_d1_to_p2'])} | "
                   f"{_cell(g['a_vs_pixels']['lca_kendall'])} | {_cell(g['b_vs_pixels']['lca_kendall'])} |")
    lines.append("")
  return "\n".join(lines)


def figure(results: dict, output: str, path: pathlib.Path) -> None:
  """Bars per dataset: kNN, linear and Rand index per level, and the two-model A-vs-B scores, controls hatched."""
  import matplotlib.pyplot as plt
  datasets = [d for d, e in results.items() if e["variants"]]
  if not datasets:
    return
  with_two_models = all("generalization" in v["summary"][output] for d in datasets
                        for v in results[d]["variants"].values())
  panels = (*SCORES, "generalization") if with_two_models else SCORES
  # One colour per variant or control in every panel, whichever of them a dataset has run.
  names = list(dict.fromkeys(name for d in datasets for name in results[d]["variants"])) + list(CONTROLS)
  colours = {name: f"C{index % 10}" for index, name in enumerate(names)}
  fig, axes = plt.subplots(len(datasets), len(panels), figsize=(4.4 * len(panels), 3.3 * len(datasets)),
                           squeeze=False)
  for row, dataset in enumerate(datasets):
    entry = results[dataset]
    rows = {name: (v["summary"][output], False) for name, v in entry["variants"].items()}
    if entry["controls"]:
      rows.update({control: (entry["controls"]["summary"][output][control], True) for control in CONTROLS})
    width = 0.8 / len(rows)
    for column, panel in enumerate(panels):
      axis = axes[row][column]
      first = next(iter(rows.values()))[0]
      keys = list(first[panel]) if panel != "generalization" else ["lca_kendall", "cophenetic_d1_to_p2"]
      positions = np.arange(len(keys))
      for index, (name, (summary, control)) in enumerate(rows.items()):
        values = summary[panel] if panel != "generalization" else summary["generalization"]["a_vs_b"]
        axis.bar(positions + (index - (len(rows) - 1) / 2) * width, [_number(values[k]["mean"]) for k in keys], width,
                 yerr=[_number(values[k]["std"]) for k in keys], capsize=2, label=name, color=colours[name],
                 hatch="//" if control else None,
                 edgecolor="black" if control else None, linewidth=0.3)
      axis.set_xticks(positions, [k.replace("label_", "").replace("cophenetic_", "coph ") for k in keys], fontsize=8)
      axis.set_title(f"{dataset}: {panel.replace('_', ' ')}" + (" A vs B" if panel == "generalization" else ""),
                     fontsize=9)
      axis.set_ylim(-0.2 if panel == "generalization" else 0, 1)
  # One legend beside the panels, naming every variant of every dataset: inside a panel it hides bars.
  handles = {}
  for axis in axes.flat:
    for handle, label in zip(*axis.get_legend_handles_labels()):
      handles.setdefault(label, handle)
  fig.legend(handles.values(), handles.keys(), fontsize=7, loc="center right")
  fig.suptitle(f"{output} features", fontsize=10)
  fig.tight_layout(rect=(0, 0, 0.88, 1))
  path.parent.mkdir(parents=True, exist_ok=True)
  _common.save_png(fig, path, dpi=90)
