"""The loop dispatches steps without waiting: same parameters as a loop that syncs every step; NaN caught on device."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import common
from jax_ssl.train import loop
from jax_ssl.train import optim
from tests.train import cli


def _by_path(flat: dict) -> dict:
  """Keys as module paths: Orbax writes ['convs']['0']['kernel']['value'] where nnx has ['convs'][0]['kernel'].value."""
  return {"/".join(name for name in re.findall(r"\w+", key) if name != "value"): value for key, value in flat.items()}


def _config(bundled_dir, on_device, steps=6):
  config = common.smoke(common.bundled_base("vicreg"))
  config.data.update(data_dir=str(bundled_dir), on_device=on_device, worker_count=0)
  config.train.update(num_steps=steps, log_every=3, checkpoint_every=3)
  config.eval.report = False
  return config


@pytest.mark.parametrize("on_device", ["true", "false"])
def test_async_loop_gives_the_parameters_of_a_loop_that_syncs_every_step(on_device, bundled_dir, tmp_path):
  config = _config(bundled_dir, on_device)
  summary = loop.train(config, tmp_path / "async")
  assert summary["status"] == "completed"
  reference = loop.Run(config, tmp_path / "reference")
  assert reference.on_device == (on_device == "true")
  reference.restore()
  for _ in range(6):
    metrics = jax.device_get(reference.step_once())  # wait for every step, as the loop did before
    assert metrics["finite"]
  reference.stop_feed()
  reference.checkpointer.close()
  saved = _by_path(cli.flat(cli.saved_state(tmp_path / "async", 6)["params"]))
  expected = _by_path(cli.flat(jax.device_get(reference.state.params)))
  assert saved.keys() == expected.keys()
  for key in saved:
    np.testing.assert_array_equal(saved[key], expected[key], err_msg=key)


def test_a_nan_at_a_known_step_stops_the_run_before_anything_after_it_is_saved(bundled_dir, tmp_path, monkeypatch):
  config = _config(bundled_dir, "true", steps=9)
  config.train.checkpoint_every = 2
  make_train_step = loop.step_lib.make_train_step

  def poisoned_at_step_5(step_config):  # the step's loss turns NaN at step 5 only; the state stays finite
    train_step = make_train_step(step_config)

    def step(state, batch):
      state, metrics = train_step(state, batch)
      bad = state.step == 5
      return state, {**metrics, "loss": jnp.where(bad, jnp.nan, metrics["loss"]), "finite": metrics["finite"] & ~bad}

    return step

  monkeypatch.setattr(loop.step_lib, "make_train_step", poisoned_at_step_5)
  with pytest.raises(loop.NonFiniteError, match=r"non-finite values at step 5: .*loss=nan"):
    loop.train(config, tmp_path)
  saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert saved == [2, 4], "step 6 was due but follows the bad step 5: it must not be saved"
  state = cli.flat(cli.saved_state(tmp_path, 4))
  assert all(np.all(np.isfinite(leaf)) for leaf in state.values() if leaf.dtype.kind == "f")
  # The run stopped at the logging step after the bad one (log_every = 3), not at the end.
  assert [r["step"] for r in loop.monitor_lib.read_metrics(tmp_path)] == [3]


def test_a_non_finite_state_with_finite_metrics_is_not_saved(bundled_dir, tmp_path, monkeypatch):
  # An optimizer whose first update makes every parameter inf: step 1's loss, read from the parameters before
  # the update, is finite, and only the state check of the save at step 1 can catch it.
  make_optimizer = optim.make_optimizer

  def exploding(config, schedule):
    inner = make_optimizer(config, schedule)
    return optax.GradientTransformation(
        inner.init, lambda updates, state, params=None: (
            jax.tree.map(lambda u: u + jnp.inf, inner.update(updates, state, params)[0]), state))

  monkeypatch.setattr(optim, "make_optimizer", exploding)
  config = _config(bundled_dir, "true", steps=4)
  config.train.update(log_every=1, checkpoint_every=1)
  with pytest.raises(loop.NonFiniteError) as stopped:
    loop.train(config, tmp_path)
  message = str(stopped.value)
  assert message.startswith("the state after step 1 holds NaN or inf in ") and "(params " in message, message
  assert "it was not saved; no checkpoint was saved: rerun with a lower --config.optim.base_lr" in message
  assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()]
  assert [r["step"] for r in loop.monitor_lib.read_metrics(tmp_path)] == [1], "step 1's metrics were finite"


def test_the_step_is_traced_once_and_a_stray_transfer_in_the_loop_fails(bundled_dir, tmp_path, monkeypatch):
  traces = []
  make_train_step = loop.step_lib.make_train_step

  def counting(step_config):
    train_step = make_train_step(step_config)

    def step(state, batch):
      traces.append(1)  # runs only while JAX traces the step
      return train_step(state, batch)

    return step

  monkeypatch.setattr(loop.step_lib, "make_train_step", counting)
  config = _config(bundled_dir, "true", steps=4)
  assert loop.train(config, tmp_path / "clean")["status"] == "completed"
  assert traces == [1], "the metrics' layout and the jitted step share one trace"

  step_once = loop.Run.step_once

  def step_once_with_a_host_value(run):  # the host's step number into a device computation, on every step
    metrics = step_once(run)
    run.step_config.schedule(run.step)
    return metrics

  # On an accelerator a host read of a device value (`float(metrics["loss"])`) fails the same way; on CPU the
  # device's buffers are host memory, so only the host-to-device direction can be shown here.
  monkeypatch.setattr(loop.Run, "step_once", step_once_with_a_host_value)
  with pytest.raises(Exception, match="[Dd]isallowed host-to-device transfer"):
    loop.train(config, tmp_path / "stray")


def test_profile_steps_write_a_trace_of_those_steps(bundled_dir, tmp_path):
  config = _config(bundled_dir, "true", steps=4)
  config.debug.profile_steps = "2:3"
  assert loop.train(config, tmp_path)["status"] == "completed"
  traces = list((tmp_path / loop.PROFILE_DIR).rglob("*.xplane.pb"))
  assert len(traces) == 1 and traces[0].stat().st_size > 0
