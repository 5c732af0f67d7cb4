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


# LiDAR's defaults: the ridge on the within-class covariance and the floor added to each eigenvalue share.
LIDAR_DELTA = 1e-4
LIDAR_EPS = 1e-8


def _inverse_sqrt(matrix: jax.Array, floor: float) -> jax.Array:
  """`matrix^{-1/2}` of a symmetric positive definite matrix, by `eigh`, eigenvalues held at `floor` or above."""
  eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
  scale = jax.lax.rsqrt(jnp.maximum(eigenvalues, floor))
  return jnp.matmul(eigenvectors * scale, eigenvectors.T, precision=jax.lax.Precision.HIGHEST)


def lidar(embeddings: jax.Array, delta: float = LIDAR_DELTA, eps: float = LIDAR_EPS) -> jax.Array:
  """LiDAR (Thilak et al., ICLR 2024): the smooth rank of the LDA matrix whose classes are each sample's views.

  Every sample i is a surrogate class; its q augmented views z_ij are the class's members. With
  class means m_i = (1/q) sum_j z_ij and grand mean m = (1/n) sum_i m_i:

    S_b   = 1/(n-1)     sum_i (m_i - m)(m_i - m)^T                 (between classes)
    S_w   = 1/(n (q-1)) sum_ij (z_ij - m_i)(z_ij - m_i)^T + delta I  (within classes, ridged)
    S_lda = S_w^{-1/2} S_b S_w^{-1/2}
    LiDAR = exp(-sum_k p_k log p_k),  p_k = lambda_k / sum(lambda) + eps,

  lambda the eigenvalues of S_lda. Our reading of the paper's definition: its expectations over
  samples and over each sample's views become the unbiased sample estimates above (1/(n-1) between
  classes, the pooled 1/(n (q-1)) within them); the between-class normalisation cancels in p, the
  within-class one sets the scale that delta is measured against. The paper's delta and eps are
  small positive constants; ours default to delta = 1e-4 and eps = 1e-8. The ridge keeps S_w
  invertible when the views vary in fewer than D directions; eps keeps log p finite, as RankMe's
  (`effective_rank`) does.

  LiDAR counts the directions in which samples differ more than their augmentations do: from 1 to
  rank(S_b) <= min(n - 1, D), up to eps's share (D eps log(1/eps), under 1e-4 for D <= 512). When all
  samples have the same mean view (S_b = 0: no direction tells them apart), every p_k is eps and LiDAR
  is its minimum, exp(D eps log(1/eps)) ~ 1 + 1.8e-7 D. Invariant to the order of the samples and to
  the order of each sample's views.

  Computed in float32: S_w's inverse square root by `eigh` (its eigenvalues held at delta or above, as
  the ridge guarantees in exact arithmetic), then the eigenvalues of the symmetrised S_lda by `eigvalsh`,
  clipped at 0. Any NaN or inf in `embeddings` gives NaN.

  Args:
    embeddings: `(num_samples, num_views, D)` embeddings (n samples, q views each), any float dtype.
    delta: the ridge added to the within-class covariance, > 0.
    eps: the floor added to each normalised eigenvalue, > 0 (it keeps log p finite).

  Returns:
    Scalar float32 LiDAR.

  Raises:
    ValueError: if `embeddings` is not 3-D, or has fewer than 2 samples or 2 views per sample.

  References:
    Thilak, Huang, Saremi, Dinh, Goh, Nakkiran, Susskind, Littwin, "LiDAR: Sensing Linear Probing
    Performance in Joint Embedding SSL Architectures", ICLR 2024 (arXiv:2312.04000).
  """
  if embeddings.ndim != 3:
    raise ValueError(f"lidar: embeddings must be a 3-D (samples, views, dim) array, got shape {embeddings.shape}.")
  num_samples, num_views, dim = embeddings.shape
  if num_samples < 2 or num_views < 2:
    raise ValueError(f"lidar: needs at least 2 samples of at least 2 views each, got shape {embeddings.shape}.")
  z = embeddings.astype(jnp.float32)
  class_means = jnp.mean(z, axis=1)
  between = class_means - jnp.mean(class_means, axis=0)
  within = (z - class_means[:, None, :]).reshape(-1, dim)
  highest = jax.lax.Precision.HIGHEST
  sigma_b = jnp.matmul(between.T, between, precision=highest) / (num_samples - 1)
  sigma_w = jnp.matmul(within.T, within, precision=highest) / (num_samples * (num_views - 1))
  whiten = _inverse_sqrt(sigma_w + delta * jnp.eye(dim, dtype=jnp.float32), delta)
  sigma_lda = jnp.matmul(jnp.matmul(whiten, sigma_b, precision=highest), whiten, precision=highest)
  eigenvalues = jnp.maximum(jnp.linalg.eigvalsh((sigma_lda + sigma_lda.T) / 2), 0.0)
  p = eigenvalues / jnp.maximum(jnp.sum(eigenvalues), jnp.finfo(jnp.float32).tiny) + eps
  value = jnp.exp(-jnp.sum(p * jnp.log(p)))
  return jnp.where(jnp.all(jnp.isfinite(z)), value, jnp.nan)
