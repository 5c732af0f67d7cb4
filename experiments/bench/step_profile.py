"""Where the training step's time goes: XLA's own per-op timings, grouped by what each op computes.

  python -m experiments.bench.step_profile          # ResNet-18 CIFAR step, batch 64: results/step-profile-<device>.json
  python -m experiments.bench.step_profile --small  # seconds; for a quick check

Issue 11 asks why the CPU step (ResNet-18 with the CIFAR stem, a
2048-2048-2048 projector, VICReg, two 32 px views, batch 64) is slower than
torch's. This traces a few chained steps with `jax.profiler`, reads back every
executed HLO op with its duration (`jax.profiler.ProfileData`), and sorts each
op into a kind by what its HLO computes: a convolution, a matrix product, a
reduction (BatchNorm's statistics, the loss's sums), elementwise work, a
layout change (transpose or copy), or something else (gathers, sorts, loops). Each op is also put in a phase of
the step by the name JAX gives it: augmentation, forward, backward (ops of
`transpose(jvp(...))`), or the update and the rest.

Then the CPU weight gradient of `jax_ssl.models.conv` (a strided copy of the
shifted input per kernel tap, then a matrix product) is timed against two
forms that avoid the copies, at each of ResNet-18's CIFAR stages. The step's FLOPs come from XLA's cost analysis, so the
achieved FLOP rate is stated next to the time.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import pathlib
import re
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments import _common
from experiments.bench.losses import device_description
from experiments.bench.losses import device_name
from experiments.bench.losses import time_call
from experiments.bench.train import method_config
from jax_ssl.models import conv
from jax_ssl.train import loop
from jax_ssl.train import step as step_lib
from jax_ssl.train.state import DATA_AXIS

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
KINDS = ("convolution", "matmul", "reduction", "elementwise", "layout", "other")

# `%name = shape opcode(operands), attributes` in XLA's HLO text; shapes may be tuples with spaces.
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?(?P<name>[\w.\-]+)\s*=\s*(?P<shape>.*?)\s(?P<opcode>[a-z][\w\-]*)\(")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?(?P<name>[\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


def parse_hlo(text: str) -> tuple[dict[str, list[str]], dict[str, dict]]:
  """(opcodes of each computation, {instruction name: {"opcode", "calls", "op_name"}}) of an HLO module's text."""
  computations: dict[str, list[str]] = {}
  instructions: dict[str, dict] = {}
  current = None
  for line in text.splitlines():
    if current is None or line.startswith(("ENTRY", "%")) and line.rstrip().endswith("{"):
      match = _COMPUTATION.match(line)
      if match and line.rstrip().endswith("{"):
        current = match.group("name")
        computations[current] = []
        continue
    if line.strip() == "}":
      current = None
      continue
    match = _INSTRUCTION.match(line)
    if match is None or current is None:
      continue
    opcode = match.group("opcode")
    computations[current].append(opcode)
    calls = _CALLS.search(line)
    op_name = _OP_NAME.search(line)
    instructions[match.group("name")] = {"opcode": opcode, "calls": calls.group(1) if calls else None,
                                         "op_name": op_name.group(1) if op_name else ""}
  return computations, instructions


_LAYOUT = {"transpose", "copy", "bitcast", "reshape", "broadcast", "slice", "concatenate", "pad", "reverse",
           "dynamic-slice", "dynamic-update-slice"}
_BOOKKEEPING = {"parameter", "constant", "tuple", "get-tuple-element"}
_IRREGULAR = {"gather", "scatter", "sort", "custom-call", "rng-bit-generator", "all-reduce", "all-gather"}
# Control flow: the ops of a loop's or a call's body are traced on their own, so the enclosing op is not counted.
CONTROL_FLOW = {"while", "conditional", "call"}


