"""Dense probes of frozen features: linear segmentation scored by mean IoU, and PCA feature maps.

A linear head maps every position of a frozen feature map (ResNet's last
stage, a ViT's patch tokens) to class logits; the logits are bilinearly
upsampled to the label resolution and trained with per-pixel cross-entropy,
as VISReg's linear segmentation protocol does (after DINOv2). The score is
the mean intersection-over-union over the classes of the test split.
`pca_rgb` colours each position by the first three principal components of
the features (VISReg Fig. 1).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from jax_ssl.eval import inputs


def dense_labels(masks: ArrayLike, labels: ArrayLike) -> np.ndarray:
  """Per-pixel labels from foreground masks: 0 on the background, the image's class + 1 on its object.

  Args:
    masks: (N, H, W) foreground masks (non-zero on the labelled object).
    labels: (N,) the class of each image's object, at one level of the hierarchy.

  Returns:
    int32 (N, H, W) labels in 0..num_classes.

  Raises:
    ValueError: if `masks` is not (N, H, W) or `labels` is not N non-negative integers.
  """
  masks = np.asarray(masks)
  if masks.ndim != 3:
    raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}.")
  labels = inputs.check_labels("labels", labels, len(masks), "masks")
  return np.where(masks != 0, labels[:, None, None] + 1, 0).astype(np.int32)


def _check_maps(name: str, maps) -> np.ndarray:
  maps = np.asarray(maps)
  if maps.ndim != 4 or min(maps.shape) < 1:
    raise ValueError(f"{name} must be a non-empty (N, h, w, F) array of feature maps, got shape {maps.shape}.")
  if not np.isfinite(maps).all():
    raise ValueError(f"{name} contain NaN or inf: check the encoder.")
  return maps.astype(np.float32)


def confusion_iou(predictions: ArrayLike, targets: ArrayLike, num_classes: int,
                  ignore_label: int | None = None) -> dict:
  """Intersection over union per class from all pixels at once, and their mean over the classes present.

  Args:
    predictions: integer class per pixel, any shape.
    targets: integer class per pixel, the same shape.
    num_classes: C; classes are 0..C-1.
    ignore_label: a target class whose pixels are not scored (ADE20K's "unlabelled" 0), or None. Target
      values outside 0..C-1 are not scored either.

  Returns:
    `{"miou", "pixel_accuracy", "iou"}`: the mean IoU over the classes that occur in the scored targets or
    predictions, the fraction of scored pixels right, and the per-class IoU (NaN for a class that occurs in
    neither, and for `ignore_label`).
  """
  predictions, targets = np.asarray(predictions).ravel(), np.asarray(targets).ravel()
  scored = (targets >= 0) & (targets < num_classes) & (targets != (-1 if ignore_label is None else ignore_label))
  predictions, targets = predictions[scored], targets[scored]
  confusion = np.bincount(targets * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, -1)
  true_positive = np.diag(confusion).astype(np.float64)
  union = confusion.sum(axis=0) + confusion.sum(axis=1) - true_positive
  with np.errstate(invalid="ignore", divide="ignore"):
    iou = np.where(union > 0, true_positive / union, np.nan)
  if ignore_label is not None:
    iou[ignore_label] = np.nan
  return {"miou": float(np.nanmean(iou)), "pixel_accuracy": float(true_positive.sum() / max(len(targets), 1)),
          "iou": iou.tolist()}


def _logits(params: dict, maps: jax.Array, resolution: tuple[int, int]) -> jax.Array:
  """The head's per-class logits at every position, bilinearly upsampled to `resolution`."""
  position_logits = ((maps - params["mean"]) / params["std"]) @ params["w"] + params["b"]
  return jax.image.resize(position_logits, (maps.shape[0], *resolution, position_logits.shape[-1]), "bilinear")


# Jitted at module level, so that every head of the same shapes (the trained and the initial encoder's,
# each level with as many classes) reuses one compilation.
@functools.partial(jax.jit, static_argnames=("num_classes", "ignore_label"))
def _head_step(trained, opt_state, standard, maps, targets, learning_rate, *, num_classes, ignore_label):
  """One Adam step of the head on the mean per-pixel cross-entropy of the scored pixels."""
  optimizer = optax.adam(learning_rate)

  def loss(trained):
    # One-hot targets: the integer-label gather's gradient is a scatter XLA spends seconds constant-folding.
    one_hot = jax.nn.one_hot(targets, num_classes)  # all zeros for a value outside 0..C-1
    scored = jnp.sum(one_hot, axis=-1)
    if ignore_label is not None:
      scored = scored * (targets != ignore_label)
    losses = optax.softmax_cross_entropy(_logits({**trained, **standard}, maps, targets.shape[1:]), one_hot)
    return jnp.sum(losses * scored) / jnp.maximum(jnp.sum(scored), 1.0)

  updates, opt_state = optimizer.update(jax.grad(loss)(trained), opt_state)
  return optax.apply_updates(trained, updates), opt_state


@functools.partial(jax.jit, static_argnames=("resolution",))
def _predict(params, maps, *, resolution):
  return jnp.argmax(_logits(params, maps, resolution), axis=-1)


def linear_segmentation(train_maps: ArrayLike, train_targets: ArrayLike, test_maps: ArrayLike,
                        test_targets: ArrayLike, num_classes: int, *, ignore_label: int | None = None,
                        epochs: int = 30, batch_size: int = 256, learning_rate: float = 1e-2, seed: int = 0) -> dict:
  """Train a linear head on frozen feature maps for per-pixel classes; score it on the test maps.

  The features are standardised with the train positions' mean and standard
  deviation; the head's logits at each position are bilinearly upsampled to
  the targets' (H, W) and trained with Adam on the mean per-pixel
  cross-entropy.

  Args:
    train_maps: (N, h, w, F) frozen features of the training images.
    train_targets: (N, H, W) integer class per pixel, 0..num_classes-1.
    test_maps: (M, h, w, F) features of the test images.
    test_targets: (M, H, W) classes per pixel.
    num_classes: C, the classes of the targets (background included).
    ignore_label: a class whose pixels neither train the head nor are scored (ADE20K's 0), or None; target
      values outside 0..C-1 are ignored too.
    epochs: passes over the training images.
    batch_size: images per Adam step.
    learning_rate: Adam's step size.
    seed: the head's initialisation and the batches' order.

  Returns:
    `confusion_iou` of the test predictions: `miou`, `pixel_accuracy` and the per-class `iou`.

  Raises:
    ValueError: for maps that are not finite (N, h, w, F) arrays of one width and grid, or targets that do
      not match them.

  References:
    Wu et al. (VISReg), 2026, linear segmentation on ADE20K; Oquab et al., "DINOv2", 2023, Sec. 7.4.
  """
  train_maps, test_maps = _check_maps("train_maps", train_maps), _check_maps("test_maps", test_maps)
  train_targets, test_targets = np.asarray(train_targets, np.int32), np.asarray(test_targets, np.int32)
  if train_maps.shape[1:] != test_maps.shape[1:]:
    raise ValueError(f"train and test feature maps differ in grid or width: {train_maps.shape[1:]} and "
                     f"{test_maps.shape[1:]}.")
  for maps, targets, name in ((train_maps, train_targets, "train"), (test_maps, test_targets, "test")):
    if targets.ndim != 3 or len(targets) != len(maps):
      raise ValueError(f"{name}_targets must be (N, H, W) with one map per image, got {targets.shape} for "
                       f"{len(maps)} maps.")
  # Standardisation, an input of the head (not trained).
  standard = {"mean": jnp.asarray(train_maps.mean(axis=(0, 1, 2))),
              "std": jnp.asarray(train_maps.std(axis=(0, 1, 2)) + 1e-6)}
  trained = {"w": jax.random.normal(jax.random.key(seed), (train_maps.shape[-1], num_classes)) * 0.01,
             "b": jnp.zeros(num_classes)}
  opt_state = optax.adam(learning_rate).init(trained)
  rng = np.random.default_rng(seed)
  batch_size = min(batch_size, len(train_maps))
  for _ in range(epochs):
    order = rng.permutation(len(train_maps))
    for start in range(0, len(order) - batch_size + 1, batch_size):  # whole batches: one compiled shape
      rows = order[start:start + batch_size]
      trained, opt_state = _head_step(trained, opt_state, standard, train_maps[rows], train_targets[rows],
                                      jnp.float32(learning_rate), num_classes=num_classes, ignore_label=ignore_label)
  params = {**trained, **standard}
  predictions = np.concatenate([np.asarray(_predict(params, test_maps[start:start + batch_size],
                                                    resolution=test_targets.shape[1:]))
                                for start in range(0, len(test_maps), batch_size)])
  return confusion_iou(predictions, test_targets, num_classes, ignore_label)


def pca_rgb(maps: ArrayLike) -> np.ndarray:
  """Feature maps as colours: the first three principal components of all positions, each scaled to [0, 1].

  The components are fitted on every position of every map together, so the
  colours compare across images; each is scaled between its 1st and 99th
  percentile and clipped.

  Args:
    maps: (N, h, w, F) feature maps, F >= 3.

  Returns:
    float32 (N, h, w, 3) RGB in [0, 1].

  Raises:
    ValueError: if `maps` is not a finite (N, h, w, F) array with F >= 3.

  References:
    Wu et al. (VISReg), 2026, Figures 1, 8 and 9; Oquab et al., "DINOv2", 2023, Figure 1.
  """
  maps = _check_maps("maps", maps)
  if maps.shape[-1] < 3:
    raise ValueError(f"maps need at least 3 features for 3 components, got shape {maps.shape}.")
  positions = maps.reshape(-1, maps.shape[-1]).astype(np.float64)
  centred = positions - positions.mean(axis=0)
  _, _, components = np.linalg.svd(centred, full_matrices=False)
  projected = centred @ components[:3].T
  low, high = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
  rgb = np.clip((projected - low) / np.maximum(high - low, 1e-12), 0.0, 1.0)
  return rgb.reshape(*maps.shape[:3], 3).astype(np.float32)
