"""Ward dendrograms of embeddings and the pairwise distances they induce.

The label-free structure metric of the SAG-VICReg paper (Simai, Talmon and
Shaham, 2025, Sec. 4.4) compares two embeddings of the same items through
their hierarchical trees: each set is clustered agglomeratively with Ward's
criterion (Ward, 1963: merge the two clusters whose union increases the
within-cluster sum of squares least), and every pair of items then gets two
tree distances:

- the LCA distance: the number of edges on the tree path between leaves i and
  j, `depth_i + depth_j - 2 depth_LCA(i, j)` (root at depth 0);
- the cophenetic distance (Sokal and Rohlf, 1962): the height at which i and j
  first join one cluster, i.e. the merge height of their lowest common
  ancestor.

This module builds the trees and those distances; `structure.py` correlates
them. Geometry is cosine: rows are L2-normalised first, so the Euclidean
distance Ward works on is the chordal distance `sqrt(2 - 2 cos)`.

Everything exploits one fact: in the order in which a depth-first traversal
meets the leaves, every internal node owns a contiguous range of leaves, its
two children own the two halves of that range, and all pairs (i in child a,
j in child b) share the node as their LCA. A square "LCA matrix" in leaf order
is therefore filled by n - 1 rectangular block writes instead of n^2 / 2 tree
walks, and any per-pair tree quantity is a lookup into it.
"""

from __future__ import annotations

import collections
import hashlib
import threading
from typing import NamedTuple

import numpy as np
from scipy.cluster import hierarchy

# Squared chordal distances below this are recomputed from the coordinate
# differences: the Gram-matrix form 2 - 2 u.v loses relative precision as
# points approach each other (its absolute error is ~1e-15), which would
# scramble the merge order of near-duplicates (e.g. a nearly collapsed model).
_REFINE_BELOW = 1e-3
# Elements of float64 work matrices per chunk (32 MiB): bounds peak memory
# above the outputs themselves and keeps chunks cache-friendly.
_CHUNK_ELEMENTS = 1 << 22
# Ward linkages kept, keyed by the content of the input: lca_similarity and
# cophenetic_similarity of the same sets reuse the trees instead of re-linking.
_CACHE_SIZE = 4

_cache: collections.OrderedDict[bytes, np.ndarray] = collections.OrderedDict()
_cache_lock = threading.Lock()


# ----------------------------------------------------------------------------
# Input checks.
# ----------------------------------------------------------------------------


def check_embeddings(name: str, x, min_rows: int = 3) -> np.ndarray:
  """`x` as a finite real (N, D) numpy array with N >= `min_rows`; ValueError naming `name` otherwise.

  Args:
    name: the argument's name, used in the error messages.
    x: array-like embeddings, one row per item; integer or floating dtype.
    min_rows: fewest rows accepted (3 by default: the smallest set the tree metrics handle).

  Returns:
    `np.asarray(x)`, its dtype unchanged.

  Raises:
    ValueError: if `x` is not 2-D, not real numeric, has fewer than `min_rows` rows or no columns, or has a row
      with a NaN or inf (the message lists the offending row indices).
  """
  x = np.asarray(x)
  if x.ndim != 2:
    raise ValueError(f"{name} must be a 2-D (num_samples, dim) array, got shape {x.shape}.")
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ValueError(f"{name} must be a real numeric array, got dtype {x.dtype}.")
  if x.shape[0] < min_rows:
    raise ValueError(
        f"{name} has {x.shape[0]} rows: the tree metrics need at least {min_rows} samples "
        f"(one row per item).")
  if x.shape[1] < 1:
    raise ValueError(f"{name} has no columns (shape {x.shape}): each row must be an embedding.")
  finite_rows = np.isfinite(x).all(axis=1)
  if not finite_rows.all():
    bad = np.flatnonzero(~finite_rows)
    shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
    raise ValueError(
        f"{name} has NaN or inf in {bad.size} row(s) (row index {shown}): check the encoder, "
        f"or drop those rows from both sets.")
  return x


