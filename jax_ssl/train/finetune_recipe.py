"""The fine-tuning recipes: their configs, the optimizer with layer-wise learning-rate decay, the loss.

`vit` (ViTs) is the recipe DINO, iBOT and MAE fine-tune with (DeiT's
training, BEiT's layer-wise decay): AdamW (b1 0.9, b2 0.999), weight decay
0.05 on the kernels only (not on biases, norms, the class token or the
position embedding), peak learning rate `base_lr * batch / 256` reached
after a linear warmup and followed by a cosine decay to 0, and layer-wise
learning-rate decay: with L blocks, block i (1-based) learns at
`decay^(L + 1 - i)` times the rate, the patch embedding and the tokens at
`decay^(L + 1)`, the final norm and the heads at the full rate. Label
smoothing 0.1 and stochastic depth 0.1. `convnet` (ResNets, the small CNN):
SGD with Nesterov momentum 0.9, weight decay 1e-4 on the kernels, the same
warmup and cosine schedule, label smoothing 0.1.

References:
  Touvron et al., "Training data-efficient image transformers & distillation
  through attention" (DeiT), 2021 (https://arxiv.org/abs/2012.12877).
  Bao et al., "BEiT: BERT Pre-Training of Image Transformers", 2022
  (https://arxiv.org/abs/2106.08254), for layer-wise learning-rate decay.
"""

from __future__ import annotations

import math

import jax
import ml_collections
import optax

from jax_ssl.data import feed
from jax_ssl.data import views as views_lib
from jax_ssl.train import config as config_lib

RECIPES = ("vit", "convnet")
# SGD's learning rate per 256 images for convnets: chosen by the base-rate sweep of `finetune_runs`
# (experiments/RESULTS.md), where lower rates left a short fine-tuning far from converged. Long schedules on
# large datasets usually want less.
CONVNET_BASE_LR = 2.0
# The reference batch of the learning-rate scaling rule: peak = base_lr * global_batch / 256.
LR_REFERENCE_BATCH = 256
# Parameters no weight decay applies to besides vectors (biases, norms): DeiT's `no_weight_decay` set.
_NO_DECAY_NAMES = ("cls_token", "pos_embed")
_EMBEDDING_NAMES = ("patch_embed", "cls_token", "pos_embed")


def recipe_for(backbone: str) -> str:
  """The recipe a backbone is fine-tuned with by default.

  Args:
    backbone: the backbone's name (`config.model.backbone`).

  Returns:
    "vit" for a ViT, else "convnet".
  """
  return "vit" if backbone.startswith("vit") else "convnet"


def default_config(recipe: str) -> ml_collections.ConfigDict:
  """The fine-tuning config of `recipe` (see the module docstring); `data.name` is set by the caller.

  Args:
    recipe: "vit" or "convnet".

  Returns:
    The config: `recipe`, `seed`, and the sections `data` (`name`, `data_dir`, `on_device`), `train`
    (`global_batch_size`, `num_epochs`, `num_steps` (0: from the epochs), `label_smoothing`, `log_every`,
    `checkpoint_every`, `keep_checkpoints`), `views` (`crop_scale`, `flip_prob`: -1 follows the
    pretraining run), `optim` (`name`, `base_lr`, `weight_decay`, `layer_decay`, `warmup_epochs`,
    `momentum`, `b1`, `b2`) and `model` (`drop_path`, ViTs only).

  Raises:
    ConfigError: an unknown recipe.
  """
  if recipe not in RECIPES:
    raise config_lib.ConfigError(f"recipe must be one of {', '.join(RECIPES)}; got {recipe!r}.")
  vit = recipe == "vit"
  config = ml_collections.ConfigDict()
  config.recipe = recipe
  config.seed = 0
  config.data = ml_collections.ConfigDict({"name": "", "data_dir": "", "on_device": "auto"})
  config.train = ml_collections.ConfigDict({
      "global_batch_size": 128, "num_epochs": 20.0, "num_steps": 0, "label_smoothing": 0.1, "log_every": 50,
      "checkpoint_every": 500, "keep_checkpoints": 2})
  config.views = ml_collections.ConfigDict({"crop_scale": (0.08, 1.0) if vit else (0.35, 1.0), "flip_prob": -1.0})
  config.optim = ml_collections.ConfigDict({
      "name": "adamw" if vit else "sgd", "base_lr": 5e-4 if vit else CONVNET_BASE_LR,
      "weight_decay": 0.05 if vit else 1e-4, "layer_decay": 0.65 if vit else 1.0,
      "warmup_epochs": 5.0 if vit else 1.0, "momentum": 0.9, "b1": 0.9, "b2": 0.999})
  config.model = ml_collections.ConfigDict({"drop_path": 0.1 if vit else 0.0})
  return config


