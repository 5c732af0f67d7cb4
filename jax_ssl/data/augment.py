"""Image augmentations for self-supervised views, one image at a time, on device.

Every op takes ONE float32 image `(H, W, C)` with values in [0, 1] and returns
an image of the same kind; `views.augment_view` chains them into the standard
SimCLR/BYOL/VICReg pipeline. They are pure functions of an explicit PRNG key:
batches are made by `jax.vmap` with one key per image (see `views.py`), so
the whole pipeline runs inside `jit` on the accelerator.

Each op makes ONE draw from its key (a vector of uniforms, sliced): every
`jax.random` call inlines its own Threefry hash, and separate calls of
different shapes multiply XLA's compile time (the crop sampler compiled 5x
slower on CPU with four draws than with one).

Random choices are traced values: "apply with probability p" is a Bernoulli
draw fed to `lax.cond` (a select under `vmap`), never Python control flow.
Only *static* settings (shapes, kernel size, a probability or strength that is
a plain Python number equal to 0) change the traced program: an op that can
never fire is left out, which gives the same result without paying for it.

C = 3 is RGB. C = 1 is accepted too: ops that need colour (saturation, hue,
grayscale) are then the identity; brightness and contrast still apply.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable
from collections.abc import Sequence

import dm_pix as pix
import jax
import jax.numpy as jnp
from jax import lax

Range = tuple[float, float]
Box = tuple[jax.Array, jax.Array, jax.Array, jax.Array]

# Candidate boxes per crop: torchvision's RandomResizedCrop also tries 10 times.
CROP_ATTEMPTS = 10


def check_image(name: str, image: jax.Array) -> None:
  """Checks that `image` is one `(H, W, C)` image with 1 or 3 channels.

  Args:
    name: what to call the array in the error message.
    image: the array to check.

  Raises:
    ValueError: if `image` is not rank 3 or its last axis is neither 1 nor 3.
  """
  if image.ndim != 3 or image.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must be one (H, W, C) image with C in (1, 3), got shape {image.shape}.")


def _never(prob) -> bool:
  """True when `prob` is a concrete number equal to 0, so the op can be left out of the program."""
  return isinstance(prob, numbers.Real) and float(prob) == 0.0


def _always(prob) -> bool:
  return isinstance(prob, numbers.Real) and float(prob) == 1.0


def _with_probability(draw: jax.Array, prob, op: Callable[[jax.Array], jax.Array], image: jax.Array) -> jax.Array:
  """`op(image)` with probability `prob`, else `image` untouched (bit for bit).

  `draw` is a uniform sample in [0, 1) and the op fires when `draw < prob` (a
  Bernoulli draw, as `jax.random.bernoulli` makes it): prob = 0 never fires
  and prob = 1 always does, traced or not.
  """
  if _never(prob):
    return image
  if _always(prob):
    return op(image)
  return lax.cond(draw < prob, op, lambda unchanged: unchanged, image)


def _between(u: jax.Array, low, high) -> jax.Array:
  """Maps uniform [0, 1) samples to [low, high)."""
  return low + (high - low) * u


# ---------------------------------------------------------------------------
# Random resized crop.


def _largest_centred_box(height: int, width: int, ratio: Range) -> tuple[float, float]:
  """Fallback box (h, w): the whole image when its aspect ratio is in range, else
  the largest box whose ratio is the nearest end of the range."""
  image_ratio = width / height
  if image_ratio < ratio[0]:
    return width / ratio[0], float(width)
  if image_ratio > ratio[1]:
    return float(height), height * ratio[1]
  return float(height), float(width)


def sample_crop_box(
    key: jax.Array,
    height: int,
    width: int,
    scale: Range = (0.08, 1.0),
    ratio: Range = (3 / 4, 4 / 3),
    attempts: int = CROP_ATTEMPTS,
) -> Box:
  """A random box `(top, left, h, w)` in continuous pixel units, float32 scalars.

  Each of `attempts` candidates draws an area fraction `a ~ U(scale)` and an
  aspect ratio `r = w / h` with `log r ~ U(log ratio)`, so `w = sqrt(a H W r)`
  and `h = sqrt(a H W / r)`. The first candidate that fits inside the image is
  kept (its area fraction is then exactly `a`, as boxes are not rounded to
  whole pixels) and placed uniformly: `top ~ U(0, H - h)`, `left ~ U(0, W - w)`.

  This is torchvision's retry loop made jit-friendly: all candidates are drawn
  at once and the first valid one is selected with `argmax`. The kept `a` is
  therefore distributed as `U(scale)` conditioned on the box fitting, which is
  exactly uniform whenever every candidate fits (e.g. `scale[1] <= min(ratio,
  1/ratio)` on a square image). If no candidate fits (rare: probability
  (1 - P(fit))^attempts), the box falls back to the largest centred box with
  the image's aspect ratio clipped to `ratio`, as torchvision does.

  Args:
    key: PRNG key; one draw of `2 * attempts + 2` uniforms is made from it.
    height: image height in pixels (static).
    width: image width in pixels (static).
    scale: `(low, high)` range of the box's area as a fraction of the image's.
    ratio: `(low, high)` range of the box's aspect ratio `w / h`.
    attempts: number of candidate boxes (static).

  Returns:
    `(top, left, h, w)` as float32 scalars, with the box inside the image:
    `0 <= top`, `top + h <= height`, `0 <= left`, `left + w <= width`.

  Raises:
    ValueError: if `scale` or `ratio` does not satisfy `0 < low <= high`.
  """
  if not 0 < scale[0] <= scale[1]:
    raise ValueError(f"scale must satisfy 0 < scale[0] <= scale[1], got {scale}.")
  if not 0 < ratio[0] <= ratio[1]:
    raise ValueError(f"ratio must satisfy 0 < ratio[0] <= ratio[1], got {ratio}.")
  u = jax.random.uniform(key, (2 * attempts + 2,))
  area = (height * width) * _between(u[:attempts], scale[0], scale[1])
  aspect = jnp.exp(_between(u[attempts:2 * attempts], math.log(ratio[0]), math.log(ratio[1])))
  box_w = jnp.sqrt(area * aspect)
  box_h = jnp.sqrt(area / aspect)
  # A relative slack of 1e-6 keeps a full-image box whose sqrt rounds up by an ulp.
  fits = (box_h <= height * (1 + 1e-6)) & (box_w <= width * (1 + 1e-6))
  first = jnp.argmax(fits)  # index of the first fitting candidate (0 when none fits)
  any_fits = jnp.any(fits)
  fallback_h, fallback_w = _largest_centred_box(height, width, ratio)
  h = jnp.minimum(jnp.where(any_fits, box_h[first], fallback_h), height)
  w = jnp.minimum(jnp.where(any_fits, box_w[first], fallback_w), width)
  # A fitting box is placed uniformly; the fallback is centred (u = 1/2).
  u_top = jnp.where(any_fits, u[-2], 0.5)
  u_left = jnp.where(any_fits, u[-1], 0.5)
  return u_top * (height - h), u_left * (width - w), h, w


def crop_and_resize(image: jax.Array, box: Box, size: int) -> jax.Array:
  """The box `(top, left, h, w)` of `image` resampled to `(size, size, C)`, bilinear.

  One `scale_and_translate`: output coordinate = (input coordinate - corner) *
  size / extent, per axis. When the box is larger than `size` the bilinear
  kernel is widened by the shrink factor (antialiasing, like PIL's resize).
  The result is a convex combination of pixels, clipped to [0, 1] only to
  remove rounding.

  Args:
    image: float `(H, W, C)` image with values in [0, 1].
    box: `(top, left, h, w)` in continuous pixel units, e.g. from `sample_crop_box`.
    size: side of the square output (static).

  Returns:
    The resampled `(size, size, C)` image, with values in [0, 1].
  """
  top, left, h, w = (jnp.asarray(v, jnp.float32) for v in box)
  scale = jnp.stack([size / h, size / w])
  translation = -jnp.stack([top, left]) * scale
  resized = jax.image.scale_and_translate(
      image, (size, size, image.shape[-1]), (0, 1), scale, translation, method="linear", antialias=True)
  return jnp.clip(resized, 0.0, 1.0)


def random_resized_crop(
    key: jax.Array, image: jax.Array, size: int, scale: Range = (0.08, 1.0), ratio: Range = (3 / 4, 4 / 3),
) -> jax.Array:
  """A box drawn by `sample_crop_box`, resized to `(size, size, C)` by `crop_and_resize`.

  Args:
    key: PRNG key for the box.
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    size: side of the square output (static).
    scale: `(low, high)` range of the crop's area as a fraction of the image's.
    ratio: `(low, high)` range of the crop's aspect ratio `w / h`.

  Returns:
    The `(size, size, C)` crop, with values in [0, 1].

  Raises:
    ValueError: if `image` is not one `(H, W, C)` image with C in (1, 3), or if
      `scale` or `ratio` is not an increasing pair of positive numbers.
  """
  check_image("image", image)
  height, width, _ = image.shape
  return crop_and_resize(image, sample_crop_box(key, height, width, scale, ratio), size)


# ---------------------------------------------------------------------------
# Flip.


def random_flip(key: jax.Array, image: jax.Array, prob=0.5) -> jax.Array:
  """Mirror left-right (`image[:, ::-1]`) with probability `prob`.

  Args:
    key: PRNG key for the Bernoulli draw.
    image: `(H, W, C)` image.
    prob: probability of flipping; a Python 0 or 1 is resolved when tracing.

  Returns:
    An array of `image`'s shape and dtype: flipped, or `image` unchanged.
  """
  return _with_probability(jax.random.uniform(key), prob, lambda x: x[:, ::-1], image)


# ---------------------------------------------------------------------------
# Colour.


def to_grayscale(image: jax.Array) -> jax.Array:
  """BT.601 luma `0.2989 R + 0.5870 G + 0.1140 B` copied to all three channels; C = 1 unchanged.

  Args:
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).

  Returns:
    An array of `image`'s shape: three equal channels for RGB, `image` itself for C = 1.
  """
  if image.shape[-1] == 1:
    return image
  return pix.rgb_to_grayscale(image, keep_dims=True, luma_standard="rec601")


def adjust_brightness(image: jax.Array, factor) -> jax.Array:
  """`clip(factor * x)`: a multiplicative gain (dm-pix's brightness is additive, hence our own).

  Args:
    image: float `(H, W, C)` image with values in [0, 1].
    factor: gain, a scalar (Python number or traced); 1 leaves the image unchanged.

  Returns:
    The adjusted image, same shape and dtype, clipped to [0, 1].
  """
  return jnp.clip(image * jnp.asarray(factor, image.dtype), 0.0, 1.0)


def adjust_contrast(image: jax.Array, factor) -> jax.Array:
  """`clip(factor * x + (1 - factor) * m)`, m the mean gray level of the whole image.

  One scalar m for all channels (torchvision's definition); dm-pix instead
  centres each channel on its own mean, which also shifts the colour balance.

  Args:
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    factor: contrast factor, a scalar; 0 gives a flat gray image, 1 leaves it unchanged.

  Returns:
    The adjusted image, same shape and dtype, clipped to [0, 1].
  """
  factor = jnp.asarray(factor, image.dtype)
  mean_gray = jnp.mean(to_grayscale(image)[..., 0])
  return jnp.clip(factor * image + (1 - factor) * mean_gray, 0.0, 1.0)


def adjust_saturation(image: jax.Array, factor) -> jax.Array:
  """`clip(factor * x + (1 - factor) * gray(x))`: blend with the pixel's own luma; C = 1 unchanged.

  (dm-pix scales the HSV saturation instead, which differs from torchvision.)

  Args:
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    factor: saturation factor, a scalar; 0 gives grayscale, 1 leaves the image unchanged.

  Returns:
    The adjusted image, same shape and dtype, clipped to [0, 1].
  """
  if image.shape[-1] == 1:
    return image
  factor = jnp.asarray(factor, image.dtype)
  return jnp.clip(factor * image + (1 - factor) * to_grayscale(image), 0.0, 1.0)


def adjust_hue(image: jax.Array, factor) -> jax.Array:
  """Rotate the HSV hue by `factor` of a full turn, an additive shift (dm-pix); C = 1 unchanged.

  Args:
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    factor: hue shift in turns, a scalar (e.g. in [-0.5, 0.5]).

  Returns:
    The adjusted image, same shape and dtype, clipped to [0, 1].
  """
  if image.shape[-1] == 1:
    return image
  return jnp.clip(pix.adjust_hue(image, jnp.asarray(factor, image.dtype)), 0.0, 1.0)


# Indices of the four jitter adjustments in `order` and `params`.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


def jitter_params_from_uniforms(u: jax.Array, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1):
  """One ColorJitter's `(order, params)` from 8 uniforms in [0, 1).

  `order` is a uniformly random permutation of (BRIGHTNESS, CONTRAST,
  SATURATION, HUE), int32[4]: the argsort of u[4:8], i.i.d. keys being
  equally likely in every order. `params` float32[4] holds the brightness,
  contrast and saturation factors, each ~ U[max(0, 1 - s), 1 + s] for its
  strength s (torchvision's range: a negative factor would invert the
  image), then the hue shift ~ U[-hue, hue] turns, from u[0:4]. A strength of
  0 gives factor 1 (or shift 0). Params do not depend on the order.

  Args:
    u: float array of at least 8 uniforms in [0, 1): u[0:4] give the params, u[4:8] the order.
    brightness: brightness strength s >= 0.
    contrast: contrast strength s >= 0.
    saturation: saturation strength s >= 0.
    hue: largest hue shift, in turns.

  Returns:
    `(order, params)`: int32 `(4,)` permutation and float32 `(4,)` factors, ready
    for `apply_color_jitter`.
  """
  factor = lambda value, strength: _between(value, jnp.maximum(0.0, 1.0 - strength), 1.0 + strength)
  params = jnp.stack([
      factor(u[BRIGHTNESS], brightness),
      factor(u[CONTRAST], contrast),
      factor(u[SATURATION], saturation),
      _between(u[HUE], -hue, hue),
  ])
  return jnp.argsort(u[4:8]).astype(jnp.int32), params


def sample_jitter_params(key: jax.Array, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1):
  """`jitter_params_from_uniforms` of `jax.random.uniform(key, (8,))`.

  Args:
    key: PRNG key.
    brightness: brightness strength s >= 0.
    contrast: contrast strength s >= 0.
    saturation: saturation strength s >= 0.
    hue: largest hue shift, in turns.

  Returns:
    `(order, params)`: int32 `(4,)` permutation and float32 `(4,)` factors.
  """
  return jitter_params_from_uniforms(jax.random.uniform(key, (8,)), brightness, contrast, saturation, hue)


def apply_color_jitter(
    image: jax.Array, order: jax.Array, params: jax.Array, enabled: tuple[bool, ...] = (True,) * 4,
) -> jax.Array:
  """Brightness, contrast, saturation and hue adjustments in the given order.

  Step i of a `fori_loop` runs adjustment `order[i]` with its entry of
  `params` through `lax.switch` (one branch on an unbatched image, a select
  over the branches under `vmap`). `enabled` (static) turns adjustments into
  the identity, e.g. a zero hue strength, whose HSV round trip would not be
  exact; on one channel saturation and hue are the identity anyway.

  Args:
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    order: int32 `(4,)` permutation of (BRIGHTNESS, CONTRAST, SATURATION, HUE).
    params: float `(4,)` brightness, contrast and saturation factors and hue shift,
      indexed by BRIGHTNESS, CONTRAST, SATURATION, HUE (not by position in `order`).
    enabled: four static flags, in the same indexing; False makes that adjustment the identity.

  Returns:
    The jittered image, same shape and dtype, with values in [0, 1].
  """
  adjust = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)
  branches = [
      functools.partial(fn, factor=params[index]) if on else (lambda x: x)
      for index, (fn, on) in enumerate(zip(adjust, enabled))]
  # Rolled, the program holds one copy of the branches: half the compile time of unrolling.
  return lax.fori_loop(0, 4, lambda step, x: lax.switch(order[step], branches, x), image)


def color_jitter(
    key: jax.Array, image: jax.Array, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, prob=0.8,
) -> jax.Array:
  """With probability `prob`, torchvision-style ColorJitter in a random order per image.

  With `u = jax.random.uniform(key, (9,))`, it fires when u[0] < prob and
  then applies `apply_color_jitter(image, *jitter_params_from_uniforms(u[1:],
  ...))`; each adjustment clips to [0, 1]. A strength that is a plain 0
  leaves its adjustment out.

  Args:
    key: PRNG key.
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    brightness: brightness strength; factors are drawn from U[max(0, 1 - s), 1 + s].
    contrast: contrast strength, as for `brightness`.
    saturation: saturation strength, as for `brightness`.
    hue: largest hue shift, in turns; shifts are drawn from U[-hue, hue].
    prob: probability of applying the jitter at all.

  Returns:
    The image, jittered or unchanged, same shape and dtype.
  """
  enabled = tuple(not _never(strength) for strength in (brightness, contrast, saturation, hue))
  if not any(enabled):
    return image
  u = jax.random.uniform(key, (9,))
  order, params = jitter_params_from_uniforms(u[1:], brightness, contrast, saturation, hue)
  return _with_probability(u[0], prob, lambda x: apply_color_jitter(x, order, params, enabled), image)


def random_grayscale(key: jax.Array, image: jax.Array, prob=0.2) -> jax.Array:
  """`to_grayscale` with probability `prob` (a no-op for C = 1).

  Args:
    key: PRNG key for the Bernoulli draw.
    image: float `(H, W, C)` image with values in [0, 1], C in (1, 3).
    prob: probability of converting to grayscale.

  Returns:
    The image, grayscale or unchanged, same shape and dtype.
  """
  if image.shape[-1] == 1:
    return image
  return _with_probability(jax.random.uniform(key), prob, to_grayscale, image)


# ---------------------------------------------------------------------------
# Blur and solarize.


def default_blur_kernel_size(side: int) -> int:
  """About 10% of the image side, made odd and at least 3 (23 for 224 px, as in BYOL).

  Args:
    side: image side in pixels.

  Returns:
    An odd kernel size >= 3: `int(0.1 * side)`, plus 1 if that is even.
  """
  size = int(0.1 * side)
  size += 1 - size % 2
  return max(size, 3)


def gaussian_blur(image: jax.Array, sigma, kernel_size: int) -> jax.Array:
  """Separable Gaussian blur, `kernel_size` taps (odd), weights `exp(-d^2 / 2 sigma^2)` normalised to 1.

  The image is reflect-padded first (torchvision's border mode) and dm-pix
  convolves with VALID padding, so borders are not darkened by zeros and a
  constant image stays constant.

  Args:
    image: float `(H, W, C)` image with values in [0, 1].
    sigma: standard deviation in pixels, a scalar (Python number or traced).
    kernel_size: number of taps per axis, a positive odd integer (static).

  Returns:
    The blurred image, same shape and dtype, clipped to [0, 1].

  Raises:
    ValueError: if `kernel_size` is not a positive odd integer.
  """
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}.")
  radius = kernel_size // 2
  padded = jnp.pad(image, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
  blurred = pix.gaussian_blur(padded, jnp.asarray(sigma, image.dtype), kernel_size, padding="VALID")
  return jnp.clip(blurred, 0.0, 1.0)


def random_gaussian_blur(
    key: jax.Array, image: jax.Array, prob=0.5, sigma: Range = (0.1, 2.0), kernel_size: int | None = None,
) -> jax.Array:
  """With probability `prob`, `gaussian_blur` with sigma ~ U(sigma) pixels.

  Args:
    key: PRNG key for the Bernoulli draw and sigma.
    image: float `(H, W, C)` image with values in [0, 1].
    prob: probability of blurring.
    sigma: `(low, high)` range of the blur's standard deviation, in pixels.
    kernel_size: taps per axis, odd and static; None means `default_blur_kernel_size(min(H, W))`.

  Returns:
    The image, blurred or unchanged, same shape and dtype.

  Raises:
    ValueError: if `kernel_size` is given and is not a positive odd integer.
  """
  if kernel_size is None:
    kernel_size = default_blur_kernel_size(min(image.shape[0], image.shape[1]))
  u = jax.random.uniform(key, (2,))
  blur = lambda x: gaussian_blur(x, _between(u[1], sigma[0], sigma[1]), kernel_size)
  return _with_probability(u[0], prob, blur, image)


def random_solarize(key: jax.Array, image: jax.Array, prob=0.2, threshold=0.5) -> jax.Array:
  """With probability `prob`, invert the pixels at or above `threshold`: `where(x < t, x, 1 - x)`.

  Args:
    key: PRNG key for the Bernoulli draw.
    image: float `(H, W, C)` image with values in [0, 1].
    prob: probability of solarising.
    threshold: values at or above it are inverted.

  Returns:
    The image, solarised or unchanged, same shape and dtype.
  """
  return _with_probability(jax.random.uniform(key), prob, lambda x: pix.solarize(x, threshold), image)


# ---------------------------------------------------------------------------
# Normalisation and the full view.


def normalize(image: jax.Array, mean: Sequence[float], std: Sequence[float]) -> jax.Array:
  """`(x - mean) / std` per channel; `mean` and `std` have C entries (or 1, shared).

  Args:
    image: float `(H, W, C)` image (or any array whose last axis is the channels).
    mean: per-channel means, C values or one shared value.
    std: per-channel standard deviations, C values or one shared value.

  Returns:
    The normalised image, same shape as `image`.

  Raises:
    ValueError: if `mean` or `std` has neither 1 nor C entries.
  """
  channels = image.shape[-1]
  mean = jnp.asarray(mean, jnp.float32).reshape(-1)
  std = jnp.asarray(std, jnp.float32).reshape(-1)
  for name, stat in (("mean", mean), ("std", std)):
    if stat.shape[0] not in (1, channels):
      raise ValueError(f"{name} has {stat.shape[0]} entries for an image with {channels} channels.")
  return (image - mean) / std


def to_float(image: jax.Array) -> jax.Array:
  """uint8 in [0, 255] -> float32 in [0, 1]; a float image is taken to be in [0, 1] already.

  Args:
    image: uint8 or floating-point array (any shape).

  Returns:
    A float32 array of the same shape: uint8 values divided by 255, floats cast as they are.

  Raises:
    ValueError: if `image` is neither uint8 nor floating point.
  """
  image = jnp.asarray(image)
  if image.dtype == jnp.uint8:
    return image.astype(jnp.float32) / 255.0
  if jnp.issubdtype(image.dtype, jnp.floating):
    return image.astype(jnp.float32)
  raise ValueError(f"images must be uint8 (or float in [0, 1]), got dtype {image.dtype}.")
