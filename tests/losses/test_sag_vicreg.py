"""SAG-VICReg against a plain per-row loop of the paper's Appendix I."""

import jax
import numpy as np
import pytest
from scipy import stats

from jax_ssl import losses
from jax_ssl.losses import sag_vicreg
from tests.gradcheck import assert_grad_matches_reference
from tests.losses.test_vicreg import ref_covariance
from tests.losses.test_vicreg import ref_invariance
from tests.losses.test_vicreg import ref_variance


def _views(n, d, seed=0):
  rng = np.random.default_rng(seed)
  z1 = rng.standard_normal((n, d))
  return z1.astype(np.float32), (z1 + 0.3 * rng.standard_normal((n, d))).astype(np.float32)


def ref_affinity(z, z_prime, k=5, percentile=20.0, min_scale=1e-7, scale_over="neighbours", own_pair=False):
  """Appendix I (and App. C's row-wise scale), one row at a time, in float64."""
  z, z_prime = z.astype(np.float64), z_prime.astype(np.float64)
  affinity = np.zeros((len(z), len(z_prime)))
  for i, zi in enumerate(z):
    dist = np.array([1 - zi @ zj / (np.linalg.norm(zi) * np.linalg.norm(zj)) for zj in z_prime])
    candidates = list(range(len(z_prime)))
    if own_pair:
      dist[i] = dist.min()
      candidates = [i] + [j for j in candidates if j != i]  # the own candidate wins every tie
    neighbours = sorted(candidates, key=lambda j: dist[j])[:k]  # a stable sort keeps that order on ties
    nearest = dist[neighbours[0]]
    adjusted = dist[neighbours] - nearest
    spread = adjusted if scale_over == "neighbours" else dist - nearest
    scale = max(np.percentile(spread, percentile), min_scale)
    for j, a in zip(neighbours, adjusted):
      affinity[i, j] = np.exp(-(a**2) / scale**2)
  return affinity


@pytest.mark.parametrize("n,d,k,percentile", [(8, 4, 3, 20.0), (40, 16, 5, 20.0), (64, 32, 10, 50.0), (3, 2, 1, 20.0)])
def test_affinity_matches_per_row_loop(n, d, k, percentile):
  z1, z2 = _views(n, d, seed=n)
  affinity = jax.jit(losses.knn_affinity, static_argnums=(2, 3))(z1, z2, k, percentile)
  np.testing.assert_allclose(affinity, ref_affinity(z1, z2, k, percentile), rtol=1e-4, atol=1e-6)


def test_affinity_rows_have_k_edges_with_maximum_one():
  # Clustered points make far neighbours underflow the kernel; rows must keep k edges anyway.
  rng = np.random.default_rng(0)
  centers = rng.standard_normal((4, 8)) * 5
  z = (centers[rng.integers(0, 4, 64)] + 0.01 * rng.standard_normal((64, 8))).astype(np.float32)
  for k in (1, 5, 20):
    affinity = np.asarray(losses.knn_affinity(z, z[::-1].copy(), k=k))
    np.testing.assert_array_equal((affinity > 0).sum(axis=1), k)
    np.testing.assert_array_equal(affinity.max(axis=1), 1.0)


def test_random_walk_frequencies_follow_row_normalised_affinity():
  z1, z2 = _views(6, 4, seed=7)
  affinity = np.asarray(losses.knn_affinity(z1, z2, k=4, percentile=50.0))
  probs = affinity / affinity.sum(axis=1, keepdims=True)
  draws = 20_000
  keys = jax.random.split(jax.random.key(1234), draws)
  partners = np.asarray(jax.jit(jax.vmap(losses.random_walk_pairs, in_axes=(0, None)))(keys, affinity))
  assert partners.dtype == np.int32 and partners.shape == (draws, 6)
  counts = np.stack([np.bincount(partners[:, i], minlength=6) for i in range(6)])
  assert np.all(counts[affinity == 0] == 0), "a non-neighbour was drawn"

  def chi_square(expected_probs):
    support = affinity > 0
    expected = draws * expected_probs[support]
    return np.sum((counts[support] - expected) ** 2 / expected)

  dof = int((affinity > 0).sum()) - affinity.shape[0]
  bound = stats.chi2.ppf(0.999, dof)
  assert chi_square(probs) < bound
  # The bound has power: uniform draws over the neighbours (a plausible bug) fail it.
  uniform = (affinity > 0) / (affinity > 0).sum(axis=1, keepdims=True)
  assert chi_square(uniform) > bound


