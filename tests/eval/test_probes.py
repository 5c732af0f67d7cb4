"""Classification probes: k-NN against numpy and scikit-learn, the linear probe against scikit-learn, input checks."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

import jax_ssl.eval as ssl_eval
from jax_ssl.eval import inputs

# A short grid and few epochs keep each probe around a second on two CPU cores.
_FAST_PROBE = dict(learning_rates=(1e-3, 1e-2, 1e-1), epochs=30, batch_size=128)


def _random_data(num_train, num_test, dim, num_classes, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((num_train, dim)).astype(np.float32), rng.integers(0, num_classes, num_train),
          rng.standard_normal((num_test, dim)).astype(np.float32), rng.integers(0, num_classes, num_test))


def _clusters(centers, per_class, noise, seed):
  """`per_class` points around each row of `centers`, with their class indices."""
  rng = np.random.default_rng(seed)
  labels = np.repeat(np.arange(len(centers)), per_class)
  points = centers[labels] + noise * rng.standard_normal((len(labels), centers.shape[1]))
  order = rng.permutation(len(labels))
  return points[order].astype(np.float32), labels[order]


def ref_knn_predict(train, train_labels, test, k, temperature=0.07, weighted=True):
  """A plain loop: cosine similarities, stable argsort, vote, ties to the class of the nearest tied neighbour."""
  def unit(x):
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)

  similarities = unit(test) @ unit(train).T
  predictions = []
  for row in similarities:
    nearest = np.argsort(-row, kind="stable")[:k]
    scores = np.zeros(train_labels.max() + 1)
    for j in nearest:
      scores[train_labels[j]] += np.exp(row[j] / temperature) if weighted else 1.0
    winners = set(np.flatnonzero(scores == scores.max()))
    predictions.append(next(train_labels[j] for j in nearest if train_labels[j] in winners))
  return np.array(predictions)


def _has_majority_tie(train, train_labels, test, k):
  """Whether the unweighted vote of some test row is a tie (so the tie rule is exercised)."""
  train_unit = train / np.linalg.norm(train, axis=1, keepdims=True)
  test_unit = test / np.linalg.norm(test, axis=1, keepdims=True)
  nearest = np.argsort(-(test_unit @ train_unit.T), axis=1, kind="stable")[:, :k]
  counts = np.stack([np.bincount(train_labels[row], minlength=train_labels.max() + 1) for row in nearest])
  return bool(np.any(np.sum(counts == counts.max(axis=1, keepdims=True), axis=1) > 1))


# ----------------------------------------------------------------------------
# k-NN
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("num_train,num_test,dim,num_classes,k", [
    (50, 20, 3, 3, 4),
    (200, 37, 8, 5, 10),
    (500, 100, 32, 10, 1),
    (30, 10, 2, 2, 30),
])
def test_majority_vote_matches_numpy_reference(num_train, num_test, dim, num_classes, k):
  train, train_labels, test, _ = _random_data(num_train, num_test, dim, num_classes, seed=num_train)
  predicted = ssl_eval.knn_predict(train, train_labels, test, k=k, weighted=False)
  np.testing.assert_array_equal(predicted, ref_knn_predict(train, train_labels, test, k, weighted=False))


def test_majority_vote_data_has_ties():
  # Guards the reference comparison above: its even-k cases must hit the tie rule.
  train, train_labels, test, _ = _random_data(50, 20, 3, 3, seed=50)
  assert _has_majority_tie(train, train_labels, test, 4)


def test_tie_goes_to_the_class_of_the_nearest_neighbour():
  # Two neighbours, one per class: the winner is the nearer one's class, even when
  # it is the larger label (scikit-learn would pick the smaller label).
  train = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], np.float32)
  train_labels = np.array([1, 0, 2])
  test = np.array([[1.0, 0.2], [0.2, 1.0]], np.float32)
  np.testing.assert_array_equal(ssl_eval.knn_predict(train, train_labels, test, k=2, weighted=False), [1, 0])


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("num_train,num_test,dim,num_classes,k", [(60, 25, 4, 3, 6), (300, 80, 16, 7, 20)])
def test_weighted_vote_matches_numpy_reference(num_train, num_test, dim, num_classes, k, temperature):
  train, train_labels, test, _ = _random_data(num_train, num_test, dim, num_classes, seed=k)
  predicted = ssl_eval.knn_predict(train, train_labels, test, k=k, temperature=temperature)
  np.testing.assert_array_equal(predicted, ref_knn_predict(train, train_labels, test, k, temperature))


@pytest.mark.parametrize("k", [1, 5, 15])
def test_majority_vote_matches_scikit_learn_without_ties(k):
  # Odd k with two classes: a majority always exists, so tie rules cannot differ.
  train, train_labels, test, _ = _random_data(300, 90, 10, 2, seed=k)
  reference = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute").fit(train, train_labels)
  np.testing.assert_array_equal(ssl_eval.knn_predict(train, train_labels, test, k=k, weighted=False),
                                reference.predict(test))


@pytest.mark.parametrize("weighted", [True, False])
def test_chunking_does_not_change_predictions(weighted):
  train, train_labels, test, _ = _random_data(400, 101, 12, 6, seed=3)  # 101 = 14 chunks of 7 + a padded one
  small = ssl_eval.knn_predict(train, train_labels, test, k=9, weighted=weighted, chunk_size=7)
  large = ssl_eval.knn_predict(train, train_labels, test, k=9, weighted=weighted, chunk_size=1024)
  np.testing.assert_array_equal(small, large)


def test_zero_rows_have_cosine_zero_and_no_nan():
  train, train_labels, test, _ = _random_data(40, 6, 5, 3, seed=4)
  train[7] = 0.0
  test[2] = 0.0
  for weighted in (True, False):
    np.testing.assert_array_equal(ssl_eval.knn_predict(train, train_labels, test, k=5, weighted=weighted),
                                  ref_knn_predict(train, train_labels, test, 5, weighted=weighted))


def test_tiny_temperature_is_a_one_nearest_neighbour_vote_without_overflow():
  # Each test point is a slightly moved train point; with T = 1e-3, exp(1 / T)
  # overflows float32, yet the vote must go to that point's label.
  rng = np.random.default_rng(5)
  train = rng.standard_normal((200, 8)).astype(np.float32)
  train_labels = rng.integers(0, 5, 200)
  source = rng.choice(200, 50, replace=False)
  test = train[source] + 1e-3 * rng.standard_normal((50, 8)).astype(np.float32)
  weighted = ssl_eval.knn_predict(train, train_labels, test, k=5, temperature=1e-3)
  np.testing.assert_array_equal(weighted, train_labels[source])
  # Not vacuous: a majority of 5 disagrees with the nearest point somewhere.
  assert np.any(ssl_eval.knn_predict(train, train_labels, test, k=5, weighted=False) != train_labels[source])


def test_small_temperature_weights_do_not_overflow():
  # One class-0 neighbour at cosine 0.99 against four class-1 neighbours at 0.985:
  # with T = 0.011 the four weigh 4 exp(-0.005 / T) = 2.5 times the one, so class 1
  # wins. exp(s / T) taken literally is inf for all five in float32 (s / T > 88.7),
  # which would tie and hand the vote to the nearest point's class, 0.
  def at_cosine(c):
    return [c, np.sqrt(1 - c * c)]
  train = np.array([at_cosine(0.99)] + 4 * [at_cosine(0.985)], np.float32)
  train_labels = np.array([0, 1, 1, 1, 1])
  test = np.array([[1.0, 0.0]], np.float32)
  assert ref_knn_predict(train, train_labels, test, 5, temperature=0.011)[0] == 1
  np.testing.assert_array_equal(ssl_eval.knn_predict(train, train_labels, test, k=5, temperature=0.011), [1])


def test_predictions_depend_only_on_directions():
  train, train_labels, test, _ = _random_data(100, 30, 6, 4, seed=6)
  scales = np.random.default_rng(7).uniform(0.01, 100.0, (100, 1)).astype(np.float32)
  np.testing.assert_array_equal(ssl_eval.knn_predict(train * scales, train_labels, 3.0 * test),
                                ssl_eval.knn_predict(train, train_labels, test))


def test_knn_accuracy_is_one_on_separated_clusters():
  centers = 10.0 * np.eye(5, 16)  # orthogonal directions: far apart in angle
  train, train_labels = _clusters(centers, 60, 1.0, seed=8)
  test, test_labels = _clusters(centers, 20, 1.0, seed=9)
  assert ssl_eval.knn_accuracy(train, train_labels, test, test_labels) == 1.0
  assert ssl_eval.knn_accuracy(train, train_labels, test, test_labels, k=7, weighted=False) == 1.0


def test_knn_accuracy_is_near_chance_on_random_labels():
  # 4 classes, 2000 test points: chance is 0.25 with standard error ~0.01; allow 5 errors.
  train, train_labels, test, test_labels = _random_data(2000, 2000, 16, 4, seed=10)
  for weighted in (True, False):
    accuracy = ssl_eval.knn_accuracy(train, train_labels, test, test_labels, weighted=weighted)
    assert abs(accuracy - 0.25) < 0.05, accuracy


def test_knn_accuracy_agrees_with_knn_predict():
  train, train_labels, test, test_labels = _random_data(120, 50, 5, 3, seed=11)
  predicted = ssl_eval.knn_predict(train, train_labels, test, k=3)
  assert ssl_eval.knn_accuracy(train, train_labels, test, test_labels, k=3) == np.mean(predicted == test_labels)


# ----------------------------------------------------------------------------
# Linear probe
# ----------------------------------------------------------------------------


# Every linear-probe problem below has the same shapes (1500 train and 3000 test
# points of width 10, 3 classes unless stated), so the probe compiles once for all.
_TRAIN_PER_CLASS, _TEST_PER_CLASS, _WIDTH = 500, 1000, 10


def _gaussian_classes(num_per_class, spread, seed, width=_WIDTH):
  """Three unit-variance Gaussian classes; `spread` sets how far apart their means are."""
  means = spread * np.random.default_rng(100).standard_normal((3, width))
  return _clusters(means, num_per_class, 1.0, seed)


def _probe(train, train_labels, test, test_labels, **kwargs):
  return ssl_eval.linear_probe(train, train_labels, test, test_labels, **_FAST_PROBE, **kwargs)


@pytest.fixture(scope="module")
def moderate_problem():
  """Overlapping classes (Bayes accuracy well below 1) and the probe's result on them."""
  train, train_labels = _gaussian_classes(_TRAIN_PER_CLASS, 0.5, seed=12)
  test, test_labels = _gaussian_classes(_TEST_PER_CLASS, 0.5, seed=13)
  # weight_decay = 1 / N makes the objective scikit-learn's default (C = 1):
  # (sum of losses + ||W||^2 / 2) / N.
  result = _probe(train, train_labels, test, test_labels, weight_decay=1 / len(train))
  return train, train_labels, test, test_labels, result


