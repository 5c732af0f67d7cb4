"""Prim's MST inside jit against scipy's minimum_spanning_tree."""

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from scipy.sparse import csgraph
from scipy.spatial import distance

from jax_ssl import ops
from jax_ssl.ops import mst


def _points(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _is_spanning_tree(src, dst, n):
  graph = np.zeros((n, n))
  graph[src, dst] = graph[dst, src] = 1
  components, _ = csgraph.connected_components(graph, directed=False)
  return len(src) == n - 1 and components == 1


ALGORITHMS = ["prim", "boruvka"]


def _edge_set(src, dst):
  return set(map(frozenset, zip(np.asarray(src).tolist(), np.asarray(dst).tolist())))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("n,d", [(2, 3), (10, 2), (64, 8), (300, 32)])
def test_edges_form_a_minimum_spanning_tree(n, d, algorithm):
  points = _points(n, d, seed=n)
  src, dst = jax.jit(ops.mst_edges, static_argnums=1)(points, algorithm)
  src, dst = np.asarray(src), np.asarray(dst)
  assert src.dtype == np.int32 and src.shape == (n - 1,)
  assert _is_spanning_tree(src, dst, n)
  points64 = points.astype(np.float64)
  length = np.linalg.norm(points64[src] - points64[dst], axis=1).sum()
  expected = csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(points64))).sum()
  np.testing.assert_allclose(length, expected, rtol=1e-6)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, 1e30])
def test_non_finite_or_huge_point_still_joins_the_tree(bad_value, algorithm):
  points = _points(6, 3)
  points[4, 1] = bad_value
  src, dst = ops.mst_edges(points, algorithm)
  assert _is_spanning_tree(np.asarray(src), np.asarray(dst), 6)


@pytest.mark.parametrize("shape", [(1, 3), (5,), (2, 3, 4)])
def test_rejects_bad_shapes(shape):
  with pytest.raises(ValueError, match="mst_edges: z must be 2-D|at least 2 points"):
    ops.mst_edges(np.zeros(shape, np.float32))


_boruvka_edges = jax.jit(lambda points: ops.mst_edges(points, "boruvka"))
_prim_edges = jax.jit(lambda points: ops.mst_edges(points, "prim"))


# A few shapes (each compiles both algorithms once), any integer points in them: the smallest tree, a
# plane crowded with ties and duplicates, and a cloud in more dimensions than points.
_SHAPES = hypothesis.strategies.sampled_from([(2, 1), (12, 2), (7, 9)])


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(_SHAPES.flatmap(lambda shape: hnp.arrays(np.int32, shape,
                                                          elements=hypothesis.strategies.integers(-20, 20))))
def test_minimum_for_any_point_set(points):
  """Integer coordinates: float32 distances are exact, ties and duplicates are frequent."""
  points = points.astype(np.float32)
  src, dst = (np.asarray(a) for a in _prim_edges(points))
  assert _is_spanning_tree(src, dst, len(points))
  boruvka_src, boruvka_dst = (np.asarray(a) for a in _boruvka_edges(points))
  assert _is_spanning_tree(boruvka_src, boruvka_dst, len(points))
  # Ties are broken by (weight, lower endpoint, higher endpoint) in both: the same tree, not just the same length.
  assert _edge_set(boruvka_src, boruvka_dst) == _edge_set(src, dst)
  length = np.linalg.norm(points[src].astype(np.float64) - points[dst], axis=1).sum()
  # Duplicates add zero-length edges; scipy reads zero entries as missing edges, so it gets the unique points.
  unique = np.unique(points, axis=0).astype(np.float64)
  expected = csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(unique))).sum() if len(unique) > 1 else 0
  np.testing.assert_allclose(length, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("combined_key", [True, False])
def test_prim_breaks_ties_by_the_lower_then_higher_endpoint(combined_key, monkeypatch):
  # Point 10 is at distance 1 from points 1 and 2; Prim's reaches 2 first, but the edge order prefers (1, 10).
  points = np.array([[1, -1], [0, 1], [1, 0], *[[1, 1]] * 7, [0, 0], [1, 1]], np.float32)
  if not combined_key:  # the path for batches too large for one int32 key
    monkeypatch.setattr(mst, "_COMBINED_KEY_MAX_N", 0)
  src, dst = jax.jit(lambda p: ops.mst_edges(p, "prim"))(points)
  edges = _edge_set(np.asarray(src), np.asarray(dst))
  assert frozenset({1, 10}) in edges and frozenset({2, 10}) not in edges
  assert edges == _edge_set(*(np.asarray(a) for a in _boruvka_edges(points)))


def _collapsed_cloud(spread, n=256, d=32, centre_norm=10.0, seed=0):
  """Points packed within `spread` of a centre far from the origin: a collapsing batch."""
  rng = np.random.default_rng(seed)
  centre = rng.standard_normal(d)
  centre *= centre_norm / np.linalg.norm(centre)
  return (centre + spread * rng.standard_normal((n, d))).astype(np.float32)


def _tight_clusters(spread, n=256, d=8, seed=0):
  """Two tight clusters at +-1: centring leaves each far from the batch mean."""
  rng = np.random.default_rng(seed)
  signs = np.where(np.arange(n) < n // 2, 1.0, -1.0)[:, None]
  return (signs + spread * rng.standard_normal((n, d))).astype(np.float32)


def _tree_length(points, src, dst):
  points = points.astype(np.float64)
  return np.linalg.norm(points[np.asarray(src)] - points[np.asarray(dst)], axis=1).sum()


def _scipy_length(points):
  return csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(points.astype(np.float64)))).sum()


