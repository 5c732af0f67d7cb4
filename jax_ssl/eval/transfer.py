"""Transfer protocols on frozen features: a logistic-regression probe, kNN at several k, few-shot ridge.

Arrays in, numbers out, one label level at a time:

- `logistic_probe`: L2-regularised multinomial logistic regression as in
  DINOv2's linear evaluation (Oquab et al., 2023): the inverse regularisation
  C is chosen on a stratified 10% hold-out of the train split over a log grid,
  then the probe is refit on the whole train split with that C. Features are
  standardised with the fitting rows' statistics (a constant feature is only
  centred). scikit-learn's L-BFGS solver.
- `knn_accuracies`: the cosine kNN of `jax_ssl.eval.knn` (each of the k
  nearest train rows votes `exp(cos / T)`, T = 0.07) at k in {10, 20, 100, 200}
  (capped at the train size).
- `few_shot_accuracies`: `shots` train rows per class drawn at random
  (`few_shot_indices`: seeded, balanced), features standardised with the
  drawn rows' statistics ("whitened", as big_vision's few-shot evaluator
  does), a constant bias feature appended, and the closed-form ridge
  regression onto the classes' {-1, +1} one-hot codes; the prediction is the
  largest output. Several draws give a mean and a spread.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from jax_ssl.eval import inputs
from jax_ssl.eval import knn

# DINOv2 searches C over 10^-6 .. 10^5; on standardised features the probes beyond 10^2 are all but
# unregularised, and on a CPU each of them costs the most iterations: the grid stops there.
LOGISTIC_C_GRID = tuple(10.0 ** power for power in range(-4, 3))
KNN_KS = (10, 20, 100, 200)
KNN_TEMPERATURE = 0.07
FEW_SHOTS = (1, 5, 10, 25)
FEW_SHOT_DRAWS = 3
# Ridge strength on the standardised features, and the bias feature's value: large, so that the bias is
# barely regularised (big_vision's few-shot defaults).
FEW_SHOT_L2 = 2.0 ** 10
FEW_SHOT_BIAS = 100.0
_MIN_STD = 1e-6


def _standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  mean = x.mean(axis=0)
  std = x.std(axis=0)
  return mean, np.where(std < _MIN_STD, 1.0, std)


def _checked(train_features, train_labels, test_features, test_labels):
  train = inputs.check_features("train_features", train_features).astype(np.float64)
  test = inputs.check_features("test_features", test_features).astype(np.float64)
  inputs.check_same_width(train, test)
  train_labels = inputs.check_labels("train_labels", train_labels, train.shape[0], "train_features")
  test_labels = inputs.check_labels("test_labels", test_labels, test.shape[0], "test_features")
  return train, train_labels, test, test_labels


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float, max_iter: int, start=None):
  """scikit-learn's L-BFGS fit at C = `c`; `start`, a probe fit at a smaller C, seeds the solver (same optimum)."""
  from sklearn.linear_model import LogisticRegression
  probe = start if start is not None else LogisticRegression(max_iter=max_iter, tol=1e-4, warm_start=True)
  probe.set_params(C=c)
  with warnings.catch_warnings():
    # A probe that stops at max_iter still predicts; the grid search judges it by its held-out accuracy.
    warnings.simplefilter("ignore")
    return probe.fit(x, y)


