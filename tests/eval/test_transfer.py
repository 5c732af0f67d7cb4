"""The transfer protocols against float64 references written here: logistic probe, kNN at several k, few-shot."""

import numpy as np
import pytest
from scipy import optimize
from scipy import special

from jax_ssl.eval import inputs
from jax_ssl.eval import transfer


def _blobs(seed, n, dim, classes, spread=1.0):
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, dim)) * 2.0
  labels = rng.permutation(np.arange(n) % classes)
  return centres[labels] + spread * rng.normal(size=(n, dim)), labels


def _reference_logistic(x, y, c, num_classes):
  """argmin_{W, b} c * sum_i -log softmax(x_i W + b)_{y_i} + ||W||^2 / 2, in float64 by scipy's L-BFGS."""
  dim = x.shape[1]
  onehot = np.eye(num_classes)[y]

  def objective(theta):
    weights, bias = theta[:dim * num_classes].reshape(dim, num_classes), theta[dim * num_classes:]
    logits = x @ weights + bias
    log_probs = logits - special.logsumexp(logits, axis=1, keepdims=True)
    residual = np.exp(log_probs) - onehot
    value = -c * np.sum(onehot * log_probs) + 0.5 * np.sum(weights ** 2)
    gradient = np.concatenate([(c * x.T @ residual + weights).ravel(), c * residual.sum(axis=0)])
    return value, gradient

  theta = optimize.minimize(objective, np.zeros(dim * num_classes + num_classes), jac=True, method="L-BFGS-B",
                            options={"maxiter": 5000, "gtol": 1e-10}).x
  return theta[:dim * num_classes].reshape(dim, num_classes), theta[dim * num_classes:]


def _standardise(fit_rows, *others):
  mean, std = fit_rows.mean(axis=0), fit_rows.std(axis=0)
  return [(rows - mean) / std for rows in (fit_rows, *others)]


def test_the_logistic_probe_chooses_c_on_the_hold_out_and_refits_as_the_reference_does():
  train, train_labels = _blobs(0, 150, 5, 3, spread=2.0)
  test, test_labels = _blobs(1, 90, 5, 3, spread=2.0)
  grid = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
  result = transfer.logistic_probe(train, train_labels, test, test_labels, c_grid=grid, seed=4)
  fit, held_out = inputs.held_out_split(train_labels, 0.1, 4)
  expected_scores = {}
  for c in grid:
    fit_rows, held_rows = _standardise(train[fit], train[held_out])
    weights, bias = _reference_logistic(fit_rows, train_labels[fit], c, 3)
    expected_scores[c] = np.mean(np.argmax(held_rows @ weights + bias, axis=1) == train_labels[held_out])
  assert result["held_out"] == pytest.approx(expected_scores)
  best = max(grid, key=lambda c: (expected_scores[c], -c))
  assert result["c"] == best
  train_rows, test_rows = _standardise(train, test)
  weights, bias = _reference_logistic(train_rows, train_labels, best, 3)
  expected = np.argmax(test_rows @ weights + bias, axis=1)
  np.testing.assert_array_equal(result["predictions"], expected)
  assert result["accuracy"] == pytest.approx(np.mean(expected == test_labels))


def test_knn_at_each_k_is_the_weighted_cosine_vote():
  train, train_labels = _blobs(2, 60, 6, 4, spread=3.0)
  test, test_labels = _blobs(3, 40, 6, 4, spread=3.0)
  result = transfer.knn_accuracies(train, train_labels, test, test_labels, ks=(1, 10, 20, 100), temperature=0.07)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
  similarities = unit(test) @ unit(train).T
  for k, accuracy in result.items():
    used = min(k, len(train))  # k above the train size uses every row
    nearest = np.argsort(-similarities, axis=1)[:, :used]
    votes = np.zeros((len(test), 4))
    for row in range(len(test)):
      for column in nearest[row]:
        votes[row, train_labels[column]] += np.exp(similarities[row, column] / 0.07)
    assert accuracy == pytest.approx(np.mean(np.argmax(votes, axis=1) == test_labels)), k
  assert set(result) == {1, 10, 20, 100}


