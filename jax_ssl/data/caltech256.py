"""tfds builder for Caltech-256 (Griffin, Holub, Perona 2007) from a manually downloaded folder.

tfds has no Caltech-256 builder. This one reads the extracted
`256_ObjectCategories` directory (folders `001.ak47` ... `257.clutter`), keeps
the 256 object classes (the clutter class is left out; labels 0..255 follow
the folder numbers) and splits each class deterministically: 80% of its
images (after a seeded shuffle of the sorted file names) for `train`, the rest
for `test`. JPEG bytes are stored as they are; the few non-RGB files
(grayscale, CMYK) are converted to RGB with PIL. No TensorFlow is needed.

  python -m jax_ssl.data.prepare caltech256 --manual_dir=PATH/256_ObjectCategories --data_dir=DATA_DIR
"""

from __future__ import annotations

import io
import pathlib

import numpy as np
import tensorflow_datasets as tfds

NUM_CLASSES = 256
TRAIN_FRACTION = 0.8
_SPLIT_SEED = 0
_CLUTTER = "257.clutter"
_EXTENSIONS = (".jpg", ".jpeg")


def class_folders(root: pathlib.Path) -> list[pathlib.Path]:
  """The object-class folders under `root`, in label order.

  Args:
    root: the extracted `256_ObjectCategories` directory.

  Returns:
    The sorted folders whose names start with three digits, the clutter class left out; the
    folder at index i holds label i.

  Raises:
    FileNotFoundError: if `root` holds no such folder.
  """
  folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name != _CLUTTER and p.name[:3].isdigit())
  if not folders:
    raise FileNotFoundError(
        f"no Caltech-256 class folders (like 001.ak47) in {root}: pass the extracted 256_ObjectCategories "
        "directory as --manual_dir.")
  return folders


def split_files(folder: pathlib.Path) -> dict[str, list[pathlib.Path]]:
  """This class's images, split 80/20 after a seeded shuffle of the sorted names.

  Args:
    folder: one class folder, whose name starts with its three-digit class number (which seeds the shuffle).

  Returns:
    `{"train": paths, "test": paths}`: the folder's `.jpg`/`.jpeg` files, `round(0.8 * n)` of them for
    train and the rest for test.
  """
  files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _EXTENSIONS)
  order = np.random.default_rng([_SPLIT_SEED, int(folder.name[:3])]).permutation(len(files))
  num_train = int(round(TRAIN_FRACTION * len(files)))
  shuffled = [files[i] for i in order]
  return {"train": shuffled[:num_train], "test": shuffled[num_train:]}


def _rgb_jpeg(path: pathlib.Path) -> bytes:
  from PIL import Image
  data = path.read_bytes()
  with Image.open(io.BytesIO(data)) as image:
    if image.mode == "RGB":
      return data
    converted = io.BytesIO()
    image.convert("RGB").save(converted, format="JPEG", quality=95)
    return converted.getvalue()


class JaxSslCaltech256(tfds.core.GeneratorBasedBuilder):
  """Caltech-256 object classes, 80/20 per-class split."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "256 classes (clutter excluded), per-class 80/20 split with seed 0."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Download 256_ObjectCategories.tar from https://data.caltech.edu/records/nyy15-4j048, extract it, and "
      "pass the extracted 256_ObjectCategories directory as the manual_dir.")

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
            "label": tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    root = pathlib.Path(dl_manager.manual_dir)
    folders = class_folders(root)
    return {split: self._generate_examples(folders, split) for split in ("train", "test")}

  def _generate_examples(self, folders, split):
    for label, folder in enumerate(folders):
      for path in split_files(folder)[split]:
        yield f"{folder.name}/{path.name}", {"image": _rgb_jpeg(path), "label": label}
