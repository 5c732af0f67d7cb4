"""Spectral diagnostics of an embedding batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp

# RankMe's epsilon: keeps log(p) finite for zero singular values.
_RANKME_EPS = 1e-7


def effective_rank(z: jax.Array) -> jax.Array:
  """RankMe (Garrido et al., ICML 2023): `exp(-sum_k p_k log p_k)`, `p_k = s_k / sum(s) + 1e-7`.

  s are the singular values of the (N, D) embeddings. Ranges from ~1 (collapsed
  to a line) to min(N, D) (all directions used equally).

  Args:
    z: `(N, D)` embeddings, any float dtype (computed in float32).

  Returns:
    Scalar float32 effective rank.

  Raises:
    ValueError: if `z` is not 2-D.

  References:
    Garrido, Balestriero, Najman, LeCun, "RankMe: Assessing the Downstream Performance of Pretrained
    Self-Supervised Representations by Their Rank", ICML 2023.
  """
  if z.ndim != 2:
    raise ValueError(f"effective_rank: z must be a 2-D (batch, dim) array, got shape {z.shape}.")
  singular_values = jnp.linalg.svd(z.astype(jnp.float32), compute_uv=False)
  p = singular_values / jnp.maximum(jnp.sum(singular_values), jnp.finfo(jnp.float32).tiny) + _RANKME_EPS
  return jnp.exp(-jnp.sum(p * jnp.log(p)))
