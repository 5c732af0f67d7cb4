"""MAE ViT-B/16 on ImageNet-1K, the paper's pretraining recipe (He et al., CVPR 2022, App. A.1).

  python -m jax_ssl.main --config configs/recipes/mae_imagenet_vitb16.py --workdir workdirs/mae_imagenet \
      --config.data.data_dir=$TFDS_DATA_DIR

The comparator of VISReg's tables. 75% of the 196 patches hidden; decoder of
width 512, depth 8, 16 heads; normalised-pixel targets. One view: a random
resized crop (scale 0.2-1) and a flip, nothing else. AdamW (beta2 0.95),
weight decay 0.05, batch 4096, learning rate 1.5e-4 x batch / 256 after 40
warmup epochs, cosine to 0; bfloat16; 800 epochs (`:epochs1600` for the
paper's longest schedule).

Not as in the paper: the encoder's position embedding is learned (the
paper's is fixed sine-cosine; the decoder's is, here too).
Arguments: `:epochs1600`, `:smoke`.
"""

from configs.common import apply_arg
from jax_ssl.train.config import base_config


def epochs1600(config) -> None:
  """The paper's longest schedule."""
  config.train.num_epochs = 1600


def get_config(arg=None):
  config = base_config()
  config.method.name = "mae"
  config.method.mae.update(mask_ratio=0.75, norm_pix_loss=True, decoder_width=512, decoder_depth=8,
                           decoder_heads=16)
  config.data.name = "imagenet2012"
  config.views.update(recipe="multicrop", size=224, num_global=1, num_local=0, global_scale=(0.2, 1.0),
                      small_images=False)
  config.views.overrides.update(flip_prob=0.5, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                                solarize_prob=0.0)
  config.model.update(backbone="vit_base", patch_size=16, dtype="bfloat16")
  config.optim.update(name="adamw", base_lr=1.5e-4, scale_lr_by_batch=True, weight_decay=0.05, b2=0.95,
                      warmup_epochs=40.0, end_lr_fraction=0.0)
  config.train.update(global_batch_size=4096, num_epochs=800, log_every=100, checkpoint_every=2500,
                      eval_every=25000)
  return apply_arg(config, arg, {"epochs1600": epochs1600})