def test_few_shot_draws_are_balanced_seeded_and_distinct():
  labels = np.repeat(np.arange(5), [7, 9, 12, 8, 10])
  rows = transfer.few_shot_indices(labels, 5, draw=0, seed=1)
  np.testing.assert_array_equal(np.bincount(labels[rows]), [5] * 5)
  assert len(np.unique(rows)) == len(rows)
  np.testing.assert_array_equal(rows, transfer.few_shot_indices(labels, 5, draw=0, seed=1))
  assert not np.array_equal(rows, transfer.few_shot_indices(labels, 5, draw=1, seed=1))
  assert not np.array_equal(rows, transfer.few_shot_indices(labels, 5, draw=0, seed=2))
  with pytest.raises(ValueError, match="class 0 has 7 rows, fewer than 8 shots"):
    transfer.few_shot_indices(labels, 8, draw=0)


@pytest.mark.parametrize("rows,dim", [(60, 8), (12, 40)])  # the D x D and the N x N normal equations
def test_the_ridge_classifier_is_the_least_squares_solution(rows, dim):
  train, train_labels = _blobs(5, rows, dim, 4)
  test, _ = _blobs(6, 30, dim, 4)
  l2 = 3.0
  mean, std, weights = transfer.ridge_classifier(train, train_labels, 4, l2)
  # Independent: least squares on the system stacked with sqrt(l2) I, on the standardised rows plus a bias of 100.
  x = np.concatenate([(train - train.mean(0)) / train.std(0), np.full((rows, 1), 100.0)], axis=1)
  y = 2.0 * np.eye(4)[train_labels] - 1.0
  stacked_x = np.concatenate([x, np.sqrt(l2) * np.eye(dim + 1)])
  stacked_y = np.concatenate([y, np.zeros((dim + 1, 4))])
  expected = np.linalg.lstsq(stacked_x, stacked_y, rcond=None)[0]
  np.testing.assert_allclose(weights, expected, rtol=1e-6, atol=1e-9)
  x_test = np.concatenate([(test - train.mean(0)) / train.std(0), np.full((30, 1), 100.0)], axis=1)
  np.testing.assert_array_equal(transfer.ridge_predict((mean, std, weights), test), np.argmax(x_test @ expected, 1))


def test_few_shot_accuracies_average_the_draws_and_leave_out_unfillable_counts():
  train, train_labels = _blobs(7, 40, 6, 4)  # 10 rows per class
  test, test_labels = _blobs(8, 40, 6, 4)
  result = transfer.few_shot_accuracies(train, train_labels, test, test_labels, shots=(1, 5, 25), draws=3, seed=2)
  assert set(result) == {1, 5}, "25 shots cannot be drawn from classes of 10"
  for shots, summary in result.items():
    values = []
    for draw in range(3):
      rows = transfer.few_shot_indices(train_labels, shots, draw, 2)
      values.append(np.mean(transfer.ridge_predict(transfer.ridge_classifier(train[rows], train_labels[rows], 4),
                                                   test) == test_labels))
    assert summary["values"] == pytest.approx(values)
    assert summary["mean"] == pytest.approx(np.mean(values)) and summary["std"] == pytest.approx(np.std(values, ddof=1))


def test_bad_features_are_one_line():
  with pytest.raises(ValueError, match="train_features contain NaN or inf"):
    transfer.knn_accuracies(np.full((4, 2), np.nan), [0, 1, 0, 1], np.ones((2, 2)), [0, 1])
  with pytest.raises(ValueError, match="train_labels has 3 entries but train_features has 4 rows"):
    transfer.few_shot_accuracies(np.ones((4, 2)), [0, 1, 0], np.ones((2, 2)), [0, 1])
