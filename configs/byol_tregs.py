"""BYOL plus T-REG on both views' embeddings (T-REGS as an auxiliary loss), on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/byol_tregs.py --workdir workdirs/byol_tregs

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("byol+tregs")
  config.method.byol.tau_base = 0.99
  config.views.recipe = "byol"
  config.views.overrides.update(flip_prob=0.0, crop_scale=(0.4, 1.0))
  config.model.update(projector="512-128", predictor="512-128")
  return apply_arg(config, arg)
