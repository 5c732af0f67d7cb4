"""VICReg (Bardes et al., 2022), on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/vicreg.py --workdir workdirs/vicreg

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("vicreg")
  return apply_arg(config, arg)
