"""Two processes joined by jax.distributed (CPU, gloo) train two steps like one process with two devices."""

import socket

import numpy as np
import pytest

from tests.train import cli


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    return sock.getsockname()[1]


@pytest.mark.parametrize("on_device", ["true", "false"])
def test_two_processes_agree_with_one(on_device, tmp_path, bundled_dir):
  args = lambda workdir: cli.smoke_args(workdir, bundled_dir, "--config.train.num_steps=2",  # noqa: E731
                                        f"--config.data.on_device={on_device}", "--config.data.worker_count=0")
  single = cli.run(args(tmp_path / "single"), devices=2)
  assert single.returncode == 0, single.stderr[-2000:]

  port = _free_port()
  processes = [
      cli.start(args(tmp_path / "multi"), devices=1, JAX_SSL_COORDINATOR=f"localhost:{port}",
                JAX_SSL_NUM_PROCESSES="2", JAX_SSL_PROCESS_ID=str(index))
      for index in range(2)]
  outputs = [process.communicate(timeout=600)[0] for process in processes]
  for process, output in zip(processes, outputs):
    assert process.returncode == 0, output[-3000:]
  assert "over 2 devices" in outputs[0] and "completed at step 2/2" in outputs[0]

  expected = cli.flat(cli.saved_state(tmp_path / "single", 2))
  actual = cli.flat(cli.saved_state(tmp_path / "multi", 2))
  assert expected.keys() == actual.keys()
  # Tolerance: gloo's all-reduce may sum in another order than one process's reduction.
  for key in expected:
    np.testing.assert_allclose(actual[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
