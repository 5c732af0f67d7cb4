"""Pairwise geometry kernels against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial import distance

from jax_ssl import ops


def _points(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_cosine_similarities():
  x, y = _points(9, 5, 0), _points(7, 5, 1)
  expected = 1 - distance.cdist(x.astype(np.float64), y.astype(np.float64), "cosine")
  np.testing.assert_allclose(jax.jit(ops.cosine_similarities)(x, y), expected, rtol=1e-5, atol=1e-6)


def test_cosine_of_zero_vector_is_zero():
  x = np.zeros((1, 3), np.float32)
  np.testing.assert_array_equal(ops.cosine_similarities(x, _points(4, 3)), np.zeros((1, 4)))


def test_squared_euclidean_distances():
  x, y = _points(9, 5, 0), _points(7, 5, 1)
  expected = distance.cdist(x.astype(np.float64), y.astype(np.float64), "sqeuclidean")
  np.testing.assert_allclose(jax.jit(ops.squared_euclidean_distances)(x, y), expected, rtol=1e-5, atol=1e-5)
  self_dist = np.asarray(ops.squared_euclidean_distances(x))
  assert self_dist.min() >= 0.0
  np.testing.assert_allclose(np.diag(self_dist), 0.0, atol=1e-5)


def test_knn_returns_k_smallest_ascending():
  dist = np.random.default_rng(2).random((6, 10)).astype(np.float32)
  values, indices = jax.jit(ops.knn, static_argnums=1)(dist, 4)
  np.testing.assert_array_equal(indices, np.argsort(dist, axis=1)[:, :4])
  np.testing.assert_array_equal(values, np.sort(dist, axis=1)[:, :4])
  assert indices.dtype == jnp.int32


@pytest.mark.parametrize("k", [0, 11])
def test_knn_rejects_bad_k(k):
  with pytest.raises(ValueError, match="k must be"):
    ops.knn(np.zeros((3, 10), np.float32), k)


def test_safe_norm_value_and_zero_gradient_at_origin():
  x = _points(5, 4)
  np.testing.assert_allclose(ops.safe_norm(x), np.linalg.norm(x, axis=1), rtol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(ops.safe_norm(v)))(np.zeros((2, 3), np.float32))
  np.testing.assert_array_equal(grad, np.zeros((2, 3)))
