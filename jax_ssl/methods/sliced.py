"""Sliced methods: LeJEPA's prediction loss beside a regularizer measured along random slices.

VISReg, LeJEPA (SIGReg) and the plain sliced-Wasserstein baseline all take
`(1 - lam) prediction + lam regularizer` over every view (LeJEPA's
composition), with `num_slices` random directions per step over the whole
mesh; the trainer splits them over the devices (docs/distributed.md).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import RunShape
from jax_ssl.methods.base import check
from jax_ssl.methods.base import non_negative


@dataclasses.dataclass(frozen=True)
class SlicedPrediction(Method):
  """The fields and checks every sliced method shares: `lam` in [0, 1] and K = `num_slices` over the mesh."""

  multi_crop: ClassVar[bool] = True
  smoke_caps: ClassVar[dict[str, int]] = {"num_slices": 64}
  lam: float = 0.9
  num_slices: int = 1024

  def __post_init__(self):
    check(0.0 <= self.lam <= 1.0, f"{self.name}.lam weighs the regularizer against the prediction loss, "
          f"in [0, 1]; got {self.lam}.")
    check(self.num_slices > 0, f"{self.name}.num_slices must be positive; got {self.num_slices}.")

  @property
  def total_slices(self) -> int:
    """K = `num_slices`, split over the devices of the mesh."""
    return self.num_slices

  def check_run(self, run: RunShape) -> None:
    """The views (`Method.check_run`), and `num_slices` a multiple of the device count (each takes a block).

    Args:
      run: as `Method.check_run` takes it.
    """
    super().check_run(run)
    check(self.num_slices % run.num_devices == 0, f"{self.name}.num_slices = {self.num_slices} is split over "
          f"{run.num_devices} devices; use a multiple of {run.num_devices}.")


def _prediction_plus(method: SlicedPrediction, embeddings, per_view_regularizer):
  """`(1 - lam) prediction + lam mean_v regularizer(view v)` over all views, with both terms logged."""
  views = embeddings.all_views
  prediction = losses.prediction_loss(embeddings.global_views, views)
  regularizer = jnp.mean(jax.vmap(per_view_regularizer)(views))
  return (1.0 - method.lam) * prediction + method.lam * regularizer, {"prediction": prediction,
                                                                      method.name: regularizer}


@dataclasses.dataclass(frozen=True)
class VISReg(SlicedPrediction):
  """VISReg (Wu, Balestriero & Levine, 2026): prediction + the scale / shape / center regularizer.

  `losses.visreg_terms` averaged over the views, weighted by `lambda_scale`,
  `lambda_shape`, `lambda_center` (`losses.combine_visreg`); the three terms
  are logged. `detach_std=False` differentiates the shape term through the
  std (the paper's ablation).
  """

  name: ClassVar[str] = "visreg"
  lambda_scale: float = 1.0
  lambda_shape: float = 1.0
  lambda_center: float = 1.0
  detach_std: bool = True

  def __post_init__(self):
    super().__post_init__()
    non_negative(self, "lambda_scale", "lambda_shape", "lambda_center")

  def loss(self, embeddings, key, directions=None):
    views = embeddings.all_views
    terms = losses.visreg_terms(views, directions, self.detach_std)
    return losses.combine_visreg(losses.prediction_loss(embeddings.global_views, views), terms, self.lam,
                                 self.lambda_scale, self.lambda_shape, self.lambda_center)


@dataclasses.dataclass(frozen=True)
class LeJEPA(SlicedPrediction):
  """LeJEPA (Balestriero & LeCun, 2025): prediction + SIGReg (`losses.sigreg`, `knots` quadrature points).

  lam defaults to 0.02, the SIGReg weight of VISReg's comparison (Sec. 4).
  """

  name: ClassVar[str] = "lejepa"
  lam: float = 0.02
  knots: int = 17

  def __post_init__(self):
    super().__post_init__()
    check(self.knots >= 2, f"{self.name}.knots (SIGReg's quadrature points) must be at least 2; got {self.knots}.")

  def loss(self, embeddings, key, directions=None):
    return _prediction_plus(self, embeddings, lambda z: losses.sigreg(z, directions, knots=self.knots))


@dataclasses.dataclass(frozen=True)
class SWD(SlicedPrediction):
  """Prediction + plain sliced W2 to N(0, I) (`losses.swd_gaussian`): VISReg's SWD baseline, lam 0.6 (Sec. 4)."""

  name: ClassVar[str] = "swd"
  lam: float = 0.6

  def loss(self, embeddings, key, directions=None):
    return _prediction_plus(self, embeddings, lambda z: losses.swd_gaussian(z, directions))
