"""What a checkpoint holds is checked: nothing non-finite is saved, nothing changed or non-finite is restored."""

import pathlib

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jax_ssl.train import checkpoint
from jax_ssl.train import integrity
from jax_ssl.train import optim
from jax_ssl.train.state import TrainState
from tests.train import cli

_MASK = 0xFFFFFFFF


def _mix(h):
  h = h ^ (h >> 16)
  h = (h * 0x85EBCA6B) & _MASK
  h = h ^ (h >> 13)
  h = (h * 0xC2B2AE35) & _MASK
  return h ^ (h >> 16)


def _numpy_fingerprint(x: np.ndarray) -> int:
  """The module docstring's checksum, in uint64 numpy arithmetic masked to 32 bits."""
  x = np.ascontiguousarray(x)
  if x.dtype == np.bool_:
    words = x.astype(np.uint64)
  else:
    words = x.view({1: np.uint8, 2: np.uint16, 4: np.uint32}[x.dtype.itemsize]).astype(np.uint64)
  words = words.ravel()
  index = np.arange(words.size, dtype=np.uint64)
  return int(np.sum(_mix(words ^ _mix((index + 0x9E3779B9) & _MASK))) & _MASK)


@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16, np.int32, np.uint32, np.uint8, np.bool_])
def test_the_fingerprint_is_the_documented_checksum(dtype):
  values = np.random.default_rng(0).normal(size=(5, 7, 3)) * 50
  x = (values > 0) if dtype == np.bool_ else values.astype(dtype)
  assert int(jax.jit(integrity.array_fingerprint)(jnp.asarray(x))) == _numpy_fingerprint(x)
  assert int(integrity.array_fingerprint(jnp.asarray(x[0, 0, 0]))) == _numpy_fingerprint(x[0, 0, 0])


@pytest.mark.parametrize("spec", [P("data", None), P(None, "data"), P()])
def test_a_sharded_array_has_the_fingerprint_of_the_whole(spec):
  mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  x = np.random.default_rng(1).normal(size=(16, 24)).astype(np.float32)
  sharded = jax.device_put(x, NamedSharding(mesh, spec))
  assert int(jax.jit(integrity.array_fingerprint)(sharded)) == _numpy_fingerprint(x)


def test_a_changed_or_moved_value_changes_the_fingerprint():
  x = np.arange(64, dtype=np.float32).reshape(8, 8)
  reference = _numpy_fingerprint(x)
  flipped = x.copy()
  flipped.view(np.uint32)[3, 5] ^= 1  # the lowest bit of one float
  swapped = x.copy()
  swapped[[0, 1]] = swapped[[1, 0]]
  for changed in (flipped, swapped):
    assert int(integrity.array_fingerprint(jnp.asarray(changed))) != reference


def _state(seed=0) -> TrainState:
  # Random weights: stored as they are (a compressor cannot shrink them), so one can be found and changed.
  params = {"w": jax.random.normal(jax.random.key(seed), (16, 32)), "b": jnp.zeros((32,))}
  probe = {"k": jnp.ones((32, 4))}
  return TrainState(step=jnp.asarray(3, jnp.int32), params=params, batch_stats={"mean": jnp.zeros((32,))},
                    opt_state=optax.lars(0.1).init(params), probe_params=probe,
                    probe_opt_state=optax.adam(1e-3).init(probe), target_params=None, target_batch_stats=None,
                    rng=jnp.asarray([1, 2], jnp.uint32), method_statistics=None)


def _abstract(tree):
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding), tree)


def _steps(directory: pathlib.Path) -> list[str]:
  return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_a_non_finite_state_is_refused_and_nothing_is_written(tmp_path):
  manager = checkpoint.Checkpointer(tmp_path / "checkpoints", save_every=1, keep=3, background=True)
  state = _state()
  bad = state.replace(params={**state.params, "w": state.params["w"].at[0, 0].set(jnp.inf)},
                      batch_stats={"mean": jnp.full((32,), jnp.nan)})
  with pytest.raises(checkpoint.NonFiniteStateError,
                     match=r"the state after step 7 holds NaN or inf in 2 of \d+ float arrays \(params 1, batch_stats"
                           r" 1\); it was not saved"):
    manager.save(7, bad)
  manager.wait()
  assert _steps(tmp_path / "checkpoints") == [] and manager.last_step is None
  assert manager.save(8, state)
  manager.wait()
  meta = manager.read_meta(8)
  manager.close()
  assert meta["step"] == 8 and meta["format"] == checkpoint.META_FORMAT
  leaves = jax.tree_util.tree_leaves_with_path(state)
  assert meta["fingerprints"] == {jax.tree_util.keystr(path): _numpy_fingerprint(np.asarray(leaf))
                                  for path, leaf in leaves}


