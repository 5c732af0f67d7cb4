"""Config validation: every problem a user can make is one ConfigError line naming the fix."""

import ml_collections
import pytest

from configs import common
from jax_ssl.train import config as config_lib


def _valid():
  config = config_lib.base_config()
  config.model.update(backbone="small_cnn", projector="64-64")
  return config


def test_base_config_validates():
  config_lib.validate(_valid(), num_devices=8)


@pytest.mark.parametrize("mutate,message", [
    (lambda c: c.model.__setattr__("widht", 3), r"unknown config key 'model.widht' \(did you mean 'model.width'\?\)"),
    (lambda c: c.method.__setattr__("name", "dino"), r"unknown method 'dino'; methods: barlow_twins, byol"),
    (lambda c: c.method.__setattr__("name", "tregs+tregs"), "unknown method 'tregs\\+tregs'"),
    (lambda c: c.model.__setattr__("backbone", "resnet152"), "model.backbone 'resnet152' is unknown"),
    (lambda c: c.data.__setattr__("name", "mnist"), "data.name 'mnist' is unknown; datasets: caltech256"),
    (lambda c: c.train.__setattr__("global_batch_size", 12), "train.global_batch_size = 12 does not divide over the 8"),
    (lambda c: c.train.__setattr__("global_batch_size", 0), "train.global_batch_size must be positive"),
    (lambda c: c.optim.__setattr__("name", "sgd"), "optim.name must be one of lars, adamw"),
    (lambda c: c.model.__setattr__("dtype", "float16"), "model.dtype must be one of float32, bfloat16"),
    (lambda c: c.method.__setattr__("lam", 1.5), r"method.lam weighs the regularizer .* in \[0, 1\]"),
    (lambda c: c.views.__setattr__("num_local", 6), "views.recipe 'vicreg' makes 2 global views and no local"),
    (lambda c: c.data.__setattr__("classes", "0-40"), "data.classes '0-40' must lie in 0..35 for shapes"),
    (lambda c: c.data.__setattr__("classes", "a-b"), "data.classes 'a-b': 'a-b' is not a class or a range"),
    (lambda c: (c.method.__setattr__("name", "visreg"), c.views.__setattr__("recipe", "multicrop"),
                c.method.__setattr__("num_slices", 100)), "method.num_slices = 100 is split over 8 devices"),
    (lambda c: (c.method.__setattr__("name", "sag_vicreg"), c.method.__setattr__("k", 64),
                c.train.__setattr__("global_batch_size", 64)),
     "method.k = 64 neighbours needs a global batch larger than k"),
    (lambda c: (c.train.__setattr__("num_steps", 0), c.train.__setattr__("num_epochs", 0.0)),
     "set train.num_steps or train.num_epochs"),
])
def test_bad_configs_are_one_clear_line(mutate, message):
  config = _valid()
  mutate(config)
  with pytest.raises(config_lib.ConfigError, match=message) as error:
    config_lib.validate(config, num_devices=8)
  assert "\n" not in str(error.value)


def test_wrong_types_are_named():
  # ConfigDict refuses a wrong type on assignment; a config rebuilt from a dict or JSON does not.
  as_dict = _valid().to_dict()
  as_dict["train"]["log_every"] = "often"
  config = ml_collections.ConfigDict(as_dict)
  with pytest.raises(config_lib.ConfigError, match="config key 'train.log_every' must be a int, got 'often'"):
    config_lib.validate(config, num_devices=1)


def test_missing_keys_are_named():
  config = _valid()
  del config.train["log_every"]
  with pytest.raises(config_lib.ConfigError, match="config key 'train.log_every' is missing"):
    config_lib.validate(config, num_devices=1)


def test_vit_views_must_fit_the_patches():
  config = _valid()
  config.model.update(backbone="vit_tiny", patch_size=16)
  config.views.size = 40
  with pytest.raises(config_lib.ConfigError, match="views.size = 40 must be a multiple of model.patch_size = 16"):
    config_lib.validate(config, num_devices=1)


def test_parse_classes():
  assert config_lib.parse_classes("") is None
  assert config_lib.parse_classes("0-3, 7") == [0, 1, 2, 3, 7]


def test_smoke_keeps_the_recipe_and_shrinks_the_rest():
  config = config_lib.base_config()
  config.method.name = "visreg"
  config.views.update(recipe="multicrop", num_global=4, num_local=6)
  config.data.update(name="imagenette", data_dir="/data")
  small = common.smoke(config)
  assert small.method.name == "visreg" and small.views.num_global == 4 and small.views.num_local == 6
  assert small.data.name == "shapes" and small.model.backbone == "small_cnn" and small.train.num_steps == 2
  assert config.data.name == "imagenette", "smoke must not modify its input"
  config_lib.validate(small, num_devices=8)


def test_view_overrides_are_checked_against_the_view_fields():
  config = _valid()
  config.views.overrides.flip_prob = 0.0
  config_lib.validate(config, num_devices=1)
  config.views.overrides.flip = 0.0
  with pytest.raises(config_lib.ConfigError, match="views.overrides.flip is not a view field; fields: crop_scale"):
    config_lib.validate(config, num_devices=1)
  del config.views.overrides["flip"]
  config.views.overrides.flip_prob = 2.0
  with pytest.raises(config_lib.ConfigError, match="views.overrides: ViewSpec.flip_prob must be a probability"):
    config_lib.validate(config, num_devices=1)
