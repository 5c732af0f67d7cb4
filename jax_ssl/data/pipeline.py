"""The training input pipeline: a grain dataset of shuffled uint8 batches, sharded per JAX process.

Order of operations, for a global batch of B images over P processes (b = B / P each):

  source -> shuffle (seeded, a new permutation every epoch) -> repeat forever
         -> this process's block of every global batch -> decode -> batch b

Process p reads rows [p*b, (p+1)*b) of each global batch of the one global
stream, so the P local batches, concatenated in process order, are exactly the
batch a single process would have read (same images, same order): a multi-host
run sees the same data as a single-host one, and each process decodes only its
share. Augmentation is not done here but on device (`jax_ssl.data.views`).

Batches are random access before they become an iterator, so the position
of a run is its step: `train_dataset(..., start=s)` yields batch s first, the
batch an uninterrupted run reads at step s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import grain
import jax
from absl import flags

from jax_ssl.data import sources


class ProcessBlocks(grain.MapDataset):
  """Element i of process p is element `(i // b) * B + p * b + i % b` of the global stream.

  b = local_batch, B = local_batch * process_count: process p owns block p of
  every global batch.
  """

  def __init__(self, parent: grain.MapDataset, process_index: int, process_count: int, local_batch: int):
    super().__init__(parent)
    self._process_index = process_index
    self._process_count = process_count
    self._local_batch = local_batch

  def __len__(self) -> int:
    return len(self._parent) // self._process_count

  def _global_index(self, index: int) -> int:
    batch, row = divmod(index, self._local_batch)
    return (batch * self._process_count + self._process_index) * self._local_batch + row

  def __getitem__(self, index):
    if isinstance(index, slice):
      return self.slice(index)
    return self._parent[self._global_index(index)]

  def __str__(self) -> str:
    return f"ProcessBlocks(process {self._process_index} of {self._process_count}, {self._local_batch} per batch)"


def local_batch_size(global_batch_size: int, process_count: int) -> int:
  """Per-process batch size; ValueError if the global batch does not divide over the processes.

  Args:
    global_batch_size: images per step over all processes.
    process_count: number of JAX processes.

  Returns:
    `global_batch_size // process_count`.

  Raises:
    ValueError: if `global_batch_size` is not positive or not a multiple of `process_count`.
  """
  if global_batch_size < 1:
    raise ValueError(f"the global batch size must be positive, got {global_batch_size}.")
  if global_batch_size % process_count:
    raise ValueError(
        f"the global batch size {global_batch_size} does not divide over {process_count} processes; "
        f"use a multiple of {process_count}.")
  return global_batch_size // process_count


def train_dataset(
    source: sources.Source,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int | None = None,
    process_count: int | None = None,
    num_threads: int | None = None,
    worker_count: int = 0,
    start: int = 0,
) -> grain.IterDataset:
  """Endless shuffled batches of this process's share of `source`, from batch `start` on.

  Args:
    source: the split to read (`sources.open_source`).
    global_batch_size: images per step over all processes.
    seed: shuffling seed; the same seed gives the same batches.
    process_index, process_count: this process's place; default JAX's.
    num_threads: reader threads, each building whole batches (default: the CPU count, at most 8).
    worker_count: grain worker processes for decoding (0: none).
    start: the first batch (a resumed run's step): batch s is the same whatever `start`.

  Returns:
    A grain IterDataset of dicts: `image` uint8 (b, S, S, 3) and int32 labels (b,).

  Raises:
    ValueError: if `process_index` is outside [0, process_count), the global batch does not divide over
      the processes, or `source` holds fewer records than one global batch.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index must lie in [0, {process_count}), got {process_index}.")
  local_batch = local_batch_size(global_batch_size, process_count)
  if len(source) < global_batch_size:
    raise ValueError(f"{source} has {len(source)} records, fewer than one global batch of {global_batch_size}.")
  stream = grain.MapDataset.source(source).seed(seed).shuffle().repeat()
  local = ProcessBlocks(stream, process_index, process_count, local_batch)
  # Batch before leaving random access: worker processes then each build whole
  # batches (in order), so the batches do not depend on the worker count.
  batches = local.batch(local_batch, drop_remainder=True)
  if start:
    batches = batches.slice(slice(start, None))
  threads = num_threads or min(8, os.cpu_count() or 1)
  # The buffer bounds the batches in flight: one per reader thread, at least double buffering.
  dataset = batches.to_iter_dataset(grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(2, threads)))
  if worker_count > 0:
    # grain's workers read absl flags; outside an absl app (notebooks, tests) use their defaults.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return dataset


def train_iterator(
    name: str,
    split: str = "train",
    *,
    global_batch_size: int,
    seed: int,
    data_dir: str | os.PathLike | None = None,
    classes: Sequence[int] | None = None,
    **options,
) -> grain.DatasetIterator:
  """An iterator over `train_dataset` of a named dataset (optionally only some fine classes).

  Args:
    name: dataset name in the catalog.
    split: the split to read, 'train' or 'test'.
    global_batch_size: images per step over all processes.
    seed: shuffling seed.
    data_dir: where the dataset is prepared (default: see `sources.data_dir_for`).
    classes: if given, only the records whose fine `label` is one of these.
    **options: further keyword arguments of `train_dataset` (`process_index`, `process_count`,
      `num_threads`, `worker_count`, `start`).

  Returns:
    A grain iterator of this process's batches, as `train_dataset` yields them.

  Raises:
    ValueError: for an unknown dataset or split, invalid `classes`, or a batch size `train_dataset` rejects.
    DatasetNotFoundError: if a dataset that must be prepared beforehand is missing.
  """
  source = sources.open_source(name, split, data_dir)
  if classes is not None:
    source = source.with_classes(classes)
  return iter(train_dataset(source, global_batch_size=global_batch_size, seed=seed, **options))
