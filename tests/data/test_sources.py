"""Opening datasets by name: schema, class subsets, and the errors a user sees."""

import io
import types
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jax_ssl.data import catalog
from jax_ssl.data import pipeline
from jax_ssl.data import sources


def test_load_numpy_schema(bundled_dir):
  data = sources.load_numpy("shapes", "test", bundled_dir)
  assert set(data) == {"image", "mask", "label", "label_coarse", "label_family"}
  assert data["image"].dtype == np.uint8 and data["label"].dtype == np.int32 and data["mask"].dtype == np.uint8
  assert not data["image"].flags.writeable


def test_source_records_match_load_numpy(bundled_dir):
  source = sources.open_source("digits", "test", bundled_dir)
  data = sources.load_numpy("digits", "test", bundled_dir)
  for index in (0, 17, len(source) - 1):
    np.testing.assert_array_equal(source[index]["image"], data["image"][index])
    assert source[index]["label"] == data["label"][index]
  np.testing.assert_array_equal(source.labels(), data["label"])


def test_class_subset_keeps_exactly_those_classes(bundled_dir):
  source = sources.open_source("shapes", "train", bundled_dir)
  first_half = source.with_classes(range(18))
  assert len(first_half) == 18 * 140
  np.testing.assert_array_equal(np.unique(first_half.labels()), np.arange(18))
  assert all(first_half[i]["label"] < 18 for i in range(0, len(first_half), 97))
  nested = first_half.with_classes([0, 5, 30])  # 30 is not in the subset: nothing added
  np.testing.assert_array_equal(np.unique(nested.labels()), [0, 5])
  with pytest.raises(ValueError, match="classes must be a non-empty subset of 0..35"):
    source.with_classes([36])


def test_unknown_names_are_listed():
  with pytest.raises(ValueError, match="unknown dataset 'cifar1000'; known datasets: .*cifar100"):
    sources.open_source("cifar1000", "train")
  with pytest.raises(ValueError, match="unknown split 'validation' of digits; splits: train, test"):
    sources.open_source("digits", "validation")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenette", "imagenet2012", "caltech256"])
def test_missing_dataset_names_it_the_directory_and_the_fix(name, tmp_path):
  with pytest.raises(sources.DatasetNotFoundError) as error:
    sources.open_source(name, "train", tmp_path)
  message = str(error.value)
  assert repr(name) in message and str(tmp_path) in message
  assert catalog.get_spec(name).prepare in message
  assert "tfds build" in message or "jax_ssl.data.prepare" in message


def test_tfrecord_preparation_is_refused_with_the_fix():
  spec = catalog.get_spec("cifar100")
  tfrecord_builder = types.SimpleNamespace(
      is_prepared=lambda: True, info=types.SimpleNamespace(file_format=tfds.core.FileFormat.TFRECORD))
  expected = "needs array_record. Rebuild it: .*--file_format=array_record"
  with pytest.raises(sources.DatasetNotFoundError, match=expected):
    sources.check_prepared(spec, tfrecord_builder, "/data", "train")


def test_resize_shorter_side_and_center_crop():
  rows = np.linspace(0, 255, 40).astype(np.uint8)
  image = np.repeat(np.repeat(rows[:, None, None], 30, axis=1), 3, axis=2)  # 40 x 30, vertical gradient
  out = sources.resize_shorter_side_and_center_crop(image, 15)
  assert out.shape == (15, 15, 3) and out.dtype == np.uint8
  # Shorter side 30 -> 15 halves the image (20 x 15); the crop keeps the central 15 rows.
  np.testing.assert_allclose(out[:, 0, 0].astype(float), rows[5:35:2].astype(float), atol=8)
  square = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
  np.testing.assert_array_equal(sources.decode_record(catalog.get_spec("shapes"), {
      "image": np.zeros((32, 32, 3), np.uint8), "mask": np.zeros((32, 32), np.uint8), "variant": 1, "shape": 0,
      "family": 0})["image"], 0)
  np.testing.assert_array_equal(sources.resize_shorter_side_and_center_crop(square, 16), square)


@pytest.fixture
def mocked_catalog():
  """tfds' mock data stands in for prepared files.

  The file check is bypassed (there are no files), and label scans decode
  images: the mock can only serve undecoded images by encoding random ones,
  which needs TensorFlow. (test_caltech256 covers the undecoded scan on real files.)
  """
  with tfds.testing.mock_data(num_examples=24, policy=tfds.testing.MockPolicy.USE_CODE), \
      mock.patch.object(sources, "check_prepared", lambda *args: None), \
      mock.patch.object(sources, "SKIP_IMAGE_DECODING", False):
    yield


@pytest.mark.parametrize("name,split", [("cifar10", "train"), ("cifar100", "test"), ("imagenette", "test"),
                                        ("imagenet2012", "train")])
def test_catalog_datasets_through_mock_data(name, split, mocked_catalog):
  spec = catalog.get_spec(name)
  source = sources.open_source(name, split, "/nonexistent")
  assert len(source) == 24
  example = source[3]
  assert example["image"].shape == (spec.image_size, spec.image_size, 3) and example["image"].dtype == np.uint8
  assert set(example) == {"image", *spec.label_levels}
  for key in spec.label_levels:
    labels = source.labels(key)
    assert labels.dtype == np.int32 and labels[3] == example[key]
    assert labels.min() >= 0 and labels.max() < spec.num_classes[key]
  batch = next(iter(pipeline.train_dataset(source, global_batch_size=8, seed=0, process_index=0,
                                           process_count=1)))
  assert batch["image"].shape == (8, spec.image_size, spec.image_size, 3)


def test_cifar100_exposes_its_coarse_labels(mocked_catalog):
  spec = catalog.get_spec("cifar100")
  assert spec.label_levels == ("label", "label_coarse") and spec.num_classes["label_coarse"] == 20
  data = sources.load_numpy("cifar100", "train", "/nonexistent-mock")
  assert set(data) == {"image", "label", "label_coarse"} and data["image"].shape == (24, 32, 32, 3)


def test_ade20k_serves_class_maps_cropped_like_its_images(mocked_catalog):
  spec = catalog.get_spec("ade20k")
  assert spec.label_levels == () and spec.num_classes == {"segmentation": 151}
  example = sources.open_source("ade20k", "test", "/nonexistent")[2]
  assert example["image"].shape == (256, 256, 3) and example["segmentation"].shape == (256, 256)
  assert example["segmentation"].dtype == np.uint8
  data = sources.load_numpy("ade20k", "train", "/nonexistent-mock")
  assert set(data) == {"image", "segmentation"} and data["segmentation"].shape == (24, 256, 256)


def test_decode_segmentation_keeps_classes_and_crops_as_the_image():
  from PIL import Image
  rows, columns = np.meshgrid(np.arange(300), np.arange(200), indexing="ij")
  classes = (rows // 30 + 10 * (columns // 50)).astype(np.uint8)  # 10 x 4 blocks of distinct classes
  annotation = np.stack([classes, np.zeros_like(classes), np.full_like(classes, 7)], axis=-1)
  encoded = io.BytesIO()
  Image.fromarray(annotation).save(encoded, format="PNG")
  decoded = sources.decode_segmentation(encoded.getvalue(), 100)
  np.testing.assert_array_equal(decoded, sources.decode_segmentation(annotation, 100))
  assert decoded.shape == (100, 100) and set(np.unique(decoded)) <= set(np.unique(classes))
  # Shorter side 200 -> 100 (scale 1/2), then the central 100 rows of 150: source rows 50..249.
  np.testing.assert_array_equal(decoded[:, 0], classes[50:250:2, 0])
