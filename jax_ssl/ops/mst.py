"""Euclidean minimum spanning tree of a batch, inside `jit`.

Two exact algorithms over the dense (N, N) matrix of squared distances, one
matmul (O(N^2 D); on CPU only its upper triangle of blocks is multiplied) and
O(N^2) memory:

- Prim's: N - 1 sequential rounds, each taking the cheapest edge from the tree
  to a point outside it and relaxing the others through the new vertex;
  O(N^2) work in N tiny steps. Fastest where steps are cheap (CPU).
- Borůvka's: every component takes its cheapest outgoing edge at once, and
  the components merge; at most ceil(log2 N) rounds of dense, vectorised
  O(N^2) work. Fastest where a step costs a kernel launch (GPU, TPU).

`algorithm="auto"` picks Prim's on CPU and Borůvka's elsewhere. Edges are
ranked by (weight, lower endpoint, higher endpoint), a total order, so both
give the same tree, the unique one of that order (the minimum spanning tree
itself for points in general position).

Exactness. The matmul form `|a|^2 + |b|^2 - 2 a.b` of a squared distance
carries an absolute rounding error of a few float32 ulps of `|a|^2`: when the
points are packed closely far from the origin (a collapsing batch) it swamps
the distances themselves and the tree comes out far too long. So the batch is
centred first, which removes the common offset exactly. What cancellation
remains (tight clusters far from the batch mean) is caught by an error bound:
if the rounding could make the tree's length wrong by more than a relative
`_LENGTH_RTOL`, the distances are recomputed from coordinate differences,
which are exact to float32 rounding, and the tree is grown again. (The bound
is first tried on the tree's matmul-form weights, widened by their error;
only where that fails are its weights recomputed from the points.) The tree is
then a minimum spanning tree of the float32 points up to float32 rounding of
near-tied edges, and its length equals scipy's on the same points.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

_EPS = float(jnp.finfo(jnp.float32).eps)
# Absolute error of a matmul-form squared distance, in units of eps * max_i |a_i|^2
# (three rounded terms, each below 2 max|a|^2, plus the dot's accumulation): generous.
_GRAM_ERROR_ULPS = 8.0
# The tree may be longer than the exact minimum by at most this fraction before
# the distances are recomputed from coordinate differences. The bound is a worst
# case (every weight off by the full error): the error seen is ~1e-7 far below it.
_LENGTH_RTOL = 1e-4
# Prim's tie-break key `lower * N + higher` fits int32 up to this N; beyond it, two reductions.
_COMBINED_KEY_MAX_N = 46340
# On CPU the Gram matrix is multiplied in row blocks of about this many rows, each block with its own
# and the later columns only, while the (N, N) matrix fits the last-level cache (32 MiB here): past
# that, copying its lower half through memory costs more than the matmul it saves.
_GRAM_BLOCK_ROWS = 256
_SYMMETRIC_MAX_N = 2048
# `_tree_min` halves a vector down to this length before one short reduction.
_TREE_MIN_LENGTH = 16
# Elements of the (rows, N, D) block of differences that the exact path builds at once.
_EXACT_BLOCK_ELEMENTS = 1 << 24


def _sanitise(sq_dist: jax.Array) -> jax.Array:
  """NaN and +inf (non-finite or huge points) become the largest finite float.

  +inf stays free to mark tree vertices in Prim's loop, and such a point still
  joins the tree, so the length comes out NaN or inf instead of silently
  leaving the point out.
  """
  largest = jnp.finfo(jnp.float32).max
  return jnp.where(sq_dist < largest, sq_dist, largest)


def _exact_squared_distances(points: jax.Array) -> jax.Array:
  """(N, N) `sum_d (a_id - a_jd)^2` from coordinate differences, in row blocks that fit memory."""
  n, dim = points.shape
  rows = max(1, min(n, _EXACT_BLOCK_ELEMENTS // max(1, n * dim)))
  padded = jnp.pad(points, ((0, -n % rows), (0, 0)))

  def block(starts):
    return jnp.sum(jnp.square(starts[:, None, :] - points[None, :, :]), axis=-1)

  blocks = lax.map(block, padded.reshape(-1, rows, dim))
  return blocks.reshape(-1, n)[:n]


def _gram_squared_distances(points: jax.Array) -> jax.Array:
  """(N, N) sanitised `|a|^2 + |b|^2 - 2 a.b` clipped at 0: `ops.squared_euclidean_distances`' values.

  On CPU, where the matmul is compute-bound and most of the MST's time, the
  symmetric matrix is multiplied in k row blocks, each with the columns from
  its own block on only (k (k + 1) / 2 of the k^2 block products: 10 of 16 at
  N = 1024), and the columns before a block are copied from the transposes of
  blocks already multiplied. Elsewhere, and for matrices larger than the cache,
  the one matmul is cheaper than the copies.
  """
  n = points.shape[0]
  sq_norms = jnp.sum(jnp.square(points), axis=1)

  def rows(start, stop):
    gram = jnp.matmul(points[start:stop], points[start:].T, precision=lax.Precision.HIGHEST)
    return _sanitise(jnp.maximum(sq_norms[start:stop, None] + sq_norms[None, start:] - 2.0 * gram, 0.0))

  def symmetric_blocks(_):
    blocks = n // _GRAM_BLOCK_ROWS if n <= _SYMMETRIC_MAX_N else 1
    if blocks <= 1:
      return rows(0, n)
    bounds = [n * i // blocks for i in range(blocks + 1)]
    sq_dist = jnp.zeros((n, n), jnp.float32)
    for start, stop in zip(bounds[:-1], bounds[1:]):
      block_rows = rows(start, stop)
      # Written in place: the block row from the diagonal on, and its transpose below the diagonal block.
      sq_dist = lax.dynamic_update_slice(sq_dist, block_rows, (start, start))
      if stop < n:
        sq_dist = lax.dynamic_update_slice(sq_dist, block_rows[:, stop - start:].T, (stop, start))
    return sq_dist

  return lax.platform_dependent(points, cpu=symmetric_blocks, default=lambda _: rows(0, n))


def _tree_min(values: jax.Array) -> jax.Array:
  """Minimum of a 1-D array by pairwise halving, then one short reduction.

  Prim's step is two reductions of an (N,) vector. XLA:CPU splits a long
  reduction into a reduce-window and a reduce that together take ~1 us at
  N = 1024; the halving fuses into one or two loops, several times faster.
  """
  fill = jnp.inf if jnp.issubdtype(values.dtype, jnp.floating) else jnp.iinfo(values.dtype).max
  while values.shape[0] > _TREE_MIN_LENGTH:
    if values.shape[0] % 2:
      values = jnp.concatenate([values, jnp.full((1,), fill, values.dtype)])
    half = values.shape[0] // 2
    values = jnp.minimum(values[:half], values[half:])
  return jnp.min(values)


def _first_edge_vertex(candidate: jax.Array, parent: jax.Array, in_tree: jax.Array) -> jax.Array:
  """The outside vertex j whose edge (parent[j], j) comes first in (lower, higher) endpoint order among `candidate`."""
  n = candidate.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
  low, high = jnp.minimum(parent, iota), jnp.maximum(parent, iota)
  if n <= _COMBINED_KEY_MAX_N:
    # One reduction over a combined key (the loop is latency-bound: each reduction is a step's cost).
    first = _tree_min(jnp.where(candidate, low * n + high, n * n))
    low, high = first // n, first % n
  else:
    low_first = _tree_min(jnp.where(candidate, low, n))
    high = _tree_min(jnp.where(candidate & (low == low_first), high, n))
    low = low_first
  # One endpoint of the edge is in the tree; the other is the vertex that joins.
  return jnp.where(in_tree[low], high, low)


def _prim(sq_dist: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Prim's algorithm from vertex 0 on a dense symmetric matrix of finite edge weights.

  Each step adds the crossing edge first in the order (weight, lower endpoint,
  higher endpoint), so the tree is the unique minimum of that order, the one
  Borůvka's algorithm finds too. Returns the edges `(parent[j], j)`, j = 1 .. N - 1.
  """
  n = sq_dist.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
  # best[j]: weight from j to the tree, +inf once j is in it (and only then:
  # every other entry is finite). parent[j]: the lowest-numbered tree vertex
  # attaining it (its edge to j comes first among j's equal-weight edges), frozen
  # when j joins, so the edge that brought j in is (parent[j], j).
  best = sq_dist[0].at[0].set(jnp.inf)
  parent = jnp.zeros(n, jnp.int32)

  def add_nearest_vertex(_, state):
    best, parent = state
    in_tree = best == jnp.inf
    vertex = _first_edge_vertex(best == _tree_min(best), parent, in_tree)
    through_vertex = lax.dynamic_index_in_dim(sq_dist, vertex, keepdims=False)
    outside = ~in_tree & (iota != vertex)
    closer = (through_vertex < best) | ((through_vertex == best) & (vertex < parent))
    parent = jnp.where(outside & closer, vertex, parent)
    best = jnp.where(outside, jnp.minimum(best, through_vertex), jnp.inf)
    return best, parent

  _, parent = lax.fori_loop(0, n - 1, add_nearest_vertex, (best, parent))
  return parent[1:], iota[1:]


