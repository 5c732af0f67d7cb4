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
from typing import Literal
from typing import NamedTuple

import jax

from jax_ssl import ops

Metrics = dict[str, jax.Array]


class Embeddings(NamedTuple):
  """What a projector or DINO head gives a method: the outputs for every view of the global batch.

  global_views: (V_g, N, D) online head outputs of the global views.
  local_views: (V_l, N, D) of the local views, or None (two-view methods).
  predictions: (V_g, N, D) online predictor outputs (BYOL), or None.
  targets: (V_g, N, D) EMA target head outputs (BYOL, DINO), or None; no gradient.
  statistics: the method's running statistics before this step (DINO's center), or None.
  """

  global_views: jax.Array
  local_views: jax.Array | None = None
  predictions: jax.Array | None = None
  targets: jax.Array | None = None
  statistics: Any = None

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


class MaskedPatches(NamedTuple):
  """What MAE's decoder gives its method, per global view.

  global_views: (V, N, F) the encoder's CLS token of each view's visible patches (what T-REG spreads).
  reconstructions: (V, N, P, L) the decoder's pixels for every patch.
  patches: (V, N, P, L) the views' own patches (the reconstruction targets).
  mask: (V, N, P) 1 on the patches each view hid from the encoder.
  """

  global_views: jax.Array
  reconstructions: jax.Array
  patches: jax.Array
  mask: jax.Array

  @property
  def all_views(self) -> jax.Array:
    """(V, N, F): the encoder's features of every view."""
    return self.global_views


class TargetBlocks(NamedTuple):
  """What I-JEPA's predictor gives its method, per global view.

  global_views: (V, N, F) the online encoder's pooled context tokens (what T-REG spreads).
  predictions: (V, N, M, P, D) the predictor's tokens for each of the M target blocks.
  targets: (V, N, P, D) the EMA target encoder's standardised tokens of the whole view; no gradient.
  blocks: (V, N, M, P) bool, the patches of each target block.
  """

  global_views: jax.Array
  predictions: jax.Array
  targets: jax.Array
  blocks: jax.Array

  @property
  def all_views(self) -> jax.Array:
    """(V, N, F): the online encoder's features of every view."""
    return self.global_views


class ImageText(NamedTuple):
  """What CLIP's two towers give its method: images and their captions in one space.

  global_views: (2, N, D) the images' embeddings, then their captions', each of unit norm.
  log_logit_scale: the learned log inverse temperature (a scalar).
  """

  global_views: jax.Array
  log_logit_scale: jax.Array

  @property
  def all_views(self) -> jax.Array:
    """(2, N, D): the images' embeddings, then the captions'."""
    return self.global_views

  @property
  def two_views(self) -> tuple[jax.Array, jax.Array]:
    """`(images, texts)`, (N, D) each."""
    return self.global_views[0], self.global_views[1]


# Any head's embeddings: each has `global_views` (its first view is what the trainer monitors) and
# `all_views` (what an add-on such as T-REG regularises).
AnyEmbeddings = Embeddings | MaskedPatches | TargetBlocks | ImageText
HeadKind = Literal["projector", "dino", "mae", "ijepa", "clip"]


class RunShape(NamedTuple):
  """What a method may need to know of the run it trains in, to refuse one it cannot (`Method.check_run`)."""

  global_batch_size: int
  num_devices: int
  num_global: int
  num_local: int


