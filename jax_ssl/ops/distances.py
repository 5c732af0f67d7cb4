"""Dense pairwise geometry of a batch: norms, distances, k nearest neighbours."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

# Norms below this are treated as this, so a zero vector has cosine 0 to everything.
NORM_FLOOR = 1e-8


def safe_norm(x: jax.Array, axis: int = -1) -> jax.Array:
  """Euclidean norm along `axis` whose gradient at the zero vector is 0, not NaN.

  Collapsed embeddings and duplicate points make zero-length vectors common in
  SSL losses; there the norm is not differentiable and we take the zero
  subgradient. A NaN anywhere in the vector gives NaN (the test is `== 0`, not
  `> 0`, so NaN takes the square-root branch): a loss built on it must not
  hide a NaN embedding.

  Args:
    x: float array of any shape.
    axis: the axis to reduce.

  Returns:
    The norms, `x`'s shape without `axis`, in `x`'s float dtype.
  """
  sq = jnp.sum(jnp.square(x), axis=axis)
  zero = sq == 0
  return jnp.where(zero, 0.0, jnp.sqrt(jnp.where(zero, 1.0, sq)))


def inverse_norms(x: jax.Array) -> jax.Array:
  """`1 / max(||x_i||, 1e-8)` per row: a zero row gets cosine 0 with everything.

  Args:
    x: `(N, D)` float array (more generally `(..., D)`; the norm is over the last axis).

  Returns:
    `(N,)` inverse norms (`x`'s shape without its last axis), in `x`'s float dtype.
  """
  return 1.0 / jnp.maximum(jnp.linalg.norm(x, axis=-1), NORM_FLOOR)


def cosine_similarities(x: jax.Array, y: jax.Array) -> jax.Array:
  """(N, M) matrix of `cos(x_i, y_j)`.

  The inverse norms are applied after the matmul rather than to its inputs: an
  elementwise op fused into a dot slows XLA:CPU's dot several times.

  Args:
    x: `(N, D)` float array.
    y: `(M, D)` float array.

  Returns:
    `(N, M)` cosine similarities, 0 in any row or column of a zero vector.
  """
  gram = jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
  return gram * inverse_norms(x)[:, None] * inverse_norms(y)[None, :]


def squared_euclidean_distances(x: jax.Array, y: jax.Array | None = None) -> jax.Array:
  """(N, M) matrix of `||x_i - y_j||^2` from one matmul, clipped at 0.

  `|x|^2 + |y|^2 - 2 x.y` loses relative precision for near-duplicate points;
  callers that need exact lengths (the MST) use it only to *rank* distances and
  recompute the chosen ones from coordinates.

  Args:
    x: `(N, D)` float array.
    y: `(M, D)` float array, or None for the distances within `x` (then M = N).

  Returns:
    `(N, M)` non-negative squared distances.
  """
  y = x if y is None else y
  gram = jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
  sq_x = jnp.sum(jnp.square(x), axis=1)
  sq_y = sq_x if y is x else jnp.sum(jnp.square(y), axis=1)
  return jnp.maximum(sq_x[:, None] + sq_y[None, :] - 2.0 * gram, 0.0)


def knn(distances: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
  """The k smallest entries of every row of `distances`, ascending.

  Args:
    distances: `(N, M)` float array, e.g. from `squared_euclidean_distances`.
    k: number of neighbours per row, a static int in [1, M].

  Returns:
    `(values, indices)`, each (N, k); `values` in `distances`' dtype, `indices` int32 column indices.

  Raises:
    ValueError: if `k` is outside [1, M].
  """
  if not 1 <= k <= distances.shape[-1]:
    raise ValueError(f"k must be in [1, {distances.shape[-1]}] (the number of candidates), got {k}.")
  neg_values, indices = lax.top_k(-distances, k)
  return -neg_values, indices.astype(jnp.int32)
