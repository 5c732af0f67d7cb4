"""The grain pipeline: repeatable, sharded per process, resumable exactly (also through Orbax)."""

import grain
import numpy as np
import orbax.checkpoint as ocp
import pytest

from jax_ssl.data import pipeline
from jax_ssl.data import sources


class IndexSource:
  """Record i is an image filled with i (mod 256) and label i: batches reveal which records they hold."""

  def __init__(self, size):
    self._size = size

  def __len__(self):
    return self._size

  def __getitem__(self, index):
    return {"image": np.full((2, 2, 3), index % 256, np.uint8), "label": np.int32(index)}


def _batches(source, count, **options):
  options = {"global_batch_size": 8, "seed": 0, "process_index": 0, "process_count": 1, **options}
  iterator = iter(pipeline.train_dataset(source, **options))
  return [next(iterator) for _ in range(count)]


def test_same_seed_same_batches_different_seed_different():
  first, again = _batches(IndexSource(40), 12), _batches(IndexSource(40), 12)
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  other = _batches(IndexSource(40), 12, seed=1)
  assert any(not np.array_equal(a["label"], b["label"]) for a, b in zip(first, other))


def test_each_epoch_is_a_new_permutation_of_the_records():
  labels = np.concatenate([b["label"] for b in _batches(IndexSource(40), 10)])  # 80 = two epochs
  first_epoch, second_epoch = labels[:40], labels[40:]
  np.testing.assert_array_equal(np.sort(first_epoch), np.arange(40))
  np.testing.assert_array_equal(np.sort(second_epoch), np.arange(40))
  assert not np.array_equal(first_epoch, second_epoch)


def test_processes_read_disjoint_blocks_that_reassemble_the_global_batch():
  source = IndexSource(48)
  global_batches = _batches(source, 6, global_batch_size=12)
  shards = [_batches(source, 6, global_batch_size=12, process_index=p, process_count=3) for p in range(3)]
  for step, global_batch in enumerate(global_batches):
    local = [shard[step]["label"] for shard in shards]
    assert all(len(rows) == 4 for rows in local)
    np.testing.assert_array_equal(np.concatenate(local), global_batch["label"])
  # Within an epoch (4 steps of 12 = 48 records) the three shards never share a record.
  seen = [set(np.concatenate([shard[step]["label"] for step in range(4)]).tolist()) for shard in shards]
  assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
  assert set().union(*seen) == set(range(48))


def test_restored_state_continues_exactly():
  dataset = pipeline.train_dataset(IndexSource(30), global_batch_size=4, seed=3, process_index=0, process_count=1)
  uninterrupted = iter(dataset)
  expected = [next(uninterrupted)["label"] for _ in range(20)]
  interrupted = iter(dataset)
  for _ in range(7):
    next(interrupted)
  state = interrupted.get_state()
  resumed = iter(dataset)
  resumed.set_state(state)
  for step in range(7, 20):
    np.testing.assert_array_equal(next(resumed)["label"], expected[step])


def test_orbax_saves_and_restores_the_iterator(tmp_path):
  dataset = pipeline.train_dataset(IndexSource(30), global_batch_size=4, seed=3, process_index=0, process_count=1)
  reference = iter(dataset)
  expected = [next(reference)["label"] for _ in range(12)]
  iterator = iter(dataset)
  for _ in range(5):
    next(iterator)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.save(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(iterator)))
    manager.wait_until_finished()
  fresh = iter(dataset)
  with ocp.CheckpointManager(tmp_path / "ckpt") as manager:
    manager.restore(5, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  for step in range(5, 12):
    np.testing.assert_array_equal(next(fresh)["label"], expected[step])


def test_worker_processes_give_the_same_batches():
  source = IndexSource(40)
  in_process = _batches(source, 6)
  with_workers = _batches(source, 6, worker_count=2)
  for a, b in zip(in_process, with_workers):
    np.testing.assert_array_equal(a["label"], b["label"])
    np.testing.assert_array_equal(a["image"], b["image"])


def test_bundled_dataset_batches(bundled_dir):
  iterator = pipeline.train_iterator("shapes", global_batch_size=32, seed=0, data_dir=bundled_dir, process_index=0,
                                     process_count=1, classes=range(4))
  batch = next(iterator)
  assert batch["image"].shape == (32, 32, 32, 3) and batch["image"].dtype == np.uint8
  assert set(batch) == {"image", "mask", "label", "label_coarse", "label_family"}  # shapes has masks
  assert batch["label"].max() < 4


@pytest.mark.parametrize("options,message", [
    (dict(global_batch_size=10, process_count=4, process_index=0), "does not divide over 4 processes"),
    (dict(global_batch_size=8, process_count=2, process_index=2), r"process_index must lie in \[0, 2\)"),
    (dict(global_batch_size=64, process_count=1, process_index=0), "fewer than one global batch of 64"),
    (dict(global_batch_size=0, process_count=1, process_index=0), "must be positive"),
])
def test_bad_options_are_explained(options, message):
  with pytest.raises(ValueError, match=message):
    pipeline.train_dataset(IndexSource(40), seed=0, **options)


def test_pipeline_reads_sources_in_jax_ssl_schema(bundled_dir):
  source = sources.open_source("digits", "train", bundled_dir)
  batch = next(iter(pipeline.train_dataset(source, global_batch_size=16, seed=0, process_index=0, process_count=1)))
  assert batch["image"].shape == (16, 8, 8, 3) and batch["label"].dtype == np.int32
