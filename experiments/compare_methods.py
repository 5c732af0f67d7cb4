"""The methods side by side on the bundled hierarchical data, with the untrained encoder and the pixels as controls.

  python -m experiments.compare_methods                  # digits and shapes, 3 seeds, 3000 steps per run
  python -m experiments.compare_methods --worker 0 --num_workers 2 &    # two processes share the runs
  python -m experiments.compare_methods --worker 1 --num_workers 2
  python -m experiments.compare_methods --scale gpu      # ResNet-18 on 32 px views, longer training
  python -m experiments.compare_methods --small          # seconds; for the tests

For each dataset, method and seed: pretrain on all classes and evaluate
(kNN and linear probe per level of the label hierarchy, hierarchical Rand
index per level, structure against the pixels); then run the two-model
protocol (SAG-VICReg Sec. 5.3: models trained on each half of the classes,
model B from another initialisation, compared on the first half's test
images by LCA and cophenetic similarity). Every table carries the controls:
the same architecture untrained, and the input pixels. `--features`
evaluates backbone features, projector embeddings (where the paper computes
its structure metrics), or both. Methods start from their configs in
configs/ (the digits recipes), moved to the dataset and scale chosen here;
SAG-VICReg runs the library's default reading, spelled out, so that its runs
are the readings experiment's own when both share a --workdir.

Writes experiments/results/compare_methods[-<scale>].json (every seed's
numbers, their mean and standard deviation) and a figure per feature output.
"""

from __future__ import annotations

import argparse

from experiments import _pretraining
from experiments._pretraining import Variant
from experiments.sag_vicreg_readings import reading
from jax_ssl.losses import sag_vicreg

# VICReg first: its architecture is the controls'.
VARIANTS = (
    Variant("vicreg", "vicreg.py"),
    reading(sag_vicreg.DEFAULT_GRAPH, sag_vicreg.DEFAULT_SCALE_OVER, sag_vicreg.DEFAULT_REGULARIZE, name="sag_vicreg"),
    Variant("visreg", "visreg.py"),
    Variant("lejepa", "lejepa.py"),
    Variant("tregs", "tregs.py"),
    Variant("byol+tregs", "byol_tregs.py"),
)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _pretraining.add_flags(parser)
  parser.add_argument("--methods", default=",".join(v.name for v in VARIANTS),
                      help="a subset of the methods (vicreg first, for the controls' architecture)")
  args = parser.parse_args()
  names = [n for n in args.methods.split(",") if n]
  known = {v.name: v for v in VARIANTS}
  if not names or set(names) - set(known):
    parser.error(f"unknown methods {sorted(set(names) - set(known))}; choose from {', '.join(known)}")
  experiment = _pretraining.experiment_from_flags("compare_methods", args, [known[n] for n in names], parser)
  _pretraining.run(experiment, args)


if __name__ == "__main__":
  main()
