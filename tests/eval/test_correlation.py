"""Contingency-table correlations: against scipy.stats and exact integer references, ties, overflow, bad input."""

import math

import numpy as np
import pytest
from scipy import stats

from jax_ssl.eval import correlation


def _scipy(a, b):
  return {"pearson": stats.pearsonr(a, b)[0], "spearman": stats.spearmanr(a, b)[0],
          "kendall": stats.kendalltau(a, b, variant="b")[0]}


def _assert_matches_scipy(ours, a, b):
  reference = _scipy(a, b)
  assert abs(ours["pearson"] - reference["pearson"]) <= 1e-12
  assert abs(ours["spearman"] - reference["spearman"]) <= 1e-12
  assert abs(ours["kendall"] - reference["kendall"]) <= 1e-12


def exact_kendall_terms(a, b):
  """(C - D, n0, n1, n2) by Python integers over an independent tabulation (np.unique of joint keys)."""
  a_values, a_codes = np.unique(a, return_inverse=True)
  b_values, b_codes = np.unique(b, return_inverse=True)
  keys, counts = np.unique(a_codes.astype(np.int64) * len(b_values) + b_codes, return_counts=True)
  cells = [(int(k) // len(b_values), int(k) % len(b_values), int(c)) for k, c in zip(keys, counts)]
  concordant = discordant = 0
  for i, j, c in cells:
    for i2, j2, c2 in cells:
      if i2 < i and j2 < j:
        concordant += c * c2
      elif i2 < i and j2 > j:
        discordant += c * c2
  total = len(a)
  rows = np.bincount(a_codes).tolist()
  cols = np.bincount(b_codes).tolist()
  return (concordant - discordant, total * (total - 1) // 2, sum(r * (r - 1) // 2 for r in rows),
          sum(c * (c - 1) // 2 for c in cols))


@pytest.mark.parametrize("seed, n, levels_a, levels_b, coupling", [
    (0, 50, 3, 4, 1.0),      # heavy ties
    (1, 1000, 2, 2, 0.3),    # binary vectors
    (2, 5000, 30, 7, 2.0),
    (3, 20000, 60, 60, -1.0),  # negative association
    (4, 7, 100, 100, 0.0),   # tiny, nearly tie-free
])
def test_integer_vectors_match_scipy(seed, n, levels_a, levels_b, coupling):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, levels_a, n)
  b = np.clip(np.round(coupling * a * levels_b / levels_a + rng.normal(0, 1.5, n)), -50, 50).astype(np.int64)
  _assert_matches_scipy(correlation.correlations(a, b), a, b)


def test_float_vectors_with_ties_match_scipy():
  rng = np.random.default_rng(5)
  a = rng.choice([0.5, 1.25, -3.0, 7.0, 2.5], size=3000)
  b = a ** 2 + rng.choice([0.0, 0.1, 0.2], size=3000)
  ours = correlation.correlations(a, b)
  _assert_matches_scipy(ours, a, b)
  assert ours["kendall"] == stats.kendalltau(a, b)[0]  # the same float expression: bit for bit


def test_tie_free_float_vectors_fall_back_to_scipy():
  rng = np.random.default_rng(6)
  a = rng.standard_normal(3000)  # 3000 x 3000 distinct values: table too large
  b = a + rng.standard_normal(3000)
  assert 3000 * 3000 > correlation.MAX_TABLE_CELLS
  _assert_matches_scipy(correlation.correlations(a, b), a, b)
  with pytest.raises(ValueError, match="too large"):
    correlation.contingency_table(a, b)


def test_perfect_and_reversed_agreement():
  a = np.repeat(np.arange(10), 7)
  assert correlation.correlations(a, 3 * a + 1) == {"pearson": 1.0, "spearman": 1.0, "kendall": 1.0}
  reverse = correlation.correlations(a, -a)
  assert reverse == {"pearson": -1.0, "spearman": -1.0, "kendall": -1.0}


def test_constant_vector_gives_nan():
  a = np.array([1, 2, 3, 4, 2])
  result = correlation.correlations(a, np.full(5, 7))
  assert all(math.isnan(v) for v in result.values())
  result = correlation.correlations(np.full(3000, 1.5), np.random.default_rng(0).standard_normal(3000))
  assert all(math.isnan(v) for v in result.values())


def test_contingency_table_counts_pairs():
  a = np.array([3, 1, 3, 3, 1, 5])
  b = np.array([0.5, 0.5, 2.0, 0.5, 2.0, 2.0])
  values_a, values_b, table = correlation.contingency_table(a, b)
  np.testing.assert_array_equal(values_a, [1, 3, 5])
  np.testing.assert_array_equal(values_b, [0.5, 2.0])
  np.testing.assert_array_equal(table, [[1, 1], [2, 1], [0, 1]])
  assert table.dtype == np.int64


def test_mid_ranks_match_rankdata():
  v = np.array([4, 1, 4, 4, 2, 9, 1])
  values, counts = np.unique(v, return_counts=True)
  ranks = correlation.mid_ranks(counts)
  np.testing.assert_array_equal(ranks[np.searchsorted(values, v)], stats.rankdata(v))


def test_five_million_entries_exact_against_integer_reference_and_scipy():
  """N = 5e6: n0 ~ 1.25e13, C and D ~ 1e12 (int32 would overflow) and (n0 - n1)(n0 - n2) ~ 1e26 (int64 would)."""
  rng = np.random.default_rng(7)
  n = 5_000_000
  a = rng.integers(0, 12, n)
  b = (a + rng.integers(0, 8, n)) // 2
  ours = correlation.correlations(a, b)
  difference, n0, n1, n2 = exact_kendall_terms(a, b)
  assert (n0 - n1) * (n0 - n2) > 2**63 and abs(difference) > 2**31
  _, _, table = correlation.contingency_table(a, b)
  assert correlation.concordance(table) == (difference, n0, n1, n2)
  assert abs(ours["kendall"] - difference / math.sqrt((n0 - n1) * (n0 - n2))) <= 1e-12
  assert ours["kendall"] == stats.kendalltau(a, b)[0]
  assert abs(ours["pearson"] - stats.pearsonr(a, b)[0]) <= 1e-12
  assert abs(ours["spearman"] - stats.spearmanr(a, b)[0]) <= 1e-12


def test_kendall_beyond_int64_uses_exact_python_integers():
  """A table of ~6e10 observations: products of cell counts reach 1e20, past int64."""
  rng = np.random.default_rng(8)
  table = rng.integers(10**9, 4 * 10**9, size=(4, 5)) * np.array([[5], [1], [1], [5]])
  cells = [(i, j, int(table[i, j])) for i in range(4) for j in range(5)]
  concordant = sum(c * c2 for i, j, c in cells for i2, j2, c2 in cells if i2 < i and j2 < j)
  discordant = sum(c * c2 for i, j, c in cells for i2, j2, c2 in cells if i2 < i and j2 > j)
  total = sum(c for _, _, c in cells)
  rows = [sum(int(v) for v in r) for r in table]
  cols = [sum(int(v) for v in c) for c in table.T]
  expected = (concordant - discordant, total * (total - 1) // 2, sum(r * (r - 1) // 2 for r in rows),
              sum(c * (c - 1) // 2 for c in cols))
  assert max(concordant, discordant) > 2**63
  assert correlation.concordance(table) == expected


def test_table_pearson_is_weighted_pearson():
  values_a, values_b = np.array([0.0, 1.0, 4.0]), np.array([-1.0, 2.0])
  table = np.array([[3, 1], [0, 2], [5, 4]])
  a = np.repeat(np.repeat(values_a, 2), table.ravel())
  b = np.repeat(np.tile(values_b, 3), table.ravel())
  assert abs(correlation.table_pearson(values_a, values_b, table) - np.corrcoef(a, b)[0, 1]) <= 1e-14
  assert abs(correlation.table_spearman(table) - stats.spearmanr(a, b)[0]) <= 1e-14
  assert correlation.table_kendall(table) == stats.kendalltau(a, b)[0]


def test_generic_pearson():
  rng = np.random.default_rng(9)
  a = 1e6 + rng.standard_normal(1000)  # a large offset: centring first keeps the digits
  b = a + rng.standard_normal(1000)
  assert abs(correlation.pearson(a, b) - stats.pearsonr(a, b)[0]) <= 1e-12


@pytest.mark.parametrize("a, b, match", [
    (np.ones((3, 2)), np.ones((3, 2)), "1-D"),
    (np.arange(5), np.arange(4), "same length"),
    (np.arange(1), np.arange(1), "at least 2"),
    (np.array([1.0, np.nan, 2.0]), np.arange(3), "NaN or inf"),
    (np.array(["x", "y"]), np.arange(2), "real numeric"),
])
def test_bad_vectors_raise(a, b, match):
  with pytest.raises(ValueError, match=match):
    correlation.correlations(a, b)


def test_bad_tables_raise():
  with pytest.raises(ValueError, match="shape"):
    correlation.table_pearson([0.0, 1.0], [0.0, 1.0], np.ones((3, 2), dtype=int))
  with pytest.raises(ValueError, match="non-negative integer"):
    correlation.table_pearson([0.0, 1.0], [0.0, 1.0], -np.ones((2, 2), dtype=int))
  with pytest.raises(ValueError, match="strictly increasing"):
    correlation.table_pearson([1.0, 0.0], [0.0, 1.0], np.ones((2, 2), dtype=int))
