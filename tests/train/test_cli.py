"""`python -m jax_ssl.main`: bad configs exit 2 with one line; a run resumes bit for bit after SIGKILL or SIGTERM."""

import signal

import numpy as np
import pytest

from tests.train import cli


@pytest.mark.parametrize("overrides,message", [
    (["--config.model.widht=3"], "unknown config key 'model.widht'"),
    (["--config.train.log_every=often"], "bad flag"),
    (["--config.method.name=moco"], "config error: unknown method 'moco'"),
    (["--config.train.global_batch_size=12"], "train.global_batch_size = 12 does not divide over the 8 devices"),
    (["--config.data.name=cifar100", "--config.data.data_dir=/nonexistent"],
     "data error: dataset 'cifar100' (tfds 'cifar100', split 'train') is not prepared in /nonexistent"),
])
def test_bad_config_exits_2_with_one_line(overrides, message, tmp_path, bundled_dir):
  args = cli.smoke_args(tmp_path / "run", bundled_dir, *overrides)
  if "--config.data.data_dir=/nonexistent" in overrides:
    args.remove(f"--config.data.data_dir={bundled_dir}")
  result = cli.run(args, devices=8)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")]
  assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
  assert not (tmp_path / "run" / "checkpoints").exists(), "nothing may run before the config is valid"


def test_missing_config_file_exits_2(tmp_path):
  result = cli.run([*cli.smoke_args(tmp_path, tmp_path, config="configs/nope.py")])
  assert result.returncode == 2
  assert "jax_ssl: cannot load the config" in result.stderr and "nope.py" in result.stderr


def test_sigkill_after_a_checkpoint_then_resume_is_bit_exact(tmp_path, bundled_dir):
  # The device-resident path (digits fit). The host path's position after a resume is
  # tests/data/test_feed.py's; its 2-process run is tests/train/test_multiprocess.py's.
  steps = ["--config.train.num_steps=4", "--config.data.on_device=true"]
  full = cli.run(cli.smoke_args(tmp_path / "full", bundled_dir, *steps))
  assert full.returncode == 0, full.stderr[-2000:]

  killed = cli.start(cli.smoke_args(tmp_path / "killed", bundled_dir, *steps, "--config.debug.pause_after_step=2"))
  cli.wait_for_line(killed, "paused after step 2")
  killed.kill()  # SIGKILL: no handler runs
  killed.wait()
  resumed = cli.run(cli.smoke_args(tmp_path / "killed", bundled_dir, *steps))
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "resuming at step 2 of 4" in resumed.stdout

  expected, actual = cli.flat(cli.saved_state(tmp_path / "full", 4)), cli.flat(cli.saved_state(tmp_path / "killed", 4))
  assert expected.keys() == actual.keys()
  for key in expected:
    np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_sigterm_saves_and_exits_cleanly_and_the_run_resumes(tmp_path, bundled_dir):
  steps = ["--config.train.num_steps=3", "--config.train.checkpoint_every=100"]  # no periodic save before SIGTERM
  process = cli.start(cli.smoke_args(tmp_path, bundled_dir, *steps, "--config.debug.pause_after_step=2"))
  cli.wait_for_line(process, "paused after step 2")
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output[-2000:]
  assert "SIGTERM: saved a checkpoint at step 2" in output
  # Step 2 is not a periodic save (every 100 steps): only the SIGTERM handler wrote it.
  assert "2" in [p.name for p in (tmp_path / "checkpoints").iterdir()]
  resumed = cli.run(cli.smoke_args(tmp_path, bundled_dir, *steps))
  assert resumed.returncode == 0 and "resuming at step 2 of 3" in resumed.stdout
  assert "completed at step 3/3" in resumed.stdout


def test_nan_loss_stops_with_the_step_and_terms_named(tmp_path, bundled_dir):
  # A learning rate of 1e30 blows the parameters up in the first update: step 2 is non-finite.
  result = cli.run(cli.smoke_args(tmp_path, bundled_dir, "--config.train.num_steps=4", "--config.optim.name=adamw",
                                  "--config.optim.base_lr=1e30"))
  assert result.returncode == 1
  line = [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")][-1]
  assert "training stopped: non-finite values at step 2:" in line and "loss" in line
  saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == ["1"], "the non-finite step must not be saved"
  np.testing.assert_array_equal(np.isfinite(np.concatenate(
      [a.ravel() for a in cli.flat(cli.saved_state(tmp_path, 1)).values() if a.dtype.kind == "f"])), True)