@pytest.mark.parametrize("points", [_collapsed_cloud(1e-3), _collapsed_cloud(1e-4), _collapsed_cloud(1e-5),
                                    _tight_clusters(1e-3), _tight_clusters(1e-5)],
                         ids=["cloud-1e-3", "cloud-1e-4", "cloud-1e-5", "clusters-1e-3", "clusters-1e-5"])
def test_exact_when_points_are_packed_far_from_the_origin(points):
  # Matmul-form distances |a|^2 + |b|^2 - 2ab of these float32 points are off by more than the
  # distances themselves (the tree was 18% too long at 1e-3 and 40% at 1e-4 before centring).
  src, dst = jax.jit(ops.mst_edges)(points)
  assert _is_spanning_tree(np.asarray(src), np.asarray(dst), len(points))
  np.testing.assert_allclose(_tree_length(points, src, dst), _scipy_length(points), rtol=1e-5)


def test_exact_fallback_is_taken_only_where_rounding_could_matter():
  # Two tight clusters far from their mean: centring cannot help, the bound sends them to exact distances.
  clustered = _tight_clusters(1e-5)
  centred = clustered - clustered.mean(axis=0)
  src, dst = mst._prim(mst._sanitise(ops.squared_euclidean_distances(centred)))
  assert mst._gram_tree_may_be_inexact(centred, src, dst)
  assert _tree_length(clustered, src, dst) > 1.0001 * _scipy_length(clustered)  # what the fallback repairs
  # A spread batch stays on the one-matmul path.
  spread = _points(256, 64, seed=3)
  src, dst = mst._prim(mst._sanitise(ops.squared_euclidean_distances(spread - spread.mean(axis=0))))
  assert not mst._gram_tree_may_be_inexact(spread - spread.mean(axis=0), src, dst)


# The clouds are centred exactly; the clusters stay far from their mean; 300 points in the plane have edges
# short enough next to tol that the exact weights decide.
@pytest.mark.parametrize("points,skips", [(_collapsed_cloud(1e-3), True), (_collapsed_cloud(1e-5), True),
                                          (_points(256, 64, seed=3), True), (_tight_clusters(1e-3), False),
                                          (_tight_clusters(1e-5), False), (_points(300, 2, seed=5), False)],
                         ids=["cloud-1e-3", "cloud-1e-5", "spread", "clusters-1e-3", "clusters-1e-5", "plane"])
