"""Optimizers of the recipes: LARS and AdamW on a linear-warmup + cosine schedule.

The peak learning rate is `base_lr * global_batch / 256` when the recipe scales
it by batch size (VICReg, BYOL, Barlow Twins), else `base_lr`. Biases and
normalisation parameters (every parameter with fewer than two dimensions) get
neither weight decay nor LARS's trust-ratio adaptation, as in the recipes'
reference code. Optional gradient clipping by global norm comes first; it
keeps no state of its own, so a run may turn it on, off or change its norm
when it resumes (the remedy for a loss that went NaN).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

OPTIMIZERS = ("lars", "adamw")


def check_config(optim_config: Any) -> None:
  """Raise `ValueError` (one line naming the `optim.<field>`) if a run's `optim` section is not an optimizer.

  Checks the optimizer's name, finite non-negative learning rate, weight decay, warmup and clipping norm,
  `end_lr_fraction` in [0, 1], the momenta (`momentum`, `b1`, `b2`) in [0, 1) and a positive LARS
  trust coefficient.

  Args:
    optim_config: the `optim` section of a run config (attribute access: `ConfigDict` or alike).

  Raises:
    ValueError: for the first problem found.
  """
  optim = optim_config
  if optim.name not in OPTIMIZERS:
    raise ValueError(f"optim.name must be one of {', '.join(OPTIMIZERS)}; got {optim.name!r}.")
  for field in ("base_lr", "weight_decay", "warmup_epochs", "grad_clip_norm"):
    if not math.isfinite(optim[field]):
      raise ValueError(f"optim.{field} must be a finite number, got {optim[field]!r}.")
    if not optim[field] >= 0:
      raise ValueError(f"optim.{field} must not be negative, got {optim[field]!r}.")
  if not 0.0 <= optim.end_lr_fraction <= 1.0:
    raise ValueError(f"optim.end_lr_fraction is a fraction of the peak learning rate in [0, 1], "
                     f"got {optim.end_lr_fraction!r}.")
  for field in ("momentum", "b1", "b2"):
    if not 0.0 <= optim[field] < 1.0:
      raise ValueError(f"optim.{field} is a decay rate in [0, 1), got {optim[field]!r}.")
  if not optim.trust_coefficient > 0:
    raise ValueError(f"optim.trust_coefficient must be positive, got {optim.trust_coefficient!r}.")


def decay_mask(params):
  """True for the parameters that weight decay and LARS adaptation apply to: kernels (ndim >= 2).

  Args:
    params: a pytree of parameter arrays.

  Returns:
    A pytree of the same structure with a bool per leaf: True where the leaf has at least two dimensions.
  """
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def peak_learning_rate(config: ml_collections.ConfigDict) -> float:
  """The learning rate at the end of warmup.

  Args:
    config: the run config; reads `optim.base_lr`, `optim.scale_lr_by_batch` and `train.global_batch_size`.

  Returns:
    `base_lr * global_batch_size / 256` when `scale_lr_by_batch`, else `base_lr`.
  """
  scale = config.train.global_batch_size / 256 if config.optim.scale_lr_by_batch else 1.0
  return config.optim.base_lr * scale


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 over `warmup_epochs`, then cosine decay to `end_lr_fraction` of the peak.

  The warmup is capped at `total_steps - 1` steps, so the schedule always reaches its peak and decays.

  Args:
    config: the run config; reads `optim.warmup_epochs`, `optim.end_lr_fraction` and the fields of
      `peak_learning_rate`.
    steps_per_epoch: optimizer steps per epoch, to convert `warmup_epochs` to steps.
    total_steps: the length of the run in steps; the cosine ends there.

  Returns:
    An `optax.Schedule` mapping the step count to the learning rate.

  References:
    Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", 2017
    (https://arxiv.org/abs/1608.03983), for the cosine decay.
  """
  peak = peak_learning_rate(config)
  warmup = min(int(round(config.optim.warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=peak * config.optim.end_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  """The run's optimizer: LARS or AdamW, with weight decay masked by `decay_mask`, after optional clipping.

  Args:
    config: the run config; reads `optim.name`, `optim.weight_decay`, `optim.grad_clip_norm`, and
      `optim.momentum` and `optim.trust_coefficient` (LARS) or `optim.b1` and `optim.b2` (AdamW).
    schedule: the learning-rate schedule (see `learning_rate_schedule`).

  Returns:
    An `optax.GradientTransformation` whose state is the optimizer's alone; when `optim.grad_clip_norm > 0`
    the updates are first clipped to that global norm (`clipped_first`).

  Raises:
    ValueError: if `optim.name` is neither "lars" nor "adamw".

  References:
    You, Gitman & Ginsburg, "Large Batch Training of Convolutional Networks", 2017
    (https://arxiv.org/abs/1708.03888): LARS.
    Loshchilov & Hutter, "Decoupled Weight Decay Regularization", 2019 (https://arxiv.org/abs/1711.05101): AdamW.
  """
  optim = config.optim
  if optim.name == "lars":
    optimizer = optax.lars(schedule, weight_decay=optim.weight_decay, weight_decay_mask=decay_mask,
                           trust_coefficient=optim.trust_coefficient, trust_ratio_mask=decay_mask,
                           momentum=optim.momentum)
  elif optim.name == "adamw":
    optimizer = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay, mask=decay_mask)
  else:
    raise ValueError(f"optim.name must be one of {', '.join(OPTIMIZERS)}; got {optim.name!r}.")
  if optim.grad_clip_norm > 0:
    optimizer = clipped_first(optimizer, optim.grad_clip_norm)
  return optimizer


def clipped_first(optimizer: optax.GradientTransformation, max_norm: float) -> optax.GradientTransformation:
  """`optimizer` applied to the updates clipped to global norm `max_norm`, with `optimizer`'s state only.

  The same updates as `optax.chain(optax.clip_by_global_norm(max_norm), optimizer)`, but chain's state
  would be `(EmptyState(), state)`: a checkpoint of a run without clipping could not be resumed with it.

  Args:
    optimizer: the transformation to apply after clipping.
    max_norm: the largest global norm of the updates `optimizer` sees.

  Returns:
    An `optax.GradientTransformation` with `optimizer.init`.
  """
  clip = optax.clip_by_global_norm(max_norm)

  def update(updates, state, params=None):
    clipped, _ = clip.update(updates, optax.EmptyState())
    return optimizer.update(clipped, state, params)

  return optax.GradientTransformation(optimizer.init, update)


def check_peak_fits(config: ml_collections.ConfigDict) -> None:
  """Raise `ValueError` if the peak learning rate overflows float32, the dtype the schedule runs in.

  Args:
    config: the run config (the fields of `peak_learning_rate`).

  Raises:
    ValueError: one line naming `optim.base_lr` and the peak it gives.
  """
  peak = peak_learning_rate(config)
  if peak > np.finfo(np.float32).max:
    raise ValueError(f"optim.base_lr = {config.optim.base_lr!r} gives a peak learning rate of {peak:.3g} (scaled by "
                     "the batch), beyond float32's range: every parameter would become inf.")
