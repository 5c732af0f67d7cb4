"""The bundled datasets: deterministic, balanced, with consistent label hierarchies."""

import numpy as np
import pytest
from sklearn import datasets

from jax_ssl.data import catalog
from jax_ssl.data import sources
from jax_ssl.data.bundled import shapes


def test_shapes_generation_is_a_pure_function_of_the_seed():
  first, again, other = shapes.generate(2, seed=5), shapes.generate(2, seed=5), shapes.generate(2, seed=6)
  for key in first:
    np.testing.assert_array_equal(first[key], again[key])
  assert not np.array_equal(first["image"], other["image"])


def test_shapes_splits_are_balanced_and_large_enough(bundled_dir):
  for split, per_class, minimum in (("train", 140, 5000), ("test", 30, 1000)):
    data = sources.load_numpy("shapes", split, bundled_dir)
    assert data["image"].shape == (36 * per_class, 32, 32, 3) and data["image"].dtype == np.uint8
    assert len(data["label"]) >= minimum
    np.testing.assert_array_equal(np.bincount(data["label"], minlength=36), per_class)


def test_shapes_labels_form_a_hierarchy(bundled_dir):
  data = sources.load_numpy("shapes", "train", bundled_dir)
  spec = catalog.get_spec("shapes")
  for fine, coarse in (("label", "label_coarse"), ("label_coarse", "label_family")):
    parents = {}
    for child, parent in zip(data[fine], data[coarse]):
      assert parents.setdefault(child, parent) == parent, f"{fine} {child} has two parents in {coarse}"
    assert len(parents) == spec.num_classes[fine]
  np.testing.assert_array_equal(np.unique(data["label_coarse"]), np.arange(9))
  np.testing.assert_array_equal(np.unique(data["label_family"]), np.arange(3))
  # Each family has exactly 3 shapes and each shape 4 variants.
  for family in range(3):
    assert np.unique(data["label_coarse"][data["label_family"] == family]).size == 3
  for shape in range(9):
    assert np.unique(data["label"][data["label_coarse"] == shape]).size == 4


def test_shapes_train_and_test_images_differ(bundled_dir):
  train = sources.load_numpy("shapes", "train", bundled_dir)["image"].reshape(-1, 32 * 32 * 3)
  test = sources.load_numpy("shapes", "test", bundled_dir)["image"].reshape(-1, 32 * 32 * 3)
  assert not set(map(bytes, test)) & set(map(bytes, train))


def test_digits_is_a_fixed_stratified_split_of_sklearn_digits(bundled_dir):
  train = sources.load_numpy("digits", "train", bundled_dir)
  test = sources.load_numpy("digits", "test", bundled_dir)
  assert train["image"].shape == (1437, 8, 8, 3) and test["image"].shape == (360, 8, 8, 3)
  reference = datasets.load_digits()
  expected = np.round(reference.images * (255 / 16)).astype(np.uint8)
  # Together the splits are exactly sklearn's images, each once, with their labels; the channels are copies.
  ours = np.concatenate([train["image"], test["image"]])
  np.testing.assert_array_equal(ours[..., 0], ours[..., 2])
  key = lambda images, labels: sorted(zip(map(bytes, images), labels.tolist()))  # noqa: E731
  assert key(ours[..., 0], np.concatenate([train["label"], test["label"]])) == key(expected, reference.target)
  # Stratified: every class has (about) a fifth of its images in test.
  fractions = np.bincount(test["label"]) / np.bincount(reference.target)
  np.testing.assert_allclose(fractions, 0.2, atol=0.02)


@pytest.mark.parametrize("name", ["digits", "shapes"])
def test_catalog_statistics_match_the_train_split(name, bundled_dir):
  images = sources.load_numpy(name, "train", bundled_dir)["image"] / 255.0
  spec = catalog.get_spec(name)
  np.testing.assert_allclose(images.mean(axis=(0, 1, 2)), spec.mean, atol=1e-3)
  np.testing.assert_allclose(images.std(axis=(0, 1, 2)), spec.std, atol=1e-3)


