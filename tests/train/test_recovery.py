"""A corrupt latest checkpoint is skipped with a warning; load_encoder gives the trained backbone."""

import json
import logging
import shutil

import numpy as np
import pytest

import jax_ssl
from configs import common
from jax_ssl.data import sources
from jax_ssl.train import loop


def _smoke(bundled_dir, steps):
  config = common.smoke(__import__("configs.vicreg", fromlist=["get_config"]).get_config())
  config.data.data_dir = str(bundled_dir)
  config.train.num_steps = steps
  config.eval.report = False
  return config


def _corrupt(workdir, step):
  for path in (workdir / "checkpoints" / str(step) / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\x00garbage")


def test_corrupt_latest_checkpoint_is_skipped_moved_aside_and_load_encoder_says_why(tmp_path, bundled_dir, caplog):
  loop.train(_smoke(bundled_dir, 2), tmp_path)
  _corrupt(tmp_path, 2)
  # load_encoder reads only: one warning line naming the step and why, none of Orbax's logging.
  with caplog.at_level(logging.INFO):
    encoder = jax_ssl.load_encoder(tmp_path)
  assert encoder.step == 1
  records = [r for r in caplog.records if r.levelno >= logging.WARNING]
  assert len(records) == 1 and records[0].name == "jax_ssl.train.checkpoint", [r.getMessage() for r in records]
  assert "checkpoint at step 2" in records[0].getMessage() and "JSONDecodeError" in records[0].getMessage()
  assert not [r for r in caplog.records if r.name == "absl"], "Orbax's logging stays out of the way"

  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="jax_ssl.train.checkpoint"):
    summary = loop.train(_smoke(bundled_dir, 3), tmp_path)
  assert "checkpoint at step 2" in caplog.text and "unreadable" in caplog.text
  assert summary["status"] == "completed" and summary["step"] == 3
  steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert steps == [1, 2, 3], "step 2, trained again after resuming from step 1, appears once"
  assert (tmp_path / "checkpoints" / "unreadable" / "2" / "state").is_dir(), "moved aside, not deleted"
  assert {"2", "3", "unreadable"} <= {p.name for p in (tmp_path / "checkpoints").iterdir()}

  # Every checkpoint unreadable: one line per step, each with its reason.
  steps = sorted((int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()), reverse=True)
  for step in steps:
    _corrupt(tmp_path, step)
  with pytest.raises(FileNotFoundError) as raised:
    jax_ssl.load_encoder(tmp_path)
  lines = str(raised.value).splitlines()
  assert lines[0].startswith("no readable checkpoint in") and len(lines) == 1 + len(steps)
  assert [line.split(":")[0] for line in lines[1:]] == [f"step {step}" for step in steps]
  assert all("JSONDecodeError" in line for line in lines[1:])


def test_load_encoder_matches_the_trainer_and_selects_steps(tmp_path, bundled_dir):
  config = _smoke(bundled_dir, 2)
  loop.train(config, tmp_path)
  encoder = jax_ssl.load_encoder(tmp_path)
  images = sources.load_numpy("shapes", "test", bundled_dir)["image"][:10]
  features = encoder(images)
  assert encoder.step == 2 and features.shape == (10, encoder.num_features) and features.dtype == np.float32
  run = loop.Run(config, tmp_path)
  assert run.restore()
  np.testing.assert_allclose(features, run.embedder(run.state.params, run.state.batch_stats, images), rtol=1e-6)
  first = jax_ssl.load_encoder(tmp_path, step=1)
  assert first.step == 1 and not np.allclose(first(images), features)
  np.testing.assert_allclose(encoder(images.astype(np.float32) / 255.0), features, rtol=1e-5, atol=1e-6)
  run.checkpointer.close()


def test_load_encoder_explains_a_wrong_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="is not a jax_ssl workdir: it has no config.json"):
    jax_ssl.load_encoder(tmp_path)


