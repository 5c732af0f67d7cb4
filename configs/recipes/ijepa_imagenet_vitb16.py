"""I-JEPA ViT-B/16 on ImageNet-1K, the paper's pretraining recipe (Assran et al., CVPR 2023, App. A.1 and its code).

  python -m jax_ssl.main --config configs/recipes/ijepa_imagenet_vitb16.py --workdir workdirs/ijepa_imagenet \
      --config.data.data_dir=$TFDS_DATA_DIR

The comparator of SAG-VICReg's Table 3 and VISReg's tables. On the 14 x 14
patch grid, 4 target blocks (scale 0.15-0.2, aspect 0.75-1.5) and one context
block (scale 0.85-1, square) with the targets cut out; a predictor of width
384 and depth 12 with the encoder's 12 heads; the target's momentum linear
from 0.996 to 1. One view: a random resized crop (scale 0.3-1), no flip, no
colour. AdamW, weight decay 0.04, batch 2048, learning rate 1e-3 after 40
warmup epochs, cosine to 1e-6; bfloat16; 600 epochs, the paper's ViT-B/16
schedule. Probes read the target encoder's mean patch token.

Not as in the paper: the warmup starts at 0 (the code's at 2e-4); the weight
decay stays at 0.04 (the code's rises to 0.4 on a cosine); our ViT keeps its
CLS token, which every patch may attend to (I-JEPA's ViT has none); the
predictor's depth and width are those of the published ViT-H configs (the
paper gives none for ViT-B).
Arguments: `:smoke`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config


def get_config(arg=None):
  config = base_config()
  config.method.name = "ijepa"
  config.method.ijepa.update(num_targets=4, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5),
                             context_scale=(0.85, 1.0), predictor_width=384, predictor_depth=12,
                             predictor_heads=12, tau_base=0.996)
  config.data.name = "imagenet2012"
  config.views.update(recipe="multicrop", size=224, num_global=1, num_local=0, global_scale=(0.3, 1.0),
                      small_images=False)
  config.views.overrides.update(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                                solarize_prob=0.0)
  config.model.update(backbone="vit_base", patch_size=16, pool="mean", dtype="bfloat16")
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.04,
                      warmup_epochs=40.0, end_lr_fraction=1e-3)
  config.train.update(global_batch_size=2048, num_epochs=600, log_every=100, checkpoint_every=2500,
                      eval_every=25000)
  return apply_arg(config, arg)
