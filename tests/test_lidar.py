"""LiDAR (`ops.lidar`) against a float64 reference, its properties, and the kNN monitor's RankMe and LiDAR in a run."""

import math

import jax
import numpy as np
import pytest
import scipy.linalg

from jax_ssl import ops

DELTA, EPS = 1e-4, 1e-8


def _reference(z, delta=DELTA, eps=EPS, within_divisor=None):
  """LiDAR in float64: scatter matrices summed sample by sample, eigenvalues of the pencil (S_b, S_w + delta I).

  The generalized symmetric eigenproblem S_b v = lambda (S_w + delta I) v has the eigenvalues of
  (S_w + delta I)^{-1/2} S_b (S_w + delta I)^{-1/2}, by another route than the code's (Cholesky in LAPACK).
  `within_divisor` replaces n (q - 1), to show that the test tells the normalisations apart.
  """
  z = np.asarray(z, np.float64)
  n, q, d = z.shape
  means = [z[i].mean(axis=0) for i in range(n)]
  grand = sum(means) / n
  s_b = sum(np.outer(m - grand, m - grand) for m in means) / (n - 1)
  s_w = sum(np.outer(z[i, j] - means[i], z[i, j] - means[i]) for i in range(n) for j in range(q))
  s_w = s_w / (within_divisor or n * (q - 1)) + delta * np.eye(d)
  eigenvalues = np.clip(scipy.linalg.eigh(s_b, s_w, eigvals_only=True), 0.0, None)
  p = eigenvalues / eigenvalues.sum() + eps
  return float(np.exp(-np.sum(p * np.log(p))))


def _reference_sqrtm(z, delta=DELTA, eps=EPS):
  """The same through the paper's product: S_lda = S_w^{-1/2} S_b S_w^{-1/2}, with scipy's matrix square root."""
  z = np.asarray(z, np.float64)
  n, q, d = z.shape
  means = z.mean(axis=1)
  centred = means - means.mean(axis=0)
  s_b = centred.T @ centred / (n - 1)
  spread = (z - means[:, None]).reshape(-1, d)
  s_w = spread.T @ spread / (n * (q - 1)) + delta * np.eye(d)
  root_inverse = np.linalg.inv(np.real(scipy.linalg.sqrtm(s_w)))
  s_lda = root_inverse @ s_b @ root_inverse
  eigenvalues = np.clip(np.linalg.eigvalsh((s_lda + s_lda.T) / 2), 0.0, None)
  p = eigenvalues / eigenvalues.sum() + eps
  return float(np.exp(-np.sum(p * np.log(p))))


def _views(n, q, d, seed=0, spread=0.5, rank=None):
  """n samples with q noisy views each: sample centres of `rank` directions (all d if None), view noise `spread`."""
  rng = np.random.default_rng(seed)
  rank = rank or d
  centres = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) * np.linspace(0.3, 2.0, d)
  noise = rng.standard_normal((n, q, d)) * spread * np.linspace(1.5, 0.2, d)
  return (centres[:, None, :] + noise).astype(np.float32)


@pytest.mark.parametrize("shape, spread, rank", [
    ((8, 2, 4), 0.5, None),
    ((32, 4, 16), 0.5, None),
    ((64, 8, 32), 1.0, 8),  # 8 informative directions among 32
    ((12, 3, 40), 0.5, None),  # D > n - 1 (zero eigenvalues) and D > n (q - 1) (S_w singular but for delta)
])
def test_lidar_matches_the_float64_reference(shape, spread, rank):
  z = _views(*shape, spread=spread, rank=rank)
  expected = _reference(z)
  np.testing.assert_allclose(_reference_sqrtm(z), expected, rtol=1e-6)  # the two references agree
  np.testing.assert_allclose(jax.jit(ops.lidar)(z), expected, rtol=2e-4)


def test_lidar_uses_delta_and_the_pooled_within_class_normalisation():
  # Views spread about as much as delta in some directions: both the ridge and 1/(n (q-1)) matter there.
  z = _views(40, 3, 12, seed=1, spread=1e-2)
  expected = _reference(z)
  np.testing.assert_allclose(ops.lidar(z), expected, rtol=2e-4)
  # The test tells the alternatives apart: 1/(n q) for S_w, or another delta, move the value well past the tolerance.
  assert abs(_reference(z, within_divisor=40 * 3) / expected - 1) > 2e-2
  assert abs(_reference(z, delta=1e-3) / expected - 1) > 2e-2
  np.testing.assert_allclose(ops.lidar(z, delta=1e-3), _reference(z, delta=1e-3), rtol=2e-4)
  np.testing.assert_allclose(ops.lidar(z, eps=1e-3), _reference(z, eps=1e-3), rtol=2e-4)


