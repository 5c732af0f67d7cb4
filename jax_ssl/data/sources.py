"""Random-access sources: open a split of a named dataset, preparing bundled ones on first use.

Sources are tfds `ArrayRecordDataSource`s (`len` and `__getitem__` on records),
wrapped so that every record comes out in one schema whatever the dataset:
`image` uint8 (S, S, 3) at the dataset's `image_size`, and int32 labels under
the dataset's label keys (`label`, `label_coarse`, ...).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from jax_ssl.data import catalog

# Where bundled datasets are prepared unless a data_dir is given.
DATA_DIR_ENV = "JAX_SSL_DATA_DIR"
_DEFAULT_BUNDLED_DIR = pathlib.Path("~/.cache/jax_ssl/datasets")


class DatasetNotFoundError(FileNotFoundError):
  """A dataset that must be prepared beforehand is missing from its data_dir."""


def data_dir_for(spec: catalog.DatasetSpec, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The directory searched for `spec`.

  Bundled datasets: `data_dir`, else $JAX_SSL_DATA_DIR, else ~/.cache/jax_ssl/datasets.
  Others: `data_dir`, else $TFDS_DATA_DIR, else ~/tensorflow_datasets (tfds' default).

  Args:
    spec: the dataset.
    data_dir: an explicit directory, which takes precedence; `~` is expanded.

  Returns:
    The directory, with `~` expanded.
  """
  if data_dir is not None:
    return pathlib.Path(data_dir).expanduser()
  if spec.bundled:
    return pathlib.Path(os.environ.get(DATA_DIR_ENV, _DEFAULT_BUNDLED_DIR)).expanduser()
  return pathlib.Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def _builder_class(spec: catalog.DatasetSpec):
  # Imported lazily: builder modules register with tfds on import, and tfds is slow to import.
  if spec.name == "digits":
    from jax_ssl.data.bundled.builders import JaxSslDigits
    return JaxSslDigits
  if spec.name == "shapes":
    from jax_ssl.data.bundled.builders import JaxSslShapes
    return JaxSslShapes
  if spec.name == "shapes_ood":
    from jax_ssl.data.bundled.builders import JaxSslShapesOOD
    return JaxSslShapesOOD
  if spec.name == "caltech256":
    from jax_ssl.data.caltech256 import JaxSslCaltech256
    return JaxSslCaltech256
  return None


def prepared_by_jax_ssl(spec: catalog.DatasetSpec) -> bool:
  """Whether jax_ssl has its own builder for `spec` (bundled datasets, caltech256).

  Args:
    spec: the dataset.

  Returns:
    True for the datasets jax_ssl builds itself, False for those tfds builds.
  """
  return _builder_class(spec) is not None


def builder(spec: catalog.DatasetSpec, data_dir: str | os.PathLike | None = None):
  """The tfds builder of `spec` under its data_dir.

  Args:
    spec: the dataset.
    data_dir: where the dataset lives (default: see `data_dir_for`).

  Returns:
    A tfds dataset builder: jax_ssl's own (writing array_record files) for the datasets it builds,
    else `tfds.builder(spec.tfds_name)`. Nothing is prepared.
  """
  import tensorflow_datasets as tfds
  directory = data_dir_for(spec, data_dir)
  cls = _builder_class(spec)
  if cls is not None:
    return cls(data_dir=str(directory), file_format="array_record")
  return tfds.builder(spec.tfds_name, data_dir=str(directory))


