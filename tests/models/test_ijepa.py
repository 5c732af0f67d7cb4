"""I-JEPA's pieces: the multi-block masks, attention restricted to the context, the predictor's inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jax_ssl import models
from jax_ssl.models import ijepa


def _rectangle(mask, grid):
  """(top, left, height, width) of a mask that must be one filled rectangle on the grid."""
  rows, columns = np.nonzero(mask.reshape(grid, grid))
  top, left = rows.min(), columns.min()
  height, width = rows.max() - top + 1, columns.max() - left + 1
  assert mask.sum() == height * width, "a block is one filled rectangle"
  return top, left, height, width


@pytest.mark.parametrize("grid", [8, 14])
def test_multi_block_masks_draw_equal_target_rectangles_and_cut_them_from_the_context(grid):
  for seed in range(6):
    context, targets = (np.asarray(a) for a in models.multi_block_masks(jax.random.key(seed), 5, grid))
    assert context.shape == (5, grid * grid) and targets.shape == (5, 4, grid * grid)
    assert context.dtype == bool and targets.dtype == bool
    assert not np.any(context[:, None] & targets), "the context never holds a target patch"
    sizes = {_rectangle(targets[n, m], grid)[2:] for n in range(5) for m in range(4)}
    assert len(sizes) == 1, "one target size per draw, shared by every block of every image"
    (height, width), = sizes
    area = grid * grid * np.array([0.15, 0.2])
    assert round(np.sqrt(area[0] * 0.75)) <= height <= round(np.sqrt(area[1] * 1.5)) + 1
    assert round(np.sqrt(area[0] / 1.5)) <= width <= round(np.sqrt(area[1] / 0.75)) + 1
  # With one-patch targets, the context is visibly its square block (area fraction 0.85-1, at most
  # grid - 1 a side) minus at most 4 patches.
  context, targets = (np.asarray(a) for a in models.multi_block_masks(jax.random.key(9), 5, grid,
                                                                       target_scale=(1e-3, 1e-3)))
  for n in range(5):
    rows, columns = np.nonzero(context[n].reshape(grid, grid))
    side = rows.max() - rows.min() + 1
    assert columns.max() - columns.min() + 1 == side
    assert round(np.sqrt(0.85) * grid) <= side <= grid - 1
    assert side * side - 4 <= context[n].sum() <= side * side
  positions = {_rectangle(t, 8)[:2] for t in np.asarray(models.multi_block_masks(jax.random.key(0), 5, 8)[1])[:, 0]}
  assert len(positions) > 1, "each image places its blocks itself"


def test_block_sides_follow_the_drawn_scale_and_aspect():
  heights, widths = zip(*(ijepa._block_side_lengths(jax.random.key(seed), 16, (0.15, 0.2), (0.75, 1.5))
                          for seed in range(200)))
  heights, widths = np.array(heights), np.array(widths)
  area = heights * widths / 256
  assert 0.1 <= area.min() and area.max() <= 0.26  # rounding to whole patches moves the area a little
  ratio = heights / widths
  assert ratio.min() >= 0.6 and ratio.max() <= 1.8 and ratio.std() > 0.05
  # A scale of 1 still leaves the block a patch short of the grid on each side.
  assert ijepa._block_side_lengths(jax.random.key(0), 4, (1.0, 1.0), (1.0, 1.0)) == (3, 3)


def test_attention_restricted_to_the_context_equals_encoding_the_context_alone():
  backbone = models.vision_transformer("micro", patch_size=4, image_size=16, rngs=nnx.Rngs(0))
  images = jnp.asarray(np.random.default_rng(1).standard_normal((2, 16, 16, 3)), jnp.float32)
  keep = jnp.array([[0, 2, 5, 6, 9, 15], [1, 3, 4, 8, 10, 12]], jnp.int32)
  visible = jnp.zeros((2, 16), bool).at[jnp.arange(2)[:, None], keep].set(True)
  # One compilation for both encodings (op-by-op dispatch is the slow part on a CPU).
  masked, alone = nnx.jit(lambda model: (model.tokens(images, visible=visible), model.tokens(images, keep=keep)))(
      backbone)
  np.testing.assert_allclose(masked[:, 0], alone[:, 0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(jnp.take_along_axis(masked[:, 1:], keep[..., None], axis=1), alone[:, 1:],
                             rtol=1e-5, atol=1e-5)
  # The mean pool over the visible patches is the mean of the context's tokens.
  pooled = models.vision_transformer("micro", patch_size=4, image_size=16, pool="mean", rngs=nnx.Rngs(0))
  np.testing.assert_allclose(pooled.pool_tokens(masked, visible), alone[:, 1:].mean(axis=1), rtol=1e-5, atol=1e-5)
  pooled_call, tokens = nnx.jit(lambda model: (model(images), model.tokens(images)))(pooled)
  np.testing.assert_allclose(pooled_call, tokens[:, 1:].mean(axis=1), rtol=1e-5, atol=1e-6)


def test_the_predictor_reads_the_context_only_and_each_block_on_its_own():
  predictor = models.IJEPAPredictor(8, grid_size=4, width=16, depth=2, num_heads=2, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(2)
  tokens = jnp.asarray(rng.standard_normal((2, 16, 8)), jnp.float32)
  context = jnp.asarray(np.tile(np.arange(16) < 8, (2, 1)))
  targets = np.zeros((2, 3, 16), bool)
  targets[:, 0, [10, 11]] = targets[:, 1, [14, 15]] = targets[:, 2, [12]] = True
  predict = nnx.jit(lambda model, tokens, blocks: model(tokens, context, blocks))
  predictions = predict(predictor, tokens, jnp.asarray(targets))
  assert predictions.shape == (2, 3, 16, 8) and predictions.dtype == jnp.float32
  # Tokens outside the context (the targets' and the rest's) do not reach any prediction.
  outside = tokens.at[:, 8:].set(jnp.asarray(rng.standard_normal((2, 8, 8)), jnp.float32))
  np.testing.assert_allclose(predict(predictor, outside, jnp.asarray(targets))[jnp.asarray(targets)],
                             predictions[jnp.asarray(targets)], rtol=1e-5, atol=1e-5)
  # Moving block 2 leaves blocks 0 and 1 as they were; the context's tokens do change the predictions.
  moved = targets.copy()
  moved[:, 2] = False
  moved[:, 2, 13] = True
  np.testing.assert_allclose(predict(predictor, tokens, jnp.asarray(moved))[:, :2],
                             predictions[:, :2], rtol=1e-5, atol=1e-5)
  inside = tokens.at[:, :8].multiply(2.0)
  assert not np.allclose(predict(predictor, inside, jnp.asarray(targets))[:, 0, 10], predictions[:, 0, 10])


def test_standardized_tokens_have_zero_mean_and_unit_variance():
  tokens = jnp.asarray(np.random.default_rng(3).normal(4.0, 3.0, (2, 5, 16)), jnp.bfloat16)
  out = np.asarray(ijepa.standardize_tokens(tokens), np.float64)
  np.testing.assert_allclose(out.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.var(-1), 1.0, rtol=1e-4)
