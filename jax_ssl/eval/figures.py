"""Figures of the evaluation reports (matplotlib, written to files; no display needed)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np


def _pyplot():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def dendrograms(linkages: Mapping[str, np.ndarray], path: str | os.PathLike, *, last_merges: int = 40) -> None:
  """One panel per Ward tree, each cut to its last `last_merges` merges (leaf counts on the axis).

  Args:
    linkages: {panel title: (n - 1, 4) scipy linkage matrix}, e.g. from `trees.ward_linkage`; panels left to
      right in the mapping's order.
    path: file to write; matplotlib picks the format from its extension (100 dpi).
    last_merges: clusters shown as leaves per tree (scipy's `truncate_mode='lastp'`), capped at n.
  """
  from scipy.cluster import hierarchy as scipy_hierarchy
  plt = _pyplot()
  figure, axes = plt.subplots(1, len(linkages), figsize=(5.5 * len(linkages), 3.6), squeeze=False)
  for axis, (title, linkage) in zip(axes[0], linkages.items()):
    scipy_hierarchy.dendrogram(linkage, ax=axis, truncate_mode="lastp", p=min(last_merges, len(linkage) + 1),
                               show_leaf_counts=True, no_labels=False, leaf_font_size=6, color_threshold=0)
    axis.set_title(title, fontsize=10)
    axis.set_ylabel("Ward merge height")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def scores_by_level(scores: Mapping[str, Mapping[str, float]], path: str | os.PathLike, *, title: str = "") -> None:
  """Grouped bars: for each level of the hierarchy, one bar per score (kNN, linear, Rand index, ...).

  Args:
    scores: {score name: {level: value}}, non-empty; the levels (x axis) are those of the first score, in its
      order, and every score needs a value for each. The y axis spans [0, 1].
    path: file to write; matplotlib picks the format from its extension (100 dpi).
    title: title of the axes; none when empty.
  """
  plt = _pyplot()
  names = list(scores)
  levels = list(next(iter(scores.values())))
  width = 0.8 / len(names)
  figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(levels), 3.4))
  positions = np.arange(len(levels))
  for index, name in enumerate(names):
    values = [scores[name][level] for level in levels]
    axis.bar(positions + (index - (len(names) - 1) / 2) * width, values, width, label=name)
  axis.set_xticks(positions, levels)
  axis.set_ylim(0, 1)
  axis.set_ylabel("score")
  axis.legend(fontsize=8, loc="lower right")
  if title:
    axis.set_title(title, fontsize=10)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
