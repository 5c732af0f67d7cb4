"""Every config under configs/: loads, validates, documents its launch command, and trains under `smoke`."""

import importlib
import math
import pathlib

import jax
import pytest

from jax_ssl.train import config as config_lib
from jax_ssl.train import loop

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
# Pretraining configs; configs/finetune.py is the fine-tuning command's (tests/test_finetune.py).
CONFIG_FILES = sorted(p for p in CONFIG_DIR.rglob("*.py") if p.name not in ("__init__.py", "common.py", "finetune.py"))


def _module(path):
  return importlib.import_module(".".join(path.relative_to(CONFIG_DIR.parent).with_suffix("").parts))


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_config_validates_and_documents_its_command(path):
  module = _module(path)
  assert f"python -m jax_ssl.main --config configs/{path.relative_to(CONFIG_DIR)}" in module.__doc__
  config_lib.validate(module.get_config(), num_devices=8)
  for half in ("first_half", "second_half"):
    config_lib.validate(module.get_config(half), num_devices=8)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: str(p.relative_to(CONFIG_DIR)))
def test_config_trains_one_step_under_smoke(path, bundled_dir, tmp_path):
  config = _module(path).get_config("smoke")
  config.data.data_dir = str(bundled_dir)
  config.train.num_steps = 1
  config.eval.report = False
  config_lib.validate(config, num_devices=8)  # the batch and the slices still divide over 8 devices
  # On one device: the program is the config's own either way, and a smaller one compiles and
  # checkpoints faster; the sharded step is checked against one device in test_step.py.
  summary = loop.train(config, tmp_path, mesh=loop.data_mesh(jax.devices()[:1]))
  assert summary["status"] == "completed" and summary["step"] == 1


def test_unknown_argument_is_refused():
  with pytest.raises(config_lib.ConfigError, match="unknown config argument 'resnet'; this config takes: smoke"):
    _module(CONFIG_DIR / "default.py").get_config("resnet")


def test_typed_key_value_arguments_set_fields_after_smoke():
  config = _module(CONFIG_DIR / "vicreg.py").get_config("smoke,seed=3,train.num_steps=5,data.name=digits,first_half")
  assert (config.seed, config.train.num_steps, config.data.name, config.data.classes) == (3, 5, "digits", "0-4")
  assert _module(CONFIG_DIR / "vicreg.py").get_config("optim.base_lr=1").optim.base_lr == 1.0  # the field's float
  assert _module(CONFIG_DIR / "vicreg.py").get_config("eval.report=false").eval.report is False
  for arg, message in (("train.num_stepz=5", "unknown config key 'train.num_stepz'"),
                       ("seed=three", "'three' does not parse as int, the type of seed"),
                       ("train=5", "train is a section, not a field"),
                       ("eval.report=maybe", "'maybe' does not parse as bool")):
    with pytest.raises(config_lib.ConfigError, match=message):
      _module(CONFIG_DIR / "vicreg.py").get_config(arg)


def test_variants_compose():
  config = _module(CONFIG_DIR / "recipes" / "tregs_cifar_resnet18.py").get_config("cifar100,byol,second_half")
  assert config.data.name == "cifar100" and config.data.classes == "50-99" and config.method.name == "byol+tregs"


def test_byol_tregs_keeps_the_slides_weight_ratios_with_byol_as_the_beta_term():
  # The slides' MSE recipe: beta 10, gamma 0.2, lambda 8e-4. With BYOL's loss at weight 1 the same ratios
  # give gamma 0.02, lambda 8e-5; the MSE weights themselves swamp BYOL (experiments/byol_tregs_scale.py).
  recipe = _module(CONFIG_DIR / "recipes" / "tregs_cifar_resnet18.py")
  mse = recipe.get_config("cifar10").method.tregs
  for config in (_module(CONFIG_DIR / "byol_tregs.py").get_config(), recipe.get_config("cifar10,byol")):
    assert config.method.name == "byol+tregs"
    assert math.isclose(1.0 / config.method.t_reg.gamma, mse.beta / mse.gamma)
    assert math.isclose(config.method.t_reg.gamma / config.method.t_reg.lam, mse.gamma / mse.lam)


def test_halves_split_the_classes_of_the_smoke_dataset():
  # smoke may swap the dataset, so the halves are applied after it, whatever the order written.
  for arg in ("first_half,smoke", "smoke,first_half"):
    assert _module(CONFIG_DIR / "vicreg.py").get_config(arg).data.classes == "0-4"
  recipe = _module(CONFIG_DIR / "recipes" / "tregs_cifar_resnet18.py").get_config("cifar100,second_half,smoke")
  assert recipe.data.name == "shapes" and recipe.data.classes == "18-35"


