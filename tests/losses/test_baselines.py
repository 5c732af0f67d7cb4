"""Barlow Twins, NT-Xent and BYOL against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _pair(n, d, seed=0):
  rng = np.random.default_rng(seed)
  z1 = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d) + rng.standard_normal(d)
  return z1.astype(np.float32), (z1 + 0.4 * rng.standard_normal((n, d))).astype(np.float32)


def ref_barlow_twins(z1, z2, lambd=5e-3):
  def standardise(z):
    return (z - z.mean(axis=0)) / np.sqrt(z.var(axis=0) + 1e-5)
  c = standardise(z1.astype(np.float64)).T @ standardise(z2.astype(np.float64)) / len(z1)
  off = c - np.diag(np.diag(c))
  return ((1 - np.diag(c)) ** 2).sum() + lambd * (off**2).sum()


def ref_nt_xent(z1, z2, temperature=0.1):
  z = np.concatenate([z1, z2]).astype(np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n = len(z1)
  total = 0.0
  for a in range(2 * n):
    positive = (a + n) % (2 * n)
    logits = np.array([z[a] @ z[b] / temperature for b in range(2 * n) if b != a])
    total -= z[a] @ z[positive] / temperature - np.log(np.exp(logits).sum())
  return total / (2 * n)


def ref_byol(p, z):
  p, z = p.astype(np.float64), z.astype(np.float64)
  cos = (p * z).sum(axis=1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(z, axis=1))
  return (2 - 2 * cos).mean()


@pytest.mark.parametrize("n,d", [(2, 1), (16, 8), (64, 32)])
def test_losses_match_reference(n, d):
  z1, z2 = _pair(n, d, seed=n)
  loss, metrics = jax.jit(losses.barlow_twins_loss)(z1, z2)
  np.testing.assert_allclose(loss, ref_barlow_twins(z1, z2), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(losses.barlow_twins_loss(z1, z2, lambd=0.1)[0], ref_barlow_twins(z1, z2, 0.1), rtol=1e-4,
                             atol=1e-6)
  assert set(metrics) == {"on_diagonal", "off_diagonal"}
  np.testing.assert_allclose(jax.jit(losses.nt_xent)(z1, z2), ref_nt_xent(z1, z2), rtol=1e-4)
  np.testing.assert_allclose(losses.nt_xent(z1, z2, temperature=0.5), ref_nt_xent(z1, z2, 0.5), rtol=1e-4)
  np.testing.assert_allclose(jax.jit(losses.byol_loss)(z1, z2), ref_byol(z1, z2), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("n,d", [(2, 1), (16, 8)])
def test_nt_xent_is_optax_ntxent_with_the_two_views_as_positive_pairs(n, d):
  # The same formula as optax's (its docstring says why ours stays): equal on values and gradients.
  z1, z2 = _pair(n, d, seed=3 * n)
  labels = np.tile(np.arange(n), 2)

  def optax_form(a, b, temperature):
    return optax.losses.ntxent(jnp.concatenate([a, b]), labels, temperature)

  for temperature in (0.1, 0.5):
    np.testing.assert_allclose(losses.nt_xent(z1, z2, temperature), optax_form(z1, z2, temperature), rtol=1e-5)
  np.testing.assert_allclose(jax.grad(losses.nt_xent)(z1, z2), jax.grad(optax_form)(z1, z2, 0.1), rtol=1e-4,
                             atol=1e-6)


def test_gradients_match_finite_differences():
  z1, z2 = _pair(6, 4, seed=1)
  assert_grad_matches_reference(lambda z: losses.barlow_twins_loss(z, z2)[0], lambda z: ref_barlow_twins(z, z2), z1)
  assert_grad_matches_reference(lambda z: losses.nt_xent(z, z2), lambda z: ref_nt_xent(z, z2), z1)
  assert_grad_matches_reference(lambda p: losses.byol_loss(p, z2), lambda p: ref_byol(p, z2), z1)


def test_byol_target_gets_no_gradient():
  z1, z2 = _pair(8, 4)
  np.testing.assert_array_equal(jax.grad(losses.byol_loss, argnums=1)(z1, z2), np.zeros_like(z2))


def test_losses_are_invariant_to_permuting_pairs():
  z1, z2 = _pair(12, 5, seed=2)
  perm = np.random.default_rng(0).permutation(12)
  for fn in (lambda a, b: losses.barlow_twins_loss(a, b)[0], losses.nt_xent, losses.byol_loss):
    np.testing.assert_allclose(fn(z1[perm], z2[perm]), fn(z1, z2), rtol=1e-5)


@pytest.mark.parametrize("name", ["barlow_twins_loss", "nt_xent", "byol_loss"])
def test_mismatched_shapes_are_rejected(name):
  with pytest.raises(ValueError, match="must have the same shape"):
    getattr(losses, name)(np.ones((4, 3), np.float32), np.ones((4, 2), np.float32))
