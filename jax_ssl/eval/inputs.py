"""What the probes share: input checks (numpy in, ValueError naming the argument out) and row-chunked evaluation."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def check_features(name: str, features) -> np.ndarray:
  """`features` as a finite float32 (N, D) numpy array with N, D >= 1.

  Args:
    name: the argument's name, used in the error messages.
    features: array-like (N, D) real features.

  Returns:
    float32 (N, D) numpy array (not copied when it already is one).

  Raises:
    ValueError: if `features` is not 2-D, is empty, is not real numeric, or has a NaN or inf (including values
      beyond float32's range).
  """
  features = np.asarray(features)
  if features.ndim != 2:
    raise ValueError(f"{name} must be a 2-D (num_samples, dim) array, got shape {features.shape}.")
  if features.shape[0] < 1 or features.shape[1] < 1:
    raise ValueError(f"{name} is empty: it needs at least one row and one column, got shape {features.shape}.")
  if not (np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)):
    raise ValueError(f"{name} must be a real numeric array, got dtype {features.dtype}.")
  # Checked after the cast: values beyond float32's range become inf and are
  # reported below, so numpy's overflow warning would only repeat it.
  with np.errstate(over="ignore"):
    features = features.astype(np.float32, copy=False)
  if not np.isfinite(features).all():
    raise ValueError(f"{name} contain NaN or inf: check the encoder.")
  return features


def check_labels(name: str, labels, num_rows: int, features_name: str) -> np.ndarray:
  """`labels` as a non-negative int32 (N,) numpy array, one per row of the features.

  Args:
    name: the argument's name, used in the error messages.
    labels: array-like (N,) integer class indices.
    num_rows: N, the number of rows of the features the labels go with.
    features_name: the features' argument name, used in the error messages.

  Returns:
    int32 (N,) numpy array.

  Raises:
    ValueError: if `labels` is not 1-D, does not have `num_rows` entries, is not integer, or has a negative label
      or one beyond the int32 range.
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"{name} must be a 1-D array of class indices, got shape {labels.shape}.")
  if labels.shape[0] != num_rows:
    raise ValueError(
        f"{name} has {labels.shape[0]} entries but {features_name} has {num_rows} rows: "
        f"they must match one to one.")
  if not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{name} must hold integer class indices, got dtype {labels.dtype}.")
  if labels.min() < 0:
    raise ValueError(f"{name} contains negative labels (min {labels.min()}): classes are indexed from 0.")
  if labels.max() > np.iinfo(np.int32).max:
    raise ValueError(f"{name} contains labels beyond the int32 range (max {labels.max()}).")
  return labels.astype(np.int32, copy=False)


def check_same_width(train: np.ndarray, test: np.ndarray) -> None:
  """Checks that train and test features have the same feature dimension.

  Args:
    train: (N_train, D) train features.
    test: (N_test, D') test features.

  Raises:
    ValueError: if D != D'.
  """
  if train.shape[1] != test.shape[1]:
    raise ValueError(
        f"train_features and test_features must have the same width (feature dimension), "
        f"got {train.shape[1]} and {test.shape[1]}.")


def resolve_num_classes(num_classes: int | None, train_labels: np.ndarray, name: str = "train_labels") -> int:
  """`num_classes`, defaulting to the largest train label + 1; ValueError if a train label does not fit.

  Args:
    num_classes: the number of classes, or None to infer it from `train_labels`.
    train_labels: (N,) non-empty integer train labels.
    name: the labels' argument name, used in the error messages.

  Returns:
    The number of classes as an int.

  Raises:
    ValueError: if `num_classes` is below 1 or not above the largest train label.
  """
  largest = int(train_labels.max())
  if num_classes is None:
    return largest + 1
  if num_classes < 1:
    raise ValueError(f"num_classes must be positive, got {num_classes}.")
  if largest >= num_classes:
    raise ValueError(f"{name} contains label {largest}, which does not fit num_classes = {num_classes}.")
  return int(num_classes)


def check_levels(train_labels_by_level: Mapping, test_labels_by_level: Mapping) -> list:
  """The hierarchy levels, in the train dict's order; ValueError if the two dicts disagree.

  Args:
    train_labels_by_level: {level: train labels}.
    test_labels_by_level: {level: test labels}.

  Returns:
    List of the level keys of `train_labels_by_level`.

  Raises:
    ValueError: if `train_labels_by_level` is empty, or a level is in one mapping but not the other.
  """
  train_levels, test_levels = list(train_labels_by_level), list(test_labels_by_level)
  if not train_levels:
    raise ValueError("train_labels_by_level is empty: give at least one level, e.g. {'label': labels}.")
  only_train = [level for level in train_levels if level not in test_labels_by_level]
  only_test = [level for level in test_levels if level not in train_labels_by_level]
  if only_train or only_test:
    raise ValueError(
        f"train and test label levels differ: only in train_labels_by_level: {only_train}; "
        f"only in test_labels_by_level: {only_test}.")
  return train_levels


