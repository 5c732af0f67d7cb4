"""What the command-line entry points share: exit codes, one-line errors, a Ctrl-C that stops at once.

`python -m jax_ssl.main` and `python -m jax_ssl.evaluate` report every
mistake a user can fix in one line on stderr with an exit code, never a
traceback. A Ctrl-C outside training (while importing, compiling, or
after a first Ctrl-C already asked training to stop) ends the process at
once with one line and code 130: raised as KeyboardInterrupt instead, it can
land inside a library's callback, which prints its own traceback and
swallows it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's code for a SIGINT stop

_interrupt_message = ["stopped by Ctrl-C."]


def fail(code: int, message: str, prefix: str = "jax_ssl") -> None:
  """Print `prefix: message` on stderr and exit with `code`.

  Args:
    code: the exit status.
    message: one line saying what went wrong and what to do.
    prefix: the command's name as the user typed it.

  Raises:
    SystemExit: always, with `code`.
  """
  print(f"{prefix}: {message}", file=sys.stderr)
  sys.exit(code)


def one_line(error: BaseException | str) -> str:
  """An exception's message as one line: whitespace and escaped newlines collapsed, a KeyError's quotes removed.

  `str(KeyError("x y"))` is `'x y'`: the quotes wrap the whole message, so a
  message that begins and ends with the same quote loses that pair, and no
  other quote (which would cut a quoted value in half).

  Args:
    error: an exception, or its text.

  Returns:
    The text on one line.
  """
  text = str(error).replace("\\n", " ").replace("\\'", "'")
  text = re.sub(r"\s+", " ", text).strip()
  if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
    text = text[1:-1]
  return text


def _stop_now(signum, frame) -> None:
  del signum, frame
  sys.stdout.flush()
  sys.stderr.write(f"jax_ssl: {_interrupt_message[0]}\n")
  sys.stderr.flush()
  # Not SystemExit: raised from a signal handler it can land in a library's callback and be ignored there.
  os._exit(EXIT_INTERRUPTED)


def exit_on_ctrl_c(message: str) -> None:
  """From now on, a Ctrl-C prints `jax_ssl: <message>` and ends the process with code 130 at once.

  Call it again to change the message as the program moves on. The training
  loop installs its own handler while it trains (a first Ctrl-C saves a
  checkpoint) and restores this one when it returns. A process started with
  SIGINT ignored (a background job) keeps ignoring it.

  Args:
    message: what the line says: what was stopped, and what was kept.
  """
  _interrupt_message[0] = message
  if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # a background job started with SIGINT ignored
    signal.signal(signal.SIGINT, _stop_now)


def stop_now(message: str | None = None) -> None:
  """End the process at once, as a Ctrl-C does after `exit_on_ctrl_c` (the training loop's second Ctrl-C).

  Args:
    message: the line to print; None for the one `exit_on_ctrl_c` last set.
  """
  if message is not None:
    _interrupt_message[0] = message
  _stop_now(signal.SIGINT, None)


class OneLineParser(argparse.ArgumentParser):
  """argparse, whose errors are one line on stderr (`prog: message`) and exit code 2, without the usage block."""

  def error(self, message: str):
    """Print `prog: message (see --help)` on stderr and exit 2.

    Args:
      message: argparse's description of the mistake.
    """
    fail(EXIT_BAD_INPUT, f"{message} (see --help)", prefix=self.prog)


def at_least(minimum: int):
  """An argparse type: an integer of at least `minimum`.

  Args:
    minimum: the smallest value accepted.

  Returns:
    A function of the argument's text returning the int, or raising `argparse.ArgumentTypeError` (which
    argparse reports with the type's name, "integer >= minimum").
  """
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < minimum:
      raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value
  parse.__name__ = f"integer >= {minimum}"  # how argparse names the type in its messages
  return parse
