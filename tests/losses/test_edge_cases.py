"""Degenerate batches give finite losses and gradients; bad shapes give a ValueError naming the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from tests.losses.catalogue import all_losses


def _random(shape, seed):
  return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _two_samples():
  return _random((2, 5), 0), _random((2, 5), 1)


def _collapsed():
  row = _random((1, 6), 2)
  return np.repeat(row, 16, axis=0), np.repeat(row + 0.5, 16, axis=0)


def _duplicates():
  z = _random((8, 4), 3)
  return np.concatenate([z, z]), np.concatenate([z, z[::-1]])


def _one_dimension():
  return _random((16, 1), 4), _random((16, 1), 5)


def _bfloat16():
  return _random((16, 8), 6).astype(jnp.bfloat16), _random((16, 8), 7).astype(jnp.bfloat16)


BATCHES = {"N=2": _two_samples, "collapsed": _collapsed, "duplicates": _duplicates, "D=1": _one_dimension,
           "bfloat16": _bfloat16}


@pytest.mark.parametrize("batch_name", sorted(BATCHES))
def test_degenerate_batches_give_finite_losses_and_gradients(batch_name):
  z1, z2 = BATCHES[batch_name]()
  results = all_losses(k=1, num_slices=8, with_gradients=True)(jax.random.key(0), z1, z2)
  for name, (value, grads) in results.items():
    assert value.dtype == jnp.float32, name
    assert np.isfinite(value), f"{name} is not finite on the {batch_name} batch"
    for grad, z in zip(grads, (z1, z2)):
      assert grad.dtype == z.dtype, name
      assert np.all(np.isfinite(np.asarray(grad, np.float32))), f"{name} gradient is not finite on {batch_name}"


@pytest.mark.parametrize("where", ["z1", "z2"])
def test_a_nan_anywhere_gives_a_nan_loss(where):
  # The trainer's non-finite guard reads the loss: a NaN embedding must never come out finite.
  rng = np.random.default_rng(0)
  z1 = rng.standard_normal((16, 6)).astype(np.float32)
  z2 = (z1 + 0.3 * rng.standard_normal((16, 6))).astype(np.float32)
  key = jax.random.key(3)
  fn = all_losses(k=3, num_slices=8)
  reads = set(fn(key, z1, z2))
  if where == "z2":  # leave out the terms of z1 alone (variance, shape, MST, ...)
    clean, shifted = fn(key, z1, z2), fn(key, z1, z2 + 1.0)
    reads = {name for name in reads if float(clean[name]) != float(shifted[name])}
    assert "invariance" in reads and "variance" not in reads
  for row in (0, 7):  # a row the random walk may or may not draw
    a, b = z1.copy(), z2.copy()
    (a if where == "z1" else b)[row, 2] = np.nan
    values = fn(key, a, b)
    for name in reads:
      assert np.isnan(values[name]), f"{name} is finite with a NaN in {where}[{row}]"


def test_nested_lists_are_array_like_inputs():
  # The public losses take `jax.typing.ArrayLike`: nested lists give what the same numpy arrays give.
  rng = np.random.default_rng(1)
  z1 = rng.standard_normal((8, 3)).astype(np.float32)
  z2 = (z1 + 0.3 * rng.standard_normal((8, 3))).astype(np.float32)
  directions = np.asarray(losses.random_directions(jax.random.key(5), 3, 8))
  calls = {  # the cheap ones eagerly: every public loss converts its inputs the same way (losses/_checks.py)
      "invariance": lambda a, b, d: losses.invariance(a, b, [0.5] * 8),
      "vicreg_loss": lambda a, b, d: losses.vicreg_loss(a, b)[0],
      "center_loss": lambda a, b, d: losses.center_loss(a),
      "visreg_regularizer": lambda a, b, d: losses.visreg_regularizer(a, d),
      "swd_gaussian": lambda a, b, d: losses.swd_gaussian(a, d),
      "barlow_twins_loss": lambda a, b, d: losses.barlow_twins_loss(a, b)[0],
      "byol_loss": lambda a, b, d: losses.byol_loss(a, b),
  }
  for name, call in calls.items():
    np.testing.assert_array_equal(call(z1.tolist(), z2.tolist(), directions.tolist()), call(z1, z2, directions),
                                  err_msg=name)


def test_bfloat16_inputs_are_computed_in_float32():
  z1, z2 = _bfloat16()
  fn, key = all_losses(k=3, num_slices=8), jax.random.key(1)
  in_bfloat16, in_float32 = fn(key, z1, z2), fn(key, z1.astype(np.float32), z2.astype(np.float32))
  for name, value in in_bfloat16.items():
    assert value.dtype == jnp.float32, name
    np.testing.assert_allclose(value, in_float32[name], rtol=1e-5, atol=1e-6, err_msg=name)


RANK_ERRORS = [
    (lambda z: losses.invariance(z, z), "z1 must be a 2-D"),
    (losses.variance, "z must be a 2-D"),
    (losses.covariance, "z must be a 2-D"),
    (lambda z: losses.vicreg_loss(z, z), "z1 must be a 2-D"),
    (lambda z: losses.knn_affinity(z, z), "z must be a 2-D"),
    (lambda z: losses.sag_vicreg_loss(jax.random.key(0), z, z), "z1 must be a 2-D"),
    (losses.scale_loss, "z must be a 2-D"),
    (losses.center_loss, "z must be a 2-D"),
    (lambda z: losses.shape_loss(z, np.ones((3, 2), np.float32)), "z must be a 2-D"),
    (lambda z: losses.swd_gaussian(z, np.ones((3, 2), np.float32)), "z must be a 2-D"),
    (lambda z: losses.sigreg(z, np.ones((3, 2), np.float32)), "z must be a 2-D"),
    (losses.mst_length, "z must be a 2-D"),
    (losses.sphere_loss, "z must be a 2-D"),
    (losses.t_reg, "z must be a 2-D"),
    (lambda z: losses.tregs_loss(z, z), "z1 must be a 2-D"),
    (lambda z: losses.barlow_twins_loss(z, z), "z1 must be a 2-D"),
    (lambda z: losses.nt_xent(z, z), "z1 must be a 2-D"),
    (lambda z: losses.byol_loss(z, z), "p must be a 2-D"),
    (lambda z: losses.prediction_loss(z, z), "global_views must be a 3-D"),
]


@pytest.mark.parametrize("fn,message", RANK_ERRORS)
@pytest.mark.parametrize("shape", [(6,), (2, 6, 3)])
def test_wrong_rank_names_the_argument(fn, message, shape):
  if "3-D" in message:
    shape = (6, 3)
  with pytest.raises(ValueError, match=message):
    fn(np.ones(shape, np.float32))
