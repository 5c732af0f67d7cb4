"""The two feeds: batches as a pure function of (seed, step), on the devices or prefetched from the host."""

import jax
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl.data import catalog
from jax_ssl.data import feed
from jax_ssl.data import sources
from jax_ssl.train import loop


def test_each_epoch_reads_every_record_once_in_its_own_order():
  num_records, batch = 103, 10  # 10 steps per epoch, 3 records dropped each epoch
  steps = jax.jit(jax.vmap(lambda step: feed.batch_indices(7, step, num_records, batch)))
  epochs = np.asarray(steps(np.arange(30))).reshape(3, -1)
  for order in epochs:
    assert len(set(order.tolist())) == 100 and order.min() >= 0 and order.max() < num_records
  assert not np.array_equal(epochs[0], epochs[1]), "each epoch has its own permutation"
  np.testing.assert_array_equal(np.asarray(steps(np.arange(30))).reshape(3, -1), epochs)  # same seed, same order
  assert not np.array_equal(np.asarray(jax.vmap(lambda s: feed.batch_indices(8, s, num_records, batch))(
      np.arange(10))).ravel(), epochs[0])


def test_device_data_gathers_the_records_of_each_step_sharded_over_the_mesh(bundled_dir):
  source = sources.open_source("digits", "train", bundled_dir)
  mesh = loop.data_mesh()
  data = feed.DeviceData(source, mesh=mesh, global_batch_size=32, seed=3)
  gather = jax.jit(data.gather_batch)
  for step in (0, 5, 44, 45):  # 44 steps per epoch: step 44 starts epoch 1
    batch = gather(data.step_inputs(step), step)
    assert batch["image"].sharding.spec == P("data") and len(batch["image"].sharding.device_set) == 8
    rows = np.asarray(feed.batch_indices(3, step, len(source), 32))
    np.testing.assert_array_equal(batch["image"], np.stack([source[int(i)]["image"] for i in rows]))
    np.testing.assert_array_equal(batch["label"], [source[int(i)]["label"] for i in rows])


def test_device_data_draws_each_epochs_order_once_and_it_is_the_steps_rows(bundled_dir):
  source = sources.open_source("digits", "train", bundled_dir)
  data = feed.DeviceData(source, mesh=loop.data_mesh(), global_batch_size=32, seed=3)
  draws = []
  draw_order = data._draw_order
  data._draw_order = lambda epoch: draws.append(int(epoch)) or draw_order(epoch)
  orders = [data.step_inputs(step)["order"] for step in range(0, 90)]  # 44 steps per epoch: epochs 0, 1 and 2
  assert draws == [0, 1, 2], "one draw per epoch, at its first step"
  assert orders[0] is orders[43] and orders[44] is orders[87] and orders[88] is not orders[87]
  for step in (0, 43, 44, 88):
    rows = np.asarray(feed.batch_indices(3, step, len(source), 32))
    position = step % 44
    np.testing.assert_array_equal(np.asarray(orders[step])[position * 32:(position + 1) * 32], rows)
  with jax.transfer_guard("disallow"):  # the loop's rule: the epoch goes to the devices explicitly
    data.step_inputs(200)
  assert draws[-1] == 4


def test_host_feed_from_step_s_reads_what_an_uninterrupted_run_reads_at_s(bundled_dir):
  source = sources.open_source("digits", "train", bundled_dir)
  sharding = NamedSharding(loop.data_mesh(), P("data"))
  uninterrupted = feed.HostFeed(source, global_batch_size=16, seed=1, start=0, sharding=sharding, worker_count=0)
  batches = [jax.device_get(uninterrupted.next()) for _ in range(6)]
  uninterrupted.close()
  resumed = feed.HostFeed(source, global_batch_size=16, seed=1, start=4, sharding=sharding, worker_count=0)
  for step in (4, 5):
    batch = resumed.next()
    assert batch["image"].sharding == sharding
    np.testing.assert_array_equal(batch["image"], batches[step]["image"])
    np.testing.assert_array_equal(batch["label"], batches[step]["label"])
  resumed.close()


class _BrokenSource:
  """A source whose fourth record cannot be read."""

  def __init__(self, source):
    self._source = source

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index):
    if index == 3:
      raise OSError("record 3 is unreadable")
    return self._source[index]


def test_host_feed_hands_a_reader_error_to_the_step_that_needs_the_batch(bundled_dir):
  source = _BrokenSource(sources.open_source("digits", "train", bundled_dir))
  # One batch holds every record: the first batch the step asks for needs the broken one.
  host = feed.HostFeed(source, global_batch_size=len(source) // 8 * 8, seed=0, start=0,
                       sharding=NamedSharding(loop.data_mesh(), P("data")), worker_count=0)
  with pytest.raises(OSError, match="record 3 is unreadable"):
    host.next()
  host.close()


def test_on_device_choice():
  device = jax.devices()[0]
  budget = feed.ON_DEVICE_MEMORY_FRACTION * feed.device_memory_bytes(device)
  assert feed.choose_on_device("auto", int(budget), False, device)
  assert not feed.choose_on_device("auto", int(budget) + 1, False, device)
  assert feed.choose_on_device("true", int(budget) * 10, False, device)
  assert not feed.choose_on_device("false", 10, False, device)
  assert not feed.choose_on_device("auto", 10, True, device)  # variable-size images are decoded on the host
  with pytest.raises(ValueError, match="needs fixed-size images"):
    feed.choose_on_device("true", 10, True, device)
  with pytest.raises(ValueError, match="must be one of auto, true, false"):
    feed.choose_on_device("yes", 10, False, device)
  assert feed.default_worker_count(False) == 0 and feed.default_worker_count(True) >= 1


def test_parse_classes():
  assert catalog.parse_classes("") is None and catalog.parse_classes("  ") is None
  assert catalog.parse_classes("0-3, 7") == [0, 1, 2, 3, 7]
  for bad in ("a-b", "1-2-3", "4,"):
    with pytest.raises(ValueError, match=f"data.classes {bad!r}: .* is not a class or a range like 0-49"):
      catalog.parse_classes(bad)


@pytest.mark.parametrize("change,message", [
    (dict(name="mnist"), "data.name 'mnist' is unknown; datasets: ade20k, caltech101, caltech256, cars196, cifar10"),
    (dict(classes="30-36"), r"data.classes '30-36' must lie in 0..35 for shapes"),
    (dict(name="digits", classes="10"), r"data.classes '10' must lie in 0..9 for digits"),
    (dict(on_device="yes"), "data.on_device must be one of auto, true, false; got 'yes'"),
    (dict(worker_count=-2), "data.worker_count is a number of processes, or -1"),
    (dict(name="ade20k", classes=""), "data.name 'ade20k' has no image labels: it serves the dense probe"),
])
def test_check_config_names_the_data_field(change, message):
  section = ml_collections.ConfigDict(dict(name="shapes", data_dir="", classes="0-35", on_device="auto",
                                           worker_count=-1))
  feed.check_config(section)
  section.update(**change)
  with pytest.raises(ValueError, match=message):
    feed.check_config(section)
