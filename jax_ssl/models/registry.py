"""Backbones by name, for configs: `build_backbone("resnet50", stem="imagenet", rngs=...)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import resnet
from jax_ssl.models import small_cnn
from jax_ssl.models import vit


def _vit(size: str) -> Callable[..., vit.VisionTransformer]:
  def build(**kwargs) -> vit.VisionTransformer:
    return vit.vision_transformer(size, **kwargs)
  return build


# name -> (constructor, the keyword arguments a config may set besides rngs and dtype).
_BUILDERS: dict[str, tuple[Callable[..., nnx.Module], tuple[str, ...]]] = {
    "resnet18": (resnet.resnet18, ("stem", "width", "in_channels")),
    "resnet34": (resnet.resnet34, ("stem", "width", "in_channels")),
    "resnet50": (resnet.resnet50, ("stem", "width", "in_channels")),
    "vit_tiny": (_vit("tiny"), ("patch_size", "image_size", "in_channels", "drop_path_rate")),
    "vit_small": (_vit("small"), ("patch_size", "image_size", "in_channels", "drop_path_rate")),
    "vit_base": (_vit("base"), ("patch_size", "image_size", "in_channels", "drop_path_rate")),
    "vit_large": (_vit("large"), ("patch_size", "image_size", "in_channels", "drop_path_rate")),
    "small_cnn": (small_cnn.SmallCNN, ("width", "in_channels")),
}

BACKBONES: tuple[str, ...] = tuple(_BUILDERS)


def build_backbone(name: str, *, rngs: nnx.Rngs, dtype: Any = jnp.float32, **kwargs: Any) -> nnx.Module:
  """The backbone called `name` (one of `BACKBONES`), built with `kwargs`.

  Accepted kwargs: `stem` ("imagenet" by default, or "cifar"), `width`,
  `in_channels` for ResNets; `patch_size` (16), `image_size` (224),
  `in_channels`, `drop_path_rate` (0) for ViTs; `width` (16), `in_channels` (3) for `small_cnn`.
  Every backbone has `num_features` and maps (B, H, W, C) images to
  (B, num_features).

  Args:
    name: the backbone's name, one of `BACKBONES`.
    rngs: `nnx.Rngs` used to initialise the parameters.
    dtype: computation dtype passed to the backbone.
    **kwargs: the backbone's own keyword arguments (those listed above).

  Returns:
    The built backbone, an `nnx.Module`.

  Raises:
    ValueError: for an unknown name (listing the known ones) or a keyword
      argument the backbone does not take (listing those it does).
  """
  if name not in _BUILDERS:
    raise ValueError(f"Unknown backbone {name!r}; known backbones: {', '.join(BACKBONES)}.")
  build, accepted = _BUILDERS[name]
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ValueError(f"Backbone {name!r} got unknown argument(s) {unknown}; "
                     f"it accepts {list(accepted)} (plus rngs and dtype).")
  return build(**kwargs, dtype=dtype, rngs=rngs)