def test_linear_probe_agrees_with_scikit_learn(moderate_problem):
  train, train_labels, test, test_labels, result = moderate_problem
  scaler = StandardScaler().fit(train)
  reference = LogisticRegression(max_iter=1000).fit(scaler.transform(train), train_labels)
  reference_accuracy = reference.score(scaler.transform(test), test_labels)
  assert 0.5 < reference_accuracy < 0.95  # the problem is neither trivial nor hopeless
  assert abs(result["accuracy"] - reference_accuracy) < 0.03, (result["accuracy"], reference_accuracy)
  reference_train_accuracy = reference.score(scaler.transform(train), train_labels)
  assert abs(result["train_accuracy"] - reference_train_accuracy) < 0.03


def test_linear_probe_picks_the_best_learning_rate_of_the_grid(moderate_problem):
  *_, result = moderate_problem
  grid = list(_FAST_PROBE["learning_rates"])
  assert list(result["held_out_accuracy"]) == grid
  assert result["best_learning_rate"] in grid
  held_out = result["held_out_accuracy"]
  assert held_out[result["best_learning_rate"]] == max(held_out.values())
  assert all(isinstance(value, float) for value in [result["accuracy"], result["train_accuracy"], *held_out.values()])


def test_linear_probe_is_deterministic(moderate_problem):
  train, train_labels, test, test_labels, result = moderate_problem
  assert _probe(train, train_labels, test, test_labels, weight_decay=1 / len(train)) == result


