"""Getting each step's batch onto the devices without making the step wait.

Two feeds, chosen by `config.data.on_device` (`choose_on_device`):

- `DeviceData`: the whole split's uint8 images and labels live on the devices
  (replicated), copied once. Step s of epoch e = s // steps_per_epoch reads
  rows `permutation(key(seed, e))[(s % steps_per_epoch) * B : ... + B]`, a
  gather inside the jitted step (`gather_batch`). The epoch's permutation is
  drawn on the devices once per epoch (`step_inputs`), not in every step: on
  a CPU, drawing it for 5,040 records took 5% of a small CNN's step. The host
  does no per-step work, and the data position is the step itself.
- `HostFeed`: a grain pipeline (`pipeline.train_dataset`) read from step s on,
  whose batches a background thread turns into global device arrays with the
  step's input sharding (`jax.make_array_from_process_local_data`), `depth`
  batches ahead of the step that consumes them. Its position is the step too:
  batch s is `batches[s]` of the random-access grain dataset.

Both are pure functions of (seed, step), so a resumed run reads exactly the
batches an uninterrupted one would, and P processes read what one would.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl.data import catalog
from jax_ssl.data import pipeline
from jax_ssl.data import sources

ON_DEVICE_CHOICES = ("auto", "true", "false")
# `auto` puts a split on the devices when its uint8 images take at most this fraction of one device's memory.
ON_DEVICE_MEMORY_FRACTION = 0.25
# Batches the host feed keeps in flight on the devices.
PREFETCH_DEPTH = 2
# What a pretraining batch holds: the images, and the fine labels for the online probe.
BATCH_KEYS = ("image", "label")


def check_config(data_config: Any) -> None:
  """Raise `ValueError` (one line naming the `data.<field>`) if a run's `data` section cannot be fed.

  Checks that the dataset is in the catalog, that `classes` parses and lies within the dataset's
  fine classes, that `on_device` is one of `ON_DEVICE_CHOICES`, and that `worker_count` is a number
  of processes or -1.

  Args:
    data_config: the `data` section of a run config (attribute access: `ConfigDict` or alike).

  Raises:
    ValueError: for the first problem found.
  """
  data = data_config
  if data.name not in catalog.CATALOG:
    raise ValueError(f"data.name {data.name!r} is unknown; datasets: {', '.join(sorted(catalog.CATALOG))}.")
  spec = catalog.get_spec(data.name)
  if "label" not in spec.label_keys:
    raise ValueError(f"data.name {data.name!r} has no image labels: it serves the dense probe "
                     f"(python -m jax_ssl.evaluate dense --dataset {data.name}), not pretraining.")
  classes = catalog.parse_classes(data.classes)
  num_classes = spec.num_classes["label"]
  if classes is not None and (min(classes) < 0 or max(classes) >= num_classes):
    raise ValueError(f"data.classes {data.classes!r} must lie in 0..{num_classes - 1} for {data.name}.")
  if data.on_device not in ON_DEVICE_CHOICES:
    raise ValueError(f"data.on_device must be one of {', '.join(ON_DEVICE_CHOICES)}; got {data.on_device!r}.")
  if data.worker_count < -1:
    raise ValueError(f"data.worker_count is a number of processes, or -1 for one per spare CPU core; "
                     f"got {data.worker_count}.")


def device_memory_bytes(device: jax.Device) -> int:
  """What one device can hold: its allocator's limit (GPU, TPU), else the host's RAM over its CPU devices.

  Args:
    device: the device to ask.

  Returns:
    The device's memory in bytes: `bytes_limit` from its memory stats when it reports one, else the
    host's physical memory divided by the number of local devices.
  """
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and stats.get("bytes_limit"):
    return int(stats["bytes_limit"])
  physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  return physical // max(1, len(jax.local_devices()))


def choose_on_device(setting: str, split_bytes: int, variable_size: bool, device: jax.Device) -> bool:
  """Whether a split of `split_bytes` (uint8 images) goes on the devices under `config.data.on_device`.

  Args:
    setting: `config.data.on_device`, one of "auto", "true" or "false".
    split_bytes: size of the split's uint8 images, in bytes.
    variable_size: whether the dataset's images vary in size (decoded and resized on the host).
    device: the device whose memory bounds the "auto" choice.

  Returns:
    True for "true", and for "auto" when the images are fixed-size and take at most
    `ON_DEVICE_MEMORY_FRACTION` of the device's memory; False otherwise.

  Raises:
    ValueError: `setting` is "true" for a dataset of variable-size images, or an unknown value.
  """
  if setting not in ON_DEVICE_CHOICES:
    raise ValueError(f"data.on_device must be one of {', '.join(ON_DEVICE_CHOICES)}; got {setting!r}.")
  if setting == "false":
    return False
  if variable_size:
    if setting == "true":
      raise ValueError("data.on_device='true' needs fixed-size images; this dataset's vary in size "
                       "(they are decoded and resized on the host): use 'auto' or 'false'.")
    return False
  return setting == "true" or split_bytes <= ON_DEVICE_MEMORY_FRACTION * device_memory_bytes(device)


def default_worker_count(decodes_images: bool) -> int:
  """Grain decoding processes for `data.worker_count = -1`: one per spare core (at most 16) for encoded images
  (JPEG decoding is the host's work), none for images stored as raw uint8 (nothing to decode).

  Args:
    decodes_images: whether the dataset's records hold encoded images.

  Returns:
    The number of grain worker processes: 0, or between 1 and 16.
  """
  if not decodes_images:
    return 0
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
  return max(1, min(16, cores - 1))


def epoch_permutation(seed: int, epoch: jax.Array, num_records: int) -> jax.Array:
  """The order of epoch `epoch`: a permutation of range(num_records) drawn from (seed, epoch).

  Args:
    seed: the run's data seed.
    epoch: epoch index, an integer scalar (may be traced).
    num_records: number of records in the split (static).

  Returns:
    An integer `(num_records,)` array holding each of `0 .. num_records - 1` once.
  """
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return jax.random.permutation(key, num_records)


def batch_indices(seed: int, step: jax.Array, num_records: int, batch_size: int) -> jax.Array:
  """Rows of step `step`'s global batch: one block of its epoch's permutation (the remainder is dropped).

  Args:
    seed: the run's data seed.
    step: global training step, an integer scalar (may be traced).
    num_records: number of records in the split (static).
    batch_size: global batch size (static), at most `num_records`.

  Returns:
    An integer `(batch_size,)` array of distinct record indices.
  """
  steps_per_epoch = num_records // batch_size
  epoch, position = jnp.divmod(step, steps_per_epoch)
  order = epoch_permutation(seed, epoch, num_records)
  return jax.lax.dynamic_slice_in_dim(order, position * batch_size, batch_size)


class DeviceData:
  """A split held on the devices: `arrays` (replicated), each epoch's order, and the gather that makes a batch."""

  def __init__(self, source: sources.Source, *, mesh, global_batch_size: int, seed: int,
               keys: tuple[str, ...] = BATCH_KEYS):
    if len(source) < global_batch_size:
      raise ValueError(f"{source} has {len(source)} records, fewer than one global batch of {global_batch_size}.")
    records = [source[i] for i in range(len(source))]
    local = {key: np.stack([record[key] for record in records]) for key in keys}
    self._replicated = NamedSharding(mesh, P())
    # Every process holds the whole split: each passes all of it as its "local" part of a replicated array.
    self.arrays = {key: jax.make_array_from_process_local_data(self._replicated, value)
                   for key, value in local.items()}
    self.num_records = len(source)
    self.global_batch_size = global_batch_size
    self.steps_per_epoch = self.num_records // global_batch_size
    self.batch_sharding = NamedSharding(mesh, P(mesh.axis_names[0]))
    self._draw_order = jax.jit(lambda epoch: epoch_permutation(seed, epoch, self.num_records),
                               out_shardings=self._replicated)
    self._order_epoch, self._order = None, None

  def step_inputs(self, step: int) -> dict:
    """What the jitted step of `step` reads: the split's arrays and the order of its epoch.

    The order is drawn on the devices when the epoch changes (dispatched, not waited for) and
    reused by every step of that epoch.

    Args:
      step: the global training step about to run, as a host integer (the state's step).

    Returns:
      `{"arrays": self.arrays, "order": the (num_records,) permutation of the step's epoch}`, all
      replicated on the devices.
    """
    epoch = step // self.steps_per_epoch
    if epoch != self._order_epoch:
      # The one host-to-device transfer of the feed, a scalar per epoch (the loop forbids unmarked ones).
      with jax.transfer_guard("allow"):
        epoch_on_devices = jax.make_array_from_process_local_data(self._replicated, np.int32(epoch))
      self._order = self._draw_order(epoch_on_devices)
      self._order_epoch = epoch
    return {"arrays": self.arrays, "order": self._order}

  def gather_batch(self, inputs: dict, step: jax.Array) -> dict:
    """Inside `jit`: the global batch of `step`, sharded over the mesh like a host-fed batch.

    Rows `order[(step % steps_per_epoch) * B : ... + B]`, which equal `batch_indices(seed, step, ...)`.

    Args:
      inputs: `step_inputs(step)`, passed into the jitted step: the split's arrays (`image`, `label`, ...,
        one row per record) and the epoch's order.
      step: global training step, an integer scalar (may be traced); its epoch's order is `inputs["order"]`.

    Returns:
      A dict with the arrays' keys, each holding the step's `global_batch_size` rows, sharded along the
      batch axis over the mesh's first axis.
    """
    position = step % self.steps_per_epoch
    rows = jax.lax.dynamic_slice_in_dim(inputs["order"], position * self.global_batch_size, self.global_batch_size)
    return {key: jax.lax.with_sharding_constraint(value[rows], self.batch_sharding)
            for key, value in inputs["arrays"].items()}


class HostFeed:
  """Batches from step `start` on, already on the devices: a background thread stays `depth` batches ahead."""

  def __init__(self, source: sources.Source, *, global_batch_size: int, seed: int, start: int, sharding,
               worker_count: int = 0, depth: int = PREFETCH_DEPTH, keys: tuple[str, ...] = BATCH_KEYS):
    dataset = pipeline.train_dataset(source, global_batch_size=global_batch_size, seed=seed, start=start,
                                     worker_count=worker_count)
    self._iterator = iter(dataset)
    self._sharding = sharding
    self._keys = keys
    self._queue: queue.Queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, name="jax_ssl_host_feed", daemon=True)
    self._thread.start()

  def _put(self, item) -> bool:
    while not self._stop.is_set():
      try:
        self._queue.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  def _fill(self) -> None:
    try:
      while not self._stop.is_set():
        local = next(self._iterator)
        batch = {key: jax.make_array_from_process_local_data(self._sharding, local[key])
                 for key in self._keys}
        if not self._put(batch):
          return
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
      self._put(error)

  def next(self) -> dict:
    item = self._queue.get()
    if isinstance(item, BaseException):
      raise item
    return item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=10)