def test_recipes_follow_the_papers():
  cifar = _module(CONFIG_DIR / "recipes" / "cifar100_resnet34.py").get_config("sag_vicreg")
  assert cifar.optim.base_lr == 1.3 and cifar.train.global_batch_size == 200  # SAG-VICReg App. F
  vitb = _module(CONFIG_DIR / "recipes" / "visreg_imagenet_vitb16.py").get_config()
  assert (vitb.optim.grad_clip_norm, vitb.model.drop_path, vitb.views.overrides.hue) == (1.0, 0.1, 0.05)
  assert vitb.method.visreg.num_slices == 32 * 2048  # the paper's K per GPU times its 32 GPUs
  nette = _module(CONFIG_DIR / "recipes" / "imagenette_vits8.py")
  text = nette.get_config()
  assert text.method.visreg.num_slices == 8 * 4096 and text.model.projector.endswith("-256")
  official = nette.get_config("official")
  optim = official.optim
  assert (optim.warmup_epochs, optim.end_lr_fraction, optim.grad_clip_norm) == (1.0, 1e-3, 1.0)
  assert (official.views.overrides.brightness, official.views.overrides.contrast, official.views.overrides.saturation,
          official.views.overrides.hue) == (0.8, 0.8, 0.8, 0.1)
  assert official.model.projector.endswith("-128") and official.model.drop_path == 0.1
  for recipe in (nette.get_config("visreg_star"), _module(CONFIG_DIR / "recipes" / "visreg_imagenet_vitb16.py")
                 .get_config("visreg_star")):
    visreg = recipe.method.visreg
    assert (visreg.lambda_scale, visreg.lambda_shape, visreg.lambda_center) == (0.5, 2.0, 0.5)
  config_lib.validate(nette.get_config("official,visreg_star"), num_devices=8)
  dino = _module(CONFIG_DIR / "recipes" / "dino_imagenet_vits16.py").get_config()
  assert (dino.views.num_global, dino.views.num_local, dino.views.local_size) == (2, 10, 96)
  assert (dino.method.dino.teacher_temperature, dino.method.dino.warmup_teacher_steps) == (0.07, 30 * 1251)
  assert dino.model.projector == "2048-2048-256" and dino.method.dino.num_prototypes == 65536
  config_lib.validate(dino, num_devices=8)
  mae = _module(CONFIG_DIR / "recipes" / "mae_imagenet_vitb16.py").get_config()
  assert (mae.method.mae.mask_ratio, mae.method.mae.decoder_width, mae.method.mae.decoder_depth) == (0.75, 512, 8)
  assert (mae.optim.b2, mae.optim.weight_decay, mae.train.global_batch_size) == (0.95, 0.05, 4096)
  assert mae.views.num_global == 1 and mae.views.overrides.jitter_prob == 0.0
  config_lib.validate(mae, num_devices=8)


def test_drop_path_is_refused_where_it_does_not_apply():
  config = _module(CONFIG_DIR / "vicreg.py").get_config()
  config.model.drop_path = 0.1
  with pytest.raises(config_lib.ConfigError, match="applies to ViT backbones"):
    config_lib.validate(config, num_devices=1)


def test_sag_vicreg_shapes_trains_as_the_readings_experiment_does():
  # configs/sag_vicreg.py:shapes is the run RESULTS.md cites beside sag_vicreg_readings' same_view runs.
  from experiments import _pretraining
  config = _module(CONFIG_DIR / "sag_vicreg.py").get_config("shapes")
  same_view = _pretraining.Variant("same_view", "sag_vicreg.py", (("method.sag_vicreg.graph", "same_view"),))
  reading = _pretraining.variant_config(same_view, "shapes", config.seed, _pretraining.SCALES["cpu"],
                                        config.data.data_dir)
  for name in ("visreg", "lejepa", "swd"):  # capped by the experiments for the sliced methods; unused here
    reading.method[name].num_slices = config.method[name].num_slices
  for section in ("model", "views", "method", "optim"):
    assert config[section].to_dict() == reading[section].to_dict(), section
  assert (config.data.name, config.train.global_batch_size, config.train.num_steps) == (
      reading.data.name, reading.train.global_batch_size, reading.train.num_steps)
  config_lib.validate(config, num_devices=8)


def test_run_identities_hash_the_keys_the_finished_runs_were_declared_with():
  # sag_vicreg_readings' same_view runs were hashed when the key was `method.graph`; renaming it
  # `method.sag_vicreg.graph` must not orphan them (their directories end in this hash).
  from experiments import _pretraining
  from experiments import sag_vicreg_readings
  same_view = next(v for v in sag_vicreg_readings.VARIANTS if v.name == "same_view")
  assert same_view.overrides[0] == ("method.sag_vicreg.graph", "same_view")
  assert _pretraining._run_key(same_view, dict(_pretraining.SCALES["cpu"]), list(_pretraining.FEATURES),
                               True) == "c1bb36e7d2"
