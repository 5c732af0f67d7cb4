"""BYOL+T-REGS at CPU scale: the soft sphere's radius against BYOL's normalised loss, and T-REG's weights.

  python -m experiments.byol_tregs_scale             # digits and shapes, 3 seeds, 3000 steps per run (compare_methods')
  python -m experiments.byol_tregs_scale --small     # seconds; for the tests

BYOL+T-REGS as configs/byol_tregs.py first had it (BYOL's regression loss
with weight 1, plus T-REG with the slides' gamma = 0.2, lambda = 8e-4 on each
view) ended with a linear probe below the untrained encoder's on digits in
compare_methods. T-REG's sphere term is soft: on points of norm r whose MST
has total length about E r, gamma L_E + lambda L_S is lowest at
r = 1 + gamma E / (2 lambda n), over 100 at gamma / lambda = 250, and BYOL's
loss, a cosine, pulls on z with a force that falls as 1/r. The slides tune
gamma and lambda against an MSE invariance term weighted beta = 10 (their
Table 4), whose pull grows with r. Variants of configs/byol_tregs.py at
compare_methods' CPU scale (no two-model protocol), each weight spelled out:
BYOL alone; T-REG at the slides' MSE weights; both weights divided by 10 (the
slides' ratios beta / gamma = 50 and gamma / lambda = 250 with BYOL's loss as
the beta term: the config's default since this experiment); and a sphere
strong enough to hold r near 2 (lambda = 0.1). Per run: kNN and linear probes
and the Rand index per level with the untrained encoder and the pixels as
controls, and the logged embedding statistics (std, effective rank, the
regression and T-REG terms). Writes
experiments/results/byol_tregs_scale[-<scale>].json.
"""

from __future__ import annotations

import argparse

from experiments import _pretraining
from experiments._pretraining import Variant


def _t_reg(gamma: float, lam: float) -> tuple[tuple[str, float], ...]:
  return (("method.t_reg.gamma", gamma), ("method.t_reg.lam", lam))


VARIANTS = (
    Variant("byol", "byol.py"),
    Variant("byol+tregs g=0.2 l=8e-4", "byol_tregs.py", _t_reg(0.2, 8e-4)),
    Variant("byol+tregs g=0.02 l=8e-5", "byol_tregs.py", _t_reg(0.02, 8e-5)),
    Variant("byol+tregs g=0.2 l=0.1", "byol_tregs.py", _t_reg(0.2, 0.1)),
)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _pretraining.add_flags(parser, default_seeds=3)
  parser.set_defaults(features="backbone")
  _pretraining.add_variants_flag(parser, VARIANTS)
  args = parser.parse_args()
  variants = _pretraining.chosen_variants(args, VARIANTS, parser)
  experiment = _pretraining.experiment_from_flags("byol_tregs_scale", args, variants, parser, two_model=False)
  _pretraining.run(experiment, args)


if __name__ == "__main__":
  main()
