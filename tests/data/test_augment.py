"""Image ops of jax_ssl.data.augment against numpy references and their stated distributions."""

import colorsys
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy import stats

from jax_ssl.data import augment

LUMA = np.array([0.2989, 0.5870, 0.1140])  # ITU-R BT.601, as dm-pix and torchvision weigh it
KS_MIN_P = 1e-3  # keys are fixed, so each KS test is deterministic; this is its stated bound


def _images(n, h, w, c, seed=0):
  return np.random.default_rng(seed).random((n, h, w, c)).astype(np.float32)


def _keys(n, seed=0):
  return jax.random.split(jax.random.key(seed), n)


# ---------------------------------------------------------------------------
# numpy references


def ref_resample(image, top, left, h, w, size):
  """Antialiased bilinear resampling of a box: a triangle kernel widened by the shrink factor."""
  out = image.astype(np.float64)
  for axis, (start, extent, length) in enumerate([(top, h, image.shape[0]), (left, w, image.shape[1])]):
    step = extent / size
    width = max(step, 1.0)
    centres = start + (np.arange(size) + 0.5) * step
    weights = np.maximum(0.0, 1.0 - np.abs(np.arange(length)[None, :] + 0.5 - centres[:, None]) / width)
    weights /= weights.sum(axis=1, keepdims=True)
    out = np.moveaxis(np.tensordot(weights, np.moveaxis(out, axis, 0), axes=1), 0, axis)
  return out


def ref_gray(image):
  return np.repeat((image.astype(np.float64) @ LUMA)[..., None], 3, axis=-1)


def ref_brightness(x, f):
  return np.clip(f * x, 0, 1)


def ref_contrast(x, f):
  mean = (x @ LUMA).mean() if x.shape[-1] == 3 else x.mean()
  return np.clip(f * x + (1 - f) * mean, 0, 1)


def ref_saturation(x, f):
  return np.clip(f * x + (1 - f) * ref_gray(x), 0, 1)


def ref_hue(x, delta):
  out = np.empty(x.shape, np.float64)
  for index in np.ndindex(x.shape[:2]):
    hue, sat, val = colorsys.rgb_to_hsv(*x[index])
    out[index] = colorsys.hsv_to_rgb((hue + delta) % 1.0, sat, val)
  return np.clip(out, 0, 1)


