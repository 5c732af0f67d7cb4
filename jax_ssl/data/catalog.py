"""The datasets jax_ssl knows by name, and what each one provides.

Three are bundled and need no network (`digits`, `shapes`, and `shapes_ood`,
shapes' classes under shifts for out-of-distribution probes: prepared on first
use into a cache directory). The others are read from a tfds `data_dir` that
the user prepared once, on a machine with network (and TensorFlow, which tfds
needs to *write* image datasets, though not to read them): the training sets,
and the transfer sets of the papers' linear-probe tables that tfds has (dtd,
oxford_flowers102, oxford_iiit_pet, food101, cars196, caltech101).
"""

from __future__ import annotations

import dataclasses

from jax_ssl.data import captions as captions_lib
from jax_ssl.data.bundled import shapes

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """How to read one dataset and what it contains.

  Attributes:
    name: the name users type (`--config.data.name=cifar100`).
    tfds_name: the tfds builder name (with config/version where it matters).
    splits: our split names (`train`, `test`) -> tfds split names.
    label_keys: output label key -> tfds feature, finest level first
      (`label`, then `label_coarse`, ...).
    num_classes: classes per output label key.
    image_size: side of the square uint8 images the pipeline yields; records
      of another size are resized (shorter side) and centre-cropped on the host.
    mean, std: per-channel statistics of the train split, in [0, 1] units.
    variable_size: records come in assorted sizes (resized on the host).
    bundled: prepared by jax_ssl itself on first use (no network).
    prepare: how to prepare it when it is missing (shown in the error).
    class_names: the fine classes' names, in label order, where jax_ssl knows them (figures); else empty.
    mask_key: the tfds feature holding each image's (S, S) foreground mask (1 on the labelled object,
      0 on the background), for dense probes; empty when the dataset has none.
    segmentation_key: the tfds feature holding a per-pixel class map (an image whose first channel is
      the class, 0 unlabelled), for dense probes; its classes are `num_classes["segmentation"]`.
    captions: the fine classes' captions (`data.captions.Captions`) for image-text training (CLIP), or
      None for a dataset without them.
    fit_on: for an out-of-distribution test set, the dataset whose train split the probes fit on (its
      classes are this one's); empty otherwise.
    group_keys: output key -> tfds feature of per-record groups that results are broken down by (the
      shift and severity of `shapes_ood`), which are not label levels.
    train_examples: the published size of the train split, which a dry run plans with before the data is
      prepared; None where only the prepared split says.
    group_names: group key -> the names of its values, in index order, where they have names (else the
      values are shown as numbers).
  """

  name: str
  tfds_name: str
  splits: dict[str, str]
  label_keys: dict[str, str]
  num_classes: dict[str, int]
  image_size: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  variable_size: bool = False
  bundled: bool = False
  prepare: str = ""
  class_names: tuple[str, ...] = ()
  mask_key: str = ""
  segmentation_key: str = ""
  captions: captions_lib.Captions | None = None
  fit_on: str = ""
  group_keys: dict[str, str] = dataclasses.field(default_factory=dict)
  group_names: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
  train_examples: int | None = None

  @property
  def label_levels(self) -> tuple[str, ...]:
    """Output label keys from the finest level to the coarsest."""
    return tuple(self.label_keys)


_TFDS_BUILD = ("pip install tensorflow && tfds build {tfds} --data_dir=DATA_DIR --file_format=array_record"
               "{manual}; then pass that DATA_DIR as data_dir (config: data.data_dir)")


def _catalog_prepare(tfds_name: str, manual: str = "") -> str:
  return _TFDS_BUILD.format(tfds=tfds_name, manual=manual)


# The transfer sets of the papers' linear-probe tables that tfds builds: (name, its test split, classes).
TRANSFER_SETS = (("dtd", "test", 47), ("oxford_flowers102", "test", 102), ("oxford_iiit_pet", "test", 37),
                 ("food101", "validation", 101), ("cars196", "test", 196), ("caltech101", "test", 102))


def _transfer_set(name: str, test_split: str, num_classes: int) -> DatasetSpec:
  """A tfds image-classification set of assorted image sizes, read for the transfer probes only."""
  return DatasetSpec(name=name, tfds_name=name, splits={"train": "train", "test": test_split},
                     label_keys={"label": "label"}, num_classes={"label": num_classes}, image_size=224,
                     variable_size=True, mean=IMAGENET_MEAN, std=IMAGENET_STD, prepare=_catalog_prepare(name))


