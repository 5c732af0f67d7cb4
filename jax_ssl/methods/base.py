"""What a method is: the network outputs it needs, and how they become a loss.

A method maps the embeddings of all views of a batch to `(loss, metrics)` by
composing `jax_ssl.losses`. It declares what it needs from the trainer
(multi-crop views, a predictor head, an EMA target network, random slices) so
the trainer builds exactly that. Everything here is pure: the trainer passes
the step's PRNG key and hyperparameters in a `Context`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax

from jax_ssl import ops

Metrics = dict[str, jax.Array]


class Embeddings(NamedTuple):
  """Outputs of the networks for every view of the global batch.

  global_views: (V_g, N, D) online projector outputs of the global views.
  local_views: (V_l, N, D) of the local views, or None (two-view methods).
  predictions: (V_g, N, D) online predictor outputs (BYOL), or None.
  targets: (V_g, N, D) EMA target projector outputs (BYOL), or None; no gradient.
  """

  global_views: jax.Array
  local_views: jax.Array | None = None
  predictions: jax.Array | None = None
  targets: jax.Array | None = None

  @property
  def all_views(self) -> jax.Array:
    """(V, N, D): the global views, then the local ones."""
    if self.local_views is None:
      return self.global_views
    return jax.numpy.concatenate([self.global_views, self.local_views], axis=0)


# (fn(views (V, N, D), directions (D, K_block)) -> means over the block's slices (an array or a dict of them),
#  views, key, K) -> the same means over all K.
SliceMeans = jax.Array | dict[str, jax.Array]
SlicedMean = Callable[[Callable[[jax.Array, jax.Array], SliceMeans], jax.Array, jax.Array, int], SliceMeans]


def sliced_mean_on_one_device(fn, views: jax.Array, key: jax.Array, num_slices: int) -> jax.Array:
  """`fn` on all `num_slices` directions at once: the single-device `SlicedMean`.

  The directions are `random_directions(key, D, num_slices)`; a device mesh
  splits the same matrix into column blocks, one per device, and averages.
  """
  return fn(views, ops.random_directions(key, views.shape[-1], num_slices))


@dataclasses.dataclass(frozen=True)
class Context:
  """Everything a method's objective may use besides the embeddings.

  key: PRNG key of this step (random walks, random slices).
  hparams: the `method` section of the config, as a plain dict of numbers.
  progress: fraction of training done, in [0, 1] (schedules such as BYOL's momentum).
  sliced_mean: how to average a per-slice loss over `num_slices` random directions
    (on a mesh, each device takes its own block of directions).
  """

  key: jax.Array
  hparams: dict
  progress: jax.Array
  sliced_mean: SlicedMean = sliced_mean_on_one_device


@dataclasses.dataclass(frozen=True)
class Method:
  """A named objective and what it needs from the trainer.

  objective: (Embeddings, Context) -> (loss, metrics).
  multi_crop: takes any number of global and local views (else exactly two global views).
  predictor: needs an online predictor head (BYOL).
  target: needs an EMA target network (BYOL).
  sliced: averages a loss over random slices (VISReg, LeJEPA, SWD): num_slices must divide over devices.
  """

  name: str
  objective: Callable[[Embeddings, Context], tuple[jax.Array, Metrics]]
  multi_crop: bool = False
  predictor: bool = False
  target: bool = False
  sliced: bool = False