def ref_blur(image, sigma, kernel_size):
  radius = kernel_size // 2
  taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
  taps /= taps.sum()
  padded = np.pad(image.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
  h, w = image.shape[:2]
  rows = sum(taps[t] * padded[t:t + h] for t in range(kernel_size))
  return sum(taps[t] * rows[:, t:t + w] for t in range(kernel_size))


# ---------------------------------------------------------------------------
# Every op: shape, dtype, range.


@pytest.mark.parametrize("channels", [1, 3])
def test_every_op_keeps_shape_dtype_and_unit_range(channels):
  images = _images(16, 20, 28, channels)

  def ops(key, image):
    keys = jax.random.split(key, 6)
    return {
        "crop": augment.random_resized_crop(keys[0], image, 12),
        "flip": augment.random_flip(keys[1], image, 0.5),
        # Strengths past 1 push the factors to 0 and 2: clipping has to do work.
        "jitter": augment.color_jitter(keys[2], image, 1.5, 1.5, 1.5, 0.5, prob=1.0),
        "grayscale": augment.random_grayscale(keys[3], image, 1.0),
        "blur": augment.random_gaussian_blur(keys[4], image, 1.0),
        "solarize": augment.random_solarize(keys[5], image, 1.0),
    }

  outputs = jax.jit(jax.vmap(ops))(_keys(16), images)
  for name, out in outputs.items():
    expected_shape = (16, 12, 12, channels) if name == "crop" else images.shape
    assert out.shape == expected_shape and out.dtype == jnp.float32, name
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0, name
  assert np.ptp(np.asarray(outputs["jitter"])) > 0.5  # it did change the images
  if channels == 1:
    # Colour ops need RGB: on one channel they leave the image as it is.
    np.testing.assert_array_equal(outputs["grayscale"], images)
    np.testing.assert_array_equal(augment.adjust_saturation(images[0], 0.3), images[0])
    np.testing.assert_array_equal(augment.adjust_hue(images[0], 0.25), images[0])
    np.testing.assert_allclose(augment.adjust_brightness(images[0], 0.5), 0.5 * images[0], rtol=1e-6)


# ---------------------------------------------------------------------------
# Crop boxes.


def _sample_boxes(n, height, width, scale, ratio, seed=0):
  sampler = jax.jit(jax.vmap(lambda k: augment.sample_crop_box(k, height, width, scale, ratio)))
  return [np.asarray(v, np.float64) for v in sampler(_keys(n, seed))]


def test_crop_boxes_follow_scale_and_ratio_with_rejection_of_misfits():
  n, side = 4000, 32
  top, left, h, w = _sample_boxes(n, side, side, (0.08, 1.0), (3 / 4, 4 / 3))
  area, aspect = h * w / side**2, w / h
  assert np.all((area >= 0.08 * (1 - 1e-5)) & (area <= 1.0))
  assert np.all((aspect >= 0.75 * (1 - 1e-5)) & (aspect <= 4 / 3 * (1 + 1e-5)))
  assert np.all((top >= 0) & (left >= 0) & (top + h <= side + 1e-4) & (left + w <= side + 1e-4))
  # On a square image a candidate (a, r) fits iff a <= min(r, 1/r), i.e. |log r| <= -log a:
  # P(fit | a) = min(1, -log(a) / log(4/3)). The first fitting candidate has density
  # proportional to U(0.08, 1) times that (a fallback has probability ~0.14^10).
  fit = lambda a: min(1.0, -math.log(a) / math.log(4 / 3))
  total = integrate.quad(fit, 0.08, 1.0, points=[0.75])[0]
  cdf = np.vectorize(lambda a: integrate.quad(fit, 0.08, min(max(a, 0.08), 1.0), points=[0.75])[0] / total)
  assert stats.kstest(area, cdf).pvalue > KS_MIN_P
  # ... and it is not uniform: large areas are rejected for most ratios.
  assert stats.kstest(area, stats.uniform(0.08, 0.92).cdf).pvalue < 1e-6


def test_crop_area_ratio_and_position_are_uniform_when_every_candidate_fits():
  n, side, scale, ratio = 4000, 24, (0.1, 0.7), (3 / 4, 4 / 3)  # a / r <= 0.7 / 0.75 < 1: always fits
  top, left, h, w = _sample_boxes(n, side, side, scale, ratio, seed=1)
  assert stats.kstest(h * w / side**2, stats.uniform(0.1, 0.6).cdf).pvalue > KS_MIN_P
  log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
  assert stats.kstest(np.log(w / h), stats.uniform(log_low, log_high - log_low).cdf).pvalue > KS_MIN_P
  assert stats.kstest(top / (side - h), stats.uniform().cdf).pvalue > KS_MIN_P
  assert stats.kstest(left / (side - w), stats.uniform().cdf).pvalue > KS_MIN_P


def test_crop_boxes_stay_inside_a_wide_image():
  top, left, h, w = _sample_boxes(2000, 20, 40, (0.08, 1.0), (3 / 4, 4 / 3), seed=2)
  assert np.all((top >= 0) & (left >= 0) & (top + h <= 20 + 1e-4) & (left + w <= 40 + 1e-4))
  assert np.all(h * w / 800 >= 0.08 * (1 - 1e-5))


@pytest.mark.parametrize("height,width,scale,ratio,expected", [
    # No square of half the area fits a 10 x 40 strip: the fallback is the centred 10 x 10.
    (10, 40, (0.5, 1.0), (1.0, 1.0), (0.0, 15.0, 10.0, 10.0)),
    # A tall image with ratio >= 2: full width, height = width / 2, centred vertically.
    (40, 10, (0.5, 1.0), (2.0, 3.0), (17.5, 0.0, 5.0, 10.0)),
])
def test_crop_falls_back_to_largest_centred_box(height, width, scale, ratio, expected):
  boxes = _sample_boxes(8, height, width, scale, ratio)
  for value, column in zip(expected, boxes):
    np.testing.assert_allclose(column, value, atol=1e-5)


@pytest.mark.parametrize("box,size", [
    ((0.0, 0.0, 8.0, 8.0), 16),  # upsampling the full image
    ((0.0, 0.0, 32.0, 32.0), 16),  # downsampling by 2, antialiased
    ((3.3, 5.1, 17.2, 11.7), 12),  # a fractional box
])
def test_crop_and_resize_matches_numpy_bilinear(box, size):
  side = int(box[2]) if box[2] in (8.0, 32.0) else 32
  image = _images(1, side, side, 3, seed=3)[0]
  out = jax.jit(augment.crop_and_resize, static_argnums=2)(image, box, size)
  np.testing.assert_allclose(out, ref_resample(image, *box, size), atol=1e-5)


def test_full_crop_is_the_resized_image_and_integer_box_is_a_slice():
  image = _images(1, 16, 16, 3, seed=4)[0]
  full_crop = jax.jit(
      lambda key, size: augment.random_resized_crop(key, image, size, scale=(1.0, 1.0), ratio=(1.0, 1.0)),
      static_argnums=1)
  for seed in range(3):
    np.testing.assert_allclose(full_crop(jax.random.key(seed), 16), image, atol=1e-6)
    np.testing.assert_allclose(full_crop(jax.random.key(seed), 24), ref_resample(image, 0, 0, 16, 16, 24), atol=1e-5)
  crop = jax.jit(augment.crop_and_resize, static_argnums=2)
  np.testing.assert_allclose(crop(image, (4.0, 8.0, 8.0, 8.0), 8), image[4:12, 8:16], atol=1e-6)


# ---------------------------------------------------------------------------
# Probabilities.

RANDOM_OPS = {
    "flip": augment.random_flip,
    "jitter": lambda k, x, p: augment.color_jitter(k, x, 0.4, 0.4, 0.2, 0.1, prob=p),
    "grayscale": augment.random_grayscale,
    # sigma >= 0.5: at sigma = 0.1 a 3-tap kernel is the identity in float32.
    "blur": lambda k, x, p: augment.random_gaussian_blur(k, x, p, sigma=(0.5, 2.0)),
    "solarize": augment.random_solarize,
}


@jax.jit
def _all_random_ops(keys, images, prob):
  return {name: jax.vmap(op, in_axes=(0, 0, None))(keys, images, prob) for name, op in RANDOM_OPS.items()}


def test_probability_zero_is_identity_one_always_applies_half_applies_half():
  n = 256
  images = _images(n, 16, 16, 3, seed=5)
  changed = {}
  for prob in (0.0, 0.5, 1.0):
    outputs = _all_random_ops(_keys(n, seed=6), images, jnp.float32(prob))  # traced: the Bernoulli path
    changed[prob] = {name: np.any(np.asarray(out) != images, axis=(1, 2, 3)) for name, out in outputs.items()}
  for name in RANDOM_OPS:
    assert not changed[0.0][name].any(), name  # bit for bit
    assert changed[1.0][name].all(), name
    assert 0.38 < changed[0.5][name].mean() < 0.62, name  # 3.8 binomial standard deviations
  # A plain Python 0 leaves the op out of the program altogether.
  image = images[0]
  for name, op in RANDOM_OPS.items():
    assert op(jax.random.key(0), image, 0) is image, name


def test_flip_grayscale_and_solarize_match_numpy():
  image = _images(1, 12, 10, 3, seed=7)[0]
  key = jax.random.key(1)
  np.testing.assert_array_equal(augment.random_flip(key, image, 1.0), image[:, ::-1])
  np.testing.assert_allclose(augment.random_grayscale(key, image, 1.0), ref_gray(image), atol=1e-6)
  for threshold in (0.5, 0.3):
    np.testing.assert_allclose(
        augment.random_solarize(key, image, 1.0, threshold), np.where(image < threshold, image, 1 - image), atol=1e-7)


# ---------------------------------------------------------------------------
# Colour jitter.


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.3, 2.0])
def test_brightness_contrast_saturation_match_formulas(factor):
  for image in (_images(1, 8, 8, 3, seed=8)[0], _images(1, 8, 8, 1, seed=9)[0]):
    np.testing.assert_allclose(augment.adjust_brightness(image, factor), ref_brightness(image, factor), atol=1e-6)
    np.testing.assert_allclose(augment.adjust_contrast(image, factor), ref_contrast(image, factor), atol=1e-6)
  np.testing.assert_allclose(augment.adjust_saturation(image := _images(1, 8, 8, 3)[0], factor),
                             ref_saturation(image, factor), atol=1e-6)


