"""LCA and cophenetic similarity: against the scipy composition, self-similarity, invariances, null level, bad input."""

import numpy as np
import pytest
from scipy import stats
from scipy.cluster import hierarchy
from scipy.spatial import distance

import jax_ssl.eval as ssl_eval
from jax_ssl.eval import correlation
from jax_ssl.eval import structure
from jax_ssl.eval import trees
from tests.eval.test_trees import naive_lca_distances


def _unit(x):
  x = np.asarray(x, dtype=np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_lca_similarity(x1, x2):
  """scipy Ward on pdist of the unit rows, LCA distances by a parent walk, scipy.stats on the full vectors."""
  d1 = naive_lca_distances(hierarchy.linkage(distance.pdist(_unit(x1)), "ward"))
  d2 = naive_lca_distances(hierarchy.linkage(distance.pdist(_unit(x2)), "ward"))
  return {"pearson": stats.pearsonr(d1, d2)[0], "spearman": stats.spearmanr(d1, d2)[0],
          "kendall": stats.kendalltau(d1, d2)[0]}


def reference_cophenetic_similarity(x1, x2):
  p1, p2 = distance.pdist(_unit(x1)), distance.pdist(_unit(x2))
  c1, c2 = hierarchy.cophenet(hierarchy.linkage(p1, "ward")), hierarchy.cophenet(hierarchy.linkage(p2, "ward"))
  return {"d1_to_p2": np.corrcoef(c1, p2)[0, 1], "d2_to_p1": np.corrcoef(c2, p1)[0, 1]}


def _pair(n, dim, seed, noise=0.5, clusters=8):
  """Two embeddings of the same n items sharing a cluster structure: x2 is a noisy linear map of x1."""
  rng = np.random.default_rng(seed)
  centres = 3.0 * rng.standard_normal((clusters, dim))
  x1 = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim))
  x2 = x1 @ rng.standard_normal((dim, dim + 3)) / np.sqrt(dim) + noise * rng.standard_normal((n, dim + 3))
  return x1, x2


def _assert_close(ours, reference, atol):
  assert ours.keys() == reference.keys()
  for key in ours:
    assert abs(ours[key] - reference[key]) <= atol, (key, ours[key], reference[key])


@pytest.mark.parametrize("n, dim, seed", [(3, 2, 0), (12, 3, 1), (150, 8, 2), (200, 16, 3)])
def test_lca_similarity_matches_scipy_composition(n, dim, seed):
  x1, x2 = _pair(n, dim, seed)
  ours = ssl_eval.lca_similarity(x1, x2)
  reference = reference_lca_similarity(x1, x2)
  _assert_close(ours, reference, 1e-12)
  assert ours["kendall"] == reference["kendall"]


@pytest.mark.parametrize("n, dim, seed", [(3, 2, 0), (12, 3, 1), (150, 8, 2), (200, 16, 3)])
def test_cophenetic_similarity_matches_scipy_composition(n, dim, seed):
  x1, x2 = _pair(n, dim, seed)
  _assert_close(ssl_eval.cophenetic_similarity(x1, x2), reference_cophenetic_similarity(x1, x2), 1e-10)


def test_chunked_sweeps_match_reference(monkeypatch):
  """Tiny chunks put chunk boundaries everywhere: the table and the sums must not miss or repeat a pair."""
  x1, x2 = _pair(120, 6, 4)
  lca, cophenetic = reference_lca_similarity(x1, x2), reference_cophenetic_similarity(x1, x2)
  monkeypatch.setattr(trees, "_CHUNK_ELEMENTS", 333)
  monkeypatch.setattr(correlation, "_BINCOUNT_CHUNK", 1000)
  trees._cache.clear()
  _assert_close(structure.lca_similarity(x1, x2), lca, 1e-12)
  _assert_close(structure.cophenetic_similarity(x1, x2), cophenetic, 1e-10)


def test_deep_trees_fall_back_to_full_vectors(monkeypatch):
  """Trees too deep for a dense table give the same numbers through the full vectors and scipy.stats."""
  x1, x2 = _pair(100, 5, 11)
  reference = reference_lca_similarity(x1, x2)
  monkeypatch.setattr(correlation, "MAX_TABLE_CELLS", 50)
  calls = []
  original = structure.lca_table
  monkeypatch.setattr(structure, "lca_table", lambda *a: calls.append(1) or original(*a))
  _assert_close(structure.lca_similarity(x1, x2), reference, 1e-12)
  assert not calls


