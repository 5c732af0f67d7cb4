"""I-JEPA's masks and predictor (Assran et al., "Self-Supervised Learning from Images with a Joint-Embedding
Predictive Architecture", CVPR 2023).

Per image, `multi_block_masks` draws M target blocks and one large context
block with the targets cut out, on the ViT's patch grid. The context encoder
(the online ViT) sees the context patches only (`VisionTransformer.tokens(x,
visible=context)`); the target encoder (its EMA) sees the whole image. The
`IJEPAPredictor`, a narrow transformer, receives the context tokens and a
learned mask token at each position of one target block, both with fixed
sine-cosine positions, and predicts the target encoder's tokens there.

Shapes are static under `jit` while the blocks' areas vary, so the context and
the target blocks are boolean masks over the whole grid and hidden tokens are
kept out of attention (`key_mask`) instead of being dropped: the outputs at
the visible positions are exactly those of the visible tokens alone, at the
cost of computing every position.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import vit
from jax_ssl.models.mae import sincos_position_embedding


def _block_side_lengths(key: jax.Array, grid_size: int, scale: tuple[float, float],
                        aspect: tuple[float, float]) -> tuple[jax.Array, jax.Array]:
  """A block's (height, width) in patches: area `s g^2`, aspect `a = h / w`, s and a uniform in their ranges.

  Rounded to whole patches, at least 1 and at most g - 1 per side (a block never covers a whole side).
  """
  scale_key, aspect_key = jax.random.split(key)
  area = grid_size**2 * jax.random.uniform(scale_key, (), minval=scale[0], maxval=scale[1])
  ratio = jax.random.uniform(aspect_key, (), minval=aspect[0], maxval=aspect[1])
  largest = max(grid_size - 1, 1)
  height = jnp.clip(jnp.round(jnp.sqrt(area * ratio)), 1, largest).astype(jnp.int32)
  width = jnp.clip(jnp.round(jnp.sqrt(area / ratio)), 1, largest).astype(jnp.int32)
  return height, width


def _place_blocks(key: jax.Array, shape: tuple[int, ...], grid_size: int, height: jax.Array,
                  width: jax.Array) -> jax.Array:
  """Boolean `shape + (g * g,)` masks of (height, width) blocks, each at a uniform position on the grid."""
  row_key, column_key = jax.random.split(key)
  top = jax.random.randint(row_key, shape, 0, grid_size - height + 1)
  left = jax.random.randint(column_key, shape, 0, grid_size - width + 1)
  rows, columns = jnp.divmod(jnp.arange(grid_size**2), grid_size)
  top, left = top[..., None], left[..., None]
  return (rows >= top) & (rows < top + height) & (columns >= left) & (columns < left + width)


def multi_block_masks(key: jax.Array, batch: int, grid_size: int, *, num_targets: int = 4,
                      target_scale: tuple[float, float] = (0.15, 0.2),
                      target_aspect: tuple[float, float] = (0.75, 1.5),
                      context_scale: tuple[float, float] = (0.85, 1.0)) -> tuple[jax.Array, jax.Array]:
  """I-JEPA's multi-block masking of a (g, g) patch grid: M target blocks and one context block per image.

  One target size is drawn per call (area fraction uniform in `target_scale`,
  aspect ratio height / width uniform in `target_aspect`) and shared by every
  target block of every image, as is one square context size (area fraction
  uniform in `context_scale`); each block's position is drawn per image. The
  context is its block minus the union of the image's targets, so the
  predictor never sees what it predicts. A context can be empty when the
  targets cover it (rare at the paper's scales; I-JEPA's code redraws).

  Args:
    key: PRNG key.
    batch: B, the number of images.
    grid_size: g, the patches per side.
    num_targets: M, the target blocks per image.
    target_scale: the range of a target block's area, as a fraction of the grid.
    target_aspect: the range of a target block's height / width.
    context_scale: the range of the context block's area, as a fraction of the grid.

  Returns:
    `(context, targets)`: bool `(B, g * g)` and bool `(B, M, g * g)` masks over the row-major grid.

  References:
    Assran et al., CVPR 2023, Sec. 3 ("Targets", "Context") and App. C: M = 4 targets of scale
    (0.15, 0.2) and aspect (0.75, 1.5), a context of scale (0.85, 1.0) and aspect 1. The official code
    draws one uniform number for both a block's scale and its aspect; we draw them independently, as
    the paper's text reads.
  """
  target_size_key, target_place_key, context_size_key, context_place_key = jax.random.split(key, 4)
  target_height, target_width = _block_side_lengths(target_size_key, grid_size, target_scale, target_aspect)
  targets = _place_blocks(target_place_key, (batch, num_targets), grid_size, target_height, target_width)
  context_height, context_width = _block_side_lengths(context_size_key, grid_size, context_scale, (1.0, 1.0))
  context = _place_blocks(context_place_key, (batch,), grid_size, context_height, context_width)
  return context & ~jnp.any(targets, axis=1), targets


def standardize_tokens(tokens: jax.Array) -> jax.Array:
  """Each token normalised over its features to mean 0 and variance 1 (a LayerNorm without parameters).

  I-JEPA's official code applies it to the target encoder's output before the loss; the epsilon is
  LayerNorm's default, 1e-6 here as in our ViTs.

  Args:
    tokens: `(..., D)` tokens.

  Returns:
    float32 tokens of the same shape.
  """
  tokens = tokens.astype(jnp.float32)
  mean = tokens.mean(axis=-1, keepdims=True)
  variance = jnp.square(tokens - mean).mean(axis=-1, keepdims=True)
  return (tokens - mean) * jax.lax.rsqrt(variance + vit.LAYER_NORM_EPSILON)


class IJEPAPredictor(nnx.Module):
  """I-JEPA's predictor: context tokens + mask tokens at one target block -> the target encoder's tokens there.

  The context encoder's patch tokens are mapped to `width`, a learned mask
  token takes every position of the target block, fixed 2-D sine-cosine
  positions are added to both, and `depth` pre-norm blocks attend over the
  context and that block only; a final LayerNorm and a Linear map back to the
  encoder's width. Each of the M target blocks is predicted separately, as in
  the paper (the blocks are batched).

  Args:
    in_features: the encoder's width.
    grid_size: patches per side of the images it predicts for.
    width, depth, num_heads: the predictor's transformer (I-JEPA: width 384, depth 12, the encoder's
      number of heads).
    mlp_ratio: the blocks' feed-forward width over `width`.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  References:
    Assran et al., CVPR 2023, Sec. 3 ("Prediction") and App. A.1.
  """

  def __init__(self, in_features: int, *, grid_size: int, width: int = 384, depth: int = 12, num_heads: int = 12,
               mlp_ratio: float = 4.0, dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if width % 4 or width % num_heads:
      raise ValueError(f"the predictor's width ({width}) must be a multiple of 4 and of num_heads ({num_heads}).")
    self.grid_size = grid_size
    self.width = width
    self.out_features: int = in_features
    self.embed = nnx.Linear(in_features, width, kernel_init=jax.nn.initializers.xavier_uniform(), dtype=dtype,
                            rngs=rngs)
    self.mask_token = nnx.Param(jax.nn.initializers.truncated_normal(0.02)(rngs.params(), (1, 1, 1, width),
                                                                            jnp.float32))
    self.blocks = nnx.List([vit.EncoderBlock(width, num_heads, mlp_ratio, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(width, epsilon=vit.LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    self.predict = nnx.Linear(width, in_features, kernel_init=jax.nn.initializers.xavier_uniform(), dtype=dtype,
                              rngs=rngs)

  def __call__(self, tokens: jax.Array, context: jax.Array, targets: jax.Array) -> jax.Array:
    """`(B, P, in_features)` context-encoder patch tokens -> `(B, M, P, in_features)` predictions.

    Args:
      tokens: the context encoder's patch tokens on the whole grid (CLS dropped); only the `context`
        positions are read.
      context: `(B, P)` bool, the context patches.
      targets: `(B, M, P)` bool, the target blocks.

    Returns:
      float32 predictions for every position of every block's grid; those inside `targets[:, m]` are
      block m's predictions, the others are not meaningful.
    """
    batch, num_patches, _ = tokens.shape
    num_targets = targets.shape[1]
    positions = jnp.asarray(sincos_position_embedding(self.grid_size, self.width))
    x = self.embed(tokens)
    positions = positions.astype(x.dtype)
    context_tokens = jnp.broadcast_to((x + positions)[:, None], (batch, num_targets, num_patches, self.width))
    mask_tokens = self.mask_token[...].astype(x.dtype) + positions
    x = jnp.where(targets[..., None], mask_tokens, context_tokens).reshape(-1, num_patches, self.width)
    key_mask = (context[:, None] | targets).reshape(-1, num_patches)
    for block in self.blocks:
      x = block(x, None, key_mask)
    predictions = self.predict(self.norm(x)).astype(jnp.float32)
    return predictions.reshape(batch, num_targets, num_patches, self.out_features)
