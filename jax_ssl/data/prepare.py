"""`python -m jax_ssl.data.prepare NAME`: prepare a dataset once, ahead of training.

  python -m jax_ssl.data.prepare shapes                      # bundled: no network
  python -m jax_ssl.data.prepare caltech256 --manual_dir=PATH/256_ObjectCategories --data_dir=DIR
  python -m jax_ssl.data.prepare cifar100 --data_dir=DIR     # tfds catalog: needs TensorFlow and network

Bundled datasets are also prepared automatically on first use; this command
lets a cluster job prepare them once, before many processes start.
"""

from __future__ import annotations

import sys

from absl import app
from absl import flags

from jax_ssl.data import catalog
from jax_ssl.data import sources

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where to write the dataset (default: see jax_ssl.data).")
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Downloaded files, for datasets that need them.")


def main(argv) -> int:
  """Prepares the dataset named on the command line.

  Args:
    argv: the arguments absl leaves: the program name, then the dataset name.

  Returns:
    The exit status: 0 when the dataset is ready, 1 when preparing it failed, 2 for a wrong number of
    arguments or an unknown dataset name.
  """
  if len(argv) != 2:
    print(f"usage: python -m jax_ssl.data.prepare NAME [--data_dir=DIR] [--manual_dir=DIR]; "
          f"NAME is one of {', '.join(sorted(catalog.CATALOG))}", file=sys.stderr)
    return 2
  name = argv[1]
  try:
    spec = catalog.get_spec(name)
  except ValueError as error:
    print(error, file=sys.stderr)
    return 2
  try:
    if sources.prepared_by_jax_ssl(spec):
      dataset_builder = sources.prepare(name, _DATA_DIR.value, _MANUAL_DIR.value)
    else:
      import tensorflow_datasets as tfds
      dataset_builder = tfds.builder(spec.tfds_name, data_dir=str(sources.data_dir_for(spec, _DATA_DIR.value)),
                                     file_format="array_record")
      dataset_builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=_MANUAL_DIR.value))
  except (FileNotFoundError, ImportError, ValueError) as error:
    print(f"could not prepare {name}: {error}\nHow to prepare it: {spec.prepare}", file=sys.stderr)
    return 1
  print(f"{name} is ready in {dataset_builder.data_dir}")
  return 0


if __name__ == "__main__":
  app.run(main)
