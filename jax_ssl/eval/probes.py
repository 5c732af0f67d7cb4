"""Classification probes on frozen features: the k-nearest-neighbour vote and the linear probe.

Both follow the usual way to evaluate self-supervised encoders: embed the
train and test splits once with the frozen encoder, then fit a cheap
classifier on the train embeddings and report its test accuracy.

- `knn_predict` / `knn_accuracy` (`jax_ssl.eval.knn`): cosine k-NN, weighted
  (`exp(cos / T)` per neighbour) or by plain majority.
- `linear_probe` (`jax_ssl.eval.linear`): multinomial logistic regression on
  standardised features, trained with Adam over a learning-rate grid chosen
  on a held-out part of the train split.
- `knn_accuracy_by_level` / `linear_probe_by_level`: the same probes scored
  against several label hierarchies (fine and coarse classes), as in the
  SAG-VICReg paper's hierarchical k-NN and linear tables.
- `probe_accuracies`: both, per level, as the trainer's monitor, its report
  and the evaluation protocols run them.

Inputs are numpy (or anything `np.asarray` accepts); results are Python floats
and numpy arrays. The heavy work runs in jitted float32 JAX over row chunks,
so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Mapping

from jax.typing import ArrayLike

from jax_ssl.eval.knn import knn_accuracy
from jax_ssl.eval.knn import knn_accuracy_by_level
from jax_ssl.eval.knn import knn_predict
from jax_ssl.eval.linear import linear_probe
from jax_ssl.eval.linear import linear_probe_by_level

__all__ = ["knn_accuracy", "knn_accuracy_by_level", "knn_predict", "linear_probe", "linear_probe_by_level",
           "probe_accuracies"]


def probe_accuracies(train_features: ArrayLike, train_labels: Mapping[str, ArrayLike], test_features: ArrayLike,
                     test_labels: Mapping[str, ArrayLike], *, knn_k: int, knn_temperature: float,
                     probe_epochs: int | None = None, seed: int = 0,
                     learning_rates: bool = False) -> dict[str, dict]:
  """Test accuracy per label level of the weighted kNN probe and, if `probe_epochs`, the linear probe.

  Args:
    train_features, test_features: (N, F) features of the train and test items.
    train_labels, test_labels: `{level: (N,) integer labels}`, the same levels in both.
    knn_k: neighbours of the kNN vote (capped at the number of train items).
    knn_temperature: the vote's temperature T (weights `exp(cos / T)`).
    probe_epochs: epochs of the linear probe; 0 or None skips it.
    seed: the linear probe's seed (held-out split, minibatch order).
    learning_rates: also return the learning rate each level's linear probe chose.

  Returns:
    `{"knn": {level: accuracy}}`, plus `"linear": {level: accuracy}` when the
    linear probe runs, plus `"linear_learning_rate": {level: rate}` when asked.
  """
  k = min(knn_k, len(train_features))
  results = {"knn": knn_accuracy_by_level(train_features, train_labels, test_features, test_labels, k=k,
                                          temperature=knn_temperature)}
  if probe_epochs:
    linear = linear_probe_by_level(train_features, train_labels, test_features, test_labels, epochs=probe_epochs,
                                   seed=seed)
    results["linear"] = {level: result["accuracy"] for level, result in linear.items()}
    if learning_rates:
      results["linear_learning_rate"] = {level: result["best_learning_rate"] for level, result in linear.items()}
  return results
