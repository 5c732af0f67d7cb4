"""Classification probes on frozen features: k-nearest-neighbour vote and linear probe.

Both follow the usual way to evaluate self-supervised encoders: embed the
train and test splits once with the frozen encoder, then fit a cheap
classifier on the train embeddings and report its test accuracy.

- `knn_predict` / `knn_accuracy`: cosine k-NN. The weighted vote, where each of
  the k neighbours adds `exp(cos / T)` to its class, is the kNN monitor of
  InstDisc (Wu et al., CVPR 2018) as used by DINO (Caron et al., ICCV 2021);
  the unweighted vote is a plain majority.
- `linear_probe`: multinomial logistic regression on standardised features,
  trained with Adam over a learning-rate grid chosen on a held-out part of the
  train split.
- `knn_accuracy_by_level` / `linear_probe_by_level`: the same probes scored
  against several label hierarchies (fine and coarse classes), as in the
  SAG-VICReg paper's hierarchical k-NN and linear tables.

Inputs are numpy (or anything `np.asarray` accepts); results are Python floats
and numpy arrays. The heavy work runs in jitted float32 JAX, over row chunks
so memory stays bounded: k-NN never holds more than a (chunk, num_train)
block of similarities, and keeps only the top k of each test row.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jax_ssl import ops

# A feature whose train standard deviation is below this is constant: it is
# centred but not rescaled, instead of being blown up into noise.
_MIN_STD = 1e-6
# Rows per call when predicting with a trained linear classifier.
_PREDICT_CHUNK = 8192


# ----------------------------------------------------------------------------
# Input checks: numpy in, ValueError naming the argument and the problem out.
# ----------------------------------------------------------------------------


def _check_features(name: str, features) -> np.ndarray:
  """`features` as a finite float32 (N, D) numpy array with N, D >= 1."""
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


def _check_labels(name: str, labels, num_rows: int, features_name: str) -> np.ndarray:
  """`labels` as a non-negative int32 (N,) numpy array, one per row of the features."""
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


def _check_same_width(train: np.ndarray, test: np.ndarray) -> None:
  if train.shape[1] != test.shape[1]:
    raise ValueError(
        f"train_features and test_features must have the same width (feature dimension), "
        f"got {train.shape[1]} and {test.shape[1]}.")


def _resolve_num_classes(num_classes: int | None, train_labels: np.ndarray, name: str = "train_labels") -> int:
  """`num_classes`, defaulting to the largest train label + 1; ValueError if a train label does not fit."""
  largest = int(train_labels.max())
  if num_classes is None:
    return largest + 1
  if num_classes < 1:
    raise ValueError(f"num_classes must be positive, got {num_classes}.")
  if largest >= num_classes:
    raise ValueError(f"{name} contains label {largest}, which does not fit num_classes = {num_classes}.")
  return int(num_classes)


def _check_levels(train_labels_by_level: Mapping, test_labels_by_level: Mapping) -> list:
  """The hierarchy levels, in the train dict's order; ValueError if the two dicts disagree."""
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


def _level_num_classes(num_classes: int | Mapping | None, level) -> int | None:
  """Per-level class count: a mapping is looked up by level; one int would be wrong for all but one level."""
  if num_classes is None:
    return None
  if isinstance(num_classes, Mapping):
    return num_classes.get(level)
  raise ValueError(
      "num_classes must be a mapping {level: count} (or None) for the per-level probes, "
      f"got {num_classes!r}.")


# ----------------------------------------------------------------------------
# Chunked evaluation.
# ----------------------------------------------------------------------------


def _map_row_chunks(fn: Callable, arrays: Sequence, chunk_size: int):
  """`fn` applied to aligned row chunks of `arrays` (numpy or JAX), its outputs concatenated along rows as numpy.

  The last chunk is zero-padded to the full chunk size so one compilation
  serves every chunk; the padded rows' outputs are dropped. Outputs stay on
  the device until all chunks are dispatched, so the host does not wait
  between chunks.
  """
  num_rows = arrays[0].shape[0]
  chunk = min(chunk_size, num_rows)
  pieces = []
  for start in range(0, num_rows, chunk):
    parts = [a[start:start + chunk] for a in arrays]
    valid = parts[0].shape[0]
    if valid < chunk:
      parts = [_pad_rows(p, chunk - valid) for p in parts]
    pieces.append((fn(*parts), valid))
  host = [jax.tree.map(lambda out, valid=valid: np.asarray(out)[:valid], out) for out, valid in pieces]
  return jax.tree.map(lambda *outs: np.concatenate(outs), *host)


