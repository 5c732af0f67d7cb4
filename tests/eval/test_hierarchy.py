"""Label hierarchies as data: the dataset's own levels, shipped files and user JSON."""

import json

import numpy as np
import pytest

from jax_ssl.data import sources
from jax_ssl.eval import hierarchy


def _write(tmp_path, document):
  path = tmp_path / "hierarchy.json"
  path.write_text(json.dumps(document))
  return path


def test_levels_from_lists_objects_names_and_chains(tmp_path):
  path = _write(tmp_path, {"levels": {
      "pair": [0, 0, 1, 1, 2, 2],
      "half": {"from": "pair", "map": {"0": "low", "1": "low", "2": "high"}},
      "parity": {"map": {str(c): c % 2 for c in range(6)}},
  }})
  fine = np.array([5, 0, 3, 2, 4, 1, 1])
  levels = hierarchy.extend_levels({"label": fine}, hierarchy.read_hierarchy(path))
  assert list(levels) == ["label", "pair", "half", "parity"]
  np.testing.assert_array_equal(levels["pair"], fine // 2)
  # Names are numbered in sorted order: "high" = 0, "low" = 1.
  np.testing.assert_array_equal(levels["half"], np.where(fine // 2 == 2, 0, 1))
  np.testing.assert_array_equal(levels["parity"], fine % 2)
  assert hierarchy.read_hierarchy(path)["half"]["names"] == ["high", "low"]


def test_a_class_without_parent_is_named(tmp_path):
  path = _write(tmp_path, {"levels": {"pair": [0, 0, 1]}})
  with pytest.raises(ValueError, match=r"gives no parent to label classes \[3, 4\]"):
    hierarchy.extend_levels({"label": np.arange(5)}, hierarchy.read_hierarchy(path))


@pytest.mark.parametrize("document, message", [
    ({"level": [0]}, 'must be an object with a "levels" object'),
    ({"levels": {"a": {"x": 1}}}, "key 'x' is not an integer class"),
    ({"levels": {"a": [0, "b"]}}, "all integers or all names"),
    ({"levels": {"a": [0, -1]}}, "non-negative"),
    ({"levels": {"a": {"from": "nope", "map": [0]}}}, "maps from 'nope', which is not a level"),
])
def test_malformed_files_are_refused(tmp_path, document, message):
  path = _write(tmp_path, document)
  with pytest.raises(ValueError, match=message):
    hierarchy.extend_levels({"label": np.zeros(3, int)}, hierarchy.read_hierarchy(path))


def test_missing_and_invalid_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    hierarchy.read_hierarchy(tmp_path / "none.json")
  (tmp_path / "bad.json").write_text("{levels")
  with pytest.raises(ValueError, match="not valid JSON"):
    hierarchy.read_hierarchy(tmp_path / "bad.json")


def test_bundled_datasets_carry_their_hierarchies(bundled_dir):
  digits = sources.load_numpy("digits", "test", bundled_dir)
  levels = hierarchy.dataset_levels("digits", digits)
  assert list(levels) == ["label", "label_coarse"]
  loops = np.isin(levels["label"], [0, 6, 8, 9])
  assert np.all(levels["label_coarse"][loops] == 0) and np.all(levels["label_coarse"][~loops] > 0)
  shapes = hierarchy.dataset_levels("shapes", sources.load_numpy("shapes", "test", bundled_dir))
  assert list(shapes) == ["label", "label_coarse", "label_family"]
  # Every finer class has exactly one parent at each coarser level.
  for finer, coarser in (("label", "label_coarse"), ("label_coarse", "label_family")):
    pairs = set(zip(shapes[finer].tolist(), shapes[coarser].tolist()))
    assert len(pairs) == len(set(shapes[finer].tolist()))


def test_user_levels_extend_the_dataset_levels(bundled_dir, tmp_path):
  path = _write(tmp_path, {"levels": {"everything": {"from": "label_family", "map": [0, 0, 0]}}})
  levels = hierarchy.dataset_levels("shapes", sources.load_numpy("shapes", "test", bundled_dir), path)
  assert list(levels)[-1] == "everything" and np.all(levels["everything"] == 0)