def test_perfectly_invariant_views_give_the_smooth_rank_of_the_class_means():
  # Views identical within each sample: S_w = 0, the whitening is delta^{-1/2} I, and LiDAR is the entropy-rank of
  # the eigenvalues of S_b, the squared singular values of the centred class means.
  centres = np.random.default_rng(2).standard_normal((20, 6)) * np.array([3.0, 2.0, 1.0, 0.5, 0.2, 0.1])
  z = np.repeat(centres[:, None, :], 4, axis=1).astype(np.float32)
  s = np.linalg.svd(centres - centres.mean(axis=0), compute_uv=False) ** 2
  p = s / s.sum() + EPS
  np.testing.assert_allclose(ops.lidar(z), np.exp(-np.sum(p * np.log(p))), rtol=1e-4)


def test_lidar_is_invariant_to_the_order_of_samples_and_of_views():
  z = _views(24, 5, 10, seed=3)
  rng = np.random.default_rng(4)
  by_samples = z[rng.permutation(24)]
  by_views = np.stack([sample[rng.permutation(5)] for sample in z])
  value = float(ops.lidar(z))
  np.testing.assert_allclose(float(ops.lidar(by_samples)), value, rtol=1e-4)
  np.testing.assert_allclose(float(ops.lidar(by_views)), value, rtol=1e-4)
  # Not invariant to everything: the views dealt out to other samples make other classes.
  regrouped = z.reshape(-1, 10)[rng.permutation(24 * 5)].reshape(24, 5, 10)
  assert abs(float(ops.lidar(regrouped)) - value) > 0.1 * value


@pytest.mark.parametrize("seed", range(4))
def test_lidar_lies_between_one_and_the_rank_of_the_between_class_scatter(seed):
  rng = np.random.default_rng(seed)
  n, q, d = int(rng.integers(3, 40)), int(rng.integers(2, 6)), int(rng.integers(2, 24))
  z = _views(n, q, d, seed=seed, spread=float(rng.uniform(0.01, 3.0)))
  value = float(ops.lidar(z))
  ceiling = min(n - 1, d) * (1 + d * EPS * math.log(1 / EPS))  # rank(S_b), plus eps's share
  assert 1.0 <= value <= ceiling, (n, q, d, value)


def test_lidar_reaches_its_ends():
  # Sample centres spread evenly in every direction (whitened), views moving isotropically: D.
  rng = np.random.default_rng(5)
  centres = rng.standard_normal((400, 6))
  centres = (centres - centres.mean(axis=0)) @ np.linalg.inv(np.linalg.cholesky(np.cov(centres.T))).T
  z = (centres[:, None, :] + 1e-3 * rng.standard_normal((400, 2, 6))).astype(np.float32)
  assert 5.99 < float(ops.lidar(z)) <= 6 * (1 + 1e-5)
  # Sample centres on one line: 1.
  line = _views(50, 4, 8, seed=6, spread=0.1, rank=1)
  assert 1.0 <= float(ops.lidar(line, delta=1.0)) < 1.5


