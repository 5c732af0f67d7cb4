"""T-REG alone on a free point cloud: a regular simplex when n <= d + 1, uniform on the sphere when n > d + 1.

  python -m experiments.point_cloud            # full size (about a minute)
  python -m experiments.point_cloud --small    # tiny, for tests

The T-REG slides state two behaviours of `gamma * L_E + lam * L_S` (L_E = minus
the MST length over n, L_S = mean (||z_i|| - 1)^2) when it optimises the
positions of a point cloud directly:
  A. n <= d + 1: the MST length over a ball is maximised by the vertices of a
     regular (n-1)-simplex inscribed in its sphere, so every pairwise cosine
     tends to -1 / (n - 1);
  B. n > d + 1: the points spread uniformly over the sphere.

Both clouds start far from the claimed optimum: every point is a common offset
plus isotropic noise, so the cloud sits in one cap (pairwise cosines mostly
positive). The optimiser is Adam with a cosine-decayed learning rate.

lam / gamma sets the radius of the equilibrium: with the defaults of SSL
training (gamma = 0.2, lam = 8e-4) the MST term wins and the cloud inflates to
radius ~ 1 + 0.7 gamma / lam ~ 176 for a simplex (directions would be the
same). Here lam = 4 so that norms settle near 1 and "norms near 1" can be
checked; the predicted radius for the simplex is in the JSON.

Reported: case A, the mean and max |cos_ij + 1/(n-1)| over pairs, and the
norms. Case B, four uniformity statistics of the directions u_i = z_i/||z_i||,
each next to its value for n i.i.d. uniform points on the sphere (mean and std
over 20 draws):
  uniformity      log mean_{i<j} exp(-2 ||u_i - u_j||^2) (Wang & Isola, t = 2);
                  the continuous uniform measure on S^2 gives log((1 - e^-8) / 8)
  resultant       ||mean_i u_i|| (Rayleigh statistic; ~ 1/sqrt(n) for uniform)
  ks_cosine       Kolmogorov-Smirnov distance between the pairwise cosines and
                  U[-1, 1], their law for two independent uniform points on S^2
  covering_radius max over 20000 random probe directions of the chordal
                  distance to the nearest point (the largest hole)
  nn_cv           coefficient of variation of nearest-neighbour distances
                  (lower = more evenly spaced than random)
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from scipy import stats
from scipy.spatial import cKDTree

from experiments import _common
from jax_ssl import losses

NAME = "point_cloud"
GAMMA = 0.2
LAM = 4.0
# Peak Adam learning rates: the sphere case needs the cloud to travel around the sphere.
LR_A = 1e-2
LR_B = 5e-2
NUM_UNIFORM_DRAWS = 20
NUM_PROBES = 20000


def initial_cloud(key, n, dim, offset_scale, noise_scale):
  """A cloud in one cap: a common random offset of norm `offset_scale` plus isotropic noise."""
  k1, k2 = jax.random.split(key)
  offset = jax.random.normal(k1, (dim,))
  offset = offset_scale * offset / jnp.linalg.norm(offset)
  return offset + noise_scale * jax.random.normal(k2, (n, dim)) / np.sqrt(dim)


def optimise(z0, steps, lr, log_every):
  schedule = optax.cosine_decay_schedule(lr, steps, alpha=1e-3)
  optimizer = optax.adam(schedule)
  loss_fn = lambda z: losses.t_reg(z, gamma=GAMMA, lam=LAM)

  def step(carry, _):
    z, state = carry
    value, grad = jax.value_and_grad(loss_fn)(z)
    updates, state = optimizer.update(grad, state, z)
    return (optax.apply_updates(z, updates), state), value

  @jax.jit
  def block(z, state):
    (z, state), values = jax.lax.scan(step, (z, state), None, length=log_every)
    return z, state, values[-1]

  z, state = z0, optimizer.init(z0)
  history = []
  for _ in range(steps // log_every):
    z, state, value = block(z, state)
    history.append(float(value))
  return np.asarray(z, np.float64), history


def pairwise_cosines(z):
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  upper = np.triu_indices(len(z), k=1)
  return (u @ u.T)[upper]


def simplex_stats(z):
  n = len(z)
  target = -1.0 / (n - 1)
  cos = pairwise_cosines(z)
  norms = np.linalg.norm(z, axis=1)
  # The stds here describe this one cloud (all its points and pairs), not a spread over draws: ddof 0.
  return {
      "target_cosine": target,
      "cosine_mean": cos.mean(), "cosine_std": cos.std(), "cosine_min": cos.min(), "cosine_max": cos.max(),
      "mean_abs_deviation": np.abs(cos - target).mean(), "max_abs_deviation": np.abs(cos - target).max(),
      "norm_mean": norms.mean(), "norm_std": norms.std(), "max_abs_norm_minus_1": np.abs(norms - 1).max(),
  }


def uniformity_stats(z, probes):
  """Statistics of the directions of z (see the module docstring)."""
  u = z / np.linalg.norm(z, axis=1, keepdims=True)
  cos = pairwise_cosines(u)
  tree = cKDTree(u)
  nn = tree.query(u, k=2)[0][:, 1]
  return {
      "uniformity": float(np.log(np.mean(np.exp(-2.0 * (2.0 - 2.0 * cos))))),
      "resultant": float(np.linalg.norm(u.mean(0))),
      "ks_cosine": float(stats.kstest(cos, stats.uniform(loc=-1, scale=2).cdf).statistic),
      "covering_radius": float(tree.query(probes, k=1)[0].max()),
      "nn_cv": float(nn.std() / nn.mean()),
      "nn_mean": float(nn.mean()),
  }


def random_unit(rng, n, dim):
  x = rng.standard_normal((n, dim))
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def case_a(n, steps, seed):
  z0 = initial_cloud(jax.random.key(seed), n, n, offset_scale=0.1, noise_scale=0.1)
  z, history = optimise(z0, steps, lr=LR_A, log_every=max(steps // 50, 1))
  # A regular simplex of radius R: MST length (n - 1) * R * sqrt(2n / (n - 1)); d/dR of the loss = 0 at:
  predicted_radius = 1.0 + GAMMA * np.sqrt(2.0 * (n - 1) / n) / (2.0 * LAM)
  gaussian = np.random.default_rng(seed).standard_normal((n, n))
  return {
      "n": n, "d": n, "steps": steps, "lr": LR_A,
      "before": simplex_stats(np.asarray(z0, np.float64)),
      "after": simplex_stats(z),
      "reference_gaussian_points": simplex_stats(gaussian),
      "predicted_simplex_radius": predicted_radius,
      # The same at T-REGS' SSL defaults (gamma = 0.2, lam = 8e-4): why lam is raised here.
      "predicted_simplex_radius_at_lam_8e-4": 1.0 + GAMMA * np.sqrt(2.0 * (n - 1) / n) / (2.0 * 8e-4),
      "loss_history": history,
  }, np.asarray(z0), z


def case_b(n, dim, steps, seed):
  z0 = initial_cloud(jax.random.key(seed), n, dim, offset_scale=0.3, noise_scale=0.3)
  z, history = optimise(z0, steps, lr=LR_B, log_every=max(steps // 50, 1))
  rng = np.random.default_rng(seed)
  probes = random_unit(rng, NUM_PROBES, dim)
  iid = [uniformity_stats(random_unit(rng, n, dim), probes) for _ in range(NUM_UNIFORM_DRAWS)]
  reference = {key: _common.mean_std([s[key] for s in iid]) for key in iid[0]}  # std over the draws: ddof 1
  after = uniformity_stats(z, probes)
  # Lower is more uniform for every statistic; z-score against i.i.d. uniform draws.
  z_scores = {key: (after[key] - reference[key]["mean"]) / max(reference[key]["std"], 1e-12)
              for key in ("uniformity", "resultant", "ks_cosine", "covering_radius", "nn_cv")}
  norms = np.linalg.norm(z, axis=1)
  return {
      "n": n, "d": dim, "steps": steps, "lr": LR_B,
      "before": uniformity_stats(np.asarray(z0, np.float64), probes),
      "after": after,
      "iid_uniform_reference": reference,
      "z_scores_vs_iid_uniform": z_scores,
      "continuous_uniform_uniformity": float(np.log((1.0 - np.exp(-8.0)) / 8.0)),
      "norms_after": {"mean": norms.mean(), "std": norms.std(), "max_abs_norm_minus_1": np.abs(norms - 1).max()},
      "norms_before": {"mean": float(np.linalg.norm(z0, axis=1).mean())},
      "loss_history": history,
  }, np.asarray(z0), z


def plot(a, z0_a, z_a, b, z0_b, z_b):
  fig = plt.figure(figsize=(13, 7.5))
  n_a = len(z_a)
  ax = fig.add_subplot(2, 3, 1)
  ax.hist(pairwise_cosines(z0_a), bins=60, color="0.6", label="before")
  ax.hist(pairwise_cosines(z_a), bins=60, color="C0", alpha=0.8, label="after")
  ax.axvline(-1 / (n_a - 1), color="C3", ls="--", lw=1, label="-1/(n-1)")
  ax.set_title(f"A: n = d = {n_a}, pairwise cosines", fontsize=10)
  ax.set_xlabel("cos(z_i, z_j)")
  ax.legend(fontsize=8)
  ax = fig.add_subplot(2, 3, 2)
  ax.hist(pairwise_cosines(z_a), bins=60, color="C0")
  ax.axvline(-1 / (n_a - 1), color="C3", ls="--", lw=1)
  ax.set_title(f"A after (zoom): max |cos + 1/(n-1)| = {a['after']['max_abs_deviation']:.1e}", fontsize=10)
  ax.set_xlabel("cos(z_i, z_j)")
  ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
  ax = fig.add_subplot(2, 3, 3)
  for case, color, label in ((a, "C0", "A"), (b, "C1", "B")):
    steps = np.linspace(0, case["steps"], len(case["loss_history"]) + 1)[1:]
    ax.plot(steps, case["loss_history"], color=color, label=f"case {label}")
  ax.set_xlabel("Adam step")
  ax.set_ylabel("T-REG loss")
  ax.set_title(f"loss (gamma={GAMMA}, lam={LAM})", fontsize=10)
  ax.legend(fontsize=8)

  n_b, d_b = z_b.shape
  ax = fig.add_subplot(2, 3, 4)
  bins = np.linspace(-1, 1, 41)
  ax.hist(pairwise_cosines(z0_b), bins=bins, density=True, color="0.6", label="before")
  ax.hist(pairwise_cosines(z_b), bins=bins, density=True, color="C1", alpha=0.8, label="after")
  ax.axhline(0.5, color="C3", ls="--", lw=1, label="uniform on S^2")
  ax.set_title(f"B: n = {n_b}, d = {d_b}, pairwise cosines", fontsize=10)
  ax.set_xlabel("cos(z_i, z_j)")
  ax.legend(fontsize=8)
  for position, points, title in ((5, z0_b, "B before"), (6, z_b, "B after")):
    ax = fig.add_subplot(2, 3, position, projection="3d")
    ax.scatter(points[:, 0], points[:, 1], points[:, 2], s=2, c=points[:, 2], cmap="viridis")
    limit = max(1.05, np.abs(points).max())
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_zlim(-limit, limit)
    ax.set_box_aspect((1, 1, 1))
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=6)
  fig.suptitle("T-REG alone on a free point cloud", fontsize=11)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  started = time.perf_counter()
  if args.small:
    n_a, steps_a, n_b, d_b, steps_b = 8, 100, 64, 3, 100
  else:
    n_a, steps_a, n_b, d_b, steps_b = 1024, 3000, 1024, 3, 3000
  a, z0_a, z_a = case_a(n_a, steps_a, args.seed)
  b, z0_b, z_b = case_b(n_b, d_b, steps_b, args.seed)

  print(f"A (n = d = {n_a}): cosines mean {a['after']['cosine_mean']:.5f} (target {a['after']['target_cosine']:.5f}), "
        f"mean |dev| {a['after']['mean_abs_deviation']:.2e}, max |dev| {a['after']['max_abs_deviation']:.2e}, "
        f"norm {a['after']['norm_mean']:.4f} (predicted {a['predicted_simplex_radius']:.4f})")
  print(f"B (n = {n_b}, d = {d_b}): norms {b['norms_after']['mean']:.4f} +- {b['norms_after']['std']:.4f}")
  for key, value in b["after"].items():
    ref = b["iid_uniform_reference"][key]
    print(f"  {key:16s} after {value:9.4f}   before {b['before'][key]:9.4f}   iid uniform {ref['mean']:9.4f} "
          f"+- {ref['std']:.4f}")

  result = {
      "claim": "T-REG alone drives a point cloud to a regular simplex when n <= d + 1 and to a uniform spread on "
               "the sphere when n > d + 1 (T-REG slides, point cloud optimisation).",
      "setup": {
          "loss": f"t_reg(z, gamma={GAMMA}, lam={LAM})",
          "optimizer": "optax.adam with cosine_decay_schedule(lr, steps, alpha=1e-3)",
          "init": "common random offset plus isotropic noise (all points in one cap); case A offset norm 0.1, "
                  "noise 0.1 / sqrt(d) per coordinate; case B offset 0.3, noise 0.3 / sqrt(d)",
          "seed": args.seed,
          "uniformity_statistics": {
              "uniformity": "log mean_{i<j} exp(-2 ||u_i - u_j||^2), u = z / ||z|| (lower = more uniform)",
              "resultant": "||mean_i u_i||",
              "ks_cosine": "KS distance of the pairwise cosines to U[-1, 1]",
              "covering_radius": f"max over {NUM_PROBES} random unit probes of the distance to the nearest u_i",
              "nn_cv": "std / mean of nearest-neighbour chordal distances",
              "iid_uniform_reference": f"mean and std over {NUM_UNIFORM_DRAWS} draws of n i.i.d. uniform points",
              "z_scores": "(after - iid mean) / iid std; negative = more uniform than random uniform points",
          },
      },
      "case_a_simplex": a,
      "case_b_sphere": b,
  }
  fig = plot(a, z0_a, z_a, b, z0_b, z_b)
  _common.write_results(NAME, args.output_dir, result, fig, small=args.small, started=started)
  return result


if __name__ == "__main__":
  main()
