"""Joint-embedding methods on two views: VICReg, SAG-VICReg, T-REGS, Barlow Twins, SimCLR.

Each compares the projector outputs of the two global views of every image
(`Embeddings.two_views`) with one loss of `jax_ssl.losses`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from jax_ssl import losses
from jax_ssl.losses import sag_vicreg as sag_vicreg_lib
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import RunShape
from jax_ssl.methods.base import check
from jax_ssl.methods.base import non_negative


@dataclasses.dataclass(frozen=True)
class VICReg(Method):
  """VICReg (Bardes, Ponce & LeCun, ICLR 2022) on the two global views: `losses.vicreg_loss`.

  sim_coeff, std_coeff, cov_coeff: the paper's lambda, mu, nu (invariance, variance, covariance).
  """

  name: ClassVar[str] = "vicreg"
  sim_coeff: float = 25.0
  std_coeff: float = 25.0
  cov_coeff: float = 1.0

  def __post_init__(self):
    non_negative(self, "sim_coeff", "std_coeff", "cov_coeff")

  def loss(self, embeddings, key, directions=None):
    return losses.vicreg_loss(*embeddings.two_views, self.sim_coeff, self.std_coeff, self.cov_coeff)


@dataclasses.dataclass(frozen=True)
class SAGVICReg(VICReg):
  """SAG-VICReg (Simai, Talmon & Shaham, 2025): VICReg with the second view re-paired by a random walk.

  The walk runs on the kNN affinity graph of the batch (k neighbours, local
  scale at `percentile`); `graph`, `scale_over` and `regularize` select the
  reading of the paper (`losses.sag_vicreg_loss`; docs/readings.md says which
  reading the defaults take and why).
  """

  name: ClassVar[str] = "sag_vicreg"
  smoke_caps: ClassVar[dict[str, int]] = {"k": 5}
  k: int = 5
  percentile: float = 20.0
  graph: sag_vicreg_lib.Graph = sag_vicreg_lib.DEFAULT_GRAPH
  scale_over: sag_vicreg_lib.ScaleOver = sag_vicreg_lib.DEFAULT_SCALE_OVER
  regularize: sag_vicreg_lib.Regularize = sag_vicreg_lib.DEFAULT_REGULARIZE

  def __post_init__(self):
    super().__post_init__()
    check(self.k > 0, f"{self.name}.k is a number of neighbours, positive; got {self.k}.")
    check(0.0 <= self.percentile <= 100.0, f"{self.name}.percentile lies in [0, 100]; got {self.percentile}.")
    for field, allowed in (("graph", sag_vicreg_lib.GRAPHS), ("scale_over", sag_vicreg_lib.SCALES_OVER),
                           ("regularize", sag_vicreg_lib.REGULARIZE)):
      value = getattr(self, field)
      check(value in allowed, f"{self.name}.{field} must be one of {', '.join(allowed)}; got {value!r}.")

  def check_run(self, run: RunShape) -> None:
    """The views (`Method.check_run`), and a global batch with more images than `k` neighbours.

    Args:
      run: as `Method.check_run` takes it.
    """
    super().check_run(run)
    check(self.k < run.global_batch_size, f"{self.name}.k = {self.k} neighbours needs a global batch larger "
          f"than k; got {run.global_batch_size}.")

  def loss(self, embeddings, key, directions=None):
    return losses.sag_vicreg_loss(key, *embeddings.two_views, k=self.k, percentile=self.percentile,
                                  sim_coeff=self.sim_coeff, std_coeff=self.std_coeff, cov_coeff=self.cov_coeff,
                                  graph=self.graph, scale_over=self.scale_over, regularize=self.regularize)


@dataclasses.dataclass(frozen=True)
class TREGS(Method):
  """T-REGS (Mordacq, Loiseaux, Kalogeiton & Oudot): `beta` MSE invariance + T-REG (gamma, lam) on each view."""

  name: ClassVar[str] = "tregs"
  beta: float = 10.0
  gamma: float = 0.2
  lam: float = 8e-4

  def __post_init__(self):
    non_negative(self, "beta", "gamma", "lam")

  def loss(self, embeddings, key, directions=None):
    return losses.tregs_loss(*embeddings.two_views, beta=self.beta, gamma=self.gamma, lam=self.lam)


@dataclasses.dataclass(frozen=True)
class BarlowTwins(Method):
  """Barlow Twins (Zbontar et al., ICML 2021): `losses.barlow_twins_loss`, `lambd` on the off-diagonal."""

  name: ClassVar[str] = "barlow_twins"
  lambd: float = 5e-3

  def __post_init__(self):
    non_negative(self, "lambd")

  def loss(self, embeddings, key, directions=None):
    return losses.barlow_twins_loss(*embeddings.two_views, lambd=self.lambd)


@dataclasses.dataclass(frozen=True)
class SimCLR(Method):
  """SimCLR (Chen et al., ICML 2020): NT-Xent over the 2N views at `temperature`."""

  name: ClassVar[str] = "simclr"
  temperature: float = 0.1

  def __post_init__(self):
    check(self.temperature > 0, f"{self.name}.temperature must be positive; got {self.temperature}.")

  def loss(self, embeddings, key, directions=None):
    loss = losses.nt_xent(*embeddings.two_views, temperature=self.temperature)
    return loss, {"nt_xent": loss}
