"""ResNet-18/34/50 backbones (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016).

The "v1.5" layout that self-supervised papers pretrain: the stride of a
bottleneck block sits on its 3x3 conv, not on its first 1x1. No classifier:
`__call__` returns globally average-pooled features of width `num_features`.

Two stems. `"imagenet"`: 7x7 stride-2 conv, BN, ReLU, 3x3 stride-2 max-pool
(resolution / 4). `"cifar"`: 3x3 stride-1 conv, BN, ReLU (resolution kept), the
usual choice for 32x32 images, where four-fold downsampling before stage 1
would leave a 1x1 map at the end of the network.

This module also fixes the conv and BatchNorm conventions that the other CNNs
of the package (`SmallCNN`, the MLP heads) reuse: bias-free convs with He
fan-out normal init, BatchNorm with PyTorch's defaults (running-stat update
weight 0.1, i.e. NNX momentum 0.9, and epsilon 1e-5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jax_ssl.models import conv

STEMS = ("imagenet", "cifar")
BLOCKS = ("basic", "bottleneck")

# NNX keeps `momentum` of the old running average; PyTorch's momentum=0.1 is the
# weight of the new batch, so the two describe the same update.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5

he_normal_fan_out = jax.nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv2d(in_features: int, out_features: int, kernel_size: int, stride: int = 1, *,
           dtype: Any = jnp.float32, rngs: nnx.Rngs) -> nnx.Conv:
  """A bias-free `kernel_size` x `kernel_size` conv, He (fan-out, normal) initialised.

  Padding is `kernel_size // 2` on every side, as in PyTorch, so the output
  side is `floor((H + 2 * (k // 2) - k) / stride) + 1`. ('SAME' would pad a
  stride-2 conv on an even-sized input more at the end than at the start,
  moving every window one pixel from where PyTorch-trained weights expect it.)
  The backward pass is `jax_ssl.models.conv`'s: matrix products on CPU.

  Args:
    in_features: input channels.
    out_features: output channels.
    kernel_size: side of the square kernel.
    stride: stride along both spatial axes.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  Returns:
    An `nnx.Conv` mapping `(B, H, W, in_features)` to `(B, H', W', out_features)`.
  """
  pad = kernel_size // 2
  return nnx.Conv(in_features, out_features, (kernel_size, kernel_size), strides=stride,
                  padding=((pad, pad), (pad, pad)), use_bias=False, kernel_init=he_normal_fan_out,
                  dtype=dtype, conv_general_dilated=conv.conv_general_dilated, rngs=rngs)


def batch_norm(num_features: int, *, zero_scale: bool = False, dtype: Any = jnp.float32,
               rngs: nnx.Rngs) -> nnx.BatchNorm:
  """BatchNorm over the last axis, created in training mode (batch statistics).

  `zero_scale=True` starts gamma at 0, which silences the residual branch it ends.

  Args:
    num_features: size of the normalised (last) axis.
    zero_scale: start gamma at 0 instead of 1.
    dtype: computation dtype; parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  Returns:
    An `nnx.BatchNorm` with momentum `BN_MOMENTUM` (0.9) and epsilon `BN_EPSILON` (1e-5).
  """
  scale_init = jax.nn.initializers.zeros if zero_scale else jax.nn.initializers.ones
  return nnx.BatchNorm(num_features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                       scale_init=scale_init, dtype=dtype, rngs=rngs)


def max_pool_3x3_stride_2(x: jax.Array) -> jax.Array:
  """3x3 max-pool, stride 2, padding 1 (with -inf, so padding never wins), on (B, H, W, C).

  Args:
    x: `(B, H, W, C)` feature maps, floating point.

  Returns:
    `(B, ceil(H / 2), ceil(W / 2), C)` maps, dtype of `x`.
  """
  window, strides = (1, 3, 3, 1), (1, 2, 2, 1)
  padding = ((0, 0), (1, 1), (1, 1), (0, 0))
  # A NumPy -inf stays concrete under jit, which lets `reduce_window` recognise
  # a max-pool and use its differentiable primitive; a traced init value would
  # fall back to the generic reduction, which has no gradient.
  neg_inf = np.array(-np.inf, dtype=x.dtype)
  return lax.reduce_window(x, neg_inf, lax.max, window, strides, padding)


class Shortcut(nnx.Module):
  """The projection shortcut: 1x1 strided conv + BN, used where a block changes shape."""

  def __init__(self, in_features: int, out_features: int, stride: int, *, dtype: Any,
               rngs: nnx.Rngs):
    self.conv = conv2d(in_features, out_features, 1, stride, dtype=dtype, rngs=rngs)
    self.bn = batch_norm(out_features, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.bn(self.conv(x))


def _shortcut(in_features: int, out_features: int, stride: int, *, dtype: Any,
              rngs: nnx.Rngs) -> Shortcut | None:
  """A projection where the block changes shape, None (identity) where it does not."""
  if stride == 1 and in_features == out_features:
    return None
  return Shortcut(in_features, out_features, stride, dtype=dtype, rngs=rngs)


def _apply_shortcut(shortcut: Shortcut | None, x: jax.Array) -> jax.Array:
  return x if shortcut is None else shortcut(x)


class BasicBlock(nnx.Module):
  """Two 3x3 conv-BN layers plus the shortcut: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.

  Output (B, H / stride, W / stride, width). `bn2` starts with gamma = 0, so
  at initialisation the block computes `relu(shortcut(x))`.
  """

  expansion = 1

  def __init__(self, in_features: int, width: int, stride: int, *, dtype: Any, rngs: nnx.Rngs):
    out_features = width * self.expansion
    self.conv1 = conv2d(in_features, width, 3, stride, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(width, dtype=dtype, rngs=rngs)
    self.conv2 = conv2d(width, width, 3, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(width, zero_scale=True, dtype=dtype, rngs=rngs)
    self.shortcut = _shortcut(in_features, out_features, stride, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    residual = jax.nn.relu(self.bn1(self.conv1(x)))
    residual = self.bn2(self.conv2(residual))
    return jax.nn.relu(residual + _apply_shortcut(self.shortcut, x))


class BottleneckBlock(nnx.Module):
  """1x1 reduce, 3x3 (strided), 1x1 expand by 4, each with BN, plus the shortcut.

  Output (B, H / stride, W / stride, 4 * width). `bn3` starts with gamma = 0,
  so at initialisation the block computes `relu(shortcut(x))`.
  """

  expansion = 4

  def __init__(self, in_features: int, width: int, stride: int, *, dtype: Any, rngs: nnx.Rngs):
    out_features = width * self.expansion
    self.conv1 = conv2d(in_features, width, 1, dtype=dtype, rngs=rngs)
    self.bn1 = batch_norm(width, dtype=dtype, rngs=rngs)
    self.conv2 = conv2d(width, width, 3, stride, dtype=dtype, rngs=rngs)
    self.bn2 = batch_norm(width, dtype=dtype, rngs=rngs)
    self.conv3 = conv2d(width, out_features, 1, dtype=dtype, rngs=rngs)
    self.bn3 = batch_norm(out_features, zero_scale=True, dtype=dtype, rngs=rngs)
    self.shortcut = _shortcut(in_features, out_features, stride, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    residual = jax.nn.relu(self.bn1(self.conv1(x)))
    residual = jax.nn.relu(self.bn2(self.conv2(residual)))
    residual = self.bn3(self.conv3(residual))
    return jax.nn.relu(residual + _apply_shortcut(self.shortcut, x))


class Stem(nnx.Module):
  """First conv-BN-ReLU (and max-pool for `"imagenet"`): (B, H, W, C) -> (B, H', W', 64).

  `"imagenet"`: H' = H / 4 (7x7 stride-2 conv, then 3x3 stride-2 max-pool).
  `"cifar"`: H' = H (3x3 stride-1 conv, no pool).
  """

  def __init__(self, kind: str, in_channels: int, out_features: int, *, dtype: Any,
               rngs: nnx.Rngs):
    if kind not in STEMS:
      raise ValueError(f"stem must be one of {STEMS}, got {kind!r}.")
    self.kind = kind
    if kind == "imagenet":
      self.conv = conv2d(in_channels, out_features, 7, 2, dtype=dtype, rngs=rngs)
    else:
      self.conv = conv2d(in_channels, out_features, 3, 1, dtype=dtype, rngs=rngs)
    self.bn = batch_norm(out_features, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = jax.nn.relu(self.bn(self.conv(x)))
    if self.kind == "imagenet":
      x = max_pool_3x3_stride_2(x)
    return x


class ResNet(nnx.Module):
  """A ResNet trunk without classifier: stem, four stages, global average pool.

  Stage s (s = 0..3) has `depths[s]` blocks of width `width * 2**s`; the first
  block of stages 1..3 halves the resolution. Output features per image:
  `num_features = width * 8 * expansion` (512 for basic blocks at width 64,
  2048 for bottlenecks).

  Args:
    block: `"basic"` (ResNet-18/34) or `"bottleneck"` (ResNet-50 and deeper).
    depths: blocks per stage, four entries.
    stem: `"imagenet"` or `"cifar"`, see the module docstring.
    width: channels of the stem and stage 1 (64 in every published model;
      smaller values give cheap models for smoke runs).
    in_channels: channels of the input images.
    dtype: computation dtype (activations); parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.
  """

  def __init__(self, block: str, depths: Sequence[int], *, stem: str = "imagenet",
               width: int = 64, in_channels: int = 3, dtype: Any = jnp.float32,
               rngs: nnx.Rngs):
    if block not in BLOCKS:
      raise ValueError(f"block must be one of {BLOCKS}, got {block!r}.")
    depths = tuple(depths)
    if len(depths) != 4 or any(d < 1 for d in depths):
      raise ValueError(f"depths must be four positive block counts, e.g. (2, 2, 2, 2); got {depths}.")
    block_class = BasicBlock if block == "basic" else BottleneckBlock
    self.stem = Stem(stem, in_channels, width, dtype=dtype, rngs=rngs)
    stages = []
    in_features = width
    for stage, depth in enumerate(depths):
      stage_width = width * 2**stage
      blocks = []
      for index in range(depth):
        stride = 2 if stage > 0 and index == 0 else 1
        blocks.append(block_class(in_features, stage_width, stride, dtype=dtype, rngs=rngs))
        in_features = stage_width * block_class.expansion
      stages.append(nnx.List(blocks))
    self.stages = nnx.List(stages)
    self.num_features: int = in_features

  def feature_map(self, x: jax.Array) -> jax.Array:
    """(B, H, W, C) images -> the last stage's output, (B, H', W', num_features).

    H' = ceil(H / 32) with the ImageNet stem, ceil(H / 8) with the CIFAR one; likewise W'.

    Args:
      x: `(B, H, W, C)` images, `C` being the model's `in_channels`.

    Returns:
      `(B, H', W', num_features)` feature maps in the computation dtype.
    """
    x = self.stem(x)
    for stage in self.stages:
      for block in stage:
        x = block(x)
    return x

  def __call__(self, x: jax.Array) -> jax.Array:
    """(B, H, W, C) images -> (B, num_features): the spatial mean of `feature_map(x)`."""
    return jnp.mean(self.feature_map(x), axis=(1, 2))


def resnet18(*, stem: str = "imagenet", width: int = 64, in_channels: int = 3,
             dtype: Any = jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """ResNet-18: basic blocks [2, 2, 2, 2], 512 features, 11,176,512 parameters at width 64.

  Args:
    stem: `"imagenet"` or `"cifar"`, see the module docstring.
    width: channels of the stem and stage 1.
    in_channels: channels of the input images.
    dtype: computation dtype (activations); parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  Returns:
    A `ResNet` mapping `(B, H, W, in_channels)` images to `(B, 8 * width)` features.

  Raises:
    ValueError: for an unknown `stem`.

  References:
    He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
  """
  return ResNet("basic", (2, 2, 2, 2), stem=stem, width=width, in_channels=in_channels,
                dtype=dtype, rngs=rngs)


def resnet34(*, stem: str = "imagenet", width: int = 64, in_channels: int = 3,
             dtype: Any = jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """ResNet-34: basic blocks [3, 4, 6, 3], 512 features, 21,284,672 parameters at width 64.

  Args:
    As `resnet18` (stem, width, in_channels, dtype, rngs); it returns, raises and cites the same.
  """
  return ResNet("basic", (3, 4, 6, 3), stem=stem, width=width, in_channels=in_channels,
                dtype=dtype, rngs=rngs)


def resnet50(*, stem: str = "imagenet", width: int = 64, in_channels: int = 3,
             dtype: Any = jnp.float32, rngs: nnx.Rngs) -> ResNet:
  """ResNet-50: bottleneck blocks [3, 4, 6, 3], 2048 features, 23,508,032 parameters at width 64.

  Args:
    stem: `"imagenet"` or `"cifar"`, see the module docstring.
    width: channels of the stem and stage 1.
    in_channels: channels of the input images.
    dtype: computation dtype (activations); parameters stay float32.
    rngs: `nnx.Rngs` with a `params` stream.

  Returns:
    A `ResNet` mapping `(B, H, W, in_channels)` images to `(B, 32 * width)` features.

  Raises:
    ValueError: for an unknown `stem`.

  References:
    He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
  """
  return ResNet("bottleneck", (3, 4, 6, 3), stem=stem, width=width, in_channels=in_channels,
                dtype=dtype, rngs=rngs)
