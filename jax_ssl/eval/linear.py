"""The linear probe on frozen features: multinomial logistic regression on standardised features.

Trained with Adam over a learning-rate grid (one vmapped program for the
whole grid), the rate chosen on a stratified held-out part of the train
split, then refitted on the whole train split and scored on the test split.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from jax_ssl.eval import inputs

# A feature whose train standard deviation is below this is constant: it is
# centred but not rescaled, instead of being blown up into noise.
_MIN_STD = 1e-6
# Rows per call when predicting with a trained linear classifier.
_PREDICT_CHUNK = 8192


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
  predictions = inputs.map_row_chunks(lambda chunk: _predict_grid(params, chunk), [features], _PREDICT_CHUNK)
  return np.mean(predictions == labels[:, None], axis=0)


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
  train = inputs.check_features("train_features", train_features)
  test = inputs.check_features("test_features", test_features)
  inputs.check_same_width(train, test)
  train_labels = inputs.check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = inputs.check_labels("test_labels", test_labels, test.shape[0], "test_features")
  num_classes = inputs.resolve_num_classes(num_classes, train_labels)
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
  fit, held_out = inputs.held_out_split(train_labels, held_out_fraction, seed)
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

  Args:
    train_features: (N, D) features to train on.
    train_labels_by_level: {level: (N,) non-negative integer train labels}.
    test_features: (M, D) features to score.
    test_labels_by_level: {level: (M,) integer test labels}, with the same levels.
    num_classes: optional mapping {level: number of classes}; levels left out default to max label + 1.
    **probe_kwargs: further keyword arguments of `linear_probe`, the same for every level.

  Returns:
    `{level: linear_probe result}` with the levels of `train_labels_by_level`,
    which must be the same as those of `test_labels_by_level`.

  Raises:
    ValueError: if the two mappings have different levels or none, the features or a level's labels are
      malformed, `num_classes` is not a mapping or a level's count is too small (all checked before any
      training), or `linear_probe` rejects its arguments for a level (the message then names the level).
  """
  levels = inputs.check_levels(train_labels_by_level, test_labels_by_level)
  train_rows = inputs.check_features("train_features", train_features).shape[0]
  test_rows = inputs.check_features("test_features", test_features).shape[0]
  for level in levels:  # every level's labels are checked before the first probe trains
    train_name = f"train_labels_by_level[{level!r}]"
    train_labels = inputs.check_labels(train_name, train_labels_by_level[level], train_rows, "train_features")
    inputs.check_labels(f"test_labels_by_level[{level!r}]", test_labels_by_level[level], test_rows, "test_features")
    inputs.resolve_num_classes(inputs.level_num_classes(num_classes, level), train_labels, train_name)
  results = {}
  for level in levels:
    try:
      results[level] = linear_probe(train_features, train_labels_by_level[level], test_features,
                                    test_labels_by_level[level],
                                    num_classes=inputs.level_num_classes(num_classes, level), **probe_kwargs)
    except ValueError as error:
      raise ValueError(f"level {level!r}: {error}") from error
  return results
