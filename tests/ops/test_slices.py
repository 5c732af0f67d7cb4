"""Random slice directions and Gaussian quantiles."""

import jax
import numpy as np
import pytest
from scipy import stats

from jax_ssl import ops


def test_random_directions_are_unit_columns():
  directions = jax.jit(ops.random_directions, static_argnums=(1, 2))(jax.random.key(0), 16, 4000)
  assert directions.shape == (16, 4000)
  np.testing.assert_allclose(np.linalg.norm(directions, axis=0), 1.0, rtol=1e-5)
  # Uniform on the sphere: E[w w^T] = I / dim.
  second_moment = np.asarray(directions) @ np.asarray(directions).T / 4000
  np.testing.assert_allclose(second_moment, np.eye(16) / 16, atol=0.01)


def test_gaussian_quantiles_match_scipy():
  n = 4096
  expected = stats.norm.ppf(np.arange(1, n + 1) / (n + 1))
  np.testing.assert_allclose(ops.gaussian_quantiles(n), expected, rtol=1e-6)


@pytest.mark.parametrize("bad", [dict(dim=0, num=3), dict(dim=3, num=0)])
def test_random_directions_rejects_empty(bad):
  with pytest.raises(ValueError, match="dim >= 1 and num >= 1"):
    ops.random_directions(jax.random.key(0), **bad)
