"""A method is one file plus one registry line; heads are looked up, never compared by name."""

import ast
import importlib.util
import pathlib
import re

import numpy as np
import pytest

import jax_ssl
from configs import common
from jax_ssl import methods
from jax_ssl.train import config as config_lib
from jax_ssl.train import heads
from jax_ssl.train import loop
from jax_ssl.train import monitor

REPOSITORY = pathlib.Path(jax_ssl.__file__).parents[1]

# A whole new method, as a user would write it in its own module: a frozen dataclass with its
# hyperparameter, its check and its loss. Nothing else in the trainer is edited for it.
TOY_METHOD = '''
import dataclasses
from typing import ClassVar

import jax.numpy as jnp

from jax_ssl.methods.base import Method
from jax_ssl.methods.base import check


@dataclasses.dataclass(frozen=True)
class MeanMatching(Method):
  """Pull the two views together; push each view's mean embedding away from zero."""

  name: ClassVar[str] = "mean_matching"
  spread: float = 0.5

  def __post_init__(self):
    check(self.spread >= 0, f"{self.name}.spread must not be negative; got {self.spread}.")

  def loss(self, embeddings, key, directions=None):
    z1, z2 = embeddings.two_views
    invariance = jnp.mean(jnp.square(z1 - z2))
    spread = -jnp.mean(jnp.abs(jnp.mean(embeddings.global_views, axis=1)))
    return invariance + self.spread * spread, {"invariance": invariance, "spread": spread}
'''


def _load_module(path: pathlib.Path):
  spec = importlib.util.spec_from_file_location(path.stem, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_a_method_in_one_new_file_plus_a_registry_line_trains(tmp_path, bundled_dir, monkeypatch):
  source = tmp_path / "mean_matching.py"
  source.write_text(TOY_METHOD)
  toy = _load_module(source).MeanMatching
  monkeypatch.setitem(methods.METHODS, toy.name, toy)  # the registry line

  config = common.smoke(config_lib.base_config())  # the schema now has a `method.mean_matching` section
  config.method.name = "mean_matching"
  config.method.mean_matching.spread = 0.25
  config.data.data_dir = str(bundled_dir)
  config.train.num_steps = 1
  config.eval.report = False
  config_lib.validate(config, num_devices=8)
  summary = loop.train(config, tmp_path / "run")

  assert summary["status"] == "completed" and summary["step"] == 1
  record = monitor.read_metrics(tmp_path / "run")[-1]
  assert record["step"] == 1
  # The loss is the method's: its two terms, weighted by the configured spread.
  np.testing.assert_allclose(record["loss"], record["loss/invariance"] + 0.25 * record["loss/spread"], rtol=1e-5)
  assert record["loss/spread"] < 0
  config.method.mean_matching.spread = -1.0
  with pytest.raises(config_lib.ConfigError, match="method.mean_matching.spread must not be negative"):
    config_lib.validate(config, num_devices=8)


def test_every_method_names_a_head_whose_embeddings_it_reads():
  for name, cls in methods.METHODS.items():
    head = heads.head_of(cls())
    assert head.kind == cls.head, name
  assert {kind: type(head).__name__ for kind, head in heads.HEADS.items()} == {
      "projector": "Head", "dino": "DINOHead", "mae": "MAEDecoder", "ijepa": "IJEPAPredictor", "clip": "CLIPTowers"}
  assert heads.head_of(methods.get_method("mae+tregs")) is heads.HEADS["mae"]


def _code_lines(path: pathlib.Path) -> int:
  """Lines of a module that are code: not blank, not a comment, not inside a docstring."""
  text = path.read_text()
  docstring_lines = set()
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
      first = node.body[0]
      docstring_lines.update(range(first.lineno, first.end_lineno + 1))
  return sum(1 for number, line in enumerate(text.splitlines(), 1)
             if number not in docstring_lines and line.strip() and not line.strip().startswith("#"))


def test_no_module_has_more_than_450_lines_of_code():
  package = REPOSITORY / "jax_ssl"
  lengths = {str(path.relative_to(package)): _code_lines(path) for path in package.rglob("*.py")}
  assert {name: n for name, n in lengths.items() if n > 450} == {}
  assert 100 < lengths["train/heads.py"] < len((package / "train" / "heads.py").read_text().splitlines())


def _python_files():
  for folder in ("jax_ssl", "configs", "experiments"):
    yield from (REPOSITORY / folder).rglob("*.py")


def test_no_head_is_compared_by_name_outside_the_heads_module():
  comparison = re.compile(r"\bhead\s*(==|!=|\bin\b|\bnot in\b)\s*[\"'(\[]")
  offences = [f"{path.relative_to(REPOSITORY)}:{number}" for path in _python_files()
              if path.name != "heads.py"
              for number, line in enumerate(path.read_text().splitlines(), 1) if comparison.search(line)]
  assert offences == []


def test_nothing_in_the_repository_cites_a_design_file_outside_it():
  tracked = [*_python_files(), *REPOSITORY.glob("*.md"), *(REPOSITORY / "docs").rglob("*.md"),
             *(REPOSITORY / "experiments").rglob("*.md")]
  assert [str(path.relative_to(REPOSITORY)) for path in tracked if "DESIGN.md" in path.read_text()] == []