def _pad_rows(x, count: int):
  """`x` with `count` zero rows appended, staying on the device if it is there."""
  widths = [(0, count)] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, widths) if isinstance(x, jax.Array) else np.pad(x, widths)


# ----------------------------------------------------------------------------
# k nearest neighbours.
# ----------------------------------------------------------------------------


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
  return _map_row_chunks(lambda chunk: _top_k_cosine(train_unit, chunk, k), [test], chunk_size)


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
  train = _check_features("train_features", train_features)
  test = _check_features("test_features", test_features)
  _check_same_width(train, test)
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
  return _map_row_chunks(vote, [similarities, neighbour_labels], chunk_size).astype(np.int64)


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
  train_labels = _check_labels("train_labels", train_labels, train.shape[0], "train_features")
  num_classes = _resolve_num_classes(num_classes, train_labels)
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
  """Fraction of `test_labels` ((M,) integers) that `knn_predict` with the same arguments gets right."""
  train, test = _knn_features(train_features, test_features, k, temperature, chunk_size)
  train_labels = _check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = _check_labels("test_labels", test_labels, test.shape[0], "test_features")
  labelled = {None: (train_labels, test_labels, _resolve_num_classes(num_classes, train_labels))}
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

  Returns:
    `{level: accuracy}` with the levels of `train_labels_by_level`, which must
    be the same as those of `test_labels_by_level`.
  """
  levels = _check_levels(train_labels_by_level, test_labels_by_level)
  train, test = _knn_features(train_features, test_features, k, temperature, chunk_size)
  labelled = {}
  for level in levels:  # every level is checked before any compute starts
    train_labels = _check_labels(f"train_labels_by_level[{level!r}]", train_labels_by_level[level], train.shape[0],
                                 "train_features")
    test_labels = _check_labels(f"test_labels_by_level[{level!r}]", test_labels_by_level[level], test.shape[0],
                                "test_features")
    level_classes = _resolve_num_classes(_level_num_classes(num_classes, level), train_labels,
                                         f"train_labels_by_level[{level!r}]")
    labelled[level] = (train_labels, test_labels, level_classes)
  return _knn_accuracies(train, test, labelled, k=k, temperature=temperature, weighted=weighted,
                         chunk_size=chunk_size)


# ----------------------------------------------------------------------------
# Linear probe.
# ----------------------------------------------------------------------------


@jax.jit
def _standardisation(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-feature mean and standard deviation (constant features get scale 1)."""
  mean = jnp.mean(x, axis=0)
  std = jnp.std(x, axis=0)
  return mean, jnp.where(std < _MIN_STD, 1.0, std)


