"""Masked autoencoding (He et al., "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022).

A random 75% of each image's patches is hidden (`random_keep`); the ViT
encodes the visible ones only (`VisionTransformer.tokens(x, keep=...)`); the
`MAEDecoder` puts its embeddings of them back on the grid beside a learned
mask token at every hidden position, adds fixed 2-D sine-cosine positions,
runs a narrow transformer and predicts every patch's pixels, which the loss
compares with `patchify` of the image on the hidden patches.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jax_ssl.models import vit


def patchify(images: jax.Array, patch_size: int) -> jax.Array:
  """(B, H, W, C) -> (B, (H / p) * (W / p), p * p * C): the patches in the ViT's row-major grid order.

  Each patch's values run over its rows, then columns, then channels.

  Args:
    images: `(B, H, W, C)` images, H and W multiples of `patch_size`.
    patch_size: p, the side of the square patches.

  Returns:
    The patches, `(B, P, p * p * C)`.
  """
  batch, height, width, channels = images.shape
  p = patch_size
  grid = images.reshape(batch, height // p, p, width // p, p, channels).transpose(0, 1, 3, 2, 4, 5)
  return grid.reshape(batch, (height // p) * (width // p), p * p * channels)


def random_keep(key: jax.Array, batch: int, num_patches: int, mask_ratio: float) -> tuple[jax.Array, jax.Array]:
  """Each image's visible patches, drawn uniformly without replacement, and its mask.

  K = `num_patches - round(num_patches * mask_ratio)` patches stay visible, at least one, and at least one
  is hidden (num_patches >= 2).

  Args:
    key: PRNG key.
    batch: B, the number of images.
    num_patches: P >= 2, the patches per image.
    mask_ratio: the fraction of patches hidden, in (0, 1).

  Returns:
    `(keep, mask)`: int32 `(B, K)` indices of the visible patches in increasing order, and float32
    `(B, P)`, 1 on the hidden patches and 0 on the visible ones.
  """
  num_keep = min(max(1, num_patches - int(round(num_patches * mask_ratio))), num_patches - 1)
  noise = jax.random.uniform(key, (batch, num_patches))
  keep = jnp.sort(jnp.argsort(noise, axis=1)[:, :num_keep], axis=1).astype(jnp.int32)
  visible = jnp.zeros((batch, num_patches), jnp.float32).at[jnp.arange(batch)[:, None], keep].set(1.0)
  return keep, 1.0 - visible


def sincos_position_embedding(grid_size: int, width: int) -> np.ndarray:
  """Fixed 2-D sine-cosine positions of a (g, g) patch grid: (g * g, width), row-major.

  Half of the width encodes the row, half the column; each half is
  `[sin(pos w_i), cos(pos w_i)]` over the frequencies `w_i = 10000^(-i / (width / 4))`.

  Args:
    grid_size: g, the patches per side.
    width: the embedding width, a multiple of 4.

  Returns:
    float32 `(g * g, width)` positions.
  """
  quarter = width // 4
  frequencies = 1.0 / 10000 ** (np.arange(quarter) / quarter)
  rows, columns = np.meshgrid(np.arange(grid_size), np.arange(grid_size), indexing="ij")

  def encode(positions):
    angles = positions.reshape(-1, 1) * frequencies[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

  return np.concatenate([encode(rows), encode(columns)], axis=1).astype(np.float32)


class MAEDecoder(nnx.Module):
  """MAE's decoder: visible-patch embeddings + mask tokens on the grid -> every patch's pixels.

  Args:
    in_features: the encoder's width.
    grid_size: patches per side of the images it reconstructs.
    patch_size: side of a patch.
    in_channels: channels of the images.
    width, depth, num_heads: the decoder's transformer (MAE: 512, 8, 16).
    mlp_ratio: the blocks' feed-forward width over `width`.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  References:
    He et al., CVPR 2022, Sec. 3 ("MAE decoder") and App. A.1.
  """

  def __init__(self, in_features: int, *, grid_size: int, patch_size: int, in_channels: int = 3,
               width: int = 512, depth: int = 8, num_heads: int = 16, mlp_ratio: float = 4.0,
               dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if width % 4 or width % num_heads:
      raise ValueError(f"the decoder's width ({width}) must be a multiple of 4 and of num_heads ({num_heads}).")
    self.grid_size = grid_size
    self.width = width
    self.out_features: int = patch_size * patch_size * in_channels
    self.embed = nnx.Linear(in_features, width, kernel_init=jax.nn.initializers.xavier_uniform(), dtype=dtype,
                            rngs=rngs)
    self.mask_token = nnx.Param(jax.nn.initializers.normal(0.02)(rngs.params(), (1, 1, width), jnp.float32))
    self.blocks = nnx.List([vit.EncoderBlock(width, num_heads, mlp_ratio, dtype=dtype, rngs=rngs)
                            for _ in range(depth)])
    self.norm = nnx.LayerNorm(width, epsilon=vit.LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)
    self.predict = nnx.Linear(width, self.out_features, kernel_init=jax.nn.initializers.xavier_uniform(),
                              dtype=dtype, rngs=rngs)

  def __call__(self, tokens: jax.Array, keep: jax.Array) -> jax.Array:
    """`(B, 1 + K, in_features)` encoder tokens (CLS first) of the `keep` patches -> `(B, P, p * p * C)` pixels.

    Args:
      tokens: the encoder's output on the visible patches, CLS first.
      keep: `(B, K)` grid indices of the visible patches, in the order of `tokens[:, 1:]`.

    Returns:
      The predicted pixels of every patch of the grid, `(B, g * g, p * p * C)`.
    """
    x = self.embed(tokens)
    batch, num_patches = x.shape[0], self.grid_size**2
    grid = jnp.broadcast_to(self.mask_token[...].astype(x.dtype), (batch, num_patches, self.width))
    grid = grid.at[jnp.arange(batch)[:, None], keep].set(x[:, 1:])
    positions = jnp.asarray(sincos_position_embedding(self.grid_size, self.width), x.dtype)
    # MAE's CLS position is zero: the CLS token goes on unchanged.
    x = jnp.concatenate([x[:, :1], grid + positions[None]], axis=1)
    for block in self.blocks:
      x = block(x)
    return self.predict(self.norm(x))[:, 1:].astype(jnp.float32)
