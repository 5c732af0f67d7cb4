"""Vision Transformer backbones (Dosovitskiy et al., "An Image is Worth 16x16 Words", ICLR 2021).

Patch embedding (a conv with kernel = stride = patch size), a learned CLS
token, a learned position embedding for the CLS token plus the patch grid of
`image_size`, pre-norm transformer blocks, a final LayerNorm, no head.
`__call__` returns the normalised CLS token (or, with `pool="mean"`, the mean
normalised patch token), (B, width); `tokens` returns every normalised token
for methods that need the patch features.

Stochastic depth (Huang et al., ECCV 2016) as in DeiT and timm: with
`drop_path_rate` r > 0, block i of L drops each residual branch per sample
with probability `r * i / (L - 1)` and scales the kept ones by the inverse
keep rate. It needs an explicit `key` (`__call__(x, key=...)`); without one
the network is deterministic, which is how it evaluates.

Inputs of another size than `image_size` (multi-crop local views) get the grid
part of the position embedding resized bicubically to their own patch grid.
Shapes are static under `jit`, so each input size compiles once.

Init: trunc-normal(0.02) for the CLS token and position embedding, Xavier
uniform for every Linear and for the patch projection (seen as a
(patch * patch * C, width) matrix), zero biases, LayerNorms at (1, 0).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

LAYER_NORM_EPSILON = 1e-6
POOLS = ("cls", "mean")

# (width, depth, heads) of the standard sizes; Tiny is DeiT's. Micro is no paper's: two narrow blocks for
# smoke runs and tests on a CPU.
VIT_SIZES = {
    "micro": (64, 2, 2),
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
    "large": (1024, 24, 16),
}

_xavier = jax.nn.initializers.xavier_uniform()
_trunc_normal_002 = jax.nn.initializers.truncated_normal(0.02)


def _linear(in_features: int, out_features: int, *, dtype: Any, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(in_features, out_features, kernel_init=_xavier, dtype=dtype, rngs=rngs)


def _layer_norm(width: int, *, dtype: Any, rngs: nnx.Rngs) -> nnx.LayerNorm:
  return nnx.LayerNorm(width, epsilon=LAYER_NORM_EPSILON, dtype=dtype, rngs=rngs)


class SelfAttention(nnx.Module):
  """Multi-head self-attention with one fused qkv projection (with bias) and an output projection.

  (B, N, width) -> (B, N, width). Per head h with size d = width / heads:
  `softmax(q_h k_h^T / sqrt(d)) v_h`. The qkv output columns are
  [queries | keys | values], each laid out head after head. Logits and softmax
  are float32 even for bfloat16 activations (`jax.nn.dot_product_attention`).
  A `key_mask` hides tokens as keys: every query attends to the visible
  tokens only, so their outputs are what the visible tokens alone would give.
  """

  def __init__(self, width: int, num_heads: int, *, dtype: Any, rngs: nnx.Rngs):
    if width % num_heads:
      raise ValueError(f"width ({width}) must be divisible by num_heads ({num_heads}).")
    self.num_heads = num_heads
    self.qkv = _linear(width, 3 * width, dtype=dtype, rngs=rngs)
    self.proj = _linear(width, width, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, key_mask: jax.Array | None = None) -> jax.Array:
    batch, length, width = x.shape
    qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, width // self.num_heads)
    query, key, value = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    mask = None if key_mask is None else key_mask[:, None, None, :]  # (B, heads, queries, keys), broadcast
    attended = jax.nn.dot_product_attention(query, key, value, mask=mask)
    return self.proj(attended.reshape(batch, length, width))


class MlpBlock(nnx.Module):
  """The transformer feed-forward: Linear(width, ratio * width), exact GELU, Linear back to width."""

  def __init__(self, width: int, hidden: int, *, dtype: Any, rngs: nnx.Rngs):
    self.fc1 = _linear(width, hidden, dtype=dtype, rngs=rngs)
    self.fc2 = _linear(hidden, width, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.fc2(jax.nn.gelu(self.fc1(x), approximate=False))


def drop_path(branch: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
  """Stochastic depth: zero each sample's residual `branch` with probability `rate`, scale the rest by 1 / (1 - rate).

  Identity when `key` is None or `rate` is 0.

  Args:
    branch: the residual branch's output, `(B, ...)`; one keep/drop draw per entry of the leading axis.
    rate: drop probability, in [0, 1).
    key: PRNG key for the per-sample draws, or None for the deterministic (evaluation) network.

  Returns:
    An array of `branch`'s shape and dtype: each sample either zeroed or scaled by `1 / (1 - rate)`.
  """
  if key is None or rate == 0.0:
    return branch
  keep = 1.0 - rate
  kept = jax.random.bernoulli(key, keep, (branch.shape[0],) + (1,) * (branch.ndim - 1))
  return jnp.where(kept, branch / jnp.asarray(keep, branch.dtype), jnp.zeros((), branch.dtype))


class EncoderBlock(nnx.Module):
  """Pre-norm transformer block: `x + attn(ln1(x))`, then `x + mlp(ln2(x))`. (B, N, width) -> same.

  With a key, each residual branch goes through `drop_path` at `drop_rate`.
  `key_mask` (B, N) bool: the tokens other tokens may attend to (all by default).
  """

  def __init__(self, width: int, num_heads: int, mlp_ratio: float, *, dtype: Any, rngs: nnx.Rngs,
               drop_rate: float = 0.0):
    self.norm1 = _layer_norm(width, dtype=dtype, rngs=rngs)
    self.attn = SelfAttention(width, num_heads, dtype=dtype, rngs=rngs)
    self.norm2 = _layer_norm(width, dtype=dtype, rngs=rngs)
    self.mlp = MlpBlock(width, int(width * mlp_ratio), dtype=dtype, rngs=rngs)
    self.drop_rate = drop_rate

  def __call__(self, x: jax.Array, key: jax.Array | None = None, key_mask: jax.Array | None = None) -> jax.Array:
    attention_key, mlp_key = (None, None) if key is None else jax.random.split(key)
    x = x + drop_path(self.attn(self.norm1(x), key_mask), self.drop_rate, attention_key)
    return x + drop_path(self.mlp(self.norm2(x)), self.drop_rate, mlp_key)


class VisionTransformer(nnx.Module):
  """ViT trunk without head. (B, H, W, C) images -> (B, width) normalised CLS tokens.

  H and W must be multiples of `patch_size`; they need not equal `image_size`,
  which only sets the grid the position embedding is stored for,
  `(image_size / patch_size)^2` patches plus one CLS slot.

  Args:
    width, depth, num_heads: embedding width, number of blocks, attention heads.
    patch_size: side of the square patches.
    image_size: side of the square images the position embedding is made for.
    in_channels: channels of the input images.
    mlp_ratio: hidden width of the feed-forward as a multiple of `width`.
    drop_path_rate: stochastic depth of the last block (0 at the first, linear between), in [0, 1).
    pool: the representation `__call__` returns: "cls" (the CLS token) or "mean" (the mean of the
      patch tokens, as I-JEPA evaluates).
    dtype: computation dtype (activations); parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, *, width: int, depth: int, num_heads: int, patch_size: int = 16,
               image_size: int = 224, in_channels: int = 3, mlp_ratio: float = 4.0,
               drop_path_rate: float = 0.0, pool: str = "cls", dtype: Any = jnp.float32, rngs: nnx.Rngs):
    if patch_size < 1 or image_size % patch_size:
      raise ValueError(f"image_size ({image_size}) must be a multiple of patch_size ({patch_size}), "
                       "e.g. image_size=224 with patch_size=16.")
    if width % num_heads:
      raise ValueError(f"width ({width}) must be divisible by num_heads ({num_heads}).")
    if not 0.0 <= drop_path_rate < 1.0:
      raise ValueError(f"drop_path_rate must lie in [0, 1), got {drop_path_rate}.")
    if pool not in POOLS:
      raise ValueError(f"pool must be one of {POOLS}, got {pool!r}.")
    self.pool = pool
    self.patch_size = patch_size
    self.drop_path_rate = drop_path_rate
    self.grid_size = image_size // patch_size
    self.num_features: int = width
    # Xavier on the conv kernel seen as the (patch * patch * C, width) matrix it is.
    patch_init = jax.nn.initializers.xavier_uniform(in_axis=(0, 1, 2), out_axis=3)
    self.patch_embed = nnx.Conv(in_channels, width, (patch_size, patch_size), strides=patch_size,
                                padding="VALID", kernel_init=patch_init, dtype=dtype, rngs=rngs)
    self.cls_token = nnx.Param(_trunc_normal_002(rngs.params(), (1, 1, width), jnp.float32))
    self.pos_embed = nnx.Param(
        _trunc_normal_002(rngs.params(), (1, 1 + self.grid_size**2, width), jnp.float32))
    rates = [drop_path_rate * index / max(depth - 1, 1) for index in range(depth)]
    self.blocks = nnx.List([
        EncoderBlock(width, num_heads, mlp_ratio, dtype=dtype, rngs=rngs, drop_rate=rate) for rate in rates])
    self.norm = _layer_norm(width, dtype=dtype, rngs=rngs)

  def position_embedding(self, grid_height: int, grid_width: int) -> jax.Array:
    """The position embedding for a (gh, gw) patch grid: (1, 1 + gh * gw, width), float32.

    The stored embedding itself at the stored grid. Otherwise its grid part,
    seen as a (g, g, width) image, is resized to (gh, gw, width) with
    `jax.image.resize`'s bicubic (Keys) kernel and no anti-aliasing, so a
    smaller grid samples the stored one rather than blurring it (as PyTorch's
    default `interpolate` does); the CLS slot is kept as is.

    Args:
      grid_height: number of patch rows, gh.
      grid_width: number of patch columns, gw.

    Returns:
      `(1, 1 + gh * gw, width)` float32 embedding, the CLS slot first, then the grid in row-major order.
    """
    stored = self.pos_embed[...]
    if (grid_height, grid_width) == (self.grid_size, self.grid_size):
      return stored
    width = stored.shape[-1]
    grid = stored[:, 1:].reshape(1, self.grid_size, self.grid_size, width)
    grid = jax.image.resize(grid, (1, grid_height, grid_width, width), "bicubic", antialias=False)
    return jnp.concatenate([stored[:, :1], grid.reshape(1, grid_height * grid_width, width)], axis=1)

  def tokens(self, x: jax.Array, key: jax.Array | None = None, keep: jax.Array | None = None,
             visible: jax.Array | None = None) -> jax.Array:
    """(B, H, W, C) images -> (B, 1 + (H / p) * (W / p), width): CLS then patch tokens, final-normed.

    `key` enables stochastic depth (training); None is the deterministic network.
    `keep` runs the blocks on some patches only (MAE's encoder): each image's
    patches at those indices of the row-major grid, after their position
    embedding is added. `visible` keeps every patch in place but hides the
    others from attention (I-JEPA's context, whose size varies per image): the
    visible patches' tokens are then those of the visible patches alone.

    Args:
      x: `(B, H, W, C)` images, H and W multiples of `patch_size`.
      key: PRNG key for stochastic depth, or None.
      keep: `(B, K)` int indices of the patches each image keeps, or None for all of them.
      visible: `(B, P)` bool, the patches other tokens may attend to (the CLS token always may), or
        None for all of them.

    Returns:
      `(B, 1 + P, width)` tokens in the computation dtype: P = (H / p) * (W / p) patches, p being
      `patch_size`, or P = K with `keep`.

    Raises:
      ValueError: if `x` is not 4-D, or if H or W is not a multiple of `patch_size`.
    """
    if x.ndim != 4:
      raise ValueError(f"VisionTransformer expects (B, H, W, C) images, got shape {x.shape}.")
    height, width = x.shape[1:3]
    if height % self.patch_size or width % self.patch_size:
      raise ValueError(f"image sides ({height}, {width}) must be multiples of patch_size "
                       f"({self.patch_size}).")
    patches = self.patch_embed(x)
    batch, grid_height, grid_width, channels = patches.shape
    position = self.position_embedding(grid_height, grid_width).astype(patches.dtype)
    patches = patches.reshape(batch, grid_height * grid_width, channels) + position[:, 1:]
    if keep is not None:
      patches = jnp.take_along_axis(patches, keep[..., None], axis=1)
    cls = self.cls_token[...].astype(patches.dtype) + position[:, :1]
    tokens = jnp.concatenate([jnp.broadcast_to(cls, (batch, 1, channels)), patches], axis=1)
    key_mask = None if visible is None else jnp.concatenate([jnp.ones((batch, 1), bool), visible], axis=1)
    for index, block in enumerate(self.blocks):
      tokens = block(tokens, None if key is None else jax.random.fold_in(key, index), key_mask)
    return self.norm(tokens)

  def pool_tokens(self, tokens: jax.Array, visible: jax.Array | None = None) -> jax.Array:
    """`tokens`' (B, 1 + P, width) -> (B, width) representation: the CLS token, or the mean patch token.

    Args:
      tokens: the output of `tokens`.
      visible: `(B, P)` bool, the patches a mean pools over (all by default); unused by "cls".

    Returns:
      The `pool` representation in the computation dtype.
    """
    if self.pool == "cls":
      return tokens[:, 0]
    patches = tokens[:, 1:]
    if visible is None:
      return patches.mean(axis=1)
    weights = visible.astype(patches.dtype)[..., None]
    return (patches * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1)

  def feature_map(self, x: jax.Array) -> jax.Array:
    """(B, H, W, C) images -> (B, H / p, W / p, width): the final-normed patch tokens on their grid.

    Args:
      x: `(B, H, W, C)` images, H and W multiples of `patch_size`.

    Returns:
      The patch tokens (CLS dropped) in the computation dtype, where dense probes read them.
    """
    patches = self.tokens(x)[:, 1:]
    return patches.reshape(x.shape[0], x.shape[1] // self.patch_size, x.shape[2] // self.patch_size, -1)

  def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
    """(B, H, W, C) images -> (B, width): the final-normed CLS or mean patch token (`pool`; `key`: see `tokens`)."""
    return self.pool_tokens(self.tokens(x, key))


def vision_transformer(size: str, *, patch_size: int = 16, image_size: int = 224,
                       in_channels: int = 3, drop_path_rate: float = 0.0, pool: str = "cls",
                       dtype: Any = jnp.float32, rngs: nnx.Rngs) -> VisionTransformer:
  """A ViT of a named size: `size` in `VIT_SIZES` ("micro" for tests, "tiny", "small", "base", "large").

  ViT-B/16 at 224 has 85,798,656 parameters: patch projection 16*16*3*768 + 768,
  CLS token 768, position embedding 197*768, 12 blocks of 7,087,872, final
  LayerNorm 2*768.

  Args:
    size: one of `VIT_SIZES`, which fixes width, depth and number of heads.
    patch_size: side of the square patches.
    image_size: side of the square images the position embedding is made for.
    in_channels: channels of the input images.
    drop_path_rate: stochastic depth of the last block, in [0, 1).
    pool: "cls" or "mean", the representation `__call__` returns.
    dtype: computation dtype (activations); parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  Returns:
    A `VisionTransformer` mapping `(B, H, W, in_channels)` images to `(B, width)` representations.

  Raises:
    ValueError: for an unknown `size`, an `image_size` that is not a multiple of `patch_size`, or a
      `drop_path_rate` outside [0, 1).

  References:
    Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", ICLR 2021.
  """
  if size not in VIT_SIZES:
    raise ValueError(f"size must be one of {tuple(VIT_SIZES)}, got {size!r}.")
  width, depth, num_heads = VIT_SIZES[size]
  return VisionTransformer(width=width, depth=depth, num_heads=num_heads, patch_size=patch_size,
                           image_size=image_size, in_channels=in_channels, drop_path_rate=drop_path_rate,
                           pool=pool, dtype=dtype, rngs=rngs)