@pytest.mark.parametrize("delta", [-0.3, 0.1, 0.45])
def test_hue_shift_matches_colorsys(delta):
  image = _images(1, 6, 6, 3, seed=10)[0]
  np.testing.assert_allclose(augment.adjust_hue(image, delta), ref_hue(image, delta), atol=1e-5)


def test_jitter_params_cover_every_order_and_their_ranges():
  n = 4800
  order, params = jax.jit(jax.vmap(lambda k: augment.sample_jitter_params(k, 0.4, 1.5, 0.2, 0.1)))(_keys(n, 11))
  order, params = np.asarray(order), np.asarray(params)
  assert np.all(np.sort(order, axis=1) == np.arange(4))
  counts = {perm: 0 for perm in itertools.permutations(range(4))}
  for row in order:
    counts[tuple(row)] += 1
  assert stats.chisquare(list(counts.values())).pvalue > KS_MIN_P  # all 24 orders, equally likely
  for column, (low, high) in enumerate([(0.6, 1.4), (0.0, 2.5), (0.8, 1.2), (-0.1, 0.1)]):
    assert stats.kstest(params[:, column], stats.uniform(low, high - low).cdf).pvalue > KS_MIN_P, column


def test_color_jitter_applies_its_params_in_its_order():
  image = _images(1, 6, 6, 3, seed=12)[0]
  references = {augment.BRIGHTNESS: ref_brightness, augment.CONTRAST: ref_contrast,
                augment.SATURATION: ref_saturation, augment.HUE: ref_hue}
  params = np.array([1.6, 0.5, 1.8, 0.2], np.float32)  # strong enough that the order matters
  apply = jax.jit(augment.apply_color_jitter)
  results = []
  for order in [(0, 1, 2, 3), (3, 2, 1, 0), (1, 3, 0, 2), (2, 0, 3, 1)]:
    expected = image.astype(np.float64)
    for index in order:
      expected = references[index](expected, params[index])
    out = apply(image, jnp.array(order, jnp.int32), params)
    np.testing.assert_allclose(out, expected, atol=2e-5)
    results.append(np.asarray(out))
  assert min(np.abs(a - b).max() for a, b in itertools.combinations(results, 2)) > 1e-2
  # color_jitter takes its params from uniforms 1..8 of its key's draw, as documented.
  jitter = jax.jit(lambda key: augment.color_jitter(key, image, 0.4, 0.4, 0.2, 0.1, prob=1.0))
  for seed in range(3):
    key = jax.random.key(seed)
    order, drawn = augment.jitter_params_from_uniforms(jax.random.uniform(key, (9,))[1:], 0.4, 0.4, 0.2, 0.1)
    np.testing.assert_allclose(jitter(key), apply(image, order, drawn), atol=1e-6)


