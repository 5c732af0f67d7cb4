"""Label-free global-structure similarity of two embeddings of the same items (SAG-VICReg, Sec. 4.4).

Given two sets x1, x2 whose row i embeds the same item (two models, or data
and its embedding), each set gets a Ward dendrogram (`trees.ward_linkage`,
cosine geometry) and the trees are compared pair by pair:

- `lca_similarity`: Pearson, Spearman and Kendall tau-b correlations between
  the LCA (tree path length) distances of all n(n-1)/2 pairs in tree 1 and
  in tree 2. 1 means the two hierarchies order all pairs alike.
- `cophenetic_similarity`: the cophenetic correlation coefficient (Sokal and
  Rohlf, 1962) across sets: Pearson between tree 1's cophenetic (merge
  height) distances and the chordal distances between x2's unit rows
  (`d1_to_p2`), and the reverse (`d2_to_p1`). It asks whether one set's
  hierarchy explains the other set's geometry.

All pairs are used, without sampling, and the results equal scipy's
composition (linkage, cophenet, pdist, scipy.stats) to ~1e-12, but no
n(n-1)/2 float vector is ever formed: sums run over chunks of a tree's
leaf-order LCA matrix (see `trees.lca_node_matrix`), and the three LCA
correlations come from a contingency table (`correlation.py`). At n = 10,000
(5e7 pairs) the two functions together took 12 s on a loaded 2-core CPU, most
of it scipy's Ward linkage, and 0.8 GB; the plain scipy composition took 4.4x
longer and 6.5 GB (experiments/bench/eval.py).
"""

from __future__ import annotations

import numpy as np

from jax_ssl.eval import correlation
from jax_ssl.eval import trees


def _check_sets(x1, x2) -> tuple[np.ndarray, np.ndarray]:
  x1 = trees.check_embeddings("x1", x1)
  x2 = trees.check_embeddings("x2", x2)
  trees.check_same_rows(x1, x2)
  return x1, x2


def _num_lca_values(layout: trees.TreeLayout) -> int:
  """Size of the code range of LCA distances: they lie in [2, 2 max leaf depth]."""
  return 2 * int(layout.depth[:layout.num_leaves].max()) + 1


def lca_table(layout1: trees.TreeLayout, layout2: trees.TreeLayout):
  """(values1, values2, table): the contingency table of the LCA distances of all pairs in the two trees.

  `table[a, b]` = number of pairs i < j at LCA distance `values1[a]` in tree 1
  and `values2[b]` in tree 2. Pairs are swept in tree 1's leaf order, chunk
  by chunk of rows (row p pairs with columns q > p), so tree 1's LCA nodes are
  contiguous slices; tree 2's are gathered from its own leaf-order matrix.

  Args:
    layout1: `trees.TreeLayout` of the first tree, n leaves.
    layout2: `trees.TreeLayout` of the second tree over the same n leaves.

  Returns:
    `(values1, values2, table)`: float64 (A,) and (B,) increasing LCA distances that occur in each tree, and the
    (A, B) int64 pair counts, as `correlation.contingency_table` of the two `trees.lca_distances` vectors.
  """
  n = layout1.num_leaves
  matrix1, matrix2 = trees.lca_node_matrix(layout1), trees.lca_node_matrix(layout2)
  # Per-leaf arrays, indexed by tree 1's leaf-order position.
  depth1 = layout1.depth[:n][layout1.order].astype(np.int32)
  depth2 = layout2.depth[:n][layout1.order].astype(np.int32)
  position2 = layout2.position[layout1.order]
  node_depth1 = np.append(layout1.depth[n:], 0).astype(np.int32)
  node_depth2 = np.append(layout2.depth[n:], 0).astype(np.int32)
  # The value is its own code: no sort to find the distinct values.
  num1, num2 = _num_lca_values(layout1), _num_lca_values(layout2)
  skipped = num1 * num2  # extra bin for the non-pairs of each chunk (diagonal and below)
  counts = np.zeros(skipped + 1, dtype=np.int64)
  for start, stop in trees.row_chunks(n):
    dist1 = depth1[start:stop, None] + depth1[None, start:] - 2 * node_depth1[matrix1[start:stop, start:]]
    nodes2 = matrix2[np.ix_(position2[start:stop], position2[start:])]
    code = depth2[start:stop, None] + depth2[None, start:] - 2 * node_depth2[nodes2]
    code += dist1 * num2
    code[:, :stop - start][np.tri(stop - start, dtype=bool)] = skipped
    counts += np.bincount(code.reshape(-1), minlength=skipped + 1)
  table = counts[:skipped].reshape(num1, num2)
  values1 = np.arange(num1, dtype=np.float64)
  values2 = np.arange(num2, dtype=np.float64)
  return correlation.compact(values1, values2, table)


