"""How a run is asked to stop: SIGTERM (a scheduler's preemption) and Ctrl-C, as a flag the loop polls.

The command line (`python -m jax_ssl.main`) installs `StopSignals` for the
length of a run, hands them to the training loop, and restores the previous
handlers when it returns; a library call without them installs nothing. A first signal only sets a
flag: the loop saves a checkpoint at the next step and returns, with several
processes once all have agreed (through a collective, at a step where the
loop syncs anyway).
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils


class StopSignals:
  """SIGTERM and the first Ctrl-C (SIGINT) become a flag the loop polls; a second Ctrl-C stops at once.

  On the flag the loop saves a checkpoint and returns (SIGTERM: a scheduler's
  preemption; Ctrl-C: a user). The second Ctrl-C calls `on_second_interrupt`
  (the command line's: one line, exit 130 at once) or, by default, raises
  KeyboardInterrupt where the program is; either way the checkpoints already
  written are kept.
  """

  def __init__(self, on_second_interrupt: Callable[[], None] | None = None):
    """Installs the handlers of SIGTERM and SIGINT; `restore` puts the previous ones back.

    Args:
      on_second_interrupt: called by a second Ctrl-C; None (or a callable that returns) raises
        KeyboardInterrupt.
    """
    self.received: str | None = None
    self._ctrl_c = 0
    self._on_second_interrupt = on_second_interrupt
    self._previous = {signum: signal.signal(signum, self._handle) for signum in (signal.SIGTERM, signal.SIGINT)}

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT:
      self._ctrl_c += 1
      if self._ctrl_c > 1:
        if self._on_second_interrupt is not None:
          self._on_second_interrupt()
        raise KeyboardInterrupt
    self.received = self.received or signal.Signals(signum).name

  def agreed(self, can_sync: bool) -> bool:
    """Whether to stop now: this process's flag, or with several processes, any process's flag.

    The processes compare flags through a collective, which waits for the
    devices: only where the loop syncs anyway (`can_sync`: logging and
    checkpoint steps); elsewhere a multi-process run carries on.

    Args:
      can_sync: whether the caller may wait for the devices here.

    Returns:
      True when the run should save and stop.
    """
    if jax.process_count() == 1:
      return self.received is not None
    if not can_sync:
      return False
    return bool(np.any(multihost_utils.process_allgather(np.array(self.received is not None))))

  def restore(self) -> None:
    """Put back the handlers that were installed before."""
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)


class NoStopSignals:
  """What the loop polls when no handler is installed (a library call): nothing ever asks it to stop."""

  received: str | None = None

  def agreed(self, can_sync: bool) -> bool:
    """Never stop early.

    Args:
      can_sync: unused; as for `StopSignals.agreed`.

    Returns:
      False.
    """
    del can_sync
    return False
