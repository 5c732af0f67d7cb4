"""CLIP (Radford et al., 2021) on the bundled `shapes` and their generated captions, on a CPU.

Each image is paired with a caption of its label, drawn from five templates
that name its colour, texture, shape and (in two of them) family
(`jax_ssl.data.captions`). The image side is the small CNN of the `shapes`
configs with a linear projection to 64 dimensions; the text side a 2-block
transformer of width 64. One view per image, cropped (scale 0.5-1) and
flipped: no colour jitter, since the captions name the colour. The report
adds zero-shot accuracy at each label level, the prompts being every
caption of every class.

  python -m jax_ssl.main --config configs/clip.py --workdir workdirs/clip

configs/clip_tregs.py adds T-REG on both modalities' embeddings. Arguments:
`:smoke`, `:first_half` / `:second_half`.
"""

from configs.common import apply_arg
from configs.common import bundled_base
from configs.common import shapes_scale


def clip_config(method: str):
  """configs/clip.py's run for `method` (`clip` or `clip+tregs`)."""
  config = bundled_base(method)
  shapes_scale(config)
  config.method.clip.update(text_width=64, text_depth=2, text_heads=4)
  config.views.update(recipe="multicrop", num_global=1, num_local=0, global_scale=(0.5, 1.0))
  del config.views.overrides["crop_scale"]
  config.views.overrides.update(flip_prob=0.5, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                                solarize_prob=0.0)
  config.model.projector = "64"  # CLIP's image projection: one Linear
  config.optim.update(name="adamw", base_lr=1e-3, scale_lr_by_batch=False, weight_decay=0.1)
  return config


def get_config(arg=None):
  return apply_arg(clip_config("clip"), arg)
