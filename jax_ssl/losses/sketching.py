"""Sketching losses: pull the embedding distribution toward N(0, I) along random slices.

By Cramer-Wold, two distributions agree iff all their 1-D projections agree, so
both losses compare projections `z @ directions` (one column per slice) with a
standard normal. Directions are an explicit argument: the caller draws them
(`random_directions`) and, on a device mesh, may give each device its own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl import ops
from jax_ssl.losses import _checks


def sliced_w2_to_gaussian(projections: ArrayLike) -> jax.Array:
  """Mean over slices of the squared 1-D W2 distance to N(0, 1).

  Args:
    projections: (N, K): column k holds the N samples projected on slice k.

  Returns:
    `mean_k mean_i (sort(projections[:, k])_i - q_i)^2`, `q = gaussian_quantiles(N)`.
  """
  projections = jnp.asarray(projections)
  quantiles = ops.gaussian_quantiles(projections.shape[0])
  return jnp.mean(ops.squared_w2_1d(projections, quantiles, axis=0))


def swd_gaussian(z: ArrayLike, directions: ArrayLike) -> jax.Array:
  """Plain sliced squared W2 between the embeddings and N(0, I).

  `mean((sort(z @ directions, axis=0) - q[:, None])^2)` with
  `q = gaussian_quantiles(N)`: scale and shape are matched together (no
  centering or standardisation, unlike VISReg's shape loss).

  Args:
    z: (N, D) embeddings.
    directions: (D, K) unit slice directions.
  """
  z = _checks.embeddings("z", z, min_rows=1)
  directions = _checks.directions("directions", directions, z.shape[1])
  return sliced_w2_to_gaussian(z @ directions)


def _epps_pulley_weights(knots: int, t_max: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  t = jnp.linspace(0.0, t_max, knots, dtype=jnp.float32)
  dt = t_max / (knots - 1)
  trapezoid = jnp.full((knots,), 2.0 * dt, jnp.float32).at[jnp.array([0, -1])].set(dt)
  gaussian_cf = jnp.exp(-jnp.square(t) / 2.0)
  return t, gaussian_cf, trapezoid * gaussian_cf


def sigreg(z: ArrayLike, directions: ArrayLike, knots: int = 17, t_max: float = 3.0) -> jax.Array:
  """SIGReg (LeJEPA, Balestriero & LeCun 2025): sliced Epps-Pulley test statistic.

  For each slice x = z @ w_k, compare the empirical characteristic function with
  the standard normal's, `phi(t) = exp(-t^2 / 2)`, on `t = linspace(0, t_max,
  knots)`:
  `err(t) = (mean_n cos(x_n t) - phi(t))^2 + (mean_n sin(x_n t))^2`,
  integrated with trapezoid weights (dt at the ends, 2 dt inside, as in
  LeJEPA's reference code) times the window `phi(t)`, and scaled by the global
  batch size N; averaged over slices.

  Args:
    z: (N, D) embeddings.
    directions: (D, K) unit slice directions.
    knots: quadrature points, >= 2.
    t_max: upper end of the frequency grid.
  """
  z = _checks.embeddings("z", z, min_rows=1)
  directions = _checks.directions("directions", directions, z.shape[1])
  if knots < 2:
    raise ValueError(f"sigreg needs knots >= 2 for the trapezoid rule, got {knots}.")
  t, gaussian_cf, weights = _epps_pulley_weights(knots, t_max)
  # Slice-major (K, N, knots) reduces over a contiguous axis: 2x faster than (N, K, knots) on XLA:CPU.
  x_t = jnp.einsum("nd,dk->kn", z, directions)[..., None] * t
  err = jnp.square(jnp.mean(jnp.cos(x_t), axis=1) - gaussian_cf) + jnp.square(jnp.mean(jnp.sin(x_t), axis=1))
  statistic = (err @ weights) * z.shape[0]
  return jnp.mean(statistic)
