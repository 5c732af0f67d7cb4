"""Which reading of SAG-VICReg trains as the paper reports? Every reading against VICReg, with controls.

  python -m experiments.sag_vicreg_readings                      # digits and shapes, 3 seeds, 3000 steps
  python -m experiments.sag_vicreg_readings --worker 0 --num_workers 2 &   # two processes share the runs
  python -m experiments.sag_vicreg_readings --worker 1 --num_workers 2
  python -m experiments.sag_vicreg_readings --small              # seconds; for the tests

The paper leaves three choices open (jax_ssl.losses.sag_vicreg): the graph
of the walk (`cross_view`: kNN from the first view to the second;
`cross_view_own`: the same with the image's own second view always a
neighbour; `same_view`: kNN over the first view's images, self included),
what the kernel's scale is a percentile of (`neighbours` or the whole `row`),
and what VICReg's variance and covariance see (the walked batch, `paired`, or
the two views, `views`). Each graph trains with the defaults of the other two
options; for the graphs that keep the own pair in reach, each other option is
also switched one at a time. VICReg is the reference, and the controls (the
untrained encoder, the input pixels) are rows of every table.

Per run: kNN and linear probes and the Rand index per label level, the
two-model LCA and cophenetic similarity (SAG-VICReg Sec. 5.3, where the
paper's claims live), on backbone features and projector embeddings; and the
pairing statistics over training (`self_pair_rate`: how often the walk draws
the image's own second view; `pair_weight`: the mean affinity of the drawn
pairs). Writes experiments/results/sag_vicreg_readings[-<scale>].json and a
figure per feature output.
"""

from __future__ import annotations

import argparse

from experiments import _pretraining
from experiments._pretraining import Variant


def reading(graph: str, scale_over: str = "neighbours", regularize: str = "paired", name: str | None = None) -> Variant:
  """configs/sag_vicreg.py with every reading option set explicitly (named after the options by default)."""
  name = name or graph + ("" if scale_over == "neighbours" else "+row") + ("" if regularize == "paired" else "+views")
  return Variant(name, "sag_vicreg.py", (("method.sag_vicreg.graph", graph),
                                         ("method.sag_vicreg.scale_over", scale_over),
                                         ("method.sag_vicreg.regularize", regularize)))


# VICReg first: its architecture is the controls'. Then every graph, and the other options one at a time
# for the graphs that keep the own pair in reach.
VARIANTS = (
    Variant("vicreg", "vicreg.py"),
    reading("cross_view"),
    reading("cross_view_own"),
    reading("same_view"),
    reading("cross_view_own", scale_over="row"),
    reading("cross_view_own", regularize="views"),
    reading("same_view", scale_over="row"),
    reading("same_view", regularize="views"),
)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _pretraining.add_flags(parser)
  _pretraining.add_variants_flag(parser, VARIANTS,
                                 description="a subset of the readings (vicreg first, for the controls' architecture)")
  args = parser.parse_args()
  variants = _pretraining.chosen_variants(args, VARIANTS, parser)
  experiment = _pretraining.experiment_from_flags("sag_vicreg_readings", args, variants, parser)
  _pretraining.run(experiment, args)


if __name__ == "__main__":
  main()
