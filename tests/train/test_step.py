"""The sharded step: 8 devices give the parameters one device gives, on the same global batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import methods
from jax_ssl.models import vit
from jax_ssl.train import config as config_lib
from jax_ssl.train import loop
from jax_ssl.train import optim
from jax_ssl.train import step as step_lib


def _config(method, bundled_dir):
  config = config_lib.base_config()
  config.method.name = method
  config.data.data_dir = str(bundled_dir)
  config.model.update(backbone="small_cnn", width=8, projector="32-32")
  config.views.update(size=16, local_size=8)
  if method == "visreg":
    config.views.update(recipe="multicrop", num_global=2, num_local=2)
    config.method.visreg.num_slices = 64
  if method == "dino":  # two global views: the teacher, its center and the student's cross terms
    config.views.recipe = "multicrop"
    config.method.dino.num_prototypes = 64
  if method == "ijepa":  # per-patch outputs that stay sharded (step.PATCH_HEADS), an EMA target it is probed on
    config.views.update(recipe="multicrop", num_global=1, num_local=0)
    config.model.update(backbone="vit_micro", patch_size=4)
    config.method.ijepa.update(predictor_width=32, predictor_depth=1, predictor_heads=2)
  if method == "clip+tregs":  # captions drawn per label, a text tower, a learned scale; T-REG on both modalities
    config.data.name = "shapes"
    config.views.update(recipe="multicrop", num_global=1, num_local=0)
    config.model.projector = "32"
    config.method.clip.update(text_width=32, text_depth=1, text_heads=2)
  config.train.update(global_batch_size=16, num_steps=2, log_every=1)
  config.optim.warmup_epochs = 0.0
  return config


# A plain two-view step (VICReg) is the others' minus their loss terms, whose sharding
# tests/losses/test_distributed.py checks for every loss (SAG-VICReg's walk and T-REGS's MST among
# them). VISReg adds the slices split over the mesh and local views, DINO the EMA teacher and a
# method's running statistics, I-JEPA the patch outputs left sharded (MAE's path too), CLIP with
# T-REGS the captions drawn by label and a second tower, here with FSDP.
@pytest.mark.parametrize("method,fsdp", [("visreg", False), ("clip+tregs", True), ("dino", False),
                                         ("ijepa", False)])
def test_two_sharded_steps_equal_two_single_device_steps(method, fsdp, bundled_dir, tmp_path):
  config = _config(method, bundled_dir)
  config.mesh.fsdp = fsdp
  config_lib.validate(config, num_devices=8)
  params, trained = {}, {}
  for num_devices in (1, 8):
    run = loop.Run(config, tmp_path / str(num_devices), mesh=loop.data_mesh(jax.devices()[:num_devices]))
    initial = jax.tree.map(np.asarray, run.state.params)
    for _ in range(2):
      metrics = run.step_once()
      assert metrics["finite"]
    params[num_devices] = jax.tree.map(np.asarray, run.state.params)
    # Everything else the steps moved: BatchNorm statistics, an EMA target, a method's statistics.
    trained[num_devices] = jax.tree.map(np.asarray, (run.state.batch_stats, run.state.target_params,
                                                     run.state.method_statistics))
    run.checkpointer.close()
  # Tolerance: float32 reductions run in another order once the batch is split (a few ulps per step).
  for single, sharded in zip(jax.tree.leaves(params[1]), jax.tree.leaves(params[8])):
    np.testing.assert_allclose(sharded, single, rtol=1e-4, atol=1e-6)
  for single, sharded in zip(jax.tree.leaves(trained[1]), jax.tree.leaves(trained[8])):
    np.testing.assert_allclose(sharded, single, rtol=1e-4, atol=1e-6)
  if method == "dino":
    assert int(run.state.method_statistics["step"]) == 2 and np.abs(trained[8][2]["center"]).max() > 0
  moved = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(params[8]), jax.tree.leaves(initial))]
  assert max(moved) > 1e-3, "the steps should have changed the parameters"


@pytest.mark.parametrize("method", [methods.VISReg(lam=0.6, lambda_shape=2.0, num_slices=64),
                                    methods.WithTReg(methods.LeJEPA(num_slices=64))], ids=lambda m: m.name)
def test_slices_split_over_the_mesh_average_to_all_slices(method):
  # Each device takes its block of the directions; the devices' losses and metrics average to the
  # method's over all of them, with the gradient.
  rng = np.random.default_rng(0)
  embeddings = methods.Embeddings(jnp.asarray(rng.standard_normal((2, 32, 8)), jnp.float32),
                                  jnp.asarray(rng.standard_normal((2, 32, 8)), jnp.float32))
  key = jax.random.key(1)

  def value_and_grad(loss_fn):
    return jax.jit(jax.value_and_grad(lambda e: loss_fn(e), has_aux=True))(embeddings)

  (single, single_metrics), single_grad = value_and_grad(lambda e: methods.sliced_loss_on_one_device(method, e, key))
  (sharded, sharded_metrics), sharded_grad = value_and_grad(
      lambda e: step_lib.method_loss(method, e, key, loop.data_mesh()))
  assert len(jax.devices()) == 8
  np.testing.assert_allclose(sharded, single, rtol=1e-5)
  for name, value in single_metrics.items():
    np.testing.assert_allclose(sharded_metrics[name], value, rtol=1e-5)
  for single_leaf, sharded_leaf in zip(jax.tree.leaves(single_grad), jax.tree.leaves(sharded_grad)):
    np.testing.assert_allclose(sharded_leaf, single_leaf, rtol=1e-4, atol=1e-7)


def test_optimizer_skips_biases_and_norms():
  params = {"kernel": np.ones((3, 4), np.float32), "bias": np.ones(4, np.float32), "scale": np.ones(4, np.float32)}
  assert optim.decay_mask(params) == {"kernel": True, "bias": False, "scale": False}
  config = config_lib.base_config()
  config.train.global_batch_size = 512
  config.optim.base_lr = 0.2
  assert optim.peak_learning_rate(config) == pytest.approx(0.4)
  config.optim.scale_lr_by_batch = False
  assert optim.peak_learning_rate(config) == pytest.approx(0.2)


def test_schedule_warms_up_then_decays():
  config = config_lib.base_config()
  config.train.global_batch_size = 256
  config.optim.update(base_lr=1.0, warmup_epochs=2.0, end_lr_fraction=0.1)
  schedule = optim.learning_rate_schedule(config, steps_per_epoch=10, total_steps=100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(0.5)
  assert float(schedule(20)) == pytest.approx(1.0)
  assert float(schedule(100)) == pytest.approx(0.1)
  assert float(schedule(60)) < float(schedule(40))


def test_fsdp_splits_parameters_over_the_devices(bundled_dir, tmp_path):
  config = _config("vicreg", bundled_dir)
  config.mesh.fsdp = True
  run = loop.Run(config, tmp_path)
  kernels = [leaf for leaf in jax.tree.leaves(run.state.params) if leaf.ndim >= 2 and max(leaf.shape) % 8 == 0]
  assert kernels and all(not leaf.sharding.is_fully_replicated for leaf in kernels)
  run.checkpointer.close()


def test_bfloat16_compute_trains_with_float32_parameters(bundled_dir, tmp_path):
  config = _config("vicreg", bundled_dir)
  config.model.dtype = "bfloat16"
  run = loop.Run(config, tmp_path, mesh=loop.data_mesh(jax.devices()[:1]))
  metrics = run.step_once()
  assert metrics["finite"] and np.isfinite(metrics["loss"])
  assert {leaf.dtype for leaf in jax.tree.leaves(run.state.params)} == {np.dtype(np.float32)}
  run.checkpointer.close()


def test_gradient_clipping_bounds_the_update():
  # Under LARS a bias (1-D) gets neither decay nor trust-ratio scaling: its first update is -lr * g.
  params = {"bias": np.zeros(4, np.float32)}
  grads = {"bias": np.full(4, 100.0, np.float32)}  # global norm 200
  config = config_lib.base_config()
  for clip, expected_norm in ((0.0, 200.0), (0.5, 0.5)):
    config.optim.update(name="lars", weight_decay=0.0, grad_clip_norm=clip)
    optimizer = optim.make_optimizer(config, lambda step: 1.0)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    np.testing.assert_allclose(np.linalg.norm(updates["bias"]), expected_norm, rtol=1e-5)


def test_a_vit_with_stochastic_depth_trains_and_its_masks_follow_the_step(bundled_dir, tmp_path, monkeypatch):
  # A 2-block "tiny" (drop rates 0 and 0.5): what is tested is the step's plumbing, not the size.
  monkeypatch.setitem(vit.VIT_SIZES, "tiny", (32, 2, 2))
  config = _config("vicreg", bundled_dir)
  config.model.update(backbone="vit_tiny", patch_size=8, drop_path=0.5)
  config_lib.validate(config, num_devices=8)
  run = loop.Run(config, tmp_path / "stochastic", mesh=loop.data_mesh(jax.devices()[:1]))
  initial_state, initial_guard = jax.tree.map(jnp.copy, (run.state, run.guard))
  losses = []
  for _ in range(2):  # step 0 twice, from the same state (one compilation); the step donates its inputs
    run.state, run.guard = jax.tree.map(jnp.copy, (initial_state, initial_guard))
    run.step = 0
    metrics = run.step_once()
    losses.append(float(metrics["loss"]))
    assert metrics["finite"]
  run.checkpointer.close()
  assert losses[0] == losses[1], "the drop masks come from the step's key: a rerun draws the same"
  config.model.drop_path = 0.0
  run = loop.Run(config, tmp_path / "deterministic", mesh=loop.data_mesh(jax.devices()[:1]))
  metrics = run.step_once()
  run.checkpointer.close()
  assert float(metrics["loss"]) != losses[0], "drop path 0.5 must change the forward"
