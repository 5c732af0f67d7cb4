"""Every config under configs/: loads, validates, documents its launch command, and trains under `smoke`."""

import importlib
import pathlib

import pytest

from jax_ssl.train import config as config_lib
from jax_ssl.train import loop

CONFIG_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
CONFIG_FILES = sorted(p for p in CONFIG_DIR.rglob("*.py") if p.name != "__init__.py")


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
  config_lib.validate(config, num_devices=8)
  summary = loop.train(config, tmp_path)
  assert summary["status"] == "completed" and summary["step"] == 1


def test_unknown_argument_is_refused():
  with pytest.raises(config_lib.ConfigError, match="unknown config argument 'resnet'; this config takes: smoke"):
    _module(CONFIG_DIR / "default.py").get_config("resnet")


def test_variants_compose():
  config = _module(CONFIG_DIR / "recipes" / "tregs_cifar_resnet18.py").get_config("cifar100,byol,second_half")
  assert config.data.name == "cifar100" and config.data.classes == "50-99" and config.method.name == "byol+tregs"


def test_halves_split_the_classes_of_the_smoke_dataset():
  # smoke may swap the dataset, so the halves are applied after it, whatever the order written.
  for arg in ("first_half,smoke", "smoke,first_half"):
    assert _module(CONFIG_DIR / "vicreg.py").get_config(arg).data.classes == "0-4"
  recipe = _module(CONFIG_DIR / "recipes" / "tregs_cifar_resnet18.py").get_config("cifar100,second_half,smoke")
  assert recipe.data.name == "shapes" and recipe.data.classes == "18-35"
