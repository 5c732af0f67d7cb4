"""Recovery from collapse during training: does the embedding spread come back, and how fast?

  python -m experiments.collapse_recovery            # digits, 3 seeds, 500 steps per run (CPU scale)
  python -m experiments.collapse_recovery --small    # seconds; for the tests

Claim (VISReg, Sec. 3 and Fig. 2): VISReg keeps a useful gradient under
collapse, so a collapsed network recovers; SIGReg's gradient vanishes with
the spread, and so does VICReg's below the scale its epsilon sets
(experiments/collapse_gradients.py measured this on free embeddings, and
found VISReg's large gradient to come from the shape term, pointing inward).

Here the network is collapsed, not the embeddings: each run starts from the
usual initialisation with the last projector layer scaled by 1e-3, so every
embedding is within ~1e-3 of the origin; the same run from the plain
initialisation is its reference. Methods: VICReg, VISReg, VISReg without its
shape term (does the inward push slow the recovery?), LeJEPA (SIGReg) and
T-REGS, from their configs/ files at the CPU scale of the method comparison;
VICReg and T-REGS, whose configs use LARS, also with the others' AdamW.
Reported per method and seed: the embedding std over training (the step's
own `embedding/std`: mean over dimensions of the batch std of view 1's
embeddings) for the collapsed and the reference run, the first step at
which the collapsed run reaches half of the reference's std at that step,
and the kNN accuracy of both encoders at the end.
"""

from __future__ import annotations

import argparse
import pathlib
import tempfile
import time

import jax
import matplotlib.pyplot as plt

from experiments import _common
from experiments import _pretraining
from experiments._pretraining import Variant
from jax_ssl.data import sources
from jax_ssl.eval import probes
from jax_ssl.train import config as config_lib
from jax_ssl.train import evaluation
from jax_ssl.train import loop

NAME = "collapse_recovery"
COLLAPSE_FACTOR = 1e-3
# VICReg's and T-REGS's configs train with LARS, whose trust ratio scales a layer's update by the
# layer's own norm: a layer scaled by 1e-3 then moves 1e-3 as fast, whatever the loss. Each also runs
# with VISReg's and LeJEPA's AdamW, so that the loss, not the optimizer, is what differs.
ADAMW = (("optim.name", "adamw"), ("optim.base_lr", 2e-3), ("optim.weight_decay", 0.05),
         ("optim.scale_lr_by_batch", False))
METHODS = (
    Variant("vicreg", "vicreg.py"),
    Variant("vicreg (AdamW)", "vicreg.py", ADAMW),
    Variant("visreg", "visreg.py"),
    Variant("visreg without shape", "visreg.py", (("method.visreg.lambda_shape", 0.0),)),
    Variant("lejepa (SIGReg)", "lejepa.py"),
    Variant("tregs", "tregs.py"),
    Variant("tregs (AdamW)", "tregs.py", ADAMW),
)


def collapse_projector(params, factor: float):
  """`params` with the projector's last Linear scaled by `factor`: every embedding shrinks toward 0."""
  def scale(path, leaf):
    names = [str(getattr(entry, "key", getattr(entry, "name", entry))) for entry in path]
    return leaf * factor if "projector" in names and "last" in names else leaf
  return jax.tree_util.tree_map_with_path(scale, params)


def train_curve(config, collapsed: bool, log_every: int, workdir: pathlib.Path) -> dict:
  """Train from the (optionally collapsed) initialisation; the std and loss every `log_every` steps, final kNN."""
  run = loop.Run(config, workdir)
  if collapsed:
    run.state = run.state.replace(params=collapse_projector(run.state.params, COLLAPSE_FACTOR))
  steps, stds, loss_values = [], [], []
  for step in range(run.total_steps):
    metrics = run.step_once()
    # The std the step reports is measured before its update: step 0's is the starting spread.
    if step % log_every == 0 or step == run.total_steps - 1:
      values = jax.device_get({"std": metrics["embedding/std"], "loss": metrics["loss"]})
      steps.append(step)
      stds.append(float(values["std"]))
      loss_values.append(float(values["loss"]))
  run.stop_feed()
  run.checkpointer.close()
  knn = final_knn(run, run.state, config)
  return {"steps": steps, "embedding_std": stds, "loss": loss_values, "knn": knn}


