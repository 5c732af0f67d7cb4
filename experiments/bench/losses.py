"""Benchmark of the regularizer kernels, each as a ratio to a reference timed in the same run.

  python -m experiments.bench.losses            # the issue's sizes; writes results/losses-<device>.json
  python -m experiments.bench.losses --small    # seconds; for a quick check

Rows:
  * MST forward + gradient (N = 1024 and 4096, D = 512) against scipy's
    `pdist` + `minimum_spanning_tree` on the same points. Goal: >= 20x faster.
  * VISReg regularizer forward + gradient (N = 1024, D = 2048, K = 4096) against
    the floor: its two matmuls (projection and its transpose) jitted alone.
    Goal: <= 2x the floor. A plain `jnp.sort` implementation is timed beside it.
  * SIGReg, plain SWD, VICReg and knn_affinity + random_walk_pairs at the same
    N and D, against the same floor, for the record.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import platform
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse import csgraph
from scipy.spatial import distance

from jax_ssl import losses
from jax_ssl import ops

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def time_call(fn, *args, repeats: int, min_total_s: float = 1.0) -> float:
  """Median wall time of `fn(*args)` after a warm-up call (compilation).

  At least `repeats` calls, and more until `min_total_s` has passed: fast
  kernels need many samples for a stable median on a shared CPU.
  """
  jax.block_until_ready(fn(*args))
  times = []
  began = time.perf_counter()
  while len(times) < repeats or (time.perf_counter() - began < min_total_s and len(times) < 1000):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def device_name() -> str:
  device = jax.devices()[0]
  if device.platform == "cpu":
    return "cpu"
  return re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-")


def device_description() -> str:
  device = jax.devices()[0]
  if device.platform != "cpu":
    return device.device_kind
  model = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{model}, {len(jax.devices())} XLA device(s), {_cores()} cores"


def _cores() -> int:
  import os
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def row(name, shape, time_s, reference, reference_time_s, ratio_kind, goal=None):
  """`ratio_kind`: 'speedup' = reference / ours (higher is better); 'slowdown' = ours / reference."""
  ratio = reference_time_s / time_s if ratio_kind == "speedup" else time_s / reference_time_s
  met = None if goal is None else (ratio >= goal if ratio_kind == "speedup" else ratio <= goal)
  return {"name": name, "shape": shape, "time_s": time_s, "reference": reference,
          "reference_time_s": reference_time_s, "ratio_kind": ratio_kind, "ratio": ratio, "goal": goal,
          "meets_goal": met}


def time_interleaved(calls: dict, repeats: int, min_total_s: float = 5.0, turn_s: float = 0.25) -> dict:
  """Median wall time of each `fn(*args)` in `calls` ({name: (fn, args)}), the functions taking turns.

  One warm-up call each (compilation), then rounds in which each function is
  called back to back for about `turn_s` (at least once): at least `repeats`
  rounds, and more until `min_total_s` has passed. On a shared CPU the load
  changes from second to second; taking turns, every function sees the same
  load, so the ratios between them hold better than those of back-to-back
  `time_call`s. Within its turn a function runs as it would in a loop; only
  the first call of a turn follows another function's.
  """
  for fn, args in calls.values():
    jax.block_until_ready(fn(*args))
  times = {name: [] for name in calls}
  began = time.perf_counter()
  rounds = 0
  while rounds < repeats or (time.perf_counter() - began < min_total_s and rounds < 1000):
    for name, (fn, args) in calls.items():
      turn_ends = time.perf_counter() + turn_s
      while True:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times[name].append(time.perf_counter() - start)
        if time.perf_counter() >= turn_ends:
          break
    rounds += 1
  return {name: statistics.median(samples) for name, samples in times.items()}


def bench_mst(n: int, dim: int, repeats: int, graded: bool) -> list[dict]:
  """MST length fwd+grad against scipy and against its own (N, N) distance matrix; Borůvka's against Prim's."""
  points = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)

  def scipy_mst(x):
    return csgraph.minimum_spanning_tree(distance.squareform(distance.pdist(x))).sum()

  times = time_interleaved({
      "ours": (jax.jit(jax.value_and_grad(losses.mst_length)), (points,)),
      "scipy": (scipy_mst, (points,)),
      "distances": (jax.jit(ops.squared_euclidean_distances), (points,)),
      "prim": (jax.jit(lambda z: ops.mst_edges(z, "prim")), (points,)),
      "boruvka": (jax.jit(lambda z: ops.mst_edges(z, "boruvka")), (points,)),
  }, repeats)
  shape = dict(N=n, D=dim)
  return [
      row(f"mst_length fwd+grad N={n}", shape, times["ours"], "scipy pdist + minimum_spanning_tree", times["scipy"],
          "speedup", goal=20.0 if graded else None),
      row(f"mst_length fwd+grad N={n} vs its distance matrix", shape, times["ours"],
          "ops.squared_euclidean_distances (one matmul), jitted alone", times["distances"], "slowdown",
          goal=1.5 if graded and n >= 4096 else None),
      row(f"mst_edges boruvka N={n}", shape, times["boruvka"], "mst_edges prim", times["prim"], "slowdown"),
  ]


def plain_sort_visreg(z, directions):
  """VISReg's regularizer with XLA's own float sort: what a straightforward port costs."""
  mean = jnp.mean(z, axis=0)
  std = jnp.std(z, axis=0) + 1e-6
  projected = jnp.sort(((z - mean) / jax.lax.stop_gradient(std)) @ directions, axis=0)
  shape = jnp.mean(jnp.square(projected - losses.gaussian_quantiles(z.shape[0])[:, None]))
  return jnp.mean(jnp.square(1 - std)) + shape + jnp.mean(jnp.square(mean))


def bench_regularizers(n: int, dim: int, num_slices: int, repeats: int, graded: bool) -> list[dict]:
  key = jax.random.key(0)
  z = jax.random.normal(key, (n, dim), jnp.float32) * 0.7 + 0.1
  z2 = z + 0.1 * jax.random.normal(jax.random.key(1), (n, dim), jnp.float32)
  directions = losses.random_directions(jax.random.key(2), dim, num_slices)
  cotangent = jnp.ones((n, num_slices), jnp.float32)
  floor = time_call(jax.jit(lambda a, w, g: (a @ w, g @ w.T)), z, directions, cotangent, repeats=repeats)
  floor_name = "floor: z @ W and its transpose matmul, jitted alone"
  shape = dict(N=n, D=dim, K=num_slices)

  def against_floor(name, fn, *args, goal=None):
    return row(name, shape, time_call(jax.jit(jax.value_and_grad(fn)), *args, repeats=repeats), floor_name, floor,
               "slowdown", goal)

  rows = [
      against_floor("visreg_regularizer fwd+grad", losses.visreg_regularizer, z, directions,
                    goal=2.0 if graded else None),
      against_floor("visreg_regularizer with jnp.sort fwd+grad", plain_sort_visreg, z, directions),
      against_floor("swd_gaussian fwd+grad", losses.swd_gaussian, z, directions),
      against_floor("sigreg fwd+grad", losses.sigreg, z, directions),
      against_floor("vicreg_loss fwd+grad", lambda a, b: losses.vicreg_loss(a, b)[0], z, z2),
  ]

  def pairing(a, b, walk_key):
    return losses.random_walk_pairs(walk_key, losses.knn_affinity(a, b))

  pairing_time = time_call(jax.jit(pairing), z, z2, jax.random.key(3), repeats=repeats)
  rows.append(row("knn_affinity + random_walk_pairs", dict(N=n, D=dim), pairing_time, floor_name, floor, "slowdown"))
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--small", action="store_true", help="tiny sizes, for a quick check")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--output", type=pathlib.Path, default=None,
                      help="JSON path (default results/losses-<device>.json)")
  parser.add_argument("--only", choices=("mst", "regularizers"), default=None,
                      help="run these rows only, and replace just them in the JSON (the others keep their run's times)")
  args = parser.parse_args()

  if args.small:
    mst_sizes, (n, dim, num_slices), repeats = [(64, 16)], (64, 32, 64), 2
  else:
    mst_sizes, (n, dim, num_slices), repeats = [(1024, 512), (4096, 512)], (1024, 2048, 4096), args.repeats
  # Goals are stated for the sizes only.
  graded = not args.small
  rows = []
  if args.only in (None, "mst"):
    rows += [r for size, d in mst_sizes for r in bench_mst(size, d, repeats, graded)]
  if args.only in (None, "regularizers"):
    rows += bench_regularizers(n, dim, num_slices, repeats, graded)

  print(f"{'benchmark':46s} {'ours (s)':>10s} {'ref (s)':>10s} {'ratio':>12s}  goal")
  for r in rows:
    ratio = f"{r['ratio']:.2f}x " + ("faster" if r["ratio_kind"] == "speedup" else "floor")
    goal = "" if r["goal"] is None else f"{'>=' if r['ratio_kind'] == 'speedup' else '<='} {r['goal']:g}: " + (
        "met" if r["meets_goal"] else "MISSED")
    print(f"{r['name']:46s} {r['time_s']:10.4f} {r['reference_time_s']:10.4f} {ratio:>12s}  {goal}")

  result = {
      "benchmark": "losses",
      "device": device_name(),
      "device_description": device_description(),
      "jax_version": jax.__version__,
      "date": datetime.date.today().isoformat(),
      "small": args.small,
      "repeats": repeats,
      "timing": "median wall time after a warm-up call; ratios use times from this run only (the MST rows' "
                "functions taking turns of a quarter second, round after round)",
      "rows": rows,
  }
  output = args.output or RESULTS_DIR / f"losses-{result['device']}.json"
  if args.only and output.exists():
    # Replace the rows run now, each dated; the file's other rows and its header stay those of their run.
    previous = json.loads(output.read_text())
    if previous.get("small") != args.small or previous.get("device") != result["device"]:
      raise SystemExit(f"--only: {output} holds another device's or size's rows; pass a fresh --output.")
    fresh = {r["name"]: dict(r, date=result["date"], repeats=repeats) for r in rows}
    kept = [fresh.pop(r["name"], r) for r in previous["rows"]]
    result = dict(previous, rows=kept + list(fresh.values()), timing=result["timing"])
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  print(f"wrote {output}")


if __name__ == "__main__":
  main()
