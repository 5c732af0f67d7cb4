"""`python -m jax_ssl.main --config configs/<x>.py[:arg] [--workdir DIR] [--config.<field>=<value> ...]`

Pretrains an encoder as the config says, in `--workdir` (default
`workdirs/<config name>[-<arg>]`). Rerunning the same command resumes from
the newest checkpoint there. Exit codes: 0 done (or preempted by SIGTERM
with a checkpoint saved), 1 training failed (a NaN or inf loss or state, a
full disk, another process of the run stopped: one line says which; details
in WORKDIR/error.log), 2 the config, the data, the workdir or the multi-host
environment cannot run, the config differs from the workdir's run, or
another run holds the workdir (one line says why; nothing was compiled or
restored), 130 stopped by Ctrl-C (the first saves a checkpoint; a second, or
one before training starts, stops at once).

Multi-host: set JAX_SSL_COORDINATOR=host:port, JAX_SSL_NUM_PROCESSES and
JAX_SSL_PROCESS_ID (or run where `jax.distributed.initialize()` detects the
cluster on its own, with JAX_SSL_DISTRIBUTED=auto); every process runs the same command.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import importlib.util
import logging as std_logging
import math
import os
import pathlib
import sys
import threading

import ml_collections
from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from jax_ssl import command
from jax_ssl.command import EXIT_BAD_INPUT as EXIT_BAD_CONFIG
from jax_ssl.command import EXIT_FAILED
from jax_ssl.command import EXIT_INTERRUPTED
from jax_ssl.train import accelerators

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file: configs/<x>.py[:arg].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Plan the run instead (jax_ssl.dry_run): compile its step, write "
                             "WORKDIR/plan.json, train nothing.")
_DEVICES = flags.DEFINE_integer("devices", None, "--dry_run: plan for this many simulated devices.", lower_bound=1)
_ACCELERATOR = flags.DEFINE_enum("accelerator", None, list(accelerators.ACCELERATORS),
                                 "--dry_run: the device whose peak bf16 FLOP/s (at --mfu) and memory the plan uses.")
_STEP_TIME = flags.DEFINE_float("step_time", None, "--dry_run: a measured step time in seconds.", lower_bound=0.0)
_MFU = flags.DEFINE_float("mfu", accelerators.DEFAULT_MFU,
                          "--dry_run: the model-FLOPs utilisation assumed with --accelerator.",
                          lower_bound=0.0, upper_bound=1.0)
_PRICE = flags.DEFINE_float("price_per_device_hour", None, "--dry_run: the price of one device-hour, for the cost.",
                            lower_bound=0.0)



def _config_file_error(text: str) -> str | None:
  """The message of the exception a config file's `get_config` raised, from ml_collections' flag error.

  ml_collections wraps it in a flag error whose text is the whole traceback;
  the user needs its last line (the exception's own message), not the frames.
  """
  if "Traceback (most recent call last)" not in text:
    return None
  last = [line for line in text.strip().splitlines() if line.strip()][-1]
  name, _, message = last.partition(": ")
  if name.rsplit(".", 1)[-1] == "ConfigError":
    return message
  return f"{name.rsplit('.', 1)[-1]}: {message}" if message else name


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing whose every failure (unknown key, wrong type, bad file) is exit code 2, one line.

  Passed to `absl.app.run` as its `flags_parser`.

  Args:
    argv: the command line, program name first.

  Returns:
    The arguments left after the flags were parsed (program name first).

  Raises:
    SystemExit: with code 2 (`EXIT_BAD_CONFIG`) after printing one line on stderr, for any failure to
      parse the flags or load the config.
  """
  try:
    return flags.FLAGS(argv)
  except Exception:  # noqa: BLE001 - re-raised below; a file whose get_config returned a dict is named first
    _refuse_non_config_dict(argv)
    try:
      raise
    except flags.Error as error:
      _flag_error(argv, error)
    except (AttributeError, KeyError) as error:
      _key_error(argv, error)
    except ModuleNotFoundError as error:
      _module_error(error)
    except Exception as error:  # noqa: BLE001 - a config file that fails to load or to apply overrides
      command.fail(EXIT_BAD_CONFIG, f"cannot load the config: {type(error).__name__}: {command.one_line(error)}")


def _flag_error(argv: list[str], error: flags.Error) -> None:
  config_error = _config_file_error(str(error))
  if config_error:
    command.fail(EXIT_BAD_CONFIG, f"config error in --config {_config_argument(argv)}: {config_error}")
  command.fail(EXIT_BAD_CONFIG, f"bad flag: {command.one_line(error)}")


def _key_error(argv: list[str], error: BaseException) -> None:
  if "get_config" in str(error):  # ml_collections' loader found no get_config in the file
    command.fail(EXIT_BAD_CONFIG, f"the config file {_config_argument(argv).partition(':')[0]} defines no "
                                  "get_config(arg=None); a config file returns its config from that function.")
  # ml_collections raises these for `--config.<key>=...` naming a key the config lacks.
  message = command.one_line(error)
  key = next((a.split("=")[0].removeprefix("--config.") for a in argv[1:] if a.startswith("--config.")
              and a.split("=")[0].removeprefix("--config.").split(".")[-1] in message), None)
  command.fail(EXIT_BAD_CONFIG, f"unknown config key {key or '?'!r} on the command line: {message}")


def _module_error(error: ModuleNotFoundError) -> None:
  if (error.name or "").split(".")[0] != "configs":
    command.fail(EXIT_BAD_CONFIG, f"cannot load the config: ModuleNotFoundError: {command.one_line(error)}")
  # The repository's config files share configs/common.py, importable from the repository root.
  command.fail(EXIT_BAD_CONFIG, f"the config file imports {error.name}, which is not importable from here: run "
                                "from the repository root (the folder that holds configs/) or put that folder on "
                                "PYTHONPATH.")


def _refuse_non_config_dict(argv: list[str]) -> None:
  """Exit 2 if the config file's `get_config` returns something other than a ConfigDict.

  Called when parsing failed: the overrides on the command line fail on a plain dict before the flag holds
  it, so the file is loaded again here to name the real problem.
  """
  loaded = flags.FLAGS["config"].value
  path, _, arg = _config_argument(argv).partition(":")
  if loaded is None and pathlib.Path(path).is_file():
    try:
      spec = importlib.util.spec_from_file_location("_jax_ssl_config_check", path)
      module = importlib.util.module_from_spec(spec)
      spec.loader.exec_module(module)
      loaded = module.get_config(arg) if arg else module.get_config()
    except Exception:  # noqa: BLE001 - the original error explains a file that does not load
      return
  if loaded is not None and not isinstance(loaded, ml_collections.ConfigDict):
    command.fail(EXIT_BAD_CONFIG, f"get_config in {path} returned a "
                                  f"{type(loaded).__name__}, not an ml_collections.ConfigDict: start it from "
                                  "jax_ssl.train.config.base_config() (or configs/common.py's bundled_base).")


def _load_config():
  if not flags.FLAGS["config"].present:
    command.fail(EXIT_BAD_CONFIG, "--config is required, e.g. --config configs/default.py")
  try:
    config = _CONFIG.value
  except Exception as error:  # noqa: BLE001
    command.fail(EXIT_BAD_CONFIG, f"cannot load the config {flags.FLAGS['config'].config_filename!r}: "
                                  f"{type(error).__name__}: {command.one_line(error)}")
  if not isinstance(config, ml_collections.ConfigDict):
    command.fail(EXIT_BAD_CONFIG, f"get_config in {flags.FLAGS['config'].config_filename} returned a "
                                  f"{type(config).__name__}, not an ml_collections.ConfigDict: start it from "
                                  "jax_ssl.train.config.base_config() (or configs/common.py's bundled_base).")
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


class DistributedSettingsError(ValueError):
  """The multi-host environment variables are inconsistent; the message is one line."""


@dataclasses.dataclass(frozen=True)
class Distributed:
  """How the process joins a multi-process run: explicitly (coordinator, count, index) or by JAX's detection."""

  coordinator: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  auto: bool = False


_VARIABLES = ("JAX_SSL_COORDINATOR", "JAX_SSL_NUM_PROCESSES", "JAX_SSL_PROCESS_ID", "JAX_SSL_DISTRIBUTED")


def distributed_from_environment(environ=None) -> Distributed | None:
  """The multi-host settings the JAX_SSL_* variables ask for, checked; None for a single process.

  Args:
    environ: the environment (a mapping); None for `os.environ`.

  Returns:
    A `Distributed`, or None when none of the variables is set.

  Raises:
    DistributedSettingsError: one line naming the variable that is missing, malformed or inconsistent, and
      the fix.
  """
  environ = os.environ if environ is None else environ
  given = {name: environ[name].strip() for name in _VARIABLES if environ.get(name, "").strip()}
  coordinator, mode = given.get("JAX_SSL_COORDINATOR"), given.get("JAX_SSL_DISTRIBUTED")
  explicit = "set JAX_SSL_COORDINATOR=host:port, JAX_SSL_NUM_PROCESSES and JAX_SSL_PROCESS_ID on every process"
  problem = None
  if mode is not None and mode != "auto":
    problem = f"JAX_SSL_DISTRIBUTED={mode!r}: its only value is 'auto' (JAX detects the cluster); unset it otherwise."
  elif mode == "auto":
    if len(given) > 1:
      problem = (f"JAX_SSL_DISTRIBUTED=auto lets JAX detect the cluster, but {', '.join(sorted(given))} are set "
                 "too: use one way or the other.")
  elif coordinator is None and given:
    problem = (f"{', '.join(sorted(given))} set without JAX_SSL_COORDINATOR: a multi-process run needs all three "
               f"({explicit}); unset them to run as one process.")
  if problem:
    raise DistributedSettingsError(problem)
  if mode == "auto":
    return Distributed(auto=True)
  if coordinator is None:
    return None
  host, _, port = coordinator.rpartition(":")
  if not host or not port.isdigit():
    raise DistributedSettingsError(f"JAX_SSL_COORDINATOR={coordinator!r} is not host:port (e.g. node0:12355).")
  values = {}
  for name in ("JAX_SSL_NUM_PROCESSES", "JAX_SSL_PROCESS_ID"):
    if name not in given:
      raise DistributedSettingsError(f"JAX_SSL_COORDINATOR is set but {name} is not: {explicit}.")
    try:
      values[name] = int(given[name])
    except ValueError:
      raise DistributedSettingsError(f"{name}={given[name]!r} is not an integer.") from None
  count, index = values["JAX_SSL_NUM_PROCESSES"], values["JAX_SSL_PROCESS_ID"]
  if count < 1:
    raise DistributedSettingsError(f"JAX_SSL_NUM_PROCESSES={count} must be at least 1.")
  if not 0 <= index < count:
    raise DistributedSettingsError(f"JAX_SSL_PROCESS_ID={index} must be in [0, {count - 1}] for "
                                   f"JAX_SSL_NUM_PROCESSES={count}.")
  return Distributed(coordinator, count, index)


def initialize_distributed(peer_timeout_seconds: float, settings: Distributed | None = None) -> None:
  """`jax.distributed.initialize` when the environment asks for several processes.

  With JAX_SSL_COORDINATOR set, the coordinator address, JAX_SSL_NUM_PROCESSES and JAX_SSL_PROCESS_ID
  are passed explicitly (and CPU collectives use gloo); with JAX_SSL_DISTRIBUTED=auto, JAX detects the
  cluster; otherwise nothing happens. Must run before any JAX backend starts.

  Args:
    peer_timeout_seconds: `train.peer_timeout_seconds`; JAX's own heartbeat timeout is set to three
      times it (at least 100 s), so that the run's watchdog acts first.
    settings: the checked settings (`distributed_from_environment`); None reads them from the environment.

  Raises:
    DistributedSettingsError: the variables are inconsistent (see `distributed_from_environment`).
  """
  settings = distributed_from_environment() if settings is None else settings
  if settings is None:
    return
  import jax
  # JAX's own heartbeat timeout aborts the processes with a native error; ours must act first.
  # (A non-finite timeout is refused by the config's validation, which needs the backend started first.)
  heartbeat_timeout = int(max(100, 3 * peer_timeout_seconds)) if math.isfinite(peer_timeout_seconds) else 100
  if settings.auto:
    jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat_timeout)
    return
  # Collectives between CPU processes (only the CPU backend reads this; asking which
  # backend runs would start it, which must come after initialize).
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(settings.coordinator, settings.num_processes, settings.process_id,
                             heartbeat_timeout_seconds=heartbeat_timeout)


