"""DINO (Caron et al., 2021) on the bundled `digits`, on a CPU: a comparator of the papers' tables.

An EMA teacher's centered, sharpened outputs over 1,024 prototypes, matched by
the student on 2 global + 4 local views; the teacher sees the global views.

  python -m jax_ssl.main --config configs/dino.py --workdir workdirs/dino
  python -m jax_ssl.main --config configs/dino.py:shapes --workdir workdirs/dino_shapes

The first takes a few minutes on 2 CPU cores; report.md compares the trained
encoder with its initialisation and the pixels. `:shapes` is the CPU scale
of the readings experiment on the bundled `shapes` (10-15 minutes;
experiments/RESULTS.md, "configs/dino.py"). Arguments: `:shapes`, `:smoke`,
`:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale


def get_config(arg=None):
  config = bundled_base("dino")
  # A short run: the teacher follows faster than the paper's 0.996, and K is scaled to the tiny data.
  config.method.dino.update(num_prototypes=1024, tau_base=0.99, teacher_temperature=0.04)
  config.views.update(recipe="multicrop", size=16, local_size=8, num_global=2, num_local=4,
                      global_scale=(0.4, 1.0), local_scale=(0.05, 0.4))
  del config.views.overrides["crop_scale"]  # the base's one crop scale would erase local vs global
  config.model.update(projector="512-512-128", projector_activation="gelu")
  config.optim.update(name="adamw", base_lr=1e-3, weight_decay=0.04, scale_lr_by_batch=False, grad_clip_norm=3.0)
  return apply_arg(config, arg, {"shapes": shapes_scale})
