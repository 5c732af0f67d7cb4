"""The config schema of a pretraining run, and its validation.

Every config file starts from `base_config()` and changes what its recipe
needs; `validate` then checks the result before anything compiles: unknown
keys (a typo in a file or on the command line), unknown methods, backbones or
datasets, values of the wrong kind or out of range, and a global batch that
does not divide over the devices. Each problem is one `ConfigError` line,
which `python -m jax_ssl.main` prints before exiting with code 2.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from typing import Any

import ml_collections
from ml_collections import config_dict

from jax_ssl import methods
from jax_ssl import models
from jax_ssl.data import catalog
from jax_ssl.data import feed
from jax_ssl.data import views as views_lib
from jax_ssl.train import heads
from jax_ssl.train import optim
from jax_ssl.train import wandb_writer


class ConfigError(ValueError):
  """A config that cannot run; the message is one line telling the user what to change."""


def base_config() -> ml_collections.ConfigDict:
  """Every key a run understands, with its default."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # The objective: `name`, a method of jax_ssl.methods (optionally "+tregs", T-REG on every view), and
  # one section per method holding its hyperparameters under its paper's names, with the method's
  # defaults (`method.visreg.lam`, `method.sag_vicreg.graph`, ...); `method.t_reg` is the add-on's.
  config.method = ml_collections.ConfigDict({
      "name": "vicreg",
      **{name: methods.hyperparameters(cls) for name, cls in methods.METHODS.items()},
      methods.ADD_ON_SECTION: methods.hyperparameters(methods.WithTReg),
  })

  config.data = ml_collections.ConfigDict(dict(
      name="shapes",
      data_dir="",  # empty: the default location (see jax_ssl.data)
      classes="",  # e.g. "0-49": train on a subset of the fine classes (two-model protocol)
      # auto: the split lives on the devices when its images take at most a quarter of one device's memory.
      on_device="auto",  # feed.ON_DEVICE_CHOICES
      worker_count=-1,  # host-fed: grain decoding processes; -1: from the CPU count
  ))

  # Augmented views: a preset recipe (see jax_ssl.data.views).
  config.views = ml_collections.ConfigDict(dict(
      recipe="vicreg",  # vicreg | byol | simclr | multicrop
      size=32,  # global view side
      local_size=16,  # multicrop: local view side
      num_global=2,
      num_local=0,
      global_scale=(0.3, 1.0),  # multicrop only
      local_scale=(0.05, 0.3),  # multicrop only
      small_images=True,  # small-image variants of the presets (no blur; crop scale 0.2-1)
      # ViewSpec fields set on every view after the recipe, e.g. flip_prob=0.0 for digits.
      overrides=ml_collections.ConfigDict(),
  ))

  config.model = ml_collections.ConfigDict(dict(
      backbone="resnet18",
      stem="cifar",  # resnets: cifar | imagenet
      width=64,  # resnets and small_cnn: base width
      patch_size=16,  # vits
      drop_path=0.0,  # vits: stochastic depth of the last block (linear from 0 at the first)
      pool="cls",  # vits: the representation probes read, cls | mean (the mean patch token)
      projector="2048-2048-2048",
      projector_activation="relu",
      predictor="4096-256",  # byol only
      dtype="float32",  # computation dtype: float32 | bfloat16
  ))

  config.optim = ml_collections.ConfigDict(dict(
      name="lars",  # lars | adamw
      base_lr=0.3,  # scaled by global_batch / 256 when scale_lr_by_batch
      scale_lr_by_batch=True,
      weight_decay=1e-6,
      momentum=0.9,  # lars
      b1=0.9, b2=0.999,  # adamw
      trust_coefficient=1e-3,  # lars
      warmup_epochs=10.0,
      end_lr_fraction=0.0,  # cosine decays to end_lr_fraction * peak
      grad_clip_norm=0.0,  # 0: no clipping
  ))

  config.train = ml_collections.ConfigDict(dict(
      global_batch_size=256,
      num_epochs=100.0,
      num_steps=0,  # > 0 overrides num_epochs; 0: num_epochs sets the length (the first line says which)
      log_every=20,
      checkpoint_every=500,
      keep_checkpoints=3,
      eval_every=0,  # kNN monitor every this many steps; 0: only at the end
      probe_lr=1e-3,  # online linear probe (Adam on stop-gradient features)
      peer_timeout_seconds=30.0,  # several processes: stop when another has been silent this long
  ))

  config.eval = ml_collections.ConfigDict(dict(
      knn_k=20,
      knn_temperature=0.07,
      max_train_examples=10_000,  # features embedded for the kNN monitor and the final probes
      probe_epochs=100,
      report=True,  # final report.md + plots, comparing with the encoder at initialisation
      lidar_samples=256,  # the kNN monitor's LiDAR: the first this many images of its sample (at least 2) ...
      lidar_views=8,  # ... each in this many views of the run's global augmentation (at least 2)
  ))

  config.log = ml_collections.ConfigDict(dict(
      wandb="",  # "offline" | "online": also log to Weights & Biases (process 0; pip install wandb); "": no
  ))

  config.mesh = ml_collections.ConfigDict(dict(
      fsdp=False,  # shard parameters and optimizer state over the data axis
  ))

  # Diagnostics.
  config.debug = ml_collections.ConfigDict(dict(
      profile_steps="",  # "a:b": a profiler trace of steps a to b (1-based, inclusive) in WORKDIR/profile
  ))
  return config


