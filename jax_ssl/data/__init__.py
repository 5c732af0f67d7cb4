"""Datasets by name, the grain input pipeline, and on-device augmentation.

  load_numpy(name, split, data_dir=None)  a whole split as numpy arrays (eval)
  open_source(name, split, data_dir=None) random access to one split (training)
  train_iterator(name, ...)               endless shuffled batches, sharded per process
  views.multi_crop(key, images, specs)    augmented views, on device

Bundled datasets (`digits`, `shapes`) are prepared on first use, with no
network, in $JAX_SSL_DATA_DIR (default ~/.cache/jax_ssl/datasets). The others
(`cifar10`, `cifar100`, `imagenette`, `imagenet2012`, `caltech256`) are read
from a tfds data_dir prepared beforehand.
"""

from jax_ssl.data import augment
from jax_ssl.data import views
from jax_ssl.data.catalog import CATALOG
from jax_ssl.data.catalog import DatasetSpec
from jax_ssl.data.catalog import get_spec
from jax_ssl.data.pipeline import local_batch_size
from jax_ssl.data.pipeline import train_dataset
from jax_ssl.data.pipeline import train_iterator
from jax_ssl.data.sources import DatasetNotFoundError
from jax_ssl.data.sources import Source
from jax_ssl.data.sources import load_numpy
from jax_ssl.data.sources import open_source
from jax_ssl.data.sources import prepare
from jax_ssl.data.views import ViewSpec
from jax_ssl.data.views import augment_batch
from jax_ssl.data.views import multi_crop
from jax_ssl.data.views import views_from_config

__all__ = [
    "CATALOG",
    "DatasetNotFoundError",
    "DatasetSpec",
    "Source",
    "get_spec",
    "load_numpy",
    "local_batch_size",
    "open_source",
    "prepare",
    "train_dataset",
    "ViewSpec",
    "augment",
    "augment_batch",
    "multi_crop",
    "train_iterator",
    "views",
    "views_from_config",
]
