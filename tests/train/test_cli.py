"""`python -m jax_ssl.main`: bad configs exit 2 with one line; a run resumes bit for bit after SIGKILL or SIGTERM."""

import json
import signal
import time

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
    (["--config.train.global_batch_size=1"], "train.global_batch_size = 1 is too small"),
    (["--config.train.global_batch_size=4096"],
     "data error: train.global_batch_size = 4096 is larger than the 1437 training images of digits"),
    (["--config.data.classes=3-3", "--config.train.global_batch_size=512"],
     "data error: train.global_batch_size = 512 is larger than the 146 training images of classes 3-3 of digits"),
    (["--config.optim.base_lr=nan"], "config error: optim.base_lr must be a finite number, got nan."),
    (["--config.optim.base_lr=1e40"], "config error: optim.base_lr = 1e+40 gives a peak learning rate of 6.25e+38"),
    (["--config.train.peer_timeout_seconds=inf"], "train.peer_timeout_seconds must be a finite number, got inf."),
    (["--config.seed=x"], "bad flag: flag --config.seed=x: invalid literal for int() with base 10: 'x'"),
])
def test_bad_config_exits_2_with_one_line(overrides, message, tmp_path, bundled_dir):
  args = cli.smoke_args(tmp_path / "run", bundled_dir, *overrides)
  if "--config.data.data_dir=/nonexistent" in overrides:
    args.remove(f"--config.data.data_dir={bundled_dir}")
  result = cli.run(args, devices=8)
  assert result.returncode == 2, result.stderr[-2000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")]
  assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert not (tmp_path / "run" / "checkpoints").exists(), "nothing may run before the config is valid"


def _one_line(result, code: int) -> str:
  """The single line a refused command printed, after checking its exit code and that nothing else was said."""
  assert result.returncode == code, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  errors = [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")]
  assert len(errors) == 1, result.stderr[-3000:]
  return errors[0]


def test_an_infinite_learning_rate_saves_nothing_and_a_rerun_says_the_same(tmp_path, bundled_dir):
  args = cli.smoke_args(tmp_path / "run", bundled_dir, "--config.optim.base_lr=inf")
  lines = [_one_line(cli.run(args), 2) for _ in range(2)]
  assert lines[0] == lines[1] == "jax_ssl: config error: optim.base_lr must be a finite number, got inf."
  assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("environ,message", [
    ({"JAX_SSL_COORDINATOR": "localhost:1"}, "environment error: JAX_SSL_COORDINATOR is set but "
                                             "JAX_SSL_NUM_PROCESSES is not"),
    ({"JAX_SSL_COORDINATOR": "localhost:1", "JAX_SSL_NUM_PROCESSES": "two", "JAX_SSL_PROCESS_ID": "0"},
     "environment error: JAX_SSL_NUM_PROCESSES='two' is not an integer"),
    ({"JAX_SSL_NUM_PROCESSES": "2"}, "environment error: JAX_SSL_NUM_PROCESSES set without JAX_SSL_COORDINATOR"),
])
def test_inconsistent_multi_host_variables_exit_2(environ, message, tmp_path, bundled_dir):
  line = _one_line(cli.run(cli.smoke_args(tmp_path / "run", bundled_dir), **environ), 2)
  assert message in line and not (tmp_path / "run").exists()


def test_a_workdir_that_is_a_file_under_a_file_or_read_only_exits_2(tmp_path, bundled_dir):
  (tmp_path / "file").write_text("")
  line = _one_line(cli.run(cli.smoke_args(tmp_path / "file", bundled_dir)), 2)
  assert line == f"jax_ssl: workdir error: --workdir {tmp_path / 'file'} is a file, not a directory: give a " \
                 "directory (new or a run's)."
  line = _one_line(cli.run(cli.smoke_args(tmp_path / "file" / "run", bundled_dir)), 2)
  assert f"cannot be created: {tmp_path / 'file'} is a file" in line
  # A read-only filesystem (a tmpfs remounted read-only in a private mount namespace: no privilege needed),
  # for a workdir that exists and one that does not.
  mount = tmp_path / "disk"
  mount.mkdir()
  script = f"mount -t tmpfs tmpfs {mount} && mkdir {mount}/existing && mount -o remount,ro {mount}"
  for name in ("existing", "new/run"):
    command = " ".join(cli.smoke_args(mount / name, bundled_dir))
    result = cli.run(["unshare", "--mount", "--map-root-user", "sh", "-c", f"{script} && {command}"])
    assert f"--workdir {mount / name} is not writable (Read-only file system)" in _one_line(result, 2)


def test_a_config_file_without_get_config_or_returning_a_dict_exits_2(tmp_path):
  (tmp_path / "nothing.py").write_text("CONFIG = 1\n")
  (tmp_path / "plain.py").write_text("def get_config(arg=None):\n  return {'seed': 0}\n")
  line = _one_line(cli.run(cli.smoke_args(tmp_path / "run", tmp_path, config=str(tmp_path / "nothing.py"))), 2)
  assert f"the config file {tmp_path / 'nothing.py'} defines no get_config(arg=None)" in line
  line = _one_line(cli.run(cli.smoke_args(tmp_path / "run", tmp_path, config=str(tmp_path / "plain.py"))), 2)
  assert "returned a dict, not an ml_collections.ConfigDict" in line


def test_ctrl_c_while_starting_is_one_line_and_code_130(tmp_path, bundled_dir):
  process = cli.start(cli.smoke_args(tmp_path / "run", bundled_dir))
  time.sleep(1.0)  # importing JAX and the config, before training begins
  process.send_signal(signal.SIGINT)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 130, output[-2000:]
  lines = [line for line in output.splitlines() if line.startswith("jax_ssl:")]
  assert len(lines) == 1 and "stopped by Ctrl-C" in lines[0] and "Traceback" not in output, output[-2000:]


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

  killed = cli.start(cli.paused_args(tmp_path / "killed", bundled_dir, 2, *steps))
  cli.wait_for_line(killed, "paused after step 2")
  killed.kill()  # SIGKILL: no handler runs
  killed.wait()
  resumed = cli.run(cli.smoke_args(tmp_path / "killed", bundled_dir, *steps))
  assert resumed.returncode == 0, resumed.stderr[-2000:]  # the killed run's lock went with it
  assert "resuming at step 2 of 4" in resumed.stdout and (tmp_path / "killed" / "run.lock").exists()
  logged = [json.loads(line)["step"] for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
  assert logged == [1, 2, 3, 4], "every step appears once"

  expected, actual = cli.flat(cli.saved_state(tmp_path / "full", 4)), cli.flat(cli.saved_state(tmp_path / "killed", 4))
  assert expected.keys() == actual.keys()
  for key in expected:
    np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_sigterm_saves_and_exits_cleanly_and_the_run_resumes(tmp_path, bundled_dir):
  steps = ["--config.train.num_steps=3", "--config.train.checkpoint_every=100"]  # no periodic save before SIGTERM
  process = cli.start(cli.paused_args(tmp_path, bundled_dir, 2, *steps))
  cli.wait_for_line(process, "paused after step 2")
  # A second run on the same workdir is refused, naming the first, which goes on untouched.
  second = cli.run(cli.smoke_args(tmp_path, bundled_dir, *steps))
  line = _one_line(second, 2)
  assert f"workdir error: {tmp_path} is in use by another run (process {process.pid} on " in line, line
  process.send_signal(signal.SIGTERM)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 0, output[-2000:]
  assert "SIGTERM: saved a checkpoint at step 2" in output
  assert [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
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
  line = _one_line(result, 1)
  assert "training stopped: non-finite values at step 2:" in line and "loss" in line
  assert f"the last checkpoint, step 1, is in {tmp_path / 'checkpoints'}: rerun with a lower" in line
  saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == ["1"], "the non-finite step must not be saved"
  np.testing.assert_array_equal(np.isfinite(np.concatenate(
      [a.ravel() for a in cli.flat(cli.saved_state(tmp_path, 1)).values() if a.dtype.kind == "f"])), True)
