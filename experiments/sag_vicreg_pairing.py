"""Whom does SAG-VICReg's walk pair each image with, and is it the same class? Tracked over training.

  python -m experiments.sag_vicreg_pairing           # digits, 3 seeds, 3000 steps per reading and seed
  python -m experiments.sag_vicreg_pairing --small    # seconds; for the tests

Each finished run (a reading and a seed) is kept as a JSON in `--workdir`, and a
rerun skips it. Workers (`--worker i --num_workers n`) sharing a workdir each
train every n-th run; the one that finds every run done writes the results.
`--keep_published` takes the runs that the published JSON holds under the same
setup instead of training them again.

sag_vicreg_readings left a question open: `cross_view_own+row` ends below its
initialisation, while `same_view+row` learns, though both draw the own pair for
1 image in 5 and give every drawn pair a weight of about 0.99. The two graphs
differ only in what picks the other 4 of the 5 partners: the 4 other images'
second views nearest to z1_i (cross_view_own), or the 4 other images whose
first views are nearest to z1_i (same_view), whose second views are then the
pairs (both by cosine distance, as the loss ranks them). The hypothesis
tested here: the cross-view neighbours are more often of another class, so 4
pulls in 5 teach the encoder to merge classes.

Each reading trains as in sag_vicreg_readings (configs/sag_vicreg.py at the
CPU scale). Every `--probe_every` steps, a fixed set of training images (with
fixed views, drawn by the run's own view recipe) is embedded by the current
network exactly as the loss sees it (projector outputs, BatchNorm in training
mode, one batch of the run's size at a time), and per batch:
  - `own_view_top1`: how often z2_i is the second view nearest to z1_i (by
    cosine distance, the graph's);
  - `partner_same_class`: how often a partner the reading's own walk draws
    (other than the own pair) has image i's label;
  - `cross_view_neighbours_same_class`, `same_view_neighbours_same_class`:
    the label agreement of every neighbour (the own pair left out) of the two
    graphs on the same embeddings, whatever the reading trains with;
  - `self_pair_rate`, as the loss logs it.
Writes experiments/results/sag_vicreg_pairing.json (each run's series, and the mean and std
over seeds of each statistic at the first and last probe) and a figure.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import tempfile
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

from experiments import _common
from experiments import _pretraining
from experiments import sag_vicreg_readings
from jax_ssl import ops
from jax_ssl.data import sources
from jax_ssl.data import views as views_lib
from jax_ssl.losses import sag_vicreg
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop

NAME = "sag_vicreg_pairing"
READINGS = {variant.name: variant for variant in sag_vicreg_readings.VARIANTS if variant.name != "vicreg"}
DEFAULT_READINGS = ("cross_view_own+row", "same_view+row", "cross_view_own", "same_view")
STATISTICS = ("own_view_top1", "partner_same_class", "cross_view_neighbours_same_class",
              "same_view_neighbours_same_class", "self_pair_rate")
# Walks drawn per probe batch: each image's partner is one categorical draw, so several draws
# average out the walk's own noise from the statistic.
WALKS_PER_BATCH = 16


def neighbour_agreement(affinity: np.ndarray, labels: np.ndarray) -> float:
  """Fraction of the graph's edges i -> j (j != i, affinity > 0) that join two images of one class."""
  edges = (affinity > 0) & ~np.eye(len(labels), dtype=bool)
  return float(np.sum(edges & (labels[:, None] == labels[None, :])) / np.sum(edges))


def pairing_statistics(key: jax.Array, z1: np.ndarray, z2: np.ndarray, labels: np.ndarray, method) -> dict:
  """The statistics of one batch of embeddings (see the module docstring) under `method`'s reading."""
  rows = np.arange(len(labels))
  graphs = {graph: np.asarray(sag_vicreg.walk_affinity(z1, z2, method.k, method.percentile, graph,
                                                       method.scale_over))
            for graph in dict.fromkeys(("cross_view_own", "same_view", method.graph))}
  partners = np.asarray(jax.vmap(lambda k: sag_vicreg.random_walk_pairs(k, graphs[method.graph]))(
      jax.random.split(key, WALKS_PER_BATCH)))
  moved = partners != rows
  same_class = labels[partners] == labels
  return {
      "own_view_top1": float(np.mean(np.argmax(ops.cosine_similarities(z1, z2), axis=1) == rows)),
      "partner_same_class": float(np.sum(same_class & moved) / max(np.sum(moved), 1)),
      "cross_view_neighbours_same_class": neighbour_agreement(graphs["cross_view_own"], labels),
      "same_view_neighbours_same_class": neighbour_agreement(graphs["same_view"], labels),
      "self_pair_rate": float(np.mean(~moved)),
  }


