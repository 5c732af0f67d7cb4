"""VISReg, LeJEPA or plain SWD with ViT-S/8 on Imagenette: the VISReg paper's Section 3.2 / App. C setup.

  python -m jax_ssl.main --config configs/recipes/imagenette_vits8.py:visreg --workdir workdirs/visreg_imagenette \
      --config.data.data_dir=$TFDS_DATA_DIR
  python -m jax_ssl.main --config configs/recipes/imagenette_vits8.py:lejepa --workdir workdirs/lejepa_imagenette \
      --config.data.data_dir=$TFDS_DATA_DIR

ViT-S/8 at 128 px, 4 global views with crop scale (0.08, 1) and no local
views, batch 256, AdamW at 1e-3 without decay, projection dimension D = 256,
K = 4096 slices (split over the devices), 800 epochs. lambda = 0.6 for VISReg
and SWD, 0.02 for SIGReg (LeJEPA), as the paper sets them. The projector
(2048-2048-256, BN, GELU) follows the paper's ImageNet appendix; its weight
decay (0.05) is LeJEPA's. Arguments: `:visreg` (default), `:lejepa`, `:swd`, and `:smoke`.
"""

from jax_ssl.train.config import apply_arg
from jax_ssl.train.config import base_config

LAMBDAS = {"visreg": 0.6, "lejepa": 0.02, "swd": 0.6}


def get_config(arg=None):
  config = base_config()
  config.method.update(name="visreg", lam=LAMBDAS["visreg"], num_slices=4096)
  config.data.name = "imagenette"
  config.views.update(recipe="multicrop", size=128, num_global=4, num_local=0, global_scale=(0.08, 1.0),
                      small_images=False)
  config.model.update(backbone="vit_small", patch_size=8, projector="2048-2048-256", projector_activation="gelu",
                      dtype="bfloat16")
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.05, warmup_epochs=0.0,
                      end_lr_fraction=1.0)
  config.train.update(global_batch_size=256, num_epochs=800, log_every=50, checkpoint_every=2000, eval_every=3700)

  def method(name):
    return lambda c: c.method.update(name=name, lam=LAMBDAS[name])

  return apply_arg(config, arg, {name: method(name) for name in LAMBDAS})
