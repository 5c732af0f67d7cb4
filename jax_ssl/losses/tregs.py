"""T-REG / T-REGS: minimum-spanning-tree length regularization.

Mordacq, Loiseaux, Kalogeiton, Oudot, "Minimum Spanning Tree Regularization
for Self-Supervised Learning". Maximising the Euclidean MST length of the batch
spreads the embeddings (each MST edge pushes its two ends apart), while a soft
sphere constraint keeps them bounded; together they drive small batches to a
regular simplex and large ones toward uniformity on the sphere.

The tree is recomputed every step and treated as constant: the gradient of the
length is the sum over tree edges of the unit vectors along them (the
persistence-based gradient of Carriere et al., ICML 2021).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jax_ssl import ops
from jax_ssl.losses import _checks
from jax_ssl.losses import vicreg


def mst_length(z: ArrayLike) -> jax.Array:
  """Total Euclidean length of a minimum spanning tree of the rows of `z`.

  The edges come from `ops.mst_edges` (no gradient); each chosen edge's length
  is recomputed from the coordinates, so the value is exact and the gradient
  is the sum of unit edge vectors. A zero-length edge (duplicate points)
  contributes 0 to the gradient instead of NaN.

  Args:
    z: (N, D) points, N >= 1 (one point has length 0).

  Returns:
    The scalar length; NaN if `z` holds a NaN.

  References:
    Mordacq, Loiseaux, Kalogeiton, Oudot, "Minimum Spanning Tree Regularization
    for Self-Supervised Learning" (T-REG(S) slides), part 3.
  """
  z = _checks.embeddings("z", z, min_rows=2)
  src, dst = ops.mst_edges(z)
  # One gather of both ends (and so one scatter-add in the gradient) instead of two.
  ends = z[jnp.concatenate([src, dst])]
  return jnp.sum(ops.safe_norm(ends[:len(src)] - ends[len(src):], axis=1))


def mst_length_loss(z: ArrayLike) -> jax.Array:
  """T-REG's length term `L_E = -mst_length(z) / N`: minimising it spreads the points.

  Args:
    z: (N, D) embeddings.

  Returns:
    The scalar term.
  """
  z = _checks.embeddings("z", z, min_rows=2)
  return -mst_length(z) / z.shape[0]


def sphere_loss(z: ArrayLike) -> jax.Array:
  """T-REG's soft sphere constraint `L_S = mean_i (||z_i|| - 1)^2`: keeps the spread tree bounded.

  Args:
    z: (N, D) embeddings.

  Returns:
    The scalar term; its gradient at a zero row is 0 (`ops.safe_norm`).
  """
  z = _checks.embeddings("z", z, min_rows=1)
  return jnp.mean(jnp.square(ops.safe_norm(z, axis=1) - 1.0))


def t_reg(z: ArrayLike, gamma: float = 0.2, lam: float = 8e-4) -> jax.Array:
  """T-REG: `gamma * L_E + lam * L_S` (`mst_length_loss`, `sphere_loss`).

  Args:
    z: (N, D) embeddings of one view.
    gamma: weight of the length term.
    lam: weight of the sphere constraint.

  Returns:
    The scalar regularizer.

  References:
    Mordacq, Loiseaux, Kalogeiton, Oudot, T-REG(S) slides, parts 3-4 (the
    defaults: the coefficient table of part 4).
  """
  return gamma * mst_length_loss(z) + lam * sphere_loss(z)


def tregs_loss(
    z1: ArrayLike,
    z2: ArrayLike,
    beta: float = 10.0,
    gamma: float = 0.2,
    lam: float = 8e-4,
) -> tuple[jax.Array, vicreg.Metrics]:
  """T-REGS with the MSE invariance: `beta * invariance(z1, z2) + t_reg(z1) + t_reg(z2)`.

  Defaults are the best row of the slides' coefficient table (ImageNet-1k).

  Args:
    z1, z2: (N, D) embeddings of the two views of the same N images.
    beta: weight of the MSE invariance.
    gamma, lam: T-REG's weights, applied to each view (`t_reg`).

  Returns:
    `(loss, metrics)` with `invariance`, `mst_length` (mean over the two views
    of the tree length over N) and `sphere` (mean over the two views).
  """
  z1 = _checks.embeddings("z1", z1, min_rows=2)
  z2 = _checks.embeddings("z2", z2, min_rows=2)
  _checks.same_shape("z1", z1, "z2", z2)
  inv = vicreg.invariance(z1, z2)
  length = (mst_length_loss(z1) + mst_length_loss(z2)) / 2
  sphere = (sphere_loss(z1) + sphere_loss(z2)) / 2
  loss = beta * inv + 2 * (gamma * length + lam * sphere)
  return loss, {"invariance": inv, "mst_length": -length, "sphere": sphere}