def test_linear_probe_separates_separable_classes():
  train, train_labels = _gaussian_classes(_TRAIN_PER_CLASS, 4.0, seed=14)
  test, test_labels = _gaussian_classes(_TEST_PER_CLASS, 4.0, seed=15)
  result = _probe(train, train_labels, test, test_labels)
  assert result["accuracy"] > 0.95 and result["train_accuracy"] > 0.95, result


def test_linear_probe_ignores_constant_features():
  # Three constant columns: standardising must not divide them by a zero deviation.
  train, train_labels = _gaussian_classes(_TRAIN_PER_CLASS, 4.0, seed=14, width=_WIDTH - 3)
  test, test_labels = _gaussian_classes(_TEST_PER_CLASS, 4.0, seed=15, width=_WIDTH - 3)
  train = np.hstack([train, np.full((len(train), 3), 7.0, np.float32)])
  test = np.hstack([test, np.full((len(test), 3), 7.0, np.float32)])
  result = _probe(train, train_labels, test, test_labels)
  assert result["accuracy"] > 0.95, result


def test_linear_probe_is_near_chance_on_random_labels():
  # 3 balanced classes, 3000 test points: chance is 1/3 with standard error ~0.009; allow 5 errors.
  rng = np.random.default_rng(16)
  train = rng.standard_normal((3 * _TRAIN_PER_CLASS, _WIDTH)).astype(np.float32)
  test = rng.standard_normal((3 * _TEST_PER_CLASS, _WIDTH)).astype(np.float32)
  train_labels = rng.permutation(np.repeat(np.arange(3), _TRAIN_PER_CLASS))
  test_labels = rng.permutation(np.repeat(np.arange(3), _TEST_PER_CLASS))
  result = _probe(train, train_labels, test, test_labels)
  assert abs(result["accuracy"] - 1 / 3) < 0.045, result


