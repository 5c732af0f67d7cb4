"""The cosine k-nearest-neighbour probe on frozen features.

Each of the k nearest train rows (cosine similarity) votes for its class;
the weighted vote, where a neighbour adds `exp(cos / T)`, is the kNN monitor
of InstDisc (Wu et al., CVPR 2018) as used by DINO (Caron et al., ICCV 2021),
the unweighted vote a plain majority. Only a (chunk, num_train) block of
similarities exists at once, and only the top k of each test row is kept.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jax_ssl import ops
from jax_ssl.eval import inputs


@jax.jit
def _unit_rows(x: jax.Array) -> jax.Array:
  """Rows scaled to unit length; a zero row stays zero (cosine 0 with everything)."""
  return x * ops.inverse_norms(x)[:, None]


@functools.partial(jax.jit, static_argnames=("k",))
def _top_k_cosine(train_unit: jax.Array, test_chunk: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k largest cosine similarities of each test row to the (unit) train rows, descending.

  Only a (chunk, num_train) block of similarities exists at once. Equal
  similarities come out in the order XLA's `top_k` gives them (lower train
  index first on CPU).
  """
  similarities = jnp.matmul(test_chunk, train_unit.T, precision=lax.Precision.HIGHEST)
  similarities = similarities * ops.inverse_norms(test_chunk)[:, None]
  values, indices = lax.top_k(similarities, k)
  return values, indices.astype(jnp.int32)