def _disk_full(error: BaseException) -> OSError | None:
  """The `ENOSPC` error behind `error` (Orbax wraps the writer's), if a full disk caused it."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return error
    if "No space left on device" in str(error):  # tensorstore's writers report it as text
      return error if isinstance(error, OSError) else OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    error = error.__cause__ or error.__context__
  return None


class _QuietFileHandler(std_logging.FileHandler):
  """A log file whose own write failures (a full disk) stay silent: the failure is reported once, by main."""

  def handleError(self, record):  # noqa: N802 - logging's name
    del record


def _library_logs_to(log_path: pathlib.Path) -> None:
  """Library logging goes to WORKDIR/error.log, not the terminal.

  That is absl's (Orbax's among others), asyncio's, and the exceptions Python
  can only report as "ignored" or from a background thread (Orbax's writers
  after a failed save). jax_ssl's own warnings stay on the terminal.
  """
  log_path.parent.mkdir(parents=True, exist_ok=True)
  handler = _QuietFileHandler(log_path, delay=True)
  handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
  for name in ("absl", "asyncio", "jax_ssl.unraisable"):
    library_logger = std_logging.getLogger(name)
    library_logger.addHandler(handler)
    library_logger.propagate = False

  def unraisable(info):
    std_logging.getLogger("jax_ssl.unraisable").error(
        "%s: %s", info.err_msg or "Exception ignored in", info.object,
        exc_info=(info.exc_type, info.exc_value, info.exc_traceback))

  def thread_failed(args):
    std_logging.getLogger("jax_ssl.unraisable").error(
        "exception in thread %s", getattr(args.thread, "name", "?"),
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

  sys.unraisablehook = unraisable
  threading.excepthook = thread_failed


def main(argv: list[str]) -> None:
  """Validate the config given by the flags, train it in the workdir, and print one line of outcome.

  Each failure the user can act on is one line on stderr and an exit code (see the module docstring);
  any other exception raised while training is appended to WORKDIR/error.log and re-raised.

  Args:
    argv: the arguments `parse_flags` left; only the program name is allowed.

  Raises:
    SystemExit: code 2 for extra arguments, a bad config, dataset, workdir or multi-host environment, a
      config that differs from the workdir's run, or a workdir another run holds; 1 for a non-finite loss
      or state or a full disk; 130 when stopped by Ctrl-C.
  """
  if len(argv) > 1:
    command.fail(EXIT_BAD_CONFIG, f"unexpected arguments {argv[1:]}; flags only (see --helpshort).")
  logging.set_verbosity(logging.WARNING)
  config = _load_config()
  if _DRY_RUN.value:
    from jax_ssl import dry_run
    dry_run.run(config, pathlib.Path(_WORKDIR.value) if _WORKDIR.value else _default_workdir(sys.argv),
                devices=_DEVICES.value, accelerator=_ACCELERATOR.value, step_time=_STEP_TIME.value, mfu=_MFU.value,
                price_per_device_hour=_PRICE.value)
    return
  if any(flag.present for flag in (_DEVICES, _ACCELERATOR, _STEP_TIME, _MFU, _PRICE)):
    command.fail(EXIT_BAD_CONFIG, "--devices, --accelerator, --step_time, --mfu and --price_per_device_hour plan a "
                                  "run: add --dry_run.")
  try:
    initialize_distributed(config.train.peer_timeout_seconds, distributed_from_environment())
  except DistributedSettingsError as error:
    command.fail(EXIT_BAD_CONFIG, f"environment error: {error}")
  import jax

  from jax_ssl.data import sources
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import loop
  from jax_ssl.train import signals
  from jax_ssl.train import watchdog
  from jax_ssl.train import workdir as workdir_lib

  workdir = pathlib.Path(_WORKDIR.value) if _WORKDIR.value else _default_workdir(sys.argv)
  checkpoints = workdir / loop.CHECKPOINT_DIR
  command.exit_on_ctrl_c(f"stopped by Ctrl-C; the checkpoints in {checkpoints}, if any, are kept: rerun the same "
                         "command to resume.")
  try:
    config_lib.validate(config, num_devices=jax.device_count())
    # The dataset exists (and bundled ones are prepared), and holds a batch, before compiling.
    loop.check_training_source(config, loop.open_training_source(config))
  except config_lib.ConfigError as error:
    command.fail(EXIT_BAD_CONFIG, f"config error: {error}")
  except (sources.DatasetNotFoundError, ValueError) as error:
    command.fail(EXIT_BAD_CONFIG, f"data error: {command.one_line(error)}")
  try:
    workdir_lib.check_writable(workdir)
  except workdir_lib.WorkdirError as error:
    command.fail(EXIT_BAD_CONFIG, f"workdir error: {error}")
  peers = None
  finished = False
  if jax.process_count() > 1:
    peers = watchdog.PeerWatchdog(config.train.peer_timeout_seconds, f" from the last checkpoint in {checkpoints}")
  try:
    _library_logs_to(workdir / workdir_lib.ERROR_LOG)
    try:
      # From here a first Ctrl-C (or SIGTERM), even while compiling, ends in a checkpoint; a second stops at once.
      stop_signals = signals.StopSignals(on_second_interrupt=functools.partial(
          command.stop_now, f"stopped at once by a second Ctrl-C; the checkpoints in {checkpoints} are kept: rerun "
                            "the same command to resume."))
      try:
        summary = loop.train(config, workdir, stop_signals=stop_signals)
      finally:
        stop_signals.restore()
    except workdir_lib.ConfigMismatchError as error:
      command.fail(EXIT_BAD_CONFIG, f"config error: {error}")
    except (workdir_lib.WorkdirInUseError, workdir_lib.WorkdirError) as error:
      command.fail(EXIT_BAD_CONFIG, f"workdir error: {error}")
    except loop.NonFiniteError as error:
      command.fail(EXIT_FAILED, f"training stopped: {error}")
    except Exception as error:
      if peers is not None:
        peers.wait_for_stopped_peer()  # a dead peer fails collectives at once: name it, exit
      full = _disk_full(error)
      if full is not None and jax.process_index() == 0:
        # The save that failed is not a checkpoint: its partial files only hold the space the log needs.
        workdir_lib.remove_incomplete_saves(checkpoints)
      log_path = workdir_lib.write_error_log(workdir, error)
      if full is None:
        raise
      complete = sorted(int(p.name) for p in checkpoints.glob("*") if p.name.isdigit())
      kept = (f"the last complete checkpoint, step {complete[-1]}, is intact" if complete
              else "no checkpoint was complete")
      reason = full.strerror or "no space left"
      command.fail(EXIT_FAILED, f"the disk is full: a write under {workdir} failed ({reason}); {kept} in "
                                f"{checkpoints}: free space and rerun the same command to resume"
                                + (f" (details in {log_path})." if log_path else "."))
    finished = True
  finally:
    if peers is not None:
      peers.stop(finished=finished)
  if jax.process_index() == 0:
    print(f"jax_ssl: {summary['status']} at step {summary['step']}/{summary['total_steps']}; workdir {workdir}")
  if summary["status"] == "interrupted":
    sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
  # Until training installs its own handler (and after it returns), a Ctrl-C stops at once, in one line.
  command.exit_on_ctrl_c("stopped by Ctrl-C before training started; nothing was written.")
  app.run(main, flags_parser=parse_flags)
