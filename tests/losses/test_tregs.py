"""T-REG(S): the MST length against scipy, its gradient, its symmetries."""

import jax
import numpy as np
import pytest
from scipy import stats
from scipy.sparse import csgraph
from scipy.spatial import distance

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _points(n, d, seed=0):
  return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def ref_mst_length(z):
  return csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(z.astype(np.float64)))).sum()


def ref_sphere(z):
  return ((np.linalg.norm(z.astype(np.float64), axis=1) - 1) ** 2).mean()


def ref_t_reg(z, gamma=0.2, lam=8e-4):
  return gamma * -ref_mst_length(z) / len(z) + lam * ref_sphere(z)


@pytest.mark.parametrize("n,d", [(2, 5), (17, 3), (128, 16), (500, 64)])
def test_mst_length_matches_scipy(n, d):
  z = _points(n, d, seed=n)
  np.testing.assert_allclose(jax.jit(losses.mst_length)(z), ref_mst_length(z), rtol=1e-5)
  np.testing.assert_allclose(jax.jit(losses.mst_length_loss)(z), -ref_mst_length(z) / n, rtol=1e-5)


def test_mst_length_in_one_dimension_is_the_range():
  z = _points(50, 1)
  np.testing.assert_allclose(losses.mst_length(z), z.max() - z.min(), rtol=1e-6)


@pytest.mark.parametrize("n,d", [(2, 1), (40, 8), (256, 32)])
def test_terms_match_reference(n, d):
  z1 = _points(n, d, seed=1)
  z2 = z1 + 0.1 * _points(n, d, seed=2)
  np.testing.assert_allclose(losses.sphere_loss(z1), ref_sphere(z1), rtol=1e-5)
  np.testing.assert_allclose(losses.t_reg(z1, gamma=0.5, lam=0.1), ref_t_reg(z1, 0.5, 0.1), rtol=1e-5)
  loss, metrics = jax.jit(losses.tregs_loss)(z1, z2)
  invariance = ((z1.astype(np.float64) - z2) ** 2).mean()
  np.testing.assert_allclose(loss, 10.0 * invariance + ref_t_reg(z1) + ref_t_reg(z2), rtol=1e-5)
  np.testing.assert_allclose(metrics["mst_length"], (ref_mst_length(z1) + ref_mst_length(z2)) / (2 * n), rtol=1e-5)


def test_gradient_of_two_points_is_the_unit_vector_between_them():
  z = np.array([[1.0, 2.0, 3.0], [4.0, -2.0, 3.0]], np.float32)
  unit = (z[0] - z[1]) / np.linalg.norm(z[0] - z[1])
  np.testing.assert_allclose(jax.grad(losses.mst_length)(z), np.stack([unit, -unit]), rtol=1e-6)


def test_gradients_match_finite_differences():
  z = _points(12, 3, seed=4)  # general position: the tree does not change within the step
  assert_grad_matches_reference(losses.mst_length, ref_mst_length, z)
  assert_grad_matches_reference(losses.sphere_loss, ref_sphere, z)
  assert_grad_matches_reference(lambda v: losses.t_reg(v, 0.3, 0.1), lambda v: ref_t_reg(v, 0.3, 0.1), z)
  other = (z + 0.1 * _points(12, 3, seed=5)).astype(np.float32)
  assert_grad_matches_reference(
      lambda v: losses.tregs_loss(v, other)[0],
      lambda v: 10.0 * ((v - other) ** 2).mean() + ref_t_reg(v) + ref_t_reg(other.astype(np.float64)), z)


def test_mst_length_is_invariant_to_rigid_motions_and_linear_in_scale():
  z = _points(64, 5, seed=6)
  rotation = stats.special_ortho_group.rvs(5, random_state=0).astype(np.float32)
  length = losses.mst_length(z)
  np.testing.assert_allclose(losses.mst_length(z @ rotation.T + 3.0), length, rtol=1e-5)
  np.testing.assert_allclose(losses.mst_length(2.5 * z), 2.5 * length, rtol=1e-5)
  np.testing.assert_allclose(losses.mst_length(z[::-1].copy()), length, rtol=1e-5)


def test_duplicate_points_add_nothing_and_keep_gradients_finite():
  z = _points(20, 4, seed=7)
  with_duplicates = np.concatenate([z, z[:5]])
  np.testing.assert_allclose(losses.mst_length(with_duplicates), losses.mst_length(z), rtol=1e-5)
  assert np.all(np.isfinite(jax.grad(losses.mst_length)(with_duplicates)))


@pytest.mark.parametrize("name", ["mst_length", "mst_length_loss", "sphere_loss", "t_reg"])
def test_regularizers_are_permutation_invariant(name):
  z = _points(30, 6, seed=8)
  perm = np.random.default_rng(0).permutation(30)
  fn = getattr(losses, name)
  np.testing.assert_allclose(fn(z[perm]), fn(z), rtol=1e-5)


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match="z needs at least 2 rows"):
    losses.mst_length(np.ones((1, 3), np.float32))
  with pytest.raises(ValueError, match="z must be a 2-D"):
    losses.sphere_loss(np.ones((2, 3, 4), np.float32))
  with pytest.raises(ValueError, match="z1 and z2 must have the same shape"):
    losses.tregs_loss(np.ones((4, 3), np.float32), np.ones((5, 3), np.float32))


@pytest.mark.parametrize("spread", [1e-3, 1e-4])
def test_mst_length_matches_scipy_for_a_collapsing_batch(spread):
  rng = np.random.default_rng(0)
  centre = rng.standard_normal(32)
  z = (10.0 * centre / np.linalg.norm(centre) + spread * rng.standard_normal((256, 32))).astype(np.float32)
  np.testing.assert_allclose(jax.jit(losses.mst_length)(z), ref_mst_length(z), rtol=1e-4)
