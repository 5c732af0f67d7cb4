"""Ward trees and tree distances: against scipy and against a naive parent-pointer walk, and input checks."""

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial import distance

import jax_ssl.eval as ssl_eval
from jax_ssl.eval import trees


def _unit(x):
  """Independent float64 row normalisation (zero rows stay zero)."""
  x = np.asarray(x, dtype=np.float64)
  norms = np.linalg.norm(x, axis=1, keepdims=True)
  return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _scipy_ward(x):
  return hierarchy.linkage(distance.pdist(_unit(x)), "ward")


def naive_lca_distances(linkage):
  """Per pair: climb from leaf i recording each ancestor's step count, then climb from j until one is met."""
  linkage = np.asarray(linkage)
  n = linkage.shape[0] + 1
  parent = {}
  for row, (a, b) in enumerate(linkage[:, :2].astype(int)):
    parent[a] = parent[b] = n + row
  out = []
  for i in range(n):
    steps_from_i, node, steps = {}, i, 0
    while True:
      steps_from_i[node] = steps
      if node not in parent:
        break
      node, steps = parent[node], steps + 1
    for j in range(i + 1, n):
      node, steps = j, 0
      while node not in steps_from_i:
        node, steps = parent[node], steps + 1
      out.append(steps + steps_from_i[node])
  return np.array(out)


def _data(n, dim, seed, duplicates=0):
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((n, dim))
  if duplicates:
    # Exact copies of some rows (ties in the distances) and a scaled copy (same direction).
    x[-duplicates:] = x[:duplicates]
    x[0] = 3.0 * x[1]
  return x


# ----------------------------------------------------------------------------
# ward_linkage
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n, dim, seed", [(3, 2, 0), (10, 3, 1), (57, 8, 2), (200, 16, 3), (150, 300, 4)])
def test_ward_linkage_matches_scipy_on_pdist_of_unit_rows(n, dim, seed):
  x = _data(n, dim, seed)
  ours, reference = ssl_eval.ward_linkage(x), _scipy_ward(x)
  assert ours.shape == (n - 1, 4) and ours.dtype == np.float64
  np.testing.assert_array_equal(ours[:, [0, 1, 3]], reference[:, [0, 1, 3]])
  np.testing.assert_allclose(ours[:, 2], reference[:, 2], rtol=0, atol=1e-10)


def test_ward_linkage_uses_cosine_geometry():
  x = _data(40, 5, 0)
  scales = np.random.default_rng(1).uniform(0.1, 10.0, size=(40, 1))
  np.testing.assert_allclose(ssl_eval.ward_linkage(x * scales), ssl_eval.ward_linkage(x), rtol=0, atol=1e-12)


def test_ward_linkage_float32_and_integer_input():
  x = _data(30, 4, 5)
  np.testing.assert_allclose(ssl_eval.ward_linkage(x.astype(np.float32)), _scipy_ward(x.astype(np.float32)),
                             rtol=0, atol=1e-10)
  counts = np.random.default_rng(0).integers(1, 9, size=(30, 6))
  np.testing.assert_allclose(ssl_eval.ward_linkage(counts), _scipy_ward(counts), rtol=0, atol=1e-10)


def test_ward_linkage_near_duplicates_keep_full_precision():
  """Points 1e-7 apart: the Gram form's ~1e-8 error in such distances would be visible; pdist's is not."""
  rng = np.random.default_rng(0)
  centres = rng.standard_normal((12, 10))
  x = np.repeat(centres, 4, axis=0) + 1e-7 * rng.standard_normal((48, 10))
  ours, reference = ssl_eval.ward_linkage(x), _scipy_ward(x)
  np.testing.assert_array_equal(ours[:, [0, 1, 3]], reference[:, [0, 1, 3]])
  small = reference[:, 2] < 1e-5
  assert small.sum() >= 30  # most merges are among near-duplicates
  np.testing.assert_allclose(ours[small, 2], reference[small, 2], rtol=1e-9, atol=0)
  np.testing.assert_allclose(ours[:, 2], reference[:, 2], rtol=0, atol=1e-10)


