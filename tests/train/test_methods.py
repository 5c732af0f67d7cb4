"""Each method is the composition of jax_ssl.losses its docstring states, with its own typed hyperparameters."""

import copy
import dataclasses
import json
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from jax_ssl import methods
from jax_ssl.train import config as config_lib


def _embeddings(num_global=2, num_local=0, n=16, d=8, seed=0):
  rng = np.random.default_rng(seed)
  z = lambda v: jnp.asarray(rng.standard_normal((v, n, d)), jnp.float32)  # noqa: E731
  return methods.Embeddings(z(num_global), z(num_local) if num_local else None, z(num_global), z(num_global))


KEY = jax.random.key(0)


@pytest.mark.parametrize("method,expected", [
    (methods.VICReg(sim_coeff=20.0, std_coeff=15.0, cov_coeff=2.0),
     lambda e: losses.vicreg_loss(e.global_views[0], e.global_views[1], 20.0, 15.0, 2.0)[0]),
    (methods.SAGVICReg(k=3, percentile=30.0, graph="cross_view"),
     lambda e: losses.sag_vicreg_loss(KEY, e.global_views[0], e.global_views[1], k=3, percentile=30.0,
                                      graph="cross_view")[0]),
    (methods.TREGS(beta=5.0, gamma=0.3, lam=1e-3),
     lambda e: losses.tregs_loss(e.global_views[0], e.global_views[1], beta=5.0, gamma=0.3, lam=1e-3)[0]),
    (methods.BarlowTwins(lambd=1e-2), lambda e: losses.barlow_twins_loss(e.global_views[0], e.global_views[1],
                                                                        lambd=1e-2)[0]),
    (methods.SimCLR(temperature=0.5), lambda e: losses.nt_xent(e.global_views[0], e.global_views[1], 0.5)),
    (methods.BYOL(), lambda e: losses.byol_loss(e.predictions[0], e.targets[1]) + losses.byol_loss(e.predictions[1],
                                                                                                   e.targets[0])),
], ids=lambda m: getattr(m, "name", ""))
def test_two_view_methods(method, expected):
  embeddings = _embeddings()
  loss, metrics = jax.jit(method.loss)(embeddings, KEY)
  np.testing.assert_allclose(loss, expected(embeddings), rtol=1e-6)
  assert all(np.isfinite(v) for v in metrics.values())


def test_visreg_method_is_visreg_loss_and_logs_its_terms():
  weights = {"lambda_scale": 0.5, "lambda_shape": 2.0, "lambda_center": 0.25}
  method = methods.VISReg(lam=0.7, num_slices=96, **weights)
  embeddings = _embeddings(num_global=2, num_local=3)
  loss, metrics = methods.sliced_loss_on_one_device(method, embeddings, KEY)
  expected, expected_metrics = losses.visreg_loss(KEY, embeddings.global_views, embeddings.local_views,
                                                  lam=0.7, num_slices=96, **weights)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert set(metrics) == {"prediction", "regularizer", "scale", "shape", "center"}
  for name, value in expected_metrics.items():
    np.testing.assert_allclose(metrics[name], value, rtol=1e-5)


@pytest.mark.parametrize("method,regularizer", [
    (methods.LeJEPA(lam=0.1, num_slices=48, knots=9), lambda z, w: losses.sigreg(z, w, knots=9)),
    (methods.SWD(lam=0.4, num_slices=48), lambda z, w: losses.swd_gaussian(z, w)),
], ids=lambda m: getattr(m, "name", ""))
def test_jepa_methods(method, regularizer):
  embeddings = _embeddings(num_global=2, num_local=2)
  views = embeddings.all_views
  directions = losses.random_directions(KEY, views.shape[-1], 48)
  loss, metrics = jax.jit(method.loss)(embeddings, KEY, directions)
  prediction = losses.prediction_loss(embeddings.global_views, views)
  expected = (1 - method.lam) * prediction + method.lam * np.mean([regularizer(v, directions) for v in views])
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  np.testing.assert_allclose(metrics["prediction"], prediction, rtol=1e-6)
  # The step draws the directions as `slice_directions` does, from the same key.
  np.testing.assert_array_equal(method.slice_directions(KEY, views.shape[-1]), directions)