def check_config(config: ml_collections.ConfigDict, backbone: str, num_devices: int) -> None:
  """Refuse a fine-tuning config that cannot run, with one line naming the field and what it accepts.

  Args:
    config: the fine-tuning config.
    backbone: the pretrained backbone's name.
    num_devices: devices the global batch is split over.

  Raises:
    ConfigError: a field out of its range (see `default_config` for the fields).
  """
  def need(condition: bool, message: str) -> None:
    if not condition:
      raise config_lib.ConfigError(message)

  need(config.recipe in RECIPES, f"recipe must be one of {', '.join(RECIPES)}; got {config.recipe!r}.")
  need(config.optim.name in ("adamw", "sgd"), f"optim.name must be adamw or sgd; got {config.optim.name!r}.")
  batch = config.train.global_batch_size
  need(batch >= 2 and batch % num_devices == 0,
       f"train.global_batch_size must be at least 2 and a multiple of the {num_devices} devices; got {batch}.")
  need(config.train.num_steps >= 0, f"train.num_steps must be >= 0 (0: from num_epochs); got {config.train.num_steps}.")
  need(config.train.num_steps > 0 or (math.isfinite(config.train.num_epochs) and config.train.num_epochs > 0),
       f"train.num_epochs must be positive when train.num_steps is 0; got {config.train.num_epochs}.")
  for field in ("log_every", "checkpoint_every", "keep_checkpoints"):
    need(config.train[field] >= 1, f"train.{field} must be at least 1; got {config.train[field]}.")
  need(0.0 <= config.train.label_smoothing < 1.0,
       f"train.label_smoothing must lie in [0, 1); got {config.train.label_smoothing}.")
  need(math.isfinite(config.optim.base_lr) and config.optim.base_lr > 0,
       f"optim.base_lr must be a positive number; got {config.optim.base_lr}.")
  need(math.isfinite(config.optim.weight_decay) and config.optim.weight_decay >= 0,
       f"optim.weight_decay must be >= 0; got {config.optim.weight_decay}.")
  need(0.0 < config.optim.layer_decay <= 1.0, f"optim.layer_decay must lie in (0, 1]; got {config.optim.layer_decay}.")
  need(config.optim.warmup_epochs >= 0, f"optim.warmup_epochs must be >= 0; got {config.optim.warmup_epochs}.")
  for field in ("momentum", "b1", "b2"):
    need(0.0 <= config.optim[field] < 1.0, f"optim.{field} must lie in [0, 1); got {config.optim[field]}.")
  need(config.views.flip_prob == -1.0 or 0.0 <= config.views.flip_prob <= 1.0,
       f"views.flip_prob must be a probability, or -1 for the pretraining run's; got {config.views.flip_prob}.")
  need(0.0 <= config.model.drop_path < 1.0, f"model.drop_path must lie in [0, 1); got {config.model.drop_path}.")
  need(config.model.drop_path == 0.0 or backbone.startswith("vit"),
       f"model.drop_path is stochastic depth, which only ViTs have; set it to 0 for {backbone}.")
  need(config.data.on_device in feed.ON_DEVICE_CHOICES,
       f"data.on_device must be one of {', '.join(feed.ON_DEVICE_CHOICES)}; got {config.data.on_device!r}.")
  try:
    views_lib.ViewSpec(size=1, crop_scale=tuple(config.views.crop_scale))
  except ValueError as error:
    raise config_lib.ConfigError(f"views.crop_scale: {error}") from None


