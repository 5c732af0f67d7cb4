"""VISReg: variance-invariance-sketching regularization (Wu, Balestriero, Levine, arXiv 2606.02572).

VICReg's covariance is replaced by a sliced-W2 "shape" loss on standardised
embeddings, the scale is controlled separately, and the invariance term is
LeJEPA's prediction loss over multi-crop views. The regularizer follows the
paper's Algorithm 1:

  mu = mean(z), std = std_ddof0(z) + 1e-6
  center = mean_d mu_d^2
  scale  = mean_d (1 - std_d)^2
  shape  = mean((sort(((z - mu) / sg(std)) @ W, axis=0) - q)^2)

The stop-gradient on the std in `shape` keeps the shape loss from pulling on
the scale, which is why VISReg keeps a useful gradient under collapse while
SIGReg's vanishes (Figure 2).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.typing import ArrayLike

from jax_ssl import ops
from jax_ssl.losses import _checks
from jax_ssl.losses import sketching
from jax_ssl.losses.vicreg import Metrics

# Added to the per-dimension std (official code): a collapsed batch has std 0,
# which the shape loss divides by.
_STD_EPS = 1e-6


def _mean_and_std(z: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-dimension mean and `std_ddof0 + 1e-6`; the std has zero gradient where it is exactly 0."""
  mean = jnp.mean(z, axis=0)
  std = ops.safe_norm(z - mean, axis=0) / jnp.sqrt(z.shape[0])
  return mean, std + _STD_EPS


def scale_loss(z: ArrayLike) -> jax.Array:
  """VISReg's scale term `mean_d (1 - std_d)^2`, std over the batch with ddof = 0, plus 1e-6.

  Args:
    z: (N, D) embeddings of one view.

  Returns:
    The scalar term: 0 when every dimension has unit standard deviation.

  References:
    Wu, Balestriero, Levine, arXiv 2606.02572, Alg. 1.
  """
  z = _checks.embeddings("z", z, min_rows=1)
  _, std = _mean_and_std(z)
  return jnp.mean(jnp.square(1.0 - std))


def center_loss(z: ArrayLike) -> jax.Array:
  """VISReg's center term `mean_d mu_d^2`: squared norm of the batch mean, averaged over dimensions.

  Args:
    z: (N, D) embeddings of one view.

  Returns:
    The scalar term: 0 for a centred batch.

  References:
    Wu, Balestriero, Levine, arXiv 2606.02572, Alg. 1.
  """
  z = _checks.embeddings("z", z, min_rows=1)
  return jnp.mean(jnp.square(jnp.mean(z, axis=0)))


def shape_loss(z: ArrayLike, directions: ArrayLike, detach_std: bool = True) -> jax.Array:
  """Sliced W2 between the standardised embeddings and N(0, I).

  `zn = (z - mu) / sg(std)` (std as in `scale_loss`), then
  `mean((sort(zn @ directions, axis=0) - q[:, None])^2)` with
  `q = gaussian_quantiles(N)` over the global batch.

  Args:
    z: (N, D) embeddings.
    directions: (D, K) unit slice directions.
    detach_std: stop the gradient through the std (the paper's decoupling of
      shape from scale); False is the ablation of VISReg's Table 8.

  References:
    Wu, Balestriero, Levine, arXiv 2606.02572, Alg. 1.
  """
  z = _checks.embeddings("z", z, min_rows=1)
  directions = _checks.directions("directions", directions, z.shape[1])
  mean, std = _mean_and_std(z)
  standardised = (z - mean) / (lax.stop_gradient(std) if detach_std else std)
  return sketching.sliced_w2_to_gaussian(standardised @ directions)


def _regularizer_terms(z: jax.Array, directions: jax.Array, detach_std: bool = True) -> dict[str, jax.Array]:
  return {"scale": scale_loss(z), "shape": shape_loss(z, directions, detach_std), "center": center_loss(z)}


def _weighted_sum(terms, lambda_scale, lambda_shape, lambda_center) -> jax.Array:
  return lambda_scale * terms["scale"] + lambda_shape * terms["shape"] + lambda_center * terms["center"]


def visreg_terms(views: ArrayLike, directions: ArrayLike, detach_std: bool = True) -> Metrics:
  """The regularizer's three unweighted terms, each averaged over the views.

  Args:
    views: (V, N, D) embeddings of every crop.
    directions: (D, K) unit slice directions, shared by the views.
    detach_std: see `shape_loss`.

  Returns:
    `{"scale", "shape", "center"}`: `mean_v scale_loss(views[v])` and so on. A
    mean over slices, so the means over blocks of directions average to the
    terms over all of them (what the trainer does on a device mesh).
  """
  views = _checks.views("views", views)
  terms = jax.vmap(functools.partial(_regularizer_terms, detach_std=detach_std), in_axes=(0, None))(views, directions)
  return {name: jnp.mean(value) for name, value in terms.items()}


