"""VICReg: variance-invariance-covariance regularization (Bardes, Ponce, LeCun, ICLR 2022).

All statistics are over the global batch: under a sharded `jit` the compiler
inserts the reductions, and the covariance divides by the global N - 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl.losses import _checks

Metrics = dict[str, jax.Array]


def invariance(z1: ArrayLike, z2: ArrayLike, weights: ArrayLike | None = None) -> jax.Array:
  """Mean squared distance between paired embeddings, optionally weighted per pair.

  `mean_i w_i * mean_d (z1_id - z2_id)^2`, with w_i = 1 when `weights` is None
  (then it equals PyTorch's `F.mse_loss(z1, z2)`). SAG-VICReg passes the
  affinity of each random-walk pair as its weight.

  Args:
    z1, z2: (N, D) paired embeddings.
    weights: optional (N,) weight of each pair.

  Returns:
    The scalar term.

  References:
    Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022.
  """
  z1 = _checks.embeddings("z1", z1)
  z2 = _checks.embeddings("z2", z2)
  _checks.same_shape("z1", z1, "z2", z2)
  per_pair = jnp.mean(jnp.square(z1 - z2), axis=1)
  if weights is None:
    return jnp.mean(per_pair)
  weights = jnp.asarray(weights, jnp.float32)
  if weights.shape != per_pair.shape:
    raise ValueError(f"weights must have shape ({z1.shape[0]},), one per pair, got {weights.shape}.")
  return jnp.mean(weights * per_pair)


def variance(z: ArrayLike, gamma: float = 1.0, eps: float = 1e-4) -> jax.Array:
  """Hinge on the per-dimension standard deviation: `mean_d relu(gamma - sqrt(var_d(z) + eps))`.

  Unbiased variance (ddof = 1), as in VICReg's reference code.

  Args:
    z: (N, D) embeddings, N >= 2.
    gamma: the target standard deviation.
    eps: added to the variance before the square root (its gradient at 0).

  Returns:
    The scalar term.

  References:
    Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022.
  """
  z = _checks.embeddings("z", z, min_rows=2)
  std = jnp.sqrt(jnp.var(z, axis=0, ddof=1) + eps)
  return jnp.mean(jax.nn.relu(gamma - std))


def covariance(z: ArrayLike) -> jax.Array:
  """Sum of squared off-diagonal covariances over D: `sum_{i!=j} C_ij^2 / D`.

  `C = (z - mean)^T (z - mean) / (N - 1)`.

  Args:
    z: (N, D) embeddings, N >= 2.

  Returns:
    The scalar term.

  References:
    Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022.
  """
  z = _checks.embeddings("z", z, min_rows=2)
  n, dim = z.shape
  centered = z - jnp.mean(z, axis=0)
  cov = centered.T @ centered / (n - 1)
  off_diagonal = jnp.where(jnp.eye(dim, dtype=bool), 0.0, cov)
  return jnp.sum(jnp.square(off_diagonal)) / dim


def vicreg_loss(
    z1: ArrayLike,
    z2: ArrayLike,
    sim_coeff: float = 25.0,
    std_coeff: float = 25.0,
    cov_coeff: float = 1.0,
) -> tuple[jax.Array, Metrics]:
  """The VICReg objective on two views' embeddings.

  `sim * invariance(z1, z2) + std * (variance(z1) + variance(z2)) / 2
   + cov * (covariance(z1) + covariance(z2))`.

  Args:
    z1, z2: (N, D) embeddings of the two views of the same N images, N >= 2.
    sim_coeff, std_coeff, cov_coeff: the weights lambda, mu, nu (25, 25, 1 in the paper).

  Returns:
    `(loss, metrics)` with the unweighted terms under `invariance`, `variance`
    (the mean of the two views) and `covariance` (the sum of the two views).

  References:
    Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization
    for Self-Supervised Learning", ICLR 2022.
  """
  z1 = _checks.embeddings("z1", z1, min_rows=2)
  z2 = _checks.embeddings("z2", z2, min_rows=2)
  _checks.same_shape("z1", z1, "z2", z2)
  return _vicreg_terms(z1, z2, invariance(z1, z2), sim_coeff, std_coeff, cov_coeff)


def _vicreg_terms(z1, z2, inv, sim_coeff, std_coeff, cov_coeff) -> tuple[jax.Array, Metrics]:
  """VICReg's weighted sum given the invariance term (SAG-VICReg swaps in its own)."""
  var = (variance(z1) + variance(z2)) / 2
  cov = covariance(z1) + covariance(z2)
  loss = sim_coeff * inv + std_coeff * var + cov_coeff * cov
  return loss, {"invariance": inv, "variance": var, "covariance": cov}
