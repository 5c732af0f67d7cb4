"""Optimizers of the recipes: LARS and AdamW on a linear-warmup + cosine schedule.

The peak learning rate is `base_lr * global_batch / 256` when the recipe scales
it by batch size (VICReg, BYOL, Barlow Twins), else `base_lr`. Biases and
normalisation parameters (every parameter with fewer than two dimensions) get
neither weight decay nor LARS's trust-ratio adaptation, as in the recipes'
reference code. Optional gradient clipping by global norm comes first.
"""

from __future__ import annotations

import jax
import ml_collections
import optax


def decay_mask(params):
  """True for the parameters that weight decay and LARS adaptation apply to: kernels (ndim >= 2)."""
  return jax.tree.map(lambda p: p.ndim >= 2, params)


def peak_learning_rate(config: ml_collections.ConfigDict) -> float:
  scale = config.train.global_batch_size / 256 if config.optim.scale_lr_by_batch else 1.0
  return config.optim.base_lr * scale


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int) -> optax.Schedule:
  """Linear warmup from 0 over `warmup_epochs`, then cosine decay to `end_lr_fraction` of the peak."""
  peak = peak_learning_rate(config)
  warmup = min(int(round(config.optim.warmup_epochs * steps_per_epoch)), max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup, decay_steps=max(total_steps, warmup + 1),
      end_value=peak * config.optim.end_lr_fraction)


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  optim = config.optim
  if optim.name == "lars":
    optimizer = optax.lars(schedule, weight_decay=optim.weight_decay, weight_decay_mask=decay_mask,
                           trust_coefficient=optim.trust_coefficient, trust_ratio_mask=decay_mask,
                           momentum=optim.momentum)
  elif optim.name == "adamw":
    optimizer = optax.adamw(schedule, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay, mask=decay_mask)
  else:
    raise ValueError(f"optim.name must be lars or adamw, got {optim.name!r}.")
  if optim.grad_clip_norm > 0:
    optimizer = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), optimizer)
  return optimizer