# Where each flat `method.<key>` of a config written before every method had its own section went
# (several methods shared one key). Run identities and saved configs of older runs are read through it.
LEGACY_METHOD_KEYS = {
    "sim_coeff": ("vicreg.sim_coeff", "sag_vicreg.sim_coeff"),
    "std_coeff": ("vicreg.std_coeff", "sag_vicreg.std_coeff"),
    "cov_coeff": ("vicreg.cov_coeff", "sag_vicreg.cov_coeff"),
    **{key: (f"sag_vicreg.{key}",) for key in ("k", "percentile", "graph", "scale_over", "regularize")},
    "lam": ("visreg.lam", "lejepa.lam", "swd.lam"),
    "num_slices": ("visreg.num_slices", "lejepa.num_slices", "swd.num_slices"),
    **{key: (f"visreg.{key}",) for key in ("lambda_scale", "lambda_shape", "lambda_center", "detach_std")},
    "sigreg_knots": ("lejepa.knots",),
    "tregs_beta": ("tregs.beta",),
    "tregs_gamma": ("tregs.gamma", f"{methods.ADD_ON_SECTION}.gamma"),
    "tregs_lam": ("tregs.lam", f"{methods.ADD_ON_SECTION}.lam"),
    "barlow_lambda": ("barlow_twins.lambd",),
    "temperature": ("simclr.temperature",),
    "byol_momentum": ("byol.tau_base",),
}


def upgrade_legacy_method(config_json: dict) -> dict:
  """A saved config (its JSON dict) with a flat legacy `method` section moved into per-method sections.

  The values a legacy run trained with land in every section that read them;
  sections it did not have take their defaults. A current config is returned
  unchanged.

  Args:
    config_json: a config as a plain dict, e.g. `json.loads` of a run's saved `config.json`.

  Returns:
    `config_json` itself if its `method` section has no legacy key; otherwise a shallow copy whose
    `method` is the default per-method sections of `base_config()` with the legacy values written in.
  """
  section = config_json.get("method")
  if not isinstance(section, dict) or not any(key in LEGACY_METHOD_KEYS for key in section):
    return config_json
  upgraded = base_config().method.to_dict()
  upgraded["name"] = section.get("name", upgraded["name"])
  for key, value in section.items():
    for target in LEGACY_METHOD_KEYS.get(key, ()):
      name, field = target.split(".")
      upgraded[name][field] = value
  return {**config_json, "method": upgraded}


def upgrade_saved_config(config_json: dict) -> dict:
  """A run's saved config (its JSON dict) as today's code reads it.

  Legacy flat method keys move into their sections (`upgrade_legacy_method`),
  and every key added to the schema since the run started takes its default
  (a new key's default always keeps the behaviour the run had without it,
  e.g. a newly added method's section), so a run resumes under a newer
  library.

  Args:
    config_json: a config as a plain dict, e.g. `json.loads` of a run's saved `config.json`.

  Returns:
    A new dict: `config_json` upgraded, with the absent keys of `base_config()` filled in; the values
    it holds are kept.
  """
  def fill(saved: dict, defaults: dict) -> dict:
    filled = dict(saved)
    for key, default in defaults.items():
      if key not in filled:
        filled[key] = default
      elif isinstance(default, dict) and isinstance(filled[key], dict):
        filled[key] = fill(filled[key], default)
    return filled

  return fill(upgrade_legacy_method(config_json), json.loads(base_config().to_json()))