def ref_sag_vicreg(z1, z2, partners, k=5, percentile=20.0, sim=25.0, std=25.0, cov=1.0, graph="cross_view",
                   scale_over="neighbours", regularize="paired"):
  candidates = z1 if graph == "same_view" else z2
  affinity = ref_affinity(z1, candidates, k, percentile, scale_over=scale_over, own_pair=graph != "cross_view")
  walked = z2[partners]
  weights = affinity[np.arange(len(z1)), partners]
  regularized = walked if regularize == "paired" else z2
  return (sim * ref_invariance(z1, walked, weights) + std * (ref_variance(z1) + ref_variance(regularized)) / 2
          + cov * (ref_covariance(z1) + ref_covariance(regularized)))


# With k = 2 at the 20th percentile the second neighbour weighs exp(-25): the small
# case takes the 100th so that its walk leaves home.
@pytest.mark.parametrize("n,d,k,percentile", [(6, 3, 2, 100.0), (48, 12, 5, 20.0), (128, 64, 5, 20.0)])
def test_loss_matches_reference_with_the_same_walk(n, d, k, percentile):
  z1, z2 = _views(n, d, seed=n)
  key = jax.random.key(5)
  partners = np.asarray(losses.random_walk_pairs(key, losses.knn_affinity(z1, z2, k=k, percentile=percentile)))
  assert np.any(partners != np.arange(n)), "the walk should leave some images"
  loss, metrics = jax.jit(losses.sag_vicreg_loss, static_argnums=(3, 4), static_argnames="graph")(
      key, z1, z2, k, percentile, graph="cross_view")
  expected = ref_sag_vicreg(z1.astype(np.float64), z2.astype(np.float64), partners, k=k, percentile=percentile)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  np.testing.assert_allclose(metrics["self_pair_rate"], np.mean(partners == np.arange(n)), rtol=1e-6)


def test_gradients_match_finite_differences():
  z1, z2 = _views(8, 3, seed=11)
  key = jax.random.key(2)
  partners = np.asarray(losses.random_walk_pairs(key, losses.knn_affinity(z1, z2, k=3)))
  z2_64 = z2.astype(np.float64)
  assert_grad_matches_reference(
      lambda z: losses.sag_vicreg_loss(key, z, z2, k=3, graph="cross_view")[0],
      lambda z: ref_sag_vicreg(z, z2_64, partners, k=3), z1, rtol=2e-3)


def test_affinity_is_permutation_equivariant():
  z1, z2 = _views(20, 6, seed=4)
  perm = np.random.default_rng(0).permutation(20)
  affinity = np.asarray(losses.knn_affinity(z1, z2))
  np.testing.assert_allclose(losses.knn_affinity(z1[perm], z2[perm]), affinity[np.ix_(perm, perm)], rtol=1e-6)


@pytest.mark.parametrize("k", [0, 8, 9])
def test_k_must_be_below_batch_size(k):
  z = np.ones((8, 3), np.float32)
  with pytest.raises(ValueError, match="k must satisfy 1 <= k < N = 8"):
    losses.knn_affinity(z, z, k=k)
  with pytest.raises(ValueError, match="k must satisfy"):
    losses.sag_vicreg_loss(jax.random.key(0), z, z, k=k)


def test_bad_shapes_name_the_argument():
  z = np.ones((8, 3), np.float32)
  with pytest.raises(ValueError, match="z_prime must be a 2-D"):
    losses.knn_affinity(z, np.ones(8, np.float32))
  with pytest.raises(ValueError, match="same width"):
    losses.knn_affinity(z, np.ones((8, 4), np.float32))
  with pytest.raises(ValueError, match="affinity must be a 2-D"):
    losses.random_walk_pairs(jax.random.key(0), np.ones(8, np.float32))
  with pytest.raises(ValueError, match="z1 and z2 must have the same shape"):
    losses.sag_vicreg_loss(jax.random.key(0), z, np.ones((7, 3), np.float32))


GRAPHS = ("cross_view", "cross_view_own", "same_view")


@pytest.mark.parametrize("scale_over", ["neighbours", "row"])
@pytest.mark.parametrize("own_pair", [False, True])
def test_affinity_options_match_per_row_loop(scale_over, own_pair):
  z1, z2 = _views(40, 8, seed=3)
  z2 = np.roll(z2, 5, axis=0)  # the own candidate is rarely the nearest: own_pair must put it there
  affinity = jax.jit(losses.knn_affinity, static_argnames=("k", "scale_over", "own_pair"))(
      z1, z2, k=5, scale_over=scale_over, own_pair=own_pair)
  expected = ref_affinity(z1, z2, 5, scale_over=scale_over, own_pair=own_pair)
  np.testing.assert_allclose(affinity, expected, rtol=1e-4, atol=1e-6)
  if own_pair:
    np.testing.assert_array_equal(np.diagonal(affinity), 1.0)


