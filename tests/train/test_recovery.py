"""A corrupt latest checkpoint is skipped with a warning; load_encoder gives the trained backbone."""

import logging

import numpy as np
import pytest

import jax_ssl
from jax_ssl.data import sources
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop


def _smoke(bundled_dir, steps):
  config = config_lib.smoke(__import__("configs.default", fromlist=["get_config"]).get_config())
  config.data.data_dir = str(bundled_dir)
  config.train.num_steps = steps
  config.eval.report = False
  return config


def test_corrupt_latest_checkpoint_is_skipped(tmp_path, bundled_dir, caplog):
  loop.train(_smoke(bundled_dir, 2), tmp_path)
  for path in (tmp_path / "checkpoints" / "2" / "state").rglob("*"):
    if path.is_file():
      path.write_bytes(b"\x00garbage")
  with caplog.at_level(logging.WARNING, logger="jax_ssl.train.checkpoint"):
    summary = loop.train(_smoke(bundled_dir, 3), tmp_path)
  assert "checkpoint at step 2" in caplog.text and "unreadable" in caplog.text
  assert summary["status"] == "completed" and summary["step"] == 3
  metrics = [line for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert sum('"step": 2' in line for line in metrics) == 2, "step 2 is trained again after resuming from step 1"


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