def test_ward_linkage_zero_row_stays_at_origin():
  x = _data(20, 4, 6)
  x[3] = 0.0
  np.testing.assert_allclose(ssl_eval.ward_linkage(x), _scipy_ward(x), rtol=0, atol=1e-10)


def test_ward_linkage_cache_returns_fresh_copies(monkeypatch):
  x = _data(25, 4, 7)
  reference = _scipy_ward(x)
  first = ssl_eval.ward_linkage(x)
  first[:] = -1.0  # the caller owns its copy
  calls = []
  original = trees.hierarchy.linkage
  monkeypatch.setattr(trees.hierarchy, "linkage", lambda *a, **k: calls.append(1) or original(*a, **k))
  again = ssl_eval.ward_linkage(x.copy())  # same contents, another array: a cache hit
  assert not calls
  np.testing.assert_allclose(again, reference, rtol=0, atol=1e-10)
  other = x.copy()
  other[0, 0] += 1e-3
  ssl_eval.ward_linkage(other)  # different contents: linked afresh
  assert calls == [1]
  ssl_eval.ward_linkage(x.astype(np.float32))  # different dtype: another key
  assert calls == [1, 1]
  for i in range(trees._CACHE_SIZE + 1):  # the cache stays small
    ssl_eval.ward_linkage(_data(5, 2, 100 + i))
  assert len(trees._cache) == trees._CACHE_SIZE


def test_chunked_distances_match_pdist_at_chunk_boundaries(monkeypatch):
  monkeypatch.setattr(trees, "_CHUNK_ELEMENTS", 97)  # chunks of a row or a few rows
  u = _unit(_data(60, 7, 8))
  np.testing.assert_allclose(trees.chordal_condensed(u), distance.pdist(u), rtol=0, atol=1e-14)


# ----------------------------------------------------------------------------
# lca_distances, cophenetic_distances
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n, seed, duplicates", [(2, 0, 0), (3, 0, 0), (4, 1, 0), (31, 2, 0), (100, 3, 10),
                                                 (200, 4, 0), (200, 5, 60)])
