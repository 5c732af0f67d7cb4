"""SAG-VICReg Figure 1: how VICReg and SAG-VICReg embed a cluster never seen in training.

  python -m experiments.spectral_demo            # full size (about two minutes on 2 cores)
  python -m experiments.spectral_demo --small    # tiny, for tests

Data: 2-D Gaussian blobs (std 0.5) at three training centres (the corners of
an equilateral triangle of side 4) and a fourth, unseen centre outside the
triangle. A small MLP (2 -> 64 -> 64 -> width, ReLU; plain JAX parameters,
optax Adam) is trained on the three training clusters only, with two pairings:
  vicreg      vicreg_loss(z1, z2): z1, z2 are the embeddings of two noisy
              augmentations (x + 0.2 * noise) of the same points
  sag_vicreg  sag_vicreg_loss(key, z1, z2, k=5): the same two views, but z1_i
              is paired with z2_j for j drawn by one random-walk step on the
              kNN affinity between the views (knn_affinity + random_walk_pairs),
              weighted by the affinity
Both at VICReg's weights (25, 25, 1), the same data, steps and seeds. Two
embedding widths: 2, the setting of the paper's Figure 1 (a spectral embedding
of a graph with three components has two non-trivial eigenvectors, and three
points satisfy VICReg's variance and covariance terms), and 16.

Statistic (in the full embedding space, on held-out test points of every
cluster): the spread of cluster c is `s_c = sqrt(mean_{i in c} ||e_i - m_c||^2)`
(root mean squared distance to its centroid m_c). Reported:
  relative_spread_unseen = s_unseen / mean_{c seen} s_c
  spread_over_separation  = s_c / mean distance between the seen centroids,
                            for the unseen cluster and for the seen mean
  knn_cluster_accuracy    leave-one-out 5-NN vote of the cluster label over
                          all four clusters (do they stay apart?)
The claim predicts a larger relative_spread_unseen for VICReg than for
SAG-VICReg (VICReg embeds unseen points "much dispersed"). In the input space
all four clusters have the same spread (relative spread ~ 1).
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from experiments import _common
from jax_ssl import losses

NAME = "spectral_demo"
SIDE = 4.0
SEEN_CENTRES = np.array([[0.0, 0.0], [SIDE, 0.0], [SIDE / 2, SIDE * np.sqrt(3) / 2]])
UNSEEN_CENTRE = np.array([SIDE * 1.5, SIDE * np.sqrt(3) / 2])
CLUSTER_STD = 0.5
AUG_STD = 0.2
HIDDEN = 64
# Width 2 is the spectral-embedding picture of the paper's Figure 1 (3 components -> 2 non-trivial
# eigenvectors, so 3 points are a feasible solution); width 16 is a wider, more SSL-like head.
EMBED_DIMS = (2, 16)
LR = 1e-3
K_NEIGHBOURS = 5
METHODS = ("vicreg", "sag_vicreg")


def make_data(rng, per_cluster):
  """Points and cluster labels 0..3 (3 = unseen) drawn around the four centres."""
  centres = np.vstack([SEEN_CENTRES, UNSEEN_CENTRE[None]])
  labels = np.repeat(np.arange(4), per_cluster)
  points = centres[labels] + CLUSTER_STD * rng.standard_normal((len(labels), 2))
  return points.astype(np.float32), labels


def init_mlp(key, sizes):
  params = []
  for layer_key, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
    weights = jax.random.normal(layer_key, (fan_in, fan_out)) * np.sqrt(2.0 / fan_in)
    params.append({"w": weights, "b": jnp.zeros(fan_out)})
  return params


def mlp(params, x):
  for layer in params[:-1]:
    x = jax.nn.relu(x @ layer["w"] + layer["b"])
  return x @ params[-1]["w"] + params[-1]["b"]


_OPTIMIZER = optax.adam(LR)


@functools.cache
def _block_fn(method, batch):
  """jit: (params, opt_state, step keys, data) -> `len(keys)` training steps; compiled once per method and shape."""

  def loss_fn(params, step_key, data):
    k_batch, k_aug1, k_aug2, k_walk = jax.random.split(step_key, 4)
    x = data[jax.random.choice(k_batch, data.shape[0], (batch,), replace=False)]
    z1 = mlp(params, x + AUG_STD * jax.random.normal(k_aug1, x.shape))
    z2 = mlp(params, x + AUG_STD * jax.random.normal(k_aug2, x.shape))
    if method == "vicreg":
      return losses.vicreg_loss(z1, z2)
    return losses.sag_vicreg_loss(k_walk, z1, z2, k=K_NEIGHBOURS)

  def block(params, state, keys, data):
    def step(carry, step_key):
      params, state = carry
      (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, step_key, data)
      updates, state = _OPTIMIZER.update(grads, state, params)
      return (optax.apply_updates(params, updates), state), (loss, metrics)

    (params, state), (loss, metrics) = jax.lax.scan(step, (params, state), keys)
    return params, state, loss[-1], jax.tree.map(lambda m: m[-1], metrics)

  return jax.jit(block)


def train(method, embed_dim, train_points, steps, batch, seed):
  key = jax.random.key(seed)
  key, init_key = jax.random.split(key)
  params = init_mlp(init_key, (2, HIDDEN, HIDDEN, embed_dim))
  data = jnp.asarray(train_points)
  block = _block_fn(method, batch)
  state = _OPTIMIZER.init(params)
  log_every = max(steps // 20, 1)
  history = []
  for _ in range(steps // log_every):
    key, block_key = jax.random.split(key)
    params, state, loss, metrics = block(params, state, jax.random.split(block_key, log_every), data)
    history.append(float(loss))
  return params, history, {name: float(value) for name, value in metrics.items()}


def spreads(embeddings, labels):
  centroids = np.stack([embeddings[labels == c].mean(0) for c in range(4)])
  spread = np.array([np.sqrt(np.mean(np.sum((embeddings[labels == c] - centroids[c]) ** 2, axis=1)))
                     for c in range(4)])
  seen = centroids[:3]
  separation = np.mean([np.linalg.norm(seen[i] - seen[j]) for i in range(3) for j in range(i + 1, 3)])
  unseen_to_seen = np.min(np.linalg.norm(seen - centroids[3], axis=1))
  # Leave-one-out 5-NN vote of the cluster label: are the four clusters still told apart?
  sq = np.sum(embeddings ** 2, axis=1)
  dist = sq[:, None] + sq[None, :] - 2.0 * embeddings @ embeddings.T
  np.fill_diagonal(dist, np.inf)
  votes = labels[np.argsort(dist, axis=1)[:, :5]]
  predicted = np.array([np.bincount(v, minlength=4).argmax() for v in votes])
  return {
      "knn_cluster_accuracy": float(np.mean(predicted == labels)),
      "spread_per_cluster": spread,
      "relative_spread_unseen": spread[3] / spread[:3].mean(),
      "seen_spread_over_separation": spread[:3].mean() / separation,
      "unseen_spread_over_separation": spread[3] / separation,
      "seen_centroid_separation": separation,
      "unseen_centroid_to_nearest_seen_over_separation": unseen_to_seen / separation,
  }


def pca_2d(reference, *arrays):
  mean = reference.mean(0)
  _, _, vt = np.linalg.svd(reference - mean, full_matrices=False)
  return [(a - mean) @ vt[:2].T for a in arrays]


def plot(train_points, test_points, test_labels, runs, seed):
  dims = list(runs)
  fig, axes = plt.subplots(len(dims), 3, figsize=(14, 4.3 * len(dims)), squeeze=False)
  colors = np.array(["C2", "C4", "C1", "C0"])
  names = ["seen 1", "seen 2", "seen 3", "unseen"]
  for row, dim in enumerate(dims):
    ax = axes[row, 0]
    if row == 0:
      ax.scatter(train_points[:, 0], train_points[:, 1], s=3, c="0.75", label="training points")
      for c in range(4):
        sel = test_labels == c
        ax.scatter(test_points[sel, 0], test_points[sel, 1], s=6, c=colors[c], label=f"test: {names[c]}")
      ax.set_aspect("equal")
      ax.set_title("input: 3 training clusters + 1 unseen (blue)", fontsize=10)
      ax.legend(fontsize=7, markerscale=2)
    else:
      ax.axis("off")
      ax.text(0.0, 0.5, "\n".join(
          [f"width {dim}: spread unseen / mean spread seen", "(mean +- std over seeds)", ""] +
          [f"{m}: {runs[dim][m]['summary']['relative_spread_unseen']['mean']:.2f} +- "
           f"{runs[dim][m]['summary']['relative_spread_unseen']['std']:.2f}" for m in METHODS]),
          fontsize=10, va="center", transform=ax.transAxes)
    for ax, method in zip(axes[row, 1:], METHODS):
      run = runs[dim][method]["runs"][seed]
      embedded = run["test_embeddings"]
      (projected,) = pca_2d(embedded[test_labels < 3], embedded)
      for c in range(4):
        sel = test_labels == c
        ax.scatter(projected[sel, 0], projected[sel, 1], s=6, c=colors[c], label=names[c])
      stats = run["stats"]
      ax.set_title(f"{method}, width {dim} (seed {seed}): PCA of test embeddings\nspread unseen / mean spread "
                   f"seen = {stats['relative_spread_unseen']:.2f}", fontsize=10)
      ax.set_xlabel("PC 1 (fitted on seen clusters)")
      ax.set_ylabel("PC 2")
      ax.legend(fontsize=7, markerscale=2)
  fig.tight_layout()
  return fig


def summarise(method_runs):
  summary = {}
  for key in ("relative_spread_unseen", "seen_spread_over_separation", "unseen_spread_over_separation",
              "knn_cluster_accuracy"):
    values = np.array([run["stats"][key] for run in method_runs])
    summary[key] = {"mean": values.mean(), "std": _common.sample_std(values), "min": values.min(), "max": values.max(),
                    "per_seed": values}
  return summary


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--seeds", type=int, default=5)
  args = parser.parse_args(argv)
  started = time.perf_counter()
  if args.small:
    per_cluster_train, per_cluster_test, steps, batch, seeds = 64, 32, 40, 64, [0]
  else:
    per_cluster_train, per_cluster_test, steps, batch, seeds = 400, 200, 2000, 256, list(range(args.seeds))

  rng = np.random.default_rng(1234)
  train_points, train_labels = make_data(rng, per_cluster_train)
  train_points = train_points[train_labels < 3]
  test_points, test_labels = make_data(rng, per_cluster_test)
  input_stats = spreads(test_points, test_labels)

  runs = {}
  for dim in EMBED_DIMS:
    runs[dim] = {}
    for method in METHODS:
      method_runs = []
      for seed in seeds:
        params, history, metrics = train(method, dim, train_points, steps, batch, seed)
        embedded = np.asarray(mlp(params, jnp.asarray(test_points)))
        stats = spreads(embedded, test_labels)
        method_runs.append({"seed": seed, "loss_history": history, "final_metrics": metrics, "stats": stats,
                            "test_embeddings": embedded})
        print(f"width {dim:2d} {method:10s} seed {seed}: relative spread unseen "
              f"{stats['relative_spread_unseen']:.3f}  seen spread/sep {stats['seen_spread_over_separation']:.3f}  "
              f"unseen spread/sep {stats['unseen_spread_over_separation']:.3f}  "
              f"5-NN acc {stats['knn_cluster_accuracy']:.3f}  loss {history[-1]:.3f}", flush=True)
      runs[dim][method] = {"runs": method_runs, "summary": summarise(method_runs)}
    vicreg_rel = runs[dim]["vicreg"]["summary"]["relative_spread_unseen"]["per_seed"]
    sag_rel = runs[dim]["sag_vicreg"]["summary"]["relative_spread_unseen"]["per_seed"]
    runs[dim]["seeds_where_sag_relative_spread_is_lower"] = int(np.sum(sag_rel < vicreg_rel))
    vicreg_abs = runs[dim]["vicreg"]["summary"]["unseen_spread_over_separation"]["per_seed"]
    sag_abs = runs[dim]["sag_vicreg"]["summary"]["unseen_spread_over_separation"]["per_seed"]
    runs[dim]["seeds_where_sag_unseen_spread_over_separation_is_lower"] = int(np.sum(sag_abs < vicreg_abs))
    print(f"width {dim}: relative spread of the unseen cluster: vicreg {vicreg_rel.mean():.3f} +- "
          f"{_common.sample_std(vicreg_rel):.3f}, sag_vicreg {sag_rel.mean():.3f} +- {_common.sample_std(sag_rel):.3f} "
          f"(input space {input_stats['relative_spread_unseen']:.3f})")

  result = {
      "claim": "VICReg (a spectral embedding) embeds points of a cluster unseen in training with a much larger "
               "dispersion than the training clusters; SAG-VICReg's random-walk pairing keeps them more coherent "
               "(SAG-VICReg Figure 1 and Sec. 4.1).",
      "setup": {
          "seen_centres": SEEN_CENTRES, "unseen_centre": UNSEEN_CENTRE, "cluster_std": CLUSTER_STD,
          "train_points_per_cluster": per_cluster_train, "test_points_per_cluster": per_cluster_test,
          "augmentation": f"x + {AUG_STD} * standard normal, two independent draws per point",
          "model": f"MLP 2 -> {HIDDEN} -> {HIDDEN} -> width, ReLU, He-normal init; widths {list(EMBED_DIMS)}",
          "optimizer": f"optax.adam({LR})", "steps": steps, "batch": batch, "seeds": seeds,
          "losses": f"vicreg_loss(z1, z2) and sag_vicreg_loss(key, z1, z2, k={K_NEIGHBOURS}), both with (25, 25, 1)",
          "sag_vicreg_reading": _common.sag_vicreg_reading(),  # the loss's defaults
          "spread": "s_c = sqrt(mean_{i in c} ||e_i - m_c||^2) on held-out test points, in the full embedding space",
          "relative_spread_unseen": "s_unseen / mean_{c seen} s_c",
          "spread_over_separation": "s_c / mean pairwise distance between the three seen centroids "
                                    "(seen: mean over the seen clusters)",
          "knn_cluster_accuracy": "leave-one-out 5-NN majority vote of the cluster label (4 clusters) among the "
                                  "test embeddings: 1 = all four clusters stay apart",
          "figure": "first two principal components of the test embeddings, fitted on the seen clusters, "
                    f"seed {seeds[0]}",
      },
      "input_space": input_stats,
      "widths": {str(dim): {
          "summary": {m: runs[dim][m]["summary"] for m in METHODS},
          "seeds_where_sag_relative_spread_is_lower": runs[dim]["seeds_where_sag_relative_spread_is_lower"],
          "seeds_where_sag_unseen_spread_over_separation_is_lower":
              runs[dim]["seeds_where_sag_unseen_spread_over_separation_is_lower"],
          "num_seeds": len(seeds),
          "runs": {m: [{k: v for k, v in run.items() if k != "test_embeddings"} for run in runs[dim][m]["runs"]]
                   for m in METHODS},
      } for dim in EMBED_DIMS},
  }
  fig = plot(train_points, test_points, test_labels, {dim: {m: runs[dim][m] for m in METHODS} for dim in EMBED_DIMS},
             0)
  _common.write_results(NAME, args.output_dir, result, fig, small=args.small, started=started)
  return result


if __name__ == "__main__":
  main()
