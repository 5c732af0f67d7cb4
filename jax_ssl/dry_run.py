"""`python -m jax_ssl.main --config X --dry_run [--devices N] [--accelerator h100] [--step_time S]`

Plans a run without running it: the config is validated for N devices, its
state is built as abstract arrays, and the real sharded train step is lowered
and compiled for N devices (simulated on the CPU when `--devices` is given).
One table is printed and the plan written to `WORKDIR/plan.json`
(`jax_ssl.train.plan`). A config that cannot run at that scale exits 2 with
one line, before anything is launched.
"""

from __future__ import annotations

import json
import os
import pathlib

from jax_ssl import command

PLAN_FILE = "plan.json"


def _gib(value) -> str:
  return "n/a" if value is None else f"{value / 2**30:,.2f} GiB"


def table(plan: dict) -> str:
  """The plan as a Markdown table, every figure with its unit and the assumptions it rests on.

  Args:
    plan: `jax_ssl.train.plan.make_plan`'s dict.

  Returns:
    Markdown text.
  """
  config, per_device, parameters = plan["config"], plan["per_device_bytes"], plan["parameters"]
  sharding = "FSDP over the data axis" if config["fsdp"] else "replicated"
  rows = [
      ("run", f"{config['method']} on {config['dataset']}, {config['backbone']}, global batch "
              f"{config['global_batch_size']}, {config['total_steps']:,} steps"),
      ("devices", f"{plan['devices']} ({sharding})"),
      ("parameters", f"{parameters['total']:,} ({parameters['backbone']:,} backbone, {parameters['heads']:,} heads), "
                     f"{_gib(parameters['bytes'])}"),
      ("optimizer state", _gib(plan["optimizer_state_bytes"])),
      ("per device: parameters + optimizer + gradients", _gib(per_device["parameters_optimizer_gradients"])),
      ("per device: XLA temporaries of the step", _gib(per_device["xla_temporary"])),
      ("FLOPs per step / per image", f"{plan['flops_per_step']:.3e} / {plan['flops_per_image']:.3e}"),
      ("checkpoint per save / kept", f"{_gib(plan['checkpoint_bytes'])} / {_gib(plan['checkpoint_bytes_kept'])} "
                                     f"({config['keep_checkpoints']} kept)"),
  ]
  if "accelerator" in plan:
    device = plan["accelerator"]
    rows.append(("accelerator", f"{device['name']}: {device['peak_bf16_flops'] / 1e12:,.0f} TFLOP/s bf16 peak, "
                                f"{_gib(device['memory_bytes'])}, assumed MFU {device['assumed_mfu']:.0%}"))
    fits = "yes" if device["fits"] else "no"
    rows.append(("fits its memory", f"{fits}: a device needs {_gib(device['needed_bytes'])}"))
  if "step_time_seconds" in plan:
    rows += [("step time", f"{plan['step_time_seconds'] * 1e3:,.1f} ms"),
             ("images/s the feed must deliver", f"{plan['images_per_second_needed']:,.0f}"),
             ("wall time / device-hours", f"{plan['wall_hours']:,.2f} h / {plan['device_hours']:,.1f}")]
  if "cost" in plan:
    rows.append(("cost", f"{plan['cost']:,.0f} at {plan['price_per_device_hour']} per device-hour"))
  return "\n".join(["| | |", "| --- | --- |", *(f"| {name} | {value} |" for name, value in rows)])


def simulate_devices(count: int) -> None:
  """Make the CPU backend offer `count` devices; call before any JAX backend starts.

  Args:
    count: the number of simulated devices.
  """
  flags = os.environ.get("XLA_FLAGS", "").split()
  flags = [flag for flag in flags if not flag.startswith("--xla_force_host_platform_device_count")]
  os.environ["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={count}"])
  import jax
  jax.config.update("jax_platforms", "cpu")


def run(config, workdir: pathlib.Path, *, devices: int | None, accelerator: str | None, step_time: float | None,
        mfu: float, price_per_device_hour: float | None) -> dict:
  """Validate `config` for the devices, plan it, print the table and write `WORKDIR/plan.json`.

  Args:
    config: the run config.
    workdir: where `plan.json` goes (created if missing).
    devices: simulated CPU devices to plan for; None for the local devices.
    accelerator: a key of `plan.ACCELERATORS`, or None.
    step_time: a measured step time in seconds, or None.
    mfu: the model-FLOPs utilisation assumed with `accelerator`.
    price_per_device_hour: the price of a device-hour, or None.

  Returns:
    The plan.
  """
  if devices is not None:
    simulate_devices(devices)
  import jax

  from jax_ssl.train import config as config_lib
  from jax_ssl.train import plan as plan_lib
  from jax_ssl.train import state as state_lib

  if devices is not None and jax.device_count() != devices:
    command.fail(command.EXIT_BAD_INPUT, f"--devices {devices}: the backend had already started with "
                                         f"{jax.device_count()} devices; run the dry run in a fresh process.")
  try:
    config_lib.validate(config, num_devices=jax.device_count())
    plan = plan_lib.make_plan(config, state_lib.data_mesh(), accelerator=accelerator, step_time=step_time, mfu=mfu,
                              price_per_device_hour=price_per_device_hour)
  except (config_lib.ConfigError, plan_lib.PlanError) as error:
    command.fail(command.EXIT_BAD_INPUT, f"config error at {jax.device_count()} devices: {error}")
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / PLAN_FILE).write_text(json.dumps(plan, indent=2) + "\n")
  print(table(plan))
  print(f"jax_ssl: dry run of {jax.device_count()} devices; nothing was trained; wrote {workdir / PLAN_FILE}")
  return plan