def test_lca_table_counts_every_pair_once():
  x1, x2 = _pair(90, 5, 5)
  layout1 = trees.tree_layout(ssl_eval.ward_linkage(x1))
  layout2 = trees.tree_layout(ssl_eval.ward_linkage(x2))
  values1, values2, table = structure.lca_table(layout1, layout2)
  expected = correlation.contingency_table(naive_lca_distances(ssl_eval.ward_linkage(x1)),
                                           naive_lca_distances(ssl_eval.ward_linkage(x2)))
  np.testing.assert_array_equal(values1, expected[0])
  np.testing.assert_array_equal(values2, expected[1])
  np.testing.assert_array_equal(table, expected[2])
  assert table.sum() == 90 * 89 // 2


def test_self_similarity():
  x, _ = _pair(180, 10, 6)
  assert ssl_eval.lca_similarity(x, x) == {"pearson": 1.0, "spearman": 1.0, "kendall": 1.0}
  unit_distances = distance.pdist(_unit(x))
  coefficient = hierarchy.cophenet(hierarchy.linkage(unit_distances, "ward"), unit_distances)[0]
  self_scores = ssl_eval.cophenetic_similarity(x, x)
  assert abs(self_scores["d1_to_p2"] - coefficient) <= 1e-10
  assert abs(self_scores["d2_to_p1"] - coefficient) <= 1e-10
  assert coefficient < 0.99  # the contract's self-score is the tree's coefficient, not 1


def _all_scores(x1, x2):
  return {**ssl_eval.lca_similarity(x1, x2), **ssl_eval.cophenetic_similarity(x1, x2)}


@pytest.mark.parametrize("transform", ["rotate", "scale", "permute", "rotate_each_differently"])
def test_invariances(transform):
  x1, x2 = _pair(160, 7, 7)
  rng = np.random.default_rng(8)
  baseline = _all_scores(x1, x2)
  if transform == "rotate":
    q1 = np.linalg.qr(rng.standard_normal((7, 7)))[0]
    y1, y2 = x1 @ q1, x2
  elif transform == "rotate_each_differently":
    q1 = np.linalg.qr(rng.standard_normal((7, 7)))[0]
    q2 = np.linalg.qr(rng.standard_normal((10, 10)))[0]
    y1, y2 = x1 @ q1, x2 @ q2
  elif transform == "scale":
    y1, y2 = 37.5 * x1, 0.02 * x2
  else:
    order = rng.permutation(160)
    y1, y2 = x1[order], x2[order]
  _assert_close(_all_scores(y1, y2), baseline, 1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_independent_sets_score_near_zero(seed):
  """Two independent Gaussian sets (n = 300, d = 16): |score| < 0.1 (over 20 seeds the largest seen was 0.035)."""
  rng = np.random.default_rng(100 + seed)
  x1, x2 = rng.standard_normal((300, 16)), rng.standard_normal((300, 16))
  for key, value in _all_scores(x1, x2).items():
    assert abs(value) < 0.1, (key, value)


def test_shared_structure_scores_high():
  """Well above the null level (< 0.1) with shared clusters; back at it when noise drowns them."""
  x1, x2 = _pair(300, 16, 9, noise=0.3)
  scores = _all_scores(x1, x2)
  assert min(scores.values()) > 0.3, scores
  drowned = _all_scores(*_pair(300, 16, 9, noise=30.0))
  assert max(abs(v) for v in drowned.values()) < 0.1, drowned


@pytest.mark.parametrize("function", [ssl_eval.lca_similarity, ssl_eval.cophenetic_similarity])
def test_bad_inputs_raise(function):
  x = np.random.default_rng(10).standard_normal((20, 4))
  bad = x.copy()
  bad[11, 1] = np.nan
  with pytest.raises(ValueError, match=r"x2 has NaN or inf in 1 row\(s\) \(row index 11\)"):
    function(x, bad)
  bad[11, 1] = np.inf
  with pytest.raises(ValueError, match=r"x1 has NaN or inf .*row index 11"):
    function(bad, x)
  with pytest.raises(ValueError, match="x1 has 2 rows.*at least 3"):
    function(x[:2], x[:2])
  with pytest.raises(ValueError, match="x1 has 20 rows but x2 has 19"):
    function(x, x[:19])
  with pytest.raises(ValueError, match="x2 must be a 2-D"):
    function(x, x[:, 0])
  with pytest.raises(ValueError, match="x1 must be a 2-D"):
    function(x[None], x)
