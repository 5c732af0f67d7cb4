"""Barlow Twins (Zbontar et al., 2021), lambda 5e-3, on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/barlow_twins.py --workdir workdirs/barlow_twins

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("barlow_twins")
  config.method.barlow_twins.lambd = 5e-3
  return apply_arg(config, arg)
