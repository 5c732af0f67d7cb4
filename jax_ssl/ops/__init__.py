"""Kernels shared by the losses and the evaluation suite.

Pure functions on arrays, `jit`-able, exact on every backend; where XLA:CPU is
slow (float sort) a faster exact path is taken on CPU only.
"""

from jax_ssl.ops.distances import cosine_similarities
from jax_ssl.ops.distances import inverse_norms
from jax_ssl.ops.distances import knn
from jax_ssl.ops.distances import safe_norm
from jax_ssl.ops.distances import squared_euclidean_distances
from jax_ssl.ops.mst import mst_edges
from jax_ssl.ops.slices import gaussian_quantiles
from jax_ssl.ops.slices import random_directions
from jax_ssl.ops.sorting import argsort
from jax_ssl.ops.sorting import sort
from jax_ssl.ops.sorting import sort_ranks
from jax_ssl.ops.sorting import squared_w2_1d
from jax_ssl.ops.spectrum import effective_rank
from jax_ssl.ops.spectrum import lidar

__all__ = [
    "argsort",
    "cosine_similarities",
    "effective_rank",
    "inverse_norms",
    "gaussian_quantiles",
    "knn",
    "lidar",
    "mst_edges",
    "random_directions",
    "safe_norm",
    "sort",
    "sort_ranks",
    "squared_euclidean_distances",
    "squared_w2_1d",
]