def combine_visreg(
    prediction: ArrayLike,
    terms: Metrics,
    lam: float = 0.9,
    lambda_scale: float = 1.0,
    lambda_shape: float = 1.0,
    lambda_center: float = 1.0,
) -> tuple[jax.Array, Metrics]:
  """VISReg's objective from its parts: `(1 - lam) prediction + lam (weighted scale + shape + center)`.

  Args:
    prediction: `prediction_loss` of the views.
    terms: `visreg_terms` of the views.
    lam, lambda_scale, lambda_shape, lambda_center: as in `visreg_loss`.

  Returns:
    `(loss, metrics)`: `prediction`, `regularizer` (the weighted sum) and the
    unweighted `scale`, `shape`, `center`.
  """
  regularizer = _weighted_sum(terms, lambda_scale, lambda_shape, lambda_center)
  loss = (1.0 - lam) * prediction + lam * regularizer
  return loss, {"prediction": prediction, "regularizer": regularizer, **terms}


def visreg_regularizer(
    z: ArrayLike,
    directions: ArrayLike,
    lambda_scale: float = 1.0,
    lambda_shape: float = 1.0,
    lambda_center: float = 1.0,
    detach_std: bool = True,
) -> jax.Array:
  """`lambda_scale * scale_loss + lambda_shape * shape_loss + lambda_center * center_loss`.

  Args:
    z: (N, D) embeddings of one view.
    directions: (D, K) unit slice directions (`random_directions`).
    lambda_scale, lambda_shape, lambda_center: the three terms' weights
      (VISReg*: 0.5, 2, 0.5).
    detach_std: the shape term sees the std through a stop-gradient (see `shape_loss`).

  Returns:
    The scalar regularizer of one view.

  References:
    Wu, Balestriero, Levine, arXiv 2606.02572, Alg. 1.
  """
  return _weighted_sum(_regularizer_terms(z, directions, detach_std), lambda_scale, lambda_shape, lambda_center)


def prediction_loss(global_views: ArrayLike, all_views: ArrayLike) -> jax.Array:
  """LeJEPA's invariance: every view predicts the mean of the global views.

  `mu = mean_v global_views[v]` (N, D); `mean((mu - all_views)^2)` over views,
  batch and dimensions. No stop-gradient: the centre moves too.

  Args:
    global_views: (V_g, N, D) embeddings of the global crops.
    all_views: (V, N, D) embeddings of every crop (global and local).
  """
  global_views = _checks.views("global_views", global_views)
  all_views = _checks.views("all_views", all_views)
  if global_views.shape[1:] != all_views.shape[1:]:
    raise ValueError(
        "global_views and all_views must agree in batch and width (axes 1 and 2), "
        f"got {global_views.shape} and {all_views.shape}.")
  center = jnp.mean(global_views, axis=0)
  return jnp.mean(jnp.square(center[None] - all_views))


def visreg_loss(
    key: jax.Array,
    global_views: ArrayLike,
    local_views: ArrayLike | None = None,
    lam: float = 0.9,
    num_slices: int = 1024,
    *,
    lambda_scale: float = 1.0,
    lambda_shape: float = 1.0,
    lambda_center: float = 1.0,
    detach_std: bool = True,
) -> tuple[jax.Array, Metrics]:
  """The VISReg objective over multi-crop views.

  `(1 - lam) * prediction_loss(global, all) + lam * mean_v visreg_regularizer(all[v], W)`
  where `all` stacks the global and local views and `W` holds `num_slices`
  fresh random directions drawn from `key`, shared by the views.

  Args:
    key: PRNG key for the slice directions of this step.
    global_views: (V_g, N, D) embeddings of the global crops.
    local_views: optional (V_l, N, D) embeddings of the local crops.
    lam: weight of the regularizer against the prediction loss.
    num_slices: number of random directions K.
    lambda_scale, lambda_shape, lambda_center: weights inside the regularizer
      (the paper's VISReg* raises `lambda_shape` on low-quality data).
    detach_std: see `shape_loss`.

  Returns:
    `(loss, metrics)`: `prediction`, `regularizer` and its unweighted terms
    `scale`, `shape`, `center`, each averaged over views.
  """
  global_views = _checks.views("global_views", global_views)
  all_views = global_views
  if local_views is not None:
    local_views = _checks.views("local_views", local_views)
    if local_views.shape[1:] != global_views.shape[1:]:
      raise ValueError(
          "local_views must match global_views in batch and width (axes 1 and 2), "
          f"got {local_views.shape} and {global_views.shape}.")
    all_views = jnp.concatenate([global_views, local_views], axis=0)
  directions = ops.random_directions(key, global_views.shape[-1], num_slices)
  terms = visreg_terms(all_views, directions, detach_std)
  return combine_visreg(prediction_loss(global_views, all_views), terms, lam, lambda_scale, lambda_shape,
                        lambda_center)
