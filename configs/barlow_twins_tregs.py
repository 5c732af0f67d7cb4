"""Barlow Twins plus T-REG on both views' embeddings (T-REGS as an auxiliary loss), on the bundled `digits`, on a CPU.

  python -m jax_ssl.main --config configs/barlow_twins_tregs.py --workdir workdirs/barlow_twins_tregs

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("barlow_twins+tregs")
  return apply_arg(config, arg)
