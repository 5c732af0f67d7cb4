"""T-REGS with the MSE invariance (Mordacq et al.): beta 10, gamma 0.2, lambda 8e-4, on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/tregs.py --workdir workdirs/tregs

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("tregs")
  config.method.tregs.update(beta=10.0, gamma=0.2, lam=8e-4)
  return apply_arg(config, arg)