class Probe:
  """A fixed set of training images and their views; the pairing statistics of a network state on them."""

  def __init__(self, run: loop.Run, data_dir: str, num_batches: int, seed: int):
    split = sources.load_numpy(run.config.data.name, "train", data_dir)
    batch = run.config.train.global_batch_size
    chosen = np.random.default_rng(seed).choice(len(split["label"]), num_batches * batch, replace=False)
    self.labels = np.asarray(split["label"][chosen]).reshape(num_batches, batch)
    images = jnp.asarray(split["image"][chosen]).reshape(num_batches, batch, *split["image"].shape[1:])
    num_global = run.config.views.num_global
    specs = run.step_config.view_specs[:num_global]
    keys = jax.random.split(jax.random.key(seed + 1), num_batches)
    # (batch index) -> [first views, second views], normalised as the training step makes them.
    self.views = [views_lib.multi_crop(key, batch_images, specs)[:2] for key, batch_images in zip(keys, images)]
    self.method = run.method
    self.key = jax.random.key(seed + 2)
    definition = run.step_config.definitions.network

    @jax.jit
    def embed(params, batch_stats, first, second):
      # BatchNorm in training mode, each view through the network on its own: as the loss sees them.
      network = nnx.merge(definition, params, batch_stats, copy=True)
      return network(first)[1], network(second)[1]

    self._embed = embed

  def __call__(self, state) -> dict:
    per_batch = []
    for index, (first, second) in enumerate(self.views):
      z1, z2 = (np.asarray(z, np.float32) for z in self._embed(state.params, state.batch_stats, first, second))
      per_batch.append(pairing_statistics(jax.random.fold_in(self.key, index), z1, z2, self.labels[index],
                                          self.method))
    return {name: float(np.mean([b[name] for b in per_batch])) for name in STATISTICS}


def train_and_probe(config, workdir: pathlib.Path, data_dir: str, probe_every: int, num_batches: int) -> dict:
  """Train the reading from scratch, probing the pairing every `probe_every` steps and at the end."""
  run = loop.Run(config, workdir)
  probe = Probe(run, data_dir, num_batches, config.seed)
  series = {"steps": []} | {name: [] for name in STATISTICS}

  def record(step):
    values = probe(run.state)
    series["steps"].append(step)
    for name in STATISTICS:
      series[name].append(values[name])

  for step in range(run.total_steps):
    if step % probe_every == 0:
      record(step)
    run.step_once()
  record(run.total_steps)
  run.stop_feed()
  run.checkpointer.close()
  return series


def plot(results: dict):
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
  for index, (name, entry) in enumerate(results.items()):
    color = f"C{index}"
    for run_index, run in enumerate(entry["runs"]):
      label = name if run_index == 0 else None
      axes[0].plot(run["steps"], run["partner_same_class"], color=color, label=label)
      axes[1].plot(run["steps"], run["own_view_top1"], color=color, label=label)
      axes[2].plot(run["steps"], run["cross_view_neighbours_same_class"], color=color, label=label)
      axes[2].plot(run["steps"], run["same_view_neighbours_same_class"], color=color, linestyle="--")
  axes[0].set_title("drawn partner of the same class (own pair left out)", fontsize=9)
  axes[1].set_title("own second view nearest to z1", fontsize=9)
  axes[2].set_title("neighbours of the same class:\ncross-view graph (solid), same-view graph (dashed)", fontsize=9)
  for axis in axes:
    axis.set_xlabel("step")
    axis.set_ylim(0, 1)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  return fig


def _run_file(workdir: pathlib.Path, name: str, seed: int) -> pathlib.Path:
  return workdir / "series" / name.replace("+", "_") / f"seed{seed}.json"


def _declaration(setup: dict, name: str) -> dict:
  """What a run's numbers depend on: the probe's setup and the reading (config file, overrides)."""
  variant = READINGS[name]
  # Through JSON, so that a declaration read back from a file compares equal.
  return json.loads(json.dumps({"setup": setup, "config_file": variant.config_file,
                                "overrides": dict(variant.overrides)}))


def _finished_run(path: pathlib.Path, declaration: dict) -> dict | None:
  """The run `path` holds if it was trained under `declaration`, else None."""
  if not path.exists():
    return None
  stored = json.loads(path.read_text())
  return stored["run"] if stored["declaration"] == declaration else None


def _write_run(path: pathlib.Path, declaration: dict, run: dict) -> None:
  _pretraining.write_json(path, {"declaration": declaration, "run": run})


def keep_published(published_path: pathlib.Path, workdir: pathlib.Path, setup: dict, chosen: list[str],
                   seeds: int) -> int:
  """Copies into the workdir every chosen run that the published JSON holds under the same declaration."""
  if not published_path.exists():
    return 0
  published = json.loads(published_path.read_text())
  written = 0
  for name in chosen:
    entry = published.get("results", {}).get(name)
    declaration = _declaration(setup, name)
    if entry is None or {"setup": published.get("setup"), "config_file": entry["config_file"],
                         "overrides": entry["overrides"]} != declaration:
      continue
    for run in entry["runs"]:
      path = _run_file(workdir, name, run["seed"])
      if run["seed"] < seeds and _finished_run(path, declaration) is None:
        _write_run(path, declaration, run)
        written += 1
  return written


