"""Label hierarchies as data: the levels of a dataset's labels, finest first.

A dataset brings the levels it stores (`label`, and for CIFAR-100 and
`shapes` coarser ones: see `jax_ssl.data.catalog`). More levels come from
JSON, either shipped here for a bundled dataset (`hierarchies/<name>.json`:
`digits` gets a coarse level this way) or supplied by the user:

    {
      "levels": {
        "superclass": [0, 0, 1, 1, 2],                       # class of each `label`
        "kingdom": {"from": "superclass", "map": {"0": 0, "1": 0, "2": 1}},
        "coarse_named": {"from": "label_coarse", "map": ["animal", "animal", "object"]}
      }
    }

A level maps each class of a finer level (`from`, default `label`) to its
class: a list indexed by the finer class, or an object keyed by it. Classes
may be integers or names (names are numbered in sorted order). Each finer
class has exactly one parent by construction; a finer class in the data that
the map leaves out is an error naming it.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from jax_ssl.data import catalog

BUILTIN_DIR = pathlib.Path(__file__).with_name("hierarchies")


def _parse_map(level: str, mapping: Any) -> dict[int, Any]:
  if isinstance(mapping, list):
    return dict(enumerate(mapping))
  if isinstance(mapping, Mapping):
    parsed = {}
    for key, value in mapping.items():
      try:
        parsed[int(key)] = value
      except ValueError:
        raise ValueError(
            f"hierarchy level {level!r}: key {key!r} is not an integer class of the finer level.") from None
    return parsed
  raise ValueError(f"hierarchy level {level!r}: the map must be a list or an object, got {type(mapping).__name__}.")


def _class_indices(level: str, values: list) -> tuple[dict, list[str] | None]:
  """Parent values -> integer classes; names are numbered in sorted order."""
  if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
    if any(v < 0 for v in values):
      raise ValueError(f"hierarchy level {level!r}: classes must be non-negative integers.")
    return {v: int(v) for v in values}, None
  if all(isinstance(v, str) for v in values):
    names = sorted(set(values))
    return {name: index for index, name in enumerate(names)}, names
  raise ValueError(f"hierarchy level {level!r}: classes must be all integers or all names.")


def read_hierarchy(path: str | os.PathLike) -> dict[str, dict]:
  """The levels of a hierarchy JSON file: `{level: {"from": finer level, "map": {finer class: class}, "names"}}`.

  Args:
    path: JSON file in the format of this module's docstring.

  Returns:
    Dict {level: entry}, in the file's order. An entry's "from" is the finer level it maps (default "label"), its
    "map" takes each int finer class to an int class (names numbered in sorted order), and its "names" are the
    file's "names" if given, else the sorted class names when the classes are names, else None.

  Raises:
    FileNotFoundError: if `path` does not exist.
    ValueError: if the file is not valid JSON, has no "levels" object, or a level's map is neither a list nor an
      object, has a key that is not an integer, or classes that are not all non-negative integers or all names.
  """
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"hierarchy file {path} does not exist.")
  try:
    document = json.loads(path.read_text())
  except json.JSONDecodeError as error:
    raise ValueError(f"hierarchy file {path} is not valid JSON: {error}.") from None
  if not isinstance(document, Mapping) or not isinstance(document.get("levels"), Mapping):
    raise ValueError(f"hierarchy file {path} must be an object with a \"levels\" object (see jax_ssl.eval.hierarchy).")
  levels = {}
  for level, entry in document["levels"].items():
    if isinstance(entry, Mapping) and "map" in entry:
      source, raw, names = entry.get("from", "label"), entry["map"], entry.get("names")
    else:
      source, raw, names = "label", entry, None
    mapping = _parse_map(level, raw)
    indices, sorted_names = _class_indices(level, list(mapping.values()))
    levels[level] = {"from": source, "map": {k: indices[v] for k, v in mapping.items()},
                     "names": names if names is not None else sorted_names}
  return levels


def builtin_hierarchy(dataset: str) -> pathlib.Path | None:
  """The hierarchy file shipped for a dataset, if any.

  Args:
    dataset: dataset name, e.g. 'digits'.

  Returns:
    The path of `hierarchies/<dataset>.json` next to this module, or None when there is no such file.
  """
  path = BUILTIN_DIR / f"{dataset}.json"
  return path if path.exists() else None


def extend_levels(labels_by_level: Mapping[str, np.ndarray], hierarchy: Mapping[str, dict]) -> dict[str, np.ndarray]:
  """`labels_by_level` plus every level of `hierarchy`, each derived from its finer level.

  Levels are added in `hierarchy`'s order, so one may map from a level added before it.

  Args:
    labels_by_level: {level: (N,) non-negative integer labels}.
    hierarchy: levels as `read_hierarchy` returns them.

  Returns:
    A new dict: the given levels as numpy arrays, then each hierarchy level as int64 (N,) labels.

  Raises:
    ValueError: if a hierarchy level maps from a level that is not there, or leaves a class of that level
      without a parent.
  """
  levels = {name: np.asarray(labels) for name, labels in labels_by_level.items()}
  for level, entry in hierarchy.items():
    source = entry["from"]
    if source not in levels:
      raise ValueError(f"hierarchy level {level!r} maps from {source!r}, which is not a level here "
                       f"(levels: {', '.join(levels)}).")
    finer = levels[source]
    missing = sorted(set(np.unique(finer).tolist()) - set(entry["map"]))
    if missing:
      raise ValueError(f"hierarchy level {level!r} gives no parent to {source} classes {missing[:10]}"
                       f"{' ...' if len(missing) > 10 else ''}; map every class of {source!r}.")
    table = np.full(int(finer.max()) + 1, -1, np.int64)
    for child, parent in entry["map"].items():
      if child < table.size:
        table[child] = parent
    levels[level] = table[finer]
  return levels


def dataset_levels(dataset: str, arrays: Mapping[str, np.ndarray],
                   hierarchy_file: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
  """Every label level of a split (as `jax_ssl.data.load_numpy` returns it), finest first.

  The dataset's own levels, then those of its shipped hierarchy file, then
  those of `hierarchy_file`.

  Args:
    dataset: name of a dataset in `jax_ssl.data.catalog`.
    arrays: the split's arrays by key; the dataset's label levels present among them are used.
    hierarchy_file: optional user hierarchy JSON (see `read_hierarchy`).

  Returns:
    Dict {level: (N,) labels}, finest first.

  Raises:
    ValueError: if `dataset` is unknown, or a hierarchy file is invalid or does not fit the labels.
    FileNotFoundError: if `hierarchy_file` does not exist.
  """
  spec = catalog.get_spec(dataset)
  levels = {level: np.asarray(arrays[level]) for level in spec.label_levels if level in arrays}
  for path in (builtin_hierarchy(dataset), hierarchy_file):
    if path is not None:
      levels = extend_levels(levels, read_hierarchy(path))
  return levels