def test_views_identical_across_samples_give_the_minimum():
  # Every sample has the same q views: S_b = 0 (the samples cannot be told apart), every p_k = eps, LiDAR ~ 1.
  views = np.random.default_rng(7).standard_normal((1, 5, 16)).astype(np.float32)
  z = np.repeat(views, 30, axis=0)
  minimum = math.exp(16 * EPS * math.log(1 / EPS))
  np.testing.assert_allclose(ops.lidar(z), minimum, atol=1e-5)
  np.testing.assert_allclose(ops.lidar(np.ones((10, 3, 4), np.float32)), 1.0, atol=1e-5)  # all one point
  np.testing.assert_allclose(ops.lidar(np.zeros((10, 3, 4), np.float32)), 1.0, atol=1e-5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_embedding_gives_nan(bad):
  z = _views(10, 3, 4)
  z[3, 1, 2] = bad
  assert np.isnan(float(ops.lidar(z)))
  assert np.isnan(float(jax.jit(ops.lidar)(z)))


@pytest.mark.parametrize("shape", [(10, 4), (1, 3, 4), (5, 1, 4), (2, 2, 2, 2)])
def test_lidar_refuses_shapes_without_two_samples_of_two_views(shape):
  with pytest.raises(ValueError, match="lidar"):
    ops.lidar(np.zeros(shape, np.float32))


def test_a_run_logs_rankme_and_lidar_beside_the_knn_accuracy(bundled_dir, tmp_path):
  from configs import common
  from jax_ssl.train import loop
  from jax_ssl.train import monitor

  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  config.train.update(num_steps=2, log_every=1, eval_every=1)
  config.eval.update(max_train_examples=64, lidar_samples=12, lidar_views=3, report=True, probe_epochs=2)
  loop.train(config, tmp_path)
  records = monitor.read_metrics(tmp_path)
  assert [r["step"] for r in records] == [1, 2]
  features = 2 * config.model.width  # the small CNN's feature width bounds both ranks
  for record in records:
    assert 0 <= record["knn_accuracy"] <= 1
    assert 1 <= record["knn/rankme"] <= features and math.isfinite(record["knn/rankme"])
    # LiDAR's classes are the 12 images: at most 11 directions tell them apart.
    assert 1 <= record["knn/lidar"] <= 11 * (1 + 1e-3) and math.isfinite(record["knn/lidar"])
  report = (tmp_path / "report.md").read_text()
  assert "kNN monitor at step 2" in report and "- LiDAR" in report and "- RankMe" in report


def test_the_monitor_groups_each_images_views_in_its_row(bundled_dir, tmp_path):
  import dataclasses

  from configs import common
  from jax_ssl.data import views
  from jax_ssl.train import evaluation
  from jax_ssl.train import loop
  from jax_ssl.train import state as state_lib

  config = common.smoke(common.bundled_base("vicreg"))
  config.data.data_dir = str(bundled_dir)
  run = loop.Run(config, tmp_path, loop.data_mesh())
  images = evaluation.sample_split(run.source, 11, seed=0)["image"]  # 11: not a multiple of the 8 devices
  params, batch_stats = state_lib.evaluated_arrays(run.state, run.method)
  specs, network = run.step_config.view_specs, run.step_config.definitions
  # Views without randomness (the whole image, no flip, no colour change): each image's 3 views are one.
  still = dataclasses.replace(specs[0], crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), flip_prob=0.0,
                              jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0, solarize_prob=0.0)
  monitor = evaluation.SpectrumMonitor(network.eval_network, (still,) * 3, run.mesh, chunk=24)  # 8 a call
  rows = monitor.view_features(params, batch_stats, images)
  assert rows.shape == (11, 3, network.num_features)
  np.testing.assert_allclose(rows[:, 1:], rows[:, :1].repeat(2, axis=1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(monitor.view_features(params, batch_stats, images[::-1]), rows[::-1], rtol=1e-5,
                             atol=1e-6)
  assert np.abs(rows[1:, 0] - rows[:1, 0]).max() > 1e-3  # the images differ
  # The run's own views: random, the same at every call, and spread around each image.
  spread = evaluation.SpectrumMonitor(network.eval_network, evaluation.lidar_view_specs(
      specs[:config.views.num_global], 4), run.mesh)
  assert spread.view_specs == (specs[0], specs[1]) * 2
  assert isinstance(spread.view_specs[0], views.ViewSpec)
  first = spread.view_features(params, batch_stats, images)
  np.testing.assert_array_equal(spread.view_features(params, batch_stats, images), first)
  assert np.abs(first[:, 1:] - first[:, :1]).max() > 1e-3
  features = run.embedder(params, batch_stats, images)
  scalars = spread(params, batch_stats, features, images)
  np.testing.assert_allclose(scalars["knn/lidar"], _reference(first), rtol=1e-3)
  s = np.linalg.svd(features.astype(np.float64) - features.mean(axis=0), compute_uv=False)
  p = s / s.sum() + 1e-7  # RankMe's own epsilon
  np.testing.assert_allclose(scalars["knn/rankme"], np.exp(-np.sum(p * np.log(p))), rtol=1e-4)
