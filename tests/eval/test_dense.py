"""Dense probes: per-pixel labels, IoU against scikit-learn, a linear head that segments, PCA colours."""

import numpy as np
import pytest
from sklearn import metrics

from jax_ssl.eval import dense


def test_dense_labels_put_each_images_class_on_its_mask():
  masks = np.zeros((2, 4, 4), np.uint8)
  masks[0, :2] = 1
  masks[1, 1:3, 1:3] = 1
  labels = dense.dense_labels(masks, np.array([3, 0]))
  assert labels.dtype == np.int32
  np.testing.assert_array_equal(labels[0], np.where(masks[0] == 1, 4, 0))
  np.testing.assert_array_equal(labels[1], np.where(masks[1] == 1, 1, 0))
  with pytest.raises(ValueError, match="labels has 3 entries but masks has 2 rows"):
    dense.dense_labels(masks, np.array([1, 2, 3]))


def test_confusion_iou_matches_scikit_learn():
  rng = np.random.default_rng(0)
  targets = rng.integers(0, 5, (6, 8, 8))
  predictions = np.where(rng.random(targets.shape) < 0.6, targets, rng.integers(0, 5, targets.shape))
  predictions[predictions == 4] = 3  # class 4 is never predicted: IoU 0, still counted
  result = dense.confusion_iou(predictions, targets, num_classes=6)  # class 5 occurs nowhere: not counted
  expected = metrics.jaccard_score(targets.ravel(), predictions.ravel(), labels=list(range(5)), average=None)
  np.testing.assert_allclose(result["iou"][:5], expected, rtol=1e-12)
  assert np.isnan(result["iou"][5]) and result["miou"] == pytest.approx(expected.mean(), rel=1e-12)
  assert result["pixel_accuracy"] == pytest.approx(np.mean(predictions == targets), rel=1e-12)


def _blocks(num_images, seed, informative):
  """4 x 4 feature maps whose first channel is the class of each 2 x 2 pixel block (if informative)."""
  rng = np.random.default_rng(seed)
  classes = rng.integers(0, 3, (num_images, 4, 4))
  features = rng.standard_normal((num_images, 4, 4, 5)).astype(np.float32)
  if informative:
    features[..., :3] += 4.0 * np.eye(3, dtype=np.float32)[classes]
  targets = np.repeat(np.repeat(classes, 2, axis=1), 2, axis=2)  # the labels at twice the maps' resolution
  return features, targets


def test_a_linear_head_segments_what_the_features_encode_and_not_noise():
  train, test = _blocks(64, 0, True), _blocks(32, 1, True)
  result = dense.linear_segmentation(*train, *test, num_classes=3, epochs=40, batch_size=16, learning_rate=5e-2)
  # Upsampled bilinearly, the logits blur only the blocks' borders: most pixels are right.
  assert result["pixel_accuracy"] > 0.8 and result["miou"] > 0.65
  noise = dense.linear_segmentation(*_blocks(64, 0, False), *_blocks(32, 1, False), num_classes=3, epochs=40,
                                    batch_size=16, learning_rate=5e-2)
  assert noise["miou"] < 0.4


def test_linear_segmentation_refuses_mismatched_inputs():
  maps, targets = _blocks(4, 0, True)
  with pytest.raises(ValueError, match="differ in grid or width"):
    dense.linear_segmentation(maps, targets, maps[..., :4], targets, num_classes=3)
  with pytest.raises(ValueError, match="test_targets must be"):
    dense.linear_segmentation(maps, targets, maps, targets[:2], num_classes=3)
  with pytest.raises(ValueError, match="NaN or inf"):
    dense.linear_segmentation(np.full_like(maps, np.nan), targets, maps, targets, num_classes=3)


def test_pca_rgb_colours_positions_by_their_principal_components():
  rng = np.random.default_rng(0)
  directions = np.linalg.qr(rng.standard_normal((8, 3)))[0].T  # three orthonormal directions in 8-D
  scores = rng.standard_normal((2, 6, 6, 3)) * np.array([10.0, 5.0, 2.0])
  maps = scores @ directions + 0.01 * rng.standard_normal((2, 6, 6, 8))
  rgb = dense.pca_rgb(maps)
  assert rgb.shape == (2, 6, 6, 3) and rgb.min() >= 0.0 and rgb.max() <= 1.0
  # Each colour channel follows one of the three components, in order of variance (up to sign).
  for channel in range(3):
    correlation = np.corrcoef(rgb[..., channel].ravel(), scores[..., channel].ravel())[0, 1]
    assert abs(correlation) > 0.95


def test_ignored_pixels_are_neither_scored_nor_trained_on():
  rng = np.random.default_rng(1)
  targets = rng.integers(0, 4, (5, 6, 6))
  predictions = rng.integers(1, 4, targets.shape)
  result = dense.confusion_iou(predictions, targets, num_classes=4, ignore_label=0)
  scored = targets != 0
  expected = metrics.jaccard_score(targets[scored], predictions[scored], labels=[1, 2, 3], average=None)
  np.testing.assert_allclose(result["iou"][1:], expected, rtol=1e-12)
  assert np.isnan(result["iou"][0]) and result["pixel_accuracy"] == pytest.approx(
      np.mean(predictions[scored] == targets[scored]))
  # A head trained where half the labels are hidden behind the ignored class scores as one trained on all.
  train, test = _blocks(64, 0, True), _blocks(32, 1, True)
  hidden = train[1] + 1  # classes 1..3, class 0 "unlabelled"
  hidden[:, :4] = 0
  result = dense.linear_segmentation(train[0], hidden, test[0], test[1] + 1, num_classes=4, ignore_label=0,
                                     epochs=40, batch_size=16, learning_rate=5e-2)
  assert result["miou"] > 0.65 and np.isnan(result["iou"][0])
