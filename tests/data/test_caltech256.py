"""The Caltech-256 builder, on a small fake 256_ObjectCategories folder (real JPEG files, no network)."""

import numpy as np
import pytest
from PIL import Image

from jax_ssl.data import caltech256
from jax_ssl.data import sources


def _write_jpeg(path, rng, mode="RGB"):
  pixels = rng.integers(0, 256, (24, 30, 3) if mode == "RGB" else (24, 30), dtype=np.uint8)
  Image.fromarray(pixels, mode=mode).save(path, format="JPEG")


@pytest.fixture(scope="module")
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("256_ObjectCategories")
  rng = np.random.default_rng(0)
  for folder, count in (("001.ak47", 10), ("002.american-flag", 5), ("003.backpack", 8), ("257.clutter", 4)):
    (root / folder).mkdir()
    for index in range(count):
      _write_jpeg(root / folder / f"{folder[:3]}_{index:04d}.jpg", rng, mode="L" if index == 0 else "RGB")
  (root / "001.ak47" / "notes.txt").write_text("not an image")
  return root


def test_builder_splits_each_class_80_20_and_leaves_out_clutter(manual_dir, tmp_path):
  sources.prepare("caltech256", tmp_path, manual_dir)
  train = sources.open_source("caltech256", "train", tmp_path)
  test = sources.open_source("caltech256", "test", tmp_path)
  # 10, 5, 8 images -> 8/2, 4/1, 6/2; the clutter folder and the text file are ignored.
  np.testing.assert_array_equal(np.bincount(train.labels()), [8, 4, 6])
  np.testing.assert_array_equal(np.bincount(test.labels()), [2, 1, 2])
  example = train[0]
  assert example["image"].shape == (256, 256, 3) and example["image"].dtype == np.uint8


def test_split_is_deterministic_and_disjoint(manual_dir):
  folder = manual_dir / "001.ak47"
  first, again = caltech256.split_files(folder), caltech256.split_files(folder)
  assert first == again
  assert not set(first["train"]) & set(first["test"])
  assert len(first["train"]) + len(first["test"]) == 10


def test_grayscale_files_become_rgb(manual_dir):
  gray = sorted((manual_dir / "001.ak47").glob("*_0000.jpg"))[0]
  import io
  with Image.open(io.BytesIO(caltech256._rgb_jpeg(gray))) as image:
    assert image.mode == "RGB"


def test_missing_manual_dir_is_explained(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError, match="no Caltech-256 class folders"):
    caltech256.class_folders(empty)