@jax.jit
def _standardise(x: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  return (x - mean) / std


def _logits(params: dict, x: jax.Array) -> jax.Array:
  return jnp.matmul(x, params["w"], precision=lax.Precision.HIGHEST) + params["b"]


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _train_grid(features: jax.Array, labels: jax.Array, learning_rates: jax.Array, weight_decay: jax.Array,
                key: jax.Array, *, num_classes: int, epochs: int, batch_size: int) -> dict:
  """One logistic-regression classifier per learning rate, all trained together.

  `jax.vmap` over `learning_rates` turns the grid into a batch of
  classifiers inside one compiled program: one compilation and batched
  matmuls rather than a training loop per rate. The minibatch order does not
  depend on the rate, so vmap draws it once and every classifier sees the
  same batches: the rates are compared on equal terms.

  Per classifier: weights and bias start at zero (the problem is convex, so
  the start only affects the path); the loss is the mean softmax cross-entropy
  plus `weight_decay / 2 * ||W||^2` (bias not decayed), added to the gradient
  before Adam, i.e. classic L2 regularisation rather than AdamW's decoupled
  decay, so the minimiser is that of the penalised objective. The step size
  follows a cosine decay from the learning rate to 0 over all steps, no
  warm-up. An epoch is a fresh permutation of the rows cut into
  ceil(N / batch_size) batches; the last batch wraps round to the start of
  the permutation so all batches have the same shape.

  Returns:
    `{"w": (L, D, C), "b": (L, C)}` for the L learning rates.
  """
  num_rows, dim = features.shape
  steps_per_epoch = -(-num_rows // batch_size)
  total_steps = epochs * steps_per_epoch

  def loss_fn(params, x, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(_logits(params, x), y))

  def train_one(learning_rate):
    params = {"w": jnp.zeros((dim, num_classes), jnp.float32), "b": jnp.zeros((num_classes,), jnp.float32)}
    optimizer = optax.chain(
        optax.add_decayed_weights(weight_decay, mask={"w": True, "b": False}),
        optax.adam(optax.cosine_decay_schedule(learning_rate, total_steps)),
    )

    def step(carry, batch_indices):
      params, opt_state = carry
      grads = jax.grad(loss_fn)(params, features[batch_indices], labels[batch_indices])
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, epoch_index):
      order = jax.random.permutation(jax.random.fold_in(key, epoch_index), num_rows)
      batches = order[jnp.arange(steps_per_epoch * batch_size) % num_rows].reshape(steps_per_epoch, batch_size)
      return lax.scan(step, carry, batches)[0], None

    (params, _), _ = lax.scan(epoch, (params, optimizer.init(params)), jnp.arange(epochs))
    return params

  return jax.vmap(train_one)(learning_rates)


@jax.jit
def _predict_grid(params: dict, x: jax.Array) -> jax.Array:
  """(rows, L) predicted classes of each of the L classifiers in `params`."""
  return jax.vmap(lambda p: jnp.argmax(_logits(p, x), axis=1), out_axes=1)(params)


def _grid_accuracies(params: dict, features: jax.Array, labels: np.ndarray) -> np.ndarray:
  """(L,) accuracy of each classifier, predicting in row chunks."""
  predictions = _map_row_chunks(lambda chunk: _predict_grid(params, chunk), [features], _PREDICT_CHUNK)
  return np.mean(predictions == labels[:, None], axis=0)


def _held_out_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Stratified, seeded split of row indices into (fit, held_out).

  Each class keeps `round(fraction * its size)` of its rows, chosen at
  random, for the held-out part, so class proportions are preserved (a class
  of one row stays wholly in the fit part at the default fraction).
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


def _fit_and_score(train: np.ndarray, train_labels: np.ndarray, evaluate: Sequence[tuple[np.ndarray, np.ndarray]],
                   learning_rates: np.ndarray, weight_decay: float, key: jax.Array, *, num_classes: int,
                   epochs: int, batch_size: int) -> list[np.ndarray]:
  """Standardise with `train`'s statistics, train one classifier per rate, return their accuracies on each set."""
  train_device = jnp.asarray(train)
  mean, std = _standardisation(train_device)
  params = _train_grid(_standardise(train_device, mean, std), jnp.asarray(train_labels),
                       jnp.asarray(learning_rates, jnp.float32), jnp.float32(weight_decay), key,
                       num_classes=num_classes, epochs=epochs, batch_size=min(batch_size, train.shape[0]))
  return [_grid_accuracies(params, _standardise(jnp.asarray(x), mean, std), y) for x, y in evaluate]


def linear_probe(
    train_features,
    train_labels,
    test_features,
    test_labels,
    *,
    num_classes: int | None = None,
    learning_rates: Sequence[float] = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1),
    weight_decay: float = 0.0,
    epochs: int = 100,
    batch_size: int = 256,
    held_out_fraction: float = 0.1,
    seed: int = 0,
) -> dict:
  """Test accuracy of a multinomial logistic regression trained on frozen features.

  Procedure: the linear-evaluation protocol used for transfer (Kornblith et
  al., CVPR 2019; SimCLR's transfer tables): L2-regularised multinomial
  logistic regression on frozen, standardised features, its hyperparameter
  chosen on a held-out part of the train split and the classifier then
  refitted on all of it. Adam minibatch training replaces L-BFGS so that the
  whole grid trains in one vmapped program and scales to large train sets.

  1. Split the train set, stratified by class and seeded, into a fit part and
     a held-out part of `held_out_fraction`.
  2. Standardise features with the fit part's per-feature mean and standard
     deviation; train one classifier per learning rate on the fit part (all
     rates at once, vmapped: see `_train_grid` for optimiser and schedule).
  3. Keep the rate of best held-out accuracy (the first in grid order on a
     tie).
  4. Re-standardise with the whole train split's statistics, retrain on all
     of it with that rate, and score the test split.

  Same arguments and seed give the same result.

  Args:
    train_features, train_labels: (N, D) features and (N,) labels to train on.
    test_features, test_labels: (M, D) features and (M,) labels to score.
    num_classes: logits per example; defaults to max(train_labels) + 1 (a test
      label outside the train classes then simply counts as an error).
    learning_rates: Adam peak learning rates to search.
    weight_decay: L2 coefficient on the weights (the loss adds
      `weight_decay / 2 * ||W||^2`).
    epochs: passes over the training rows.
    batch_size: rows per Adam step (capped at the number of rows).
    held_out_fraction: share of the train split held out for the search, in (0, 1).
    seed: seeds the split and the minibatch order.

  Returns:
    `{"accuracy": test accuracy, "train_accuracy": accuracy on the train
    split, "best_learning_rate": the chosen rate, "held_out_accuracy":
    {rate: held-out accuracy}}`, all Python floats.
  """
  train = _check_features("train_features", train_features)
  test = _check_features("test_features", test_features)
  _check_same_width(train, test)
  train_labels = _check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = _check_labels("test_labels", test_labels, test.shape[0], "test_features")
  num_classes = _resolve_num_classes(num_classes, train_labels)
  grid = np.asarray(learning_rates, np.float64)
  if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)) or not np.all(grid > 0):
    raise ValueError(f"learning_rates must be a non-empty sequence of positive numbers, got {learning_rates!r}.")
  if not (np.isfinite(weight_decay) and weight_decay >= 0):
    raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay}.")
  if epochs < 1:
    raise ValueError(f"epochs must be at least 1, got {epochs}.")
  if batch_size < 1:
    raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
  if not 0 < held_out_fraction < 1:
    raise ValueError(f"held_out_fraction must lie strictly between 0 and 1, got {held_out_fraction}.")

  select_key, final_key = jax.random.split(jax.random.key(seed))
  fit, held_out = _held_out_split(train_labels, held_out_fraction, seed)
  (held_out_accuracy,) = _fit_and_score(
      train[fit], train_labels[fit], [(train[held_out], train_labels[held_out])], grid, weight_decay, select_key,
      num_classes=num_classes, epochs=epochs, batch_size=batch_size)
  best = int(np.argmax(held_out_accuracy))  # first maximum: ties go to the earlier rate in the grid
  test_accuracy, train_accuracy = _fit_and_score(
      train, train_labels, [(test, test_labels), (train, train_labels)], grid[best:best + 1], weight_decay,
      final_key, num_classes=num_classes, epochs=epochs, batch_size=batch_size)
  return {
      "accuracy": float(test_accuracy[0]),
      "train_accuracy": float(train_accuracy[0]),
      "best_learning_rate": float(grid[best]),
      "held_out_accuracy": {float(rate): float(acc) for rate, acc in zip(grid, held_out_accuracy)},
  }


