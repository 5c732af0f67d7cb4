"""Add-ons: a regularizer added to any other method's loss, which keeps its views, heads and target."""

from __future__ import annotations

import dataclasses

from jax_ssl import losses
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import RunShape
from jax_ssl.methods.base import check
from jax_ssl.methods.joint import TREGS

ADD_ON = "+tregs"
ADD_ON_SECTION = "t_reg"


@dataclasses.dataclass(frozen=True)
class WithTReg(Method):
  """`base` plus T-REG on every view's embeddings: `+ sum_v (gamma L_E(z_v) + lam L_S(z_v))`.

  T-REGS adds t_reg(Z) + t_reg(Z'), one term per view; with more views, one
  per view. Everything else (views, heads, slices, target, statistics) is the
  base's, which `unwrapped` names; its hyperparameters are read there.
  """

  base: Method
  gamma: float = 0.2
  lam: float = 8e-4

  def __post_init__(self):
    check(not isinstance(self.base, (TREGS, WithTReg)), f"{self.base.name} already has T-REG; "
          f"'{ADD_ON}' adds it to the other methods.")
    for field in ("gamma", "lam"):
      check(getattr(self, field) >= 0, f"{ADD_ON_SECTION}.{field} must not be negative; got {getattr(self, field)}.")

  name = property(lambda self: self.base.name + ADD_ON)
  multi_crop = property(lambda self: self.base.multi_crop)
  predictor = property(lambda self: self.base.predictor)
  head = property(lambda self: self.base.head)
  target = property(lambda self: self.base.target)
  statistics = property(lambda self: self.base.statistics)
  evaluate_target = property(lambda self: self.base.evaluate_target)

  @property
  def total_slices(self) -> int:
    """The base's slices."""
    return self.base.total_slices

  @property
  def unwrapped(self) -> Method:
    """The base method."""
    return self.base

  def check_run(self, run: RunShape) -> None:
    """The base's checks of the run.

    Args:
      run: as `Method.check_run` takes it.
    """
    self.base.check_run(run)

  def slice_directions(self, key, dim):
    """The base's slice directions (`Method.slice_directions`).

    Args:
      key: PRNG key of the step.
      dim: the embedding width D.

    Returns:
      `(dim, K)` unit-norm columns.
    """
    return self.base.slice_directions(key, dim)

  def loss(self, embeddings, key, directions=None):
    loss, metrics = self.base.loss(embeddings, key, directions)
    # A loop, not vmap: the MST's exact-distance fallback is a `lax.cond`, which vmap would turn
    # into computing both branches for every view.
    t_reg_total = sum(losses.t_reg(z, self.gamma, self.lam) for z in embeddings.all_views)
    return loss + t_reg_total, {**metrics, "t_reg": t_reg_total}

  def target_momentum(self, progress):
    """The base's EMA momentum (a base with `target`).

    Args:
      progress: fraction of training done, in [0, 1].

    Returns:
      The base's momentum, shaped like `progress`.
    """
    return self.base.target_momentum(progress)

  def update_target(self, target_params, online_params, progress):
    """The base method's target update (a base with `target`, such as BYOL).

    Args:
      target_params, online_params, progress: as the base's `update_target` takes them.

    Returns:
      The base's moved target parameters.
    """
    return self.base.update_target(target_params, online_params, progress)

  def initial_statistics(self):
    """The base method's running statistics before training (a base with `statistics`, such as DINO).

    Returns:
      The base's statistics pytree.
    """
    return self.base.initial_statistics()

  def update_statistics(self, statistics, embeddings):
    """The base method's statistics after a step.

    Args:
      statistics: the statistics before the step.
      embeddings: the step's embeddings.

    Returns:
      The base's new statistics.
    """
    return self.base.update_statistics(statistics, embeddings)
