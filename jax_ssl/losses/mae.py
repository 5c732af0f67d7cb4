"""MAE's reconstruction loss: mean squared error on the hidden patches, against per-patch normalised pixels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jax_ssl.losses import _checks

# Added to each target patch's variance before the square root (the paper's code).
NORM_PIX_EPSILON = 1e-6


def mae_loss(predictions: ArrayLike, patches: ArrayLike, mask: ArrayLike, norm_pix: bool = True) -> jax.Array:
  """`sum_{n,p} mask[n,p] mean_j (pred[n,p,j] - target[n,p,j])^2 / sum mask`: the error on hidden patches.

  With `norm_pix`, each target patch is standardised by its own mean and
  unbiased variance over its L values: `(x - mean) / sqrt(var + 1e-6)`, the
  paper's "normalized pixels" (its default); else the target is the patch.

  Args:
    predictions: (N, P, L) the decoder's pixels of every patch.
    patches: (N, P, L) the image's patches (`models.mae.patchify`), no gradient; L >= 2 with `norm_pix`.
    mask: (N, P), 1 on the hidden patches the loss is computed on, 0 on the visible ones.
    norm_pix: standardise each target patch.

  Returns:
    The scalar loss.

  Raises:
    ValueError: if the shapes differ or are not (N, P, L) and (N, P).

  References:
    He, Chen, Xie, Li, Dollar, Girshick, "Masked Autoencoders Are Scalable Vision Learners", CVPR 2022,
    Sec. 3 ("Reconstruction target").
  """
  predictions = _checks.views("predictions", predictions)
  patches = lax.stop_gradient(_checks.views("patches", patches))
  _checks.same_shape("predictions", predictions, "patches", patches)
  mask = jnp.asarray(mask, jnp.float32)
  if mask.shape != predictions.shape[:2]:
    raise ValueError(f"mask must be (N, P) = {predictions.shape[:2]}, one entry per patch; got {mask.shape}.")
  if norm_pix:
    if patches.shape[-1] < 2:
      raise ValueError(f"norm_pix standardises each patch over its values; patches of {patches.shape[-1]} "
                       "value cannot be.")
    mean = jnp.mean(patches, axis=-1, keepdims=True)
    variance = jnp.var(patches, axis=-1, keepdims=True, ddof=1)
    patches = (patches - mean) / jnp.sqrt(variance + NORM_PIX_EPSILON)
  per_patch = jnp.mean(jnp.square(predictions - patches), axis=-1)
  return jnp.sum(per_patch * mask) / jnp.sum(mask)
