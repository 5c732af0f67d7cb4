"""VISReg Figure 3 and its complexity claim: O(NDK) for VISReg against O(ND^2) for VICReg.

  python -m experiments.scaling_cost            # full sweeps (a few minutes on 2 cores)
  python -m experiments.scaling_cost --small    # tiny, for tests

Each regularizer's forward + gradient (`jax.jit(jax.value_and_grad(L))`) is
timed on random embeddings as the batch size N grows (D fixed) and as the
dimension D grows (N fixed, K fixed), plus a third sweep of D with K = 2 D for
the sketching losses (the paper's Figure 4 says K must exceed D by a factor
C > 1, which makes them O(N D^2) on one device).

Time: median wall time of the compiled function over repeated calls, after a
warm-up call, each followed by `block_until_ready`, on this machine's CPU. The
sizes of a sweep are timed in round-robin rounds, so load from other jobs on a
shared CPU hits every size alike.
Memory: XLA's compiled memory analysis, `compile().memory_analysis()`:
`temp_size_in_bytes` (the scratch buffers of the program) plus argument and
output sizes. On CPU the sliced losses sort on the host (numpy argsort via a
callback, see jax_ssl/ops/sorting.py): that host buffer (N x K int32 plus
numpy's scratch) is *not* in the compiled analysis.

Exponents: np.polyfit of log(time) (or log(memory)) against log(N) or log(D),
over all sizes and over the three largest (closer to the asymptotic regime,
where fixed per-call overheads no longer dominate).

Regularizers (one view each, except Barlow Twins, which is a cross-view loss
and takes two (N, D) views, gradient w.r.t. both):
  vicreg        25 * variance(z) + covariance(z)
  barlow_twins  barlow_twins_loss(z1, z2)
  sigreg        sigreg(z, W), W: (D, K)
  swd           swd_gaussian(z, W)
  visreg        visreg_regularizer(z, W)
  t_reg         t_reg(z) (MST length + sphere term)
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

from experiments import _common
from jax_ssl import losses

NAME = "scaling_cost"
SKETCHING = ("sigreg", "swd", "visreg")
REGULARIZERS = ("vicreg", "barlow_twins", "sigreg", "swd", "visreg", "t_reg")
# Leading-order cost of forward + gradient as written in the papers (K held fixed).
EXPECTED = {
    "vicreg": {"N": 1, "D": 2, "note": "O(N D^2): covariance matrix"},
    "barlow_twins": {"N": 1, "D": 2, "note": "O(N D^2): cross-correlation matrix"},
    "sigreg": {"N": 1, "D": 1, "note": "O(N D K + N K knots)"},
    "swd": {"N": 1, "D": 1, "note": "O(N D K + K N log N)"},
    "visreg": {"N": 1, "D": 1, "note": "O(N D K + K N log N) (VISReg Sec. 4.1)"},
    "t_reg": {"N": 2, "D": 1, "note": "O(N^2 D): pairwise distances + Prim's MST"},
}


def loss_and_args(name, n, dim, num_slices, key):
  """The function to differentiate, its arguments, and the argnums of the gradient."""
  k1, k2, k3 = jax.random.split(key, 3)
  z = jax.random.normal(k1, (n, dim), jnp.float32)
  if name == "vicreg":
    return lambda a: 25.0 * losses.variance(a) + losses.covariance(a), (z,), 0
  if name == "barlow_twins":
    z2 = z + 0.1 * jax.random.normal(k2, (n, dim), jnp.float32)
    return lambda a, b: losses.barlow_twins_loss(a, b)[0], (z, z2), (0, 1)
  if name == "t_reg":
    return losses.t_reg, (z,), 0
  directions = losses.random_directions(k3, dim, num_slices)
  fn = {"sigreg": losses.sigreg, "swd": losses.swd_gaussian, "visreg": losses.visreg_regularizer}[name]
  return fn, (z, directions), 0


@functools.cache
def compile_config(name, n, dim, num_slices):
  """(compiled fwd+grad, its arguments, static facts); cached, so a configuration shared by two sweeps compiles once."""
  fn, args, argnums = loss_and_args(name, n, dim, num_slices, jax.random.key(0))
  start = time.perf_counter()
  compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*args).compile()
  compile_s = time.perf_counter() - start
  memory = compiled.memory_analysis()
  jax.block_until_ready(compiled(*args))  # warm-up call
  facts = {
      "regularizer": name, "N": n, "D": dim, "K": num_slices if name in SKETCHING else None,
      "compile_s": compile_s,
      "temp_bytes": int(memory.temp_size_in_bytes),
      "argument_bytes": int(memory.argument_size_in_bytes),
      "output_bytes": int(memory.output_size_in_bytes),
  }
  facts["total_bytes"] = facts["temp_bytes"] + facts["argument_bytes"] + facts["output_bytes"]
  return compiled, args, facts


def measure_interleaved(name, configs, repeats, min_total_s):
  """Rows of one regularizer over `configs`, timed in round-robin rounds.

  Each round calls every configuration once (block_until_ready after each), so
  a burst of load from other jobs on the shared CPU hits all sizes alike
  instead of biasing one of them, which keeps the fitted exponents stable.
  At least `repeats` rounds, more until `min_total_s` has passed (at most 50).
  """
  compiled = [compile_config(name, n, d, k if name in SKETCHING else 0) for n, d, k in configs]
  samples = [[] for _ in configs]
  began = time.perf_counter()
  rounds = 0
  while rounds < repeats or (time.perf_counter() - began < min_total_s and rounds < 50):
    for (fn, args, _), times in zip(compiled, samples):
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times.append(time.perf_counter() - start)
    rounds += 1
  rows = []
  for (_, _, facts), times in zip(compiled, samples):
    row = {**facts, "time_s": statistics.median(times), "time_min_s": min(times), "time_max_s": max(times),
           "num_calls": len(times)}
    rows.append(row)
    k_text = row["K"] if row["K"] is not None else "-"
    print(f"  {name:13s} N={row['N']:6d} D={row['D']:5d} K={k_text:>5}  {row['time_s'] * 1e3:9.2f} ms  "
          f"temp {row['temp_bytes'] / 2**20:9.1f} MiB", flush=True)
  return rows


def fit(rows, axis, key):
  x = [r[axis] for r in rows]
  y = [max(r[key], 1) if key.endswith("bytes") else r[key] for r in rows]
  top = slice(-3, None)
  return {"all": _common.loglog_slope(x, y), "largest_3": _common.loglog_slope(x[top], y[top])}


def sweep(label, axis, configs, names, repeats, min_total_s):
  print(f"sweep {label}", flush=True)
  rows = {name: measure_interleaved(name, configs, repeats, min_total_s) for name in names}
  exponents = {name: {"time": fit(r, axis, "time_s"), "temp_memory": fit(r, axis, "temp_bytes"),
                      "total_memory": fit(r, axis, "total_bytes")} for name, r in rows.items()}
  return {"varies": axis, "configs": [{"N": n, "D": d, "K": k} for n, d, k in configs], "rows": rows,
          "exponents": exponents}


def crossover(result, first, second):
  """Smallest D of the D sweep from which `first` is slower than `second` at every larger D (None if never)."""
  a, b = result["rows"][first], result["rows"][second]
  slower = [ra["time_s"] > rb["time_s"] for ra, rb in zip(a, b)]
  for i in range(len(slower)):
    if all(slower[i:]):
      return a[i]["D"]
  return None


def plot(sweeps):
  fig, axes = plt.subplots(2, 3, figsize=(14, 7.5))
  colors = {name: f"C{i}" for i, name in enumerate(REGULARIZERS)}
  for col, (key, title) in enumerate((("N", "vary N"), ("D", "vary D, K fixed"), ("D_K2D", "vary D, K = 2D"))):
    result = sweeps[key]
    axis = result["varies"]
    fixed = {k: v for k, v in result["configs"][0].items() if k != axis}
    for name, rows in result["rows"].items():
      x = [r[axis] for r in rows]
      slope = result["exponents"][name]["time"]["largest_3"]
      axes[0, col].plot(x, [r["time_s"] for r in rows], "o-", color=colors[name], ms=3,
                        label=f"{name} (slope {slope:.2f})")
      axes[1, col].plot(x, [r["temp_bytes"] / 2**20 for r in rows], "o-", color=colors[name], ms=3, label=name)
    fixed_text = ", ".join(f"{k}={v}" for k, v in fixed.items() if v is not None and not (key == "D_K2D" and k == "K"))
    axes[0, col].set_title(f"{title} ({fixed_text})", fontsize=10)
    axes[0, col].set_ylabel("fwd+grad time (s, median)")
    axes[1, col].set_ylabel("XLA temp memory (MiB)")
    for row in range(2):
      ax = axes[row, col]
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_xlabel(axis)
      ax.grid(True, alpha=0.3)
    axes[0, col].legend(fontsize=7, title="slope: largest 3 sizes", title_fontsize=7)
  fig.suptitle("Cost of the regularizers on a 2-core shared CPU (jit fwd+grad; memory: compiled memory analysis)",
               fontsize=11)
  fig.tight_layout()
  return fig


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  _common.add_output_flags(parser)
  parser.add_argument("--repeats", type=int, default=7, help="timing rounds (at least)")
  parser.add_argument("--min_total_s", type=float, default=2.0,
                      help="more rounds (up to 50) until one regularizer's sweep has been timed this long")
  args = parser.parse_args(argv)
  started = time.perf_counter()
  if args.small:
    fixed_n, fixed_d, num_slices = 64, 16, 32
    n_values, d_values, d_k2d_values = [32, 64], [8, 16], [8, 16]
    repeats, min_total_s = 2, 0.0
  else:
    fixed_n, fixed_d, num_slices = 1024, 512, 1024
    n_values = [256, 512, 1024, 2048, 4096, 8192]
    d_values = [64, 128, 256, 512, 1024, 2048, 4096]
    d_k2d_values = [64, 128, 256, 512, 1024, 2048]
    repeats, min_total_s = args.repeats, args.min_total_s

  sweeps = {
      "N": sweep("N", "N", [(n, fixed_d, num_slices) for n in n_values], REGULARIZERS, repeats, min_total_s),
      "D": sweep("D", "D", [(fixed_n, d, num_slices) for d in d_values], REGULARIZERS, repeats, min_total_s),
      "D_K2D": sweep("D with K = 2D", "D", [(fixed_n, d, 2 * d) for d in d_k2d_values], SKETCHING, repeats,
                     min_total_s),
  }
  print(f"\n{'regularizer':13s} {'N exp (all/top3)':>18s} {'D exp (all/top3)':>18s} {'D exp, K=2D':>14s}")
  for name in REGULARIZERS:
    n_exp = sweeps["N"]["exponents"][name]["time"]
    d_exp = sweeps["D"]["exponents"][name]["time"]
    k2d = sweeps["D_K2D"]["exponents"].get(name, {}).get("time")
    k2d_text = f"{k2d['all']:.2f}/{k2d['largest_3']:.2f}" if k2d else "-"
    print(f"{name:13s} {n_exp['all']:8.2f}/{n_exp['largest_3']:<9.2f} {d_exp['all']:8.2f}/{d_exp['largest_3']:<9.2f} "
          f"{k2d_text:>14s}")

  largest_n = sweeps["N"]["configs"][-1]["N"]
  at_largest_n = {name: rows[-1] for name, rows in sweeps["N"]["rows"].items()}
  result = {
      "claim": "VISReg's regularizer costs O(NDK), linear in N and D at fixed K, against O(ND^2) for VICReg; "
               "SWD-based losses are faster and lighter in memory than SIGReg as N grows (VISReg Figure 3).",
      "setup": {
          "timing": "median wall time of the compiled jit(value_and_grad(L)) after one warm-up call, "
                    "block_until_ready after each call; the sizes of one sweep are timed in round-robin rounds "
                    "(each round calls every size once), at least `repeats` rounds and until `min_total_s` "
                    "seconds have passed (at most 50 rounds)",
          "memory": "compiled.memory_analysis(): temp_size_in_bytes (scratch) and temp + argument + output; the "
                    "host-side numpy argsort used by the sliced losses on CPU is not included",
          "exponent_fit": "np.polyfit(log x, log y, 1) over all sizes ('all') and over the 3 largest ('largest_3')",
          "fixed_N": fixed_n, "fixed_D": fixed_d, "fixed_K": num_slices,
          "repeats": repeats, "min_total_s": min_total_s,
          "barlow_twins": "two (N, D) views, gradient w.r.t. both; every other regularizer takes one view",
          "cpu_note": "2-core CPU shared with other jobs: absolute times are noisy, exponents less so",
          "expected_exponents": EXPECTED,
      },
      "sweeps": sweeps,
      "exponents_time": {
          name: {"N": sweeps["N"]["exponents"][name]["time"], "D_fixed_K": sweeps["D"]["exponents"][name]["time"],
                 **({"D_K_2D": sweeps["D_K2D"]["exponents"][name]["time"]} if name in SKETCHING else {})}
          for name in REGULARIZERS},
      "crossover_D_vicreg_slower_than_visreg": crossover(sweeps["D"], "vicreg", "visreg"),
      "at_largest_N": {
          "N": largest_n,
          "time_ratio_to_sigreg": {name: r["time_s"] / at_largest_n["sigreg"]["time_s"]
                                   for name, r in at_largest_n.items()},
          "temp_memory_ratio_to_sigreg": {name: r["temp_bytes"] / max(at_largest_n["sigreg"]["temp_bytes"], 1)
                                          for name, r in at_largest_n.items()},
      },
  }
  fig = plot(sweeps)
  _common.write_results(NAME, args.output_dir, result, fig, small=args.small, started=started)
  return result


if __name__ == "__main__":
  main()