def test_matmul_form_prefilter_defers_to_the_exact_weights_wherever_they_could_matter(points, skips):
  # mst_edges skips the exact weights' test where it passes for every weight within tol of the matmul-form one.
  centred = points - points.mean(axis=0)
  sq_dist = mst._gram_squared_distances(centred)
  src, dst = mst._prim(sq_dist)
  tol, gram_weights = mst._gram_tolerance(centred), sq_dist[src, dst]
  surely_exact = not mst._length_may_exceed_minimum(np.maximum(gram_weights - tol, 0), gram_weights + tol, tol)
  assert surely_exact == skips
  assert not (surely_exact and mst._gram_tree_may_be_inexact(centred, src, dst))


@pytest.mark.parametrize("block_elements", [1 << 24, 400])  # one block; blocks of 2 rows with a padded last one
def test_exact_distances_match_float64(block_elements, monkeypatch):
  monkeypatch.setattr(mst, "_EXACT_BLOCK_ELEMENTS", block_elements)
  points = _points(37, 5, seed=9)
  np.testing.assert_allclose(mst._exact_squared_distances(jax.numpy.asarray(points)),
                             distance.squareform(distance.pdist(points.astype(np.float64), "sqeuclidean")),
                             rtol=1e-5, atol=1e-6)


# 8 uneven blocks of 10 or 11 rows; 3 blocks of 27 or 28 rows; one block (the plain matmul), for the size or the N.
@pytest.mark.parametrize("block_rows,max_n", [(10, 1000), (27, 1000), (1 << 20, 1000), (10, 50)])
def test_gram_distances_by_symmetric_blocks_match_float64(block_rows, max_n, monkeypatch):
  monkeypatch.setattr(mst, "_GRAM_BLOCK_ROWS", block_rows)
  monkeypatch.setattr(mst, "_SYMMETRIC_MAX_N", max_n)
  points = _points(83, 5, seed=11)
  sq_dist = np.asarray(jax.jit(mst._gram_squared_distances)(points))
  np.testing.assert_array_equal(sq_dist, sq_dist.T)
  np.testing.assert_allclose(sq_dist, distance.squareform(distance.pdist(points.astype(np.float64), "sqeuclidean")),
                             rtol=1e-5, atol=1e-5)
  src, dst = jax.jit(ops.mst_edges)(points)
  np.testing.assert_allclose(_tree_length(points, src, dst), _scipy_length(points), rtol=1e-6)


@pytest.mark.parametrize("length", [1, 16, 17, 33, 1000])
def test_tree_min_is_the_minimum_for_any_length(length):
  values = np.random.default_rng(length).permutation(length).astype(np.int32) + 5
  assert int(mst._tree_min(values)) == 5
  assert float(mst._tree_min(values.astype(np.float32))) == 5.0


@pytest.mark.parametrize("n,d", [(5, 2), (64, 8), (500, 16), (1024, 64)])
def test_boruvka_and_prim_give_the_same_tree(n, d):
  points = _points(n, d, seed=n + d)
  prim = jax.jit(ops.mst_edges, static_argnums=1)(points, "prim")
  boruvka = jax.jit(ops.mst_edges, static_argnums=1)(points, "boruvka")
  assert _edge_set(*boruvka) == _edge_set(*prim)
  assert len(_edge_set(*boruvka)) == n - 1


def test_boruvka_gradient_is_the_sum_of_unit_edge_vectors():
  # The length's gradient depends on the edges only: Borůvka's edges give scipy's tree and its gradient.
  points = _points(12, 3, seed=4).astype(np.float64)
  src, dst = (np.asarray(a) for a in ops.mst_edges(points.astype(np.float32), "boruvka"))
  gradient = jax.grad(lambda z: jax.numpy.sum(jax.numpy.linalg.norm(z[src] - z[dst], axis=1)))(
      points.astype(np.float32))

  def scipy_length(z):
    return csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(z))).sum()

  numerical = np.zeros_like(points)
  for index in np.ndindex(points.shape):
    step = np.zeros_like(points)
    step[index] = 1e-6
    numerical[index] = (scipy_length(points + step) - scipy_length(points - step)) / 2e-6
  np.testing.assert_allclose(gradient, numerical, rtol=1e-3, atol=1e-5)


def test_unknown_algorithm_is_named():
  with pytest.raises(ValueError, match="algorithm must be one of auto, prim, boruvka"):
    ops.mst_edges(_points(4, 2), "kruskal")
