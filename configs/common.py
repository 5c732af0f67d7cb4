"""What the config files share: the bundled-data base, and the `:arg` every file accepts.

A config file is `get_config(arg=None)`: it starts from `bundled_base(method)`
(the bundled data, minutes on a CPU) or from `jax_ssl.train.config.base_config()`
(a paper's recipe), changes what its recipe needs, and ends with
`apply_arg(config, arg, variants)`. The argument after the file's name,
`configs/<x>.py:<arg>`, is a comma-separated list of

- the file's own variants (`variants`: name -> function editing the config),
  applied in the order written;
- `smoke`: `smoke(config)`, the same run shrunk to seconds on a CPU;
- `first_half` / `second_half`: train on half of the dataset's fine classes
  (`jax_ssl.train.config.restrict_to_half`), the two models of SAG-VICReg's
  generalization protocol;
- `key=value`: a field of the config set to a value of the field's own type
  (`seed=3`, `train.num_steps=500`, `data.name=shapes`): what
  `--config.<key>=<value>` does on the command line, but part of the config's
  name wherever a config is named by one string (`python -m jax_ssl.evaluate
  generalization --config ...`, the experiments' config arguments).

Unknown names, keys and ill-typed values raise `ConfigError`.
"""

from __future__ import annotations

import ml_collections

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.train import config as config_lib
from jax_ssl.train import heads

# The halves every file accepts, as `restrict_to_half`'s argument.
HALVES = {"first_half": 0, "second_half": 1}


def bundled_base(method: str) -> ml_collections.ConfigDict:
  """A run of `method` on the bundled `digits` that trains in minutes on a CPU (configs/<method>.py).

  A narrow ResNet-18 (CIFAR stem, width 8) on 16 px views of the 8x8 digits,
  without flips (a mirrored digit is another symbol), LARS with the batch-scaled
  learning rate, about 45 epochs.
  """
  config = config_lib.base_config()
  config.method.name = method
  config.data.name = "digits"
  config.views.update(recipe="vicreg", size=16, small_images=True)
  config.views.overrides.update(flip_prob=0.0, crop_scale=(0.4, 1.0))
  config.model.update(backbone="resnet18", stem="cifar", width=8, projector="512-512-512")
  config.optim.update(name="lars", base_lr=0.3, weight_decay=1e-6, warmup_epochs=2.0)
  config.train.update(global_batch_size=128, num_epochs=45, log_every=10, checkpoint_every=100)
  config.eval.update(max_train_examples=10_000, probe_epochs=60)
  return config


def shapes_scale(config: ml_collections.ConfigDict) -> None:
  """The `:shapes` variant: experiments/_pretraining.py's "cpu" scale on the bundled `shapes`, in place.

  A small CNN of width 16 on 16 px views (8 px local ones), 3000 steps of the file's batch, one warmup
  epoch: 10-15 minutes on 2 CPU cores, where pretraining beats both controls (experiments/RESULTS.md).
  """
  config.data.name = "shapes"
  config.views.update(size=16, local_size=8)
  config.model.update(backbone="small_cnn", width=16)
  config.train.update(num_steps=3000, log_every=60, checkpoint_every=750)
  config.optim.warmup_epochs = 1.0


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrink any config to seconds on a CPU, keeping its method, views recipe and optimizer.

  Bundled data (`shapes` replaces a dataset that needs preparing), a tiny CNN,
  16 px views (at most two local ones), a global batch of 16 (it divides over 1, 2, 4, 8 or 16 devices),
  two steps, small probes.
  """
  config = ml_collections.ConfigDict(config.to_dict())  # a copy, unlocked
  if not catalog.get_spec(config.data.name).bundled:
    config.data.name, config.data.data_dir = "shapes", ""
  config.data.classes = ""
  config.model.update(backbone="small_cnn", width=8, projector="64-64", predictor="64-64", dtype="float32",
                      drop_path=0.0)
  # At most two local views: a multi-crop recipe's program then compiles in seconds, with the same code paths.
  config.views.update(size=16, local_size=8, num_local=min(config.views.num_local, 2))
  config.train.update(global_batch_size=16, num_steps=2, log_every=1, checkpoint_every=1, eval_every=0)
  for name, cls in methods.METHODS.items():  # each method's own bounds for a seconds-long run
    for field, cap in cls.smoke_caps.items():
      config.method[name][field] = min(config.method[name][field], cap)
  heads.head_of(methods.from_config(config.method)).smoke(config)  # e.g. MAE and I-JEPA need a ViT
  config.optim.warmup_epochs = 0.0
  config.eval.update(max_train_examples=256, probe_epochs=5)
  return config


def apply_arg(config: ml_collections.ConfigDict, arg: str | None,
              variants: dict | None = None) -> ml_collections.ConfigDict:
  """Apply a config file's `:arg` (see the module docstring) and return the config.

  The file's variants apply in the order written, then `smoke` shrinks the
  result, then the `key=value` settings (so they win over `smoke`'s), then
  `first_half` / `second_half` split the classes of the dataset chosen by then
  (`smoke` may have swapped it).
  """
  variants = dict(variants or {})
  items = [item.strip() for item in (arg or "").split(",") if item.strip()]
  for item in items:
    if "=" not in item and item != "smoke" and item not in variants and item not in HALVES:
      accepted = ", ".join(["smoke", *variants, *HALVES, "key=value"])
      raise config_lib.ConfigError(f"unknown config argument {item!r}; this config takes: {accepted}.")
  for item in items:
    if item in variants:
      variants[item](config)
  if "smoke" in items:
    config = smoke(config)
  for item in items:
    if "=" in item:
      node, field, value = config_lib.typed_override(config, *(part.strip() for part in item.split("=", 1)))
      node[field] = value
  for item in items:
    if item in HALVES:
      config_lib.restrict_to_half(config, HALVES[item])
  return config
