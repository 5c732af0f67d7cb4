"""Evaluation of frozen encoders: probes, label-free structure metrics, Rand index.

Functions take numpy features and integer labels and return Python floats or
numpy arrays; the heavy parts run in jitted, chunked float32 JAX. Bad inputs
(wrong ranks, mismatched lengths, NaN/inf features, negative labels) raise
`ValueError` naming the argument.

The structure metrics (SAG-VICReg Sec. 4.4) compare the Ward dendrograms of
two embeddings of the same items: `lca_similarity` and `cophenetic_similarity`
(on `ward_linkage`, `lca_distances`, `cophenetic_distances`); and
`hierarchical_rand_index` scores spectral clusterings against label levels.
These run in float64 numpy / scipy / scikit-learn, by row chunks.

Label levels come from `jax_ssl.eval.hierarchy` (the dataset's own, shipped
JSON files, or the user's); `jax_ssl.eval.scores` gathers the numbers a set of
features gets. Arrays in, numbers out: nothing here trains or loads a model.
`jax_ssl.protocols` (the checkpoint report, the two-model generalization
protocol) builds on these pieces, and `python -m jax_ssl.evaluate` runs them.
"""

from jax_ssl.eval.clustering import hierarchical_rand_index
from jax_ssl.eval.probes import knn_accuracy
from jax_ssl.eval.probes import knn_accuracy_by_level
from jax_ssl.eval.probes import knn_predict
from jax_ssl.eval.probes import linear_probe
from jax_ssl.eval.probes import linear_probe_by_level
from jax_ssl.eval.structure import cophenetic_similarity
from jax_ssl.eval.structure import lca_similarity
from jax_ssl.eval.trees import cophenetic_distances
from jax_ssl.eval.trees import lca_distances
from jax_ssl.eval.trees import ward_linkage

__all__ = [
    "cophenetic_distances",
    "cophenetic_similarity",
    "hierarchical_rand_index",
    "knn_accuracy",
    "knn_accuracy_by_level",
    "knn_predict",
    "lca_distances",
    "lca_similarity",
    "linear_probe",
    "linear_probe_by_level",
    "ward_linkage",
]
