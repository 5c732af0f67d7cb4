"""VISReg-B: ViT-B/16 on ImageNet-1K, the VISReg paper's appendix recipe (Wu et al., 2026, App. B).

  python -m jax_ssl.main --config configs/recipes/visreg_imagenet_vitb16.py --workdir workdirs/visreg_imagenet \
      --config.data.data_dir=$TFDS_DATA_DIR

DINO-style multi-crop: 4 global 224 px crops (scale 0.3-1) and 6 local 96 px
crops (scale 0.05-0.3), flip, colour jitter p 0.8, grayscale 0.2, blur p 0.5,
solarize p 0.2. AdamW, weight decay 0.05, bfloat16, learning rate 9e-4
(batch 512), 5 warmup epochs then cosine to lr / 1000, lambda 0.9, projector
2048-2048-256 with BN and GELU, K = 2048 slices, 400 epochs. One deviation:
the paper projects the concatenated CLS tokens of the last two layers; this
projects the last CLS token. Arguments: `:smoke`.
"""

from jax_ssl.train.config import apply_arg
from jax_ssl.train.config import base_config


def get_config(arg=None):
  config = base_config()
  config.method.update(name="visreg", lam=0.9, num_slices=2048)
  config.data.name = "imagenet2012"
  config.views.update(recipe="multicrop", size=224, local_size=96, num_global=4, num_local=6,
                      global_scale=(0.3, 1.0), local_scale=(0.05, 0.3), small_images=False)
  config.views.overrides.update(blur_prob=0.5, solarize_prob=0.2)
  config.model.update(backbone="vit_base", patch_size=16, projector="2048-2048-256", projector_activation="gelu",
                      dtype="bfloat16")
  config.optim.update(name="adamw", base_lr=9e-4, scale_lr_by_batch=False, weight_decay=0.05, warmup_epochs=5.0,
                      end_lr_fraction=1e-3)
  config.train.update(global_batch_size=512, num_epochs=400, log_every=100, checkpoint_every=2500, eval_every=25000)
  return apply_arg(config, arg)