def _boruvka(sq_dist: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Borůvka's algorithm on a dense symmetric matrix of finite edge weights.

  A component is labelled by its root vertex. Each round, every point finds
  its cheapest edge to another component (one masked row minimum over the
  matrix), every component keeps the cheapest of its points' edges in the
  order (weight, lower endpoint, higher endpoint), and each component joins
  the one its edge reaches; two components that chose each other join the
  lower-labelled one. Pointer jumping relabels the points with their new
  roots. A component records the edge it chose in the round it stops being a
  root, so the N - 1 non-root slots hold the tree.
  """
  n = sq_dist.shape[0]
  iota = jnp.arange(n, dtype=jnp.int32)
  jumps = max(1, (n - 1).bit_length())

  def several_components(state):
    component = state[0]
    return jnp.any(component != component[0])

  def merge_round(state):
    component, src, dst = state
    # Each point's cheapest edge to another component; the lowest index among equal weights,
    # which is also the lowest in (weight, lower endpoint, higher endpoint) for that point.
    masked = jnp.where(component[None, :] != component[:, None], sq_dist, jnp.inf)
    weight = jnp.min(masked, axis=1)
    nearest = jnp.min(jnp.where(masked == weight[:, None], iota[None, :], n), axis=1)
    low, high = jnp.minimum(iota, nearest), jnp.maximum(iota, nearest)
    # Each component's cheapest edge in the total order: narrow the candidates key by key.
    best = jnp.ones(n, bool)
    for key, fill in ((weight, jnp.inf), (low, n), (high, n)):
      smallest = jax.ops.segment_min(jnp.where(best, key, fill), component, num_segments=n)
      best &= key == smallest[component]
    chooser = jax.ops.segment_min(jnp.where(best, iota, n), component, num_segments=n)
    is_root = component == iota
    chooser = jnp.where(is_root, chooser, 0)
    reached = nearest[chooser]
    target = jnp.where(is_root, component[reached], iota)
    # Mutual choices form the only cycles of a total order; the lower root stays a root.
    parent = jnp.where(is_root & ~((target[target] == iota) & (iota < target)), target, iota)
    joins = is_root & (parent != iota)
    src = jnp.where(joins, chooser, src)
    dst = jnp.where(joins, reached, dst)
    parent = lax.fori_loop(0, jumps, lambda _, p: p[p], parent)
    return parent[component], src, dst

  zeros = jnp.zeros(n, jnp.int32)
  component, src, dst = lax.while_loop(several_components, merge_round, (iota, zeros, zeros))
  # The final root's slot holds no edge: move it last (stable sort) and drop it.
  order = jnp.argsort(component == iota, stable=True)[:-1]
  return src[order], dst[order]


def _gram_tolerance(points: jax.Array) -> jax.Array:
  """`tol`: the most a matmul-form squared distance between rows of `points` is taken to be off by."""
  return _GRAM_ERROR_ULPS * _EPS * jnp.max(jnp.sum(jnp.square(points), axis=1))


def _length_may_exceed_minimum(low: jax.Array, high: jax.Array, tol: jax.Array) -> jax.Array:
  """The test of `_gram_tree_may_be_inexact` at its worst over tree weights known to lie in [low, high].

  With `low = high = w` it is that test on the weights `w`.
  """
  def delta(w):
    return jnp.sqrt(w + tol) - jnp.sqrt(jnp.maximum(w - tol, 0.0))

  def worst_delta(lo, hi):  # delta rises up to w = tol and falls after it
    return delta(jnp.minimum(jnp.maximum(tol, lo), hi))

  shifted_low, shifted_high = jnp.maximum(low - 2.0 * tol, 0.0), jnp.maximum(high - 2.0 * tol, 0.0)
  excess = jnp.sum(worst_delta(low, high) + worst_delta(shifted_low, shifted_high))
  return excess > _LENGTH_RTOL * jnp.sum(jnp.sqrt(low))


def _gram_tree_may_be_inexact(points: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
  """Whether matmul-form rounding could make the tree longer than the minimum by > `_LENGTH_RTOL`.

  With every weight off by at most `tol`, the chosen tree's edges pair up with
  the true minimum's (the exchange property) so that each true edge has weight
  at least the chosen one's minus 2 tol; the excess length is then at most
  `sum_e [delta(w_e) + delta(max(w_e - 2 tol, 0))]`, where
  `delta(w) = sqrt(w + tol) - sqrt(max(w - tol, 0))` bounds how far a length
  moves when its squared weight moves by tol.
  """
  weights = jnp.sum(jnp.square(points[src] - points[dst]), axis=1)
  return _length_may_exceed_minimum(weights, weights, _gram_tolerance(points))


ALGORITHMS = ("auto", "prim", "boruvka")


def mst_edges(z: jax.Array, algorithm: str = "auto") -> tuple[jax.Array, jax.Array]:
  """Edges of a Euclidean minimum spanning tree of the rows of `z`.

  Exact also for points packed closely far from the origin: the batch is
  centred, and where matmul-form distances could still mislead the tree they
  are recomputed from coordinate differences (see the module docstring).

  Args:
    z: (N, D) points, N >= 2.
    algorithm: `"prim"`, `"boruvka"`, or `"auto"` (Prim's on CPU, Borůvka's
      on GPU and TPU): the same tree either way.

  Returns:
    `(src, dst)`: int32 arrays of shape (N - 1,): edge e joins points
    `src[e]` and `dst[e]`. Prim's grows the tree from point 0 and lists the
    edge by which each other point joined it, in the points' order
    (`dst[e] = e + 1`, and `src[e]` was in the tree when `dst[e]` joined);
    Borůvka's lists the edge by which each component joined another. Not
    differentiable (integer output).

  Raises:
    ValueError: if `z` is not 2-D, has fewer than 2 rows, or `algorithm` is unknown.
  """
  if z.ndim != 2:
    raise ValueError(f"mst_edges: z must be 2-D (N, D), got shape {z.shape}.")
  n = z.shape[0]
  if n < 2:
    raise ValueError(f"mst_edges: a spanning tree needs at least 2 points, got N={n}.")
  if algorithm not in ALGORITHMS:
    raise ValueError(f"mst_edges: algorithm must be one of {', '.join(ALGORITHMS)}; got {algorithm!r}.")
  points = lax.stop_gradient(jnp.asarray(z, jnp.float32))
  # Distances do not change under a shift; the mean's own rounding is a shift too.
  points = points - jnp.mean(points, axis=0)

  def tree(sq_dist):
    if algorithm == "auto":
      return lax.platform_dependent(sq_dist, cpu=_prim, default=_boruvka)
    return _prim(sq_dist) if algorithm == "prim" else _boruvka(sq_dist)

  sq_dist = _gram_squared_distances(points)
  src, dst = tree(sq_dist)

  def regrow_if_inexact():
    return lax.cond(_gram_tree_may_be_inexact(points, src, dst),
                    lambda: tree(_sanitise(_exact_squared_distances(points))),
                    lambda: (src, dst))

  # The tree's matmul-form weights are within tol of the exact ones: where the test passes for any
  # weights that near, the exact weights (a gather of 2 (N - 1) points) are not needed.
  gram_weights, tol = sq_dist[src, dst], _gram_tolerance(points)
  surely_exact = ~_length_may_exceed_minimum(jnp.maximum(gram_weights - tol, 0.0), gram_weights + tol, tol)
  return lax.cond(surely_exact, lambda: (src, dst), regrow_if_inexact)
