"""A tiny conv net for tests and CPU smoke runs; no paper, only the ResNet conventions.

Three 3x3 conv-BN-ReLU layers, the second with stride 2, then a global
average pool: (B, H, W, C) -> (B, 2 * width). Convs and BatchNorms follow
`jax_ssl.models.resnet` (bias-free He-initialised convs, PyTorch-default BN),
so a training loop exercised on it meets the same train/eval switch and
state (parameters plus BatchNorm statistics) as on a ResNet.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jax_ssl.models import resnet


class SmallCNN(nnx.Module):
  """conv(C -> w) -> conv(w -> 2w, stride 2) -> conv(2w -> 2w), each + BN + ReLU, then mean over H, W.

  Args:
    in_channels: channels of the input images.
    width: channels of the first layer; `num_features = 2 * width`.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, in_channels: int = 3, width: int = 16, *, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    if width < 1 or in_channels < 1:
      raise ValueError(f"in_channels and width must be positive, got {in_channels} and {width}.")
    plan = ((in_channels, width, 1), (width, 2 * width, 2), (2 * width, 2 * width, 1))
    self.convs = nnx.List([
        resnet.conv2d(cin, cout, 3, stride, dtype=dtype, rngs=rngs) for cin, cout, stride in plan])
    self.norms = nnx.List([resnet.batch_norm(cout, dtype=dtype, rngs=rngs) for _, cout, _ in plan])
    self.num_features: int = 2 * width

  def feature_map(self, x: jax.Array) -> jax.Array:
    """(B, H, W, in_channels) -> (B, ceil(H / 2), ceil(W / 2), num_features): the last layer before pooling.

    Args:
      x: `(B, H, W, in_channels)` images.

    Returns:
      The feature maps in the computation dtype.
    """
    for conv, norm in zip(self.convs, self.norms):
      x = jax.nn.relu(norm(conv(x)))
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    """(B, H, W, in_channels) -> (B, num_features): the spatial mean of `feature_map(x)`."""
    return jnp.mean(self.feature_map(x), axis=(1, 2))