def check_same_rows(x1: np.ndarray, x2: np.ndarray) -> None:
  """Checks that two embedding sets have one row per item each, row i of both being the same item.

  Args:
    x1: (N1, D1) embeddings of the items.
    x2: (N2, D2) embeddings of the same items (the widths may differ).

  Raises:
    ValueError: if N1 != N2.
  """
  if x1.shape[0] != x2.shape[0]:
    raise ValueError(
        f"x1 has {x1.shape[0]} rows but x2 has {x2.shape[0]}: both sets must embed the same items, "
        f"row i of x1 and row i of x2 being the same item.")


def unit_rows(x: np.ndarray) -> np.ndarray:
  """float64 rows scaled to unit length; an all-zero row stays zero (cosine 0 with everything, as in the probes).

  Each row is divided by its largest absolute entry before its norm is taken, so the squares can neither
  overflow nor underflow.

  Args:
    x: (N, D) real array.

  Returns:
    (N, D) float64 array whose rows have unit L2 norm (or are all zero).
  """
  x = np.asarray(x, dtype=np.float64)
  # Divide by the largest entry first so squaring cannot overflow or underflow.
  scale = np.max(np.abs(x), axis=1, keepdims=True)
  scale[scale == 0] = 1.0
  x = x / scale
  norms = np.sqrt(np.einsum("ij,ij->i", x, x))[:, None]
  norms[norms == 0] = 1.0
  return x / norms


# ----------------------------------------------------------------------------
# Chordal distances and Ward linkage.
# ----------------------------------------------------------------------------


class AugmentedRows(NamedTuple):
  """Points u (n, D) with their squared norms folded in, so one matrix product gives squared distances.

  `left[i] . right[j] = |u_i|^2 + |u_j|^2 - 2 u_i . u_j = |u_i - u_j|^2`:
  `left = [u, |u|^2, 1]`, `right = [-2 u, 1, |u|^2]`. Three elementwise
  passes over every (i, j) block become two extra columns of the BLAS call.
  """
  left: np.ndarray
  right: np.ndarray

  @property
  def points(self) -> np.ndarray:
    return self.left[:, :-2]


def augment(u: np.ndarray) -> AugmentedRows:
  """The `AugmentedRows` of points `u`: `left = [u, |u|^2, 1]`, `right = [-2 u, 1, |u|^2]`.

  Args:
    u: (n, D) float points (in this module, unit rows from `unit_rows`).

  Returns:
    `AugmentedRows` whose `left` and `right` are (n, D + 2) arrays of `u`'s dtype.
  """
  sq = np.einsum("ij,ij->i", u, u)[:, None]
  ones = np.ones_like(sq)
  return AugmentedRows(np.hstack([u, sq, ones]), np.hstack([-2.0 * u, ones, sq]))