CATALOG: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            # Scene parsing only (no image labels): the dense probe's real benchmark, not a training set.
            # tfds' "test" split holds ADE20K's 2,000 validation images; class 0 is "unlabelled".
            name="ade20k",
            tfds_name="scene_parse150",
            splits={"train": "train", "test": "test"},
            label_keys={},
            num_classes={"segmentation": 151},
            image_size=256,
            variable_size=True,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            prepare=_catalog_prepare("scene_parse150"),
            segmentation_key="annotation",
        ),
        DatasetSpec(
            name="digits",
            tfds_name="jax_ssl_digits",
            splits={"train": "train", "test": "test"},
            label_keys={"label": "label"},
            num_classes={"label": 10},
            image_size=8,
            mean=(0.3054, 0.3054, 0.3054),
            std=(0.3760, 0.3760, 0.3760),
            bundled=True,
            prepare="prepared automatically from scikit-learn's bundled copy",
            class_names=tuple(str(digit) for digit in range(10)),
        ),
        DatasetSpec(
            name="shapes",
            tfds_name="jax_ssl_shapes",
            splits={"train": "train", "test": "test"},
            label_keys={"label": "variant", "label_coarse": "shape", "label_family": "family"},
            num_classes={"label": 36, "label_coarse": 9, "label_family": 3},
            image_size=32,
            mean=(0.4828, 0.4753, 0.4821),
            std=(0.1909, 0.1735, 0.1883),
            bundled=True,
            prepare="generated automatically",
            class_names=tuple(f"{shape} {variant}" for shape in shapes.SHAPES for variant in shapes.VARIANTS),
            mask_key="mask",
            captions=captions_lib.shapes_captions(),
        ),
        DatasetSpec(
            # Only a test split: probes fit on `shapes`' train split and are scored here, per shift.
            name="shapes_ood",
            tfds_name="jax_ssl_shapes_ood",
            splits={"test": "test"},
            label_keys={"label": "variant", "label_coarse": "shape", "label_family": "family"},
            num_classes={"label": 36, "label_coarse": 9, "label_family": 3},
            image_size=32,
            mean=(0.4828, 0.4753, 0.4821),  # shapes' own: the shifted images are normalised as the clean ones
            std=(0.1909, 0.1735, 0.1883),
            bundled=True,
            prepare="generated automatically",
            class_names=tuple(f"{shape} {variant}" for shape in shapes.SHAPES for variant in shapes.VARIANTS),
            mask_key="mask",
            fit_on="shapes",
            group_keys={"shift": "shift", "severity": "severity"},
            group_names={"shift": shapes.SHIFTS},
        ),
        DatasetSpec(
            name="cifar10",
            train_examples=50_000,
            tfds_name="cifar10",
            splits={"train": "train", "test": "test"},
            label_keys={"label": "label"},
            num_classes={"label": 10},
            image_size=32,
            mean=(0.4914, 0.4822, 0.4465),
            std=(0.2470, 0.2435, 0.2616),
            prepare=_catalog_prepare("cifar10"),
        ),
        DatasetSpec(
            name="cifar100",
            train_examples=50_000,
            tfds_name="cifar100",
            splits={"train": "train", "test": "test"},
            label_keys={"label": "label", "label_coarse": "coarse_label"},
            num_classes={"label": 100, "label_coarse": 20},
            image_size=32,
            mean=(0.5071, 0.4865, 0.4409),
            std=(0.2673, 0.2564, 0.2762),
            prepare=_catalog_prepare("cifar100"),
        ),
        DatasetSpec(
            name="imagenette",
            train_examples=9_469,
            tfds_name="imagenette/160px-v2",
            splits={"train": "train", "test": "validation"},
            label_keys={"label": "label"},
            num_classes={"label": 10},
            image_size=160,
            variable_size=True,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            prepare=_catalog_prepare("imagenette/160px-v2"),
        ),
        DatasetSpec(
            name="imagenet2012",
            train_examples=1_281_167,
            tfds_name="imagenet2012",
            splits={"train": "train", "test": "validation"},
            label_keys={"label": "label"},
            num_classes={"label": 1000},
            image_size=256,
            variable_size=True,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            prepare=_catalog_prepare("imagenet2012", " --manual_dir=DIR_WITH_ILSVRC2012_TARS"),
        ),
        *(_transfer_set(name, test_split, classes) for name, test_split, classes in TRANSFER_SETS),
        DatasetSpec(
            name="caltech256",
            tfds_name="jax_ssl_caltech256",
            splits={"train": "train", "test": "test"},
            label_keys={"label": "label"},
            num_classes={"label": 256},
            image_size=256,
            variable_size=True,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            prepare=("download and extract 256_ObjectCategories, then: python -m jax_ssl.data.prepare caltech256 "
                     "--manual_dir=PATH/256_ObjectCategories --data_dir=DATA_DIR"),
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
  """The spec of dataset `name`; ValueError listing the known names otherwise.

  Args:
    name: a dataset name, a key of `CATALOG` (e.g. `cifar100`).

  Returns:
    The dataset's `DatasetSpec`.

  Raises:
    ValueError: if `name` is not in the catalog.
  """
  try:
    return CATALOG[name]
  except KeyError:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(CATALOG))}.") from None


def shifted_sets(name: str) -> tuple[str, ...]:
  """The out-of-distribution sets of dataset `name`: those whose `fit_on` it is (`shapes` -> `shapes_ood`).

  Args:
    name: a dataset name.

  Returns:
    Their names, in catalog order; () when there are none.
  """
  return tuple(other for other, spec in CATALOG.items() if spec.fit_on == name)


def parse_classes(spec: str) -> list[int] | None:
  """`"0-49,60"` -> [0, ..., 49, 60]; empty -> None (all classes).

  Args:
    spec: comma-separated class indices and inclusive ranges `a-b`, as in a run's `data.classes`.

  Returns:
    The class indices in the order written (ranges expanded), or None if `spec` is blank.

  Raises:
    ValueError: if a part is neither an integer nor a range of two integers.
  """
  if not spec.strip():
    return None
  classes = []
  for part in spec.split(","):
    bounds = part.strip().split("-")
    try:
      if len(bounds) == 1:
        classes.append(int(bounds[0]))
      elif len(bounds) == 2:
        classes.extend(range(int(bounds[0]), int(bounds[1]) + 1))
      else:
        raise ValueError
    except ValueError:
      raise ValueError(f"data.classes {spec!r}: {part!r} is not a class or a range like 0-49.") from None
  return classes