def kind_of(opcodes: list[str]) -> str:
  """What a computation (an op, or the inside of a fusion) does, named by the heaviest opcode it holds."""
  present = set(opcodes) - _BOOKKEEPING
  if "convolution" in present:
    return "convolution"
  if "dot" in present:
    return "matmul"
  if present & {"reduce", "reduce-window", "select-and-scatter"}:
    return "reduction"
  if present & (_IRREGULAR | CONTROL_FLOW):
    return "other"
  if present and present <= _LAYOUT:
    return "layout"
  return "elementwise" if present else "other"


def phase_of(op_name: str) -> str:
  """Which part of the step an op belongs to, from the name JAX gave it.

  The loss is differentiated by `jax.value_and_grad`, whose forward ops are
  named `jvp(...)` and whose backward ops `transpose(jvp(...))`; the views are
  cut by `_multi_crop`; the rest is the optimizer, the metrics and the random keys.
  """
  if "transpose(" in op_name:
    return "backward"
  if "jvp(" in op_name:
    return "forward"
  if "multi_crop" in op_name:
    return "augmentation"
  return "update and rest"


def classify(name: str, computations: dict, instructions: dict) -> tuple[str, str]:
  """(kind, phase) of the executed op `name`; see `kind_of` and `phase_of`."""
  info = instructions.get(name)
  if info is None:
    return "other", "update and rest"
  opcodes = computations.get(info["calls"], []) if info["calls"] and info["opcode"] == "fusion" else [info["opcode"]]
  return kind_of(opcodes), phase_of(info["op_name"])


def op_durations(trace_dir: pathlib.Path, module_prefix: str) -> list[tuple[str, float]]:
  """(HLO op name, seconds) of every op executed by modules whose name starts with `module_prefix`."""
  path = sorted(trace_dir.rglob("*.xplane.pb"))[-1]
  profile = jax.profiler.ProfileData.from_file(str(path))
  durations = []
  for plane in profile.planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if "hlo_op" in stats and str(stats.get("hlo_module", "")).startswith(module_prefix):
          durations.append((str(stats["hlo_op"]), event.duration_ns * 1e-9))
  return durations


def profile_step(run: loop.Run, steps: int) -> dict:
  """Trace `steps` chained steps of `run`'s jitted step on one fixed batch; per-kind and per-phase times."""
  fixed = step_lib.jit_train_step(run.step_config, run.shardings)
  batch_size = run.config.train.global_batch_size
  records = [run.source[i] for i in range(batch_size)]
  sharding = NamedSharding(run.mesh, P(DATA_AXIS))
  batch = {key: jax.make_array_from_process_local_data(sharding, np.stack([r[key] for r in records]))
           for key in ("image", "label")}
  compiled = fixed.lower(run.state, run.guard, batch).compile()
  computations, instructions = parse_hlo(compiled.as_text())
  module = compiled.as_text().split("\n", 1)[0].split()[1].rstrip(",")
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = float(cost.get("flops", float("nan")))
  state, guard = run.state, run.guard
  state, guard, metrics = compiled(state, guard, batch)  # warm-up
  jax.block_until_ready(metrics)
  trace_dir = pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_step_profile_"))
  started = time.perf_counter()
  with jax.profiler.trace(str(trace_dir)):
    for _ in range(steps):
      state, guard, metrics = compiled(state, guard, batch)
    jax.block_until_ready(metrics)
  wall = (time.perf_counter() - started) / steps
  by_kind: dict[str, float] = collections.defaultdict(float)
  by_phase: dict[str, float] = collections.defaultdict(float)
  by_kind_and_phase: dict[str, float] = collections.defaultdict(float)
  by_op: dict[str, float] = collections.defaultdict(float)
  for name, seconds in op_durations(trace_dir, module.split(".")[0]):
    if instructions.get(name, {}).get("opcode") in CONTROL_FLOW:
      continue
    kind, phase = classify(name, computations, instructions)
    by_kind[kind] += seconds / steps
    by_phase[phase] += seconds / steps
    by_kind_and_phase[f"{kind}/{phase}"] += seconds / steps
    by_op[name] += seconds / steps
  total = sum(by_kind.values())
  def described(name: str, seconds: float) -> dict:
    kind, phase = classify(name, computations, instructions)
    return {"op": name, "s_per_step": seconds, "kind": kind, "phase": phase,
            "op_name": instructions.get(name, {}).get("op_name", "")[-160:]}

  ranked = [described(name, seconds) for name, seconds in sorted(by_op.items(), key=lambda item: -item[1])]
  return {
      "module": module, "steps_traced": steps, "wall_s_per_step": wall, "op_s_per_step": total,
      "flops_per_step": flops, "achieved_gflop_per_s": flops / wall * 1e-9,
      "seconds_by_kind": {kind: by_kind.get(kind, 0.0) for kind in KINDS},
      "share_by_kind": {kind: by_kind.get(kind, 0.0) / total for kind in KINDS} if total else {},
      "seconds_by_phase": dict(sorted(by_phase.items(), key=lambda item: -item[1])),
      "seconds_by_kind_and_phase": dict(sorted(by_kind_and_phase.items(), key=lambda item: -item[1])),
      "heaviest_ops": ranked[:15],
      "heaviest_ops_by_kind": {kind: [op for op in ranked if op["kind"] == kind][:5] for kind in KINDS},
  }