# ----------------------------------------------------------------------------
# Per hierarchy level
# ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hierarchy():
  """Six fine classes in three coarse pairs: pairs far apart in angle, the two halves of a pair overlapping.

  Same shapes as the linear-probe problems above (the coarse level has their 3 classes).
  """
  coarse_directions = 10.0 * np.eye(3, _WIDTH)
  offsets = np.random.default_rng(17).standard_normal((6, _WIDTH))
  centers = coarse_directions[np.arange(6) // 2] + offsets
  train, train_fine = _clusters(centers, _TRAIN_PER_CLASS // 2, 1.5, seed=18)
  test, test_fine = _clusters(centers, _TEST_PER_CLASS // 2, 1.5, seed=19)
  train_levels = {"label": train_fine, "label_coarse": train_fine // 2}
  test_levels = {"label": test_fine, "label_coarse": test_fine // 2}
  return train, train_levels, test, test_levels


def test_knn_by_level_scores_each_level(hierarchy):
  train, train_levels, test, test_levels = hierarchy
  accuracies = ssl_eval.knn_accuracy_by_level(train, train_levels, test, test_levels, k=10)
  assert list(accuracies) == ["label", "label_coarse"]
  for level, accuracy in accuracies.items():
    assert accuracy == ssl_eval.knn_accuracy(train, train_levels[level], test, test_levels[level], k=10)
  assert accuracies["label"] < 1.0  # the fine level is genuinely harder
  assert accuracies["label_coarse"] >= accuracies["label"]


def test_linear_probe_by_level_scores_each_level(hierarchy):
  train, train_levels, test, test_levels = hierarchy
  results = ssl_eval.linear_probe_by_level(train, train_levels, test, test_levels, **_FAST_PROBE)
  assert list(results) == ["label", "label_coarse"]
  assert results["label"] == ssl_eval.linear_probe(train, train_levels["label"], test, test_levels["label"],
                                                   **_FAST_PROBE)
  assert results["label"]["accuracy"] < 1.0
  assert results["label_coarse"]["accuracy"] >= results["label"]["accuracy"]


@pytest.mark.parametrize("fn", [ssl_eval.knn_accuracy_by_level, ssl_eval.linear_probe_by_level])
def test_mismatched_levels_are_named(fn, hierarchy):
  train, train_levels, test, test_levels = hierarchy
  with pytest.raises(ValueError, match=r"only in train_labels_by_level: \['label_coarse'\]; "
                                       r"only in test_labels_by_level: \['superclass'\]"):
    fn(train, train_levels, test, {"label": test_levels["label"], "superclass": test_levels["label_coarse"]})
  with pytest.raises(ValueError, match="train_labels_by_level is empty"):
    fn(train, {}, test, {})
  with pytest.raises(ValueError, match=r"num_classes must be a mapping \{level: count\}"):
    fn(train, train_levels, test, test_levels, num_classes=6)


@pytest.mark.parametrize("fn", [ssl_eval.knn_accuracy_by_level, ssl_eval.linear_probe_by_level])
def test_per_level_bad_labels_name_the_level(fn, hierarchy):
  # Raised before any level is probed, naming the level at fault.
  train, train_levels, test, test_levels = hierarchy
  negative = dict(test_levels, label_coarse=-test_levels["label_coarse"] - 1)
  with pytest.raises(ValueError, match=r"test_labels_by_level\['label_coarse'\] contains negative labels"):
    fn(train, train_levels, test, negative)
  with pytest.raises(ValueError, match=r"train_labels_by_level\['label_coarse'\] contains label 2, which does not"):
    fn(train, train_levels, test, test_levels, num_classes={"label_coarse": 2})


def test_held_out_split_is_stratified_disjoint_and_seeded():
  labels = np.repeat(np.arange(4), [100, 50, 30, 1])
  labels = labels[np.random.default_rng(21).permutation(len(labels))]
  fit, held_out = inputs.held_out_split(labels, 0.1, seed=3)
  np.testing.assert_array_equal(np.sort(np.concatenate([fit, held_out])), np.arange(len(labels)))
  np.testing.assert_array_equal(np.bincount(labels[held_out], minlength=4), [10, 5, 3, 0])
  again, _ = inputs.held_out_split(labels, 0.1, seed=3)
  other, _ = inputs.held_out_split(labels, 0.1, seed=4)
  np.testing.assert_array_equal(again, fit)
  assert not np.array_equal(other, fit)


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _valid_arguments():
  train, train_labels, test, test_labels = _random_data(30, 6, 4, 3, seed=20)
  train_labels[:3] = [0, 1, 2]  # every class present, so a stratified split exists
  return dict(train_features=train, train_labels=train_labels, test_features=test, test_labels=test_labels)


_NAN_TRAIN = np.where(np.eye(30, 4, dtype=bool), np.nan, 1.0).astype(np.float32)
_INF_TEST = np.where(np.eye(6, 4, dtype=bool), np.inf, 1.0).astype(np.float32)

# (argument overrides, the message they must raise)
_BAD_INPUTS = [
    (dict(train_features=np.ones(30, np.float32)), r"train_features must be a 2-D"),
    (dict(test_features=np.ones((6, 4, 1), np.float32)), r"test_features must be a 2-D"),
    (dict(test_features=np.ones((6, 5), np.float32)), r"same width .* got 4 and 5"),
    (dict(train_labels=np.zeros((30, 1), int)), r"train_labels must be a 1-D"),
    (dict(train_labels=np.zeros(9, int)), r"train_labels has 9 entries but train_features has 30 rows"),
    (dict(train_features=_NAN_TRAIN), r"train_features contain NaN or inf: check the encoder"),
    (dict(test_features=_INF_TEST), r"test_features contain NaN or inf: check the encoder"),
    (dict(train_features=np.full((30, 4), 1e39)), r"train_features contain NaN or inf"),  # overflows float32
    (dict(train_features=np.zeros((0, 4), np.float32), train_labels=np.zeros(0, int)), r"train_features is empty"),
    (dict(test_features=np.zeros((6, 0), np.float32)), r"test_features is empty"),
    (dict(train_labels=np.arange(30) % 3 - 1), r"train_labels contains negative labels"),
    (dict(train_labels=np.zeros(30, np.float32)), r"train_labels must hold integer class indices"),
    (dict(num_classes=2), r"train_labels contains label 2, which does not fit num_classes = 2"),
]
_BAD_TEST_LABELS = [
    (dict(test_labels=np.zeros(5, int)), r"test_labels has 5 entries but test_features has 6 rows"),
    (dict(test_labels=np.full(6, -2)), r"test_labels contains negative labels"),
]
_BAD_K = [
    (dict(k=0), r"k must be in \[1, 30\]"),
    (dict(k=31), r"k must be in \[1, 30\] \(the number of train points\), got 31"),
    (dict(temperature=0.0), r"temperature must be positive"),
    (dict(chunk_size=0), r"chunk_size must be positive"),
]
_BAD_PROBE = [
    (dict(held_out_fraction=0.0), r"held_out_fraction must lie strictly between 0 and 1"),
    (dict(held_out_fraction=1.0), r"held_out_fraction must lie strictly between 0 and 1"),
    (dict(held_out_fraction=0.01), r"leaves 30 to fit and 0 to hold out"),
    (dict(learning_rates=()), r"learning_rates must be a non-empty sequence"),
    (dict(learning_rates=(1e-2, -1.0)), r"learning_rates must be a non-empty sequence of positive numbers"),
    (dict(epochs=0), r"epochs must be at least 1"),
    (dict(batch_size=0), r"batch_size must be at least 1"),
    (dict(weight_decay=-1.0), r"weight_decay must be a non-negative number"),
]


def _call(fn, overrides):
  arguments = dict(_valid_arguments(), **overrides)
  positional = [arguments.pop(name) for name in ("train_features", "train_labels", "test_features")]
  if fn is not ssl_eval.linear_probe:
    arguments.setdefault("k", 3)
  if fn is ssl_eval.knn_predict:
    arguments.pop("test_labels")
    return fn(*positional, **arguments)
  return fn(*positional, arguments.pop("test_labels"), **arguments)


@pytest.mark.parametrize("overrides,message", _BAD_INPUTS + _BAD_K)
def test_knn_predict_rejects_bad_input(overrides, message):
  with pytest.raises(ValueError, match=message):
    _call(ssl_eval.knn_predict, overrides)


@pytest.mark.parametrize("overrides,message", _BAD_INPUTS + _BAD_TEST_LABELS + _BAD_K)
def test_knn_accuracy_rejects_bad_input(overrides, message):
  with pytest.raises(ValueError, match=message):
    _call(ssl_eval.knn_accuracy, overrides)


@pytest.mark.parametrize("overrides,message", _BAD_INPUTS + _BAD_TEST_LABELS + _BAD_PROBE)
def test_linear_probe_rejects_bad_input(overrides, message):
  with pytest.raises(ValueError, match=message):
    _call(ssl_eval.linear_probe, overrides)


def test_knn_at_several_k_equals_one_search_per_k():
  rng = np.random.default_rng(11)
  train, test = rng.normal(size=(80, 6)), rng.normal(size=(30, 6))
  train_labels, test_labels = rng.integers(0, 4, 80), rng.integers(0, 4, 30)
  from jax_ssl.eval import knn
  by_k = knn.knn_accuracy_by_k(train, train_labels, test, test_labels, ks=(1, 7, 20, 80))
  for k, accuracy in by_k.items():
    assert accuracy == knn.knn_accuracy(train, train_labels, test, test_labels, k=k), k
  with pytest.raises(ValueError, match="k must be in"):
    knn.knn_accuracy_by_k(train, train_labels, test, test_labels, ks=(10, 81))
