"""`python -m jax_ssl.main`: a demonstration of the regularizers, until the trainer lands.

Each regularizer of `jax_ssl.losses` alone optimises a free point cloud (no
network, no data) that starts almost collapsed: N points in R^D drawn at scale
1e-3 around a common offset. The table shows how far each one spreads the
cloud: per-dimension std, effective rank (RankMe, at most min(N, D)) and the
mean cosine between points (0 for an isotropic cloud, 1 when collapsed).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app
from absl import flags
from absl import logging

from jax_ssl import losses
from jax_ssl import ops

_STEPS = flags.DEFINE_integer("steps", 300, "Adam steps per regularizer.")
_POINTS = flags.DEFINE_integer("points", 256, "Points in the cloud (N).")
_DIM = flags.DEFINE_integer("dim", 32, "Dimension of the cloud (D).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initial cloud and the random slices.")

NUM_SLICES = 256


def regularizers() -> dict:
  """name -> loss(z, key): each alone, with its paper's default weights."""

  def directions(key, z):
    return losses.random_directions(key, z.shape[1], NUM_SLICES)

  return {
      "none (control)": lambda z, key: jnp.float32(0.0) * jnp.sum(z),
      "VICReg variance + covariance": lambda z, key: 25.0 * losses.variance(z) + losses.covariance(z),
      "VISReg regularizer": lambda z, key: losses.visreg_regularizer(z, directions(key, z)),
      "SIGReg (LeJEPA)": lambda z, key: losses.sigreg(z, directions(key, z)),
      "sliced W2 to N(0, I)": lambda z, key: losses.swd_gaussian(z, directions(key, z)),
      "T-REG": lambda z, key: losses.t_reg(z, gamma=1.0, lam=1.0),
  }


def spread(z: jax.Array) -> dict[str, float]:
  unit = z / jnp.linalg.norm(z, axis=1, keepdims=True)
  n = z.shape[0]
  mean_cosine = (jnp.sum(unit @ unit.T) - n) / (n * (n - 1))
  return {
      "std": float(jnp.mean(jnp.std(z, axis=0))),
      "effective_rank": float(ops.effective_rank(z - jnp.mean(z, axis=0))),
      "mean_cosine": float(mean_cosine),
  }


def optimise(loss_fn, z0: jax.Array, key: jax.Array, steps: int) -> jax.Array:
  optimizer = optax.adam(1e-2)

  @jax.jit
  def step(z, opt_state, key):
    grads = jax.grad(loss_fn)(z, key)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(z, updates), opt_state

  z, opt_state = z0, optimizer.init(z0)
  for key in jax.random.split(key, steps):
    z, opt_state = step(z, opt_state, key)
  return z


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)  # absl's INFO default would echo JAX's backend probing
  init_key, slice_key = jax.random.split(jax.random.key(_SEED.value))
  offset = jnp.ones(_DIM.value) / np.sqrt(_DIM.value)
  z0 = offset + 1e-3 * jax.random.normal(init_key, (_POINTS.value, _DIM.value))
  print(f"jax_ssl regularizer demo: {_POINTS.value} points in R^{_DIM.value}, start at scale 1e-3 "
        f"around a common offset, {_STEPS.value} Adam steps (lr 1e-2) on {jax.devices()[0].platform}.")
  print("The trainer (`python -m jax_ssl.main --config configs/<x>.py`) replaces this demo.\n")
  start = spread(z0)
  print(f"{'regularizer':32s} {'std/dim':>9s} {'eff. rank':>10s} {'mean cos':>9s} {'time':>7s}")
  print(f"{'(initial cloud)':32s} {start['std']:9.4f} {start['effective_rank']:10.2f} {start['mean_cosine']:9.3f}")
  for name, loss_fn in regularizers().items():
    began = time.perf_counter()
    z = optimise(loss_fn, z0, slice_key, _STEPS.value)
    result = spread(z)
    elapsed = time.perf_counter() - began
    print(f"{name:32s} {result['std']:9.4f} {result['effective_rank']:10.2f} {result['mean_cosine']:9.3f} "
          f"{elapsed:6.1f}s")


if __name__ == "__main__":
  app.run(main)
