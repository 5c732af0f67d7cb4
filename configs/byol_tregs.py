"""BYOL plus T-REG on both views' embeddings (T-REGS as an auxiliary loss), on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/byol_tregs.py --workdir workdirs/byol_tregs

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation and the pixels. Arguments: `:smoke`, `:first_half` / `:second_half`.

T-REG's weights are the T-REGS slides' best ratios (beta / gamma = 50 and
gamma / lambda = 250, their ImageNet-1k coefficient table) with BYOL's loss as
the beta-weighted term at weight 1: gamma = 0.02, lambda = 8e-5. The slides
give no coefficients for BYOL. Their values for the MSE invariance (gamma 0.2,
lambda 8e-4 against beta = 10) put on BYOL's weight-1 loss hold the embedding
at the soft sphere's radius 1 + gamma E / (2 lambda n), over 100 here, where
BYOL's cosine, whose pull falls as one over the norm, stops training the
encoder: on digits its linear probe ended below the untrained encoder's
(experiments/byol_tregs_scale.py, RESULTS.md).
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("byol+tregs")
  config.method.byol.tau_base = 0.99
  config.views.recipe = "byol"
  config.views.overrides.update(flip_prob=0.0, crop_scale=(0.4, 1.0))
  config.model.update(projector="512-128", predictor="512-128")
  config.method.t_reg.update(gamma=0.02, lam=8e-5)
  return apply_arg(config, arg)