def test_a_checkpoint_saved_before_method_statistics_existed_resumes(tmp_path, bundled_dir):
  # Checkpoints written before TrainState had `method_statistics` lack that field; a resumed run reads them
  # (instead of setting them aside as unreadable and training from step 0).
  import orbax.checkpoint as ocp

  from jax_ssl.train import checkpoint
  from jax_ssl.train.state import TrainState

  loop.train(_smoke(bundled_dir, 1), tmp_path / "run")
  saved = jax_ssl.load_encoder(tmp_path / "run")
  manager = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints", save_every=1, keep=10)
  step, state = manager.restore_state(None, checkpoint.abstract_like(*_abstract(tmp_path / "run")))
  legacy = {name: getattr(state, name) for name in TrainState.__dataclass_fields__ if name != "method_statistics"}
  manager._manager.save(5, args=ocp.args.Composite(state=ocp.args.StandardSave(legacy)), force=True)
  manager.wait()
  manager.close()
  assert jax_ssl.load_encoder(tmp_path / "run").step == 5
  images = sources.load_numpy(saved.config.data.name, "test", bundled_dir)["image"][:8]
  np.testing.assert_array_equal(jax_ssl.load_encoder(tmp_path / "run")(images), saved(images))
  assert step == 1 and not (tmp_path / "run" / "checkpoints" / "unreadable").exists()


def _abstract(workdir):
  """The abstract state and shardings of the run in `workdir`, as load_encoder builds them."""
  import json

  import jax
  import ml_collections

  from jax_ssl.train import encoder
  from jax_ssl.train import state as state_lib
  config = ml_collections.ConfigDict(json.loads((workdir / loop.CONFIG_FILE).read_text()))
  _, _, _, mesh, init = encoder._run_arrays(config)
  abstract = jax.eval_shape(init)
  return abstract, state_lib.state_shardings(abstract, mesh, fsdp=False)


def test_load_encoder_knows_each_heads_output(tmp_path, bundled_dir):
  # DINO's projector output is its prototypes' logits; an MAE run has no projector embeddings.
  from jax_ssl.train import encoder as encoder_lib
  config = _smoke(bundled_dir, 1)
  config.method.name = "dino"
  config.views.update(recipe="multicrop", num_global=2, num_local=2)
  images = sources.load_numpy(config.data.name, "test", bundled_dir)["image"][:4]
  dino = encoder_lib.initial_encoder(config, output="projector")
  assert dino.num_features == config.method.dino.num_prototypes == dino(images).shape[1]
  config.method.name = "mae"
  config.views.num_local = 0
  config.model.update(backbone="vit_micro", patch_size=4)
  with pytest.raises(ValueError, match="an MAE run has no projector embeddings"):
    encoder_lib.initial_encoder(config, output="projector")


def _tree():
  import jax.numpy as jnp
  return {"weights": jnp.arange(12.0).reshape(3, 4), "count": jnp.asarray(7, jnp.int32)}


def _abstract_tree(tree):
  import jax
  return jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=leaf.sharding), tree)


def test_a_background_save_writes_the_state_as_it_was_when_save_returned(tmp_path):
  # The loop's next step donates the state's buffers as soon as `save` returns; the checkpoint must still hold
  # the values of the saved step, so the save works from its own device copy.
  from jax_ssl.train import checkpoint

  manager = checkpoint.Checkpointer(tmp_path / "checkpoints", save_every=10, keep=3, background=True)
  tree = _tree()
  expected = {name: np.asarray(leaf) for name, leaf in tree.items()}
  assert manager.save(10, tree) and not manager.save(11, tree), "step 11 is neither due nor forced"
  for leaf in tree.values():
    leaf.delete()  # what donation does to the caller's arrays
  assert manager.save(13, _tree(), force=True)
  manager.wait()
  step, restored = manager.restore_state(10, _abstract_tree(_tree()))
  manager.close()
  assert step == 10
  for name, value in expected.items():
    np.testing.assert_array_equal(np.asarray(restored[name]), value)
  assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [10, 13]