@contextlib.contextmanager
def _exclusive(directory: pathlib.Path, name: str):
  """Hold a file lock, so that concurrent processes prepare a bundled dataset once."""
  directory.mkdir(parents=True, exist_ok=True)
  with open(directory / f".{name}.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(lock, fcntl.LOCK_UN)


def prepare(name: str, data_dir: str | os.PathLike | None = None, manual_dir: str | os.PathLike | None = None):
  """Prepare a bundled dataset (or caltech256 from `manual_dir`) if it is not prepared yet.

  A file lock in the data_dir makes concurrent processes prepare it once.

  Args:
    name: a dataset that jax_ssl builds itself (`digits`, `shapes`, `caltech256`).
    data_dir: where to write it (default: see `data_dir_for`).
    manual_dir: the downloaded files, for a dataset that needs them (caltech256).

  Returns:
    The dataset's tfds builder, prepared.

  Raises:
    ValueError: if `name` is unknown or is a dataset tfds itself prepares.
    FileNotFoundError: if the dataset needs downloaded files and `manual_dir` is missing or empty.
  """
  import tensorflow_datasets as tfds
  spec = catalog.get_spec(name)
  if not prepared_by_jax_ssl(spec):
    raise ValueError(f"{name} is prepared with tfds itself: {spec.prepare}")
  dataset_builder = builder(spec, data_dir)
  if dataset_builder.is_prepared():
    return dataset_builder
  instructions = getattr(dataset_builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None)
  if instructions and (manual_dir is None or not any(pathlib.Path(manual_dir).expanduser().glob("*"))):
    raise FileNotFoundError(f"{name} needs its downloaded files in a manual_dir, and {manual_dir} is missing "
                            f"or empty. {instructions}")
  directory = data_dir_for(spec, data_dir)
  with _exclusive(directory, spec.tfds_name):
    dataset_builder = builder(spec, data_dir)  # another process may have finished meanwhile
    if not dataset_builder.is_prepared():
      config = tfds.download.DownloadConfig(manual_dir=None if manual_dir is None else str(manual_dir))
      tfds.disable_progress_bar()
      dataset_builder.download_and_prepare(download_config=config)
  return dataset_builder


class Source:
  """Random access to the records of one split, in jax_ssl's schema.

  `source[i]` -> dict: `image` uint8 (S, S, 3), int32 labels (finest first).
  Picklable (grain may copy it into worker processes).
  """

  def __init__(self, spec: catalog.DatasetSpec, split: str, dataset_builder, indices: np.ndarray | None = None,
               split_labels: dict[str, np.ndarray] | None = None, image_size: int | None = None):
    self.spec = spec
    self.split = split
    self.image_size = image_size or spec.image_size
    self._builder = dataset_builder
    # Encoded images (JPEG, PNG) come as bytes and are decoded here, straight at the size needed.
    decoders = None
    if _encoded_images(dataset_builder):
      decoders = {key: _skip_decoding() for key in ("image", spec.segmentation_key) if key}
    self._records = dataset_builder.as_data_source(split=spec.splits[split], decoders=decoders)
    self._indices = indices
    self._split_labels = {} if split_labels is None else split_labels  # label key -> labels of the whole split

  def __len__(self) -> int:
    return len(self._records) if self._indices is None else len(self._indices)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record_index = int(index) if self._indices is None else int(self._indices[index])
    return decode_record(self.spec, self._records[record_index], self.image_size)

  def __repr__(self) -> str:
    subset = "" if self._indices is None else f", {len(self._indices)} records kept"
    return f"Source({self.spec.name}:{self.split}{subset})"

  def labels(self, key: str = "label") -> np.ndarray:
    """All labels of `key` (int32) in this source's order, read without decoding images.

    The whole split's labels are read once and cached.

    Args:
      key: an output label key of the dataset (`label`, `label_coarse`, ...).

    Returns:
      int32 `(len(self),)` labels.

    Raises:
      KeyError: if the dataset has no label `key`.
    """
    if key not in self._split_labels:
      self._split_labels[key] = _scan_labels(self._builder, self.spec.splits[self.split], self.spec.label_keys[key])
    labels = self._split_labels[key]
    return labels if self._indices is None else labels[self._indices]

  def with_classes(self, classes: Sequence[int]) -> Source:
    """The records whose fine `label` is in `classes` (e.g. the first half of CIFAR-100).

    Args:
      classes: fine class indices to keep; order and repeats do not matter.

    Returns:
      A new `Source` over the kept records, in this source's order.

    Raises:
      ValueError: if `classes` is empty or holds an index outside 0..num_classes - 1.
    """
    classes = np.unique(np.asarray(list(classes), np.int64))
    num_classes = self.spec.num_classes["label"]
    if classes.size == 0 or classes[0] < 0 or classes[-1] >= num_classes:
      raise ValueError(f"classes must be a non-empty subset of 0..{num_classes - 1} for {self.spec.name}, "
                       f"got {classes.tolist()[:10]}{' ...' if classes.size > 10 else ''}.")
    kept = np.flatnonzero(np.isin(self.labels(), classes))
    current = np.arange(len(self)) if self._indices is None else self._indices
    return Source(self.spec, self.split, self._builder, current[kept], self._split_labels, self.image_size)


# Encoded images are read as bytes: label scans skip them, and `Source` decodes
# them itself (`decode_image_bytes`). (tfds' mock data can only serve undecoded
# images by encoding random ones, which needs TensorFlow; tests under the mock
# turn this off, and tfds decodes.)
SKIP_IMAGE_DECODING = True


def _encoded_images(dataset_builder) -> bool:
  import tensorflow_datasets as tfds
  return SKIP_IMAGE_DECODING and isinstance(dataset_builder.info.features["image"], tfds.features.Image)


def _skip_decoding():
  import tensorflow_datasets as tfds
  return tfds.decode.SkipDecoding()


def _scan_labels(dataset_builder, tfds_split: str, feature: str) -> np.ndarray:
  decoders = {"image": _skip_decoding()} if _encoded_images(dataset_builder) else None  # labels only
  records = dataset_builder.as_data_source(split=tfds_split, decoders=decoders)
  return np.asarray([records[i][feature] for i in range(len(records))], np.int32)


def open_source(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                image_size: int | None = None) -> Source:
  """Open `split` ('train' or 'test') of dataset `name` for random access.

  Bundled datasets are prepared on first use; others must already be prepared
  in their data_dir (`DatasetNotFoundError` says where it looked and how to
  prepare them). `image_size` sets the side variable-size images are decoded
  to (default: the dataset's `image_size`); the trainer passes its largest
  view, so the host does one resize and the device the rest.

  Args:
    name: dataset name in the catalog.
    split: 'train' or 'test'.
    data_dir: where the dataset is prepared (default: see `data_dir_for`).
    image_size: side of the decoded images, for datasets of variable-size images only.

  Returns:
    A `Source` over the split's records.

  Raises:
    ValueError: for an unknown dataset or split, or an `image_size` other than the dataset's for a
      dataset of fixed-size images.
    DatasetNotFoundError: if the dataset is not prepared in array_record format.
  """
  spec = catalog.get_spec(name)
  if split not in spec.splits:
    raise ValueError(f"unknown split {split!r} of {name}; splits: {', '.join(spec.splits)}.")
  dataset_builder = prepare(name, data_dir) if spec.bundled else builder(spec, data_dir)
  check_prepared(spec, dataset_builder, data_dir_for(spec, data_dir), split)
  if image_size is not None and not spec.variable_size and image_size != spec.image_size:
    raise ValueError(f"{name} has fixed {spec.image_size} px images; image_size={image_size} applies to "
                     "datasets of variable-size images only.")
  return Source(spec, split, dataset_builder, image_size=image_size)


def check_prepared(spec: catalog.DatasetSpec, dataset_builder, directory: pathlib.Path, split: str) -> None:
  """DatasetNotFoundError unless `dataset_builder` holds array_record files (what random access reads).

  Args:
    spec: the dataset, named in the error.
    dataset_builder: its tfds builder.
    directory: the data_dir searched, named in the error.
    split: the split asked for, named in the error.

  Raises:
    DatasetNotFoundError: if the dataset is not prepared, or was prepared in another file format.
  """
  if not dataset_builder.is_prepared():
    raise DatasetNotFoundError(
        f"dataset {spec.name!r} (tfds {spec.tfds_name!r}, split {split!r}) is not prepared in {directory}. "
        f"To prepare it: {spec.prepare}.")
  file_format = str(dataset_builder.info.file_format).lower()
  if "array_record" not in file_format:
    raise DatasetNotFoundError(
        f"dataset {spec.name!r} in {directory} was prepared as {file_format}; random access needs "
        f"array_record. Rebuild it: {spec.prepare}.")


def decode_record(spec: catalog.DatasetSpec, record: dict, image_size: int | None = None) -> dict[str, np.ndarray]:
  """A tfds record in jax_ssl's schema: square uint8 RGB image (`image_size`, default the dataset's) and int32 labels.

  The image may be decoded already (an array) or encoded (bytes, decoded here by `decode_image_bytes`).
  Grayscale images are repeated to three channels; images of another size are resized (shorter side)
  and centre-cropped.

  Args:
    spec: the dataset, which gives the label features and the default size.
    record: a tfds record: `image` and the features named in `spec.label_keys`.
    image_size: side of the output image (default: `spec.image_size`).

  Returns:
    A dict with `image`, uint8 `(image_size, image_size, 3)`, `mask`, uint8 `(image_size, image_size)`
    when the dataset has masks (`spec.mask_key`), `segmentation`, uint8 `(image_size, image_size)`
    classes when it has class maps (`spec.segmentation_key`), and one int32 scalar per key of
    `spec.label_keys` and of `spec.group_keys`.
  """
  image_size = image_size or spec.image_size
  image = record["image"]
  if isinstance(image, bytes):
    image = decode_image_bytes(image, image_size)
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.shape[-1] == 1:
    image = np.repeat(image, 3, axis=-1)
  if image.shape[:2] != (image_size, image_size):
    image = resize_shorter_side_and_center_crop(image, image_size)
  example = {"image": image.astype(np.uint8)}
  if spec.mask_key:  # fixed-size datasets only: a mask is never resized
    example["mask"] = np.asarray(record[spec.mask_key], np.uint8)
  if spec.segmentation_key:
    example["segmentation"] = decode_segmentation(record[spec.segmentation_key], image_size)
  for key, feature in {**spec.label_keys, **spec.group_keys}.items():
    example[key] = np.asarray(record[feature], np.int32)
  return example


def decode_segmentation(annotation, size: int) -> np.ndarray:
  """A per-pixel class map (PNG bytes or an array; the class in the first channel), as the image is cropped.

  Resized with nearest neighbours (classes are not averaged) so that its shorter side is `size`, then
  centre-cropped: the same pixels as `resize_shorter_side_and_center_crop` keeps of the image.

  Args:
    annotation: encoded PNG bytes, or a uint8 (H, W) or (H, W, C) array whose first channel holds the class.
    size: side of the output.

  Returns:
    uint8 `(size, size)` classes.
  """
  if isinstance(annotation, bytes):
    from PIL import Image
    with Image.open(io.BytesIO(annotation)) as image:
      annotation = np.asarray(image)
  classes = np.asarray(annotation)
  if classes.ndim == 3:
    classes = classes[..., 0]
  classes = classes.astype(np.uint8)
  if classes.shape != (size, size):
    classes = resize_shorter_side_and_center_crop(classes, size, nearest=True)
  return classes


def decode_image_bytes(encoded: bytes, size: int) -> np.ndarray:
  """An encoded image (JPEG, PNG, ...) as uint8 RGB, its shorter side `size`, centre-cropped square.

  JPEGs are decoded by libjpeg-turbo (Pillow) in draft mode: the decoder
  scales by 1/2, 1/4 or 1/8 in the DCT domain, to the smallest size whose
  sides are still at least `size`, so a 500 px photo for a 128 px view costs
  a fraction of a full decode. One bicubic resize does the rest.

  Args:
    encoded: the encoded file's bytes.
    size: side of the output.

  Returns:
    uint8 `(size, size, 3)` RGB image.
  """
  from PIL import Image
  with Image.open(io.BytesIO(encoded)) as image:
    image.draft("RGB", (size, size))
    rgb = np.asarray(image.convert("RGB"))
  return resize_shorter_side_and_center_crop(rgb, size)


def resize_shorter_side_and_center_crop(image: np.ndarray, size: int, *, nearest: bool = False) -> np.ndarray:
  """Resize so the shorter side is `size` (bicubic, PIL), then crop the central size x size square.

  Args:
    image: uint8 `(H, W, 3)` image (or `(H, W)`), of any size.
    size: side of the output.
    nearest: resize with nearest neighbours instead (class maps).

  Returns:
    uint8 `(size, size, 3)` image (`(size, size)` for a 2-D input).
  """
  from PIL import Image
  height, width = image.shape[:2]
  scale = size / min(height, width)
  new_height, new_width = max(size, round(height * scale)), max(size, round(width * scale))
  resample = Image.NEAREST if nearest else Image.BICUBIC
  resized = np.asarray(Image.fromarray(image).resize((new_width, new_height), resample))
  top, left = (new_height - size) // 2, (new_width - size) // 2
  return resized[top:top + size, left:left + size]


@functools.lru_cache(maxsize=8)
def _load_numpy_cached(name: str, split: str, data_dir: str | None) -> dict[str, np.ndarray]:
  source = open_source(name, split, data_dir)
  examples = [source[i] for i in range(len(source))]
  arrays = {key: np.stack([example[key] for example in examples]) for key in examples[0]}
  for array in arrays.values():
    array.setflags(write=False)
  return arrays


def load_numpy(name: str, split: str, data_dir: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
  """A whole split as numpy arrays: `image` uint8 (N, S, S, 3), `label` int32 and coarser labels.

  Variable-size datasets are resized (shorter side) and centre-cropped to the
  dataset's `image_size`. Arrays are read-only and cached per process.

  Args:
    name: dataset name in the catalog.
    split: 'train' or 'test'.
    data_dir: where the dataset is prepared (default: see `data_dir_for`).

  Returns:
    A dict with `image`, uint8 `(N, S, S, 3)`, `mask` or `segmentation`, uint8 `(N, S, S)`, for a
    dataset with masks or class maps, and one int32 `(N,)` array per label key.

  Raises:
    ValueError: for an unknown dataset or split.
    DatasetNotFoundError: if the dataset is not prepared in array_record format.
  """
  return _load_numpy_cached(name, split, None if data_dir is None else str(data_dir))
