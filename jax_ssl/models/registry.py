"""Backbones by name, for configs: `build_backbone("resnet50", stem="imagenet", rngs=...)`."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import heads
from jax_ssl.models import resnet
from jax_ssl.models import small_cnn
from jax_ssl.models import vit


def _vit(size: str) -> Callable[..., vit.VisionTransformer]:
  def build(**kwargs) -> vit.VisionTransformer:
    return vit.vision_transformer(size, **kwargs)
  return build


_VIT_ARGUMENTS = ("patch_size", "image_size", "in_channels", "drop_path_rate", "pool")

# name -> (constructor, the keyword arguments a config may set besides rngs and dtype).
_BUILDERS: dict[str, tuple[Callable[..., nnx.Module], tuple[str, ...]]] = {
    "resnet18": (resnet.resnet18, ("stem", "width", "in_channels")),
    "resnet34": (resnet.resnet34, ("stem", "width", "in_channels")),
    "resnet50": (resnet.resnet50, ("stem", "width", "in_channels")),
    "vit_micro": (_vit("micro"), _VIT_ARGUMENTS),
    "vit_tiny": (_vit("tiny"), _VIT_ARGUMENTS),
    "vit_small": (_vit("small"), _VIT_ARGUMENTS),
    "vit_base": (_vit("base"), _VIT_ARGUMENTS),
    "vit_large": (_vit("large"), _VIT_ARGUMENTS),
    "small_cnn": (small_cnn.SmallCNN, ("width", "in_channels")),
}

BACKBONES: tuple[str, ...] = tuple(_BUILDERS)


def build_backbone(name: str, *, rngs: nnx.Rngs, dtype: Any = jnp.float32, **kwargs: Any) -> nnx.Module:
  """The backbone called `name` (one of `BACKBONES`), built with `kwargs`.

  Accepted kwargs: `stem` ("imagenet" by default, or "cifar"), `width`,
  `in_channels` for ResNets; `patch_size` (16), `image_size` (224),
  `in_channels`, `drop_path_rate` (0), `pool` ("cls") for ViTs; `width` (16), `in_channels` (3) for `small_cnn`.
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


# Values the string fields of a run's `model` section may take.
MODEL_CHOICES = {
    "stem": ("cifar", "imagenet"),
    "projector_activation": tuple(heads.ACTIVATIONS),
    "dtype": ("float32", "bfloat16"),
    "pool": vit.POOLS,
}


def check_config(model_config: Any, view_sizes: Mapping[str, int] | None = None) -> None:
  """Raise `ValueError` (one line naming the `model.<field>`) if a run's `model` section cannot be built.

  Checks the backbone's name, the string choices (`MODEL_CHOICES`), positive `width` and
  `patch_size`, `drop_path` in [0, 1) and only for ViTs, `pool` other than "cls" only for ViTs,
  parseable `projector` and `predictor` widths, and, for ViTs, that every view side is a multiple of the patch size.

  Args:
    model_config: the `model` section of a run config (attribute access: `ConfigDict` or alike).
    view_sizes: the sides of the images the backbone will see, keyed by the config key that sets
      each (e.g. `{"views.size": 224, "views.local_size": 96}`); None or empty skips the patch check.

  Raises:
    ValueError: for the first problem found.
  """
  model = model_config
  if model.backbone not in BACKBONES:
    raise ValueError(f"model.backbone {model.backbone!r} is unknown; backbones: {', '.join(BACKBONES)}.")
  for field, allowed in MODEL_CHOICES.items():
    if model[field] not in allowed:
      raise ValueError(f"model.{field} must be one of {', '.join(allowed)}; got {model[field]!r}.")
  for field in ("width", "patch_size"):
    if not model[field] > 0:
      raise ValueError(f"model.{field} must be positive, got {model[field]!r}.")
  if not 0.0 <= model.drop_path < 1.0:
    raise ValueError(f"model.drop_path is a probability in [0, 1), got {model.drop_path}.")
  is_vit = model.backbone.startswith("vit")
  if model.drop_path and not is_vit:
    raise ValueError(f"model.drop_path (stochastic depth) applies to ViT backbones, not {model.backbone!r}; "
                     "set it to 0.")
  if model.pool != "cls" and not is_vit:
    raise ValueError(f"model.pool chooses a ViT's representation; {model.backbone!r} always averages its "
                     "feature map: set it to 'cls'.")
  for field in ("projector", "predictor"):
    try:
      heads.parse_spec(model[field])
    except ValueError as error:
      raise ValueError(f"model.{field}: {error}") from None
  for key, side in (view_sizes or {}).items() if is_vit else ():
    if side % model.patch_size:
      raise ValueError(f"{key} = {side} must be a multiple of model.patch_size = {model.patch_size}.")
