"""VICReg terms against float64 numpy references."""

import jax
import numpy as np
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference

SHAPES = [(2, 1), (8, 3), (33, 16), (128, 64)]


def _pair(shape, seed=0, noise=0.5):
  rng = np.random.default_rng(seed)
  z1 = rng.standard_normal(shape)
  return z1.astype(np.float32), (z1 + noise * rng.standard_normal(shape)).astype(np.float32)


def ref_invariance(z1, z2, weights=None):
  per_pair = ((z1 - z2) ** 2).mean(axis=1)
  return per_pair.mean() if weights is None else (weights * per_pair).mean()


def ref_variance(z, gamma=1.0, eps=1e-4):
  return np.maximum(gamma - np.sqrt(z.var(axis=0, ddof=1) + eps), 0).mean()


def ref_covariance(z):
  cov = np.cov(z, rowvar=False, ddof=1).reshape(z.shape[1], z.shape[1])
  return ((cov**2).sum() - (np.diag(cov) ** 2).sum()) / z.shape[1]


def ref_vicreg(z1, z2, sim=25.0, std=25.0, cov=1.0):
  return (sim * ref_invariance(z1, z2) + std * (ref_variance(z1) + ref_variance(z2)) / 2
          + cov * (ref_covariance(z1) + ref_covariance(z2)))


@pytest.mark.parametrize("shape", SHAPES)
def test_terms_match_reference(shape):
  z1, z2 = _pair(shape, seed=shape[0])
  a, b = z1.astype(np.float64), z2.astype(np.float64)
  weights = np.random.default_rng(1).random(shape[0]).astype(np.float32)
  np.testing.assert_allclose(jax.jit(losses.invariance)(z1, z2), ref_invariance(a, b), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(losses.invariance)(z1, z2, weights), ref_invariance(a, b, weights), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(losses.variance)(0.7 * z1), ref_variance(0.7 * a), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(jax.jit(losses.covariance)(z1), ref_covariance(a), rtol=1e-4, atol=1e-7)
  loss, metrics = jax.jit(losses.vicreg_loss)(z1, z2)
  np.testing.assert_allclose(loss, ref_vicreg(a, b), rtol=1e-4)
  np.testing.assert_allclose(metrics["covariance"], ref_covariance(a) + ref_covariance(b), rtol=1e-4, atol=1e-7)


def test_invariance_is_torch_mse():
  z1, z2 = _pair((10, 4))
  np.testing.assert_allclose(losses.invariance(z1, z2), np.mean((z1 - z2) ** 2), rtol=1e-6)


def test_variance_hyperparameters():
  z = _pair((20, 5))[0].astype(np.float64)
  np.testing.assert_allclose(
      losses.variance(z.astype(np.float32), gamma=2.0, eps=0.5), ref_variance(z, 2.0, 0.5), rtol=1e-5)


def test_identical_views_give_the_regularization_part():
  z = _pair((32, 8))[0]
  loss, metrics = losses.vicreg_loss(z, z, sim_coeff=25.0, std_coeff=3.0, cov_coeff=2.0)
  assert metrics["invariance"] == 0.0
  z64 = z.astype(np.float64)
  np.testing.assert_allclose(loss, 3.0 * ref_variance(z64) + 2.0 * 2 * ref_covariance(z64), rtol=1e-5)


def test_gradients_match_finite_differences():
  z1, z2 = _pair((6, 4), seed=3)
  z2_64 = z2.astype(np.float64)
  assert_grad_matches_reference(
      lambda z: losses.vicreg_loss(z, z2)[0], lambda z: ref_vicreg(z, z2_64), 0.4 * z1)
  assert_grad_matches_reference(losses.variance, ref_variance, 0.5 * z1)
  assert_grad_matches_reference(losses.covariance, ref_covariance, z1)
  weights = np.linspace(0.2, 1.0, 6)
  assert_grad_matches_reference(
      lambda z: losses.invariance(z, z2, weights.astype(np.float32)),
      lambda z: ref_invariance(z, z2_64, weights), z1)


@pytest.mark.parametrize("regularizer", [losses.variance, losses.covariance])
def test_regularizers_are_permutation_invariant(regularizer):
  z = _pair((16, 6))[0]
  perm = np.random.default_rng(0).permutation(16)
  np.testing.assert_allclose(regularizer(z[perm]), regularizer(z), rtol=1e-5, atol=1e-7)


def test_invariance_is_permutation_invariant_over_pairs():
  z1, z2 = _pair((16, 6))
  perm = np.random.default_rng(1).permutation(16)
  np.testing.assert_allclose(losses.invariance(z1[perm], z2[perm]), losses.invariance(z1, z2), rtol=1e-6)


def test_bad_inputs_name_the_argument():
  z = np.zeros((4, 3), np.float32)
  with pytest.raises(ValueError, match="z1 and z2 must have the same shape"):
    losses.vicreg_loss(z, np.zeros((4, 2), np.float32))
  with pytest.raises(ValueError, match="z must be a 2-D"):
    losses.variance(np.zeros((4,), np.float32))
  with pytest.raises(ValueError, match="z needs at least 2 rows"):
    losses.covariance(np.zeros((1, 3), np.float32))
  with pytest.raises(ValueError, match="weights must have shape"):
    losses.invariance(z, z, np.ones(3, np.float32))