def chordal_block(points: AugmentedRows, start: int, stop: int) -> np.ndarray:
  """Euclidean distances, float64 (stop - start, n - start), from rows start..stop-1 to rows start..n-1.

  Squared distances come from one BLAS product (`AugmentedRows`); entries
  below `_REFINE_BELOW` are recomputed from the coordinate differences, so
  near-duplicates keep full relative precision (as `pdist` has): the product
  form's absolute error (~1e-15) would otherwise scramble their merge order,
  e.g. for a nearly collapsed model. Entries that are not pairs i < j (the
  leading square's diagonal and below) are set to 0 and never refined.

  Args:
    points: `AugmentedRows` of all n points (`augment`).
    start: first row of the block, 0 <= start < stop.
    stop: one past the block's last row, at most n.

  Returns:
    float64 (stop - start, n - start) array: entry (r, c) is the distance between points start + r and start + c
    when r < c, else 0.
  """
  d2 = points.left[start:stop] @ points.right[start:].T
  m = stop - start
  lower = np.tri(m, dtype=bool)
  d2[:, :m][lower] = np.inf
  if d2.min() < _REFINE_BELOW:  # rare on real data: one cheap pass decides
    r, c = np.nonzero(d2 < _REFINE_BELOW)
    rows, cols = points.points[start:stop], points.points[start:]
    # Differences in bounded batches: a collapsed embedding has ~all pairs close.
    batch = max(1, _CHUNK_ELEMENTS // rows.shape[1])
    for s in range(0, r.size, batch):
      diff = rows[r[s:s + batch]] - cols[c[s:s + batch]]
      d2[r[s:s + batch], c[s:s + batch]] = np.einsum("ij,ij->i", diff, diff)
  # Every entry left is >= _REFINE_BELOW or a sum of squares: no negative
  # rounding residue reaches the square root.
  np.sqrt(d2, out=d2)
  d2[:, :m][lower] = 0.0
  return d2


def row_chunks(n: int):
  """(start, stop) row ranges of an upper-triangular sweep: row i pairs with columns i..n-1.

  Rows per chunk grow as the rows shorten, so every chunk holds about
  `_CHUNK_ELEMENTS` entries.

  Args:
    n: number of rows (and columns) of the square being swept.

  Yields:
    `(start, stop)` int pairs, consecutive and covering 0..n-1, each with at least one row.
  """
  start = 0
  while start < n:
    stop = min(n, start + max(1, _CHUNK_ELEMENTS // (n - start)))
    yield start, stop
    start = stop


def condensed_offsets(n: int) -> np.ndarray:
  """Index in a condensed (scipy `pdist` order) vector of the pair (i, i + 1), for i = 0..n-1.

  Args:
    n: number of items.

  Returns:
    int64 (n,) offsets `n i - i (i + 1) / 2`; row i's pairs (i, i + 1..n - 1) occupy the n - 1 - i entries from
    offset i on. The last entry, n(n-1)/2, is the vector's length (row n - 1 has no pairs).
  """
  i = np.arange(n, dtype=np.int64)
  return n * i - i * (i + 1) // 2


def chordal_condensed(u: np.ndarray) -> np.ndarray:
  """Condensed Euclidean distances between the rows of `u` (pdist order), float64.

  Computed in row chunks over the upper triangle only, so no n x n matrix
  exists: the product costs half of a full Gram matrix and memory stays at the
  output (n(n-1)/2 floats) plus one chunk.

  Args:
    u: (n, D) float points (unit rows from `unit_rows` in this module).

  Returns:
    float64 (n(n-1)/2,) distances, pair (i, j), i < j, at `condensed_offsets(n)[i] + j - i - 1` as in
    `scipy.spatial.distance.pdist`.
  """
  n = u.shape[0]
  points = augment(u)
  out = np.empty(n * (n - 1) // 2, dtype=np.float64)
  offsets = condensed_offsets(n)
  for start, stop in row_chunks(n):
    block = chordal_block(points, start, stop)
    for i in range(start, min(stop, n - 1)):
      out[offsets[i]:offsets[i] + n - 1 - i] = block[i - start, i - start + 1:]
  return out


def _content_key(x: np.ndarray) -> bytes:
  """Digest of the array's values, shape and dtype (equal arrays give equal keys)."""
  x = np.ascontiguousarray(x)
  digest = hashlib.blake2b(digest_size=20)
  digest.update(repr((x.shape, x.dtype.str)).encode())
  digest.update(memoryview(x).cast("B"))
  return digest.digest()


def ward_linkage(x) -> np.ndarray:
  """Ward linkage of the L2-normalised rows of `x` (n, d): a scipy linkage matrix (n - 1, 4), float64.

  Rows are scaled to unit length (cosine geometry; an all-zero row stays at
  the origin), and Ward's minimum-variance criterion runs on the Euclidean
  (chordal) distances between them, `sqrt(2 - 2 cos(x_i, x_j))`. The result
  is scipy's `linkage(pdist(unit_rows), 'ward')`; the distances come from
  BLAS in row chunks (about twice as fast as `pdist`, see `chordal_condensed`).

  The last few results are cached by a hash of `x`'s contents, so the
  similarity functions can call this for the same sets without linking twice;
  a fresh copy is returned each time.

  Args:
    x: (n, d) real array-like embeddings, one row per item, n >= 3.

  Returns:
    float64 (n - 1, 4) scipy linkage matrix: row i merges clusters `[i, 0]` and `[i, 1]` at height `[i, 2]` into
    cluster n + i of `[i, 3]` leaves. A fresh writable copy on every call.

  Raises:
    ValueError: if `x` is not 2-D, is not real numeric, has fewer than 3 rows or no columns, or has a NaN or inf
      entry.

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4 (the trees of the structure metric); Ward (1963).
  """
  x = check_embeddings("x", x)
  key = _content_key(x)
  with _cache_lock:
    cached = _cache.get(key)
    if cached is not None:
      _cache.move_to_end(key)
      return cached.copy()
  distances = chordal_condensed(unit_rows(x))
  # scipy's nearest-neighbour-chain Ward: O(n^2) time on the condensed vector.
  linkage = hierarchy.linkage(distances, method="ward")
  del distances
  linkage.setflags(write=False)
  with _cache_lock:
    _cache[key] = linkage
    _cache.move_to_end(key)
    while len(_cache) > _CACHE_SIZE:
      _cache.popitem(last=False)
  return linkage.copy()


# ----------------------------------------------------------------------------
# Tree layout: leaf order, node ranges, depths.
# ----------------------------------------------------------------------------


class TreeLayout(NamedTuple):
  """A linkage's tree in the arrays the block schemes need.

  Nodes are numbered as in scipy: leaves 0..n-1, merge row i creates node n + i
  (so the root is 2n - 2). Leaf order is a depth-first traversal visiting the
  first child (`linkage[i, 0]`) first: the order of `scipy.cluster.hierarchy.leaves_list`.
  """
  num_leaves: int
  left: np.ndarray    # (n-1,) first child of internal node n + i
  right: np.ndarray   # (n-1,) second child
  size: np.ndarray    # (2n-1,) number of leaves under each node
  start: np.ndarray   # (2n-1,) position in leaf order of each node's first leaf
  depth: np.ndarray   # (2n-1,) edges from the root
  order: np.ndarray   # (n,) leaf at each position of leaf order
  position: np.ndarray  # (n,) position of each leaf in leaf order
  height: np.ndarray  # (n-1,) merge height of internal node n + i


def check_linkage(linkage, name: str = "linkage") -> np.ndarray:
  """`linkage` as a float64 (n-1, 4) scipy linkage matrix; ValueError describing the first defect found.

  The leaf counts (column 3) are not checked here; `tree_layout` checks them.

  Args:
    linkage: array-like (n - 1, 4) linkage matrix, n >= 2, as from `ward_linkage` or scipy.
    name: the argument's name, used in the error messages.

  Returns:
    The matrix as a float64 numpy array (not copied when it already is one).

  Raises:
    ValueError: if it is not a numeric (n - 1, 4) array with at least one row, holds NaN or inf, has child indices
      (columns 0 and 1) that are not whole numbers, refer to clusters not yet created or merge a cluster twice,
      or has a negative merge height (column 2).
  """
  z = np.asarray(linkage)
  hint = "pass a scipy linkage matrix, e.g. from ward_linkage(x) or scipy.cluster.hierarchy.linkage"
  if z.ndim != 2 or z.shape[1] != 4:
    raise ValueError(f"{name} must be a 2-D (n - 1, 4) array, got shape {z.shape}: {hint}.")
  if z.shape[0] < 1:
    raise ValueError(f"{name} has no rows: a tree needs at least 2 leaves ({hint}).")
  if not (np.issubdtype(z.dtype, np.floating) or np.issubdtype(z.dtype, np.integer)):
    raise ValueError(f"{name} must be numeric, got dtype {z.dtype}: {hint}.")
  z = z.astype(np.float64, copy=False)
  if not np.isfinite(z).all():
    raise ValueError(f"{name} contains NaN or inf: {hint}.")
  n = z.shape[0] + 1
  children = z[:, :2]
  if np.any(children != np.round(children)):
    raise ValueError(f"{name} columns 0 and 1 must hold whole-number cluster indices: {hint}.")
  created = n + np.arange(n - 1)[:, None]
  bad = np.flatnonzero(np.any((children < 0) | (children >= created), axis=1))
  if bad.size:
    raise ValueError(
        f"{name} row {bad[0]} merges cluster {children[bad[0]].astype(np.int64).tolist()}, but row {bad[0]} may only "
        f"use leaves 0..{n - 1} and clusters created by earlier rows (< {n + bad[0]}): {hint}.")
  counts = np.bincount(children.astype(np.int64).ravel(), minlength=2 * n - 2)
  if counts.max() > 1:
    raise ValueError(f"{name} merges cluster {int(np.argmax(counts))} more than once: {hint}.")
  if np.any(z[:, 2] < 0):
    raise ValueError(f"{name} has negative merge heights (column 2): {hint}.")
  return z


def tree_layout(linkage) -> TreeLayout:
  """The `TreeLayout` of a scipy linkage matrix (validated by `check_linkage`).

  Args:
    linkage: array-like (n - 1, 4) scipy linkage matrix.

  Returns:
    The `TreeLayout` of its n-leaf tree (int64 index arrays, float64 merge heights).

  Raises:
    ValueError: if `check_linkage` rejects `linkage`, or a row's leaf count (column 3) differs from the leaves
      its children hold.
  """
  z = check_linkage(linkage)
  n = z.shape[0] + 1
  left = z[:, 0].astype(np.int64)
  right = z[:, 1].astype(np.int64)
  # Python lists: these O(n) loops run per node, and list indexing is ~10x
  # faster than numpy scalar indexing.
  left_l, right_l = left.tolist(), right.tolist()
  size = [1] * n + [0] * (n - 1)
  for i in range(n - 1):
    size[n + i] = size[left_l[i]] + size[right_l[i]]
  size = np.asarray(size, dtype=np.int64)
  mismatch = np.flatnonzero(z[:, 3] != size[n:])
  if mismatch.size:
    i = mismatch[0]
    raise ValueError(
        f"linkage row {i} says its cluster has {z[i, 3]:g} leaves (column 3) but its children hold "
        f"{size[n + i]}: pass a scipy linkage matrix, e.g. from ward_linkage(x).")
  size_l = size.tolist()
  start = [0] * (2 * n - 1)
  depth = [0] * (2 * n - 1)
  for i in range(n - 2, -1, -1):  # root first: a node is placed before its children
    node, a, b = n + i, left_l[i], right_l[i]
    start[a] = start[node]
    start[b] = start[node] + size_l[a]
    depth[a] = depth[b] = depth[node] + 1
  start = np.asarray(start, dtype=np.int64)
  depth = np.asarray(depth, dtype=np.int64)
  order = np.empty(n, dtype=np.int64)
  order[start[:n]] = np.arange(n)
  return TreeLayout(n, left, right, size, start, depth, order, start[:n].copy(), z[:, 2].copy())


def lca_node_matrix(layout: TreeLayout) -> np.ndarray:
  """(n, n) matrix in leaf order: entry (p, q) = i where internal node n + i is the LCA of the leaves at p and q.

  The diagonal holds n - 1 (no internal node), a sentinel for lookups into
  per-node arrays extended by one entry. int16 while n <= 32,768 (a quarter
  of float64's memory: 200 MB at n = 10,000), int32 above.

  Filled by blocks: node n + i with children a, b owns the contiguous ranges
  [s, s + |a|) and [s + |a|, s + |a| + |b|) of leaf order, and every pair
  across them has that node as LCA, so writing the two off-diagonal blocks of
  every node covers each pair exactly once.

  Args:
    layout: the `TreeLayout` of an n-leaf tree (`tree_layout`).

  Returns:
    (n, n) symmetric int16 (n <= 32,768) or int32 matrix indexed by leaf-order positions.
  """
  n = layout.num_leaves
  matrix = np.empty((n, n), dtype=np.int16 if n <= 32768 else np.int32)
  np.fill_diagonal(matrix, n - 1)
  start = layout.start.tolist()
  size = layout.size.tolist()
  for i, (a, b) in enumerate(zip(layout.left.tolist(), layout.right.tolist())):
    s, mid, stop = start[n + i], start[n + i] + size[a], start[n + i] + size[a] + size[b]
    matrix[s:mid, mid:stop] = i
    matrix[mid:stop, s:mid] = i
  return matrix


def _condensed_from_leaf_matrix(layout: TreeLayout, matrix: np.ndarray, values, dtype) -> np.ndarray:
  """Condensed (original index order) vector of `values(rows, cols, nodes)` over all pairs i < j.

  `nodes` is the LCA node block for original rows `rows` and columns `cols`;
  chunks of rows are gathered from the leaf-order matrix and copied row by row
  into the output, so memory is the output plus one chunk.
  """
  n = layout.num_leaves
  out = np.empty(n * (n - 1) // 2, dtype=dtype)
  offsets = condensed_offsets(n)
  position = layout.position
  for start, stop in row_chunks(n):
    rows, cols = np.arange(start, stop), np.arange(start, n)
    block = values(rows, cols, matrix[np.ix_(position[start:stop], position[start:])])
    for i in range(start, min(stop, n - 1)):
      out[offsets[i]:offsets[i] + n - 1 - i] = block[i - start, i - start + 1:]
  return out


def lca_distances(linkage) -> np.ndarray:
  """Condensed (n(n-1)/2,) int32 vector of tree path lengths between leaves, in `pdist` pair order.

  For leaves i < j: `depth_i + depth_j - 2 depth_LCA(i, j)`, the number of
  edges between them in the dendrogram (root at depth 0): the LCA distance of
  the SAG-VICReg paper's structure metric (Sec. 4.4). Pair (i, j) sits at
  index `n i - i (i + 1) / 2 + j - i - 1`, as in `scipy.spatial.distance.pdist`.

  Computed without any per-pair Python through the leaf-order LCA matrix
  (`lca_node_matrix`). Peak memory at n = 10,000: the 200 MB output, the 200 MB
  int16 LCA matrix, one chunk.

  Args:
    linkage: array-like (n - 1, 4) scipy linkage matrix, e.g. from `ward_linkage`.

  Returns:
    int32 (n(n-1)/2,) edge counts between the leaves of each pair.

  Raises:
    ValueError: if `linkage` is not a valid scipy linkage matrix (`tree_layout`).

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4.
  """
  layout = tree_layout(linkage)
  n = layout.num_leaves
  leaf_depth = layout.depth[:n]
  node_depth = np.append(layout.depth[n:], 0)  # + sentinel for the diagonal

  def values(rows, cols, nodes):
    return leaf_depth[rows][:, None] + leaf_depth[cols][None, :] - 2 * node_depth[nodes]

  return _condensed_from_leaf_matrix(layout, lca_node_matrix(layout), values, np.int32)


def cophenetic_distances(linkage) -> np.ndarray:
  """Condensed (n(n-1)/2,) float64 cophenetic distances, in `pdist` pair order.

  The cophenetic distance of leaves i and j (Sokal and Rohlf, 1962) is the
  height (`linkage[:, 2]`) of the merge that first puts them in one cluster,
  i.e. of their lowest common ancestor. This is `scipy.cluster.hierarchy.cophenet(linkage)`
  after this module's validation: scipy's C routine is already a single pass
  writing each pair once (a block scheme like `lca_distances`' gives the same
  values but is slower here, as it must gather from the leaf-order matrix).

  Args:
    linkage: array-like (n - 1, 4) scipy linkage matrix, e.g. from `ward_linkage`.

  Returns:
    float64 (n(n-1)/2,) merge heights of each pair's lowest common ancestor.

  Raises:
    ValueError: if `linkage` is not a valid scipy linkage matrix (`tree_layout`).

  References:
    Simai, Talmon, Shaham, arXiv 2506.18104, Sec. 4.4; Sokal and Rohlf (1962).
  """
  tree_layout(linkage)  # full validation, with this module's messages
  return hierarchy.cophenet(np.asarray(linkage, dtype=np.float64))
