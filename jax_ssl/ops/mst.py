"""Euclidean minimum spanning tree of a batch, inside `jit`.

Prim's algorithm over the dense (N, N) distance matrix: N - 1 rounds, each
taking the cheapest edge from the tree to a point outside it and relaxing the
other points' distances through the new vertex. O(N^2 D) for the distances
(one matmul) plus O(N^2) for the loop, O(N^2) memory. Exact: the tree is a
minimum spanning tree of the float32 distance matrix, so its length equals
scipy's on the same points up to float32 rounding of near-tied edges.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jax_ssl.ops import distances


def mst_edges(z: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Edges of a Euclidean minimum spanning tree of the rows of `z`.

  Args:
    z: (N, D) points, N >= 2.

  Returns:
    `(src, dst)`: int32 arrays of shape (N - 1,). Edge e joins points `src[e]`
    and `dst[e]`; `src[e]` was already in the tree when `dst[e]` joined it
    (the tree is grown from point 0). Not differentiable (integer output).
  """
  if z.ndim != 2:
    raise ValueError(f"mst_edges: z must be 2-D (N, D), got shape {z.shape}.")
  n = z.shape[0]
  if n < 2:
    raise ValueError(f"mst_edges: a spanning tree needs at least 2 points, got N={n}.")
  points = lax.stop_gradient(jnp.asarray(z, jnp.float32))
  # Squared distances rank edges exactly as distances do. NaN and +inf (from
  # non-finite or huge points) become the largest finite float, keeping +inf
  # free to mark tree vertices below: such a point still joins the tree, so its
  # length comes out NaN or inf instead of silently leaving the point out.
  sq_dist = distances.squared_euclidean_distances(points)
  largest = jnp.finfo(jnp.float32).max
  sq_dist = jnp.where(sq_dist < largest, sq_dist, largest)

  iota = jnp.arange(n, dtype=jnp.int32)
  # best[j]: squared distance from j to the tree, +inf once j is in it (and only
  # then: every other entry is finite). parent[j]: the tree vertex attaining it,
  # frozen when j joins, so the edge that brought j in is (parent[j], j).
  best = sq_dist[0].at[0].set(jnp.inf)
  parent = jnp.zeros(n, jnp.int32)
  joined = jnp.zeros(n - 1, jnp.int32)

  def add_nearest_vertex(step, state):
    best, parent, joined = state
    # min, then the first index attaining it: several times faster than argmin on XLA:CPU.
    nearest = jnp.min(best)
    vertex = jnp.min(jnp.where(best == nearest, iota, n))
    joined = joined.at[step].set(vertex)
    through_vertex = lax.dynamic_index_in_dim(sq_dist, vertex, keepdims=False)
    outside = (best != jnp.inf) & (iota != vertex)
    parent = jnp.where(outside & (through_vertex < best), vertex, parent)
    best = jnp.where(outside, jnp.minimum(best, through_vertex), jnp.inf)
    return best, parent, joined

  _, parent, joined = lax.fori_loop(0, n - 1, add_nearest_vertex, (best, parent, joined), unroll=4)
  return parent[joined], joined
