"""Evaluation of frozen encoders: classification probes on their features.

Functions take numpy features and integer labels and return Python floats or
numpy arrays; the heavy parts run in jitted, chunked float32 JAX. Bad inputs
(wrong ranks, mismatched lengths, NaN/inf features, negative labels) raise
`ValueError` naming the argument.
"""

from jax_ssl.eval.probes import knn_accuracy
from jax_ssl.eval.probes import knn_accuracy_by_level
from jax_ssl.eval.probes import knn_predict
from jax_ssl.eval.probes import linear_probe
from jax_ssl.eval.probes import linear_probe_by_level

__all__ = [
    "knn_accuracy",
    "knn_accuracy_by_level",
    "knn_predict",
    "linear_probe",
    "linear_probe_by_level",
]
