"""SAG-VICReg: VICReg with random-walk pairing on a kNN affinity graph.

Simai, Talmon, Shaham, "Enhancing VICReg: Random-Walk Pairing for Improved
Generalization and Better Global Semantics Capturing" (arXiv 2506.18104).
Instead of pairing each embedding with the other view of the same image, each
z1_i is paired with the other view of an image j drawn by one random-walk step
on a locally scaled kNN graph, and the invariance term is weighted by the
edge's affinity. The graph needs the whole batch: under a sharded `jit` the
(N, D) embeddings are gathered, which is cheap next to the backbone.

The paper leaves three choices open, and each is an option here
(docs/readings.md states each exactly): which graph the walk runs on (`GRAPHS`), over which distances the
kernel's local scale is a percentile (`SCALES_OVER`: App. I says the k
neighbours', App. C "the distance matrix"), and whether VICReg's variance and
covariance see the walked batch or the two views (`REGULARIZE`: Sec. 4.3 says
"the remaining terms remain unchanged").
"""

from __future__ import annotations

import typing
from typing import Literal

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jax_ssl import ops
from jax_ssl.losses import _checks
from jax_ssl.losses import vicreg

# Kernel weights are floored here on the k neighbours so every row keeps exactly k
# edges even when exp(-adj^2 / s^2) underflows (a neighbour far beyond the local
# scale); such an edge is drawn with probability ~1e-38, i.e. never.
_SMALLEST_EDGE = float(jnp.finfo(jnp.float32).tiny)

# The reading `sag_vicreg_loss` uses unless told otherwise (see its docstring).
DEFAULT_GRAPH = "same_view"
DEFAULT_SCALE_OVER = "neighbours"
DEFAULT_REGULARIZE = "paired"


# The graph of the random walk: from the first view's embeddings to the second view's
# (the own second view a neighbour only if it is among the k nearest); the same with the
# own second view always a neighbour; or over the first view's images, self included.
Graph = Literal["cross_view", "cross_view_own", "same_view"]
GRAPHS: tuple[str, ...] = typing.get_args(Graph)
# The distances whose percentile is the kernel's local scale: row i's k adjusted
# neighbour distances (App. I) or all N of its adjusted distances (App. C).
ScaleOver = Literal["neighbours", "row"]
SCALES_OVER: tuple[str, ...] = typing.get_args(ScaleOver)
# What VICReg's variance and covariance regularise besides z1: the walked batch z2[j] or z2.
Regularize = Literal["paired", "views"]
REGULARIZE: tuple[str, ...] = typing.get_args(Regularize)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
  if value not in allowed:
    raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}.")


def _percentile_of_sorted(sorted_rows: jax.Array, percentile: float) -> jax.Array:
  """numpy's linear-interpolation percentile of each ascending row: static order statistics."""
  last = sorted_rows.shape[1] - 1
  position = percentile / 100.0 * last
  lo = min(int(position), last)
  hi = min(lo + 1, last)
  frac = position - lo
  return sorted_rows[:, lo] + frac * (sorted_rows[:, hi] - sorted_rows[:, lo])


