"""SAG-VICReg: VICReg with random-walk pairing on a kNN affinity graph.

Simai, Talmon, Shaham, "Enhancing VICReg: Random-Walk Pairing for Improved
Generalization and Better Global Semantics Capturing" (arXiv 2506.18104).
Instead of pairing each embedding with the other view of the same image, each
z1_i is paired with the other view of an image j drawn by one random-walk step
on a locally scaled kNN graph between the two views, and the invariance term
is weighted by the edge's affinity. The graph needs the whole batch: under a
sharded `jit` the (N, D) embeddings are gathered, which is cheap next to the
backbone.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from jax_ssl import ops
from jax_ssl.losses import _checks
from jax_ssl.losses import vicreg

# Kernel weights are floored here on the k neighbours so every row keeps exactly k
# edges even when exp(-adj^2 / s^2) underflows (a neighbour far beyond the local
# scale); such an edge is drawn with probability ~1e-38, i.e. never.
_SMALLEST_EDGE = float(jnp.finfo(jnp.float32).tiny)


def knn_affinity(
    z: jax.Array,
    z_prime: jax.Array,
    k: int = 5,
    percentile: float = 20.0,
    min_scale: float = 1e-7,
) -> jax.Array:
  """Locally scaled Gaussian kNN affinity from rows of `z` to rows of `z_prime` (App. I).

  For row i: cosine distances `d_ij = 1 - cos(z_i, z'_j)`; keep the k smallest;
  subtract the smallest so the nearest neighbour is at 0; the local scale
  `s_i = max(P_percentile(those k adjusted distances), min_scale)` (linear
  interpolation between order statistics, numpy's default); then
  `W_ij = exp(-adj_ij^2 / s_i^2)` on the k neighbours and 0 elsewhere. Each
  row has exactly k non-zeros and its largest is 1 (the nearest neighbour).

  Args:
    z: (N, D) embeddings, the walk's starting points.
    z_prime: (M, D) embeddings of the candidates (the other view).
    k: neighbours per row, 1 <= k < M.
    percentile: percentile of the adjusted neighbour distances used as scale.
    min_scale: lower bound of the scale (keeps duplicates finite).

  Returns:
    Dense (N, M) float32 affinity. Not meant to be differentiated (the loss
    stops its gradient).
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

  dist = 1.0 - ops.cosine_similarities(z, z_prime)
  neighbour_dist, neighbours = ops.knn(dist, k)
  adjusted = neighbour_dist - neighbour_dist[:, :1]
  # Linear-interpolated percentile of k sorted values: static positions.
  position = percentile / 100.0 * (k - 1)
  lo = int(position)
  hi = min(lo + 1, k - 1)
  frac = position - lo
  scale = adjusted[:, lo] + frac * (adjusted[:, hi] - adjusted[:, lo])
  scale = jnp.maximum(scale, min_scale)
  weights = jnp.exp(-jnp.square(adjusted / scale[:, None]))
  weights = jnp.maximum(weights, _SMALLEST_EDGE)
  rows = jnp.arange(z.shape[0])[:, None]
  return jnp.zeros(dist.shape, jnp.float32).at[rows, neighbours].set(weights)


def random_walk_pairs(key: jax.Array, affinity: jax.Array) -> jax.Array:
  """One random-walk step from every row: `j_i ~ Categorical(W_i / sum_j W_ij)`.

  Args:
    key: PRNG key.
    affinity: (N, M) non-negative weights, every row with positive mass.

  Returns:
    int32 (N,) column indices.
  """
  affinity = jnp.asarray(affinity)
  if affinity.ndim != 2:
    raise ValueError(f"affinity must be a 2-D (N, M) weight matrix, got shape {affinity.shape}.")
  # log 0 = -inf: non-neighbours are never drawn; categorical normalises the rows.
  log_weights = jnp.log(affinity.astype(jnp.float32))
  return jax.random.categorical(key, log_weights, axis=1).astype(jnp.int32)


def sag_vicreg_loss(
    key: jax.Array,
    z1: jax.Array,
    z2: jax.Array,
    k: int = 5,
    percentile: float = 20.0,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
) -> tuple[jax.Array, vicreg.Metrics]:
  """SAG-VICReg: VICReg whose invariance pairs come from a random walk.

  `W = sg(knn_affinity(z1, z2))`, `j = random_walk_pairs(key, W)`,
  `z2'' = z2[j]`, `w_i = W[i, j_i]`; then
  `sim * invariance(z1, z2'', w) + std * (variance(z1) + variance(z2'')) / 2
   + cov * (covariance(z1) + covariance(z2''))`.

  Returns:
    `(loss, metrics)`: the unweighted VICReg terms plus `pair_weight` (mean
    affinity of the drawn pairs) and `self_pair_rate` (fraction of i paired
    with its own image, the plain VICReg pair).
  """
  z1 = _checks.embeddings("z1", z1, min_rows=2)
  z2 = _checks.embeddings("z2", z2, min_rows=2)
  _checks.same_shape("z1", z1, "z2", z2)
  affinity = lax.stop_gradient(knn_affinity(z1, z2, k=k, percentile=percentile))
  partners = random_walk_pairs(key, affinity)
  pair_weights = jnp.take_along_axis(affinity, partners[:, None], axis=1)[:, 0]
  z2_walked = z2[partners]
  inv = vicreg.invariance(z1, z2_walked, pair_weights)
  loss, metrics = vicreg._vicreg_terms(z1, z2_walked, inv, sim_coeff, std_coeff, cov_coeff)
  metrics["pair_weight"] = jnp.mean(pair_weights)
  metrics["self_pair_rate"] = jnp.mean((partners == jnp.arange(z1.shape[0])).astype(jnp.float32))
  return loss, metrics
