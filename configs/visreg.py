"""VISReg (Wu et al., 2026) on the bundled `digits`, on a CPU.

LeJEPA's prediction loss + the scale/shape/center regularizer over 2 global + 4 local views.

  python -m jax_ssl.main --config configs/visreg.py --workdir workdirs/visreg

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
  config = bundled_base("visreg")
  config.method.visreg.update(lam=0.6, num_slices=1024)
  config.views.update(recipe="multicrop", size=16, local_size=8, num_global=2, num_local=4)
  config.model.projector = "512-512-128"
  config.optim.update(name="adamw", base_lr=2e-3, weight_decay=0.05, scale_lr_by_batch=False)
  return apply_arg(config, arg, {"shapes": shapes_scale})