@pytest.mark.parametrize("base", ["byol", "barlow_twins", "vicreg"])
def test_tregs_add_on_adds_t_reg_on_every_view(base):
  embeddings = _embeddings()
  add_on = methods.WithTReg(methods.get_method(base), gamma=0.5, lam=1e-2)
  base_loss, _ = add_on.base.loss(embeddings, KEY)
  loss, metrics = add_on.loss(embeddings, KEY)
  t_reg = sum(losses.t_reg(z, 0.5, 1e-2) for z in embeddings.global_views)
  np.testing.assert_allclose(loss, base_loss + t_reg, rtol=1e-6)
  np.testing.assert_allclose(metrics["t_reg"], t_reg, rtol=1e-6)
  assert add_on.name == base + "+tregs"
  assert (add_on.target, add_on.predictor, add_on.multi_crop, add_on.total_slices, add_on.head) == (
      add_on.base.target, add_on.base.predictor, add_on.base.multi_crop, add_on.base.total_slices, add_on.base.head)


def test_byol_owns_its_target_and_momentum_schedule():
  byol = methods.BYOL(tau_base=0.996)
  assert float(byol.target_momentum(jnp.float32(0.0))) == pytest.approx(0.996)
  assert float(byol.target_momentum(jnp.float32(1.0))) == pytest.approx(1.0)
  assert float(byol.target_momentum(jnp.float32(0.5))) == pytest.approx(0.998)
  target, online = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
  moved = byol.update_target(target, online, jnp.float32(0.5))
  np.testing.assert_allclose(moved["w"], 1 - 0.998, rtol=1e-4)  # target <- m target + (1 - m) online
  assert not hasattr(methods.VICReg(), "update_target")  # only a method with a target network moves one


def test_methods_are_frozen_and_hashable_so_jit_can_hold_them():
  method = methods.SAGVICReg(k=7)
  with pytest.raises(dataclasses.FrozenInstanceError):
    method.k = 3
  assert hash(method) == hash(methods.SAGVICReg(k=7)) and method != methods.SAGVICReg(k=8)


@pytest.mark.parametrize("build,message", [
    (lambda: methods.VISReg(lam=1.5), r"visreg.lam weighs the regularizer .* in \[0, 1\]; got 1.5"),
    (lambda: methods.SAGVICReg(k=0), "sag_vicreg.k is a number of neighbours, positive; got 0"),
    (lambda: methods.SAGVICReg(graph="knn"), "sag_vicreg.graph must be one of cross_view, "),
    (lambda: methods.SimCLR(temperature=0.0), "simclr.temperature must be positive"),
    (lambda: methods.BYOL(tau_base=1.5), r"byol.tau_base is a momentum in \[0, 1\]"),
    (lambda: methods.VICReg(cov_coeff=-1.0), "vicreg.cov_coeff must not be negative; got -1.0"),
    (lambda: methods.LeJEPA(knots=1), "lejepa.knots"),
    (lambda: methods.WithTReg(methods.TREGS()), "tregs already has T-REG"),
    (lambda: methods.get_method("moco"), "unknown method 'moco'; methods: barlow_twins, byol, clip, dino, ijepa"),
    (lambda: methods.DINO(teacher_temperature=0.0), "dino.teacher_temperature must be positive"),
    (lambda: methods.DINO(center_momentum=1.5), r"dino.center_momentum is a momentum in \[0, 1\]"),
    (lambda: methods.DINO(tau_base=-0.1), r"dino.tau_base is a momentum in \[0, 1\]"),
    (lambda: methods.MAE(mask_ratio=1.0), r"mae.mask_ratio is the fraction of patches hidden, in \(0, 1\)"),
    (lambda: methods.MAE(mask_ratio=0.0), r"mae.mask_ratio is the fraction of patches hidden"),
    (lambda: methods.MAE(decoder_width=30), "mae.decoder_width must be a multiple of 4 and of decoder_heads"),
    (lambda: methods.IJEPA(target_scale=(0.3, 0.2)), r"ijepa.target_scale is a range \(low, high\)"),
    (lambda: methods.IJEPA(context_scale=(0.9, 1.2)), r"ijepa.context_scale is a fraction of the image"),
    (lambda: methods.IJEPA(num_targets=0), "ijepa.num_targets must be positive"),
    (lambda: methods.IJEPA(predictor_width=30, predictor_heads=4), "ijepa.predictor_width must be a multiple of 4"),
    (lambda: methods.CLIP(init_temperature=0.0), "clip.init_temperature must be positive"),
    (lambda: methods.CLIP(init_temperature=0.05, max_logit_scale=10.0),
     "clip.max_logit_scale caps the learned 1 / temperature, so it is at least 1 / init_temperature = 20"),
    (lambda: methods.CLIP(text_width=30, text_heads=4), "clip.text_width must be a multiple of text_heads; got 30"),
    (lambda: methods.CLIP(text_depth=0), "clip.text_depth must be positive; got 0"),
])
def test_bad_hyperparameters_are_one_line_naming_the_field(build, message):
  with pytest.raises(ValueError, match=message):
    build()


