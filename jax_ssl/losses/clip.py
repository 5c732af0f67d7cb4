"""CLIP's symmetric contrastive loss between the images and the texts of a batch."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from jax_ssl import ops
from jax_ssl.losses import _checks

# CLIP clips its learned logit scale at 100 (a temperature of 0.01).
MAX_LOGIT_SCALE = 100.0


def clip_loss(image_embeddings: ArrayLike, text_embeddings: ArrayLike, log_logit_scale: ArrayLike,
              max_logit_scale: float = MAX_LOGIT_SCALE) -> jax.Array:
  """CLIP's loss (Radford et al., 2021): each image picks its caption among the batch's, each caption its image.

  With `s = min(exp(log_logit_scale), max_logit_scale)`, the logits are
  `L_ij = s cos(image_i, text_j)` and the loss is the mean of the two
  cross-entropies, rows against columns and columns against rows, whose
  targets are the pairs on the diagonal:
  `(mean_i -log softmax_j(L_ij)[i] + mean_j -log softmax_i(L_ij)[j]) / 2`.
  `log_logit_scale` is the learned log inverse temperature; above the cap
  its gradient is zero, as CLIP's clamping of the parameter leaves it.

  Args:
    image_embeddings: (N, D) image embeddings (normalised here).
    text_embeddings: (N, D) text embeddings of the N captions, row i the caption of image i.
    log_logit_scale: scalar log of the inverse temperature.
    max_logit_scale: the cap on `exp(log_logit_scale)`.

  Returns:
    The scalar loss.

  References:
    Radford et al., "Learning Transferable Visual Models From Natural Language
    Supervision", ICML 2021 (Fig. 3's pseudocode).
  """
  images = _checks.embeddings("image_embeddings", image_embeddings, min_rows=1)
  texts = _checks.embeddings("text_embeddings", text_embeddings, min_rows=1)
  _checks.same_shape("image_embeddings", images, "text_embeddings", texts)
  log_logit_scale = jnp.asarray(log_logit_scale, jnp.float32)
  if log_logit_scale.ndim:
    raise ValueError(f"log_logit_scale must be a scalar, got shape {log_logit_scale.shape}.")
  scale = jnp.exp(jnp.minimum(log_logit_scale, jnp.log(max_logit_scale)))
  logits = scale * ops.cosine_similarities(images, texts)
  pairs = jnp.arange(images.shape[0])
  image_to_text = optax.softmax_cross_entropy_with_integer_labels(logits, pairs)
  text_to_image = optax.softmax_cross_entropy_with_integer_labels(logits.T, pairs)
  return (jnp.mean(image_to_text) + jnp.mean(text_to_image)) / 2
