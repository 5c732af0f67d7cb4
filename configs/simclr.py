"""SimCLR's NT-Xent (Chen et al., 2020), temperature 0.2, on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/simclr.py --workdir workdirs/simclr

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("simclr")
  config.method.simclr.temperature = 0.2
  config.views.recipe = "simclr"
  config.views.overrides.update(flip_prob=0.0, crop_scale=(0.4, 1.0))
  return apply_arg(config, arg)
