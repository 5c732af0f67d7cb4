"""Prim's MST inside jit against scipy's minimum_spanning_tree."""

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from scipy.sparse import csgraph
from scipy.spatial import distance

from jax_ssl import ops


def _points(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _is_spanning_tree(src, dst, n):
  graph = np.zeros((n, n))
  graph[src, dst] = graph[dst, src] = 1
  components, _ = csgraph.connected_components(graph, directed=False)
  return len(src) == n - 1 and components == 1


@pytest.mark.parametrize("n,d", [(2, 3), (10, 2), (64, 8), (300, 32)])
def test_edges_form_a_minimum_spanning_tree(n, d):
  points = _points(n, d, seed=n)
  src, dst = jax.jit(ops.mst_edges)(points)
  src, dst = np.asarray(src), np.asarray(dst)
  assert src.dtype == np.int32 and src.shape == (n - 1,)
  assert _is_spanning_tree(src, dst, n)
  points64 = points.astype(np.float64)
  length = np.linalg.norm(points64[src] - points64[dst], axis=1).sum()
  expected = csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(points64))).sum()
  np.testing.assert_allclose(length, expected, rtol=1e-6)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, 1e30])
def test_non_finite_or_huge_point_still_joins_the_tree(bad_value):
  points = _points(6, 3)
  points[4, 1] = bad_value
  src, dst = ops.mst_edges(points)
  assert _is_spanning_tree(np.asarray(src), np.asarray(dst), 6)


@pytest.mark.parametrize("shape", [(1, 3), (5,), (2, 3, 4)])
def test_rejects_bad_shapes(shape):
  with pytest.raises(ValueError, match="mst_edges: z must be 2-D|at least 2 points"):
    ops.mst_edges(np.zeros(shape, np.float32))


@hypothesis.settings(max_examples=30, deadline=None)
@hypothesis.given(hnp.arrays(np.int32, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=12),
                             elements=hypothesis.strategies.integers(-20, 20)))
def test_minimum_for_any_point_set(points):
  """Integer coordinates: float32 distances are exact, ties and duplicates are frequent."""
  points = points.astype(np.float32)
  src, dst = (np.asarray(a) for a in ops.mst_edges(points))
  assert _is_spanning_tree(src, dst, len(points))
  length = np.linalg.norm(points[src].astype(np.float64) - points[dst], axis=1).sum()
  # Duplicates add zero-length edges; scipy reads zero entries as missing edges, so it gets the unique points.
  unique = np.unique(points, axis=0).astype(np.float64)
  expected = csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(unique))).sum() if len(unique) > 1 else 0
  np.testing.assert_allclose(length, expected, rtol=1e-9, atol=1e-9)