def test_lca_distances_match_naive_walk_on_ward_trees(n, seed, duplicates):
  if n < 3:
    linkage = np.array([[0.0, 1.0, 0.5, 2.0]])
  else:
    linkage = ssl_eval.ward_linkage(_data(n, 3, seed, duplicates))
  ours = ssl_eval.lca_distances(linkage)
  assert ours.shape == (n * (n - 1) // 2,) and np.issubdtype(ours.dtype, np.integer)
  np.testing.assert_array_equal(ours, naive_lca_distances(linkage))


@pytest.mark.parametrize("method", ["single", "complete", "average", "centroid", "median"])
def test_lca_and_cophenetic_on_other_linkages(method):
  """Single linkage of points spaced 1.5^k apart on a line is a chain (depth n - 1); centroid/median non-monotone."""
  rng = np.random.default_rng(9)
  if method == "single":
    points = rng.permutation(np.cumsum(1.5 ** np.arange(80)))[:, None]
  else:
    points = rng.standard_normal((80, 2))
  linkage = hierarchy.linkage(points, method)
  if method == "single":
    assert trees.tree_layout(linkage).depth.max() == 79
  np.testing.assert_array_equal(ssl_eval.lca_distances(linkage), naive_lca_distances(linkage))
  np.testing.assert_array_equal(ssl_eval.cophenetic_distances(linkage), hierarchy.cophenet(linkage))


def test_lca_distances_chunk_boundaries(monkeypatch):
  linkage = ssl_eval.ward_linkage(_data(90, 4, 10))
  reference = naive_lca_distances(linkage)
  monkeypatch.setattr(trees, "_CHUNK_ELEMENTS", 50)
  np.testing.assert_array_equal(ssl_eval.lca_distances(linkage), reference)


@pytest.mark.parametrize("n, seed, duplicates", [(3, 0, 0), (50, 1, 0), (200, 2, 40)])
def test_cophenetic_distances_equal_scipy(n, seed, duplicates):
  linkage = ssl_eval.ward_linkage(_data(n, 5, seed, duplicates))
  ours = ssl_eval.cophenetic_distances(linkage)
  assert ours.dtype == np.float64
  np.testing.assert_array_equal(ours, hierarchy.cophenet(linkage))


def test_tree_layout_matches_scipy_leaf_order_and_node_ranges():
  linkage = ssl_eval.ward_linkage(_data(120, 6, 11))
  layout = trees.tree_layout(linkage)
  np.testing.assert_array_equal(layout.order, hierarchy.leaves_list(linkage))
  np.testing.assert_array_equal(layout.order[layout.position], np.arange(120))
  root = hierarchy.to_tree(linkage, rd=True)[1]
  for node in root[120:]:
    leaves = node.pre_order()
    assert sorted(layout.position[leaves]) == list(range(layout.start[node.id], layout.start[node.id] + len(leaves)))
  matrix = trees.lca_node_matrix(layout)
  assert matrix.dtype == np.int16
  np.testing.assert_array_equal(matrix, matrix.T)
  np.testing.assert_array_equal(np.diag(matrix), np.full(120, 119))


# ----------------------------------------------------------------------------
# Input checks
# ----------------------------------------------------------------------------


def _set(z, row, col, value):
  z = z.copy()
  z[row, col] = value
  return z


def _valid_linkage():
  return ssl_eval.ward_linkage(_data(6, 3, 12))


@pytest.mark.parametrize("mutate, match", [
    (lambda z: z[:, :3], r"\(n - 1, 4\)"),
    (lambda z: z[:0], "no rows"),
    (lambda z: z.ravel(), r"\(n - 1, 4\)"),
    (lambda z: np.where(np.arange(4) == 2, np.nan, z), "NaN or inf"),
    (lambda z: z + np.array([0.5, 0, 0, 0]), "whole-number"),
    (lambda z: _set(z, 0, 0, 9), "created by earlier rows"),
    (lambda z: _set(z, 0, 1, -1), "created by earlier rows"),
    (lambda z: _set(z, 1, 0, z[0, 0]), "more than once"),
    (lambda z: z * np.array([1, 1, -1, 1]), "negative merge heights"),
    (lambda z: z + np.array([0, 0, 0, 1]), "column 3"),
])
def test_malformed_linkage_raises(mutate, match):
  bad = mutate(_valid_linkage())
  with pytest.raises(ValueError, match=match):
    ssl_eval.lca_distances(bad)
  with pytest.raises(ValueError, match=match):
    ssl_eval.cophenetic_distances(bad)


def test_linkage_using_a_cluster_twice_raises():
  z = np.array([[0, 1, 0.1, 2], [0, 2, 0.2, 2], [3, 4, 0.3, 4]], dtype=float)
  with pytest.raises(ValueError, match="more than once"):
    ssl_eval.lca_distances(z)


def test_linkage_with_string_dtype_raises():
  with pytest.raises(ValueError, match="numeric"):
    ssl_eval.lca_distances(np.array([["a", "b", "c", "d"]]))


@pytest.mark.parametrize("x, match", [
    (np.ones(10), "2-D"),
    (np.ones((4, 3, 2)), "2-D"),
    (np.ones((2, 3)), "at least 3"),
    (np.ones((5, 0)), "no columns"),
    (np.array([["a", "b"]] * 4), "real numeric"),
])
def test_ward_linkage_rejects_bad_shapes(x, match):
  with pytest.raises(ValueError, match=match):
    ssl_eval.ward_linkage(x)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_ward_linkage_names_non_finite_rows(bad_value):
  x = _data(30, 4, 13)
  x[7, 2] = bad_value
  x[19, 0] = bad_value
  with pytest.raises(ValueError, match=r"NaN or inf in 2 row\(s\) \(row index 7, 19\)"):
    ssl_eval.ward_linkage(x)
