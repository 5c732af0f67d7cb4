"""VISReg's ablations and the K-D relation, at CPU scale: each term off, the stop-gradient off, K against D.

  python -m experiments.visreg_ablations             # digits and shapes, 3 seeds, 1000 steps per run
  python -m experiments.visreg_ablations --small     # seconds; for the tests

Claims (VISReg, Wu et al., arXiv 2606.02572): every term of the regularizer
is needed (Table 8: without scale, shape or center, or without the gradient
detachment between scale and shape, linear probes drop), and the number of
slices K must exceed the projection dimension D by a factor C > 1 (Figs. 4-5).

Variants of configs/visreg.py (2 global + 4 local views, lambda 0.6, D = 128):
the full regularizer; lambda_scale, lambda_shape or lambda_center at 0; the
shape term differentiated through the std (`method.visreg.detach_std = False`);
K in {32, 128, 512} at D = 128 (K = D / 4, D, 4 D); D in {32, 512} at K = 128
(K = 4 D and D / 4). Per run: kNN and linear probes and the Rand index per
level, with the untrained encoder and the pixels as controls. Writes
experiments/results/visreg_ablations[-<scale>].json and a figure per feature
output.
"""

from __future__ import annotations

import argparse

from experiments import _pretraining
from experiments._pretraining import Variant

STEPS = 1000
# configs/visreg.py's projector ends at D = 128; slices are capped at 256 by the harness, so K is set here.
VARIANTS = (
    Variant("visreg K=128 D=128", "visreg.py", (("method.visreg.num_slices", 128),)),
    Variant("no scale", "visreg.py", (("method.visreg.num_slices", 128), ("method.visreg.lambda_scale", 0.0))),
    Variant("no shape", "visreg.py", (("method.visreg.num_slices", 128), ("method.visreg.lambda_shape", 0.0))),
    Variant("no center", "visreg.py", (("method.visreg.num_slices", 128), ("method.visreg.lambda_center", 0.0))),
    Variant("no stop-gradient", "visreg.py", (("method.visreg.num_slices", 128), ("method.visreg.detach_std", False))),
    Variant("K=32 D=128", "visreg.py", (("method.visreg.num_slices", 32),)),
    Variant("K=512 D=128", "visreg.py", (("method.visreg.num_slices", 512),)),
    Variant("K=128 D=32", "visreg.py", (("method.visreg.num_slices", 128), ("model.projector", "512-512-32"))),
    Variant("K=128 D=512", "visreg.py", (("method.visreg.num_slices", 128), ("model.projector", "512-512-512"))),
)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _pretraining.add_flags(parser)
  _pretraining.add_variants_flag(parser, VARIANTS)
  args = parser.parse_args()
  variants = _pretraining.chosen_variants(args, VARIANTS, parser)
  experiment = _pretraining.experiment_from_flags("visreg_ablations", args, variants, parser,
                                                   two_model=False, steps=STEPS)
  _pretraining.run(experiment, args)


if __name__ == "__main__":
  main()
