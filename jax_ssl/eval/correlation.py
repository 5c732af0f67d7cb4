"""Pearson, Spearman and Kendall tau-b, exactly, from a contingency table of two vectors.

Tree distances between all pairs of n items are long vectors (n(n-1)/2 = 5e7
entries at n = 10,000) with few distinct values (an LCA distance is an edge
count, at most twice the tree depth). The joint distribution of two such
vectors is a small table `T[a, b]` = number of positions where the first
vector takes its a-th smallest value and the second its b-th smallest, and all
three coefficients are functions of that table alone:

- Pearson: weighted moments of the distinct values, weights `T`.
- Spearman: Pearson of the mid-ranks (Spearman, 1904): tied entries share the
  average of the ranks they span, which the marginal counts give directly.
- Kendall tau-b (Kendall, 1945, with his correction for ties):
  `(C - D) / sqrt((n0 - n1)(n0 - n2))`, where C (D) counts the pairs of
  positions ordered the same (opposite) way by both vectors, `n0 = N(N-1)/2`,
  and n1 (n2) counts the pairs tied in the first (second) vector. A cell's
  concordant partners are the cells strictly below-left of it, its discordant
  partners the cells strictly below-right: both are 2-D cumulative sums.

The table is built in one O(N) pass (`np.bincount` of joint codes), after
which everything is O(table size): the same numbers as scipy.stats, several
times faster, with the integer counts of Kendall's statistic kept exact.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

# Tables larger than this (cells) are not worth building: vectors with that
# many distinct values are better served by scipy.stats' sorting algorithms.
MAX_TABLE_CELLS = 1 << 22
# Entries per np.bincount call (bounds the int64 code buffer to 64 MiB).
_BINCOUNT_CHUNK = 1 << 23


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
  a, b = np.asarray(a), np.asarray(b)
  if a.ndim != 1 or b.ndim != 1:
    raise ValueError(f"a and b must be 1-D vectors, got shapes {a.shape} and {b.shape}.")
  if a.shape != b.shape:
    raise ValueError(f"a and b must have the same length, got {a.shape[0]} and {b.shape[0]}.")
  if a.shape[0] < 2:
    raise ValueError(f"a and b need at least 2 entries for a correlation, got {a.shape[0]}.")
  for name, v in (("a", a), ("b", b)):
    if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)):
      raise ValueError(f"{name} must be a real numeric vector, got dtype {v.dtype}.")
    if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
      raise ValueError(f"{name} contains NaN or inf: correlations are undefined for such entries.")
  return a, b


def _range_codes(v: np.ndarray):
  """For integer `v`: (values low..high as float64, v - low); None for floats or a range of 2^22 or more."""
  if not np.issubdtype(v.dtype, np.integer):
    return None
  low, high = int(v.min()), int(v.max())
  if high - low >= MAX_TABLE_CELLS:
    return None
  return np.arange(low, high + 1, dtype=np.float64), v.astype(np.int64) - low


def _unique_codes(v: np.ndarray):
  values, inverse = np.unique(v, return_inverse=True)
  return values.astype(np.float64), inverse.astype(np.int64).reshape(-1)


def table_codes(a: np.ndarray, b: np.ndarray):
  """((values_a, codes_a), (values_b, codes_b)): sorted candidate values (float64) and each entry's code.

  Small-range integer vectors (tree distances) use the value itself, shifted,
  as its code: no O(N log N) sort; codes of values that never occur leave
  empty rows and columns, which `compact` drops. Otherwise `np.unique`.

  Args:
    a: (N,) real vector (already checked, as by `contingency_table`).
    b: (N,) real vector.

  Returns:
    `((values_a, codes_a), (values_b, codes_b))`: float64 sorted candidate values of each vector and int64 (N,)
    codes, the index of each entry's value in them. Both vectors use range codes only when both are small-range
    integers and the table they span has at most `MAX_TABLE_CELLS` cells; otherwise both use `np.unique`.
  """
  coded_a, coded_b = _range_codes(a), _range_codes(b)
  if coded_a is None or coded_b is None or coded_a[0].size * coded_b[0].size > MAX_TABLE_CELLS:
    coded_a, coded_b = _unique_codes(a), _unique_codes(b)
  return coded_a, coded_b


def joint_counts(codes_a: np.ndarray, codes_b: np.ndarray, num_a: int, num_b: int,
                 table: np.ndarray | None = None) -> np.ndarray:
  """Add the (num_a, num_b) int64 histogram of code pairs to `table` (a new zero table when None).

  Args:
    codes_a: (N,) integer codes in [0, num_a).
    codes_b: (N,) integer codes in [0, num_b).
    num_a: number of rows of the table (candidate values of the first vector).
    num_b: number of columns of the table.
    table: (num_a, num_b) contiguous int64 counts to add to in place, or None.

  Returns:
    The (num_a, num_b) int64 table: `table` itself when given, with `table[i, j]` increased by the number of
    positions k where `codes_a[k] == i` and `codes_b[k] == j`.
  """
  if table is None:
    table = np.zeros((num_a, num_b), dtype=np.int64)
  flat = table.reshape(-1)
  for s in range(0, codes_a.shape[0], _BINCOUNT_CHUNK):
    joint = codes_a[s:s + _BINCOUNT_CHUNK].astype(np.int64) * num_b
    joint += codes_b[s:s + _BINCOUNT_CHUNK]
    flat += np.bincount(joint, minlength=num_a * num_b)
  return table


def compact(values_a: np.ndarray, values_b: np.ndarray, table: np.ndarray):
  """The table without empty rows and columns, and the values of those kept.

  Args:
    values_a: (A,) values of the table's rows.
    values_b: (B,) values of its columns.
    table: (A, B) counts.

  Returns:
    `(values_a, values_b, table)` restricted to the rows and columns with a non-zero count.
  """
  rows = table.any(axis=1)
  cols = table.any(axis=0)
  return values_a[rows], values_b[cols], table[rows][:, cols]


def contingency_table(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(values_a, values_b, table): sorted distinct values of `a` and `b` (float64) and the int64 table of pair counts.

  `table[i, j]` is the number of positions k with `a[k] == values_a[i]` and
  `b[k] == values_b[j]`.

  Args:
    a: (N,) real vector, N >= 2, finite.
    b: (N,) real vector of the same length.

  Returns:
    `(values_a, values_b, table)`: float64 (A,) and (B,) sorted distinct values, and the (A, B) int64 counts.

  Raises:
    ValueError: if `a` or `b` is not 1-D, real and finite, their lengths differ or are below 2, or the table would
      exceed `MAX_TABLE_CELLS` (use scipy.stats for vectors with that many distinct values).
  """
  a, b = _check_pair(a, b)
  (values_a, codes_a), (values_b, codes_b) = table_codes(a, b)
  if values_a.size * values_b.size > MAX_TABLE_CELLS:
    raise ValueError(
        f"a and b take {values_a.size} and {values_b.size} distinct values: a {values_a.size} x {values_b.size} "
        f"contingency table is too large; use scipy.stats on the vectors instead.")
  table = joint_counts(codes_a, codes_b, values_a.size, values_b.size)
  return compact(values_a, values_b, table)