def _weight_gradient_flat(x, dy, kernel_h, kernel_w):
  """Stride 1: on the padded grid, flattened over (batch, row, column), every tap is a contiguous row range.

  dy is laid on the same grid with zeros outside the output, so the rows where
  a tap reaches past an image's edge meet zeros and add nothing: no strided
  copy of the input per tap.
  """
  batch, height, width, in_channels = x.shape
  out_h, out_w, out_channels = dy.shape[1:]
  grid_h, grid_w = height + kernel_h - 1, width + kernel_w - 1
  pad_h, pad_w = (kernel_h - 1) // 2, (kernel_w - 1) // 2
  grid = jnp.pad(x, ((0, 0), (pad_h, kernel_h - 1 - pad_h), (pad_w, kernel_w - 1 - pad_w), (0, 0)))
  rows = grid.reshape(-1, in_channels)
  length = rows.shape[0] - (kernel_h - 1) * grid_w - (kernel_w - 1)
  outputs = jnp.pad(dy, ((0, 0), (0, grid_h - out_h), (0, grid_w - out_w), (0, 0))).reshape(-1, out_channels)[:length]
  taps = [lax.dot_general(lax.slice_in_dim(rows, i * grid_w + j, i * grid_w + j + length), outputs,
                          (((0,), (0,)), ((), ()))) for i in range(kernel_h) for j in range(kernel_w)]
  return jnp.stack(taps).reshape(kernel_h, kernel_w, in_channels, out_channels)


