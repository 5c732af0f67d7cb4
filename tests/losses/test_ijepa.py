"""I-JEPA's block-prediction loss against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _inputs(n=3, m=2, p=5, d=4, seed=0):
  rng = np.random.default_rng(seed)
  predictions = rng.standard_normal((n, m, p, d)).astype(np.float32)
  targets = rng.standard_normal((n, p, d)).astype(np.float32)
  blocks = rng.random((n, m, p)) < 0.4
  blocks[:, :, 0] = True
  return predictions, targets, blocks


def ref_ijepa(predictions, targets, blocks):
  """Eq. (1) of the paper per block, then the normalisation by the block sizes and the width."""
  predictions, targets = np.asarray(predictions, np.float64), np.asarray(targets, np.float64)
  total, count = 0.0, 0
  for n in range(predictions.shape[0]):
    for m in range(predictions.shape[1]):
      for p in np.flatnonzero(blocks[n, m]):
        total += np.sum((predictions[n, m, p] - targets[n, p]) ** 2)
        count += 1
  return total / (count * predictions.shape[-1])


def test_ijepa_loss_matches_float64():
  predictions, targets, blocks = _inputs()
  np.testing.assert_allclose(jax.jit(losses.ijepa_loss)(predictions, targets, blocks),
                             ref_ijepa(predictions, targets, blocks), rtol=1e-5)


def test_equal_blocks_give_the_papers_mean_over_blocks_of_summed_distances_scaled():
  predictions, targets, _ = _inputs(n=2, m=3, p=6)
  blocks = np.zeros((2, 3, 6), bool)
  for m in range(3):
    blocks[:, m, 2 * m:2 * m + 2] = True  # every block has 2 patches
  squared = ((predictions.astype(np.float64) - targets[:, None]) ** 2).sum(-1)
  per_block = np.array([[squared[n, m][blocks[n, m]].sum() for m in range(3)] for n in range(2)])
  np.testing.assert_allclose(losses.ijepa_loss(predictions, targets, blocks), per_block.mean() / (2 * 4), rtol=1e-5)


def test_gradient_reaches_the_predictions_inside_the_blocks_only():
  predictions, targets, blocks = _inputs(n=2, m=2, p=3, d=3)
  assert_grad_matches_reference(lambda x: losses.ijepa_loss(x, targets, blocks),
                                lambda x: ref_ijepa(x, targets, blocks), predictions)
  grad = jax.grad(lambda x: losses.ijepa_loss(x, targets, blocks))(predictions)
  np.testing.assert_array_equal(np.asarray(grad)[~blocks], 0.0)
  np.testing.assert_array_equal(jax.grad(lambda t: losses.ijepa_loss(predictions, t, blocks))(targets), 0.0)


def test_permuting_the_batch_changes_nothing():
  predictions, targets, blocks = _inputs()
  order = np.array([2, 0, 1])
  np.testing.assert_allclose(losses.ijepa_loss(predictions[order], targets[order], blocks[order]),
                             losses.ijepa_loss(predictions, targets, blocks), rtol=1e-6)


def test_a_nan_anywhere_gives_a_nan_loss():
  for index in (0, 1):
    arrays = list(_inputs())
    arrays[index] = arrays[index].copy()
    arrays[index].reshape(-1)[-1] = np.nan  # outside any block too: the loss must not hide it
    assert np.isnan(losses.ijepa_loss(*arrays))


@pytest.mark.parametrize("shapes,message", [
    (((2, 3, 4), (2, 3, 4), (2, 3)), r"predictions must be \(N, M, P, D\)"),
    (((2, 2, 3, 4), (2, 3, 5), (2, 2, 3)), r"targets must be \(N, P, D\) = \(2, 3, 4\)"),
    (((2, 2, 3, 4), (2, 3, 4), (2, 3)), r"blocks must be \(N, M, P\) = \(2, 2, 3\)"),
])
def test_wrong_shapes_are_named(shapes, message):
  with pytest.raises(ValueError, match=message):
    losses.ijepa_loss(*(jnp.ones(shape) for shape in shapes))