def _path_names(path) -> list:
  return [getattr(entry, "key", getattr(entry, "name", getattr(entry, "idx", None))) for entry in path]


def layer_index(path, depth: int) -> int:
  """A parameter's layer for layer-wise decay: 0 embeddings, i + 1 for block i, depth + 1 everything after.

  Args:
    path: the parameter's pytree path in the classifier's parameters (`backbone.blocks.<i>...`, ...).
    depth: the number of transformer blocks.

  Returns:
    The layer index in 0..depth + 1.
  """
  names = _path_names(path)
  if "blocks" in names:
    return int(names[names.index("blocks") + 1]) + 1
  if any(name in _EMBEDDING_NAMES for name in names):
    return 0
  return depth + 1


def learning_rate_scales(params, depth: int | None, layer_decay: float):
  """Per parameter, the factor its learning rate is multiplied by: `layer_decay^(depth + 1 - layer)`.

  Args:
    params: the classifier's parameters.
    depth: the backbone's transformer blocks; None for a backbone without blocks (every factor 1).
    layer_decay: the decay per layer, in (0, 1].

  Returns:
    A pytree like `params` of Python floats.
  """
  if depth is None:
    return jax.tree.map(lambda _: 1.0, params)
  return jax.tree_util.tree_map_with_path(lambda path, _: layer_decay ** (depth + 1 - layer_index(path, depth)),
                                          params)


def decay_mask(params):
  """True for the parameters weight decay applies to: kernels (ndim >= 2), not the class token or positions.

  Args:
    params: the classifier's parameters (any pytree whose paths name the ViT's `cls_token` and `pos_embed`).

  Returns:
    A pytree of bools like `params`.
  """
  return jax.tree_util.tree_map_with_path(
      lambda path, leaf: leaf.ndim >= 2 and not any(name in _NO_DECAY_NAMES for name in _path_names(path)), params)


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule, depth: int | None
                   ) -> optax.GradientTransformation:
  """AdamW or SGD (Nesterov) with masked weight decay; with layer decay, one learning rate per layer.

  Layer-wise decay is `optax.multi_transform` over the layers, each group's
  learning rate the schedule times its factor (`learning_rate_scales`); the
  decoupled weight decay is scaled with it, as in BEiT's fine-tuning.

  Args:
    config: the fine-tuning config (`optim`).
    schedule: the learning rate at the full rate.
    depth: the backbone's transformer blocks, or None (no layer decay).

  Returns:
    An `optax.GradientTransformation` over the classifier's parameters.
  """
  optim = config.optim

  def scaled(factor: float) -> optax.GradientTransformation:
    rate = lambda count: schedule(count) * factor  # noqa: E731
    if optim.name == "adamw":
      return optax.adamw(rate, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay, mask=decay_mask)
    return optax.chain(optax.add_decayed_weights(optim.weight_decay, mask=decay_mask),
                       optax.sgd(rate, momentum=optim.momentum, nesterov=True))

  if depth is None or optim.layer_decay == 1.0:
    return scaled(1.0)
  groups = {f"layer{index}": scaled(optim.layer_decay ** (depth + 1 - index)) for index in range(depth + 2)}
  labels = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
      lambda path, _: f"layer{layer_index(path, depth)}", params)
  return optax.multi_transform(groups, labels)


def smoothed_cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float) -> jax.Array:
  """Mean cross-entropy against one-hot labels mixed with the uniform distribution: (1 - s) y + s / C.

  Args:
    logits: (B, C) float logits.
    labels: (B,) int class indices.
    smoothing: s in [0, 1).

  Returns:
    The scalar mean over the batch.

  References:
    Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", 2016
    (https://arxiv.org/abs/1512.00567), for label smoothing.
  """
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
  return optax.softmax_cross_entropy(logits, targets).mean()