def lca_similarity(x1, x2) -> dict[str, float]:
  """Correlations between the LCA distances of the Ward trees of `x1` and `x2` (n, d1), (n, d2).

  SAG-VICReg's LCA similarity: build a Ward dendrogram of each set's
  L2-normalised rows (`ward_linkage`); for every pair i < j take its tree
  path length in each tree, `depth_i + depth_j - 2 depth_LCA(i, j)`
  (`lca_distances`); return

    {'pearson': r, 'spearman': rho, 'kendall': tau_b}

  between the two n(n-1)/2 vectors, equal to `scipy.stats.pearsonr`,
  `spearmanr` and `kendalltau` (tau-b) on them (Kendall exactly). Comparing
  a set with itself gives 1.0 for all three. Invariant to rotating or
  positively scaling either set, and to permuting the items in both.

  No coefficient is ever NaN here: a binary tree on n >= 3 leaves always has
  a pair of sibling leaves (distance 2) and a pair farther apart, so neither
  vector is constant (the table functions would return NaN for a constant one).

  Args:
    x1: (n, d1) real embeddings of the items, n >= 3.
    x2: (n, d2) real embeddings of the same items, row i of both being item i.

  Returns:
    Dict {'pearson', 'spearman', 'kendall'} of floats in [-1, 1].

  Raises:
    ValueError: if an input is not a real 2-D array, has fewer than 3 rows or a NaN / inf row, or if the two have
      different numbers of rows.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4.
  """
  x1, x2 = _check_sets(x1, x2)
  linkage1, linkage2 = trees.ward_linkage(x1), trees.ward_linkage(x2)
  layout1, layout2 = trees.tree_layout(linkage1), trees.tree_layout(linkage2)
  if _num_lca_values(layout1) * _num_lca_values(layout2) > correlation.MAX_TABLE_CELLS:
    # Chain-like trees (depths in the thousands, e.g. points strung along a
    # line at growing spacings) have too many distinct distances for a dense
    # table: correlate the full vectors instead (slower, same numbers).
    return correlation.correlations(trees.lca_distances(linkage1), trees.lca_distances(linkage2))
  return correlation.table_correlations(*lca_table(layout1, layout2))


