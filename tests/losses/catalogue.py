"""Every public loss as `fn(key, z1, z2) -> scalar`, for tests that sweep all of them."""

import jax
import jax.numpy as jnp

from jax_ssl import losses

# SAG-VICReg's readings: every graph, and the other options switched once from the default.
SAG_READINGS = {
    "cross_view": dict(graph="cross_view"),
    "cross_view_own": dict(graph="cross_view_own"),
    "same_view": dict(graph="same_view"),
    "scale_over_row": dict(scale_over="row"),
    "regularize_views": dict(regularize="views"),
}


def _sag_vicreg_reading(k, **options):
  return lambda key, a, b: losses.sag_vicreg_loss(key, a, b, k=k, **options)[0]


def scalar_losses(k: int = 3, num_slices: int = 16):
  """name -> fn(key, z1, z2); `k` neighbours for SAG-VICReg, `num_slices` random slices."""

  def directions(key, z):
    return losses.random_directions(key, z.shape[1], num_slices)

  def mixed(a, b):  # a third view; mixed in float32 so bfloat16 inputs reach the loss unrounded
    return a.astype(jnp.float32) + b.astype(jnp.float32)

  return {
      "invariance": lambda key, a, b: losses.invariance(a, b),
      "invariance_weighted": lambda key, a, b: losses.invariance(a, b, jnp.linspace(0.1, 1.0, a.shape[0])),
      "variance": lambda key, a, b: losses.variance(a),
      "covariance": lambda key, a, b: losses.covariance(a),
      "vicreg_loss": lambda key, a, b: losses.vicreg_loss(a, b)[0],
      "sag_vicreg_loss": lambda key, a, b: losses.sag_vicreg_loss(key, a, b, k=k)[0],
      **{f"sag_vicreg_loss[{reading}]": _sag_vicreg_reading(k, **options) for reading, options in SAG_READINGS.items()},
      "scale_loss": lambda key, a, b: losses.scale_loss(a),
      "center_loss": lambda key, a, b: losses.center_loss(a),
      "shape_loss": lambda key, a, b: losses.shape_loss(a, directions(key, a)),
      "visreg_regularizer": lambda key, a, b: losses.visreg_regularizer(a, directions(key, a)),
      "prediction_loss": lambda key, a, b: losses.prediction_loss(jnp.stack([a, b]), jnp.stack([a, b, mixed(a, b)])),
      "visreg_loss": lambda key, a, b: losses.visreg_loss(
          key, jnp.stack([a, b]), jnp.stack([mixed(a, b)]), num_slices=num_slices)[0],
      "swd_gaussian": lambda key, a, b: losses.swd_gaussian(a, directions(key, a)),
      "sigreg": lambda key, a, b: losses.sigreg(a, directions(key, a)),
      "mst_length": lambda key, a, b: losses.mst_length(a),
      "mst_length_loss": lambda key, a, b: losses.mst_length_loss(a),
      "sphere_loss": lambda key, a, b: losses.sphere_loss(a),
      "t_reg": lambda key, a, b: losses.t_reg(a),
      "tregs_loss": lambda key, a, b: losses.tregs_loss(a, b)[0],
      "barlow_twins_loss": lambda key, a, b: losses.barlow_twins_loss(a, b)[0],
      "nt_xent": lambda key, a, b: losses.nt_xent(a, b),
      "byol_loss": lambda key, a, b: losses.byol_loss(a, b),
      "clip_loss": lambda key, a, b: losses.clip_loss(a, b, jnp.log(1 / 0.07)),
      # Two patches per row, the second visible (not scored); a one-value patch cannot be standardised.
      "mae_loss": lambda key, a, b: losses.mae_loss(
          jnp.stack([a, b], axis=1), jnp.stack([b, mixed(a, b)], axis=1), jnp.tile(jnp.array([1.0, 0.0]), (len(a), 1)),
          norm_pix=a.shape[1] > 1),
      # Two blocks of one patch each on a two-patch grid: each row's predictions of b and mixed(a, b).
      "ijepa_loss": lambda key, a, b: losses.ijepa_loss(
          jnp.stack([jnp.stack([a, b], axis=1), jnp.stack([b, a], axis=1)], axis=1),
          jnp.stack([b, mixed(a, b)], axis=1), jnp.tile(jnp.eye(2), (len(a), 1, 1))),
      # The teacher's outputs of the two views, their third (local) view mixed; center 0.
      "dino_loss": lambda key, a, b: losses.dino_loss(jnp.stack([a, b, mixed(a, b)]), jnp.stack([b, a]),
                                                      jnp.zeros(a.shape[1])),
  }


def all_losses(k: int = 3, num_slices: int = 16, with_gradients: bool = False):
  """One jitted `fn(key, z1, z2) -> {name: loss}` over every loss (`{name: (loss, (d/dz1, d/dz2))}`).

  One compilation for the whole sweep: compiling each loss on its own costs
  twice as long, for the same checks.
  """
  fns = scalar_losses(k, num_slices)
  if with_gradients:
    fns = {name: jax.value_and_grad(fn, argnums=(1, 2)) for name, fn in fns.items()}
  return jax.jit(lambda key, z1, z2: {name: fn(key, z1, z2) for name, fn in fns.items()})