def _check_table(values_a, values_b, table):
  table = np.asarray(table)
  values_a = np.asarray(values_a, dtype=np.float64)
  values_b = np.asarray(values_b, dtype=np.float64)
  if table.ndim != 2 or table.shape != (values_a.size, values_b.size):
    raise ValueError(
        f"table must have shape (len(values_a), len(values_b)) = ({values_a.size}, {values_b.size}), "
        f"got {table.shape}.")
  if not np.issubdtype(table.dtype, np.integer) or (table.size and table.min() < 0):
    raise ValueError("table must hold non-negative integer counts.")
  if np.any(np.diff(values_a) <= 0) or np.any(np.diff(values_b) <= 0):
    raise ValueError("values_a and values_b must be strictly increasing (sorted distinct values).")
  return values_a, values_b, table.astype(np.int64, copy=False)


def table_pearson(values_a, values_b, table) -> float:
  """Pearson's r of the pairs counted in `table`: `cov(a, b) / (std(a) std(b))` with weights `table`.

  Two passes over the table (means, then centred sums), so the result is as
  accurate as a centred computation on the full vectors. NaN when either
  vector is constant (zero variance: r is undefined).

  Args:
    values_a: (A,) strictly increasing values of the table's rows.
    values_b: (B,) strictly increasing values of its columns.
    table: (A, B) non-negative integer counts, as from `contingency_table`.

  Returns:
    Pearson's r as a float in [-1, 1], or NaN.

  Raises:
    ValueError: if the table's shape does not match the values, it holds anything but non-negative integers, or
      the values are not strictly increasing.
  """
  values_a, values_b, table = _check_table(values_a, values_b, table)
  weights = table.astype(np.float64)  # counts < 2^53 are exact in float64
  rows, cols = weights.sum(axis=1), weights.sum(axis=0)
  total = rows.sum()
  da = values_a - (rows @ values_a) / total
  db = values_b - (cols @ values_b) / total
  var_a, var_b = rows @ (da * da), cols @ (db * db)
  if var_a <= 0 or var_b <= 0:
    return float("nan")
  r = (da @ weights @ db) / np.sqrt(var_a) / np.sqrt(var_b)
  return float(np.clip(r, -1.0, 1.0))


