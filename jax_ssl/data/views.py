"""View recipes: what augmentations each view of an image gets, and batched multi-crop.

A `ViewSpec` is a frozen, hashable record of one view's augmentation
parameters, so it can be a static argument of `jit`. Presets return the
published recipes as tuples of specs; `views_from_config` builds the same from
a config, so a recipe is data rather than code. `augment_batch` and
`multi_crop` run `augment_view` over a batch on device, one key per
image.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from jax_ssl.data import augment
from jax_ssl.data.catalog import IMAGENET_MEAN
from jax_ssl.data.catalog import IMAGENET_STD

Range = tuple[float, float]

# At or below this side, presets switch to the small-image (CIFAR/STL) recipe.
SMALL_IMAGE_SIZE = 64

_PROBABILITY_FIELDS = ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob", "solarize_prob")
_STRENGTH_FIELDS = ("brightness", "contrast", "saturation", "hue")
_RANGE_FIELDS = ("crop_scale", "crop_ratio", "blur_sigma")


@dataclasses.dataclass(frozen=True)
class ViewSpec:
  """Augmentation parameters of one view; see `augment_view` for the pipeline.

  Defaults are the BYOL/VICReg colour recipe without blur or solarisation.
  Sequences are stored as tuples of floats, so specs compare and hash by value.
  """

  size: int
  crop_scale: Range = (0.08, 1.0)
  crop_ratio: Range = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.2
  hue: float = 0.1
  grayscale_prob: float = 0.2
  blur_prob: float = 0.0
  blur_sigma: Range = (0.1, 2.0)
  solarize_prob: float = 0.0
  mean: tuple[float, ...] = IMAGENET_MEAN
  std: tuple[float, ...] = IMAGENET_STD

  def __post_init__(self):
    # Normalise containers (configs give lists) so equal specs hash equally.
    for name in _RANGE_FIELDS + ("mean", "std"):
      try:
        object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))
      except TypeError as error:
        raise ValueError(f"ViewSpec.{name} must be a sequence of numbers, got {getattr(self, name)!r}.") from error
    for name in _PROBABILITY_FIELDS + _STRENGTH_FIELDS:
      try:
        object.__setattr__(self, name, float(getattr(self, name)))
      except (TypeError, ValueError) as error:
        raise ValueError(f"ViewSpec.{name} must be a number, got {getattr(self, name)!r}.") from error
    if isinstance(self.size, bool) or not isinstance(self.size, numbers.Integral) or self.size < 1:
      raise ValueError(f"ViewSpec.size must be an integer >= 1, got {self.size!r}.")
    object.__setattr__(self, "size", int(self.size))
    for name in _PROBABILITY_FIELDS:
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"ViewSpec.{name} must be a probability in [0, 1], got {value!r}.")
    for name in _STRENGTH_FIELDS[:3]:
      if not getattr(self, name) >= 0.0:
        raise ValueError(f"ViewSpec.{name} must be >= 0, got {getattr(self, name)!r}.")
    if not 0.0 <= self.hue <= 0.5:
      raise ValueError(f"ViewSpec.hue must be in [0, 0.5] (a fraction of a turn), got {self.hue!r}.")
    for name in _RANGE_FIELDS:
      low_high = getattr(self, name)
      if len(low_high) != 2 or not 0.0 < low_high[0] <= low_high[1]:
        raise ValueError(f"ViewSpec.{name} must be (low, high) with 0 < low <= high, got {low_high}.")
    if self.crop_scale[1] > 1.0:
      raise ValueError(f"ViewSpec.crop_scale is a fraction of the image area, at most 1, got {self.crop_scale}.")
    if len(self.mean) < 1 or len(self.std) != len(self.mean):
      raise ValueError(f"ViewSpec.std must have as many entries as ViewSpec.mean, got {self.mean} and {self.std}.")
    if min(self.std) <= 0.0:
      raise ValueError(f"ViewSpec.std must be positive, got {self.std}.")


# ---------------------------------------------------------------------------
# Batched views.


def augment_view(key: jax.Array, image: jax.Array, spec: ViewSpec) -> jax.Array:
  """One augmented view: uint8 `(H, W, C)` -> float32 `(spec.size, spec.size, C)`.

  To [0, 1], random resized crop, flip, colour jitter, grayscale, blur (kernel
  from the output size), solarize, normalise, in that order, each step with
  its own key split from `key`.

  Args:
    key: PRNG key of this view.
    image: uint8 `(H, W, C)` image (or float in [0, 1]), C in (1, 3).
    spec: the view's augmentation parameters.

  Returns:
    The normalised float32 view, `(spec.size, spec.size, C)`.

  Raises:
    ValueError: if `image` is not one `(H, W, C)` image with C in (1, 3), or if
      `spec.mean` / `spec.std` have neither 1 nor C entries.
  """
  augment.check_image("image", image)
  crop_key, flip_key, jitter_key, gray_key, blur_key, solarize_key = jax.random.split(key, 6)
  view = augment.random_resized_crop(crop_key, augment.to_float(image), spec.size, spec.crop_scale, spec.crop_ratio)
  view = augment.random_flip(flip_key, view, spec.flip_prob)
  view = augment.color_jitter(
      jitter_key, view, spec.brightness, spec.contrast, spec.saturation, spec.hue, spec.jitter_prob)
  view = augment.random_grayscale(gray_key, view, spec.grayscale_prob)
  view = augment.random_gaussian_blur(blur_key, view, spec.blur_prob, spec.blur_sigma)
  view = augment.random_solarize(solarize_key, view, spec.solarize_prob)
  return augment.normalize(view, spec.mean, spec.std)


def _views_of_batch(keys: jax.Array, images: jax.Array, spec: ViewSpec) -> jax.Array:
  return jax.vmap(functools.partial(augment_view, spec=spec))(keys, images)


def _check_batch(images: jax.Array) -> None:
  if images.ndim != 4:
    raise ValueError(f"images must be a (B, H, W, C) batch, got shape {images.shape}.")


@functools.partial(jax.jit, static_argnames="spec")
def augment_batch(key: jax.Array, images: jax.Array, spec: ViewSpec) -> jax.Array:
  """One view of every image: uint8 `(B, H, W, C)` -> float32 `(B, spec.size, spec.size, C)`.

  Image i gets key i of `jax.random.split(key, B)`. Jitted, with `spec` static.

  Args:
    key: PRNG key of the batch.
    images: uint8 `(B, H, W, C)` batch (or float in [0, 1]), C in (1, 3).
    spec: the view's augmentation parameters (hashable, static).

  Returns:
    float32 `(B, spec.size, spec.size, C)` views.

  Raises:
    ValueError: if `images` is not a rank-4 batch, or as `augment_view`.
  """
  _check_batch(images)
  return _views_of_batch(jax.random.split(key, images.shape[0]), images, spec)


@functools.partial(jax.jit, static_argnames="specs")
def _multi_crop(key: jax.Array, images: jax.Array, specs: tuple[ViewSpec, ...]) -> list[jax.Array]:
  _check_batch(images)
  batch = images.shape[0]
  # Views sharing a spec (the local crops) run as one vmap over k * B images,
  # so the program holds one copy of the pipeline per distinct spec, not per
  # view. Each view's keys are the ones augment_batch would split, so view v
  # is exactly augment_batch(fold_in(key, v), images, specs[v]).
  views: list[jax.Array] = [None] * len(specs)
  for spec in dict.fromkeys(specs):
    indices = [index for index, other in enumerate(specs) if other == spec]
    keys = jnp.concatenate([jax.random.split(jax.random.fold_in(key, index), batch) for index in indices])
    repeated = jnp.concatenate([images] * len(indices)) if len(indices) > 1 else images
    outputs = _views_of_batch(keys, repeated, spec)
    for position, index in enumerate(indices):
      views[index] = outputs[position * batch:(position + 1) * batch]
  return views


def multi_crop(key: jax.Array, images: jax.Array, specs: Sequence[ViewSpec]) -> list[jax.Array]:
  """One augmented batch per spec, in spec order; view v is `augment_batch(fold_in(key, v), images, specs[v])`.

  Views of different sizes cannot share an array; `stack_by_size` groups them.
  Views that share a spec are computed in one vectorised pass.

  Args:
    key: PRNG key of the batch.
    images: uint8 `(B, H, W, C)` batch (or float in [0, 1]), C in (1, 3).
    specs: one `ViewSpec` per view.

  Returns:
    A list with one float32 `(B, specs[v].size, specs[v].size, C)` array per view.

  Raises:
    ValueError: if `images` is not a rank-4 batch, or as `augment_view`.
  """
  return _multi_crop(key, images, tuple(specs))


def stack_by_size(views: Sequence[jax.Array], specs: Sequence[ViewSpec]) -> dict[int, jax.Array]:
  """Views grouped by output size: `{size: (V_size, B, size, size, C)}`.

  Within a group views keep their spec order; groups appear in the order of
  their first view, so for `multicrop_views` the dict is `{global_size:
  globals, local_size: locals}` (one group if the two sizes are equal).

  Args:
    views: the views, each `(B, size, size, C)`, e.g. from `multi_crop`.
    specs: the spec of each view, in the same order.

  Returns:
    A dict from output size to the stacked views of that size, `(V_size, B, size, size, C)`.

  Raises:
    ValueError: if `views` and `specs` differ in length, or a view's spatial shape is not its spec's size.
  """
  if len(views) != len(specs):
    raise ValueError(f"got {len(views)} views for {len(specs)} specs.")
  groups: dict[int, list[jax.Array]] = {}
  for index, (view, spec) in enumerate(zip(views, specs)):
    if view.shape[1:3] != (spec.size, spec.size):
      raise ValueError(f"view {index} has shape {view.shape}, but its spec has size {spec.size}.")
    groups.setdefault(spec.size, []).append(view)
  return {size: jnp.stack(group) for size, group in groups.items()}


# ---------------------------------------------------------------------------
# Presets.


def _is_small(size: int, small_images: bool | None) -> bool:
  return size <= SMALL_IMAGE_SIZE if small_images is None else small_images


def vicreg_views(
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    small_images: bool | None = None,
) -> tuple[ViewSpec, ViewSpec]:
  """The asymmetric pair of VICReg (Bardes et al., 2022) and Barlow Twins (Zbontar et al., 2021).

  Both views: crop scale (0.08, 1), flip 0.5, colour jitter with p 0.8 and
  strengths 0.4/0.4/0.2/0.1, grayscale 0.2. View 1 is always blurred and never
  solarised; view 2 is blurred with p 0.1 and solarised with p 0.2.

  `small_images` (default: `size <= 64`) selects the usual CIFAR/STL variant
  (as in solo-learn): crop scale (0.2, 1) and no blur, since blurring a 32 px
  image destroys most of its content; solarisation is kept.

  Args:
    size: output side of both views.
    mean: per-channel mean used to normalise the views.
    std: per-channel standard deviation used to normalise the views.
    small_images: whether to use the small-image variant; None means `size <= 64`.

  Returns:
    The two `ViewSpec`s `(first, second)`.
  """
  small = _is_small(size, small_images)
  common = dict(
      size=size, crop_scale=(0.2, 1.0) if small else (0.08, 1.0), flip_prob=0.5, jitter_prob=0.8,
      brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, grayscale_prob=0.2, mean=mean, std=std)
  first = ViewSpec(blur_prob=0.0 if small else 1.0, solarize_prob=0.0, **common)
  second = ViewSpec(blur_prob=0.0 if small else 0.1, solarize_prob=0.2, **common)
  return first, second


def byol_views(
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    small_images: bool | None = None,
) -> tuple[ViewSpec, ViewSpec]:
  """BYOL's pair (Grill et al., 2020, table 6): the recipe VICReg later reused, so `vicreg_views`.

  Args:
    As `vicreg_views` (size, mean, std, small_images), which this returns.
  """
  return vicreg_views(size, mean, std, small_images)


def multicrop_views(
    global_size: int = 224,
    local_size: int = 96,
    num_global: int = 2,
    num_local: int = 6,
    global_scale: Range = (0.3, 1.0),
    local_scale: Range = (0.05, 0.3),
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[ViewSpec, ...]:
  """Multi-crop as in DINO (Caron et al., 2021), LeJEPA and VISReg: global views first, then local.

  Global views alternate the two views of the asymmetric pair (even index:
  blur p 1.0, no solarisation; odd: blur p 0.1, solarisation p 0.2) with crop
  scale `global_scale`; local views use `local_scale`, blur p 0.5 and no
  solarisation. All share flip 0.5, jitter p 0.8 (0.4/0.4/0.2/0.1) and
  grayscale 0.2. DINO's own scales are (0.4, 1) and (0.05, 0.4); the defaults
  here are LeJEPA's.

  Args:
    global_size: output side of the global views.
    local_size: output side of the local views.
    num_global: number of global views, at least 1.
    num_local: number of local views, at least 0.
    global_scale: `(low, high)` crop area fraction of the global views.
    local_scale: `(low, high)` crop area fraction of the local views.
    mean: per-channel mean used to normalise the views.
    std: per-channel standard deviation used to normalise the views.

  Returns:
    A tuple of `num_global + num_local` `ViewSpec`s, the global ones first.

  Raises:
    ValueError: if `num_global < 1` or `num_local < 0`, or a resulting spec is invalid (see `ViewSpec`).
  """
  if num_global < 1 or num_local < 0:
    raise ValueError(f"need num_global >= 1 and num_local >= 0, got {num_global} and {num_local}.")
  common = dict(
      flip_prob=0.5, jitter_prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1,
      grayscale_prob=0.2, mean=mean, std=std)
  global_views = tuple(
      ViewSpec(size=global_size, crop_scale=global_scale, blur_prob=1.0 if index % 2 == 0 else 0.1,
               solarize_prob=0.0 if index % 2 == 0 else 0.2, **common)
      for index in range(num_global))
  local_view = ViewSpec(size=local_size, crop_scale=local_scale, blur_prob=0.5, solarize_prob=0.0, **common)
  return global_views + (local_view,) * num_local


def simclr_views(
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    strength: float = 1.0,
    small_images: bool | None = None,
) -> tuple[ViewSpec, ViewSpec]:
  """SimCLR's symmetric pair (Chen et al., 2020, appendix A).

  Crop scale (0.08, 1), flip 0.5, colour jitter with p 0.8 and strengths
  0.8 s for brightness, contrast and saturation and 0.2 s for hue (s =
  `strength`, 1 for ImageNet, 0.5 in the paper's CIFAR runs), grayscale 0.2,
  blur p 0.5 with sigma in (0.1, 2). Small images (`size <= 64` by default)
  drop the blur, as the paper does for CIFAR-10.

  Args:
    size: output side of both views.
    mean: per-channel mean used to normalise the views.
    std: per-channel standard deviation used to normalise the views.
    strength: colour-jitter strength s.
    small_images: whether to drop the blur; None means `size <= 64`.

  Returns:
    The same `ViewSpec` twice, `(spec, spec)`.

  Raises:
    ValueError: if `strength` is negative or above 2.5 (a hue shift over half a turn).
  """
  spec = ViewSpec(
      size=size, crop_scale=(0.08, 1.0), flip_prob=0.5, jitter_prob=0.8, brightness=0.8 * strength,
      contrast=0.8 * strength, saturation=0.8 * strength, hue=0.2 * strength, grayscale_prob=0.2,
      blur_prob=0.0 if _is_small(size, small_images) else 0.5, solarize_prob=0.0, mean=mean, std=std)
  return spec, spec


# ---------------------------------------------------------------------------
# Configs.


def recipe_views(views_config: Any, mean: Sequence[float], std: Sequence[float]) -> tuple[ViewSpec, ...]:
  """The views a run's `config.views` section describes, normalised with the dataset's `mean` and `std`.

  `views_config.recipe` names a preset: `multicrop` (`multicrop_views` with the section's sizes, counts
  and scales) or a two-view pair (`vicreg`, `byol`, `simclr`, with `small_images`); then every field of
  `views_config.overrides` is set on every view (e.g. `flip_prob=0.0` for digits).

  Args:
    views_config: the `config.views` section: `recipe`, `size`, `small_images` and `overrides`, plus
      `local_size`, `num_global`, `num_local`, `global_scale` and `local_scale` for `multicrop`.
    mean: per-channel mean used to normalise the views (the dataset's).
    std: per-channel standard deviation used to normalise the views (the dataset's).

  Returns:
    A tuple of `ViewSpec`s, one per view of the recipe.

  Raises:
    KeyError: if `views_config.recipe` is not one of the known recipes.
    TypeError: if an override is not a `ViewSpec` field.
    ValueError: if the resulting specs are invalid (see `ViewSpec`).
  """
  v = views_config
  if v.recipe == "multicrop":
    specs = multicrop_views(v.size, v.local_size, v.num_global, v.num_local, tuple(v.global_scale),
                            tuple(v.local_scale), mean=mean, std=std)
  else:
    pairs = {"vicreg": vicreg_views, "byol": byol_views, "simclr": simclr_views}
    specs = pairs[v.recipe](v.size, mean=mean, std=std, small_images=v.small_images)
  overrides = dict(v.overrides)
  return tuple(dataclasses.replace(spec, **overrides) for spec in specs)


VIEW_SPEC_FIELDS = tuple(field.name for field in dataclasses.fields(ViewSpec))
RECIPES = ("vicreg", "byol", "simclr", "multicrop")


def check_config(views_config: Any) -> None:
  """Raise `ValueError` (one line naming the `views.<field>`) if a run's `views` section makes no valid views.

  Checks the recipe's name, a positive view side and number of global views, a non-negative number
  of local views, that only `multicrop` takes other counts than two global views, that every
  override is a `ViewSpec` field other than `size` with a valid value, and that the recipe's views
  build (`recipe_views`).

  Args:
    views_config: the `views` section of a run config (see `recipe_views`).

  Raises:
    ValueError: for the first problem found.
  """
  v = views_config
  if v.recipe not in RECIPES:
    raise ValueError(f"views.recipe must be one of {', '.join(RECIPES)}; got {v.recipe!r}.")
  for field in ("size", "num_global"):
    if not v[field] > 0:
      raise ValueError(f"views.{field} must be positive, got {v[field]!r}.")
  if not v.num_local >= 0:
    raise ValueError(f"views.num_local must not be negative, got {v.num_local!r}.")
  if v.recipe != "multicrop" and (v.num_global != 2 or v.num_local != 0):
    raise ValueError(f"views.recipe {v.recipe!r} makes 2 global views and no local ones; "
                     "use views.recipe='multicrop' for other counts.")
  overridable = [field for field in VIEW_SPEC_FIELDS if field != "size"]
  for field in v.overrides:
    if field not in overridable:
      raise ValueError(f"views.overrides.{field} is not a view field; fields: {', '.join(overridable)}.")
  try:
    for spec in multicrop_views(32, 16, 1, 1):  # a global and a local view: every field an override may set
      ViewSpec(**{**dataclasses.asdict(spec), **dict(v.overrides)})
  except (TypeError, ValueError) as error:
    raise ValueError(f"views.overrides: {error}") from None
  try:
    recipe_views(v, mean=(0.0,), std=(1.0,))
  except (TypeError, ValueError) as error:
    raise ValueError(f"views: {error}") from None


def _as_dict(entry: Any) -> dict[str, Any]:
  """A plain dict from a dict, an ml_collections (Frozen)ConfigDict or a ViewSpec."""
  if isinstance(entry, ViewSpec):
    return dataclasses.asdict(entry)
  if isinstance(entry, Mapping) or hasattr(entry, "items"):
    return dict(entry.items())
  raise TypeError(f"each view must be a dict, ConfigDict or ViewSpec, got {type(entry).__name__}.")


def views_from_config(cfg: Sequence[Any]) -> tuple[ViewSpec, ...]:
  """ViewSpecs from a list of dicts / ConfigDicts keyed by ViewSpec field names.

  Missing fields take ViewSpec's defaults (except `size`, which is required);
  an unknown key raises ValueError naming it and listing the valid ones.
  `views_from_config([dataclasses.asdict(s) for s in specs]) == tuple(specs)`.

  Args:
    cfg: a sequence of views, each a dict, an ml_collections (Frozen)ConfigDict or a `ViewSpec`.

  Returns:
    A tuple with one `ViewSpec` per entry of `cfg`, in order.

  Raises:
    TypeError: if `cfg` is not a list-like sequence, or one of its entries is not a mapping or `ViewSpec`.
    ValueError: if an entry has an unknown key, lacks `size`, or holds invalid values.
  """
  if isinstance(cfg, (str, bytes, Mapping)) or not isinstance(cfg, Sequence):
    raise TypeError(f"cfg must be a list of views, got {type(cfg).__name__}.")
  specs = []
  for index, entry in enumerate(cfg):
    fields = _as_dict(entry)
    unknown = sorted(set(fields) - set(VIEW_SPEC_FIELDS))
    if unknown:
      raise ValueError(
          f"view {index}: unknown key {unknown[0]!r}; valid keys are {', '.join(VIEW_SPEC_FIELDS)}.")
    if "size" not in fields:
      raise ValueError(f"view {index}: missing required key 'size'.")
    specs.append(ViewSpec(**fields))
  return tuple(specs)
