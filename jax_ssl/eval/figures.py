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


def centroid_maps(layouts: Mapping[str, np.ndarray], linkages: Mapping[str, np.ndarray], names: list[str],
                  groups: list[int], path: str | os.PathLike, *, group_level: str = "group") -> None:
  """SAG-VICReg's Figure 6: per encoder, its class centroids in 2-D (top) and their Ward dendrogram (below).

  Args:
    layouts: {panel title: (C, 2) layout of the C class centroids}, e.g. from `centroids.umap_layout`;
      panels left to right in the mapping's order.
    linkages: {panel title: (C - 1, 4) Ward linkage of the same centroids}, the same titles.
    names: the C class names, written beside the points and under the leaves.
    groups: the C classes' groups at a coarse level, which colour the points and leaf labels.
    path: file to write; matplotlib picks the format from its extension (100 dpi).
    group_level: the coarse level's name, for the legend.
  """
  from scipy.cluster import hierarchy as scipy_hierarchy
  plt = _pyplot()
  colours = plt.get_cmap("tab10")
  figure, axes = plt.subplots(2, len(layouts), figsize=(5.0 * len(layouts), 9.0), squeeze=False)
  for column, (title, layout) in enumerate(layouts.items()):
    layout = np.asarray(layout)
    axis = axes[0, column]
    for group in sorted(set(groups)):
      members = [index for index, value in enumerate(groups) if value == group]
      axis.scatter(layout[members, 0], layout[members, 1], color=colours(group % 10), s=30,
                   label=f"{group_level} {group}")
    for (x, y), name in zip(layout, names):
      axis.annotate(name, (x, y), fontsize=6, xytext=(2, 2), textcoords="offset points")
    axis.set_title(f"{title}: class centroids (UMAP)", fontsize=10)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize=6, loc="best")
    tree = axes[1, column]
    scipy_hierarchy.dendrogram(linkages[title], ax=tree, labels=list(names), leaf_rotation=90, leaf_font_size=6,
                               color_threshold=0)
    for label in tree.get_xticklabels():
      label.set_color(colours(groups[names.index(label.get_text())] % 10))
    tree.set_title(f"{title}: Ward dendrogram of the centroids", fontsize=10)
    tree.set_ylabel("Ward merge height")
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def pca_maps(images: np.ndarray, maps: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
  """VISReg's Figure 1: test images (top row) above each encoder's PCA feature maps (one row per encoder).

  Args:
    images: (n, H, W, 3) uint8 images.
    maps: {row title: (n, h, w, 3) RGB in [0, 1]}, e.g. from `dense.pca_rgb`; rows in the mapping's order.
    path: file to write; matplotlib picks the format from its extension (100 dpi).
  """
  plt = _pyplot()
  rows = {"images": np.asarray(images), **{title: np.asarray(rgb) for title, rgb in maps.items()}}
  count = len(rows["images"])
  figure, axes = plt.subplots(len(rows), count, figsize=(1.4 * count, 1.5 * len(rows)), squeeze=False)
  for row, (title, pictures) in enumerate(rows.items()):
    for column in range(count):
      axis = axes[row, column]
      axis.imshow(pictures[column], interpolation="nearest")
      axis.set_xticks([])
      axis.set_yticks([])
    axes[row, 0].set_ylabel(title, fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)
