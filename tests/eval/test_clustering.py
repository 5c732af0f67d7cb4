"""Hierarchical Rand index: nested blobs, random labels, an independent pair-counting Rand index, input checks."""

import numpy as np
import pytest
from sklearn.cluster import SpectralClustering

import jax_ssl.eval as ssl_eval


def rand_index_by_pairs(labels, clusters):
  """Fraction of pairs i < j on which the two partitions agree (same-same or different-different)."""
  labels, clusters = np.asarray(labels), np.asarray(clusters)
  upper = np.triu_indices(len(labels), k=1)
  same_label = (labels[:, None] == labels[None, :])[upper]
  same_cluster = (clusters[:, None] == clusters[None, :])[upper]
  return float(np.mean(same_label == same_cluster))


def nested_blobs(seed, per=40, dim=8, sub_spread=1.0):
  """3 superclasses far apart, each of 3 subclasses that are themselves separated blobs."""
  rng = np.random.default_rng(seed)
  supers = 10.0 * rng.standard_normal((3, dim)) + 20.0 * np.eye(3, dim)
  points, coarse, fine = [], [], []
  for i in range(3):
    for j in range(3):
      centre = supers[i] + sub_spread * rng.standard_normal(dim)
      points.append(centre + 0.3 * rng.standard_normal((per, dim)))
      coarse += [i] * per
      fine += [3 * i + j] * per
  order = rng.permutation(9 * per)
  return np.concatenate(points)[order], np.array(coarse)[order], np.array(fine)[order]


@pytest.mark.parametrize("seed", [0, 1])
def test_nested_blobs_score_one_at_every_level(seed):
  """The fine blobs are disconnected in the 10-NN graph: the coarse level needs the widened graph."""
  x, coarse, fine = nested_blobs(seed)
  scores = ssl_eval.hierarchical_rand_index(x, {"coarse": coarse, "fine": fine}, seed=seed)
  assert list(scores) == ["coarse", "fine"]
  assert scores == {"coarse": 1.0, "fine": 1.0}


def test_random_labels_score_lower():
  x, coarse, fine = nested_blobs(2)
  rng = np.random.default_rng(3)
  scores = ssl_eval.hierarchical_rand_index(x, [rng.permutation(coarse), rng.permutation(fine)])
  assert list(scores) == [0, 1]
  # Random labels against a partition into k balanced groups: about 1 - 2 (k - 1) / k^2.
  assert abs(scores[0] - (1 - 2 * 2 / 9)) < 0.05 and abs(scores[1] - (1 - 2 * 8 / 81)) < 0.05


def test_matches_independent_spectral_clustering_and_pair_counting():
  """On a connected 10-NN graph the partition is sklearn's own SpectralClustering with that affinity."""
  rng = np.random.default_rng(4)
  x = rng.standard_normal((240, 6)) + np.repeat(2.0 * rng.standard_normal((4, 6)), 60, axis=0)
  levels = {"four": np.repeat(np.arange(4), 60), "two": np.repeat(np.arange(2), 120), "random": rng.integers(0, 5, 240)}
  scores = ssl_eval.hierarchical_rand_index(x, levels, seed=5)
  unit = x / np.linalg.norm(x, axis=1, keepdims=True)
  for level, labels in levels.items():
    clusters = SpectralClustering(n_clusters=len(np.unique(labels)), affinity="nearest_neighbors", n_neighbors=10,
                                  random_state=5).fit_predict(unit)
    assert scores[level] == pytest.approx(rand_index_by_pairs(labels, clusters), abs=1e-12)
  assert scores["four"] > scores["random"]


def test_degenerate_levels():
  x, _, _ = nested_blobs(6, per=5)
  n = x.shape[0]
  scores = ssl_eval.hierarchical_rand_index(x, {"one": np.zeros(n, int), "all": np.arange(n), "names": np.array(
      ["a", "b", "c"] * (n // 3))})
  assert scores["one"] == 1.0 and scores["all"] == 1.0
  assert 0.0 <= scores["names"] <= 1.0


def test_seed_is_deterministic():
  x, coarse, fine = nested_blobs(7)
  levels = {"coarse": coarse, "fine": np.random.default_rng(0).permutation(fine)}
  assert ssl_eval.hierarchical_rand_index(x, levels, seed=3) == ssl_eval.hierarchical_rand_index(x, levels, seed=3)


def test_bad_inputs_raise():
  x, coarse, fine = nested_blobs(8, per=5)
  with pytest.raises(ValueError, match=r"level 'fine' have 44 entries but x has 45 rows"):
    ssl_eval.hierarchical_rand_index(x, {"coarse": coarse, "fine": fine[:-1]})
  with pytest.raises(ValueError, match="1-D"):
    ssl_eval.hierarchical_rand_index(x, {"coarse": coarse[:, None]})
  with pytest.raises(ValueError, match="empty"):
    ssl_eval.hierarchical_rand_index(x, {})
  with pytest.raises(ValueError, match="mapping"):
    ssl_eval.hierarchical_rand_index(x, 5)
  bad = x.copy()
  bad[4, 0] = np.nan
  with pytest.raises(ValueError, match=r"x has NaN or inf .*row index 4"):
    ssl_eval.hierarchical_rand_index(bad, {"coarse": coarse})
  with pytest.raises(ValueError, match="at least 3"):
    ssl_eval.hierarchical_rand_index(x[:2], {"coarse": coarse[:2]})
  with pytest.raises(ValueError, match="2-D"):
    ssl_eval.hierarchical_rand_index(x[:, 0], {"coarse": coarse})
