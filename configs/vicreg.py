"""VICReg (Bardes et al., 2022), on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/vicreg.py --workdir workdirs/vicreg

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. `:shapes` is the same method at the CPU scale on the bundled
`shapes` (`configs/common.py:shapes_scale`: small CNN, 16 px views, 3000 steps;
`configs/default.py` is SAG-VICReg at this scale, shortened to 1500 steps).
Arguments: `:shapes`, `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale


def get_config(arg=None):
  config = bundled_base("vicreg")
  return apply_arg(config, arg, {"shapes": shapes_scale})
