"""VISReg (Algorithm 1), plain sliced W2 and SIGReg (Epps-Pulley) against float64 numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jax_ssl import losses
from tests.gradcheck import assert_grad_matches_reference


def _embeddings(n, d, seed=0, scale=1.0, shift=0.0):
  rng = np.random.default_rng(seed)
  return (shift + scale * rng.standard_normal((n, d)) * rng.uniform(0.5, 2.0, d)).astype(np.float32)


def _directions(d, k, seed=1):
  w = np.random.default_rng(seed).standard_normal((d, k))
  return (w / np.linalg.norm(w, axis=0)).astype(np.float32)


def quantiles(n):
  return stats.norm.ppf(np.arange(1, n + 1) / (n + 1))


def ref_visreg_terms(z, w, frozen_std=None):
  """Algorithm 1 of the VISReg paper; `frozen_std` plays the stop-gradient in finite differences."""
  z, w = z.astype(np.float64), w.astype(np.float64)
  mu = z.mean(axis=0)
  center = (mu**2).mean()
  std = z.std(axis=0, ddof=0) + 1e-6
  scale = ((1 - std) ** 2).mean()
  normalised = (z - mu) / (std if frozen_std is None else frozen_std)
  projected = np.sort(normalised @ w, axis=0)
  shape = ((projected - quantiles(len(z))[:, None]) ** 2).mean()
  return {"scale": scale, "shape": shape, "center": center}


def ref_swd(z, w):
  projected = np.sort(z.astype(np.float64) @ w.astype(np.float64), axis=0)
  return ((projected - quantiles(len(z))[:, None]) ** 2).mean()


def ref_sigreg(z, w, knots=17, t_max=3.0):
  x = z.astype(np.float64) @ w.astype(np.float64)  # (N, K)
  t = np.linspace(0, t_max, knots)
  dt = t_max / (knots - 1)
  weights = np.full(knots, 2 * dt)
  weights[[0, -1]] = dt
  phi = np.exp(-(t**2) / 2)
  statistics = []
  for slice_values in x.T:
    xt = slice_values[:, None] * t[None, :]
    err = (np.cos(xt).mean(axis=0) - phi) ** 2 + np.sin(xt).mean(axis=0) ** 2
    statistics.append(err @ (weights * phi) * len(z))
  return np.mean(statistics)


SHAPES = [(2, 1, 3), (16, 4, 8), (64, 32, 100), (257, 8, 64)]


@pytest.mark.parametrize("n,d,k", SHAPES)
def test_visreg_terms_match_algorithm_1(n, d, k):
  z, w = _embeddings(n, d, seed=n, shift=0.3), _directions(d, k)
  expected = ref_visreg_terms(z, w)
  np.testing.assert_allclose(jax.jit(losses.scale_loss)(z), expected["scale"], rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(jax.jit(losses.center_loss)(z), expected["center"], rtol=1e-4)
  np.testing.assert_allclose(jax.jit(losses.shape_loss)(z, w), expected["shape"], rtol=1e-4, atol=1e-7)
  weighted = jax.jit(losses.visreg_regularizer)(z, w, 0.5, 2.0, 3.0)
  np.testing.assert_allclose(
      weighted, 0.5 * expected["scale"] + 2.0 * expected["shape"] + 3.0 * expected["center"], rtol=1e-4)


@pytest.mark.parametrize("n,d,k", SHAPES)
def test_swd_and_sigreg_match_reference(n, d, k):
  z, w = _embeddings(n, d, seed=n), _directions(d, k)
  np.testing.assert_allclose(jax.jit(losses.swd_gaussian)(z, w), ref_swd(z, w), rtol=1e-4)
  np.testing.assert_allclose(jax.jit(losses.sigreg)(z, w), ref_sigreg(z, w), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(
      losses.sigreg(z, w, knots=5, t_max=2.0), ref_sigreg(z, w, knots=5, t_max=2.0), rtol=1e-4, atol=1e-7)


def test_sigreg_is_small_for_gaussian_and_large_for_collapsed():
  w = _directions(8, 64)
  gaussian = np.random.default_rng(0).standard_normal((4096, 8)).astype(np.float32)
  assert losses.sigreg(gaussian, w) < 0.05 * losses.sigreg(0.05 * gaussian, w)


@pytest.mark.parametrize("num_global,num_local,n,d", [(1, 0, 2, 1), (2, 3, 10, 6), (4, 6, 32, 16)])
def test_prediction_loss_matches_reference(num_global, num_local, n, d):
  rng = np.random.default_rng(n)
  global_views = rng.standard_normal((num_global, n, d)).astype(np.float32)
  all_views = np.concatenate([global_views, rng.standard_normal((num_local, n, d)).astype(np.float32)])
  center = global_views.astype(np.float64).mean(axis=0)
  expected = np.mean([((center - view) ** 2).mean() for view in all_views.astype(np.float64)])
  np.testing.assert_allclose(jax.jit(losses.prediction_loss)(global_views, all_views), expected, rtol=1e-5)


@pytest.mark.parametrize("with_local", [False, True])
def test_visreg_loss_composes_prediction_and_regularizer(with_local):
  rng = np.random.default_rng(1)
  global_views = rng.standard_normal((2, 24, 8)).astype(np.float32)
  local_views = rng.standard_normal((4, 24, 8)).astype(np.float32) if with_local else None
  key = jax.random.key(3)
  loss, metrics = jax.jit(losses.visreg_loss, static_argnums=(3, 4))(key, global_views, local_views, 0.6, 50)
  # The directions are the ones random_directions draws from the step's key.
  w = np.asarray(losses.random_directions(key, 8, 50))
  views = global_views if local_views is None else np.concatenate([global_views, local_views])
  center = global_views.astype(np.float64).mean(axis=0)
  prediction = np.mean([((center - v) ** 2).mean() for v in views.astype(np.float64)])
  regularizer = np.mean([sum(ref_visreg_terms(v, w).values()) for v in views])
  np.testing.assert_allclose(metrics["prediction"], prediction, rtol=1e-5)
  np.testing.assert_allclose(metrics["regularizer"], regularizer, rtol=1e-4)
  np.testing.assert_allclose(loss, 0.4 * prediction + 0.6 * regularizer, rtol=1e-4)


def test_visreg_terms_and_their_combination_match_the_reference():
  rng = np.random.default_rng(3)
  views = rng.standard_normal((3, 32, 6)).astype(np.float32) * [[[0.5, 1.0, 2.0, 1.0, 0.1, 3.0]]] + 0.2
  w = np.asarray(losses.random_directions(jax.random.key(4), 6, 40))
  terms = jax.jit(losses.visreg_terms)(views, w)
  for name in ("scale", "shape", "center"):
    assert float(terms[name]) == pytest.approx(np.mean([ref_visreg_terms(v, w)[name] for v in views]), rel=1e-4)
  prediction = np.float32(0.7)
  loss, metrics = losses.combine_visreg(prediction, terms, 0.6, 0.5, 2.0, 0.25)
  regularizer = 0.5 * terms["scale"] + 2.0 * terms["shape"] + 0.25 * terms["center"]
  assert float(metrics["regularizer"]) == pytest.approx(float(regularizer), rel=1e-6)
  assert float(loss) == pytest.approx(0.4 * 0.7 + 0.6 * float(regularizer), rel=1e-6)


def test_visreg_loss_weights_inside_the_regularizer():
  views = np.random.default_rng(2).standard_normal((2, 16, 4)).astype(np.float32)
  key = jax.random.key(0)
  _, metrics = losses.visreg_loss(key, views)
  loss, _ = losses.visreg_loss(key, views, lam=1.0, lambda_scale=0.5, lambda_shape=2.0, lambda_center=0.0)
  np.testing.assert_allclose(loss, 0.5 * metrics["scale"] + 2.0 * metrics["shape"], rtol=1e-5)


def test_gradients_match_finite_differences():
  z, w = _embeddings(7, 3, seed=5, shift=0.2), _directions(3, 5)
  frozen_std = z.astype(np.float64).std(axis=0) + 1e-6
  assert_grad_matches_reference(losses.scale_loss, lambda v: ref_visreg_terms(v, w)["scale"], z)
  assert_grad_matches_reference(losses.center_loss, lambda v: ref_visreg_terms(v, w)["center"], z)
  # The shape loss stops the gradient through the std: differentiate the reference with it frozen.
  assert_grad_matches_reference(
      lambda v: losses.shape_loss(v, w), lambda v: ref_visreg_terms(v, w, frozen_std)["shape"], z)
  assert_grad_matches_reference(lambda v: losses.swd_gaussian(v, w), lambda v: ref_swd(v, w), z)
  assert_grad_matches_reference(lambda v: losses.sigreg(v, w), lambda v: ref_sigreg(v, w), z)
  assert_grad_matches_reference(
      lambda v: losses.visreg_regularizer(v, w, 0.5, 2.0, 3.0),
      lambda v: np.dot([0.5, 2.0, 3.0], list(ref_visreg_terms(v, w, frozen_std).values())), z)
  global_views = np.stack([z, z[::-1]])
  assert_grad_matches_reference(
      lambda g: losses.prediction_loss(g, g),
      lambda g: np.mean((g.mean(axis=0, keepdims=True) - g) ** 2), global_views)


def test_shape_loss_without_the_stop_gradient_is_the_plain_function():
  # The ablation: the std is differentiated too, so the gradient is the reference's own (nothing frozen).
  z, w = _embeddings(7, 3, seed=6, shift=0.2), _directions(3, 5)
  assert_grad_matches_reference(lambda v: losses.shape_loss(v, w, detach_std=False),
                                lambda v: ref_visreg_terms(v, w)["shape"], z)
  np.testing.assert_allclose(losses.shape_loss(z, w, detach_std=False), losses.shape_loss(z, w), rtol=1e-6)
  detached = jax.grad(lambda v: losses.shape_loss(v, w))(z)
  assert not np.allclose(jax.grad(lambda v: losses.shape_loss(v, w, detach_std=False))(z), detached, atol=1e-4)


def test_visreg_loss_gradient_matches_finite_differences():
  rng = np.random.default_rng(12)
  global_views = rng.standard_normal((2, 6, 3)).astype(np.float32)
  local_views = rng.standard_normal((1, 6, 3)).astype(np.float32)
  key = jax.random.key(4)
  w = np.asarray(losses.random_directions(key, 3, 5))
  frozen = [v.astype(np.float64).std(axis=0) + 1e-6 for v in np.concatenate([global_views, local_views])]

  def reference(g):
    views = np.concatenate([g, local_views.astype(np.float64)])
    prediction = np.mean((g.mean(axis=0, keepdims=True) - views) ** 2)
    regularizer = np.mean([sum(ref_visreg_terms(v, w, std).values()) for v, std in zip(views, frozen)])
    return 0.3 * prediction + 0.7 * regularizer

  assert_grad_matches_reference(
      lambda g: losses.visreg_loss(key, g, local_views, lam=0.7, num_slices=5)[0], reference, global_views)


def test_shape_loss_ignores_the_scale():
  z, w = _embeddings(32, 6, seed=8), _directions(6, 20)
  np.testing.assert_allclose(losses.shape_loss(7.0 * z + 3.0, w), losses.shape_loss(z, w), rtol=1e-4)


def test_collapse_keeps_visreg_gradient_but_kills_sigreg_gradient():
  """VISReg Figure 2: gradient norm w.r.t. z = r * z0 as r goes from 1 to 1e-4."""
  z0, w = _embeddings(256, 16, seed=9), _directions(16, 64)
  radii = np.logspace(0, -4, 9)
  visreg_grad = jax.jit(jax.grad(losses.visreg_regularizer))
  sigreg_grad = jax.jit(jax.grad(losses.sigreg))
  visreg_norms = np.array([np.linalg.norm(visreg_grad(r * z0, w)) for r in radii])
  sigreg_norms = np.array([np.linalg.norm(sigreg_grad(r * z0, w)) for r in radii])
  # VISReg: bounded away from zero all the way down (it grows, through the shape term's 1/std).
  assert visreg_norms.min() >= 0.5 * visreg_norms[0]
  # SIGReg: vanishes, linearly in r once the batch is well inside the Gaussian's scale.
  assert sigreg_norms[-1] <= 1e-3 * sigreg_norms.max()
  assert np.all(np.diff(sigreg_norms[-5:]) < 0)


@pytest.mark.parametrize("name", ["scale_loss", "center_loss", "shape_loss", "swd_gaussian", "sigreg",
                                  "visreg_regularizer"])
def test_regularizers_are_permutation_invariant(name):
  z, w = _embeddings(40, 5, seed=10), _directions(5, 16)
  fn = getattr(losses, name)
  args = (w,) if name not in ("scale_loss", "center_loss") else ()
  perm = np.random.default_rng(0).permutation(40)
  np.testing.assert_allclose(fn(z[perm], *args), fn(z, *args), rtol=1e-5, atol=1e-7)


def test_bad_inputs_name_the_argument():
  z = np.ones((8, 3), np.float32)
  with pytest.raises(ValueError, match=r"directions must be a \(dim, num_slices\) array with dim = 3"):
    losses.shape_loss(z, np.ones((4, 10), np.float32))
  with pytest.raises(ValueError, match="directions"):
    losses.sigreg(z, np.ones(3, np.float32))
  with pytest.raises(ValueError, match="global_views must be a 3-D"):
    losses.visreg_loss(jax.random.key(0), z)
  with pytest.raises(ValueError, match="local_views must match global_views"):
    losses.visreg_loss(jax.random.key(0), np.ones((2, 8, 3), np.float32), np.ones((2, 7, 3), np.float32))
  with pytest.raises(ValueError, match="all_views"):
    losses.prediction_loss(np.ones((2, 8, 3), np.float32), np.ones((2, 8, 4), np.float32))
  with pytest.raises(ValueError, match="knots >= 2"):
    losses.sigreg(z, np.ones((3, 2), np.float32), knots=1)
  with pytest.raises(ValueError, match="z must be a floating-point"):
    losses.scale_loss(jnp.ones((4, 3), jnp.int32))