def logistic_probe(train_features, train_labels, test_features, test_labels, *,
                   c_grid: Sequence[float] = LOGISTIC_C_GRID, held_out_fraction: float = 0.1, seed: int = 0,
                   max_iter: int = 200) -> dict:
  """Test accuracy of an L2 logistic-regression probe whose C is chosen on a held-out part of the train split.

  Args:
    train_features: (N, D) features the probe is fit on.
    train_labels: (N,) integer classes.
    test_features: (M, D) features it is scored on.
    test_labels: (M,) integer classes.
    c_grid: inverse regularisation strengths searched (scikit-learn's C: the loss is
      `C * sum_i log-loss_i + ||W||^2 / 2`, the intercept unpenalised).
    held_out_fraction: the stratified share of the train rows the search scores on.
    seed: seeds the hold-out split.
    max_iter: L-BFGS iterations per fit.

  Returns:
    `{"accuracy": test accuracy of the refit probe, "c": the chosen C, "held_out": {C: held-out accuracy},
    "predictions": (M,) predicted classes}`; the smallest C among equal held-out accuracies is chosen (the
    strongest regularisation). With a single C there is no search (and no "held_out" score); where the
    classes are too small to hold out a share of each, the hold-out is a random 10% of the rows.

  Raises:
    ValueError: for malformed features or labels, or a train split too small to hold a part out.

  References:
    Oquab et al., "DINOv2: Learning Robust Visual Features without Supervision", 2023 (linear evaluation).
  """
  train, train_labels, test, test_labels = _checked(train_features, train_labels, test_features, test_labels)
  scores = {}
  if len(c_grid) > 1:
    fit, held_out = _hold_out(train_labels, held_out_fraction, seed)
    mean, std = _standardiser(train[fit])
    probe = None
    for c in sorted(c_grid):  # along the path of weakening regularisation, each fit starting from the last
      probe = _fit_logistic((train[fit] - mean) / std, train_labels[fit], c, max_iter, probe)
      scores[float(c)] = float(np.mean(probe.predict((train[held_out] - mean) / std) == train_labels[held_out]))
  best = max(scores, key=lambda c: (scores[c], -c)) if scores else float(c_grid[0])
  mean, std = _standardiser(train)
  probe = _fit_logistic((train - mean) / std, train_labels, best, max_iter)
  predictions = probe.predict((test - mean) / std)
  return {"accuracy": float(np.mean(predictions == test_labels)), "c": best, "held_out": scores,
          "predictions": predictions}


