"""Methods with an EMA target network: BYOL, DINO and I-JEPA.

The target is a moving average of the online network (`EMATarget`); the
trainer runs it on the global views without gradient and hands its outputs
to the loss as `targets`.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from jax_ssl import losses
from jax_ssl.methods.base import HeadKind
from jax_ssl.methods.base import Method
from jax_ssl.methods.base import check
from jax_ssl.methods.base import check_transformer


@dataclasses.dataclass(frozen=True)
class EMATarget(Method):
  """A method whose target network is an EMA of the online one (BYOL, DINO's teacher, I-JEPA's target).

  The momentum follows BYOL's cosine schedule from `tau_base` at the start to
  1 at the end (`target_momentum`); DINO uses the same schedule, I-JEPA a linear one.
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
  head: ClassVar[HeadKind] = "dino"
  smoke_caps: ClassVar[dict[str, int]] = {"num_prototypes": 64}
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
  head: ClassVar[HeadKind] = "ijepa"
  smoke_caps: ClassVar[dict[str, int]] = {"predictor_width": 32, "predictor_depth": 1, "predictor_heads": 2}
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
    check_transformer(self, "predictor", sincos_positions=True)

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
             for predictions, targets, blocks in zip(embeddings.predictions, embeddings.targets, embeddings.blocks)]
    loss = sum(views) / len(views)
    return loss, {"prediction": loss}