def test_a_checkpoint_with_a_changed_byte_is_moved_aside_and_the_previous_one_restored(tmp_path, caplog):
  directory = tmp_path / "checkpoints"
  manager = checkpoint.Checkpointer(directory, save_every=1, keep=3, config={"seed": 5}, background=True)
  first, second = _state(1), _state(2)
  manager.save(1, first)
  manager.save(2, second)
  manager.wait()
  manager.close()
  cli.flip_a_byte_silently(directory / "2")

  reader = checkpoint.Checkpointer(directory, save_every=1, keep=3)
  with pytest.raises(FileNotFoundError, match=r"step 2: CorruptCheckpointError: \d+ of its arrays differ from the "
                                              r"checksums saved with them \("):
    reader.restore_state(2, _abstract(second))
  assert reader.saved_config() == {"seed": 5}
  with caplog.at_level("WARNING", logger="jax_ssl.train.checkpoint"):
    restored = reader.restore_latest(_abstract(second))
  reader.close()
  assert "checkpoint at step 2" in caplog.text and "differ from the checksums" in caplog.text
  for expected, actual in zip(jax.tree.leaves(first), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
  assert _steps(directory) == ["1", checkpoint.UNREADABLE_DIR]
  assert _steps(directory / checkpoint.UNREADABLE_DIR) == ["2"]


def _orbax_save(directory, step, tree):
  """A checkpoint as jax_ssl wrote it before each one carried its `meta` record (and was checked)."""
  manager = ocp.CheckpointManager(directory, options=ocp.CheckpointManagerOptions(create=True), item_names=("state",))
  manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(tree)), force=True)
  manager.wait_until_finished()
  manager.close()


def test_an_older_checkpoint_is_still_restored_and_checked_for_non_finite_values(tmp_path):
  directory = tmp_path / "checkpoints"
  state = _state(3)
  # Clipping used to be optax.chain's first element, whose state is EmptyState().
  _orbax_save(directory, 4, state.replace(opt_state=(optax.EmptyState(), state.opt_state)))
  _orbax_save(directory, 5, state.replace(params={**state.params, "b": jnp.full((32,), jnp.nan)}))
  manager = checkpoint.Checkpointer(directory, save_every=1, keep=10)
  restored = manager.restore_latest(_abstract(state))
  manager.close()
  assert manager.last_step == 4
  for expected, actual in zip(jax.tree.leaves(state), jax.tree.leaves(restored)):
    np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))
  assert _steps(directory / checkpoint.UNREADABLE_DIR) == ["5"], "the non-finite one is moved aside"


def test_clipping_takes_no_state_and_clips_as_optax_chain_does():
  params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.ones((4,))}
  grads = jax.tree.map(lambda p: 10.0 * jnp.cos(p), params)
  inner = optax.lars(0.5, weight_decay=1e-4, weight_decay_mask=optim.decay_mask, trust_ratio_mask=optim.decay_mask)
  clipped = optim.clipped_first(inner, 0.7)
  chained = optax.chain(optax.clip_by_global_norm(0.7), inner)
  state = clipped.init(params)
  assert jax.tree.structure(state) == jax.tree.structure(inner.init(params)), "resumable with or without clipping"
  updates, state = clipped.update(grads, state, params)
  expected, _ = chained.update(grads, chained.init(params), params)
  for name in params:
    np.testing.assert_allclose(np.asarray(updates[name]), np.asarray(expected[name]), rtol=1e-6)
  unclipped, _ = inner.update(grads, inner.init(params), params)
  assert not np.allclose(np.asarray(unclipped["w"]), np.asarray(updates["w"])), "the gradients were clipped"
