"""The convolution whose weight gradient is written as matrix products: same values as lax's."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from jax_ssl.models import conv

NHWC_HWIO = ("NHWC", "HWIO", "NHWC")


def ref_weight_gradient(x, dy, kernel, stride, pad):
  """dw[i, j] = sum over batch and output grid of x_padded[n, s*oh + i, s*ow + j, :] outer dy[n, oh, ow, :]."""
  x, dy = x.astype(np.float64), dy.astype(np.float64)
  padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  _, out_h, out_w, _ = dy.shape
  dw = np.zeros((kernel, kernel, x.shape[-1], dy.shape[-1]))
  for i in range(kernel):
    for j in range(kernel):
      window = padded[:, i:i + stride * out_h:stride, j:j + stride * out_w:stride][:, :out_h, :out_w]
      dw[i, j] = np.einsum("nhwc,nhwo->co", window, dy)
  return dw


@pytest.mark.parametrize("kernel,stride", [(3, 1), (3, 2), (1, 2), (7, 2)])
def test_matmul_weight_gradient_matches_a_float64_reference(kernel, stride):
  rng = np.random.default_rng(kernel * 10 + stride)
  x = rng.standard_normal((2, 9, 9, 3)).astype(np.float32)
  w = rng.standard_normal((kernel, kernel, 3, 4)).astype(np.float32)
  pad = kernel // 2
  padding = ((pad, pad), (pad, pad))
  y = lax.conv_general_dilated(x, w, (stride, stride), padding, dimension_numbers=NHWC_HWIO)
  dy = rng.standard_normal(y.shape).astype(np.float32)
  dx, dw = conv._matmul_gradients((stride, stride), padding, (x, w), dy)
  np.testing.assert_allclose(dw, ref_weight_gradient(x, dy, kernel, stride, pad), rtol=1e-4, atol=1e-4)
  _, pullback = jax.vjp(lambda x: lax.conv_general_dilated(x, w, (stride, stride), padding,
                                                           dimension_numbers=NHWC_HWIO), x)
  np.testing.assert_allclose(dx, pullback(dy)[0], rtol=1e-5, atol=1e-5)


def test_a_conv_above_the_threshold_has_lax_values_and_gradients():
  # 16 x 16 x 16 outputs x 3 x 3 x 64 x 64 taps: 1.5e8 multiply-adds, so the CPU takes the matmul branch.
  rng = np.random.default_rng(0)
  x = rng.standard_normal((16, 16, 16, 64)).astype(np.float32)
  w = (rng.standard_normal((3, 3, 64, 64)) / 24).astype(np.float32)
  padding = ((1, 1), (1, 1))

  def loss(conv_fn, x, w):
    y = conv_fn(x, w, (1, 1), padding, dimension_numbers=NHWC_HWIO)
    return jnp.sum(jnp.sin(y)), y

  (ours, y_ours), grads_ours = jax.jit(jax.value_and_grad(
      lambda x, w: loss(conv.conv_general_dilated, x, w), argnums=(0, 1), has_aux=True))(x, w)
  (theirs, y_theirs), grads_theirs = jax.jit(jax.value_and_grad(
      lambda x, w: loss(lax.conv_general_dilated, x, w), argnums=(0, 1), has_aux=True))(x, w)
  np.testing.assert_array_equal(y_ours, y_theirs)  # the forward pass is lax's own
  np.testing.assert_allclose(grads_ours[0], grads_theirs[0], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grads_ours[1], grads_theirs[1], rtol=1e-4, atol=1e-3)


def test_other_convolutions_go_to_lax_unchanged():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((2, 8, 8, 4)).astype(np.float32)
  w = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)  # two groups
  kwargs = dict(dimension_numbers=NHWC_HWIO, feature_group_count=2, rhs_dilation=(2, 2))
  np.testing.assert_array_equal(conv.conv_general_dilated(x, w, (1, 1), "SAME", **kwargs),
                                lax.conv_general_dilated(x, w, (1, 1), "SAME", **kwargs))