def _hold_out(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """The stratified hold-out split; where classes are too small for one (a few rows each), a random one."""
  try:
    return inputs.held_out_split(labels, fraction, seed)
  except ValueError:
    if len(labels) < 2:
      raise
    order = np.random.default_rng(seed).permutation(len(labels))
    count = min(max(1, round(fraction * len(labels))), len(labels) - 1)
    return np.sort(order[count:]), np.sort(order[:count])


def knn_accuracies(train_features, train_labels, test_features, test_labels, *, ks: Sequence[int] = KNN_KS,
                   temperature: float = KNN_TEMPERATURE) -> dict[int, float]:
  """Weighted cosine kNN accuracy at each k of `ks` (`jax_ssl.eval.knn`), k capped at the train size.

  Args:
    train_features: (N, D) features of the labelled rows.
    train_labels: (N,) integer classes.
    test_features: (M, D) features to classify.
    test_labels: (M,) integer classes.
    ks: neighbour counts.
    temperature: T of the `exp(cos / T)` votes.

  Returns:
    {k: accuracy}, keyed by the k asked for (a k above N uses all N rows).

  References:
    Wu et al., "Unsupervised Feature Learning via Non-Parametric Instance Discrimination", CVPR 2018.
  """
  train, train_labels, test, test_labels = _checked(train_features, train_labels, test_features, test_labels)
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  capped = {int(k): min(int(k), len(train)) for k in ks}
  accuracies = knn.knn_accuracy_by_k(train, train_labels, test, test_labels, ks=sorted(set(capped.values())),
                                     temperature=temperature, num_classes=num_classes)
  return {k: accuracies[used] for k, used in capped.items()}


def few_shot_indices(labels, shots: int, draw: int, seed: int = 0) -> np.ndarray:
  """`shots` rows of every class, drawn without replacement; the same (shots, draw, seed) give the same rows.

  Args:
    labels: (N,) integer classes.
    shots: rows per class.
    draw: which draw, 0, 1, ...
    seed: seed of the draws.

  Returns:
    Sorted row indices, `shots` of each class present in `labels`.

  Raises:
    ValueError: if a class has fewer than `shots` rows.
  """
  labels = np.asarray(labels)
  rng = np.random.default_rng([seed, shots, draw])
  chosen = []
  for label in np.unique(labels):
    rows = np.flatnonzero(labels == label)
    if len(rows) < shots:
      raise ValueError(f"class {label} has {len(rows)} rows, fewer than {shots} shots.")
    chosen.append(rng.choice(rows, shots, replace=False))
  return np.sort(np.concatenate(chosen))


def ridge_classifier(train: np.ndarray, train_labels: np.ndarray, num_classes: int,
                     l2: float = FEW_SHOT_L2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """The few-shot ridge classifier of standardised features: `(mean, std, weights)`.

  `weights = argmin_W ||X W - Y||^2 + l2 ||W||^2` in closed form, X the standardised rows with the bias
  feature appended, Y the {-1, +1} one-hot codes; solved in whichever of the (D + 1)- and N-dimensional
  normal equations is smaller.

  Args:
    train: (N, D) float64 features.
    train_labels: (N,) integer classes.
    num_classes: C, the width of the codes.
    l2: the ridge strength.

  Returns:
    `(mean, std, weights)`: the standardisation and the (D + 1, C) weights; predict with `ridge_predict`.
  """
  mean, std = _standardiser(train)
  x = _with_bias((train - mean) / std)
  y = 2.0 * np.eye(num_classes)[train_labels] - 1.0
  if x.shape[1] <= x.shape[0]:
    weights = np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ y)
  else:  # W = X^T (X X^T + l2 I)^-1 Y: the same minimiser, an N x N system
    weights = x.T @ np.linalg.solve(x @ x.T + l2 * np.eye(x.shape[0]), y)
  return mean, std, weights


def ridge_predict(classifier: tuple[np.ndarray, np.ndarray, np.ndarray], features: np.ndarray) -> np.ndarray:
  """The class with the largest ridge output for each row of `features` ((M, D)); (M,) integers.

  Args:
    classifier: `ridge_classifier`'s `(mean, std, weights)`.
    features: (M, D) features.

  Returns:
    (M,) predicted classes.
  """
  mean, std, weights = classifier
  return np.argmax(_with_bias((np.asarray(features, np.float64) - mean) / std) @ weights, axis=1)


def _with_bias(x: np.ndarray) -> np.ndarray:
  return np.concatenate([x, np.full((x.shape[0], 1), FEW_SHOT_BIAS)], axis=1)


def few_shot_accuracies(train_features, train_labels, test_features, test_labels, *,
                        shots: Sequence[int] = FEW_SHOTS, draws: int = FEW_SHOT_DRAWS, seed: int = 0,
                        l2: float = FEW_SHOT_L2) -> dict[int, dict]:
  """Few-shot accuracy of the ridge classifier at each shot count, over `draws` draws of the train rows.

  Args:
    train_features: (N, D) features the shots are drawn from.
    train_labels: (N,) integer classes.
    test_features: (M, D) features to classify.
    test_labels: (M,) integer classes.
    shots: rows per class.
    draws: draws per shot count (`few_shot_indices` with draw 0, 1, ...).
    seed: seed of the draws.
    l2: the ridge strength (`ridge_classifier`).

  Returns:
    {shots: {"mean", "std" (ddof 1; 0 for one draw), "values"}}; a shot count some class cannot fill is
    left out.

  References:
    Beyer, Zhai, Kolesnikov, big_vision (github.com/google-research/big_vision): the few-shot linear
    evaluator.
  """
  train, train_labels, test, test_labels = _checked(train_features, train_labels, test_features, test_labels)
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  smallest = np.bincount(train_labels)[np.unique(train_labels)].min()
  results = {}
  for count in shots:
    if count > smallest:
      continue
    values = []
    for draw in range(draws):
      rows = few_shot_indices(train_labels, count, draw, seed)
      classifier = ridge_classifier(train[rows], train_labels[rows], num_classes, l2)
      values.append(float(np.mean(ridge_predict(classifier, test) == test_labels)))
    results[int(count)] = {"mean": float(np.mean(values)),
                           "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0, "values": values}
  return results


def group_accuracies(spec, records: dict, predictions: np.ndarray, labels: np.ndarray) -> dict:
  """Accuracy per group of a dataset with groups, e.g. per shift of `shapes_ood`.

  Args:
    spec: the dataset's `catalog.DatasetSpec`; its `group_keys` name the groups, `group_names` their values.
    records: the scored records' arrays, holding each group key (N,).
    predictions: (N,) predicted labels.
    labels: (N,) true labels.

  Returns:
    {group key: {value name (or the value as a string): accuracy}}; {} for a dataset without groups.
  """
  groups = {}
  for key in spec.group_keys:
    values, names = np.asarray(records[key]), spec.group_names.get(key)
    groups[key] = {(names[value] if names else str(value)): float(np.mean(
        predictions[values == value] == labels[values == value])) for value in np.unique(values)}
  return groups