def test_from_config_reads_the_chosen_methods_own_section():
  section = config_lib.base_config().method
  section.name = "visreg+tregs"
  section.visreg.update(lam=0.3, num_slices=32)
  section.t_reg.gamma = 0.7
  section.lejepa.lam = 0.99  # another method's section is not read
  assert methods.from_config(section) == methods.WithTReg(methods.VISReg(lam=0.3, num_slices=32), gamma=0.7)
  # The schema's sections are the dataclasses' fields with their defaults.
  defaults = config_lib.base_config().method
  for name, cls in methods.METHODS.items():
    assert dict(defaults[name]) == {f.name: f.default for f in dataclasses.fields(cls)}


def test_dino_distils_the_teachers_centered_outputs_with_its_warming_temperature():
  dino = methods.DINO(num_prototypes=8, student_temperature=0.2, teacher_temperature=0.07,
                      warmup_teacher_temperature=0.03, warmup_teacher_steps=10, center_momentum=0.8)
  statistics = dino.initial_statistics()
  np.testing.assert_array_equal(statistics["center"], np.zeros(8))
  assert int(statistics["step"]) == 0
  embeddings = _embeddings(num_global=2, num_local=3, d=8)._replace(
      statistics={"center": jnp.linspace(-1.0, 1.0, 8), "step": jnp.int32(5)})
  loss, metrics = jax.jit(dino.loss)(embeddings, KEY)
  # Halfway through the warmup: the teacher's temperature is halfway from 0.03 to 0.07.
  expected = losses.dino_loss(embeddings.all_views, embeddings.targets, embeddings.statistics["center"], 0.2, 0.05)
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["distillation"], expected, rtol=1e-6)
  for step, temperature in ((0, 0.03), (10, 0.07), (500, 0.07)):
    np.testing.assert_allclose(dino.teacher_temperature_at(jnp.int32(step)), temperature, rtol=1e-6)
  updated = dino.update_statistics(embeddings.statistics, embeddings)
  np.testing.assert_allclose(updated["center"], losses.dino_center(embeddings.statistics["center"],
                                                                   embeddings.targets, 0.8), rtol=1e-6)
  assert int(updated["step"]) == 6
  assert (dino.target, dino.statistics, dino.multi_crop, dino.head, dino.predictor) == (True, True, True, "dino",
                                                                                       False)
  # +tregs keeps the base's teacher, head and statistics.
  add_on = methods.WithTReg(dino)
  assert (add_on.target, add_on.statistics, add_on.head) == (True, True, "dino")
  np.testing.assert_array_equal(add_on.update_statistics(embeddings.statistics, embeddings)["center"],
                                updated["center"])


def test_tregs_add_on_names_its_base_as_unwrapped_and_survives_copy_and_pickle():
  add_on = methods.WithTReg(methods.MAE(mask_ratio=0.6), gamma=0.3)
  assert (add_on.unwrapped.mask_ratio, add_on.gamma) == (0.6, 0.3)  # the base's field; the wrapper's own
  assert methods.WithTReg(methods.DINO(num_prototypes=32)).unwrapped.num_prototypes == 32
  with pytest.raises(AttributeError, match="mask_ratio"):  # no attribute is forwarded implicitly
    _ = add_on.mask_ratio
  assert methods.VISReg().unwrapped == methods.VISReg() and methods.VISReg().total_slices == 1024
  assert methods.VICReg().total_slices == 0 and not hasattr(methods.VICReg(), "num_slices")
  for clone in (copy.deepcopy(add_on), pickle.loads(pickle.dumps(add_on))):
    assert clone == add_on and clone.unwrapped.mask_ratio == 0.6


