"""MAE's pieces: patch order, masks, positions, the encoder on visible patches, the decoder's layout."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl import models
from jax_ssl.models import mae


def test_patchify_follows_the_vit_grid_row_major():
  images = np.random.default_rng(0).standard_normal((2, 8, 12, 3)).astype(np.float32)
  patches = np.asarray(models.patchify(jnp.asarray(images), 4))
  assert patches.shape == (2, 6, 48)
  for row in range(2):
    for column in range(3):
      expected = images[:, 4 * row:4 * row + 4, 4 * column:4 * column + 4, :].reshape(2, -1)
      np.testing.assert_array_equal(patches[:, 3 * row + column], expected)


def test_random_keep_hides_the_ratio_of_each_images_patches():
  keep, mask = models.random_keep(jax.random.key(0), 5, 16, 0.75)
  keep, mask = np.asarray(keep), np.asarray(mask)
  assert keep.shape == (5, 4) and mask.shape == (5, 16)
  for row in range(5):
    assert np.all(np.diff(keep[row]) > 0)  # distinct, in grid order
    np.testing.assert_array_equal(np.flatnonzero(mask[row] == 0), keep[row])
  assert len({tuple(row) for row in keep}) > 1, "each image draws its own patches"
  other, _ = models.random_keep(jax.random.key(1), 5, 16, 0.75)
  assert not np.array_equal(other, keep)
  # However few the patches, one is hidden and one stays visible: the loss always has patches to score.
  assert np.asarray(models.random_keep(jax.random.key(0), 2, 4, 0.1)[1]).sum(axis=1).tolist() == [1.0, 1.0]
  assert np.asarray(models.random_keep(jax.random.key(0), 2, 4, 0.99)[0]).shape == (2, 1)


def test_sincos_positions_are_distinct_and_bounded():
  positions = mae.sincos_position_embedding(4, 16)
  assert positions.shape == (16, 16) and np.abs(positions).max() <= 1.0
  # Row 0, column 0: sin 0 = 0 and cos 0 = 1 in both halves.
  np.testing.assert_allclose(positions[0], np.tile(np.repeat([0.0, 1.0], 4), 2), atol=1e-7)
  assert len({tuple(np.round(row, 6)) for row in positions}) == 16


def test_encoding_the_visible_patches_equals_the_full_encoding_when_none_is_hidden():
  backbone = models.vision_transformer("tiny", patch_size=4, image_size=8, rngs=nnx.Rngs(0))
  images = jnp.asarray(np.random.default_rng(1).standard_normal((2, 8, 8, 3)), jnp.float32)
  every = jnp.tile(jnp.arange(4, dtype=jnp.int32), (2, 1))
  np.testing.assert_allclose(backbone.tokens(images, keep=every), backbone.tokens(images), rtol=1e-6, atol=1e-6)
  # With patches hidden, the visible ones are encoded without them: another result than their full-image tokens.
  some = jnp.array([[0, 3], [1, 2]], jnp.int32)
  assert backbone.tokens(images, keep=some).shape == (2, 3, 192)


def test_decoder_reconstructs_every_patch_and_sees_the_visible_ones_where_they_were():
  decoder = models.MAEDecoder(6, grid_size=2, patch_size=4, width=8, depth=1, num_heads=2, rngs=nnx.Rngs(0))
  tokens = jnp.asarray(np.random.default_rng(2).standard_normal((1, 3, 6)), jnp.float32)
  output = decoder(tokens, jnp.array([[0, 3]], jnp.int32))
  assert output.shape == (1, 4, 48)
  # The same two visible tokens placed at other grid positions give another reconstruction.
  moved = decoder(tokens, jnp.array([[1, 2]], jnp.int32))
  assert not np.allclose(output, moved)
