"""VISReg, LeJEPA or plain SWD with ViT-S/8 on Imagenette: the VISReg paper's Section 3.2 / App. C setup.

  python -m jax_ssl.main --config configs/recipes/imagenette_vits8.py:visreg --workdir workdirs/visreg_imagenette \
      --config.data.data_dir=$TFDS_DATA_DIR
  python -m jax_ssl.main --config configs/recipes/imagenette_vits8.py:lejepa --workdir workdirs/lejepa_imagenette \
      --config.data.data_dir=$TFDS_DATA_DIR

As the paper's text gives it: ViT-S/8 at 128 px, 4 global views with crop
scale (0.08, 1) and no local views, batch 256 (32 per GPU on 8 GPUs), AdamW
at 1e-3 without a schedule, projection dimension D = 256, 800 epochs.
lambda = 0.6 for VISReg and SWD, 0.02 for SIGReg (LeJEPA). The projector
(2048-2048-256, BN, GELU) follows the paper's ImageNet appendix; its weight
decay (0.05) is LeJEPA's.

Slices: the paper draws K = 4096 per GPU on 8 GPUs; `method.visreg.num_slices` is
the total over the mesh, 32,768 here (8 x 4096), split over the devices.

`:official` switches to the authors' own configuration (configs/imagenette.yaml
of the official code), which differs from the text: 1 warmup epoch then cosine
to lr / 1000, gradient clipping at norm 1.0, colour jitter 0.8/0.8/0.8 with hue
0.1, projection dimension 128, stochastic depth 0.1 (ViT-S in their model zoo).

Arguments: `:visreg` (default), `:lejepa`, `:swd`; `:official`; `:visreg_star`
(VISReg*: lambda_scale 0.5, lambda_shape 2, lambda_center 0.5); `:smoke`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config

LAMBDAS = {"visreg": 0.6, "lejepa": 0.02, "swd": 0.6}
# The paper's GPUs and slices per GPU: the total over the mesh is their product.
PAPER_GPUS, PAPER_SLICES_PER_GPU = 8, 4096


def official(config) -> None:
  """The official configs/imagenette.yaml where it differs from the paper's text."""
  config.optim.update(warmup_epochs=1.0, end_lr_fraction=1e-3, grad_clip_norm=1.0)
  config.views.overrides.update(brightness=0.8, contrast=0.8, saturation=0.8, hue=0.1)
  config.model.update(projector="2048-2048-128", drop_path=0.1)


def visreg_star(config) -> None:
  """VISReg*: more weight on the shape term (the paper's setting for low-quality data)."""
  config.method.visreg.update(lambda_scale=0.5, lambda_shape=2.0, lambda_center=0.5)


def get_config(arg=None):
  config = base_config()
  config.method.name = "visreg"
  for name, lam in LAMBDAS.items():  # the comparison's three methods: each its weight, the same slices
    config.method[name].update(lam=lam, num_slices=PAPER_GPUS * PAPER_SLICES_PER_GPU)
  config.data.name = "imagenette"
  config.views.update(recipe="multicrop", size=128, num_global=4, num_local=0, global_scale=(0.08, 1.0),
                      small_images=False)
  config.model.update(backbone="vit_small", patch_size=8, projector="2048-2048-256", projector_activation="gelu",
                      dtype="bfloat16")
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.05, warmup_epochs=0.0,
                      end_lr_fraction=1.0)
  config.train.update(global_batch_size=256, num_epochs=800, log_every=50, checkpoint_every=2000, eval_every=3700)

  variants = {name: (lambda c, name=name: setattr(c.method, "name", name)) for name in LAMBDAS}
  variants.update(official=official, visreg_star=visreg_star)
  return apply_arg(config, arg, variants)