def summarise(runs: list[dict]) -> dict:
  """Mean and std (ddof = 1) over the seeds of each statistic at the first and at the last probe."""
  return {name: {"first": _pretraining.mean_std([run[name][0] for run in runs]),
                 "last": _pretraining.mean_std([run[name][-1] for run in runs])} for name in STATISTICS}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--readings", default=",".join(DEFAULT_READINGS),
                      help=f"readings of sag_vicreg_readings to train; known: {', '.join(READINGS)}")
  parser.add_argument("--dataset", default="digits")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=None, help="default: the readings' 3000 (2 with --small)")
  parser.add_argument("--probe_every", type=int, default=250)
  parser.add_argument("--probe_batches", type=int, default=8, help="batches of the run's size in the probe set")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--workdir", type=pathlib.Path, default=None,
                      help="one JSON per reading and seed goes here; a rerun skips the finished ones "
                           "(default: a fresh temporary folder)")
  parser.add_argument("--worker", type=int, default=0, help="this worker's index, for parallel workers")
  parser.add_argument("--num_workers", type=int, default=1, help="workers sharing --workdir; each takes every n-th run")
  parser.add_argument("--keep_published", action="store_true",
                      help="take the runs that the published JSON (under --output_dir) holds with the same "
                           "setup instead of training them again")
  args = parser.parse_args()
  chosen = [name for name in args.readings.split(",") if name]
  unknown = [name for name in chosen if name not in READINGS]
  if unknown or not chosen:
    parser.error(f"--readings: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(READINGS)}")
  if not 0 <= args.worker < args.num_workers:
    parser.error("--worker must lie in [0, --num_workers)")
  if args.num_workers > 1 and args.workdir is None:
    parser.error("--num_workers above 1 needs a --workdir that the workers share")
  started = time.perf_counter()
  scale = dict(_pretraining.SCALES["small" if args.small else "cpu"])
  if args.steps:
    scale["steps"] = args.steps
  probe_every = 1 if args.small else args.probe_every
  probe_batches = 1 if args.small else args.probe_batches
  setup = {"dataset": args.dataset, "scale": scale, "probe_every": probe_every,
           "probe_images": probe_batches * scale["batch"], "walks_per_batch": WALKS_PER_BATCH}
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_pairing_data_")
  sources.prepare(args.dataset, data_dir)
  workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_pairing_"))
  if args.keep_published:
    kept = keep_published(args.output_dir / "results" / f"{NAME}.json", workdir, setup, chosen, args.seeds)
    print(f"kept {kept} published runs", flush=True)
  jobs = [(name, seed) for name in chosen for seed in range(args.seeds)]
  for name, seed in jobs[args.worker::args.num_workers]:
    declaration, path = _declaration(setup, name), _run_file(workdir, name, seed)
    if _finished_run(path, declaration) is not None:
      continue
    config = _pretraining.variant_config(READINGS[name], args.dataset, seed, scale, data_dir)
    config_lib.validate(config, num_devices=jax.device_count())
    train_dir = workdir / "train" / name.replace("+", "_") / str(seed)
    shutil.rmtree(train_dir, ignore_errors=True)  # a run stopped halfway starts over: its probes began at step 0
    series = train_and_probe(config, train_dir, data_dir, probe_every, probe_batches)
    _write_run(path, declaration, {"seed": seed, **series})
    print(f"{name:22s} seed {seed}: partner of the same class {series['partner_same_class'][0]:.3f} -> "
          f"{series['partner_same_class'][-1]:.3f}, own view nearest {series['own_view_top1'][0]:.3f} -> "
          f"{series['own_view_top1'][-1]:.3f}, self pair {series['self_pair_rate'][-1]:.3f}", flush=True)
  finished = {job: _finished_run(_run_file(workdir, *job), _declaration(setup, job[0])) for job in jobs}
  missing = [f"{name} seed {seed}" for (name, seed), run in finished.items() if run is None]
  if missing:
    # Another worker is still training these; the last worker to finish writes the results.
    print(f"not written: still missing {', '.join(missing)}")
    return
  results = {}
  for name in chosen:
    runs = [finished[name, seed] for seed in range(args.seeds)]
    variant = READINGS[name]
    reading = _common.sag_vicreg_reading(_pretraining.variant_config(variant, args.dataset, 0, scale, data_dir))
    results[name] = {"config_file": variant.config_file, "overrides": dict(variant.overrides),
                     "sag_vicreg_reading": reading, "summary": summarise(runs), "runs": runs}
  result = {
      "question": "cross_view_own+row ends below its initialisation and same_view+row learns, with the same "
                  "own-pair rate and pair weight: are the cross-view graph's other partners of another class "
                  "more often?",
      "setup": setup,
      "seeds": args.seeds,
      "results": results,
  }
  _common.write_results(NAME, args.output_dir, result, plot(results), small=args.small, started=started)


if __name__ == "__main__":
  main()
