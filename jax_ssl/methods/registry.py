"""The methods, each a typed composition of `jax_ssl.losses`, and the registry by name.

  vicreg        VICReg on the two views
  sag_vicreg    VICReg with random-walk pairing on the kNN affinity graph
  visreg        (1 - lam) LeJEPA prediction + lam VISReg regularizer, multi-crop, sliced
  lejepa        (1 - lam) LeJEPA prediction + lam SIGReg, multi-crop, sliced
  swd           (1 - lam) LeJEPA prediction + lam plain sliced W2 to N(0, I), multi-crop, sliced
  tregs         T-REGS: beta MSE invariance + T-REG on each view
  barlow_twins  Barlow Twins
  simclr        NT-Xent
  byol          BYOL: predictor + EMA target, symmetric regression loss
  dino          DINO: EMA teacher, centered and sharpened, DINO head, multi-crop
  mae           MAE: a ViT encodes the visible patches, a decoder reconstructs the hidden ones
  ijepa         I-JEPA: a context block predicts an EMA target encoder's tokens of hidden blocks
  clip          CLIP: images against their captions (a dataset with captions), learned temperature
  <name>+tregs  any of them (but tregs) plus T-REG (gamma L_E + lam L_S) on every view's embeddings

Each method's config section (`method.<name>`, and `method.t_reg` for the
add-on) holds exactly its dataclass fields; `from_config` builds the method
from it.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from typing import ClassVar

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.losses import clip as clip_lib
from jax_ssl.losses import sag_vicreg as sag_vicreg_lib
from jax_ssl.methods.base import EMATarget
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import check


def _non_negative(method: Method, *fields: str) -> None:
  for field in fields:
    value = getattr(method, field)
    check(value >= 0, f"{method.name}.{field} must not be negative; got {value}.")


def _check_transformer(method: Method, prefix: str, sincos_positions: bool = False) -> None:
  """A method's transformer head (`<prefix>_width`, `_depth`, `_heads`): positive sizes, whole heads.

  With `sincos_positions` the width must also be a multiple of 4 (2-D sine-cosine position embeddings).
  """
  width, depth, heads = (getattr(method, f"{prefix}_{field}") for field in ("width", "depth", "heads"))
  for field, value in (("width", width), ("depth", depth), ("heads", heads)):
    check(value >= 1, f"{method.name}.{prefix}_{field} must be positive; got {value}.")
  multiple = "a multiple of 4 and of" if sincos_positions else "a multiple of"
  check(width % heads == 0 and (width % 4 == 0 or not sincos_positions),
        f"{method.name}.{prefix}_width must be {multiple} {prefix}_heads; got {width} and {heads}.")


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
    _non_negative(self, "sim_coeff", "std_coeff", "cov_coeff")

  def loss(self, embeddings, key, directions=None):
    return losses.vicreg_loss(*embeddings.two_views, self.sim_coeff, self.std_coeff, self.cov_coeff)


@dataclasses.dataclass(frozen=True)
class SAGVICReg(VICReg):
  """SAG-VICReg (Simai, Talmon & Shaham, 2025): VICReg with the second view re-paired by a random walk.

  The walk runs on the kNN affinity graph of the batch (k neighbours, local
  scale at `percentile`); `graph`, `scale_over` and `regularize` select the
  reading of the paper (`losses.sag_vicreg_loss`, whose docstring says why the
  defaults are the ones the readings experiment chose).
  """

  name: ClassVar[str] = "sag_vicreg"
  k: int = 5
  percentile: float = 20.0
  graph: str = sag_vicreg_lib.DEFAULT_GRAPH
  scale_over: str = sag_vicreg_lib.DEFAULT_SCALE_OVER
  regularize: str = sag_vicreg_lib.DEFAULT_REGULARIZE

  def __post_init__(self):
    super().__post_init__()
    check(self.k > 0, f"{self.name}.k is a number of neighbours, positive; got {self.k}.")
    check(0.0 <= self.percentile <= 100.0, f"{self.name}.percentile lies in [0, 100]; got {self.percentile}.")
    for field, allowed in (("graph", sag_vicreg_lib.GRAPHS), ("scale_over", sag_vicreg_lib.SCALES_OVER),
                           ("regularize", sag_vicreg_lib.REGULARIZE)):
      value = getattr(self, field)
      check(value in allowed, f"{self.name}.{field} must be one of {', '.join(allowed)}; got {value!r}.")

  def loss(self, embeddings, key, directions=None):
    return losses.sag_vicreg_loss(key, *embeddings.two_views, k=self.k, percentile=self.percentile,
                                  sim_coeff=self.sim_coeff, std_coeff=self.std_coeff, cov_coeff=self.cov_coeff,
                                  graph=self.graph, scale_over=self.scale_over, regularize=self.regularize)


@dataclasses.dataclass(frozen=True)
class _Jepa(Method):
  """`(1 - lam) prediction + lam mean_v regularizer(view v)` over all views (LeJEPA's composition).

  lam: the regularizer's weight, in [0, 1]; num_slices: K, the total over the mesh.
  """

  multi_crop: ClassVar[bool] = True
  lam: float = 0.9
  num_slices: int = 1024

  def __post_init__(self):
    check(0.0 <= self.lam <= 1.0, f"{self.name}.lam weighs the regularizer against the prediction loss, "
          f"in [0, 1]; got {self.lam}.")
    check(self.num_slices > 0, f"{self.name}.num_slices must be positive; got {self.num_slices}.")

  @abc.abstractmethod
  def regularizer(self, z: jax.Array, directions: jax.Array) -> jax.Array:
    """The regularizer of one view (N, D), averaged over the slices `directions` (D, K_block)."""

  def loss(self, embeddings, key, directions=None):
    views = embeddings.all_views
    prediction = losses.prediction_loss(embeddings.global_views, views)
    regularizer = jnp.mean(jax.vmap(lambda z: self.regularizer(z, directions))(views))
    return (1.0 - self.lam) * prediction + self.lam * regularizer, {"prediction": prediction,
                                                                    self.name: regularizer}


@dataclasses.dataclass(frozen=True)
class VISReg(_Jepa):
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
    _non_negative(self, "lambda_scale", "lambda_shape", "lambda_center")

  def regularizer(self, z, directions):
    """VISReg's weighted scale + shape + center terms of one view (`losses.visreg_regularizer`).

    Args:
      z: `(N, D)` embeddings of one view.
      directions: `(D, K_block)` unit slice directions.

    Returns:
      Scalar float32 regularizer; `loss` logs its three terms, averaged over the views.
    """
    return losses.visreg_regularizer(z, directions, self.lambda_scale, self.lambda_shape, self.lambda_center,
                                     self.detach_std)

  def loss(self, embeddings, key, directions=None):
    views = embeddings.all_views
    terms = losses.visreg_terms(views, directions, self.detach_std)
    return losses.combine_visreg(losses.prediction_loss(embeddings.global_views, views), terms, self.lam,
                                 self.lambda_scale, self.lambda_shape, self.lambda_center)


@dataclasses.dataclass(frozen=True)
class LeJEPA(_Jepa):
  """LeJEPA (Balestriero & LeCun, 2025): prediction + SIGReg (`losses.sigreg`, `knots` quadrature points).

  lam defaults to 0.02, the SIGReg weight of VISReg's comparison (Sec. 4).
  """

  name: ClassVar[str] = "lejepa"
  lam: float = 0.02
  knots: int = 17

  def __post_init__(self):
    super().__post_init__()
    check(self.knots >= 2, f"{self.name}.knots (SIGReg's quadrature points) must be at least 2; got {self.knots}.")

  def regularizer(self, z, directions):
    """SIGReg of one view, averaged over the slices `directions`.

    Args:
      z: `(N, D)` embeddings of one view.
      directions: `(D, K_block)` unit slice directions.

    Returns:
      Scalar float32 SIGReg statistic (`losses.sigreg` with `knots` quadrature points).
    """
    return losses.sigreg(z, directions, knots=self.knots)


@dataclasses.dataclass(frozen=True)
class SWD(_Jepa):
  """Prediction + plain sliced W2 to N(0, I) (`losses.swd_gaussian`): VISReg's SWD baseline, lam 0.6 (Sec. 4)."""

  name: ClassVar[str] = "swd"
  lam: float = 0.6

  def regularizer(self, z, directions):
    """Sliced squared W2 between one view and N(0, I), averaged over the slices `directions`.

    Args:
      z: `(N, D)` embeddings of one view.
      directions: `(D, K_block)` unit slice directions.

    Returns:
      Scalar float32 distance (`losses.swd_gaussian`).
    """
    return losses.swd_gaussian(z, directions)


@dataclasses.dataclass(frozen=True)
class TREGS(Method):
  """T-REGS (Mordacq, Loiseaux, Kalogeiton & Oudot): `beta` MSE invariance + T-REG (gamma, lam) on each view."""

  name: ClassVar[str] = "tregs"
  beta: float = 10.0
  gamma: float = 0.2
  lam: float = 8e-4

  def __post_init__(self):
    _non_negative(self, "beta", "gamma", "lam")

  def loss(self, embeddings, key, directions=None):
    return losses.tregs_loss(*embeddings.two_views, beta=self.beta, gamma=self.gamma, lam=self.lam)


@dataclasses.dataclass(frozen=True)
class BarlowTwins(Method):
  """Barlow Twins (Zbontar et al., ICML 2021): `losses.barlow_twins_loss`, `lambd` on the off-diagonal."""

  name: ClassVar[str] = "barlow_twins"
  lambd: float = 5e-3

  def __post_init__(self):
    _non_negative(self, "lambd")

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


@dataclasses.dataclass(frozen=True)
class BYOL(EMATarget):
  """BYOL (Grill et al., NeurIPS 2020): an online predictor regresses an EMA target's projections.

  The loss is symmetric (view 1's prediction against view 2's target and
  vice versa). The target's momentum follows the paper's cosine schedule from
  `tau_base` at the start to 1 at the end (`EMATarget.target_momentum`).
  """

  name: ClassVar[str] = "byol"
  predictor: ClassVar[bool] = True

  def loss(self, embeddings, key, directions=None):
    p1, p2 = embeddings.predictions[0], embeddings.predictions[1]
    t1, t2 = embeddings.targets[0], embeddings.targets[1]
    loss = losses.byol_loss(p1, t2) + losses.byol_loss(p2, t1)
    return loss, {"regression": loss}


@dataclasses.dataclass(frozen=True)
class DINO(EMATarget):
  """DINO (Caron et al., ICCV 2021): a student matches an EMA teacher's centered, sharpened outputs.

  Both networks end in `models.DINOHead` (K = `num_prototypes` cosine logits).
  The teacher sees the global views, the student every view
  (`losses.dino_loss`); the teacher's outputs are centered by a running mean
  (`center_momentum`, the method's `statistics`) and sharpened by a
  temperature that rises linearly from `warmup_teacher_temperature` to
  `teacher_temperature` over the first `warmup_teacher_steps` steps. The
  teacher's momentum follows the cosine schedule from `tau_base` to 1.
  """

  name: ClassVar[str] = "dino"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[str] = "dino"
  statistics: ClassVar[bool] = True
  num_prototypes: int = 65536
  student_temperature: float = 0.1
  teacher_temperature: float = 0.04
  warmup_teacher_temperature: float = 0.04
  warmup_teacher_steps: int = 0
  center_momentum: float = 0.9

  def __post_init__(self):
    super().__post_init__()
    check(self.num_prototypes >= 1, f"{self.name}.num_prototypes must be positive; got {self.num_prototypes}.")
    for field in ("student_temperature", "teacher_temperature", "warmup_teacher_temperature"):
      check(getattr(self, field) > 0, f"{self.name}.{field} must be positive; got {getattr(self, field)}.")
    check(self.warmup_teacher_steps >= 0,
          f"{self.name}.warmup_teacher_steps must not be negative; got {self.warmup_teacher_steps}.")
    check(0.0 <= self.center_momentum <= 1.0,
          f"{self.name}.center_momentum is a momentum in [0, 1]; got {self.center_momentum}.")

  def teacher_temperature_at(self, step: jax.Array) -> jax.Array:
    """The teacher's temperature at `step`: linear from the warmup value to `teacher_temperature`, then flat.

    Args:
      step: the number of steps done (int scalar).

    Returns:
      A float32 scalar temperature.
    """
    fraction = jnp.minimum(step / max(self.warmup_teacher_steps, 1), 1.0)
    warm = self.warmup_teacher_temperature
    return jnp.float32(warm + (self.teacher_temperature - warm) * fraction)

  def initial_statistics(self) -> dict:
    """`{"center": zeros (K,), "step": 0}`: the teacher's center and the steps done, before training.

    Returns:
      The statistics pytree (float32 center, int32 step).
    """
    return {"center": jnp.zeros((self.num_prototypes,), jnp.float32), "step": jnp.zeros((), jnp.int32)}

  def update_statistics(self, statistics, embeddings):
    """The statistics after a step: the center moved toward the step's teacher outputs, one more step.

    Args:
      statistics: the statistics before the step (`initial_statistics`'s layout).
      embeddings: the step's embeddings; `targets` (the teacher's outputs) are read.

    Returns:
      The new statistics.
    """
    center = losses.dino_center(statistics["center"], embeddings.targets, self.center_momentum)
    return {"center": center, "step": statistics["step"] + 1}

  def loss(self, embeddings, key, directions=None):
    statistics = embeddings.statistics
    temperature = self.teacher_temperature_at(statistics["step"])
    loss = losses.dino_loss(embeddings.all_views, embeddings.targets, statistics["center"],
                            self.student_temperature, temperature)
    return loss, {"distillation": loss}


@dataclasses.dataclass(frozen=True)
class MAE(Method):
  """MAE (He et al., CVPR 2022): reconstruct the hidden patches of each global view from its visible ones.

  The trainer hides `mask_ratio` of every view's patches, encodes the rest
  with the ViT and decodes all of them (`models.MAEDecoder` of
  `decoder_width`, `decoder_depth`, `decoder_heads`); the loss is
  `losses.mae_loss` on the hidden patches, averaged over the views. Needs a
  ViT backbone.
  """

  name: ClassVar[str] = "mae"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[str] = "mae"
  mask_ratio: float = 0.75
  norm_pix_loss: bool = True
  decoder_width: int = 512
  decoder_depth: int = 8
  decoder_heads: int = 16

  def __post_init__(self):
    check(0.0 < self.mask_ratio < 1.0, f"{self.name}.mask_ratio is the fraction of patches hidden, in (0, 1); "
          f"got {self.mask_ratio}.")
    _check_transformer(self, "decoder", sincos_positions=True)

  def loss(self, embeddings, key, directions=None):
    views = [losses.mae_loss(predictions, patches, mask, self.norm_pix_loss)
             for predictions, patches, mask in zip(embeddings.predictions, embeddings.targets, embeddings.mask)]
    loss = sum(views) / len(views)
    return loss, {"reconstruction": loss}


@dataclasses.dataclass(frozen=True)
class IJEPA(EMATarget):
  """I-JEPA (Assran et al., CVPR 2023): predict an EMA target encoder's tokens of hidden blocks from a context block.

  Per global view, the trainer draws `num_targets` target blocks and one
  context block (`models.ijepa.multi_block_masks` with `target_scale`,
  `target_aspect`, `context_scale`), encodes the context with the online ViT,
  predicts each block's target tokens with `models.IJEPAPredictor`
  (`predictor_width`, `predictor_depth`, `predictor_heads`), and compares
  them with the target ViT's standardised tokens of the whole view
  (`losses.ijepa_loss`, averaged over the views). The target's momentum
  rises linearly from `tau_base` to 1, as in the paper's code. Probes and
  evaluations read the target encoder (the paper's Sec. 5), by default as the
  mean patch token (`model.pool = "mean"` in its configs). Needs a ViT.
  """

  name: ClassVar[str] = "ijepa"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[str] = "ijepa"
  evaluate_target: ClassVar[bool] = True
  num_targets: int = 4
  target_scale: tuple[float, float] = (0.15, 0.2)
  target_aspect: tuple[float, float] = (0.75, 1.5)
  context_scale: tuple[float, float] = (0.85, 1.0)
  predictor_width: int = 384
  predictor_depth: int = 12
  predictor_heads: int = 12

  def __post_init__(self):
    super().__post_init__()
    check(self.num_targets >= 1, f"{self.name}.num_targets must be positive; got {self.num_targets}.")
    for field in ("target_scale", "target_aspect", "context_scale"):
      value = tuple(getattr(self, field))  # a saved config gives a list; the step needs a hashable method
      object.__setattr__(self, field, value)
      check(len(value) == 2 and 0 < value[0] <= value[1], f"{self.name}.{field} is a range (low, high) with "
            f"0 < low <= high; got {value}.")
    for field in ("target_scale", "context_scale"):
      check(getattr(self, field)[1] <= 1, f"{self.name}.{field} is a fraction of the image; got "
            f"{getattr(self, field)}.")
    _check_transformer(self, "predictor", sincos_positions=True)

  def target_momentum(self, progress):
    """`tau_base + (1 - tau_base) progress`: linear from tau_base to 1 (I-JEPA's code; BYOL's is a cosine).

    Args:
      progress: fraction of training done, in [0, 1].

    Returns:
      The EMA momentum, shaped like `progress`.
    """
    return self.tau_base + (1.0 - self.tau_base) * progress

  def loss(self, embeddings, key, directions=None):
    views = [losses.ijepa_loss(predictions, targets, blocks)
             for predictions, targets, blocks in zip(embeddings.predictions, embeddings.targets, embeddings.mask)]
    loss = sum(views) / len(views)
    return loss, {"prediction": loss}


@dataclasses.dataclass(frozen=True)
class CLIP(Method):
  """CLIP (Radford et al., ICML 2021): images and their captions meet in one embedding space.

  The trainer embeds each image's global view with the backbone and the
  projector (`model.projector`, one Linear in CLIP) and a caption drawn for
  its label (`data.captions`) with a `models.TextTransformer` of
  `text_width`, `text_depth`, `text_heads`, projected to the same width.
  `Embeddings.global_views` holds the two modalities, images then texts,
  each L2-normalised (CLIP's embeddings), so `clip+tregs` adds T-REG on each
  modality's embeddings on the unit sphere (T-REGS, Table 3): the MST term
  spreads what the loss compares, and the sphere term is zero.
  The loss is `losses.clip_loss` at the learned logit scale, which starts at
  `1 / init_temperature` and is capped at `max_logit_scale`. Needs a dataset
  with captions and one global view.
  """

  name: ClassVar[str] = "clip"
  multi_crop: ClassVar[bool] = True
  head: ClassVar[str] = "clip"
  init_temperature: float = 0.07
  max_logit_scale: float = clip_lib.MAX_LOGIT_SCALE
  text_width: int = 512
  text_depth: int = 12
  text_heads: int = 8

  def __post_init__(self):
    check(self.init_temperature > 0, f"{self.name}.init_temperature must be positive; got {self.init_temperature}.")
    check(self.max_logit_scale >= 1 / self.init_temperature, f"{self.name}.max_logit_scale caps the learned "
          f"1 / temperature, so it is at least 1 / init_temperature = {1 / self.init_temperature:g}; got "
          f"{self.max_logit_scale}.")
    _check_transformer(self, "text")

  def loss(self, embeddings, key, directions=None):
    images, texts = embeddings.two_views
    loss = losses.clip_loss(images, texts, embeddings.log_logit_scale, self.max_logit_scale)
    logit_scale = jnp.minimum(jnp.exp(embeddings.log_logit_scale), self.max_logit_scale)
    return loss, {"contrastive": loss, "logit_scale": logit_scale}


ADD_ON = "+tregs"
ADD_ON_SECTION = "t_reg"


@dataclasses.dataclass(frozen=True)
class WithTReg(Method):
  """`base` plus T-REG on every view's embeddings: `+ sum_v (gamma L_E(z_v) + lam L_S(z_v))`.

  T-REGS adds t_reg(Z) + t_reg(Z'), one term per view; with more views, one
  per view. Everything else (views, heads, slices, target) is the base's.
  """

  base: Method
  gamma: float = 0.2
  lam: float = 8e-4

  def __post_init__(self):
    check(not isinstance(self.base, (TREGS, WithTReg)), f"{self.base.name} already has T-REG; "
          f"'{ADD_ON}' adds it to the other methods.")
    for field in ("gamma", "lam"):
      check(getattr(self, field) >= 0, f"{ADD_ON_SECTION}.{field} must not be negative; got {getattr(self, field)}.")

  def __getattr__(self, attribute):
    # Reached only when normal lookup fails: the base's own hyperparameters (an MAE base's
    # `mask_ratio`, a DINO base's `num_prototypes`) read through the wrapper. `base` itself and
    # dunder names are refused so that copy and pickle, which probe them before `base` is set,
    # do not recurse.
    if attribute == "base" or attribute.startswith("__"):
      raise AttributeError(attribute)
    return getattr(self.base, attribute)

  name = property(lambda self: self.base.name + ADD_ON)
  multi_crop = property(lambda self: self.base.multi_crop)
  predictor = property(lambda self: self.base.predictor)
  head = property(lambda self: self.base.head)
  target = property(lambda self: self.base.target)
  statistics = property(lambda self: self.base.statistics)
  evaluate_target = property(lambda self: self.base.evaluate_target)
  num_slices = property(lambda self: self.base.num_slices)

  def loss(self, embeddings, key, directions=None):
    loss, metrics = self.base.loss(embeddings, key, directions)
    # A loop, not vmap: the MST's exact-distance fallback is a `lax.cond`, which vmap would turn
    # into computing both branches for every view.
    t_reg_total = sum(losses.t_reg(z, self.gamma, self.lam) for z in embeddings.all_views)
    return loss + t_reg_total, {**metrics, "t_reg": t_reg_total}

  def update_target(self, target_params, online_params, progress):
    """The base method's target update (a base with `target`, such as BYOL).

    Args:
      target_params: pytree of the target network's parameters.
      online_params: pytree of the online network's parameters, same structure.
      progress: scalar fraction of training done, in [0, 1].

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


METHODS: dict[str, type[Method]] = {cls.name: cls for cls in (VICReg, SAGVICReg, VISReg, LeJEPA, SWD, TREGS,
                                                              BarlowTwins, SimCLR, BYOL, DINO, MAE, IJEPA,
                                                              CLIP)}


def hyperparameters(cls: type[Method]) -> dict:
  """The fields of a method class with their defaults: its config section (`WithTReg`: without `base`).

  Args:
    cls: a `Method` subclass (a dataclass).

  Returns:
    A dict from field name to default value, in field order.
  """
  return {field.name: field.default for field in dataclasses.fields(cls) if field.name != "base"}


def get_method(name: str, **hyperparameters) -> Method:
  """The method called `name` (one of `METHODS`, optionally with `+tregs`), defaults unless given.

  With `+tregs`, `hyperparameters` go to the base method; build `WithTReg`
  directly to set the add-on's own.

  Args:
    name: a key of `METHODS`, or one (but `"tregs"`) followed by `"+tregs"`.
    **hyperparameters: fields of the base method's dataclass; the others keep their defaults.

  Returns:
    The `Method` instance, wrapped in `WithTReg` (default gamma and lam) for a `+tregs` name.

  Raises:
    ValueError: an unknown name, or a hyperparameter out of range (one line).
    TypeError: a hyperparameter the method's dataclass has no field for.
  """
  base_name = name.removesuffix(ADD_ON)
  if base_name not in METHODS or base_name == TREGS.name and name != base_name:
    known = ", ".join(sorted(METHODS))
    raise ValueError(f"unknown method {name!r}; methods: {known}, and any of them (but tregs) with '{ADD_ON}'.")
  method = METHODS[base_name](**hyperparameters)
  return method if name == base_name else WithTReg(method)


def from_config(section: Mapping) -> Method:
  """The method of a config's `method` section: `name`, built from its own subsection.

  `method.<name>` holds the base method's hyperparameters; with `+tregs`,
  `method.t_reg` holds the add-on's (gamma, lam).

  Args:
    section: the config's `method` mapping: `name`, the base method's subsection under its name, and
      `t_reg` for a `+tregs` name.

  Returns:
    The configured `Method` (a `WithTReg` around the base method for a `+tregs` name).

  Raises:
    ValueError: an unknown name, or a hyperparameter out of range (one line naming it).
    KeyError: `section` lacks `name`, the method's subsection, or `t_reg` for a `+tregs` name.
    TypeError: a subsection holds a key that is not a field of its dataclass.
  """
  name = section["name"]
  get_method(name)  # an unknown name is named before its section is looked for
  method = get_method(name.removesuffix(ADD_ON), **dict(section[name.removesuffix(ADD_ON)]))
  return WithTReg(method, **dict(section[ADD_ON_SECTION])) if name.endswith(ADD_ON) else method

