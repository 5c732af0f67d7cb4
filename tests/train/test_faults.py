"""The faults a long pretraining job meets, as a user meets them through `python -m jax_ssl.main`.

Each test asserts what the user sees (the exit code, one line naming the
problem and what to do) and that no checkpointed work is lost.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from configs import common
from jax_ssl.train import loop
from jax_ssl.train import monitor
from jax_ssl.train import signals
from tests.train import cli
from tests.train import test_multiprocess


def _errors(result: subprocess.CompletedProcess) -> list[str]:
  return [line for line in result.stderr.splitlines() if line.startswith("jax_ssl:")]


def _checkpoints(workdir) -> list[str]:
  return sorted(p.name for p in (workdir / "checkpoints").iterdir())


def test_a_changed_byte_is_caught_a_changed_config_refused_and_a_deleted_config_restored(tmp_path, bundled_dir):
  workdir = tmp_path / "run"
  first = cli.run(cli.smoke_args(workdir, bundled_dir, "--config.train.num_steps=2"))
  assert first.returncode == 0, first.stderr[-2000:]
  assert json.loads((workdir / "data_feed.json").read_text()) == {"on_device": True}, "auto's choice is recorded"
  trained = cli.flat(cli.saved_state(workdir, 2))

  # The newest checkpoint, the run's last step, has one byte changed: Orbax reads it, with other values.
  cli.flip_a_byte_silently(workdir / "checkpoints" / "2")
  rerun = cli.run(cli.smoke_args(workdir, bundled_dir, "--config.train.num_steps=2"))
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert "resuming at step 1 of 2" in rerun.stdout and "completed at step 2/2" in rerun.stdout
  warnings = [line for line in rerun.stderr.splitlines() if line.strip()]
  assert len(warnings) == 1, rerun.stderr[-3000:]
  assert "checkpoint at step 2" in warnings[0] and "differ from the checksums saved with them" in warnings[0]
  assert _checkpoints(workdir) == ["1", "2", "unreadable"]
  assert (workdir / "checkpoints" / "unreadable" / "2" / "state").is_dir(), "moved aside, not deleted"
  retrained = cli.flat(cli.saved_state(workdir, 2))
  assert retrained.keys() == trained.keys()
  for key in trained:
    np.testing.assert_array_equal(retrained[key], trained[key], err_msg=key)  # resumed from step 1 bit for bit
  assert [record["step"] for record in monitor.read_metrics(workdir)] == [1, 2]
  assert [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
  first_config = (workdir / "config.json").read_text()

  # Fields the checkpoints depend on: refused before anything is restored, nothing touched.
  changed = ["--config.train.num_steps=2", "--config.train.global_batch_size=32", "--config.model.width=16"]
  refused = cli.run(cli.smoke_args(workdir, bundled_dir, *changed))
  assert refused.returncode == 2, refused.stderr[-2000:]
  assert len(_errors(refused)) == 1, refused.stderr[-2000:]
  line = _errors(refused)[0]
  assert "model.width (8 -> 16)" in line and "train.global_batch_size (16 -> 32)" in line and str(workdir) in line
  assert _checkpoints(workdir) == ["1", "2", "unreadable"] and (workdir / "config.json").read_text() == first_config

  # Without config.json the checkpoints' own record of the config is compared: the same refusal.
  (workdir / "config.json").unlink()
  refused = cli.run(cli.smoke_args(workdir, bundled_dir, *changed))
  assert refused.returncode == 2 and "model.width (8 -> 16)" in _errors(refused)[0], refused.stderr[-2000:]
  assert "the config saved with its newest checkpoint" in _errors(refused)[0]
  assert _checkpoints(workdir) == ["1", "2", "unreadable"] and not (workdir / "config.json").exists()

  # Fields that may change, the learning rate and clipping among them (the remedy after a NaN): accepted,
  # the deleted config.json written back from the checkpoint, the changes recorded once.
  extended = cli.run(cli.smoke_args(workdir, bundled_dir, "--config.train.num_steps=3", "--config.train.log_every=3",
                                    "--config.optim.base_lr=0.1", "--config.optim.grad_clip_norm=1.0"))
  assert extended.returncode == 0, extended.stderr[-2000:]
  assert "config.json was missing: written back" in extended.stdout
  assert "resuming at step 2 of 3" in extended.stdout and "completed at step 3/3" in extended.stdout
  assert json.loads((workdir / "config.json").read_text()) == json.loads(first_config)
  history = [json.loads(line) for line in (workdir / "config_history.jsonl").read_text().splitlines()]
  assert len(history) == 1 and history[0]["resumed_at_step"] == 2
  assert history[0]["changes"] == {"train.num_steps": {"from": 2, "to": 3}, "train.log_every": {"from": 1, "to": 3},
                                   "optim.base_lr": {"from": 0.3, "to": 0.1},
                                   "optim.grad_clip_norm": {"from": 0.0, "to": 1.0}}


def test_a_resumed_run_keeps_the_feed_that_auto_chose(tmp_path, bundled_dir):
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  assert config.data.on_device == "auto"
  fresh = loop.Run(config, tmp_path / "fresh")
  assert fresh.on_device, "digits fits on the devices"
  fresh.checkpointer.close()
  # A run that started where the split did not fit keeps the host feed, and so its data order.
  (tmp_path / "resumed").mkdir()
  (tmp_path / "resumed" / "data_feed.json").write_text('{"on_device": false}')
  resumed = loop.Run(config, tmp_path / "resumed")
  assert not resumed.on_device
  resumed.checkpointer.close()


def test_a_bad_config_argument_is_one_line_naming_the_valid_ones(tmp_path, bundled_dir):
  result = cli.run(cli.smoke_args(tmp_path, bundled_dir, config="configs/default.py:smok"))
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      "jax_ssl: config error in --config configs/default.py:smok: unknown config argument 'smok'; "
      "this config takes: smoke, first_half, second_half, key=value."]


def test_a_full_disk_is_one_line_and_the_last_complete_checkpoint_survives(tmp_path, bundled_dir):
  # A 320 KiB tmpfs (in a private mount namespace, so no privilege is needed) holds the
  # first checkpoint (about 190 KiB) but not the second.
  if shutil.which("unshare") is None:
    pytest.fail("the test needs util-linux's `unshare` to mount a small filesystem")
  mount, kept = tmp_path / "disk", tmp_path / "copy"
  mount.mkdir()
  kept.mkdir()
  command = " ".join(cli.smoke_args(mount / "run", bundled_dir, "--config.train.num_steps=4"))
  script = (f"mount -t tmpfs -o size=320k tmpfs {mount} && {{ {command}; echo \"rc=$?\" >&2; }}; "
            f"cp -a {mount}/run {kept}/")
  result = cli.run(["unshare", "--mount", "--map-root-user", "sh", "-c", script])
  assert "rc=1" in result.stderr, result.stderr[-3000:]
  assert len(_errors(result)) == 1 and len(result.stderr.strip().splitlines()) == 2, result.stderr[-3000:]
  line = _errors(result)[0]
  assert "the disk is full" in line and "step 1, is intact" in line and "error.log" in line, line
  saved = kept / "run"
  assert _checkpoints(saved) == ["1"], "the failed save leaves no partial files, the complete one stays"
  assert cli.flat(cli.saved_state(saved, 1)), "the last complete checkpoint reads back"
  assert "No space left on device" in (saved / "error.log").read_text()


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, bundled_dir):
  args = cli.paused_args(tmp_path / "once", bundled_dir, 2, "--config.train.num_steps=3",
                         "--config.train.checkpoint_every=100")
  process = cli.start(args)
  cli.wait_for_line(process, "paused after step 2")
  process.send_signal(signal.SIGINT)
  output, _ = process.communicate(timeout=120)
  assert process.returncode == 130, output[-2000:]
  assert "SIGINT: saved a checkpoint at step 2" in output and "rerun the same command to resume" in output
  assert "Traceback" not in output and "2" in _checkpoints(tmp_path / "once")


def test_a_second_ctrl_c_interrupts_at_once():
  # Whatever SIGINT did before (Python's KeyboardInterrupt, or ignored in a background job) comes back.
  previous = signal.getsignal(signal.SIGINT)
  stop_signals = signals.StopSignals()
  try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs between bytecodes of the main thread
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)
    assert stop_signals.received == "SIGTERM", "the first signal names the stop"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)
  finally:
    stop_signals.restore()
  stop_signals = signals.StopSignals()
  try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)
    assert stop_signals.received == "SIGINT"
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)
  finally:
    stop_signals.restore()
  # The command line's second Ctrl-C ends the process in one line (jax_ssl.command.stop_now) instead of raising.
  stopped = []
  stop_signals = signals.StopSignals(on_second_interrupt=lambda: stopped.append(True))
  try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.01)
    assert stop_signals.received == "SIGINT" and not stopped
    with pytest.raises(KeyboardInterrupt):  # reached only because this callback returns
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(1)
    assert stopped == [True]
  finally:
    stop_signals.restore()
  assert signal.getsignal(signal.SIGINT) is previous


def test_the_survivor_of_a_killed_process_stops_with_one_line(tmp_path, bundled_dir):
  port = test_multiprocess._free_port()
  args = cli.paused_args(tmp_path, bundled_dir, 1, "--config.train.num_steps=3",
                         "--config.train.peer_timeout_seconds=3")
  processes = [cli.start(args, devices=1, JAX_SSL_COORDINATOR=f"localhost:{port}", JAX_SSL_NUM_PROCESSES="2",
                         JAX_SSL_PROCESS_ID=str(index)) for index in range(2)]
  try:
    cli.wait_for_line(processes[0], "paused after step 1")
    processes[1].kill()
    killed_at = time.monotonic()
    output, _ = processes[0].communicate(timeout=60)
    elapsed = time.monotonic() - killed_at
  finally:
    for process in processes:
      process.kill()
  assert processes[0].returncode == 1, output[-3000:]
  assert elapsed < 20, f"the survivor took {elapsed:.0f} s to stop"
  lines = [line for line in output.splitlines() if line.startswith("jax_ssl:")]
  assert len(lines) == 1 and "process 1 of 2 stopped" in lines[0] and "resume" in lines[0], output[-3000:]
  assert "Fatal Python error" not in output and "Traceback" not in output, output[-3000:]
  assert "1" in _checkpoints(tmp_path), "the checkpoint before the failure is kept"
