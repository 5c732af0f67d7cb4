"""Hierarchical Rand index: spectral clustering of embeddings scored against each level of a label hierarchy.

SAG-VICReg (Simai, Talmon and Shaham, 2025; Sec. 5 and App. G.4, H) asks
whether an embedding separates classes at every granularity: for each level
of a label hierarchy (e.g. CIFAR-100's 20 superclasses and 100 classes), the
embeddings are spectrally clustered into as many clusters as the level has
classes, and the partition is compared with the labels by the Rand index
(Rand, 1971): the fraction of the n(n-1)/2 pairs on which the two partitions
agree (both put the pair together, or both apart).

Clustering follows sklearn's `SpectralClustering` (Ng, Jordan and Weiss, 2001;
von Luxburg, 2007) on the L2-normalised rows (cosine geometry, as the tree
metrics), with sklearn's symmetric k-nearest-neighbour affinity graph, widened
where needed so a level's k clusters can exist (see `_affinity`).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from collections.abc import Sequence

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from sklearn import cluster
from sklearn import metrics
from sklearn import neighbors

from jax_ssl.eval import trees

# Neighbours per point in the affinity graph to start from: sklearn's
# default, the usual spectral-clustering choice (enough to connect a class's
# points, few enough to keep classes apart). See `_affinity`.
NUM_NEIGHBOURS = 10


def _levels(labels_by_level, n: int) -> dict:
  """{level: labels (n,)} from a mapping or a sequence (levels 0, 1, ...); ValueError for a bad level."""
  if isinstance(labels_by_level, Mapping):
    items = list(labels_by_level.items())
  elif isinstance(labels_by_level, Sequence) and not isinstance(labels_by_level, (str, bytes)):
    items = list(enumerate(labels_by_level))
  elif isinstance(labels_by_level, np.ndarray) and labels_by_level.ndim == 2:
    items = list(enumerate(labels_by_level))
  else:
    raise ValueError(
        "labels_by_level must be a mapping {level name: labels} or a sequence of label arrays, "
        f"got {type(labels_by_level).__name__}.")
  if not items:
    raise ValueError("labels_by_level is empty: give at least one level, e.g. {'label': labels}.")
  levels = {}
  for level, labels in items:
    labels = np.asarray(labels)
    if labels.ndim != 1:
      raise ValueError(f"labels of level {level!r} must be a 1-D array, got shape {labels.shape}.")
    if labels.shape[0] != n:
      raise ValueError(
          f"labels of level {level!r} have {labels.shape[0]} entries but x has {n} rows: "
          f"they must match one to one.")
    levels[level] = labels
  return levels


def _knn_graph(unit: np.ndarray, num_neighbours: int) -> sparse.csr_matrix:
  """sklearn's 'nearest_neighbors' affinity: 0.5 (A + A^T), A the 0/1 k-NN graph including self."""
  connectivity = neighbors.kneighbors_graph(unit, n_neighbors=num_neighbours, include_self=True)
  return (0.5 * (connectivity + connectivity.T)).tocsr()


def _affinity(unit: np.ndarray, num_clusters: int, graphs: dict) -> sparse.csr_matrix:
  """The k-NN affinity graph with the fewest neighbours (10, 20, 40, ...) that has at most `num_clusters` components.

  Spectral clustering into k clusters cannot work on a graph with more than k
  connected components: the k eigenvectors it uses are then an arbitrary
  part of the components' indicator space, and which components end up
  together is an accident of the eigensolver. This happens precisely for
  good embeddings (well-separated fine classes, scored at a coarse level),
  so the neighbourhood is widened until the components can be grouped into
  k clusters. `graphs` caches graphs by neighbour count across levels.
  """
  n = unit.shape[0]
  num_neighbours = min(NUM_NEIGHBOURS, n - 1)
  while True:
    if num_neighbours not in graphs:
      graphs[num_neighbours] = _knn_graph(unit, num_neighbours)
    graph = graphs[num_neighbours]
    if num_neighbours >= n - 1 or csgraph.connected_components(graph, directed=False)[0] <= num_clusters:
      return graph
    num_neighbours = min(2 * num_neighbours, n - 1)


def _spectral_partition(unit: np.ndarray, num_clusters: int, seed: int, graphs: dict) -> np.ndarray:
  """Cluster assignment of the rows of `unit` into `num_clusters` groups."""
  n = unit.shape[0]
  if num_clusters == 1:
    return np.zeros(n, dtype=np.int64)
  if num_clusters >= n:  # the only partition of n points into n groups
    return np.arange(n)
  model = cluster.SpectralClustering(
      n_clusters=num_clusters, affinity="precomputed", assign_labels="kmeans", random_state=seed)
  with warnings.catch_warnings():
    # A graph with fewer components than clusters is fine (see `_affinity`).
    warnings.filterwarnings("ignore", message="Graph is not fully connected")
    return model.fit_predict(_affinity(unit, num_clusters, graphs))


def hierarchical_rand_index(x, labels_by_level, seed: int = 0) -> dict:
  """Rand index of a spectral clustering of `x` (n, d) against each level's labels: {level: float}.

  For each level, with k = number of distinct labels at that level:
  spectral clustering (`sklearn.cluster.SpectralClustering`) of the
  L2-normalised rows into k clusters, on sklearn's symmetric
  nearest-neighbour affinity `0.5 (A + A^T)` (A: each point's neighbours,
  itself included) with 10 neighbours (at most n - 1), doubled while the
  graph has more than k connected components (then no k-way spectral
  partition is meaningful, see `_affinity`), and k-means on the spectral
  embedding seeded by `seed`; then
  `sklearn.metrics.rand_score(labels, clusters)`, the fraction of pairs on
  which the two partitions agree. 1.0 means the clustering reproduces the
  level exactly; random clusters of k balanced classes score about
  `1 - 2 (k - 1) / k^2` (the pairs both call "apart" dominate as k grows),
  so compare models on the same levels, not against 0.

  Args:
    x: (n, d) real embeddings, n >= 3, one row per item.
    labels_by_level: a mapping {level name: labels (n,)} (e.g. {'superclass': coarse, 'class': fine}), or a
      sequence of label arrays or a 2-D array with one row per level (keys 0, 1, ...). Labels may be any values
      np.unique can sort.
    seed: random state of the k-means step.

  Returns:
    Dict {level: Rand index}, a float in [0, 1] per level, in the order the levels were given.

  Raises:
    ValueError: if `x` is not 2-D and real, has fewer than 3 rows or a NaN / inf row, if `labels_by_level` is
      empty or neither a mapping nor a sequence, or if a level's labels are not 1-D or do not have one entry
      per row.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 5 and App. G.4, H; Rand (1971).
  """
  x = trees.check_embeddings("x", x)
  levels = _levels(labels_by_level, x.shape[0])
  unit = trees.unit_rows(x)
  graphs: dict = {}
  scores = {}
  for level, labels in levels.items():
    num_clusters = np.unique(labels).size
    clusters = _spectral_partition(unit, num_clusters, seed, graphs)
    scores[level] = float(metrics.rand_score(labels, clusters))
  return scores
