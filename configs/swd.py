"""Plain sliced-Wasserstein to N(0, I) on the bundled `digits`, on a CPU.

LeJEPA's prediction loss with the sliced-Wasserstein regularizer: the SWD baseline of VISReg, lambda 0.6.

  python -m jax_ssl.main --config configs/swd.py --workdir workdirs/swd

A few minutes on 2 CPU cores; report.md compares the trained encoder with its
initialisation. Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base


def get_config(arg=None):
  config = bundled_base("swd")
  config.method.swd.update(lam=0.6, num_slices=1024)
  config.views.update(recipe="multicrop", size=16, local_size=8, num_global=2, num_local=4)
  config.model.projector = "512-512-128"
  config.optim.update(name="adamw", base_lr=2e-3, weight_decay=0.05, scale_lr_by_batch=False)
  return apply_arg(config, arg)
