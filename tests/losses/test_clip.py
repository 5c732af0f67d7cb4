"""CLIP's loss against float64 numpy, its gradients and its learned scale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _pair(n, d, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.standard_normal((n, d)) * rng.uniform(0.5, 2, d)
  return images.astype(np.float32), (images + 0.7 * rng.standard_normal((n, d))).astype(np.float32)


def ref_clip(images, texts, log_scale, max_scale=100.0):
  """Each image's caption among all captions and each caption's image among all images, loop by loop."""
  images, texts = (np.asarray(x, np.float64) for x in (images, texts))
  images = images / np.linalg.norm(images, axis=1, keepdims=True)
  texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
  scale = min(np.exp(log_scale), max_scale)
  n = len(images)
  image_to_text = text_to_image = 0.0
  for i in range(n):
    row = [scale * images[i] @ texts[j] for j in range(n)]
    image_to_text -= row[i] - np.log(np.sum(np.exp(row)))
    column = [scale * images[j] @ texts[i] for j in range(n)]
    text_to_image -= column[i] - np.log(np.sum(np.exp(column)))
  return (image_to_text + text_to_image) / (2 * n)


@pytest.mark.parametrize("n,d", [(1, 3), (2, 1), (16, 8), (48, 32)])
@pytest.mark.parametrize("log_scale", [0.0, np.log(1 / 0.07), 5.0])
def test_clip_loss_matches_reference(n, d, log_scale):
  images, texts = _pair(n, d, seed=n + d)
  np.testing.assert_allclose(jax.jit(losses.clip_loss)(images, texts, log_scale), ref_clip(images, texts, log_scale),
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(losses.clip_loss(images, texts, log_scale, max_logit_scale=20.0),
                             ref_clip(images, texts, log_scale, 20.0), rtol=1e-4, atol=1e-6)


def test_gradients_match_finite_differences():
  images, texts = _pair(6, 4, seed=1)
  log_scale = np.log(1 / 0.07)
  assert_grad_matches_reference(lambda z: losses.clip_loss(z, texts, log_scale),
                                lambda z: ref_clip(z, texts, log_scale), images)
  assert_grad_matches_reference(lambda z: losses.clip_loss(images, z, log_scale),
                                lambda z: ref_clip(images, z, log_scale), texts)
  # The scale's gradient below the cap, by central differences; zero above it (CLIP clamps the parameter).
  grad_scale = jax.grad(losses.clip_loss, argnums=2)
  expected = (ref_clip(images, texts, 2.0 + 1e-6) - ref_clip(images, texts, 2.0 - 1e-6)) / 2e-6
  np.testing.assert_allclose(grad_scale(images, texts, jnp.float32(2.0)), expected, rtol=1e-3)
  assert grad_scale(images, texts, jnp.float32(np.log(100.0) + 0.5)) == 0.0


def test_symmetric_in_the_modalities_and_invariant_to_permuting_pairs():
  images, texts = _pair(12, 5, seed=2)
  np.testing.assert_allclose(losses.clip_loss(images, texts, 1.5), losses.clip_loss(texts, images, 1.5), rtol=1e-6)
  perm = np.random.default_rng(0).permutation(12)
  np.testing.assert_allclose(losses.clip_loss(images[perm], texts[perm], 1.5), losses.clip_loss(images, texts, 1.5),
                             rtol=1e-5)
  # Breaking the pairing (captions shuffled against their images) raises the loss of well-matched pairs.
  assert losses.clip_loss(images, texts[perm], 3.0) > losses.clip_loss(images, texts, 3.0)


def test_bad_inputs_are_named():
  images, texts = _pair(4, 3)
  with pytest.raises(ValueError, match="must have the same shape"):
    losses.clip_loss(images, texts[:, :2], 0.0)
  with pytest.raises(ValueError, match="log_logit_scale must be a scalar"):
    losses.clip_loss(images, texts, np.zeros(2))
