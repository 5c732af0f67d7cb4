"""Every public function of the package documents its arguments (optax's Args / Returns style)."""

import importlib
import inspect
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "jax_ssl"


def _public_functions(module):
  """(qualified name, function) of the functions and methods a module defines, without private ones."""
  for name, value in vars(module).items():
    if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
      continue
    if inspect.isfunction(value):
      yield name, value
    elif inspect.isclass(value):
      for method_name, method in vars(value).items():
        # Written in the class (flax.struct's generated `replace` is not).
        written_here = inspect.isfunction(method) and method.__qualname__ == f"{value.__qualname__}.{method_name}"
        if not method_name.startswith("_") and written_here:
          yield f"{name}.{method_name}", getattr(value, method_name)


def test_public_functions_with_arguments_document_them():
  undocumented = []
  for path in sorted(PACKAGE.rglob("*.py")):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    module = importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    for name, function in _public_functions(module):
      arguments = [p for p in inspect.signature(function).parameters if p not in ("self", "cls")]
      # inspect.getdoc: an override without a docstring documents itself with its base method's.
      if arguments and "Args:" not in (inspect.getdoc(function) or ""):
        undocumented.append(f"{module.__name__}.{name}")
  assert undocumented == []