def cophenetic_pearson(layout: trees.TreeLayout, unit: np.ndarray) -> float:
  """Pearson's r over all pairs between the tree's cophenetic distances and the distances of the rows of `unit`.

  With c the cophenetic and d the Euclidean distance of a pair, and N pairs:

    r = sum (c - mean c)(d - s) / sqrt(sum (c - mean c)^2 * sum (d - mean d)^2)

  for any shift s. The cophenetic side needs no pass over the pairs: node
  n + i puts `|a_i| |b_i|` pairs at height `h_i`, so mean and variance are
  weighted sums over the n - 1 nodes. Only the sums of d - s, (d - s)^2 and
  c (d - s) run over the pairs, in the tree's leaf order by row chunks: c is a
  lookup of heights through the leaf-order LCA matrix, d a BLAS block
  (`trees.chordal_block`). The shift s is the root mean square distance, exact
  from `sum_{i<j} |u_i - u_j|^2 = n sum_i |u_i|^2 - |sum_i u_i|^2`, so that
  the final `sum (d - s)^2 - (sum (d - s))^2 / N` does not cancel.

  Args:
    layout: `trees.TreeLayout` of a tree with n leaves.
    unit: (n, D) float64 points in the leaves' own (item) order, e.g. `trees.unit_rows` of a set.

  Returns:
    Pearson's r as a float in [-1, 1]; NaN if either side has no variance.
  """
  n = layout.num_leaves
  pairs = n * (n - 1) // 2
  weights = (layout.size[layout.left] * layout.size[layout.right]).astype(np.float64)
  mean_c = float(weights @ layout.height) / pairs
  centred_c = layout.height - mean_c
  var_c = float(weights @ (centred_c * centred_c))
  matrix = trees.lca_node_matrix(layout)
  height = np.append(layout.height, 0.0)  # + the diagonal's sentinel node
  leaves = unit[layout.order]
  total = leaves.sum(axis=0)
  shift = float(np.sqrt(max(n * np.einsum("ij,ij->", leaves, leaves) - total @ total, 0.0) / pairs))
  points = trees.augment(leaves)
  sum_d = sum_dd = sum_cd = 0.0
  for start, stop in trees.row_chunks(n):
    d = trees.chordal_block(points, start, stop)
    d -= shift
    d[:, :stop - start][np.tri(stop - start, dtype=bool)] = 0.0  # not pairs i < j: contribute nothing
    c = height[matrix[start:stop, start:]]
    d, c = d.reshape(-1), c.reshape(-1)
    sum_d += d.sum()
    sum_dd += d @ d
    sum_cd += c @ d
  # sum (c - mean c)(d - s) = sum c (d - s) - mean c * sum (d - s)
  cov = sum_cd - mean_c * sum_d
  var_d = sum_dd - sum_d * sum_d / pairs
  if var_c <= 0 or var_d <= 0:
    return float("nan")
  return float(np.clip(cov / np.sqrt(var_c) / np.sqrt(var_d), -1.0, 1.0))


def cophenetic_similarity(x1, x2) -> dict[str, float]:
  """Cross-set cophenetic correlations of `x1` and `x2` (n, d1), (n, d2): {'d1_to_p2', 'd2_to_p1'}.

  SAG-VICReg's cophenetic similarity: with T_k the Ward tree of x_k's
  L2-normalised rows (`ward_linkage`) and P_k the chordal distances between
  those rows (`sqrt(2 - 2 cos)`, what Ward clustered on),

    d1_to_p2 = Pearson over pairs i < j of (cophenetic_T1(i, j), P_2(i, j))
    d2_to_p1 = Pearson over pairs i < j of (cophenetic_T2(i, j), P_1(i, j))

  equal to `np.corrcoef(cophenet(Z1), pdist(unit(x2)))[0, 1]` to ~1e-12.
  Note that a set compared with itself does not give 1.0: it gives the
  tree's own cophenetic correlation coefficient `c` (the first output of
  `scipy.cluster.hierarchy.cophenet(Z, pdist)`), i.e. how well a dendrogram
  can represent the geometry at all. NaN if one side has no variance.

  Args:
    x1: (n, d1) real embeddings of the items, n >= 3.
    x2: (n, d2) real embeddings of the same items, row i of both being item i.

  Returns:
    Dict {'d1_to_p2', 'd2_to_p1'} of floats in [-1, 1] (or NaN).

  Raises:
    ValueError: if an input is not a real 2-D array, has fewer than 3 rows or a NaN / inf row, or if the two have
      different numbers of rows.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4; Sokal and Rohlf (1962).
  """
  x1, x2 = _check_sets(x1, x2)
  layout1 = trees.tree_layout(trees.ward_linkage(x1))
  layout2 = trees.tree_layout(trees.ward_linkage(x2))
  return {
      "d1_to_p2": cophenetic_pearson(layout1, trees.unit_rows(x2)),
      "d2_to_p1": cophenetic_pearson(layout2, trees.unit_rows(x1)),
  }
