"""Gradients checked against central differences of independent float64 references."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
  """Central differences of a float64 function over every coordinate of x."""
  x = np.asarray(x, np.float64)
  grad = np.zeros_like(x)
  for index in np.ndindex(x.shape):
    step = np.zeros_like(x)
    step[index] = eps
    grad[index] = (f(x + step) - f(x - step)) / (2 * eps)
  return grad


def assert_grad_matches_reference(
    loss: Callable[[jax.Array], jax.Array],
    reference: Callable[[np.ndarray], float],
    x: np.ndarray,
    rtol: float = 1e-3,
    atol: float = 1e-6,
) -> None:
  """jax.grad of the (jitted, float32) loss equals the float64 reference's numerical gradient."""
  expected = numerical_gradient(reference, x)
  actual = np.asarray(jax.jit(jax.grad(loss))(np.asarray(x, np.float32)), np.float64)
  scale = np.max(np.abs(expected))
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol + rtol * scale)