# ---------------------------------------------------------------------------
# Blur, normalisation.


def test_gaussian_blur_preserves_constants_and_mass_and_matches_numpy():
  blur = jax.jit(augment.gaussian_blur, static_argnums=2)
  constant = np.full((12, 12, 3), 0.37, np.float32)
  impulse = np.zeros((21, 21, 1), np.float32)
  impulse[10, 10] = 1.0
  image = _images(1, 14, 11, 3, seed=13)[0]
  for sigma, kernel_size in [(0.5, 3), (2.0, 9)]:
    np.testing.assert_allclose(blur(constant, sigma, kernel_size), constant, atol=1e-6)
    spread = np.asarray(blur(impulse, sigma, kernel_size))
    np.testing.assert_allclose(spread.sum(), 1.0, atol=1e-5)
    np.testing.assert_allclose(spread, spread[::-1, ::-1], atol=1e-7)
    assert spread.argmax() == 10 * 21 + 10
    np.testing.assert_allclose(blur(image, sigma, kernel_size), ref_blur(image, sigma, kernel_size), atol=1e-5)
  # A degenerate sigma range pins sigma: the random op is then exactly gaussian_blur.
  np.testing.assert_allclose(augment.random_gaussian_blur(jax.random.key(0), image, 1.0, (1.5, 1.5), 5),
                             ref_blur(image, 1.5, 5), atol=1e-5)
  assert [augment.default_blur_kernel_size(side) for side in (16, 32, 100, 224)] == [3, 3, 11, 23]
  with pytest.raises(ValueError, match="odd"):
    augment.gaussian_blur(image, 1.0, 4)


def test_normalize_per_channel_and_rejects_mismatched_stats():
  image = _images(1, 4, 4, 3)[0]
  mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
  np.testing.assert_allclose(augment.normalize(image, mean, std), (image - mean) / np.array(std), rtol=1e-6, atol=1e-7)
  with pytest.raises(ValueError, match="mean"):
    augment.normalize(image, (0.5, 0.5), std)
