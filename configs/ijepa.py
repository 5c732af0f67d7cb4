"""I-JEPA (Assran et al., 2023) on the bundled `shapes`, on a CPU: a comparator of SAG-VICReg's and VISReg's tables.

ViT-Micro (2 blocks of width 64) with 2 px patches on 16 px views (an 8 x 8
grid) predicts, from a context block, an EMA target ViT's tokens of 4 target
blocks, through a 1-block predictor of width 48. One view per image, a random
resized crop (scale 0.3-1) and nothing else, as the paper augments. Probes
read the target encoder's mean patch token (the paper's Sec. 5). Batch 64 for
2000 steps: the predictor runs once per target block on the whole grid, which
makes a step of batch 128 cost about 1 s on 2 CPU cores; this one takes about
0.4 s (13 minutes a run).

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
  config.method.ijepa.update(predictor_width=48, predictor_depth=1, predictor_heads=4, tau_base=0.99)
  config.train.update(global_batch_size=64, num_steps=2000)
  config.views.update(recipe="multicrop", num_global=1, num_local=0, global_scale=(0.3, 1.0))
  del config.views.overrides["crop_scale"]
  config.views.overrides.update(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                                solarize_prob=0.0)
  config.model.update(backbone="vit_micro", patch_size=2, pool="mean")
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.04)
  return apply_arg(config, arg)
