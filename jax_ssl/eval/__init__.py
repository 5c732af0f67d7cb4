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

import importlib

# Each public function and the module defining it, imported on first use (PEP 562): scikit-learn and
# scipy.stats take seconds to import, which the trainer's kNN monitor (`jax_ssl.eval.probes`) and a
# user who needs one probe should not pay.
_EXPORTS = {
    "hierarchical_rand_index": "clustering",
    "knn_accuracy": "probes",
    "knn_accuracy_by_level": "probes",
    "knn_predict": "probes",
    "linear_probe": "probes",
    "linear_probe_by_level": "probes",
    "cophenetic_similarity": "structure",
    "lca_similarity": "structure",
    "cophenetic_distances": "trees",
    "lca_distances": "trees",
    "ward_linkage": "trees",
}


def __getattr__(name: str):
  if name in _EXPORTS:
    return getattr(importlib.import_module(f"jax_ssl.eval.{_EXPORTS[name]}"), name)
  raise AttributeError(f"module 'jax_ssl.eval' has no attribute {name!r}")


def __dir__() -> list[str]:
  return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