def mid_ranks(counts: np.ndarray) -> np.ndarray:
  """Average 1-based rank of each distinct value, given how often each occurs (in increasing value order).

  Args:
    counts: (K,) occurrences of each value, in increasing value order.

  Returns:
    float64 (K,) mid-ranks: `counts[:k].sum() + (counts[k] + 1) / 2` for value k.
  """
  counts = np.asarray(counts, dtype=np.float64)
  below = np.cumsum(counts) - counts
  return below + (counts + 1.0) / 2.0


def table_spearman(table) -> float:
  """Spearman's rho of the pairs counted in `table` (rows and columns in increasing value order).

  Pearson's r of the mid-ranks: ties share the mean of the ranks they cover,
  as in `scipy.stats.rankdata(method='average')`. NaN when either vector is constant.

  Args:
    table: (A, B) non-negative integer counts.

  Returns:
    Spearman's rho as a float in [-1, 1], or NaN.

  Raises:
    ValueError: if `table` is not 2-D or holds anything but non-negative integers.

  References:
    Spearman (1904).
  """
  table = np.asarray(table)
  return table_pearson(mid_ranks(table.sum(axis=1)), mid_ranks(table.sum(axis=0)), table)


def concordance(table) -> tuple[int, int, int, int]:
  """(C - D, n0, n1, n2) of Kendall's tau-b, exact Python ints, from `table` (rows/columns in increasing order).

  C - D: concordant minus discordant pairs of positions; n0 = N(N-1)/2 all
  pairs; n1, n2: pairs tied in the first / second vector.

  Exactness: every count below is at most n0 = N(N-1)/2, and each product
  `table[a, b] * partners` counts distinct pairs so is at most n0 too; while
  N < 2^31 (n0 < 2^61) int64 cannot overflow. Larger N switches to Python
  integers (object arrays), which are exact at any size.

  Args:
    table: (A, B) non-negative integer counts, N in total.

  Returns:
    `(C - D, n0, n1, n2)` as Python ints.
  """
  table = np.asarray(table)
  total = int(table.sum())
  kind = np.int64 if total < 2**31 else object
  t = table.astype(kind)
  # below[a, b]: pairs in cells (a' < a, b' <= b) -- cumulative over rows
  # strictly above, then over columns.
  cum = np.cumsum(np.cumsum(t, axis=0), axis=1)
  below = np.zeros_like(cum)
  below[1:] = cum[:-1]
  below_left = np.zeros_like(below)
  below_left[:, 1:] = below[:, :-1]              # a' < a and b' < b
  below_right = below[:, -1:] - below             # a' < a and b' > b
  concordant = int((t * below_left).sum())
  discordant = int((t * below_right).sum())
  rows, cols = t.sum(axis=1), t.sum(axis=0)
  n0 = total * (total - 1) // 2
  n1 = int((rows * (rows - 1) // 2).sum())
  n2 = int((cols * (cols - 1) // 2).sum())
  return concordant - discordant, n0, n1, n2


def table_kendall(table) -> float:
  """Kendall's tau-b of the pairs counted in `table`: `(C - D) / sqrt((n0 - n1)(n0 - n2))`.

  C - D is exact (see `concordance`); the final division is the same float
  expression as `scipy.stats.kendalltau(variant='b')`, so the two agree to
  the last bit. The square roots are taken separately: their product
  `(n0 - n1)(n0 - n2)` reaches ~1e26 for N = 5e6 and overflows int64. NaN
  when either vector is constant.

  Args:
    table: (A, B) non-negative integer counts, rows and columns in increasing value order.

  Returns:
    Kendall's tau-b as a float in [-1, 1], or NaN.

  References:
    Kendall (1945), tau-b with the correction for ties.
  """
  difference, n0, n1, n2 = concordance(table)
  if n0 == n1 or n0 == n2:
    return float("nan")
  tau = difference / np.sqrt(n0 - n1) / np.sqrt(n0 - n2)
  return float(min(1.0, max(-1.0, tau)))


def table_correlations(values_a, values_b, table) -> dict[str, float]:
  """{'pearson', 'spearman', 'kendall'} of the pairs counted in `table`.

  Args:
    values_a: (A,) strictly increasing values of the table's rows.
    values_b: (B,) strictly increasing values of its columns.
    table: (A, B) non-negative integer counts.

  Returns:
    Dict mapping 'pearson', 'spearman' and 'kendall' to float coefficients (NaN for a constant vector).

  Raises:
    ValueError: as `table_pearson` and `table_spearman`, for a malformed table or values.
  """
  return {
      "pearson": table_pearson(values_a, values_b, table),
      "spearman": table_spearman(table),
      "kendall": table_kendall(table),
  }


def correlations(a, b) -> dict[str, float]:
  """Pearson's r, Spearman's rho and Kendall's tau-b of two equal-length vectors.

  Same numbers as `scipy.stats.pearsonr`, `spearmanr` and `kendalltau`
  (variant 'b'), through the contingency table when the vectors have few
  distinct values, else through scipy.stats itself. A constant vector gives
  NaN (no variance: undefined).

  Args:
    a: (N,) real vector, N >= 2, finite.
    b: (N,) real vector of the same length.

  Returns:
    Dict mapping 'pearson', 'spearman' and 'kendall' to floats.

  Raises:
    ValueError: if `a` or `b` is not 1-D, real and finite, or their lengths differ or are below 2.
  """
  a, b = _check_pair(a, b)
  (values_a, codes_a), (values_b, codes_b) = table_codes(a, b)
  if values_a.size * values_b.size <= MAX_TABLE_CELLS:
    table = joint_counts(codes_a, codes_b, values_a.size, values_b.size)
    return table_correlations(*compact(values_a, values_b, table))
  if np.ptp(a) == 0 or np.ptp(b) == 0:
    return {"pearson": float("nan"), "spearman": float("nan"), "kendall": float("nan")}
  return {
      "pearson": float(stats.pearsonr(a, b)[0]),
      "spearman": float(stats.spearmanr(a, b)[0]),
      "kendall": float(stats.kendalltau(a, b)[0]),
  }


def pearson(a, b) -> float:
  """Pearson's r of two vectors in float64, centred first (two passes) for accuracy; NaN if either is constant.

  Args:
    a: (N,) real vector, N >= 2, finite.
    b: (N,) real vector of the same length.

  Returns:
    Pearson's r as a float in [-1, 1], or NaN.

  Raises:
    ValueError: if `a` or `b` is not 1-D, real and finite, or their lengths differ or are below 2.
  """
  a, b = _check_pair(a, b)
  da = a.astype(np.float64) - a.mean(dtype=np.float64)
  db = b.astype(np.float64) - b.mean(dtype=np.float64)
  return pearson_from_sums(a.shape[0], 0.0, 0.0, float(da @ da), float(db @ db), float(da @ db))


def pearson_from_sums(count, sum_a, sum_b, sum_aa, sum_bb, sum_ab) -> float:
  """Pearson's r from raw sums over `count` pairs; NaN if a variance is not positive.

  Accurate when the data were shifted near their means before summing (then
  the correction terms `sum_a sum_b / count` are small): callers shift first.

  Args:
    count: number of pairs summed over (positive).
    sum_a: sum of the first values.
    sum_b: sum of the second values.
    sum_aa: sum of the squared first values.
    sum_bb: sum of the squared second values.
    sum_ab: sum of the products of the two.

  Returns:
    Pearson's r as a float clipped to [-1, 1], or NaN.
  """
  cov = sum_ab - sum_a * sum_b / count
  var_a = sum_aa - sum_a * sum_a / count
  var_b = sum_bb - sum_b * sum_b / count
  if var_a <= 0 or var_b <= 0:
    return float("nan")
  return float(np.clip(cov / np.sqrt(var_a) / np.sqrt(var_b), -1.0, 1.0))
