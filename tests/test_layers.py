"""The package's layers: each imports only from the layers below it, and no module grows past ~400 lines."""

import ast
import pathlib

import jax_ssl

PACKAGE = pathlib.Path(jax_ssl.__file__).parent
# Layer -> the layers it may import from (itself included). Modules at the top level (main, protocols,
# evaluate) sit above all of them: they train and evaluate, so they may import anything.
ALLOWED = {
    "ops": {"ops"},
    "losses": {"ops", "losses"},
    "methods": {"ops", "losses", "methods"},
    "data": {"data"},
    "models": {"ops", "models"},
    "eval": {"ops", "data", "eval"},
    "train": {"ops", "losses", "methods", "data", "models", "eval", "train"},
}
MAX_MODULE_LINES = 420


def _imported_layers(path: pathlib.Path) -> set[str]:
  """The `jax_ssl.<name>` packages or modules a file imports, anywhere in it (function bodies included)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      names.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module:
      names.update(f"{node.module}.{alias.name}" for alias in node.names)
  return {name.split(".")[1] for name in names if name.startswith("jax_ssl.")}


def test_each_layer_imports_only_from_the_layers_below_it():
  offences = []
  for layer, allowed in ALLOWED.items():
    for path in sorted((PACKAGE / layer).rglob("*.py")):
      above = _imported_layers(path) - allowed
      if above:
        offences.append(f"{path.relative_to(PACKAGE)} imports {sorted(above)}")
  assert not offences, offences


def _lines_without_docstrings(path: pathlib.Path) -> int:
  """The module's lines, less those of its docstrings: what a reader must hold is the code and its comments.

  Docstrings with Args / Returns sections (issue 13, habits) do not make a module
  two concepts, so they do not count toward the limit.
  """
  tree = ast.parse(path.read_text())
  docstring_lines = 0
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
      first = node.body[0]
      docstring_lines += first.end_lineno - first.lineno + 1
  return len(path.read_text().splitlines()) - docstring_lines


def test_no_module_is_longer_than_a_reader_can_hold():
  lengths = {str(p.relative_to(PACKAGE)): _lines_without_docstrings(p) for p in PACKAGE.rglob("*.py")}
  assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}
  assert 200 < lengths["train/loop.py"] < len((PACKAGE / "train" / "loop.py").read_text().splitlines())
