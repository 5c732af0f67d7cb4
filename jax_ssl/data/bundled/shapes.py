"""`shapes`: procedurally generated 32x32 RGB images with a 3-level label hierarchy.

family (3)  ->  shape (9)  ->  variant (36)
  curved       circle, ring, half_disc
  polygon      triangle, square, hexagon
  spiky        star, cross, tri_star
each shape in 4 variants: {warm, cool} colour x {solid, striped} texture.

Every image draws one shape at a random position, size and rotation over a
noisy grey background. Shapes of one family share their geometry (curved
outlines, straight edges, spikes), so the hierarchy is visible in the pixels:
a good embedding should keep families apart at the coarse scale and variants
apart at the fine scale. Each image comes with its shape's mask, for dense
probes (a per-pixel label at every level: background, or the shape's class).
The data are a pure function of the seed: the same seed gives the same bytes
on every machine.

`generate_ood` draws the same classes under shifts the training images never
show, each at three severities, for out-of-distribution probes (`shapes_ood`):
new colours (warm and cool hues beyond the training ranges), new textures
(wider stripes), textured backgrounds, stronger noise, blur and lower contrast.
None changes what a class is: a warm striped star stays a warm striped star.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

FAMILIES = ("curved", "polygon", "spiky")
SHAPES = ("circle", "ring", "half_disc", "triangle", "square", "hexagon", "star", "cross", "tri_star")
VARIANTS = ("warm_solid", "warm_striped", "cool_solid", "cool_striped")
SHAPE_FAMILY = np.repeat(np.arange(len(FAMILIES)), 3)  # shape index -> family index

SHIFTS = ("colour", "texture", "background", "noise", "blur", "contrast")
SEVERITIES = (1, 2, 3)

IMAGE_SIZE = 32
_SUPERSAMPLE = 2  # anti-aliasing: rasterise at 2x and average 2x2 blocks
_CHUNK = 512  # images rasterised at once (bounds memory)


def num_classes() -> int:
  return len(SHAPES) * len(VARIANTS)


def shape_of(variant_label: np.ndarray) -> np.ndarray:
  """Parent (shape) of each fine (variant) label.

  Args:
    variant_label: integer array of variant labels in 0..35.

  Returns:
    Integer array of the same shape, shape labels in 0..8.
  """
  return np.asarray(variant_label) // len(VARIANTS)


def family_of(variant_label: np.ndarray) -> np.ndarray:
  """Grandparent (family) of each fine (variant) label.

  Args:
    variant_label: integer array of variant labels in 0..35.

  Returns:
    Integer array of the same shape, family labels in 0..2.
  """
  return SHAPE_FAMILY[shape_of(variant_label)]


def _regular_polygon(r, theta, radius, sides):
  """Inside test in polar coordinates: r <= apothem / cos(angle to the nearest edge normal)."""
  sector = 2 * np.pi / sides
  offset = np.mod(theta, sector) - sector / 2
  return r <= radius * np.cos(np.pi / sides) / np.cos(offset)


def _star(r, theta, radius, points, inner_ratio):
  """Star with `points` tips: the boundary radius falls linearly from the tip to the notch."""
  sector = 2 * np.pi / points
  from_tip = np.abs(np.mod(theta, sector) - sector / 2)  # 0 at a notch, sector/2 at a tip
  boundary = inner_ratio * radius + (1 - inner_ratio) * radius * (from_tip / (sector / 2))
  return r <= boundary


def _inside(shape: str, x, y, radius):
  """Membership mask of `shape` centred at the origin with circumradius `radius`."""
  r = np.hypot(x, y)
  theta = np.arctan2(y, x)
  if shape == "circle":
    return r <= radius
  if shape == "ring":
    return (r <= radius) & (r >= 0.55 * radius)
  if shape == "half_disc":
    # Flat edge at y = -0.4 R so that the shape's centroid sits near the centre.
    shifted = y + 0.4 * radius
    return (np.hypot(x, shifted) <= radius) & (shifted >= 0)
  if shape == "triangle":
    return _regular_polygon(r, theta, radius, 3)
  if shape == "square":
    return _regular_polygon(r, theta, radius, 4)
  if shape == "hexagon":
    return _regular_polygon(r, theta, radius, 6)
  if shape == "star":
    return _star(r, theta, radius, 5, 0.42)
  if shape == "tri_star":
    return _star(r, theta, radius, 3, 0.3)
  if shape == "cross":
    arm = 0.3 * radius
    return ((np.abs(x) <= arm) & (np.abs(y) <= radius)) | ((np.abs(y) <= arm) & (np.abs(x) <= radius))
  raise ValueError(f"unknown shape {shape!r}")


def _hsv_to_rgb(h, s, v):
  """Vectorised HSV -> RGB, all in [0, 1], channels last."""
  h = np.mod(h, 1.0) * 6
  sector = np.floor(h).astype(int) % 6
  f = h - np.floor(h)
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  table = np.stack([np.stack(c, -1) for c in
                    [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]], 0)
  return table[sector, np.arange(len(sector))]


def _render(labels: np.ndarray, rng: np.random.Generator, shift: str | None = None,
            severity: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Images (N, 32, 32, 3) uint8 for the variant labels, drawing all randomness from `rng`, and their masks.

  A pixel belongs to the shape's mask (1, else 0) when the shape covers more than half of it. With a
  `shift` (one of `SHIFTS`) at `severity` (1-3), the parameters it changes are drawn again after every
  draw of the unshifted images, so the rest of each image is what the same seed gives without it.
  """
  n = len(labels)
  shapes, variants = labels // len(VARIANTS), labels % len(VARIANTS)
  warm, striped = variants < 2, variants % 2 == 1
  # Per-image parameters, drawn in a fixed order so that the output depends on the seed only.
  radius = rng.uniform(7.0, 12.0, n)
  center = rng.uniform(0.0, 1.0, (n, 2)) * (IMAGE_SIZE - 2 * (radius[:, None] + 1)) + radius[:, None] + 1
  rotation = rng.uniform(0.0, 2 * np.pi, n)
  hue = np.where(warm, rng.uniform(-0.05, 0.15, n), rng.uniform(0.45, 0.70, n))
  foreground = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0, n), rng.uniform(0.6, 1.0, n))
  background = rng.uniform(0.25, 0.75, (n, 1, 1, 1)) + rng.uniform(-0.05, 0.05, (n, 1, 1, 3))
  stripe_angle = rng.uniform(0.0, np.pi, n)
  stripe_period = rng.uniform(4.0, 6.0, n)
  noise = rng.normal(0.0, 0.03, (n, IMAGE_SIZE, IMAGE_SIZE, 3))
  if shift == "colour":  # hues beyond the training ranges, on the warm and on the cool side
    hue = np.where(warm, rng.uniform(0.15, 0.15 + 0.04 * severity, n), rng.uniform(0.70, 0.70 + 0.04 * severity, n))
    foreground = _hsv_to_rgb(hue, rng.uniform(0.5, 0.9, n), rng.uniform(0.5, 0.9, n))
  elif shift == "texture":  # stripes wider than any in training (4-6 px)
    stripe_period = rng.uniform(6.0 + 3 * severity, 8.0 + 3 * severity, n)
  elif shift == "noise":
    noise = noise + rng.normal(0.0, 0.05 * severity, noise.shape)
  if shift == "background":  # a coloured checkerboard instead of a flat grey
    cell = rng.integers(3, 7, n)[:, None, None]
    pixel = np.arange(IMAGE_SIZE)
    checker = ((pixel[None, :, None] // cell + pixel[None, None, :] // cell) % 2) * 2.0 - 1.0
    tint = rng.uniform(-1.0, 1.0, (n, 1, 1, 3))
    background = background + 0.08 * severity * checker[..., None] * tint

  fine = IMAGE_SIZE * _SUPERSAMPLE
  grid = (np.arange(fine) + 0.5) / _SUPERSAMPLE  # pixel-centre coordinates of the fine grid
  gy, gx = np.meshgrid(grid, grid, indexing="ij")
  coverage = np.empty((n, IMAGE_SIZE, IMAGE_SIZE))
  stripes = np.empty((n, IMAGE_SIZE, IMAGE_SIZE))
  for start in range(0, n, _CHUNK):
    idx = np.arange(start, min(start + _CHUNK, n))
    dx = gx[None] - center[idx, 0, None, None]
    dy = gy[None] - center[idx, 1, None, None]
    cos, sin = np.cos(rotation[idx])[:, None, None], np.sin(rotation[idx])[:, None, None]
    x, y = cos * dx + sin * dy, -sin * dx + cos * dy
    mask = np.zeros((len(idx), fine, fine), bool)
    for shape_index, shape in enumerate(SHAPES):
      rows = np.flatnonzero(shapes[idx] == shape_index)
      if rows.size:
        mask[rows] = _inside(shape, x[rows], y[rows], radius[idx][rows, None, None])
    blocks = (len(idx), IMAGE_SIZE, _SUPERSAMPLE, IMAGE_SIZE, _SUPERSAMPLE)
    coverage[idx] = mask.reshape(blocks).mean(axis=(2, 4))
    along = (np.cos(stripe_angle[idx])[:, None, None] * dx + np.sin(stripe_angle[idx])[:, None, None] * dy)
    band = (np.sin(2 * np.pi * along / stripe_period[idx, None, None]) > 0).astype(float)
    stripes[idx] = band.reshape(blocks).mean(axis=(2, 4))

  # Striped variants alternate the colour with a darker shade of itself.
  shade = np.where(striped[:, None, None], 0.45 + 0.55 * stripes, 1.0)[..., None]
  ink = foreground[:, None, None, :] * shade
  alpha = coverage[..., None]
  image = background * (1 - alpha) + ink * alpha + noise
  if shift == "blur":
    image = ndimage.gaussian_filter(image, sigma=(0, 0.5 * severity, 0.5 * severity, 0), mode="nearest")
  elif shift == "contrast":
    mean = image.mean(axis=(1, 2, 3), keepdims=True)
    image = mean + (image - mean) * (1.0 - 0.25 * severity)
  return np.clip(np.round(image * 255), 0, 255).astype(np.uint8), (coverage > 0.5).astype(np.uint8)


def generate(num_per_class: int, seed: int) -> dict[str, np.ndarray]:
  """A balanced split: `num_per_class` images of each of the 36 variants, in shuffled order.

  Args:
    num_per_class: images per variant, so N = 36 * num_per_class.
    seed: seed of all the randomness (label order, geometry, colours, noise).

  Returns:
    dict with `image` (N, 32, 32, 3) uint8, `mask` (N, 32, 32) uint8 (1 on the shape, 0 on the
    background) and int64 `variant`, `shape`, `family`.
  """
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.repeat(np.arange(num_classes()), num_per_class))
  images, masks = _render(labels, rng)
  return {"image": images, "mask": masks, "variant": labels.astype(np.int64),
          "shape": shape_of(labels).astype(np.int64), "family": family_of(labels).astype(np.int64)}


def generate_ood(num_per_class: int, seed: int) -> dict[str, np.ndarray]:
  """Shifted test images: `num_per_class` of each variant for every shift of `SHIFTS` at every severity.

  Each (shift, severity) set is drawn from its own seed (`seed`, the shift's index, the severity), so adding
  a shift leaves the others' images as they are.

  Args:
    num_per_class: images per variant in each (shift, severity) set.
    seed: seed of all the randomness.

  Returns:
    dict with `image` (N, 32, 32, 3) uint8, `mask` (N, 32, 32) uint8, int64 `variant`, `shape`, `family`, and
    int64 `shift` (index into `SHIFTS`) and `severity` (1-3); N = 36 * num_per_class * 6 * 3.
  """
  parts = []
  for shift_index, shift in enumerate(SHIFTS):
    for severity in SEVERITIES:
      rng = np.random.default_rng([seed, shift_index, severity])
      labels = rng.permutation(np.repeat(np.arange(num_classes()), num_per_class))
      images, masks = _render(labels, rng, shift, severity)
      parts.append({"image": images, "mask": masks, "variant": labels.astype(np.int64),
                    "shape": shape_of(labels).astype(np.int64), "family": family_of(labels).astype(np.int64),
                    "shift": np.full(len(labels), shift_index, np.int64),
                    "severity": np.full(len(labels), severity, np.int64)})
  return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}