# The sections of the trainer's own layer; each lower layer checks its section itself (`validate`).
POSITIVE = ("train.global_batch_size", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
            "train.peer_timeout_seconds", "eval.knn_k", "eval.max_train_examples", "eval.probe_epochs")
NON_NEGATIVE = ("train.num_epochs", "train.num_steps", "train.eval_every")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"train.num_steps": 2, "method.visreg.lam": 0.9, ...}: every field of a config under its dotted key.

  Args:
    config: a `ConfigDict` or `FrozenConfigDict` (nested ones are descended into; plain dicts are leaves).
    prefix: prepended to every key; recursive calls pass the parent's dotted path ending in ".".

  Returns:
    A flat dict from dotted key to leaf value.
  """
  flat = {}
  for key, value in config.items():
    path = f"{prefix}{key}"
    if isinstance(value, (ml_collections.ConfigDict, config_dict.FrozenConfigDict)):
      flat.update(flatten(value, path + "."))
    else:
      flat[path] = value
  return flat


def _unknown_key_error(key: str, known: list[str]) -> ConfigError:
  close = difflib.get_close_matches(key, known, n=1)
  hint = f" (did you mean {close[0]!r}?)" if close else ""
  return ConfigError(f"unknown config key {key!r}{hint}; see jax_ssl/train/config.py for the keys a run takes.")


def validate(config: ml_collections.ConfigDict, *, num_devices: int) -> None:
  """Raise `ConfigError` (one line) for the first problem found in `config`.

  The schema is checked here: unknown keys (with the closest known one), missing keys and value
  types against `base_config()`. Each section is then checked by the layer that reads it: the
  method by `methods.from_config`, `data` by `data.check_config`, `views` by
  `views.check_config`, `model` by `models.check_config`, `optim` by `optim.check_config`; the
  `train` and `eval` ranges here. Last come what spans sections: the global batch over the devices,
  then the method's own needs of the run (`Method.check_run`: the views it compares, SAG-VICReg's
  `k` against the batch, a sliced method's `num_slices` over the devices) and its head's
  (`Head.check_config`: a ViT for MAE and I-JEPA, captions for CLIP).

  Args:
    config: the full run config (every section of `base_config()`).
    num_devices: the number of devices the global batch is split over.

  Raises:
    ConfigError: for the first problem found; nothing is returned when the config is valid.
  """
  schema = flatten(base_config())
  given = flatten(config)
  for key in given:
    # The views' overrides are free-form in the schema; `views.check_config` names unknown fields.
    if key not in schema and not key.startswith("views.overrides."):
      raise _unknown_key_error(key, list(schema))
  for key, default in schema.items():
    if key not in given:
      raise ConfigError(f"config key {key!r} is missing; start config files from jax_ssl.train.config.base_config().")
    value = given[key]
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
      continue
    if expected is tuple and isinstance(value, list):
      continue
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
      raise ConfigError(f"config key {key!r} must be a {expected.__name__}, got {value!r}.")
  for key, value in given.items():
    # No field means anything with a NaN or inf: a learning rate of inf would save an all-inf state.
    numbers = value if isinstance(value, (tuple, list)) else (value,)
    if any(isinstance(number, float) and not math.isfinite(number) for number in numbers):
      raise ConfigError(f"{key} must be a finite number, got {value!r}.")

  try:  # the method checks its own section
    method = methods.from_config(config.method)
  except ValueError as error:
    raise _method_error(str(error), config) from None
  try:  # each layer checks its own section, naming the field in full ("model.dtype ...")
    feed.check_config(config.data)
    views_lib.check_config(config.views)
    models.check_config(config.model, {"views.size": config.views.size, "views.local_size": config.views.local_size})
    optim.check_config(config.optim)
    optim.check_peak_fits(config)
    wandb_writer.check_config(config.log)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  for key in POSITIVE:
    if not given[key] > 0:
      raise ConfigError(f"{key} must be positive, got {given[key]!r}.")
  for key in NON_NEGATIVE:
    if not given[key] >= 0:
      raise ConfigError(f"{key} must not be negative, got {given[key]!r}.")
  if config.train.num_steps == 0 and config.train.num_epochs == 0:
    raise ConfigError("set train.num_steps or train.num_epochs to a positive value.")
  try:
    profile_steps(config.debug.profile_steps)
  except ValueError as error:
    raise ConfigError(str(error)) from None
  for key in ("eval.lidar_samples", "eval.lidar_views"):  # LiDAR's classes, and the views that spread each
    if given[key] < 2:
      raise ConfigError(f"{key} must be at least 2, got {given[key]!r}.")

  batch = config.train.global_batch_size
  if batch < 2:
    raise ConfigError(f"train.global_batch_size = {batch} is too small: the loss and the batch statistics "
                      "(BatchNorm, the embedding spread) compare the images of a batch; use at least 2.")
  if batch % num_devices:
    raise ConfigError(f"train.global_batch_size = {batch} does not divide over the {num_devices} devices; "
                      f"use a multiple of {num_devices}.")
  try:  # what spans sections: the method's needs of the run (views, batch, devices), then its head's
    method.check_run(methods.RunShape(batch, num_devices, config.views.num_global, config.views.num_local))
    heads.head_of(method).check_config(config, method)
  except ValueError as error:
    raise _method_error(str(error), config) from None


def _method_error(message: str, config: ml_collections.ConfigDict) -> ConfigError:
  """A method names the field of its own section it refuses ("visreg.lam ..."): method.visreg.lam here."""
  return ConfigError(f"method.{message}" if message.split(".", 1)[0] in config.method else message)


def profile_steps(text: str) -> tuple[int, int] | None:
  """`debug.profile_steps` read: "a:b" -> (a, b), the first and last step traced; "" -> None.

  Args:
    text: the setting.

  Returns:
    `(a, b)` with 1 <= a <= b, or None for no trace.

  Raises:
    ValueError: one line, for any other text.
  """
  if not text:
    return None
  first, _, last = text.partition(":")
  if not (first.isdigit() and last.isdigit() and 1 <= int(first) <= int(last)):
    raise ValueError(f"debug.profile_steps must be 'a:b', the first and last step to trace with 1 <= a <= b "
                     f"(e.g. '10:12'), or empty; got {text!r}.")
  return int(first), int(last)


def typed_override(config: ml_collections.ConfigDict, key: str,
                   text: str) -> tuple[ml_collections.ConfigDict, str, Any]:
  """`text` parsed as the type of the config field `key`, for a `key=value` setting typed on a command line.

  Args:
    config: the config the setting applies to.
    key: a dotted field path (`optim.base_lr`).
    text: the value as typed; booleans are `true` / `false`.

  Returns:
    `(node, field, value)`: the section holding the field, its name, and the parsed value (assign
    `node[field] = value` to apply it).

  Raises:
    ConfigError: `key` names no field of `config` (or a section), the field holds something other than a
      bool, int, float or str, or `text` does not parse as the field's type.
  """
  node = config
  *sections, field = key.split(".")
  try:
    for section in sections:
      node = node[section]
    current = node[field]
  except (KeyError, TypeError):
    raise ConfigError(f"unknown config key {key!r} in the setting {key}={text}.") from None
  if isinstance(current, ml_collections.ConfigDict):
    raise ConfigError(f"{key} is a section, not a field; set one of its fields ({key}.<field>=...).")
  try:
    if isinstance(current, bool):
      if text.lower() not in ("true", "false"):
        raise ValueError
      value = text.lower() == "true"
    elif isinstance(current, (int, float, str)):
      value = type(current)(text)
    else:
      raise ConfigError(f"{key} holds a {type(current).__name__}; set it with --config.{key} instead.")
  except ValueError:
    raise ConfigError(f"{key}={text}: {text!r} does not parse as {type(current).__name__}, "
                      f"the type of {key} (now {current!r}).") from None
  return node, field, value


def restrict_to_half(config: ml_collections.ConfigDict, which: int) -> None:
  """Train on the first (`which=0`) or second (1) half of the fine classes of the config's dataset.

  The two models of SAG-VICReg's generalization protocol (Sec. 5.3); with an
  odd number of classes the second half holds one more.

  Args:
    config: the run config; `data.name` is read and `data.classes` is overwritten in place.
    which: 0 for the first half, any other value for the second.

  Raises:
    ValueError: if `data.name` is not a known dataset.
  """
  total = catalog.get_spec(config.data.name).num_classes["label"]
  half = total // 2
  config.data.classes = f"0-{half - 1}" if which == 0 else f"{half}-{total - 1}"
