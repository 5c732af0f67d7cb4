"""tfds builders of the bundled datasets: array_record files, uint8 `Tensor` features.

`Tensor` features (rather than `Image`) store raw pixels, so preparing and
reading these datasets needs neither TensorFlow nor the network.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from jax_ssl.data.bundled import digits
from jax_ssl.data.bundled import shapes

_LABEL = tfds.features.Tensor(shape=(), dtype=np.int64)


class JaxSslDigits(tfds.core.GeneratorBasedBuilder):
  """scikit-learn's 8x8 digits as RGB uint8 images."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Stratified 80/20 split of sklearn.datasets.load_digits, seed 0."}

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 3), dtype=np.uint8),
            "label": _LABEL,
        }),
        supervised_keys=("image", "label"),
        description=digits.__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _generate_examples(self, split):
    data = digits.generate(split)
    for index in range(len(data["label"])):
      yield index, {"image": data["image"][index], "label": data["label"][index]}


def _shapes_features(*group_keys: str) -> tfds.features.FeaturesDict:
  """`shapes`' features (image, mask, the three label levels), plus integer `group_keys` (`shapes_ood`)."""
  return tfds.features.FeaturesDict({
      "image": tfds.features.Tensor(shape=(32, 32, 3), dtype=np.uint8),
      "mask": tfds.features.Tensor(shape=(32, 32), dtype=np.uint8),
      **{key: _LABEL for key in ("variant", "shape", "family", *group_keys)},
  })


class JaxSslShapes(tfds.core.GeneratorBasedBuilder):
  """Procedural 32x32 shapes with a family -> shape -> variant hierarchy."""

  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {"1.0.0": "140 train and 30 test images per variant, seeds 0 (train) and 1 (test).",
                   "1.1.0": "Each image's shape mask (the same images)."}
  SPLITS = {"train": (140, 0), "test": (30, 1)}  # images per variant, seed

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=_shapes_features(),
        supervised_keys=("image", "variant"),
        description=shapes.__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in self.SPLITS}

  def _generate_examples(self, split):
    per_class, seed = self.SPLITS[split]
    data = shapes.generate(per_class, seed)
    for index in range(len(data["variant"])):
      yield index, {key: value[index] for key, value in data.items()}


class JaxSslShapesOOD(tfds.core.GeneratorBasedBuilder):
  """`shapes`' classes under six shifts at three severities: an out-of-distribution test set."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "10 test images per variant, shift and severity (6480), seed 2."}
  PER_CLASS, SEED = 10, 2

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=_shapes_features("shift", "severity"),
        supervised_keys=("image", "variant"),
        description=shapes.__doc__,
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"test": self._generate_examples()}

  def _generate_examples(self):
    data = shapes.generate_ood(self.PER_CLASS, self.SEED)
    for index in range(len(data["variant"])):
      yield index, {key: value[index] for key, value in data.items()}
