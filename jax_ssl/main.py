"""`python -m jax_ssl.main --config configs/<x>.py[:arg] [--workdir DIR] [--config.<field>=<value> ...]`

Pretrains an encoder as the config says, in `--workdir` (default
`workdirs/<config name>[-<arg>]`). Rerunning the same command resumes from
the newest checkpoint there. Exit codes: 0 done (or preempted with a
checkpoint saved), 1 training failed (a NaN or inf loss, named), 2 the config
or the data cannot run (one line says why; nothing was compiled).

Multi-host: set JAX_SSL_COORDINATOR=host:port, JAX_SSL_NUM_PROCESSES and
JAX_SSL_PROCESS_ID (or run where `jax.distributed.initialize()` detects the
cluster on its own, with JAX_SSL_DISTRIBUTED=auto); every process runs the same command.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file: configs/<x>.py[:arg].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go.")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2


def _fail(code: int, message: str):
  print(f"jax_ssl: {message}", file=sys.stderr)
  sys.exit(code)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  text = text.strip("'\"").replace("\\n", " ").replace("\\'", "'")
  return re.sub(r"\s+", " ", text)


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose every failure (unknown key, wrong type, bad file) is exit code 2, one line."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    _fail(EXIT_BAD_CONFIG, f"bad flag: {_one_line(error)}")
  except (AttributeError, KeyError) as error:
    # ml_collections raises these for `--config.<key>=...` naming a key the config lacks.
    message = _one_line(error)
    key = next((a.split("=")[0].removeprefix("--config.") for a in argv[1:] if a.startswith("--config.")
                and a.split("=")[0].removeprefix("--config.").split(".")[-1] in message), None)
    _fail(EXIT_BAD_CONFIG, f"unknown config key {key or '?'!r} on the command line: {message}")
  except Exception as error:  # noqa: BLE001 - a config file that fails to load or to apply overrides
    _fail(EXIT_BAD_CONFIG, f"cannot load the config: {type(error).__name__}: {_one_line(error)}")


def _load_config():
  if not flags.FLAGS["config"].present:
    _fail(EXIT_BAD_CONFIG, "--config is required, e.g. --config configs/default.py")
  try:
    config = _CONFIG.value
    config.to_dict()  # a file that failed to load surfaces its error here
  except Exception as error:  # noqa: BLE001
    _fail(EXIT_BAD_CONFIG, f"cannot load the config {flags.FLAGS['config'].config_filename!r}: "
                           f"{type(error).__name__}: {_one_line(error)}")
  return config


def _config_argument(argv: list[str]) -> str:
  """The value given to --config (`path[:arg]`)."""
  for index, argument in enumerate(argv):
    if argument.startswith("--config="):
      return argument.split("=", 1)[1]
    if argument == "--config" and index + 1 < len(argv):
      return argv[index + 1]
  return ""


def _default_workdir(argv: list[str]) -> pathlib.Path:
  """workdirs/<config file stem>[-<arg>]."""
  path, _, arg = _config_argument(argv).partition(":")
  name = pathlib.Path(path).stem
  return pathlib.Path("workdirs") / (f"{name}-{arg}" if arg else name)


def initialize_distributed() -> None:
  """`jax.distributed.initialize` when the environment asks for several processes."""
  import jax
  coordinator = os.environ.get("JAX_SSL_COORDINATOR")
  if coordinator:
    # Collectives between CPU processes (only the CPU backend reads this; asking which
    # backend runs would start it, which must come after initialize).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, int(os.environ["JAX_SSL_NUM_PROCESSES"]),
                               int(os.environ["JAX_SSL_PROCESS_ID"]))
  elif os.environ.get("JAX_SSL_DISTRIBUTED") == "auto":
    jax.distributed.initialize()


def main(argv: list[str]) -> None:
  if len(argv) > 1:
    _fail(EXIT_BAD_CONFIG, f"unexpected arguments {argv[1:]}; flags only (see --helpshort).")
  logging.set_verbosity(logging.WARNING)
  config = _load_config()
  initialize_distributed()
  import jax

  from jax_ssl.data import sources
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import loop

  try:
    config_lib.validate(config, num_devices=jax.device_count())
    loop.open_training_source(config)  # the dataset exists (and bundled ones are prepared) before compiling
  except config_lib.ConfigError as error:
    _fail(EXIT_BAD_CONFIG, f"config error: {error}")
  except (sources.DatasetNotFoundError, ValueError) as error:
    _fail(EXIT_BAD_CONFIG, f"data error: {_one_line(error)}")
  workdir = pathlib.Path(_WORKDIR.value) if _WORKDIR.value else _default_workdir(sys.argv)
  try:
    summary = loop.train(config, workdir)
  except loop.NonFiniteLossError as error:
    _fail(EXIT_FAILED, f"training stopped: {error}")
  if jax.process_index() == 0:
    print(f"jax_ssl: {summary['status']} at step {summary['step']}/{summary['total_steps']}; workdir {workdir}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