def test_own_pair_wins_ties_and_same_view_includes_self():
  z = np.repeat(_views(4, 3, seed=1)[0], 3, axis=0)  # every point thrice: ties everywhere
  affinity = np.asarray(losses.knn_affinity(z, z, k=2, own_pair=True))
  np.testing.assert_array_equal(np.diagonal(affinity), 1.0)
  np.testing.assert_array_equal((affinity > 0).sum(axis=1), 2)


def test_neighbour_scale_gives_the_second_neighbour_a_fixed_weight():
  # App. I with k = 5 at the 20th percentile: s = 0.8 (d2 - d1), so W(second) = exp(-1 / 0.64) in every row.
  z1, z2 = _views(32, 6, seed=2)
  affinity = np.sort(np.asarray(losses.knn_affinity(z1, z2, k=5)), axis=1)[:, ::-1]
  np.testing.assert_allclose(affinity[:, 1], np.exp(-1.5625), rtol=1e-5)


@pytest.mark.parametrize("regularize", ["paired", "views"])
@pytest.mark.parametrize("scale_over", ["neighbours", "row"])
@pytest.mark.parametrize("graph", GRAPHS)
def test_every_reading_matches_reference_with_the_same_walk(graph, scale_over, regularize):
  z1, z2 = _views(48, 12, seed=48)
  key = jax.random.key(9)
  options = dict(graph=graph, scale_over=scale_over, regularize=regularize)
  loss, metrics = jax.jit(losses.sag_vicreg_loss, static_argnames=("k", *options))(key, z1, z2, k=5, **options)
  affinity = sag_vicreg.walk_affinity(z1, z2, k=5, graph=graph, scale_over=scale_over)
  partners = np.asarray(losses.random_walk_pairs(key, affinity))
  expected = ref_sag_vicreg(z1.astype(np.float64), z2.astype(np.float64), partners, k=5, **options)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  np.testing.assert_allclose(metrics["self_pair_rate"], np.mean(partners == np.arange(48)), rtol=1e-6)
  reference_affinity = ref_affinity(z1, z1 if graph == "same_view" else z2, 5, scale_over=scale_over,
                                    own_pair=graph != "cross_view")
  np.testing.assert_allclose(metrics["pair_weight"], reference_affinity[np.arange(48), partners].mean(), rtol=1e-4)


def test_same_view_pairs_z1_with_the_walked_images_second_view():
  # z2 is z1 shifted by a constant: then the loss's invariance is the weighted distance to z2[j] exactly.
  z1 = _views(24, 4, seed=5)[0]
  z2 = z1 + 10.0
  key = jax.random.key(1)
  _, metrics = losses.sag_vicreg_loss(key, z1, z2, k=3, graph="same_view")
  affinity = losses.knn_affinity(z1, z1, k=3, own_pair=True)
  partners = np.asarray(losses.random_walk_pairs(key, affinity))
  weights = np.asarray(affinity)[np.arange(24), partners]
  expected = np.mean(weights * np.mean((z1.astype(np.float64) - z2[partners]) ** 2, axis=1))
  np.testing.assert_allclose(metrics["invariance"], expected, rtol=1e-5)


def test_bad_options_are_named():
  z = np.ones((8, 3), np.float32)
  with pytest.raises(ValueError, match="graph must be one of"):
    losses.sag_vicreg_loss(jax.random.key(0), z, z, graph="cross")
  with pytest.raises(ValueError, match="scale_over must be one of"):
    losses.knn_affinity(z, z, scale_over="matrix")
  with pytest.raises(ValueError, match="regularize must be one of"):
    losses.sag_vicreg_loss(jax.random.key(0), z, z, regularize="both")
  with pytest.raises(ValueError, match="own_pair pairs row i with candidate i"):
    losses.knn_affinity(z, np.ones((9, 3), np.float32), own_pair=True)


def test_default_reading_is_the_one_the_readings_experiment_chose():
  # experiments/RESULTS.md, sag_vicreg_readings: the graph over the first view's images, self included.
  z1, z2 = _views(32, 8, seed=6)
  key = jax.random.key(3)
  default, _ = losses.sag_vicreg_loss(key, z1, z2)
  chosen, _ = losses.sag_vicreg_loss(key, z1, z2, graph="same_view", scale_over="neighbours", regularize="paired")
  assert (sag_vicreg.DEFAULT_GRAPH, sag_vicreg.DEFAULT_SCALE_OVER, sag_vicreg.DEFAULT_REGULARIZE) == (
      "same_view", "neighbours", "paired")
  np.testing.assert_array_equal(default, chosen)