def final_knn(run, state, config) -> dict:
  sample = lambda split, seed: evaluation.sample_split(loop.open_training_source(config, split), 2000, seed)  # noqa: E731
  train, test = sample("train", config.seed), sample("test", config.seed + 1)
  levels = run.spec.label_levels
  return probes.probe_accuracies(
      run.embedder(state.params, state.batch_stats, train["image"]), {level: train[level] for level in levels},
      run.embedder(state.params, state.batch_stats, test["image"]), {level: test[level] for level in levels},
      knn_k=config.eval.knn_k, knn_temperature=config.eval.knn_temperature)["knn"]


def recovery_step(collapsed: dict, reference: dict, fraction: float = 0.5) -> int | None:
  """First logged step at which the collapsed run's std reaches `fraction` of the reference's; None if never."""
  for step, ours, theirs in zip(collapsed["steps"], collapsed["embedding_std"], reference["embedding_std"]):
    if ours >= fraction * theirs:
      return step
  return None


def plot(results: dict, steps: int):
  methods = list(results)
  fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods), 3.3), sharey=True, squeeze=False)
  for axis, method in zip(axes[0], methods):
    for index, run in enumerate(results[method]["runs"]):
      axis.plot(run["reference"]["steps"], run["reference"]["embedding_std"], color="C0", alpha=0.7,
                label="plain init" if index == 0 else None)
      axis.plot(run["collapsed"]["steps"], run["collapsed"]["embedding_std"], color="C3", alpha=0.7,
                label=f"last layer x {COLLAPSE_FACTOR:g}" if index == 0 else None)
    axis.set_yscale("log")
    axis.set_xlim(0, steps)
    axis.set_title(method, fontsize=9)
    axis.set_xlabel("step")
  axes[0][0].set_ylabel("embedding std (mean over dims)")
  axes[0][0].legend(fontsize=7)
  fig.suptitle("Recovery from a collapsed projector (digits)", fontsize=10)
  fig.tight_layout()
  return fig


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=500)
  parser.add_argument("--dataset", default="digits")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  args = parser.parse_args()
  started = time.perf_counter()
  scale = dict(_pretraining.SCALES["small" if args.small else "cpu"])
  scale["steps"] = 2 if args.small else args.steps
  seeds = 1 if args.small else args.seeds
  log_every = 1 if args.small else 10
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_collapse_data_")
  sources.prepare(args.dataset, data_dir)
  workdir = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_collapse_"))
  results = {}
  for variant in METHODS:
    runs = []
    for seed in range(seeds):
      config = _pretraining.variant_config(variant, args.dataset, seed, scale, data_dir)
      config_lib.validate(config, num_devices=jax.device_count())
      name = variant.name.replace(" ", "_").replace("(", "").replace(")", "")
      run = {"seed": seed}
      for case, collapsed in (("collapsed", True), ("reference", False)):
        run[case] = train_curve(config, collapsed, log_every, workdir / name / str(seed) / case)
      run["recovery_step_half"] = recovery_step(run["collapsed"], run["reference"], 0.5)
      run["recovery_step_90_percent"] = recovery_step(run["collapsed"], run["reference"], 0.9)
      runs.append(run)
      print(f"{variant.name:22s} seed {seed}: std {run['collapsed']['embedding_std'][0]:.2e} -> "
            f"{run['collapsed']['embedding_std'][-1]:.3f} (plain init {run['reference']['embedding_std'][-1]:.3f}), "
            f"half-way at step {run['recovery_step_half']}, kNN {run['collapsed']['knn']['label']:.3f} "
            f"(plain {run['reference']['knn']['label']:.3f})", flush=True)
    results[variant.name] = {"config_file": variant.config_file, "overrides": dict(variant.overrides), "runs": runs,
                             "recovered_half_in": sum(r["recovery_step_half"] is not None for r in runs),
                             "seeds": len(runs)}
  result = {
      "claim": "A collapsed network recovers its spread under VISReg (strong gradient under collapse), not under "
               "SIGReg, whose gradient vanishes with the spread (VISReg Sec. 3, Fig. 2).",
      "setup": {"dataset": args.dataset, "scale": scale, "collapse": f"projector's last Linear x {COLLAPSE_FACTOR:g}",
                "log_every": log_every, "methods": {v.name: [v.config_file, dict(v.overrides)] for v in METHODS}},
      "results": results,
  }
  _common.write_results(NAME, args.output_dir, result, plot(results, scale["steps"]), small=args.small,
                        started=started)


if __name__ == "__main__":
  main()
