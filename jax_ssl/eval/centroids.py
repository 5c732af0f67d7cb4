"""Class centroids of an embedding, and their 2-D UMAP layout: SAG-VICReg's Figure 6.

The paper shows, for models trained on other classes than the embedded
images', where each class's mean embedding lands: a model that keeps the
global structure of unseen data puts related classes' centroids together.
`class_centroids` gives the means, `umap_layout` the 2-D picture (UMAP,
McInnes et al. 2018), and `trees.ward_linkage` of the centroids their
dendrogram.
"""

from __future__ import annotations

import warnings

import numpy as np
from jax.typing import ArrayLike

from jax_ssl.eval import inputs


def class_centroids(features: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  """The mean feature vector of every class present in `labels`.

  Args:
    features: (N, F) features of N items.
    labels: (N,) integer class of each item.

  Returns:
    `(classes, centroids)`: the (C,) sorted distinct classes and the (C, F) float64 mean of each one's rows.

  Raises:
    ValueError: if `features` is not a finite (N, F) array, or `labels` is not (N,) non-negative integers.
  """
  features = inputs.check_features("features", features).astype(np.float64)
  labels = inputs.check_labels("labels", labels, len(features), "features")
  classes, index = np.unique(labels, return_inverse=True)
  sums = np.zeros((len(classes), features.shape[1]))
  np.add.at(sums, index, features)
  return classes, sums / np.bincount(index)[:, None]


def umap_layout(points: ArrayLike, *, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
  """A 2-D UMAP embedding of a few points (class centroids), reproducible from `seed`.

  Euclidean UMAP with `min(n_neighbors, n - 1)` neighbours and spectral
  initialisation, fitted on one thread so that the same seed gives the same
  layout.

  Args:
    points: (n, F) points, n >= 3.
    seed: UMAP's `random_state`.
    n_neighbors: UMAP's neighbourhood size, capped at n - 1.

  Returns:
    The (n, 2) float64 layout.

  Raises:
    ValueError: if `points` is not a finite 2-D array of at least 3 rows.

  References:
    McInnes, Healy, Melville, "UMAP: Uniform Manifold Approximation and Projection for Dimension
    Reduction", arXiv 1802.03426, 2018. Simai, Talmon, Shaham, arXiv 2506.18104, App. A, Figure 6.
  """
  points = inputs.check_features("points", points).astype(np.float64)
  if len(points) < 3:
    raise ValueError(f"points needs at least 3 rows for a UMAP layout, got shape {points.shape}.")
  import umap  # umap-learn compiles its numba kernels on import: only when a layout is asked for
  with warnings.catch_warnings():
    # A fixed random_state disables UMAP's parallelism, which it announces on every fit.
    warnings.simplefilter("ignore", UserWarning)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(n_neighbors, len(points) - 1), random_state=seed,
                        init="spectral", metric="euclidean")
    return np.asarray(reducer.fit_transform(points), np.float64)
