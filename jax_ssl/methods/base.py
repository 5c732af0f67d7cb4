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
from typing import Any
from typing import ClassVar
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jax_ssl import ops

Metrics = dict[str, jax.Array]


class Embeddings(NamedTuple):
  """Outputs of the networks for every view of the global batch.

  global_views: (V_g, N, D) online projector outputs of the global views (MAE, I-JEPA: encoder features).
  local_views: (V_l, N, D) of the local views, or None (two-view methods).
  predictions: (V_g, N, D) online predictor outputs (BYOL), or None.
  targets: (V_g, N, D) EMA target head outputs (BYOL, DINO), or None; no gradient.
  statistics: the method's running statistics before this step (DINO's center), or None.
  mask: (V_g, N, P) 1 on the patches each view hid from the encoder (MAE), or None. With it,
    `predictions` are (V_g, N, P, L) reconstructed pixels and `targets` the views' (V_g, N, P, L) patches.
    For I-JEPA, (V_g, N, M, P) bool target blocks: `predictions` are the predictor's (V_g, N, M, P, D)
    tokens for each block and `targets` the target encoder's (V_g, N, P, D) standardised tokens.
  log_logit_scale: CLIP's learned log inverse temperature (a scalar), or None. CLIP's `global_views`
    are (2, N, D): the images' embeddings, then their captions', each of unit norm.
  """

  global_views: jax.Array
  local_views: jax.Array | None = None
  predictions: jax.Array | None = None
  targets: jax.Array | None = None
  statistics: Any = None
  mask: jax.Array | None = None
  log_logit_scale: jax.Array | None = None

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
    head: the head on the backbone: "projector" (an MLP, `model.projector`), "dino"
      (`models.DINOHead` with the method's `num_prototypes`), "mae" (`models.MAEDecoder`: the
      trainer then encodes each global view's visible patches and reconstructs the hidden ones) or
      "ijepa" (`models.IJEPAPredictor`: the trainer encodes a context block and predicts the target
      network's tokens of the target blocks) or "clip" (`model.projector` on the images beside a
      `models.TextTransformer` on their captions, and a learned logit scale).
    target: needs an EMA target network (BYOL, DINO); such a method defines
      `update_target(target_params, online_params, progress)` (see `EMATarget`).
    statistics: keeps running statistics across steps (DINO's center); such a method defines
      `initial_statistics()` and `update_statistics(statistics, embeddings)`, and reads them in
      `loss` from `embeddings.statistics`.
    num_slices: total random slices K over the mesh; 0 for a method without slices.
      A sliced method declares it as a field.
    evaluate_target: probes and evaluations read the target network, not the online one (I-JEPA).
  """

  name: ClassVar[str] = ""
  multi_crop: ClassVar[bool] = False
  predictor: ClassVar[bool] = False
  head: ClassVar[str] = "projector"
  target: ClassVar[bool] = False
  statistics: ClassVar[bool] = False
  num_slices: ClassVar[int] = 0
  evaluate_target: ClassVar[bool] = False

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


@dataclasses.dataclass(frozen=True)
class EMATarget(Method):
  """A method whose target network is an EMA of the online one (BYOL, DINO's teacher).

  The momentum follows BYOL's cosine schedule from `tau_base` at the start to
  1 at the end (`target_momentum`); DINO uses the same schedule.
  """

  target: ClassVar[bool] = True
  tau_base: float = 0.996

  def __post_init__(self):
    check(0.0 <= self.tau_base <= 1.0, f"{self.name}.tau_base is a momentum in [0, 1]; got {self.tau_base}.")

  def target_momentum(self, progress: jax.Array) -> jax.Array:
    """`1 - (1 - tau_base) (cos(pi progress) + 1) / 2`: tau_base at progress 0, 1 at progress 1.

    Args:
      progress: fraction of training done, in [0, 1]; scalar (or any shape, elementwise).

    Returns:
      The EMA momentum tau for the target update, shaped like `progress`.

    References:
      Grill et al., "Bootstrap Your Own Latent", NeurIPS 2020, Sec. 3.2.
    """
    return 1.0 - (1.0 - self.tau_base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0

  def update_target(self, target_params, online_params, progress):
    """The EMA target after a step: `m target + (1 - m) online`, `m = target_momentum(progress)`.

    Args:
      target_params: pytree of the target network's parameters.
      online_params: pytree of the online network's parameters, same structure.
      progress: scalar fraction of training done, in [0, 1].

    Returns:
      The moved target parameters, with `target_params`' structure.
    """
    momentum = self.target_momentum(progress)
    return jax.tree.map(lambda t, p: momentum * t + (1 - momentum) * p, target_params, online_params)


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