def _nearest_neighbours(train: np.ndarray, test: np.ndarray, k: int,
                        chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(num_test, k) similarities and train indices of every test row's k nearest train rows."""
  train_unit = _unit_rows(jnp.asarray(train))
  return inputs.map_row_chunks(lambda chunk: _top_k_cosine(train_unit, chunk, k), [test], chunk_size)


@functools.partial(jax.jit, static_argnames=("num_classes", "weighted"))
def _vote(similarities: jax.Array, neighbour_labels: jax.Array, temperature: jax.Array, *,
          num_classes: int, weighted: bool) -> jax.Array:
  """The class each row's k neighbours (sorted nearest first) vote for.

  Each neighbour adds its weight to its class: `exp(cos / T)` when `weighted`,
  1 otherwise; the class with the largest total wins. A tie goes to the tied
  class that holds the nearest neighbour (the first neighbour, in similarity
  order, whose class has the top score); with weights ties need exactly equal
  sums, so this matters mostly for the unweighted vote.
  """
  if weighted:
    # exp(s / T) is computed as exp((s - s_nearest) / T): the common factor
    # exp(s_nearest / T) cannot change the winner, and without it exp
    # overflows float32 once 1 / T exceeds ~88.
    weights = jnp.exp((similarities - similarities[:, :1]) / temperature)
  else:
    weights = jnp.ones_like(similarities)
  rows = jnp.arange(similarities.shape[0])[:, None]
  scores = jnp.zeros((similarities.shape[0], num_classes), jnp.float32).at[rows, neighbour_labels].add(weights)
  neighbour_scores = jnp.take_along_axis(scores, neighbour_labels, axis=1)
  in_winning_class = neighbour_scores == jnp.max(scores, axis=1, keepdims=True)
  first_winner = jnp.argmax(in_winning_class, axis=1)  # argmax returns the first True
  return jnp.take_along_axis(neighbour_labels, first_winner[:, None], axis=1)[:, 0]


def _knn_features(train_features, test_features, k: int, temperature: float, chunk_size: int):
  """Checked (train, test) features and k-NN settings."""
  train = inputs.check_features("train_features", train_features)
  test = inputs.check_features("test_features", test_features)
  inputs.check_same_width(train, test)
  if not 1 <= k <= train.shape[0]:
    raise ValueError(f"k must be in [1, {train.shape[0]}] (the number of train points), got {k}.")
  if not temperature > 0:
    raise ValueError(f"temperature must be positive, got {temperature}.")
  if chunk_size < 1:
    raise ValueError(f"chunk_size must be positive, got {chunk_size}.")
  return train, test


def _knn_accuracies(train: np.ndarray, test: np.ndarray, labelled: Mapping, *, k: int, temperature: float,
                    weighted: bool, chunk_size: int) -> dict:
  """Accuracy per level; `labelled[level]` = (train_labels, test_labels, num_classes), already checked.

  The neighbour search does not depend on the labels, so it runs once; only
  the vote is repeated per level.
  """
  similarities, indices = _nearest_neighbours(train, test, k, chunk_size)
  accuracies = {}
  for level, (train_labels, test_labels, num_classes) in labelled.items():
    predictions = _vote_in_chunks(similarities, train_labels[indices], temperature=temperature, weighted=weighted,
                                  num_classes=num_classes, chunk_size=chunk_size)
    accuracies[level] = float(np.mean(predictions == test_labels))
  return accuracies


def _vote_in_chunks(similarities, neighbour_labels, *, temperature, weighted, num_classes, chunk_size) -> np.ndarray:
  vote = functools.partial(_vote, temperature=jnp.float32(temperature), num_classes=num_classes, weighted=weighted)
  return inputs.map_row_chunks(vote, [similarities, neighbour_labels], chunk_size).astype(np.int64)


def knn_predict(
    train_features,
    train_labels,
    test_features,
    *,
    k: int = 20,
    temperature: float = 0.07,
    weighted: bool = True,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> np.ndarray:
  """Labels predicted for `test_features` by a vote of their k nearest train points under cosine similarity.

  Procedure: L2-normalise every row (a zero row has cosine 0 to everything);
  for each test row take the k train rows of largest cosine `s_j`; each adds
  `exp(s_j / temperature)` (`weighted=True`, the InstDisc/DINO kNN monitor) or
  1 (`weighted=False`, plain majority) to the score of its label; predict the
  label of highest score.

  Tie rule: a tie goes to the tied label that holds the nearest neighbour. In
  a majority vote of 2 against 2, the label whose closest vote is closer wins;
  weighted votes tie only on exactly equal sums. Neighbours at exactly equal
  similarity are ranked as XLA's `top_k` returns them (lower train index
  first on CPU).

  Args:
    train_features: (N, D) embeddings of the train split.
    train_labels: (N,) integer labels in [0, num_classes).
    test_features: (M, D) embeddings to classify.
    k: neighbours per test point, in [1, N].
    temperature: T of the weighted vote (ignored when `weighted=False`).
    weighted: `exp(s / T)` votes if True, equal votes if False.
    num_classes: number of classes; defaults to max(train_labels) + 1.
    chunk_size: test rows per step: memory is O(chunk_size * N), and only
      the top k of each test row is kept.

  Returns:
    (M,) int64 predicted labels.
  """
  train, test = _knn_features(train_features, test_features, k, temperature, chunk_size)
  train_labels = inputs.check_labels("train_labels", train_labels, train.shape[0], "train_features")
  num_classes = inputs.resolve_num_classes(num_classes, train_labels)
  similarities, indices = _nearest_neighbours(train, test, k, chunk_size)
  return _vote_in_chunks(similarities, train_labels[indices], temperature=temperature, weighted=weighted,
                         num_classes=num_classes, chunk_size=chunk_size)


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    k: int = 20,
    temperature: float = 0.07,
    weighted: bool = True,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> float:
  """Fraction of `test_labels` ((M,) integers) that `knn_predict` with the same arguments gets right.

  Args:
    train_features: (N, D) embeddings of the train split.
    train_labels: (N,) non-negative integer labels in [0, num_classes).
    test_features: (M, D) embeddings to classify.
    test_labels: (M,) non-negative integer labels of the test rows.
    k: neighbours per test point, in [1, N].
    temperature: T > 0 of the weighted vote (ignored when `weighted=False`).
    weighted: `exp(s / T)` votes if True, equal votes if False.
    num_classes: number of classes; defaults to max(train_labels) + 1.
    chunk_size: test rows per step (memory O(chunk_size * N)).

  Returns:
    Accuracy as a float in [0, 1].

  Raises:
    ValueError: if the features are not finite real 2-D arrays of the same width, a label array is malformed
      (see `inputs.check_labels`) or does not fit `num_classes`, or `k`, `temperature` or `chunk_size` is out
      of range.
  """
  train, test = _knn_features(train_features, test_features, k, temperature, chunk_size)
  train_labels = inputs.check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = inputs.check_labels("test_labels", test_labels, test.shape[0], "test_features")
  labelled = {None: (train_labels, test_labels, inputs.resolve_num_classes(num_classes, train_labels))}
  return _knn_accuracies(train, test, labelled, k=k, temperature=temperature, weighted=weighted,
                         chunk_size=chunk_size)[None]


def knn_accuracy_by_level(
    train_features,
    train_labels_by_level: Mapping,
    test_features,
    test_labels_by_level: Mapping,
    *,
    k: int = 20,
    temperature: float = 0.07,
    weighted: bool = True,
    num_classes: Mapping | None = None,
    chunk_size: int = 1024,
) -> dict:
  """`knn_accuracy` for each level of a label hierarchy, e.g. `{"label": fine, "label_coarse": coarse}`.

  The neighbour search runs once for all levels. `num_classes`, if given,
  maps level to class count (levels left out default to max label + 1).

  Args:
    train_features: (N, D) embeddings of the train split.
    train_labels_by_level: {level: (N,) non-negative integer train labels}.
    test_features: (M, D) embeddings to classify.
    test_labels_by_level: {level: (M,) integer test labels}, with the same levels.
    k: neighbours per test point, in [1, N].
    temperature: T > 0 of the weighted vote (ignored when `weighted=False`).
    weighted: `exp(s / T)` votes if True, equal votes if False.
    num_classes: optional mapping {level: number of classes}.
    chunk_size: test rows per step (memory O(chunk_size * N)).

  Returns:
    `{level: accuracy}` with the levels of `train_labels_by_level`, which must
    be the same as those of `test_labels_by_level`.

  Raises:
    ValueError: if the two mappings have different levels or none, `num_classes` is not a mapping, or any
      check of `knn_accuracy` fails for a level; all levels are checked before any computation.
  """
  levels = inputs.check_levels(train_labels_by_level, test_labels_by_level)
  train, test = _knn_features(train_features, test_features, k, temperature, chunk_size)
  labelled = {}
  for level in levels:  # every level is checked before any compute starts
    train_labels = inputs.check_labels(f"train_labels_by_level[{level!r}]", train_labels_by_level[level],
                                       train.shape[0], "train_features")
    test_labels = inputs.check_labels(f"test_labels_by_level[{level!r}]", test_labels_by_level[level], test.shape[0],
                                      "test_features")
    level_classes = inputs.resolve_num_classes(inputs.level_num_classes(num_classes, level), train_labels,
                                               f"train_labels_by_level[{level!r}]")
    labelled[level] = (train_labels, test_labels, level_classes)
  return _knn_accuracies(train, test, labelled, k=k, temperature=temperature, weighted=weighted,
                         chunk_size=chunk_size)


def knn_accuracy_by_k(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    ks: Sequence[int] = (10, 20, 100, 200),
    temperature: float = 0.07,
    weighted: bool = True,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> dict[int, float]:
  """`knn_accuracy` at several k, from one neighbour search (the largest k; each vote reads its nearest k).

  Args:
    train_features: (N, D) embeddings of the train split.
    train_labels: (N,) non-negative integer labels.
    test_features: (M, D) embeddings to classify.
    test_labels: (M,) non-negative integer labels.
    ks: neighbour counts, each in [1, N].
    temperature: T > 0 of the weighted vote (ignored when `weighted=False`).
    weighted: `exp(s / T)` votes if True, equal votes if False.
    num_classes: number of classes; defaults to max(train_labels) + 1.
    chunk_size: test rows per step (memory O(chunk_size * N)).

  Returns:
    {k: accuracy} for each k of `ks`.

  Raises:
    ValueError: as `knn_accuracy`, for the largest k.
  """
  largest = max(ks)
  train, test = _knn_features(train_features, test_features, largest, temperature, chunk_size)
  train_labels = inputs.check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = inputs.check_labels("test_labels", test_labels, test.shape[0], "test_features")
  classes = inputs.resolve_num_classes(num_classes, train_labels)
  similarities, indices = _nearest_neighbours(train, test, largest, chunk_size)  # nearest first
  accuracies = {}
  for k in ks:
    predictions = _vote_in_chunks(similarities[:, :k], train_labels[indices[:, :k]], temperature=temperature,
                                  weighted=weighted, num_classes=classes, chunk_size=chunk_size)
    accuracies[int(k)] = float(np.mean(predictions == test_labels))
  return accuracies
