"""A convolution whose backward pass runs as matrix products on CPU.

XLA:CPU lowers the weight gradient of a convolution to a generic kernel that
is an order of magnitude slower than the forward pass: on the 2-core machine,
for a 3x3 conv of 64 channels on a (128, 32, 32, 64) batch (ResNet-18's
first CIFAR stage) the weight gradient takes 4.4 s against 78 ms forward.
Written as what it is, one matrix product per kernel tap,
`dw[i, j] = x_shifted(i, j)^T @ dy` over the batch and the output grid, it
takes a fraction of that (the input gradient, a convolution itself, stays
lax's).

`conv_general_dilated` is a drop-in for `lax.conv_general_dilated` (what
`nnx.Conv` calls): the forward pass is lax's own on every platform; the
backward pass is this one on CPU for convolutions big enough to gain
(`_MATMUL_MIN_MACS`), and lax's own otherwise and elsewhere (cuDNN and the
TPU compiler have fast native backward convolutions). Only the case the models
use is rewritten (NHWC x HWIO, explicit padding, no dilation, one group);
anything else goes to lax unchanged.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_NHWC_HWIO = ("NHWC", "HWIO", "NHWC")


def _is_nhwc_hwio(dimension_numbers) -> bool:
  if dimension_numbers is None:
    return False
  if isinstance(dimension_numbers, tuple) and all(isinstance(d, str) for d in dimension_numbers):
    return tuple(dimension_numbers) == _NHWC_HWIO
  expected = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), _NHWC_HWIO)
  return tuple(dimension_numbers) == tuple(expected)


def _forward(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=_NHWC_HWIO)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _conv(x, w, strides, padding):
  return _forward(x, w, strides, padding)


def _conv_fwd(x, w, strides, padding):
  return _forward(x, w, strides, padding), (x, w)


def _matmul_gradients(strides, padding, residuals, dy):
  """(dx, dw) of the NHWC x HWIO convolution: lax's input gradient, the weight gradient as matrix products."""
  x, w = residuals
  kernel_h, kernel_w, in_channels, out_channels = w.shape
  (stride_h, stride_w), ((pad_top, pad_bottom), (pad_left, pad_right)) = strides, padding
  out_h, out_w = dy.shape[1:3]
  # The input gradient is a forward convolution already (of dy with the flipped kernel): lax's is fast.
  _, input_pullback = jax.vjp(lambda x: _forward(x, w, strides, padding), x)
  (dx,) = input_pullback(dy)
  # dw: tap (i, j) is the product of the input shifted by (i, j) and dy, summed over batch and output grid.
  padded = jnp.pad(x, ((0, 0), (pad_top, pad_bottom), (pad_left, pad_right), (0, 0)))
  rows = dy.reshape(-1, out_channels).astype(x.dtype)
  taps = []
  for i in range(kernel_h):
    for j in range(kernel_w):
      shifted = padded[:, i:i + stride_h * (out_h - 1) + 1:stride_h, j:j + stride_w * (out_w - 1) + 1:stride_w]
      taps.append(jnp.matmul(shifted.reshape(-1, in_channels).T, rows, preferred_element_type=jnp.float32))
  dw = jnp.stack(taps).reshape(kernel_h, kernel_w, in_channels, out_channels)
  return dx, dw.astype(w.dtype)


def _lax_gradients(strides, padding, residuals, dy):
  x, w = residuals
  _, pullback = jax.vjp(lambda x, w: _forward(x, w, strides, padding), x, w)
  return pullback(dy)


# Weight-gradient multiply-adds above which the matrix products win on CPU (measured on the 2-core machine:
# 5x at ResNet-18's 64-channel 32 px stage, a tie or a small loss for convs of a few channels on small maps).
_MATMUL_MIN_MACS = 1e8


def _conv_bwd(strides, padding, residuals, dy):
  x, w = residuals
  macs = dy.shape[0] * dy.shape[1] * dy.shape[2] * w.shape[0] * w.shape[1] * w.shape[2] * w.shape[3]
  lax_gradients = functools.partial(_lax_gradients, strides, padding)
  if macs < _MATMUL_MIN_MACS:
    return lax_gradients(residuals, dy)
  return lax.platform_dependent(residuals, dy, cpu=functools.partial(_matmul_gradients, strides, padding),
                                default=lax_gradients)


_conv.defvjp(_conv_fwd, _conv_bwd)


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
                         preferred_element_type=None, out_sharding=None):
  """`lax.conv_general_dilated`, with the CPU-fast backward pass for plain NHWC x HWIO convolutions.

  The arguments mean what they mean to `lax.conv_general_dilated`. A "plain" call (NHWC x HWIO
  `dimension_numbers`, explicit padding pairs, no dilation, one feature and batch group, and `precision`,
  `preferred_element_type` and `out_sharding` left at None) goes through the custom-VJP convolution; any
  other call is passed to lax unchanged.

  Args:
    lhs: the input, `(N, H, W, C_in)` for a plain call.
    rhs: the kernel, `(KH, KW, C_in, C_out)` for a plain call.
    window_strides: the spatial strides, one int per spatial dimension.
    padding: a sequence of `(low, high)` int pairs, one per spatial dimension, or a lax padding string
      (`"SAME"`, `"VALID"`, ...), which sends the call to lax.
    lhs_dilation: input dilation, None or all ones for a plain call.
    rhs_dilation: kernel (atrous) dilation, None or all ones for a plain call.
    dimension_numbers: lax dimension numbers, `("NHWC", "HWIO", "NHWC")` (as strings or as
      `lax.ConvDimensionNumbers`) for a plain call.
    feature_group_count: number of feature groups, 1 for a plain call.
    batch_group_count: number of batch groups, 1 for a plain call.
    precision: lax precision, None for a plain call.
    preferred_element_type: accumulation/output dtype, None for a plain call.
    out_sharding: output sharding, None for a plain call; forwarded to lax only when set.

  Returns:
    The convolution's output, as `lax.conv_general_dilated` returns it: `(N, H_out, W_out, C_out)` in the
    input dtype for a plain call.
  """
  plain = (_is_nhwc_hwio(dimension_numbers) and not isinstance(padding, str)
           and all(d in (None, 1) for d in (*(lhs_dilation or ()), *(rhs_dilation or ())))
           and feature_group_count == 1 and batch_group_count == 1 and precision is None
           and preferred_element_type is None and out_sharding is None)
  if not plain:
    kwargs = {} if out_sharding is None else {"out_sharding": out_sharding}
    return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation, rhs_dilation,
                                    dimension_numbers, feature_group_count, batch_group_count, precision,
                                    preferred_element_type, **kwargs)
  return _conv(lhs, rhs, tuple(int(s) for s in window_strides), tuple(tuple(int(p) for p in pair) for pair in padding))
