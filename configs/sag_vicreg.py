"""SAG-VICReg (Simai et al., 2025) on the bundled `digits`, on a CPU.

VICReg with random-walk pairing on a kNN graph; k=5, the kernel's scale the 20th percentile.

  python -m jax_ssl.main --config configs/sag_vicreg.py --workdir workdirs/sag_vicreg

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation and with the input pixels. The walk uses the library's default
reading (`graph="cross_view_own"`: experiments/RESULTS.md, sag_vicreg_readings);
`--config.method.graph=cross_view` etc. select the others. Arguments: `:smoke`,
`:first_half` / `:second_half`.
"""

from jax_ssl.train.config import apply_arg
from jax_ssl.train.config import bundled_base


def get_config(arg=None):
  config = bundled_base("sag_vicreg")
  config.method.update(k=5, percentile=20.0)
  return apply_arg(config, arg)