def test_a_failed_background_save_is_raised_by_the_next_save_or_wait(tmp_path):
  import errno

  from jax_ssl.train import checkpoint

  manager = checkpoint.Checkpointer(tmp_path / "checkpoints", save_every=1, keep=3, background=True)

  def full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  manager._manager.save = full_disk
  manager.save(1, _tree())
  with pytest.raises(OSError, match="No space left"):
    manager.wait()
  manager.wait()  # the error is raised once, not again by every later call
  manager.save(2, _tree())
  manager._pending.exception()  # let the failing save finish, so the next save finds it done
  with pytest.raises(OSError, match="No space left"):
    manager.save(3, _tree())
  manager.close()


@pytest.mark.parametrize("images,message", [
    (np.full((2, 8, 8, 3), 200.0, np.float32), r"float images must lie in \[0, 1\], got values in \[200, 200\]; "
                                                r"give \[0, 255\] images as uint8"),
    (np.full((2, 8, 8, 3), np.nan, np.float32), "images contain NaN or inf"),
    (np.zeros((2, 8, 8, 1), np.uint8), r"must be a \(N, H, W, 3\) batch, channels last; got shape \(2, 8, 8, 1\)"),
    (np.zeros((2, 8, 8, 4), np.uint8), r"must be a \(N, H, W, 3\) batch, channels last; got shape \(2, 8, 8, 4\)"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"got shape \(2, 3, 8, 8\) \(channels first\? move them last\)"),
    (np.zeros((2, 8, 8, 3), np.int64), r"images must be uint8 in \[0, 255\] or float in \[0, 1\]; got dtype int64"),
    (np.zeros((8, 8, 3), np.uint8), r"images must be a \(N, H, W, 3\) batch"),
])
def test_an_encoder_names_what_is_wrong_with_its_images(images, message, bundled_dir):
  from jax_ssl.train import encoder as encoder_lib
  encoder = encoder_lib.initial_encoder(_smoke(bundled_dir, 1))
  with pytest.raises(ValueError, match=message) as refused:
    encoder(images)
  assert "\n" not in str(refused.value)


def test_an_encoder_takes_an_empty_batch_and_both_ranges(bundled_dir):
  from jax_ssl.train import encoder as encoder_lib
  encoder = encoder_lib.initial_encoder(_smoke(bundled_dir, 1))
  assert encoder(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, encoder.num_features)
  images = sources.load_numpy("digits", "test", bundled_dir)["image"][:4]
  np.testing.assert_allclose(encoder(images.astype(np.float64) / 255.0), encoder(images), rtol=1e-5, atol=1e-6)


def test_without_config_json_only_checkpoints_that_record_their_config_are_resumed(tmp_path, bundled_dir):
  from jax_ssl.train import workdir as workdir_lib
  loop.train(_smoke(bundled_dir, 1), tmp_path)
  first = json.loads((tmp_path / "config.json").read_text())
  (tmp_path / "config.json").unlink()
  assert jax_ssl.load_encoder(tmp_path).config.model.width == first["model"]["width"], "read from the checkpoint"
  wider = _smoke(bundled_dir, 2)
  wider.model.width = 16
  with pytest.raises(workdir_lib.ConfigMismatchError, match=r"model.width \(8 -> 16\)"):
    loop.train(wider, tmp_path)
  summary = loop.train(_smoke(bundled_dir, 2), tmp_path)
  assert summary["step"] == 2 and json.loads((tmp_path / "config.json").read_text()) == first
  assert not (tmp_path / "checkpoints" / "unreadable").exists()
  # Checkpoints whose record is lost (as ones written before checkpoints carried it): nothing to compare with.
  (tmp_path / "config.json").unlink()
  for meta in (tmp_path / "checkpoints").glob("*/meta"):
    shutil.rmtree(meta)
  with pytest.raises(workdir_lib.ConfigMismatchError, match="holds checkpoints but no config.json, and none of them "
                                                            "records the config"):
    loop.train(_smoke(bundled_dir, 3), tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["1", "2"]