def test_bundled_cache_follows_the_environment_variable(tmp_path, monkeypatch):
  monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
  source = sources.open_source("digits", "test")
  assert len(source) == 360
  assert (tmp_path / "jax_ssl_digits").is_dir()


def test_shapes_masks_cover_each_drawn_shape(bundled_dir):
  data = sources.load_numpy("shapes", "test", bundled_dir)
  masks, images = data["mask"], data["image"].astype(np.float64)
  assert masks.shape == (1080, 32, 32) and masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
  # Circumradius 7-12 px: every shape covers tens of pixels, and never the whole image.
  area = masks.reshape(len(masks), -1).sum(axis=1)
  assert area.min() >= 20 and area.max() < 32 * 32 / 2
  # The masked pixels are the shape's ink: far from the background's colour (the median of the border),
  # unlike the pixels outside the mask.
  border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
  background = np.median(border, axis=1)[:, None, None, :]
  distance = np.abs(images - background).sum(axis=-1)
  inside = (distance * masks).sum(axis=(1, 2)) / area
  outside = (distance * (1 - masks)).sum(axis=(1, 2)) / (32 * 32 - area)
  assert np.mean(inside > 2 * outside) > 0.95
  # Same images as the generator draws (and as version 1.0.0 of the dataset, which had no masks).
  generated = shapes.generate(30, seed=1)
  order = {bytes(image): index for index, image in enumerate(generated["image"])}
  rows = [order[bytes(image)] for image in data["image"]]
  np.testing.assert_array_equal(generated["mask"][rows], masks)


def test_shapes_ood_shifts_only_what_they_name(bundled_dir):
  data = sources.load_numpy("shapes_ood", "test", bundled_dir)
  assert data["image"].shape == (36 * 10 * 6 * 3, 32, 32, 3)
  for shift in range(len(shapes.SHIFTS)):
    for severity in shapes.SEVERITIES:
      chosen = (data["shift"] == shift) & (data["severity"] == severity)
      np.testing.assert_array_equal(np.bincount(data["label"][chosen], minlength=36), 10)
  np.testing.assert_array_equal(data["label_coarse"], data["label"] // 4)  # the hierarchy is shapes'
  # A shift redraws only its own parameters: the geometry (the masks) is what the same seed draws unshifted.
  labels = np.arange(36)
  plain_images, plain_masks = shapes._render(labels, np.random.default_rng(9))
  for shift in shapes.SHIFTS:
    images, masks = shapes._render(labels, np.random.default_rng(9), shift, 2)
    np.testing.assert_array_equal(masks, plain_masks, err_msg=shift)
    assert np.abs(images.astype(int) - plain_images).mean() > 1.0, f"{shift} changes the images"
  again = shapes.generate_ood(1, seed=3)
  np.testing.assert_array_equal(again["image"], shapes.generate_ood(1, seed=3)["image"])


def test_shapes_ood_is_a_test_set_only(bundled_dir):
  with pytest.raises(ValueError, match="unknown split 'train' of shapes_ood; splits: test"):
    sources.open_source("shapes_ood", "train", bundled_dir)
  assert catalog.get_spec("shapes_ood").fit_on == "shapes"


@pytest.mark.parametrize("name", ["dtd", "oxford_flowers102", "oxford_iiit_pet", "food101", "cars196", "caltech101"])
def test_the_transfer_sets_match_their_tfds_builders(name, tmp_path):
  import tensorflow_datasets as tfds
  spec = catalog.get_spec(name)
  features = tfds.builder(spec.tfds_name, data_dir=str(tmp_path)).info.features
  assert features["label"].num_classes == spec.num_classes["label"] and spec.variable_size
  with pytest.raises(sources.DatasetNotFoundError, match=f"dataset '{name}' .* is not prepared in {tmp_path}"):
    sources.open_source(name, "test", tmp_path)
