"""`python -m jax_ssl.main --config configs/<x>.py[:arg] [--workdir DIR] [--config.<field>=<value> ...]`

Pretrains an encoder as the config says, in `--workdir` (default
`workdirs/<config name>[-<arg>]`). Rerunning the same command resumes from
the newest checkpoint there. Exit codes: 0 done (or preempted by SIGTERM
with a checkpoint saved), 1 training failed (a NaN or inf loss, a full disk,
another process of the run stopped: one line says which; details in
WORKDIR/error.log), 2 the config or the data cannot run, or the config
differs from the workdir's run (one line says why; nothing was compiled or
restored), 130 stopped by Ctrl-C (the first saves a checkpoint; a second
stops at once).

Multi-host: set JAX_SSL_COORDINATOR=host:port, JAX_SSL_NUM_PROCESSES and
JAX_SSL_PROCESS_ID (or run where `jax.distributed.initialize()` detects the
cluster on its own, with JAX_SSL_DISTRIBUTED=auto); every process runs the same command.
"""

from __future__ import annotations

import errno
import logging as std_logging
import os
import pathlib
import re
import sys
import threading

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file: configs/<x>.py[:arg].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where checkpoints, metrics and the report go.")

EXIT_FAILED = 1
EXIT_BAD_CONFIG = 2
EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT stop


def _fail(code: int, message: str):
  print(f"jax_ssl: {message}", file=sys.stderr)
  sys.exit(code)


def _one_line(error: BaseException) -> str:
  text = " ".join(str(error).split())
  text = text.strip("'\"").replace("\\n", " ").replace("\\'", "'")
  return re.sub(r"\s+", " ", text)


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
  except flags.Error as error:
    config_error = _config_file_error(str(error))
    if config_error:
      _fail(EXIT_BAD_CONFIG, f"config error in --config {_config_argument(argv)}: {config_error}")
    _fail(EXIT_BAD_CONFIG, f"bad flag: {_one_line(error)}")
  except (AttributeError, KeyError) as error:
    # ml_collections raises these for `--config.<key>=...` naming a key the config lacks.
    message = _one_line(error)
    key = next((a.split("=")[0].removeprefix("--config.") for a in argv[1:] if a.startswith("--config.")
                and a.split("=")[0].removeprefix("--config.").split(".")[-1] in message), None)
    _fail(EXIT_BAD_CONFIG, f"unknown config key {key or '?'!r} on the command line: {message}")
  except ModuleNotFoundError as error:
    if (error.name or "").split(".")[0] != "configs":
      _fail(EXIT_BAD_CONFIG, f"cannot load the config: ModuleNotFoundError: {_one_line(error)}")
    # The repository's config files share configs/common.py, importable from the repository root.
    _fail(EXIT_BAD_CONFIG, f"the config file imports {error.name}, which is not importable from here: run from the "
                           "repository root (the folder that holds configs/) or put that folder on PYTHONPATH.")
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


def initialize_distributed(peer_timeout_seconds: float) -> None:
  """`jax.distributed.initialize` when the environment asks for several processes.

  With JAX_SSL_COORDINATOR set, the coordinator address, JAX_SSL_NUM_PROCESSES and JAX_SSL_PROCESS_ID
  are passed explicitly (and CPU collectives use gloo); with JAX_SSL_DISTRIBUTED=auto, JAX detects the
  cluster; otherwise nothing happens. Must run before any JAX backend starts.

  Args:
    peer_timeout_seconds: `train.peer_timeout_seconds`; JAX's own heartbeat timeout is set to three
      times it (at least 100 s), so that the run's watchdog acts first.

  Raises:
    KeyError: if JAX_SSL_COORDINATOR is set without JAX_SSL_NUM_PROCESSES or JAX_SSL_PROCESS_ID.
  """
  import jax
  # JAX's own heartbeat timeout aborts the processes with a native error; ours must act first.
  heartbeat_timeout = int(max(100, 3 * peer_timeout_seconds))
  coordinator = os.environ.get("JAX_SSL_COORDINATOR")
  if coordinator:
    # Collectives between CPU processes (only the CPU backend reads this; asking which
    # backend runs would start it, which must come after initialize).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, int(os.environ["JAX_SSL_NUM_PROCESSES"]),
                               int(os.environ["JAX_SSL_PROCESS_ID"]), heartbeat_timeout_seconds=heartbeat_timeout)
  elif os.environ.get("JAX_SSL_DISTRIBUTED") == "auto":
    jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat_timeout)


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
    SystemExit: code 2 for extra arguments, a bad config or dataset, or a config that differs from the
      workdir's run; 1 for a non-finite loss or a full disk; 130 when stopped by Ctrl-C.
  """
  if len(argv) > 1:
    _fail(EXIT_BAD_CONFIG, f"unexpected arguments {argv[1:]}; flags only (see --helpshort).")
  logging.set_verbosity(logging.WARNING)
  config = _load_config()
  initialize_distributed(config.train.peer_timeout_seconds)
  import jax

  from jax_ssl.data import sources
  from jax_ssl.train import config as config_lib
  from jax_ssl.train import loop
  from jax_ssl.train import watchdog
  from jax_ssl.train import workdir as workdir_lib

  workdir = pathlib.Path(_WORKDIR.value) if _WORKDIR.value else _default_workdir(sys.argv)
  peers = None
  finished = False
  if jax.process_count() > 1:
    peers = watchdog.PeerWatchdog(config.train.peer_timeout_seconds,
                                  f" from the last checkpoint in {workdir / loop.CHECKPOINT_DIR}")
  try:
    try:
      config_lib.validate(config, num_devices=jax.device_count())
      loop.open_training_source(config)  # the dataset exists (and bundled ones are prepared) before compiling
    except config_lib.ConfigError as error:
      _fail(EXIT_BAD_CONFIG, f"config error: {error}")
    except (sources.DatasetNotFoundError, ValueError) as error:
      _fail(EXIT_BAD_CONFIG, f"data error: {_one_line(error)}")
    _library_logs_to(workdir / workdir_lib.ERROR_LOG)
    try:
      summary = loop.train(config, workdir)
    except workdir_lib.ConfigMismatchError as error:
      _fail(EXIT_BAD_CONFIG, f"config error: {error}")
    except loop.NonFiniteLossError as error:
      _fail(EXIT_FAILED, f"training stopped: {error}")
    except KeyboardInterrupt:
      _fail(EXIT_INTERRUPTED, f"stopped at once by a second Ctrl-C; the checkpoints in "
                              f"{workdir / loop.CHECKPOINT_DIR} are kept: rerun the same command to resume.")
    except Exception as error:
      if peers is not None:
        peers.wait_for_stopped_peer()  # a dead peer fails collectives at once: name it, exit
      full = _disk_full(error)
      if full is not None and jax.process_index() == 0:
        # The save that failed is not a checkpoint: its partial files only hold the space the log needs.
        workdir_lib.remove_incomplete_saves(workdir / loop.CHECKPOINT_DIR)
      log_path = workdir_lib.write_error_log(workdir, error)
      if full is None:
        raise
      checkpoints = workdir / loop.CHECKPOINT_DIR
      complete = sorted(int(p.name) for p in checkpoints.glob("*") if p.name.isdigit())
      kept = (f"the last complete checkpoint, step {complete[-1]}, is intact" if complete
              else "no checkpoint was complete")
      _fail(EXIT_FAILED, f"the disk is full: a write under {workdir} failed ({full.strerror or 'no space left'}); "
                         f"{kept} in {checkpoints}: free space and rerun the same command to resume"
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
  app.run(main, flags_parser=parse_flags)
