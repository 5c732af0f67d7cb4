"""Masked image modelling: MAE reconstructs the patches a ViT did not see."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jax_ssl import losses
from jax_ssl.methods.base import HeadKind
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import check
from jax_ssl.methods.base import check_transformer


@dataclasses.dataclass(frozen=True)
class MAE(Method):
  """MAE (He et al., CVPR 2022): reconstruct the hidden patches of each global view from its visible ones.

  The trainer hides `mask_ratio` of every view's patches, encodes the rest
  with the ViT and decodes all of them (`models.MAEDecoder` of
  `decoder_width`, `decoder_depth`, `decoder_heads`); the loss is
  `losses.mae_loss` on the hidden patches, averaged over the views. Needs a
  ViT backbone.
  """

  name: ClassVar[str] = "mae"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[HeadKind] = "mae"
  smoke_caps: ClassVar[dict[str, int]] = {"decoder_width": 32, "decoder_depth": 1, "decoder_heads": 2}
  mask_ratio: float = 0.75
  norm_pix_loss: bool = True
  decoder_width: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16

  def __post_init__(self):
    check(0.0 < self.mask_ratio < 1.0, f"{self.name}.mask_ratio is the fraction of patches hidden, in (0, 1); "
          f"got {self.mask_ratio}.")
    check_transformer(self, "decoder", sincos_positions=True)

  def loss(self, embeddings, key, directions=None):
    views = [losses.mae_loss(predictions, patches, mask, self.norm_pix_loss)
             for predictions, patches, mask in zip(embeddings.reconstructions, embeddings.patches, embeddings.mask)]
    loss = sum(views) / len(views)
    return loss, {"reconstruction": loss}