def level_num_classes(num_classes: int | Mapping | None, level) -> int | None:
  """Per-level class count: a mapping is looked up by level; one int would be wrong for all but one level.

  Args:
    num_classes: None, or a mapping {level: number of classes}.
    level: the level to look up.

  Returns:
    `num_classes[level]`; None when `num_classes` is None or has no entry for `level` (inferred from the labels).

  Raises:
    ValueError: if `num_classes` is neither None nor a mapping.
  """
  if num_classes is None:
    return None
  if isinstance(num_classes, Mapping):
    return num_classes.get(level)
  raise ValueError(
      "num_classes must be a mapping {level: count} (or None) for the per-level probes, "
      f"got {num_classes!r}.")


def map_row_chunks(fn: Callable, arrays: Sequence, chunk_size: int):
  """`fn` applied to aligned row chunks of `arrays` (numpy or JAX), its outputs concatenated along rows as numpy.

  The last chunk is zero-padded to the full chunk size so one compilation
  serves every chunk; the padded rows' outputs are dropped. Outputs stay on
  the device until all chunks are dispatched, so the host does not wait
  between chunks.

  Args:
    fn: function of one chunk of each array, in order, returning a pytree of arrays with one row per input row.
    arrays: non-empty sequence of arrays with the same number of rows N >= 1.
    chunk_size: rows per call of `fn` (fewer when N is smaller).

  Returns:
    `fn`'s output structure with every leaf a numpy array of N rows.
  """
  num_rows = arrays[0].shape[0]
  chunk = min(chunk_size, num_rows)
  pieces = []
  for start in range(0, num_rows, chunk):
    parts = [a[start:start + chunk] for a in arrays]
    valid = parts[0].shape[0]
    if valid < chunk:
      parts = [pad_rows(p, chunk - valid) for p in parts]
    pieces.append((fn(*parts), valid))
  host = [jax.tree.map(lambda out, valid=valid: np.asarray(out)[:valid], out) for out, valid in pieces]
  return jax.tree.map(lambda *outs: np.concatenate(outs), *host)


def pad_rows(x, count: int):
  """`x` with `count` zero rows appended, staying on the device if it is there.

  Args:
    x: numpy or JAX array with at least one dimension.
    count: number of rows to append, >= 0.

  Returns:
    Array of `x`'s type and dtype with `x.shape[0] + count` rows.
  """
  widths = [(0, count)] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, widths) if isinstance(x, jax.Array) else np.pad(x, widths)


def subsample(num_items: int, max_items: int | None, seed: int) -> np.ndarray:
  """Sorted indices of at most `max_items` of `num_items` items, the same for every call with the same seed.

  Args:
    num_items: number of items to choose from.
    max_items: most items to keep; None keeps all.
    seed: seed of the numpy generator that draws the subset.

  Returns:
    int (n,) sorted distinct indices into the items, n = min(num_items, max_items); all of them, in order,
    when `max_items` is None or at least `num_items`.
  """
  if max_items is None or num_items <= max_items:
    return np.arange(num_items)
  return np.sort(np.random.default_rng(seed).choice(num_items, max_items, replace=False))


def held_out_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Stratified, seeded split of row indices into (fit, held_out).

  Each class keeps `round(fraction * its size)` of its rows, chosen at
  random, for the held-out part, so class proportions are preserved (a class
  of one row stays wholly in the fit part at the default fraction).

  Args:
    labels: (N,) non-negative integer class labels.
    fraction: the share of each class held out, in (0, 1).
    seed: seeds the choice.

  Returns:
    `(fit, held_out)`: sorted row indices of the two parts.

  Raises:
    ValueError: if either part would be empty.
  """
  rng = np.random.default_rng(seed)
  shuffled = rng.permutation(labels.shape[0])
  by_class = shuffled[np.argsort(labels[shuffled], kind="stable")]  # classes contiguous, random order within
  counts = np.bincount(labels)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  sorted_labels = labels[by_class]
  rank_in_class = np.arange(labels.shape[0]) - starts[sorted_labels]
  held_per_class = np.round(fraction * counts).astype(np.int64)
  is_held = rank_in_class < held_per_class[sorted_labels]
  fit, held_out = np.sort(by_class[~is_held]), np.sort(by_class[is_held])
  if held_out.size == 0 or fit.size == 0:
    raise ValueError(
        f"held_out_fraction = {fraction} of the {labels.shape[0]} train points (stratified by class) leaves "
        f"{fit.size} to fit and {held_out.size} to hold out; both must be non-empty.")
  return fit, held_out
