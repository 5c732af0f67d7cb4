"""Fine-tuning configs for `python -m jax_ssl.finetune --config configs/finetune.py[:arg]`.

Without `--config` the command picks the recipe from the pretrained
backbone; this file names it, and takes settings on the way:

  python -m jax_ssl.finetune --workdir workdirs/default --dataset shapes \
      --config configs/finetune.py:convnet,train.num_epochs=10

`:vit` is DeiT's recipe with BEiT's layer-wise learning-rate decay (AdamW,
weight decay 0.05, layer decay 0.65, label smoothing 0.1, stochastic depth
0.1); `:convnet` is SGD with Nesterov momentum for ResNets and the small
CNN (`jax_ssl.train.finetune`). `key=value` items set fields after the
recipe; `--config.<field>=<value>` on the command line does the same.
"""

from jax_ssl.train import config as config_lib
from jax_ssl.train import finetune_recipe


def get_config(arg=None):
  items = [item.strip() for item in (arg or "").split(",") if item.strip()]
  recipes = [item for item in items if "=" not in item]
  if len(recipes) > 1 or any(recipe not in finetune_recipe.RECIPES for recipe in recipes):
    raise config_lib.ConfigError(f"configs/finetune.py takes one recipe ({', '.join(finetune_recipe.RECIPES)}) and "
                                 f"key=value settings; got {arg!r}.")
  config = finetune_recipe.default_config(recipes[0] if recipes else "convnet")
  for item in items:
    if "=" in item:
      node, field, value = config_lib.typed_override(config, *(part.strip() for part in item.split("=", 1)))
      node[field] = value
  return config