def knn_affinity(
    z: ArrayLike,
    z_prime: ArrayLike,
    k: int = 5,
    percentile: float = 20.0,
    min_scale: float = 1e-7,
    scale_over: str = "neighbours",
    own_pair: bool = False,
) -> jax.Array:
  """Locally scaled Gaussian kNN affinity from rows of `z` to rows of `z_prime` (App. I).

  For row i: cosine distances `d_ij = 1 - cos(z_i, z'_j)`; with `own_pair`,
  first `d_ii = min_j d_ij`, so that candidate i (the same image) is always
  the nearest, ties going to it; keep the k smallest; subtract the smallest
  (`adj_ij = d_ij - min_j d_ij`, the nearest neighbour at 0); the local scale
  `s_i = max(P_percentile(A_i), min_scale)` (linear interpolation between
  order statistics, numpy's default), where `A_i` holds the k adjusted
  neighbour distances (`scale_over="neighbours"`, App. I: with k = 5 at the
  20th percentile, `s_i = 0.8 adj_i(2)`, so the second neighbour weighs
  exp(-1.5625)) or all of row i's adjusted distances (`scale_over="row"`,
  App. C's "20th percentile of the distance matrix after subtracting each
  sample's nearest-neighbour distance"); then `W_ij = exp(-adj_ij^2 / s_i^2)`
  on the k neighbours and 0 elsewhere. Each row has exactly k non-zeros and
  its largest is 1 (the nearest neighbour); a row that meets a NaN is NaN.

  Args:
    z: (N, D) embeddings, the walk's starting points.
    z_prime: (M, D) embeddings of the candidates (M = N when `own_pair`).
    k: neighbours per row, 1 <= k < M (with `own_pair`, the own candidate is one of them).
    percentile: percentile of the adjusted distances used as the scale, in [0, 100].
    min_scale: lower bound of the scale (keeps duplicates finite).
    scale_over: `"neighbours"` or `"row"` (`SCALES_OVER`).
    own_pair: candidate i is image i's own (other view or itself), always the nearest.

  Returns:
    Dense (N, M) float32 affinity. Not meant to be differentiated (the loss
    stops its gradient).

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, App. I (kernel) and App. C (scale).
  """
  z = _checks.embeddings("z", z, min_rows=1)
  z_prime = _checks.embeddings("z_prime", z_prime, min_rows=1)
  if z.shape[1] != z_prime.shape[1]:
    raise ValueError(f"z and z_prime must have the same width, got shapes {z.shape} and {z_prime.shape}.")
  num_candidates = z_prime.shape[0]
  if not 1 <= k < num_candidates:
    raise ValueError(
        f"k must satisfy 1 <= k < N = {num_candidates} (the rows of z_prime), got k={k}; "
        "use a larger batch or fewer neighbours.")
  if not 0.0 <= percentile <= 100.0:
    raise ValueError(f"percentile must lie in [0, 100], got {percentile}.")
  _choice("scale_over", scale_over, SCALES_OVER)
  if own_pair and z.shape[0] != num_candidates:
    raise ValueError(f"own_pair pairs row i with candidate i: z and z_prime need the same number of rows, "
                     f"got {z.shape[0]} and {num_candidates}.")

  dist = 1.0 - ops.cosine_similarities(z, z_prime)
  row_has_nan = jnp.any(jnp.isnan(dist), axis=1)
  if own_pair:
    own = jnp.eye(num_candidates, dtype=bool)
    dist = jnp.where(own, jnp.min(dist, axis=1, keepdims=True), dist)
    # Rank the own candidate strictly first, whatever ties it has.
    neighbours = ops.knn(jnp.where(own, -jnp.inf, dist), k)[1]
    neighbour_dist = jnp.take_along_axis(dist, neighbours, axis=1)
  else:
    neighbour_dist, neighbours = ops.knn(dist, k)
  nearest = neighbour_dist[:, :1]
  adjusted = neighbour_dist - nearest
  if scale_over == "neighbours":
    scale = _percentile_of_sorted(adjusted, percentile)
  else:
    scale = _percentile_of_sorted(ops.sort(dist - nearest, axis=1), percentile)
  scale = jnp.maximum(scale, min_scale)
  weights = jnp.exp(-jnp.square(adjusted / scale[:, None]))
  weights = jnp.maximum(weights, _SMALLEST_EDGE)
  weights = jnp.where(row_has_nan[:, None], jnp.nan, weights)
  rows = jnp.arange(z.shape[0])[:, None]
  return jnp.zeros(dist.shape, jnp.float32).at[rows, neighbours].set(weights)


def random_walk_pairs(key: jax.Array, affinity: ArrayLike) -> jax.Array:
  """One random-walk step from every row: `j_i ~ Categorical(W_i / sum_j W_ij)`.

  Args:
    key: PRNG key.
    affinity: (N, M) non-negative weights, every row with positive mass.

  Returns:
    int32 (N,) column indices.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, App. G.2.
  """
  affinity = jnp.asarray(affinity)
  if affinity.ndim != 2:
    raise ValueError(f"affinity must be a 2-D (N, M) weight matrix, got shape {affinity.shape}.")
  # log 0 = -inf: non-neighbours are never drawn; categorical normalises the rows.
  log_weights = jnp.log(affinity.astype(jnp.float32))
  return jax.random.categorical(key, log_weights, axis=1).astype(jnp.int32)


