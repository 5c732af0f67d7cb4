"""What a method is: a typed objective over the embeddings of all views of a batch.

A method is a frozen dataclass holding its own hyperparameters under its
paper's names. Its `loss(embeddings, key, directions)` composes
`jax_ssl.losses` into `(loss, metrics)`; everything it takes is an explicit
array: the embeddings of every view, the step's PRNG key, and, for a sliced
method (VISReg, LeJEPA, SWD), its block of random slice directions. Class
attributes say what the trainer must build for it (multi-crop views, a
predictor head, an EMA target network, slices).

Slices on a mesh: the trainer draws the (D, K) directions of the step, and
inside `shard_map` hands each device its own (D, K / M) column block; the
method averages its loss over the columns it is given, and the trainer
averages the devices' losses. That is the mean over all K slices because a
sliced method's loss is affine in its per-slice means (every term not over
slices is the same on every device).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar
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

  @property
  def two_views(self) -> tuple[jax.Array, jax.Array]:
    """The first two global views, (N, D) each: what a two-view method compares."""
    return self.global_views[0], self.global_views[1]


@dataclasses.dataclass(frozen=True)
class Method(abc.ABC):
  """A self-supervised objective and what it needs from the trainer.

  Subclasses are frozen dataclasses whose fields are the hyperparameters,
  validated on construction (`ValueError`, one line), and which define
  `name` and `loss`. Class attributes:

    name: the method's name in configs (`method.name`), and its config section.
    multi_crop: takes any number of global and local views (else exactly two global views).
    predictor: needs an online predictor head (BYOL).
    target: needs an EMA target network (BYOL); such a method defines
      `update_target(target_params, online_params, progress)`.
    num_slices: total random slices K over the mesh; 0 for a method without slices.
      A sliced method declares it as a field.
  """

  name: ClassVar[str] = ""
  multi_crop: ClassVar[bool] = False
  predictor: ClassVar[bool] = False
  target: ClassVar[bool] = False
  num_slices: ClassVar[int] = 0

  @abc.abstractmethod
  def loss(self, embeddings: Embeddings, key: jax.Array,
           directions: jax.Array | None = None) -> tuple[jax.Array, Metrics]:
    """`(loss, metrics)` on the global batch.

    Args:
      embeddings: the networks' outputs for every view of the global batch.
      key: PRNG key of the step (SAG-VICReg's random walk).
      directions: (D, K_block) unit slice directions for a sliced method
        (all K of them on one device, a column block on a mesh); None otherwise.

    Returns:
      The scalar loss, and its named terms.
    """

  def slice_directions(self, key: jax.Array, dim: int) -> jax.Array:
    """The step's (dim, num_slices) slice directions: `ops.random_directions(key, dim, num_slices)`.

    Args:
      key: PRNG key of the step.
      dim: the embedding width D.

    Returns:
      `(dim, num_slices)` float32 array of unit-norm columns.

    Raises:
      ValueError: if `dim` or `num_slices` is below 1 (a method without slices).
    """
    return ops.random_directions(key, dim, self.num_slices)


def check(condition: bool, message: str) -> None:
  """Raise ValueError(message) unless `condition`: a method's hyperparameter check, one line.

  Args:
    condition: whether the hyperparameters are valid.
    message: the one-line error message.

  Raises:
    ValueError: with `message`, if `condition` is false.
  """
  if not condition:
    raise ValueError(message)


def sliced_loss_on_one_device(method: Method, embeddings: Embeddings,
                              key: jax.Array) -> tuple[jax.Array, Metrics]:
  """`method.loss` with all its slices on one device: what the trainer computes on a mesh, by blocks.

  The directions are `method.slice_directions(key, D)`, from the same key as the walk.

  Args:
    method: the method whose loss to compute.
    embeddings: the networks' outputs for every view of the global batch.
    key: PRNG key of the step, used both for the directions and by the loss itself.

  Returns:
    `(loss, metrics)` as `method.loss` returns them; directions are None for a method without slices.
  """
  directions = method.slice_directions(key, embeddings.global_views.shape[-1]) if method.num_slices else None
  return method.loss(embeddings, key, directions)
