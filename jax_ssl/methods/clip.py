"""Language-image pretraining: CLIP's images against their captions."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.losses import clip as clip_lib
from jax_ssl.methods.base import HeadKind
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import check
from jax_ssl.methods.base import check_transformer


@dataclasses.dataclass(frozen=True)
class CLIP(Method):
  """CLIP (Radford et al., ICML 2021): images and their captions meet in one embedding space.

  The trainer embeds each image's global view with the backbone and the
  projector (`model.projector`, one Linear in CLIP) and a caption drawn for
  its label (`data.captions`) with a `models.TextTransformer` of
  `text_width`, `text_depth`, `text_heads`, projected to the same width.
  `Embeddings.global_views` holds the two modalities, images then texts,
  each L2-normalised (CLIP's embeddings), so `clip+tregs` adds T-REG on each
  modality's embeddings on the unit sphere (T-REGS, Table 3): the MST term
  spreads what the loss compares, and the sphere term is zero.
  The loss is `losses.clip_loss` at the learned logit scale, which starts at
  `1 / init_temperature` and is capped at `max_logit_scale`. Needs a dataset
  with captions and one global view.
  """

  name: ClassVar[str] = "clip"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[HeadKind] = "clip"
  smoke_caps: ClassVar[dict[str, int]] = {"text_width": 32, "text_depth": 1, "text_heads": 2}
  init_temperature: float = 0.07
  max_logit_scale: float = clip_lib.MAX_LOGIT_SCALE
  text_width: int = 512
  text_depth: int = 12
  text_heads: int = 8

  def __post_init__(self):
    check(self.init_temperature > 0, f"{self.name}.init_temperature must be positive; got {self.init_temperature}.")
    check(self.max_logit_scale >= 1 / self.init_temperature, f"{self.name}.max_logit_scale caps the learned "
          f"1 / temperature, so it is at least 1 / init_temperature = {1 / self.init_temperature:g}; got "
          f"{self.max_logit_scale}.")
    check_transformer(self, "text")

  def loss(self, embeddings, key, directions=None):
    images, texts = embeddings.two_views
    loss = losses.clip_loss(images, texts, embeddings.log_logit_scale, self.max_logit_scale)
    logit_scale = jnp.minimum(jnp.exp(embeddings.log_logit_scale), self.max_logit_scale)
    return loss, {"contrastive": loss, "logit_scale": logit_scale}