@dataclasses.dataclass(frozen=True)
class Method(abc.ABC):
  """A self-supervised objective and what it needs from the trainer.

  Subclasses are frozen dataclasses whose fields are the hyperparameters,
  validated on construction (`ValueError`, one line), and which define
  `name` and `loss`. Class attributes:

    name: the method's name in configs (`method.name`), and its config section.
    multi_crop: takes any number of global and local views (else exactly two global views).
    predictor: needs an online predictor head (BYOL).
    head: the kind of head on the backbone (`HeadKind`): "projector" (an MLP, `model.projector`),
      "dino" (DINO's prototype head), "mae" (a decoder reconstructing hidden patches), "ijepa" (a
      predictor of hidden blocks' tokens) or "clip" (a projector beside a text tower). The trainer's
      head of that kind builds the modules and hands `loss` its own embeddings type (`Embeddings`,
      `MaskedPatches`, `TargetBlocks` or `ImageText`).
    target: needs an EMA target network (BYOL, DINO, I-JEPA); such a method defines
      `update_target(target_params, online_params, progress)` (see `ema_target.EMATarget`).
    statistics: keeps running statistics across steps (DINO's center); such a method defines
      `initial_statistics()` and `update_statistics(statistics, embeddings)`, and reads them in
      `loss` from `embeddings.statistics`.
    evaluate_target: probes and evaluations read the target network, not the online one (I-JEPA).
    smoke_caps: upper bounds on hyperparameters for a seconds-long smoke run (`configs/common.smoke`).
  """

  name: ClassVar[str] = ""
  multi_crop: ClassVar[bool] = False
  predictor: ClassVar[bool] = False
  head: ClassVar[HeadKind] = "projector"
  target: ClassVar[bool] = False
  statistics: ClassVar[bool] = False
  evaluate_target: ClassVar[bool] = False
  smoke_caps: ClassVar[dict[str, int]] = {}

  @property
  def total_slices(self) -> int:
    """K, the random slices of a step over the whole mesh; 0 for a method without slices."""
    return 0

  @property
  def unwrapped(self) -> Method:
    """The method without add-ons: the one whose hyperparameters shape the heads."""
    return self

  def check_run(self, run: RunShape) -> None:
    """Refuse, in one line, a run this method cannot train in; called by the trainer's config check.

    The base checks the views: a method without `multi_crop` compares exactly two global views.

    Args:
      run: the global batch, device count and view counts of the run.

    Raises:
      ValueError: naming the setting to change.
    """
    if not self.multi_crop and (run.num_global != 2 or run.num_local != 0):
      raise ValueError(f"method {self.name!r} compares two views; it cannot take {run.num_global} global and "
                       f"{run.num_local} local views.")

  @abc.abstractmethod
  def loss(self, embeddings: AnyEmbeddings, key: jax.Array,
           directions: jax.Array | None = None) -> tuple[jax.Array, Metrics]:
    """`(loss, metrics)` on the global batch.

    Args:
      embeddings: the head's outputs for every view of the global batch (its `head`'s embeddings type).
      key: PRNG key of the step (SAG-VICReg's random walk).
      directions: (D, K_block) unit slice directions for a sliced method
        (all K of them on one device, a column block on a mesh); None otherwise.

    Returns:
      The scalar loss, and its named terms.
    """

  def slice_directions(self, key: jax.Array, dim: int) -> jax.Array:
    """The step's (dim, K) slice directions: `ops.random_directions(key, dim, total_slices)`.

    Args:
      key: PRNG key of the step.
      dim: the embedding width D.

    Returns:
      `(dim, total_slices)` float32 array of unit-norm columns.

    Raises:
      ValueError: if `dim` or `total_slices` is below 1 (a method without slices).
    """
    return ops.random_directions(key, dim, self.total_slices)


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


def non_negative(method: Method, *fields: str) -> None:
  """Refuse a negative value in any of `fields` (loss weights), naming `<method>.<field>`.

  Args:
    method: the method being constructed.
    *fields: names of its fields that are weights.

  Raises:
    ValueError: one line naming the first negative field.
  """
  for field in fields:
    value = getattr(method, field)
    check(value >= 0, f"{method.name}.{field} must not be negative; got {value}.")


def check_transformer(method: Method, prefix: str, sincos_positions: bool = False) -> None:
  """A method's transformer head (`<prefix>_width`, `_depth`, `_heads`): positive sizes, whole heads.

  Args:
    method: the method being constructed.
    prefix: the fields' prefix (`decoder`, `predictor`, `text`).
    sincos_positions: the width must also be a multiple of 4 (2-D sine-cosine position embeddings).

  Raises:
    ValueError: one line naming the field out of range.
  """
  width, depth, heads = (getattr(method, f"{prefix}_{field}") for field in ("width", "depth", "heads"))
  for field, value in (("width", width), ("depth", depth), ("heads", heads)):
    check(value >= 1, f"{method.name}.{prefix}_{field} must be positive; got {value}.")
  multiple = "a multiple of 4 and of" if sincos_positions else "a multiple of"
  check(width % heads == 0 and (width % 4 == 0 or not sincos_positions),
        f"{method.name}.{prefix}_width must be {multiple} {prefix}_heads; got {width} and {heads}.")


def sliced_loss_on_one_device(method: Method, embeddings: AnyEmbeddings,
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
  directions = method.slice_directions(key, embeddings.global_views.shape[-1]) if method.total_slices else None
  return method.loss(embeddings, key, directions)
