"""Class centroids and their UMAP layout (SAG-VICReg's Figure 6)."""

import numpy as np
import pytest

from jax_ssl.eval import centroids


def test_class_centroids_are_the_means_of_each_present_class():
  rng = np.random.default_rng(0)
  features = rng.standard_normal((30, 5)).astype(np.float32)
  labels = rng.choice([2, 5, 7], size=30)
  classes, means = centroids.class_centroids(features, labels)
  assert classes.tolist() == [2, 5, 7]
  for row, label in enumerate(classes):
    np.testing.assert_allclose(means[row], features[labels == label].astype(np.float64).mean(axis=0), rtol=1e-12)
  # The order of the items does not matter.
  order = rng.permutation(30)
  np.testing.assert_allclose(centroids.class_centroids(features[order], labels[order])[1], means, rtol=1e-12)


# With the generalization test in one worker (`--dist loadgroup`): umap-learn's numba kernels compile once.
@pytest.mark.xdist_group("umap")
def test_umap_layout_is_reproducible_and_keeps_separate_groups_apart():
  rng = np.random.default_rng(0)
  offsets = np.repeat(np.array([[8.0], [-8.0], [0.0]]) * np.eye(3, 12)[[0, 1, 2]] * 3, 4, axis=0)
  points = offsets + rng.standard_normal((12, 12))
  groups = np.repeat(np.arange(3), 4)
  layout = centroids.umap_layout(points, seed=3)
  assert layout.shape == (12, 2) and np.isfinite(layout).all()
  np.testing.assert_array_equal(centroids.umap_layout(points, seed=3), layout)
  distances = np.linalg.norm(layout[:, None] - layout[None], axis=-1) + np.diag(np.full(12, np.inf))
  assert np.all(groups[np.argmin(distances, axis=1)] == groups), "each point's nearest neighbour is in its group"


@pytest.mark.parametrize("points,message", [(np.zeros((2, 4)), "at least 3 rows"),
                                            (np.full((5, 4), np.nan), "NaN or inf")])
def test_umap_layout_refuses_what_it_cannot_lay_out(points, message):
  with pytest.raises(ValueError, match=message):
    centroids.umap_layout(points)
