"""A dry run: what a config's training will need, read from its abstract state and its compiled step.

`make_plan` builds the run's state as abstract arrays (`jax.eval_shape`: no
parameter is ever allocated), lowers and compiles the real sharded train step
for the mesh it is given (on a CPU, any number of simulated devices), and
reads what XLA reports of it. From that it counts:

  - parameters (backbone, heads, total) and their bytes; optimizer-state bytes;
  - per-device bytes of parameters + optimizer state + gradients under the
    run's sharding (replicated, or FSDP over the data axis), and XLA's
    per-device temporary memory of the compiled step where the backend reports it;
  - FLOPs per step and per image (`cost_analysis`);
  - the step time, from `step_time` or from a named accelerator's published
    peak bf16 FLOP/s at an assumed model-FLOPs utilisation, and so the images
    per second the data feed must deliver, the wall time and device-hours of
    the whole run, and its cost at a price per device-hour;
  - the checkpoint size per save and for the `train.keep_checkpoints` kept.

Anything that cannot run at that scale is a `PlanError`, one line.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from jax_ssl import methods
from jax_ssl.data import catalog
from jax_ssl.train import loop
from jax_ssl.train import state as state_lib
from jax_ssl.train import step as step_lib
from jax_ssl.train.accelerators import ACCELERATORS
from jax_ssl.train.accelerators import DEFAULT_MFU


class PlanError(ValueError):
  """A config that cannot run at the planned scale; the message is one line saying what to change."""


# Under FSDP an array this large that no dimension of which the devices divide is an error, not a silent copy.
FSDP_MUST_SPLIT = 1 << 20


def _bytes(tree) -> int:
  return int(sum(np.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree)))


def _count(tree) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(tree)))


def _per_device_bytes(tree, shardings) -> int:
  """Bytes one device holds of `tree` laid out as `shardings` (the largest shard of each array)."""
  leaves, sharding_leaves = jax.tree.leaves(tree), jax.tree.leaves(shardings)
  return int(sum(np.prod(sharding.shard_shape(leaf.shape)) * np.dtype(leaf.dtype).itemsize
                 for leaf, sharding in zip(leaves, sharding_leaves)))


def _check_fsdp(abstract_params, shardings, num_devices: int) -> None:
  for (path, leaf), sharding in zip(jax.tree.leaves_with_path(abstract_params), jax.tree.leaves(shardings)):
    if leaf.size >= FSDP_MUST_SPLIT and sharding.shard_shape(leaf.shape) == leaf.shape:
      raise PlanError(f"mesh.fsdp: parameter {jax.tree_util.keystr(path)} {tuple(leaf.shape)} has no dimension "
                      f"that {num_devices} devices divide, so every device would hold all of it; use a device "
                      "count that divides its dimensions, or mesh.fsdp=False.")


def split_sizes(config: ml_collections.ConfigDict) -> tuple[int | None, int]:
  """(records in the training split, side of the images the feed yields), without reading the data if it can.

  Args:
    config: the run config (`data.name`, `data.data_dir`, `data.classes`, `views.size`, `views.local_size`).

  Returns:
    The split's size and the image side. The size is the catalog's published one when the run reads the
    whole split, else the prepared split's count (of `data.classes`' classes); None when neither is known
    and `train.num_steps` fixes the run's length.

  Raises:
    PlanError: the split's size is unknown and `train.num_steps` is 0.
  """
  spec = catalog.get_spec(config.data.name)
  image_size = max(config.views.size, config.views.local_size) if spec.variable_size else spec.image_size
  if spec.train_examples is not None and not config.data.classes:
    return spec.train_examples, image_size
  try:
    return len(loop.open_training_source(config)), image_size
  except Exception as error:  # noqa: BLE001 (any failure to open it means its size is unknown here)
    if config.train.num_steps:
      return None, image_size
    raise PlanError(f"the size of {config.data.name}'s train split is unknown ({type(error).__name__}); prepare it "
                    "or set train.num_steps.") from None


def parameter_counts(config: ml_collections.ConfigDict) -> dict[str, int]:
  """The network's parameters (backbone, heads, total), counted on its abstract arrays.

  Args:
    config: a run config.

  Returns:
    `{"backbone", "heads", "total"}` counts; the online probe is not counted.
  """
  method = methods.from_config(config.method)
  num_classes = catalog.get_spec(config.data.name).num_classes["label"]
  network, _ = nnx.eval_shape(lambda: state_lib.build_modules(config, method, num_classes))
  return _parameter_counts(nnx.split(network, nnx.Param, ...)[1])


def _parameter_counts(params) -> dict[str, int]:
  backbone, total = _count(params["backbone"]), _count(params)
  return {"backbone": backbone, "heads": total - backbone, "total": total}


def abstract_state(config: ml_collections.ConfigDict, mesh: Mesh, step_config: step_lib.StepConfig | None = None):
  """The run's train state as abstract arrays laid out on `mesh`, and its shardings; nothing is allocated.

  Args:
    config: a run config.
    mesh: the device mesh.
    step_config: the run's step pieces (their optimizers shape the state); None builds them for a
      one-step run.

  Returns:
    `(abstract, shardings)`: `jax.ShapeDtypeStruct`s carrying their shardings, and the shardings.
  """
  method = methods.from_config(config.method)
  step_config = step_config or step_lib.build_step_config(config, method, mesh, 1, 1)
  num_classes = catalog.get_spec(config.data.name).num_classes["label"]
  abstract = jax.eval_shape(lambda: state_lib.initial_state(config, method, num_classes, step_config.optimizer,
                                                            step_config.probe_optimizer))
  shardings = state_lib.state_shardings(abstract, mesh, config.mesh.fsdp)
  abstract = jax.tree.map(lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
                          abstract, shardings)
  return abstract, shardings


def make_plan(config: ml_collections.ConfigDict, mesh: Mesh, *, accelerator: str | None = None,
              step_time: float | None = None, mfu: float = DEFAULT_MFU,
              price_per_device_hour: float | None = None, check_memory: bool = True) -> dict[str, Any]:
  """What a validated config's run will need on `mesh`: compiled, never run.

  Args:
    config: a run config, validated for `mesh`'s device count.
    mesh: the device mesh (simulated devices are fine: nothing is executed).
    accelerator: a key of `ACCELERATORS`, whose peak bf16 FLOP/s at `mfu` gives the step time and whose
      memory the per-device bytes must fit in; None for none.
    step_time: seconds per step, measured elsewhere; overrides the accelerator's estimate.
    mfu: the model-FLOPs utilisation assumed with `accelerator`, in (0, 1].
    price_per_device_hour: the cost of one device for an hour, for the run's cost; None leaves it out.
    check_memory: refuse a step over the accelerator's memory; False records whether it fits instead.

  Returns:
    The plan as a JSON-ready dict (see the module docstring), with the assumptions it made.

  Raises:
    PlanError: one line: an unknown accelerator, an FSDP layout that leaves a large parameter whole, or
      per-device bytes over the accelerator's memory.
  """
  if accelerator is not None and accelerator not in ACCELERATORS:
    raise PlanError(f"unknown accelerator {accelerator!r}; known: {', '.join(ACCELERATORS)}.")
  if not 0 < mfu <= 1:
    raise PlanError(f"the assumed MFU must lie in (0, 1]; got {mfu}.")
  num_devices = mesh.devices.size
  method = methods.from_config(config.method)
  num_records, image_size = split_sizes(config)
  # An unknown split size leaves only the warmup's length in steps unknown (train.num_steps fixes the run's);
  # the compiled step, its FLOPs and its memory do not depend on it.
  steps_per_epoch, total_steps = loop.schedule_lengths(config, num_records or config.train.global_batch_size)
  step_config = step_lib.build_step_config(config, method, mesh, steps_per_epoch, total_steps)
  abstract, shardings = abstract_state(config, mesh, step_config)
  if config.mesh.fsdp:
    _check_fsdp(abstract.params, shardings.params, num_devices)
  batch = step_lib.batch_shapes(config, mesh, image_size)

  step, metrics = step_lib.build_train_step(step_config, shardings, abstract, batch)
  guard = jax.eval_shape(step_lib.initial_guard, metrics)
  lowered = step.lower(abstract, guard, batch)
  # Nothing runs: on a CPU the machine-code optimisation, most of the compile time, is skipped (what XLA reports
  # of FLOPs and memory is decided before it).
  options = {"xla_backend_optimization_level": 0} if mesh.devices.flat[0].platform == "cpu" else None
  compiled = lowered.compile(compiler_options=options)
  cost = compiled.cost_analysis() or {}
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()

  counts = _parameter_counts(abstract.params)  # the network's, as the state holds them
  flops_per_device = float(cost.get("flops", 0.0))
  flops_per_step = flops_per_device * num_devices
  parameter_bytes = _per_device_bytes(abstract.params, shardings.params)
  plan = {
      "config": {"method": config.method.name, "dataset": config.data.name, "backbone": config.model.backbone,
                 "global_batch_size": config.train.global_batch_size, "fsdp": bool(config.mesh.fsdp),
                 "total_steps": total_steps, "steps_per_epoch": steps_per_epoch if num_records else None,
                 "train_records": num_records,
                 "image_size": image_size, "keep_checkpoints": config.train.keep_checkpoints},
      "devices": num_devices,
      "parameters": {**counts, "bytes": _bytes(abstract.params)},
      "optimizer_state_bytes": _bytes(abstract.opt_state),
      "per_device_bytes": {
          "parameters": parameter_bytes,
          "optimizer_state": _per_device_bytes(abstract.opt_state, shardings.opt_state),
          "gradients": parameter_bytes,  # laid out as the parameters
          "whole_state": _per_device_bytes(abstract, shardings),
          "xla_temporary": None if memory is None else int(memory.temp_size_in_bytes),
      },
      "flops_per_step": flops_per_step,
      "flops_per_image": flops_per_step / config.train.global_batch_size,
      "checkpoint_bytes": _bytes(abstract),
  }
  plan["checkpoint_bytes_kept"] = plan["checkpoint_bytes"] * config.train.keep_checkpoints
  state_bytes = sum(plan["per_device_bytes"][key] for key in ("parameters", "optimizer_state", "gradients"))
  plan["per_device_bytes"]["parameters_optimizer_gradients"] = state_bytes
  _add_rates(plan, accelerator, step_time, mfu, price_per_device_hour, check_memory)
  return plan


def _add_rates(plan: dict, accelerator: str | None, step_time: float | None, mfu: float,
               price_per_device_hour: float | None, check_memory: bool) -> None:
  """The step time and what follows from it (data rate, wall time, device-hours, cost); the memory check."""
  device = ACCELERATORS.get(accelerator) if accelerator else None
  if device is not None:
    per_device = plan["per_device_bytes"]
    needed = per_device["parameters_optimizer_gradients"] + (per_device["xla_temporary"] or 0)
    plan["accelerator"] = {"name": device.name, "peak_bf16_flops": device.peak_flops,
                           "memory_bytes": device.memory_bytes, "assumed_mfu": mfu, "needed_bytes": needed,
                           "fits": needed <= device.memory_bytes}
    if check_memory and needed > device.memory_bytes:
      raise PlanError(f"each device needs {needed / 2**30:.1f} GiB (parameters, optimizer state, gradients and XLA's "
                      f"temporaries) and a {device.name} holds {device.memory_bytes / 2**30:.1f} GiB; use more "
                      "devices with mesh.fsdp=True, a smaller global batch, or bfloat16.")
    if step_time is None and plan["flops_per_step"] > 0:
      step_time = plan["flops_per_step"] / plan["devices"] / (device.peak_flops * mfu)
  if step_time is None:
    return
  total = plan["config"]["total_steps"]
  plan["step_time_seconds"] = step_time
  plan["images_per_second_needed"] = plan["config"]["global_batch_size"] / step_time
  plan["wall_hours"] = total * step_time / 3600
  plan["device_hours"] = plan["wall_hours"] * plan["devices"]
  if price_per_device_hour is not None:
    plan["cost"] = plan["device_hours"] * price_per_device_hour
    plan["price_per_device_hour"] = price_per_device_hour