def linear_probe_by_level(
    train_features,
    train_labels_by_level: Mapping,
    test_features,
    test_labels_by_level: Mapping,
    *,
    num_classes: Mapping | None = None,
    **probe_kwargs,
) -> dict:
  """`linear_probe` for each level of a label hierarchy, e.g. `{"label": fine, "label_coarse": coarse}`.

  Each level gets its own classifier, learning-rate search and stratified
  split; `probe_kwargs` (learning_rates, epochs, seed, ...) apply to all.
  `num_classes`, if given, maps level to class count.

  Returns:
    `{level: linear_probe result}` with the levels of `train_labels_by_level`,
    which must be the same as those of `test_labels_by_level`.
  """
  levels = _check_levels(train_labels_by_level, test_labels_by_level)
  train_rows = _check_features("train_features", train_features).shape[0]
  test_rows = _check_features("test_features", test_features).shape[0]
  for level in levels:  # every level's labels are checked before the first probe trains
    train_name = f"train_labels_by_level[{level!r}]"
    train_labels = _check_labels(train_name, train_labels_by_level[level], train_rows, "train_features")
    _check_labels(f"test_labels_by_level[{level!r}]", test_labels_by_level[level], test_rows, "test_features")
    _resolve_num_classes(_level_num_classes(num_classes, level), train_labels, train_name)
  results = {}
  for level in levels:
    try:
      results[level] = linear_probe(train_features, train_labels_by_level[level], test_features,
                                    test_labels_by_level[level], num_classes=_level_num_classes(num_classes, level),
                                    **probe_kwargs)
    except ValueError as error:
      raise ValueError(f"level {level!r}: {error}") from error
  return results
