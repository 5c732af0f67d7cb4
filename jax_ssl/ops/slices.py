"""Random 1-D slices and Gaussian quantiles for sliced distribution matching."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special


def random_directions(key: jax.Array, dim: int, num: int) -> jax.Array:
  """`num` directions drawn uniformly on the unit sphere of R^dim, as (dim, num) columns.

  Standard Gaussian columns normalised to unit L2 norm (uniform on the sphere by
  rotation invariance of the Gaussian).

  Args:
    key: PRNG key.
    dim: dimension of the space, at least 1.
    num: number of directions, at least 1.

  Returns:
    `(dim, num)` float32 array whose columns have unit L2 norm.

  Raises:
    ValueError: if `dim` or `num` is below 1.
  """
  if dim < 1 or num < 1:
    raise ValueError(f"random_directions needs dim >= 1 and num >= 1, got dim={dim}, num={num}.")
  gaussian = jax.random.normal(key, (dim, num), jnp.float32)
  return gaussian / jnp.linalg.norm(gaussian, axis=0, keepdims=True)


@functools.lru_cache(maxsize=64)
def _gaussian_quantiles_f64(n: int) -> np.ndarray:
  quantiles = special.ndtri(np.arange(1, n + 1, dtype=np.float64) / (n + 1))
  quantiles.setflags(write=False)
  return quantiles


def gaussian_quantiles(n: int) -> jax.Array:
  """`Phi^{-1}(i / (n + 1))` for i = 1..n: the n-atom target of a standard normal.

  Evaluated in float64 on the host (n is a static shape) and returned as a
  float32 constant, so the tails are as accurate as float32 allows.

  Args:
    n: number of quantiles, a static int of at least 1.

  Returns:
    `(n,)` float32 array, increasing and symmetric about 0.

  Raises:
    ValueError: if `n` is below 1.
  """
  if n < 1:
    raise ValueError(f"gaussian_quantiles needs n >= 1, got {n}.")
  return jnp.asarray(_gaussian_quantiles_f64(int(n)), jnp.float32)
