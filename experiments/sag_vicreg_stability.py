"""SAG-VICReg across its graph's k and the batch size (App. C: "stable across different hyperparameter configurations").

  python -m experiments.sag_vicreg_stability           # digits and shapes, 3 seeds, 1000 steps per run
  python -m experiments.sag_vicreg_stability --small   # seconds; for the tests

configs/sag_vicreg.py with the library's default reading, k in {3, 5, 10, 20}
at batch 128, and batch in {64, 256} at k = 5, beside VICReg at batch 128.
Per run: kNN and linear probes and the Rand index per level, the pairing
statistics over training (own pair drawn, mean weight), with the untrained
encoder and the pixels as controls. Writes
experiments/results/sag_vicreg_stability[-<scale>].json and a figure per
feature output.
"""

from __future__ import annotations

import argparse

from experiments import _pretraining
from experiments._pretraining import Variant
from jax_ssl.losses import sag_vicreg

STEPS = 1000
# The default reading, spelled out: a run stays tied to the reading it trained with.
READING = (("method.sag_vicreg.graph", sag_vicreg.DEFAULT_GRAPH),
           ("method.sag_vicreg.scale_over", sag_vicreg.DEFAULT_SCALE_OVER),
           ("method.sag_vicreg.regularize", sag_vicreg.DEFAULT_REGULARIZE))
VARIANTS = (
    Variant("vicreg", "vicreg.py"),
    *(Variant(f"k={k}", "sag_vicreg.py", (*READING, ("method.sag_vicreg.k", k))) for k in (3, 5, 10, 20)),
    *(Variant(f"k=5 batch={batch}", "sag_vicreg.py",
              (*READING, ("method.sag_vicreg.k", 5), ("train.global_batch_size", batch)))
      for batch in (64, 256)),
)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _pretraining.add_flags(parser)
  _pretraining.add_variants_flag(parser, VARIANTS)
  args = parser.parse_args()
  variants = _pretraining.chosen_variants(args, VARIANTS, parser)
  experiment = _pretraining.experiment_from_flags("sag_vicreg_stability", args, variants, parser,
                                                   two_model=False, steps=STEPS)
  _pretraining.run(experiment, args)


if __name__ == "__main__":
  main()
