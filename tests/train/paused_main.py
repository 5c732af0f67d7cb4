"""`python -m tests.train.paused_main --pause_after_step=N <jax_ssl.main flags>`: the command, paused after step N.

The end-to-end tests need a run that stands still at a known step, its
checkpoints written, until a signal reaches it (or it is killed). The pause is
patched in here, on the test side: the loop polls its stop signals after each
step's saves, and this version of the poll, at step N, announces the pause and
waits for a signal instead of answering at once.
"""

from __future__ import annotations

import sys
import time

from absl import app

from jax_ssl import command
from jax_ssl import main


def pause_after(step: int) -> None:
  """Make every run of this process stand still after `step` until a stop signal arrives."""
  from jax_ssl.train import loop  # after the command has initialised the distributed runtime, as it does
  from jax_ssl.train import signals

  current = {}
  step_once, agreed = loop.Run.step_once, signals.StopSignals.agreed

  def counting_step_once(run):
    current["run"] = run
    return step_once(run)

  def pausing_agreed(self, can_sync):
    run = current.get("run")
    if run is None or run.step != step or current.get("paused"):
      return agreed(self, can_sync)
    current["paused"] = True
    run.checkpointer.wait()  # the step's checkpoint, if due, is on disk before the pause is announced
    print(f"paused after step {step}", flush=True)
    while not agreed(self, can_sync=True):
      time.sleep(0.05)
    return True

  loop.Run.step_once = counting_step_once
  signals.StopSignals.agreed = pausing_agreed


if __name__ == "__main__":
  flag = next(arg for arg in sys.argv if arg.startswith("--pause_after_step="))
  sys.argv.remove(flag)
  initialize = main.initialize_distributed

  def initialize_then_pause(*args, **kwargs):
    initialize(*args, **kwargs)
    pause_after(int(flag.split("=", 1)[1]))

  main.initialize_distributed = initialize_then_pause
  command.exit_on_ctrl_c("stopped by Ctrl-C before training started; nothing was written.")
  app.run(main.main, flags_parser=main.parse_flags)
