"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes).

Pixel intensities 0..16 are rescaled to 0..255 and replicated to three
channels, so every dataset of jax_ssl is RGB. The train/test split is fixed:
a stratified 80/20 split with a fixed seed (1,437 train, 360 test images).
"""

from __future__ import annotations

import numpy as np

_SPLIT_SEED = 0
_TEST_FRACTION = 0.2


def generate(split: str) -> dict[str, np.ndarray]:
  """`image` (N, 8, 8, 3) uint8 and `label` int64 of the `train` or `test` split.

  Args:
    split: `train` (1,437 images) or `test` (360 images).

  Returns:
    A dict with `image`, uint8 `(N, 8, 8, 3)` in [0, 255], and `label`, int64 `(N,)` in 0..9.

  Raises:
    KeyError: if `split` is neither `train` nor `test`.
  """
  # Imported here, when the dataset is generated (once per data_dir): scikit-learn takes over a
  # second to import, which every run reading the prepared dataset would otherwise pay.
  from sklearn import datasets
  from sklearn import model_selection

  digits = datasets.load_digits()
  indices = np.arange(len(digits.target))
  train, test = model_selection.train_test_split(
      indices, test_size=_TEST_FRACTION, random_state=_SPLIT_SEED, stratify=digits.target)
  chosen = {"train": np.sort(train), "test": np.sort(test)}[split]
  gray = np.round(digits.images[chosen] * (255.0 / 16.0)).astype(np.uint8)
  return {"image": np.repeat(gray[..., None], 3, axis=-1), "label": digits.target[chosen].astype(np.int64)}