def test_mae_averages_the_reconstruction_of_each_global_view():
  rng = np.random.default_rng(3)
  predictions = jnp.asarray(rng.standard_normal((2, 4, 6, 12)), jnp.float32)
  patches = jnp.asarray(rng.standard_normal((2, 4, 6, 12)), jnp.float32)
  mask = jnp.asarray(rng.random((2, 4, 6)) < 0.75, jnp.float32).at[:, :, 0].set(1.0)
  embeddings = methods.MaskedPatches(jnp.zeros((2, 4, 8)), predictions, patches, mask)
  method = methods.MAE(norm_pix_loss=False)
  loss, metrics = jax.jit(method.loss)(embeddings, KEY)
  expected = np.mean([losses.mae_loss(predictions[v], patches[v], mask[v], norm_pix=False) for v in range(2)])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["reconstruction"], expected, rtol=1e-6)
  assert method.head == "mae" and method.multi_crop and not method.target


def test_ijepa_averages_each_views_block_prediction_error_and_evaluates_its_target():
  rng = np.random.default_rng(4)
  predictions = jnp.asarray(rng.standard_normal((2, 3, 4, 6, 5)), jnp.float32)
  targets = jnp.asarray(rng.standard_normal((2, 3, 6, 5)), jnp.float32)
  blocks = jnp.asarray(rng.random((2, 3, 4, 6)) < 0.3).at[..., 0].set(True)
  embeddings = methods.TargetBlocks(jnp.zeros((2, 3, 5)), predictions, targets, blocks)
  method = methods.IJEPA()
  loss, metrics = jax.jit(method.loss)(embeddings, KEY)
  expected = np.mean([losses.ijepa_loss(predictions[v], targets[v], blocks[v]) for v in range(2)])
  np.testing.assert_allclose(loss, expected, rtol=1e-6)
  np.testing.assert_allclose(metrics["prediction"], expected, rtol=1e-6)
  assert (method.head, method.target, method.evaluate_target, method.multi_crop) == ("ijepa", True, True, True)
  assert methods.WithTReg(method).evaluate_target and not methods.BYOL().evaluate_target
  # The target's momentum rises linearly from tau_base to 1 (I-JEPA's code), not on BYOL's cosine.
  np.testing.assert_allclose(method.target_momentum(jnp.array([0.0, 0.25, 1.0])), [0.996, 0.997, 1.0], rtol=1e-7)


def test_ijepa_ranges_from_a_saved_config_become_tuples_so_the_method_stays_hashable():
  section = config_lib.base_config().method
  section.name = "ijepa"
  saved = json.loads(json.dumps(section.to_dict()))  # tuples come back as lists
  assert saved["ijepa"]["target_scale"] == [0.15, 0.2]
  method = methods.from_config(saved)
  assert method.target_scale == (0.15, 0.2) and hash(method) == hash(methods.IJEPA())


def test_clip_compares_images_with_captions_and_tregs_regularizes_both_modalities():
  rng = np.random.default_rng(5)
  images, texts = (jnp.asarray(rng.standard_normal((12, 6)), jnp.float32) for _ in range(2))
  embeddings = methods.ImageText(jnp.stack([images, texts]), jnp.float32(5.0))
  method = methods.CLIP(max_logit_scale=50.0)
  loss, metrics = jax.jit(method.loss)(embeddings, KEY)
  np.testing.assert_allclose(loss, losses.clip_loss(images, texts, 5.0, 50.0), rtol=1e-6)
  np.testing.assert_allclose(metrics["logit_scale"], 50.0, rtol=1e-6)  # exp(5) = 148 is capped
  assert method.head == "clip" and method.multi_crop and not method.target
  add_on = methods.WithTReg(method, gamma=0.5, lam=1e-2)
  loss_with, metrics_with = add_on.loss(embeddings, KEY)
  t_reg = losses.t_reg(images, 0.5, 1e-2) + losses.t_reg(texts, 0.5, 1e-2)
  np.testing.assert_allclose(metrics_with["t_reg"], t_reg, rtol=1e-6)
  np.testing.assert_allclose(loss_with, loss + t_reg, rtol=1e-6)
  assert add_on.head == "clip" and add_on.unwrapped.text_width == method.text_width
