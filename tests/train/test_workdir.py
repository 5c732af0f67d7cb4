"""A workdir holds one run at a time, is checked before anything runs, and its metrics hold each step once."""

import json
import os
import signal
import subprocess
import sys

import pytest

from jax_ssl import command
from jax_ssl import main as main_lib
from jax_ssl.train import monitor
from jax_ssl.train import workdir as workdir_lib
from tests.train import cli


def test_a_second_lock_on_a_workdir_is_refused_naming_the_holder(tmp_path):
  with workdir_lib.WorkdirLock(tmp_path / "run"):
    with pytest.raises(workdir_lib.WorkdirInUseError) as refused:
      workdir_lib.WorkdirLock(tmp_path / "run").acquire()
    message = str(refused.value)
    assert f"{tmp_path / 'run'} is in use by another run (process {os.getpid()} on " in message
    assert "use another --workdir" in message and "\n" not in message
  with workdir_lib.WorkdirLock(tmp_path / "run"):  # released at the end of the block
    holder = json.loads((tmp_path / "run" / workdir_lib.LOCK_FILE).read_text())
  assert holder["pid"] == os.getpid() and holder["command"]


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
  script = ("import sys, time; from jax_ssl.train import workdir; lock = workdir.WorkdirLock(sys.argv[1]); "
            "lock.acquire(); print('locked', flush=True); time.sleep(60)")
  holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=cli.REPO, env=cli.environment())
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(workdir_lib.WorkdirInUseError, match=f"process {holder.pid} on "):
      workdir_lib.WorkdirLock(tmp_path).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  finally:
    holder.kill()
  lock = workdir_lib.WorkdirLock(tmp_path)
  lock.acquire()  # the kernel released the dead process's lock
  lock.release()
  assert (tmp_path / workdir_lib.LOCK_FILE).exists(), "the file stays; only the lock goes"


def test_a_workdir_that_cannot_hold_a_run_is_one_line(tmp_path):
  (tmp_path / "file").write_text("")
  with pytest.raises(workdir_lib.WorkdirError, match="is a file, not a directory"):
    workdir_lib.check_writable(tmp_path / "file")
  with pytest.raises(workdir_lib.WorkdirError, match=f"cannot be created: {tmp_path / 'file'} is a file"):
    workdir_lib.check_writable(tmp_path / "file" / "run" / "deeper")
  workdir_lib.check_writable(tmp_path / "new" / "run")
  assert (tmp_path / "new" / "run").is_dir()


def test_resuming_drops_the_records_of_the_steps_it_trains_again(tmp_path):
  lines = [json.dumps({"step": step, "loss": float(step)}) for step in (1, 2, 3, 4, 5)]
  (tmp_path / monitor.METRICS_FILE).write_text("\n".join(lines) + '\n{"step": 6, "lo')  # cut short by a kill
  assert monitor.drop_records_after(tmp_path, 3) == 3
  assert [record["step"] for record in monitor.read_metrics(tmp_path)] == [1, 2, 3]
  assert monitor.drop_records_after(tmp_path, 3) == 0
  assert monitor.drop_records_after(tmp_path / "nothing", 3) == 0

  (tmp_path / "tensorboard").mkdir()
  writer = monitor.Monitor(tmp_path, total_steps=9, images_per_step=4, enabled=True, resume_step=2)
  writer.write(3, {"loss": 0.5})
  writer.close()
  assert [record["step"] for record in monitor.read_metrics(tmp_path)] == [1, 2, 3]
  assert [record["loss"] for record in monitor.read_metrics(tmp_path)] == [1.0, 2.0, 0.5]


@pytest.mark.parametrize("environ,message", [
    ({"JAX_SSL_COORDINATOR": "localhost:1234"}, "JAX_SSL_COORDINATOR is set but JAX_SSL_NUM_PROCESSES is not"),
    ({"JAX_SSL_COORDINATOR": "localhost:1234", "JAX_SSL_NUM_PROCESSES": "2"},
     "JAX_SSL_COORDINATOR is set but JAX_SSL_PROCESS_ID is not"),
    ({"JAX_SSL_COORDINATOR": "localhost:1234", "JAX_SSL_NUM_PROCESSES": "two", "JAX_SSL_PROCESS_ID": "0"},
     "JAX_SSL_NUM_PROCESSES='two' is not an integer"),
    ({"JAX_SSL_COORDINATOR": "localhost:1234", "JAX_SSL_NUM_PROCESSES": "2", "JAX_SSL_PROCESS_ID": "2"},
     r"JAX_SSL_PROCESS_ID=2 must be in \[0, 1\]"),
    ({"JAX_SSL_COORDINATOR": "localhost:1234", "JAX_SSL_NUM_PROCESSES": "0", "JAX_SSL_PROCESS_ID": "0"},
     "JAX_SSL_NUM_PROCESSES=0 must be at least 1"),
    ({"JAX_SSL_COORDINATOR": "localhost", "JAX_SSL_NUM_PROCESSES": "2", "JAX_SSL_PROCESS_ID": "0"},
     "JAX_SSL_COORDINATOR='localhost' is not host:port"),
    ({"JAX_SSL_NUM_PROCESSES": "2"}, "JAX_SSL_NUM_PROCESSES set without JAX_SSL_COORDINATOR"),
    ({"JAX_SSL_DISTRIBUTED": "yes"}, "JAX_SSL_DISTRIBUTED='yes': its only value is 'auto'"),
    ({"JAX_SSL_DISTRIBUTED": "auto", "JAX_SSL_PROCESS_ID": "1"}, "use one way or the other"),
])
def test_inconsistent_multi_host_variables_are_one_line(environ, message):
  with pytest.raises(main_lib.DistributedSettingsError, match=message) as error:
    main_lib.distributed_from_environment(environ)
  assert "\n" not in str(error.value)


def test_consistent_multi_host_variables_are_read():
  assert main_lib.distributed_from_environment({}) is None
  assert main_lib.distributed_from_environment({"JAX_SSL_DISTRIBUTED": "auto"}) == main_lib.Distributed(auto=True)
  assert main_lib.distributed_from_environment(
      {"JAX_SSL_COORDINATOR": "node0:12355", "JAX_SSL_NUM_PROCESSES": "4", "JAX_SSL_PROCESS_ID": "3"}
  ) == main_lib.Distributed("node0:12355", 4, 3)


def test_one_line_keeps_the_quotes_inside_a_message():
  assert command.one_line(KeyError("unknown key 'model.nope'")) == "unknown key 'model.nope'"
  quoted = "invalid literal for int() with base 10: 'x'"
  assert command.one_line(quoted) == quoted
  assert command.one_line(ValueError("two\n  lines")) == "two lines"


def test_ctrl_c_outside_training_is_one_line_and_code_130():
  script = ("import os, signal, time; from jax_ssl import command; command.exit_on_ctrl_c('stopped here.'); "
            "os.kill(os.getpid(), signal.SIGINT); time.sleep(30)")
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cli.REPO,
                          env=cli.environment(), timeout=60)
  assert result.returncode == 130 and result.stderr == "jax_ssl: stopped here.\n"