def walk_affinity(
    z1: ArrayLike,
    z2: ArrayLike,
    k: int = 5,
    percentile: float = 20.0,
    graph: str = DEFAULT_GRAPH,
    scale_over: str = DEFAULT_SCALE_OVER,
) -> jax.Array:
  """The (N, N) affinity of SAG-VICReg's walk, from image i to the image j whose z2_j pairs with z1_i.

  `"cross_view"`: `knn_affinity(z1, z2)`; `"cross_view_own"`:
  `knn_affinity(z1, z2, own_pair=True)`; `"same_view"`:
  `knn_affinity(z1, z1, own_pair=True)`; each with `scale_over`.

  Args:
    z1, z2: (N, D) embeddings of the two views of the same N images.
    k, percentile, scale_over: the kNN graph and its kernel (`knn_affinity`).
    graph: `"cross_view"`, `"cross_view_own"` or `"same_view"` (`GRAPHS`).

  Returns:
    (N, N) float32 affinity, k positive entries per row (with the own-pair graphs the own
    pair is one of the k), the rest 0; `random_walk_pairs` draws from it.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.3 and App. I; the
    readings: docs/readings.md.
  """
  _choice("graph", graph, GRAPHS)
  candidates = z1 if graph == "same_view" else z2
  return knn_affinity(z1, candidates, k=k, percentile=percentile, scale_over=scale_over,
                      own_pair=graph != "cross_view")


def sag_vicreg_loss(
    key: jax.Array,
    z1: ArrayLike,
    z2: ArrayLike,
    k: int = 5,
    percentile: float = 20.0,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
    graph: str = DEFAULT_GRAPH,
    scale_over: str = DEFAULT_SCALE_OVER,
    regularize: str = DEFAULT_REGULARIZE,
) -> tuple[jax.Array, vicreg.Metrics]:
  """SAG-VICReg: VICReg whose invariance pairs come from a random walk.

  `W = sg(walk_affinity(z1, z2, k, percentile, graph, scale_over))`,
  `j = random_walk_pairs(key, W)`, `z2'' = z2[j]`, `w_i = W[i, j_i]`; then
  `sim * invariance(z1, z2'', w) + std * (variance(z1) + variance(r)) / 2
   + cov * (covariance(z1) + covariance(r))` with `r = z2''` when
  `regularize="paired"` and `r = z2` when `regularize="views"`.

  Default reading: `graph="same_view"`, `scale_over="neighbours"`,
  `regularize="paired"`. The paper's batch holds "not only" the pairs of
  views of the same image but also pairs of close images (Sec. 4, Fig. 3), so
  the walk must reach the own pair: `same_view` walks a kNN graph over the
  first view's images, self included, and pairs image i with the second view
  of the image it lands on. On the bare `cross_view` graph the own second
  view is reachable only when it happens to be among the k nearest, which
  before training it rarely is. docs/readings.md states each reading exactly;
  the experiment that chose among them is `sag_vicreg_readings` in
  experiments/RESULTS.md. `scale_over` and `regularize` keep App. I's and
  Alg. 1's choices; the other values remain options.

  Args:
    key: PRNG key of the walk.
    z1, z2: (N, D) embeddings of the two views of the same N images.
    k: neighbours per row of the graph, 1 <= k < N.
    percentile: percentile of the adjusted distances that sets the kernel's scale.
    sim_coeff, std_coeff, cov_coeff: VICReg's weights.
    graph: `"cross_view"`, `"cross_view_own"` or `"same_view"` (`GRAPHS`).
    scale_over: `"neighbours"` or `"row"` (`SCALES_OVER`).
    regularize: `"paired"` or `"views"` (`REGULARIZE`).

  Returns:
    `(loss, metrics)`: the unweighted VICReg terms plus `pair_weight` (mean
    affinity of the drawn pairs) and `self_pair_rate` (fraction of i paired
    with its own image, the plain VICReg pair). A NaN anywhere in z1 or z2
    makes the loss NaN, even where the walk would not read it.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.3, Alg. 1, App. C and I.
  """
  z1 = _checks.embeddings("z1", z1, min_rows=2)
  z2 = _checks.embeddings("z2", z2, min_rows=2)
  _checks.same_shape("z1", z1, "z2", z2)
  _choice("regularize", regularize, REGULARIZE)
  affinity = lax.stop_gradient(walk_affinity(z1, z2, k, percentile, graph, scale_over))
  partners = random_walk_pairs(key, affinity)
  pair_weights = jnp.take_along_axis(affinity, partners[:, None], axis=1)[:, 0]
  z2_walked = z2[partners]
  inv = vicreg.invariance(z1, z2_walked, pair_weights)
  regularized = z2_walked if regularize == "paired" else z2
  loss, metrics = vicreg._vicreg_terms(z1, regularized, inv, sim_coeff, std_coeff, cov_coeff)
  metrics["pair_weight"] = jnp.mean(pair_weights)
  metrics["self_pair_rate"] = jnp.mean((partners == jnp.arange(z1.shape[0])).astype(jnp.float32))
  return _checks.nan_if_any_nan(loss, z1, z2), metrics
