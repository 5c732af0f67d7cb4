"""I-JEPA's loss: the predictor's error on the target encoder's tokens inside each target block."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike


def ijepa_loss(predictions: ArrayLike, targets: ArrayLike, blocks: ArrayLike) -> jax.Array:
  """`sum_{n,m,p} B[n,m,p] mean_j (pred[n,m,p,j] - target[n,p,j])^2 / sum B`: the mean squared error over the blocks.

  Every target block's every patch counts once, each coordinate of its
  representation alike. When all blocks have the same number of patches (as
  `models.ijepa.multi_block_masks` draws them) this is the paper's Eq. (1),
  the mean over the M blocks of the summed squared L2 distances, divided by
  the block size and the width: a fixed scale that keeps the loss's size
  independent of both. (The official code uses a smooth-L1 distance instead.)

  Args:
    predictions: (N, M, P, D) the predictor's tokens for each of the M blocks on the whole grid.
    targets: (N, P, D) the target encoder's tokens, no gradient.
    blocks: (N, M, P), 1 (or True) inside block m, 0 elsewhere; at least one patch in all.

  Returns:
    The scalar loss (NaN when any input holds a NaN).

  Raises:
    ValueError: if the shapes do not match as above.

  References:
    Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas, "Self-Supervised Learning from
    Images with a Joint-Embedding Predictive Architecture", CVPR 2023, Sec. 3, Eq. (1).
  """
  predictions = jnp.asarray(predictions, jnp.float32)
  targets = lax.stop_gradient(jnp.asarray(targets, jnp.float32))
  blocks = jnp.asarray(blocks, jnp.float32)
  if predictions.ndim != 4:
    raise ValueError(f"predictions must be (N, M, P, D), one token per block and patch; got {predictions.shape}.")
  batch, num_blocks, num_patches, width = predictions.shape
  if targets.shape != (batch, num_patches, width):
    raise ValueError(f"targets must be (N, P, D) = {(batch, num_patches, width)}; got {targets.shape}.")
  if blocks.shape != (batch, num_blocks, num_patches):
    raise ValueError(f"blocks must be (N, M, P) = {(batch, num_blocks, num_patches)}; got {blocks.shape}.")
  per_patch = jnp.mean(jnp.square(predictions - targets[:, None]), axis=-1)
  return jnp.sum(per_patch * blocks) / jnp.sum(blocks)
