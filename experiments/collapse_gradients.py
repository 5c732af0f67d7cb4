"""VISReg Figure 2: how much gradient each regularizer gives as the embeddings collapse.

  python -m experiments.collapse_gradients            # full size (seconds)
  python -m experiments.collapse_gradients --small    # tiny, for tests

Fixed embeddings z0 (N x D standard normal) are shrunk to z = r * z0 with r on a
log grid from 1e-4 (collapsed) to 10. For each regularizer L we record
`||grad_z L(z)||` (Frobenius norm over all N x D entries: the signal that
back-propagation hands to the network) and the radial derivative
`dL/dr = <grad_z L(r z0), z0>` (negative = the gradient step z -= lr * grad
pushes the embeddings apart, i.e. undoes the collapse).

Regularizers (all from `jax_ssl.losses`, at their default hyper-parameters):
  vicreg        25 * variance(z) + 1 * covariance(z)  (VICReg's reference weights)
  vicreg_variance, vicreg_covariance   the two terms alone, unweighted
  barlow_twins  barlow_twins_loss(z, z)  -- the *same* embeddings in both
                arguments (no noisy second view), gradient through both
  sigreg        sigreg(z, W), K slices
  swd           swd_gaussian(z, W): plain sliced W2 to N(0, I)
  visreg        visreg_regularizer(z, W) = scale + shape + center
  visreg_scale, visreg_shape          two of its terms alone
Every seed draws its own z0 and its own K directions W (shared by the
sketching losses).
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from experiments import _common
from jax_ssl import losses

NAME = "collapse_gradients"

# The collapsed regime where the slopes are fitted, and the healthy reference scale.
COLLAPSED_MAX_R = 1e-2
HEALTHY_R = 1.0


# name -> L(z, directions); the directions are ignored by the losses that take none.
REGULARIZERS = {
    "vicreg": lambda z, w: 25.0 * losses.variance(z) + losses.covariance(z),
    "vicreg_variance": lambda z, w: losses.variance(z),
    "vicreg_covariance": lambda z, w: losses.covariance(z),
    "barlow_twins": lambda z, w: losses.barlow_twins_loss(z, z)[0],
    "sigreg": losses.sigreg,
    "swd": losses.swd_gaussian,
    "visreg": losses.visreg_regularizer,
    "visreg_scale": lambda z, w: losses.scale_loss(z),
    "visreg_shape": losses.shape_loss,
}
MAIN_CURVES = ("vicreg", "barlow_twins", "sigreg", "swd", "visreg")


@functools.cache
def _curves_fn(name):
  """jit: (z0, directions, radii) -> (loss, ||grad||_F, dL/dr) at z = r * z0 for every r."""
  loss_fn = REGULARIZERS[name]

  def at(r, z0, directions):
    z = r * z0
    value, grad = jax.value_and_grad(loss_fn)(z, directions)
    return value, jnp.sqrt(jnp.sum(jnp.square(grad))), jnp.sum(grad * z0)

  # lax.map, not vmap: the host-side sort of the sliced losses then sees one (N, K) batch at a time.
  return jax.jit(lambda z0, directions, radii: jax.lax.map(lambda r: at(r, z0, directions), radii))


def run(n, dim, num_slices, radii, seeds):
  curves = {}
  for seed in seeds:
    key_z, key_w = jax.random.split(jax.random.key(seed))
    z0 = jax.random.normal(key_z, (n, dim), jnp.float32)
    directions = losses.random_directions(key_w, dim, num_slices)
    for name in REGULARIZERS:
      values, norms, radial = (np.asarray(a) for a in _curves_fn(name)(z0, directions, jnp.asarray(radii, jnp.float32)))
      entry = curves.setdefault(name, {"loss": [], "grad_norm": [], "radial_derivative": []})
      entry["loss"].append(values)
      entry["grad_norm"].append(norms)
      entry["radial_derivative"].append(radial)
  return {name: {k: np.stack(v) for k, v in entry.items()} for name, entry in curves.items()}


def summarise(curves, radii):
  radii = np.asarray(radii)
  collapsed = radii <= COLLAPSED_MAX_R
  healthy_index = int(np.argmin(np.abs(np.log(radii / HEALTHY_R))))
  summary = {}
  for name, entry in curves.items():
    median = np.median(entry["grad_norm"], axis=0)
    radial = np.median(entry["radial_derivative"], axis=0)
    inward = np.cumprod(radial > 0).astype(bool)  # True up to the first r where the radial derivative is <= 0
    summary[name] = {
        "grad_norm_at_smallest_r": float(median[0]),
        "grad_norm_at_r_1": float(median[healthy_index]),
        "ratio_smallest_r_to_r_1": float(median[0] / median[healthy_index]),
        "ratio_smallest_r_to_max_over_r": float(median[0] / median.max()),
        "loglog_slope_collapsed": _common.loglog_slope(radii[collapsed], median[collapsed]),
        "radial_derivative_at_smallest_r": float(radial[0]),
        "radial_derivative_median": radial,
        # Largest r such that for every grid r' <= r a gradient step shrinks the embeddings (dL/dr > 0).
        "inward_from_smallest_r_up_to": float(radii[inward][-1]) if inward.any() else None,
        "max_relative_spread_over_seeds": float(np.max(
            (entry["grad_norm"].max(0) - entry["grad_norm"].min(0)) / np.maximum(median, 1e-30))),
    }
  return summary


def _format(slope):
  return "-" if slope is None else f"{slope:.2f}"


def plot(curves, radii, n, dim, num_slices):
  fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
  styles = {"vicreg": "C0", "barlow_twins": "C1", "sigreg": "C3", "swd": "C2", "visreg": "C4"}
  for name, color in styles.items():
    grad = curves[name]["grad_norm"]
    axes[0].plot(radii, np.median(grad, 0), color=color, lw=2, label=name)
    axes[0].fill_between(radii, grad.min(0), grad.max(0), color=color, alpha=0.2)
  for name, style in (("vicreg_variance", "C0--"), ("vicreg_covariance", "C0:"), ("visreg_scale", "C4--"),
                      ("visreg_shape", "C4:")):
    axes[1].plot(radii, np.median(curves[name]["grad_norm"], 0), style, lw=1.5, label=name)
  axes[1].plot(radii, np.median(curves["visreg"]["grad_norm"], 0), "C4", lw=2, label="visreg (sum)")
  axes[1].plot(radii, np.median(curves["vicreg"]["grad_norm"], 0), "C0", lw=2, label="vicreg (25 var + cov)")
  titles = ("regularizers (median over seeds, band = min..max)", "their terms")
  for ax, title in zip(axes, titles):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvspan(radii[0], COLLAPSED_MAX_R, color="0.9", zorder=0)
    ax.set_xlabel("r  (embeddings z = r * z0)")
    ax.set_ylabel("||grad_z L||")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, which="major", alpha=0.3)
  fig.suptitle(f"Gradient norm under collapse (N={n}, D={dim}, K={num_slices}; shaded: r <= {COLLAPSED_MAX_R:g})",
               fontsize=11)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--seeds", type=int, default=5)
  args = parser.parse_args(argv)
  started = time.perf_counter()
  if args.small:
    n, dim, num_slices, num_radii, seeds = 32, 8, 16, 6, [0, 1]
  else:
    n, dim, num_slices, num_radii, seeds = 256, 64, 256, 26, list(range(args.seeds))
  radii = np.logspace(-4, 1, num_radii)
  curves = run(n, dim, num_slices, radii, seeds)
  summary = summarise(curves, radii)

  print(f"{'regularizer':20s} {'|g| r=1e-4':>12s} {'|g| r=1':>12s} {'slope r<=1e-2':>14s} {'dL/dr r=1e-4':>14s}")
  for name, s in summary.items():
    print(f"{name:20s} {s['grad_norm_at_smallest_r']:12.3e} {s['grad_norm_at_r_1']:12.3e} "
          f"{_format(s['loglog_slope_collapsed']):>14s} {s['radial_derivative_at_smallest_r']:14.3e}")

  result = {
      "claim": "SIGReg's gradient vanishes as the embeddings collapse (r -> 0); Barlow Twins and VISReg "
               "keep a strong gradient (VISReg Figure 2).",
      "setup": {
          "N": n, "D": dim, "num_slices_K": num_slices, "seeds": seeds,
          "z0": "standard normal (N, D), one draw per seed; slice directions: random_directions, one draw per seed",
          "radii": "np.logspace(-4, 1, num_radii)",
          "grad_norm": "Frobenius norm of grad_z L at z = r * z0",
          "radial_derivative": "dL/dr = <grad_z L(r z0), z0>; negative means gradient descent expands z",
          "barlow_twins": "barlow_twins_loss(z, z): the same embeddings in both arguments, no noisy views",
          "vicreg": "25 * variance(z) + covariance(z) (VICReg reference weights; invariance left out)",
          "collapsed_regime": f"r <= {COLLAPSED_MAX_R:g}: slopes are np.polyfit of log median grad norm on log r there",
          "main_curves": list(MAIN_CURVES),
      },
      "radii": radii,
      "curves": {name: {"grad_norm_per_seed": e["grad_norm"], "radial_derivative_per_seed": e["radial_derivative"],
                        "loss_per_seed": e["loss"], "grad_norm_median": np.median(e["grad_norm"], 0)}
                 for name, e in curves.items()},
      "summary": summary,
  }
  fig = plot(curves, radii, n, dim, num_slices)
  _common.write_results(NAME, args.output_dir, result, fig, small=args.small, started=started)
  return result


if __name__ == "__main__":
  main()
