"""Effective rank (RankMe) against numpy."""

import jax
import numpy as np

from jax_ssl import ops


def _points(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_effective_rank_matches_rankme_formula():
  z = _points(50, 8) * np.linspace(0.1, 3.0, 8).astype(np.float32)
  s = np.linalg.svd(z.astype(np.float64), compute_uv=False)
  p = s / s.sum() + 1e-7
  np.testing.assert_allclose(jax.jit(ops.effective_rank)(z), np.exp(-(p * np.log(p)).sum()), rtol=1e-5)
  line = np.outer(np.arange(1.0, 11.0), np.ones(4)).astype(np.float32)
  np.testing.assert_allclose(ops.effective_rank(line), 1.0, atol=1e-4)
  np.testing.assert_allclose(ops.effective_rank(np.eye(6, dtype=np.float32)), 6.0, rtol=1e-4)