def _weight_gradient_contracted(x, dy, kernel_h, kernel_w):
  """Each tap as one dot_general contracting (batch, row, column) of the shifted input, with no reshape."""
  padded = jnp.pad(x, ((0, 0), ((kernel_h - 1) // 2,) * 2, ((kernel_w - 1) // 2,) * 2, (0, 0)))
  out_h, out_w = dy.shape[1:3]
  taps = [lax.dot_general(padded[:, i:i + out_h, j:j + out_w], dy, (((0, 1, 2), (0, 1, 2)), ((), ())))
          for i in range(kernel_h) for j in range(kernel_w)]
  return jnp.stack(taps).reshape(kernel_h, kernel_w, x.shape[-1], dy.shape[-1])


def weight_gradient_forms(batch: int, stages: list[tuple[int, int]], repeats: int) -> list[dict]:
  """Seconds of a 3x3 stride-1 conv's weight gradient in three forms, at each (side, channels) of `stages`.

  `taps` is `jax_ssl.models.conv`'s (a strided copy of the shifted input per
  tap, then a matrix product); the other two avoid that copy, at the price of
  work on the padding (`flat`) or of an unusual contraction (`contracted`).
  Each form is checked against `taps` to float32 rounding.
  """
  forms = {"taps": lambda x, dy: conv._matmul_gradients((1, 1), ((1, 1), (1, 1)), (x, jnp.zeros((3, 3) + (
               x.shape[-1], dy.shape[-1]), x.dtype)), dy)[1],
           "flat": lambda x, dy: _weight_gradient_flat(x, dy, 3, 3),
           "contracted": lambda x, dy: _weight_gradient_contracted(x, dy, 3, 3)}
  rows = []
  for side, channels in stages:
    keys = jax.random.split(jax.random.key(side), 2)
    x = jax.random.normal(keys[0], (batch, side, side, channels))
    dy = jax.random.normal(keys[1], (batch, side, side, channels))
    seconds, errors, reference = {}, {}, None
    for name, form in forms.items():
      compiled = jax.jit(form)
      value = np.asarray(compiled(x, dy), np.float64)
      reference = value if reference is None else reference
      errors[name] = float(np.max(np.abs(value - reference)) / np.max(np.abs(reference)))
      seconds[name] = time_call(lambda compiled=compiled, x=x, dy=dy: compiled(x, dy), repeats=repeats, min_total_s=0)
    if max(errors.values()) > 1e-5:
      raise AssertionError(f"a weight-gradient form disagrees with the taps at {side} px: {errors}")
    rows.append({"input": [batch, side, side, channels], "seconds": seconds, "relative_error": errors})
    timings = ", ".join(f"{form_name} {form_seconds * 1e3:.0f} ms" for form_name, form_seconds in seconds.items())
    print(f"weight gradient at {side} px x {channels}: {timings}", flush=True)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--small", action="store_true", help="a tiny network, for a quick check")
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=2, help="chained steps traced (after one warm-up)")
  parser.add_argument("--repeats", type=int, default=5, help="timings per weight-gradient form (the median)")
  parser.add_argument("--data_dir", default=None, help="where bundled datasets are (default: prepared afresh)")
  parser.add_argument("--output", type=pathlib.Path, default=None)
  args = parser.parse_args()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix="jax_ssl_bench_")
  if args.small:
    batch, backbone, width, projector = 16, "small_cnn", 4, "32-32"
  else:
    batch, backbone, width, projector = args.batch, "resnet18", 64, "2048-2048-2048"
  config = method_config("vicreg", batch, backbone, width, projector, data_dir)
  run = loop.Run(config, pathlib.Path(tempfile.mkdtemp(prefix="jax_ssl_step_profile_run_")))
  profile = profile_step(run, args.steps)
  run.checkpointer.close()
  # ResNet-18's CIFAR stages (side, channels); the views of both crops are one batch.
  stages = [(8, 4)] if args.small else [(32, 64), (16, 128), (8, 256), (4, 512)]
  forms = weight_gradient_forms(2 * batch, stages, repeats=args.repeats)
  result = {
      "benchmark": "step_profile", "device": device_name(), "device_description": device_description(),
      "jax_version": jax.__version__, "date": datetime.date.today().isoformat(),
      "command": _common.reproducing_command(), "invoked_as": _common.command_line(), **_common.git_commit(),
      "setup": f"{backbone} (width {width}) + projector {projector}, VICReg, 2 views of 32 px, batch {batch}",
      **profile,
      "weight_gradient_forms": forms,
      "timing": "XLA's per-op durations from a jax.profiler trace of chained steps on one fixed batch, after a "
                "warm-up, per step; ops on parallel threads add up, so op time can exceed wall time",
  }
  output = args.output or RESULTS_DIR / f"step-profile{'-small' if args.small else ''}-{result['device']}.json"
  output.parent.mkdir(parents=True, exist_ok=True)
  output.write_text(json.dumps(result, indent=2) + "\n")
  shares = ", ".join(f"{kind} {share:.0%}" for kind, share in result["share_by_kind"].items())
  print(f"{result['setup']}: {profile['wall_s_per_step']:.2f} s/step, {profile['achieved_gflop_per_s']:.1f} GFLOP/s; "
        f"{shares}; wrote {output}")


if __name__ == "__main__":
  main()
