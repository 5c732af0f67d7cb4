"""Each method is the composition of jax_ssl.losses its docstring states."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jax_ssl import losses
from jax_ssl import methods
from jax_ssl.train import config as config_lib

HPARAMS = dict(config_lib.base_config().method)


def _embeddings(num_global=2, num_local=0, n=16, d=8, seed=0):
  rng = np.random.default_rng(seed)
  z = lambda v: jnp.asarray(rng.standard_normal((v, n, d)), jnp.float32)  # noqa: E731
  return methods.Embeddings(z(num_global), z(num_local) if num_local else None, z(num_global), z(num_global))


def _context(key=0, progress=0.5):
  return methods.Context(key=jax.random.key(key), hparams=HPARAMS, progress=jnp.float32(progress))


@pytest.mark.parametrize("name,expected", [
    ("vicreg", lambda e, c: losses.vicreg_loss(e.global_views[0], e.global_views[1])[0]),
    ("sag_vicreg", lambda e, c: losses.sag_vicreg_loss(c.key, e.global_views[0], e.global_views[1])[0]),
    ("tregs", lambda e, c: losses.tregs_loss(e.global_views[0], e.global_views[1])[0]),
    ("barlow_twins", lambda e, c: losses.barlow_twins_loss(e.global_views[0], e.global_views[1])[0]),
    ("simclr", lambda e, c: losses.nt_xent(e.global_views[0], e.global_views[1])),
    ("byol", lambda e, c: losses.byol_loss(e.predictions[0], e.targets[1]) + losses.byol_loss(e.predictions[1],
                                                                                              e.targets[0])),
])
def test_two_view_methods(name, expected):
  embeddings, context = _embeddings(), _context()
  loss, metrics = methods.get_method(name).objective(embeddings, context)
  np.testing.assert_allclose(loss, expected(embeddings, context), rtol=1e-6)
  assert all(np.isfinite(v) for v in metrics.values())


def test_visreg_method_is_visreg_loss_and_logs_its_terms():
  weights = {"lambda_scale": 0.5, "lambda_shape": 2.0, "lambda_center": 0.25}
  embeddings = _embeddings(num_global=2, num_local=3)
  context = methods.Context(key=jax.random.key(0), hparams={**HPARAMS, **weights}, progress=jnp.float32(0.5))
  loss, metrics = methods.get_method("visreg").objective(embeddings, context)
  expected, expected_metrics = losses.visreg_loss(context.key, embeddings.global_views, embeddings.local_views,
                                                  lam=HPARAMS["lam"], num_slices=HPARAMS["num_slices"], **weights)
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert set(metrics) == {"prediction", "regularizer", "scale", "shape", "center"}
  for name, value in expected_metrics.items():
    np.testing.assert_allclose(metrics[name], value, rtol=1e-5)


@pytest.mark.parametrize("name,regularizer", [
    ("lejepa", lambda z, w: losses.sigreg(z, w)),
    ("swd", lambda z, w: losses.swd_gaussian(z, w)),
])
def test_jepa_methods(name, regularizer):
  embeddings, context = _embeddings(num_global=2, num_local=2), _context()
  loss, _ = methods.get_method(name).objective(embeddings, context)
  views = embeddings.all_views
  w = losses.random_directions(context.key, views.shape[-1], HPARAMS["num_slices"])
  expected = ((1 - HPARAMS["lam"]) * losses.prediction_loss(embeddings.global_views, views)
              + HPARAMS["lam"] * np.mean([regularizer(v, w) for v in views]))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)


@pytest.mark.parametrize("base", ["byol", "barlow_twins", "vicreg"])
def test_tregs_add_on_adds_t_reg_on_every_view(base):
  embeddings, context = _embeddings(), _context()
  base_loss, _ = methods.get_method(base).objective(embeddings, context)
  loss, metrics = methods.get_method(base + "+tregs").objective(embeddings, context)
  t_reg = sum(losses.t_reg(z, HPARAMS["tregs_gamma"], HPARAMS["tregs_lam"]) for z in embeddings.global_views)
  np.testing.assert_allclose(loss, base_loss + t_reg, rtol=1e-6)
  np.testing.assert_allclose(metrics["t_reg"], t_reg, rtol=1e-6)
  assert methods.get_method(base + "+tregs").target == methods.get_method(base).target


def test_byol_momentum_schedule():
  assert float(methods.byol_target_momentum(0.996, jnp.float32(0.0))) == pytest.approx(0.996)
  assert float(methods.byol_target_momentum(0.996, jnp.float32(1.0))) == pytest.approx(1.0)
  assert float(methods.byol_target_momentum(0.996, jnp.float32(0.5))) == pytest.approx(0.998)


def test_unknown_method_lists_the_known_ones():
  with pytest.raises(ValueError, match="unknown method 'moco'; methods: barlow_twins, byol, lejepa"):
    methods.get_method("moco")
