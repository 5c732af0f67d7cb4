"""Prim's MST inside jit against scipy's minimum_spanning_tree."""

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


def test_non_finite_point_still_joins_the_tree():
  points = _points(6, 3)
  points[4, 1] = np.nan
  src, dst = ops.mst_edges(points)
  assert _is_spanning_tree(np.asarray(src), np.asarray(dst), 6)


@pytest.mark.parametrize("shape", [(1, 3), (5,), (2, 3, 4)])
def test_rejects_bad_shapes(shape):
  with pytest.raises(ValueError, match="mst_edges"):
    ops.mst_edges(np.zeros(shape, np.float32))