def feed_for(on_device: bool, source: sources.Source, *, mesh, global_batch_size: int, seed: int,
             worker_count: int, keys: tuple[str, ...] = BATCH_KEYS,
             ) -> tuple[DeviceData | None, Callable[[int], HostFeed] | None]:
  """(DeviceData, None) on the devices, or (None, start -> HostFeed) on the host.

  Args:
    on_device: whether the split is held on the devices (see `choose_on_device`).
    source: the training split.
    mesh: the device mesh; batches are sharded over its first axis.
    global_batch_size: images per step over all processes.
    seed: the run's data seed.
    worker_count: grain worker processes for the host feed (0: none).
    keys: the record fields each batch holds (pretraining reads `image` and the fine `label`; fine-tuning
      every label level).

  Returns:
    `(DeviceData, None)` when `on_device`, else `(None, host_feed)` where `host_feed(start)` makes a
    `HostFeed` whose first batch is that of step `start`.

  Raises:
    ValueError: if `on_device` and `source` has fewer records than one global batch.
  """
  if on_device:
    return DeviceData(source, mesh=mesh, global_batch_size=global_batch_size, seed=seed, keys=keys), None
  sharding = NamedSharding(mesh, P(mesh.axis_names[0]))

  def host_feed(start: int) -> HostFeed:
    return HostFeed(source, global_batch_size=global_batch_size, seed=seed, start=start, sharding=sharding,
                    worker_count=worker_count, keys=keys)

  return None, host_feed
