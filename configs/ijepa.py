"""I-JEPA (Assran et al., 2023) on the bundled `shapes`, on a CPU: a comparator of SAG-VICReg's and VISReg's tables.

A small ViT with 2 px patches on 16 px views (an 8 x 8 grid) predicts, from a
context block, an EMA target ViT's tokens of 4 target blocks, through a
2-block predictor of width 96. One view per image, a random resized crop
(scale 0.3-1) and nothing else, as the paper augments. Probes read the target
encoder's mean patch token (the paper's Sec. 5).

  python -m jax_ssl.main --config configs/ijepa.py --workdir workdirs/ijepa

Arguments: `:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale


def get_config(arg=None):
  config = bundled_base("ijepa")
  shapes_scale(config)
  # A short run: the target follows faster than the paper's 0.996.
  config.method.ijepa.update(predictor_width=96, predictor_depth=2, predictor_heads=4, tau_base=0.99)
  config.views.update(recipe="multicrop", num_global=1, num_local=0, global_scale=(0.3, 1.0))
  del config.views.overrides["crop_scale"]
  config.views.overrides.update(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                                solarize_prob=0.0)
  config.model.update(backbone="vit_micro", patch_size=2, pool="mean")
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.04)
  return apply_arg(config, arg)
