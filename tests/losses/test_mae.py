"""MAE's reconstruction loss against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _inputs(n=4, p=6, length=12, seed=0):
  rng = np.random.default_rng(seed)
  predictions = rng.standard_normal((n, p, length)).astype(np.float32)
  patches = (rng.uniform(0, 3, (n, p, length)) * rng.uniform(0.1, 2, (n, p, 1))).astype(np.float32)
  mask = (rng.random((n, p)) < 0.7).astype(np.float32)
  mask[:, 0] = 1.0
  return predictions, patches, mask


def ref_mae(predictions, patches, mask, norm_pix=True):
  predictions, patches, mask = (np.asarray(a, np.float64) for a in (predictions, patches, mask))
  total = 0.0
  for n in range(len(patches)):
    for p in range(patches.shape[1]):
      target = patches[n, p]
      if norm_pix:
        target = (target - target.mean()) / np.sqrt(target.var(ddof=1) + 1e-6)
      total += mask[n, p] * np.mean((predictions[n, p] - target) ** 2)
  return total / mask.sum()


@pytest.mark.parametrize("norm_pix", [True, False])
def test_mae_loss_matches_float64(norm_pix):
  predictions, patches, mask = _inputs()
  loss = jax.jit(losses.mae_loss, static_argnums=3)(predictions, patches, mask, norm_pix)
  np.testing.assert_allclose(loss, ref_mae(predictions, patches, mask, norm_pix), rtol=1e-5)


def test_mae_gradient_reaches_the_hidden_patches_predictions_only():
  predictions, patches, mask = _inputs(n=2, p=3, length=4)
  assert_grad_matches_reference(lambda x: losses.mae_loss(x, patches, mask),
                                lambda x: ref_mae(x, patches, mask), predictions)
  grad = jax.grad(lambda x: losses.mae_loss(x, patches, mask))(predictions)
  np.testing.assert_array_equal(grad[mask == 0], 0.0)
  np.testing.assert_array_equal(jax.grad(lambda t: losses.mae_loss(predictions, t, mask))(patches), 0.0)


def test_a_nan_anywhere_gives_a_nan_loss():
  for index in (0, 1):
    arrays = list(_inputs())
    arrays[index] = arrays[index].copy()
    arrays[index][1, 2, 3] = np.nan
    assert np.isnan(losses.mae_loss(*arrays))


@pytest.mark.parametrize("shapes,message", [
    (((2, 3, 4), (2, 3, 5), (2, 3)), "predictions and patches must have the same shape"),
    (((2, 3, 4), (2, 3, 4), (2, 4)), r"mask must be \(N, P\) = \(2, 3\)"),
    (((2, 3, 1), (2, 3, 1), (2, 3)), "norm_pix standardises each patch"),
])
def test_wrong_shapes_are_named(shapes, message):
  with pytest.raises(ValueError, match=message):
    losses.mae_loss(*(jnp.ones(shape) for shape in shapes))
