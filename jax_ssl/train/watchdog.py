"""Stop a multi-process run promptly, with one line, when one of its processes dies.

A collective whose peer is gone blocks until the transport gives up (about a
minute with gloo, longer elsewhere) and then aborts the survivor with a
native traceback. Instead every process beats a counter in the distributed
runtime's key-value store (held by process 0's coordination service) from a
background thread, and watches the others' counters: a counter that has not
moved for `timeout_seconds`, or a key-value store that no longer answers
(process 0 itself died), ends this process at once with exit code 1 and a
line naming the stopped process. The checkpoints already written stay; the
rerun resumes from the newest.
"""

from __future__ import annotations

import os
import sys
import threading
import time

EXIT_PEER_STOPPED = 1
_PREFIX = "jax_ssl/peer"


class PeerWatchdog:
  """Heartbeats of this process and the watch over the others, on a daemon thread.

  Args:
    timeout_seconds: silence after which a process counts as stopped.
    resume_hint: what to tell the user about resuming (e.g. the workdir).
    client: the `jax.distributed` runtime client (default: the initialised one).
    process_index, process_count: this process and the run's size (default: JAX's).
  """

  def __init__(self, timeout_seconds: float, resume_hint: str = "", *, client=None,
               process_index: int | None = None, process_count: int | None = None):
    if client is None or process_index is None or process_count is None:
      import jax
      from jax._src import distributed  # the runtime client has no public accessor
      client = distributed.global_state.client if client is None else client
      process_index = jax.process_index() if process_index is None else process_index
      process_count = jax.process_count() if process_count is None else process_count
    self.timeout_seconds = float(timeout_seconds)
    self.resume_hint = resume_hint
    self._client = client
    self._index = process_index
    self._peers = [p for p in range(process_count) if p != process_index]
    self._interval = max(0.2, self.timeout_seconds / 6)
    self._stopped = threading.Event()
    self._thread = threading.Thread(target=self._watch, name="jax_ssl-peer-watchdog", daemon=True)
    self._thread.start()

  def _key(self, kind: str, process: int) -> str:
    return f"{_PREFIX}/{kind}/{process}"

  def _read(self, kind: str, process: int) -> str | None:
    try:
      return self._client.key_value_try_get(self._key(kind, process))
    except Exception:  # noqa: BLE001 - NOT_FOUND before the peer's first beat
      return None

  def _watch(self) -> None:
    beats = 0
    started = time.monotonic()
    last_change = {peer: started for peer in self._peers}
    last_value = dict.fromkeys(self._peers)
    last_contact = started
    while not self._stopped.wait(self._interval):
      now = time.monotonic()
      beats += 1
      try:
        self._client.key_value_set(self._key("beat", self._index), str(beats), allow_overwrite=True)
        last_contact = now
      except Exception:  # noqa: BLE001 - the coordination service (process 0) is unreachable
        if self._index != 0 and now - last_contact > self.timeout_seconds:
          self._fail(0)
        continue
      for peer in self._peers:
        if self._read("done", peer) is not None:
          continue
        value = self._read("beat", peer)
        if value != last_value[peer]:
          last_value[peer], last_change[peer] = value, now
        elif now - last_change[peer] > self.timeout_seconds:
          self._fail(peer)

  def _fail(self, peer: int) -> None:
    if self._stopped.is_set():
      return
    print(f"jax_ssl: process {peer} of {len(self._peers) + 1} stopped (no heartbeat for "
          f"{self.timeout_seconds:g} s, train.peer_timeout_seconds); stopping process {self._index} too. "
          f"Rerun the same command on every process to resume{self.resume_hint}.", file=sys.stderr, flush=True)
    # The main thread may be blocked inside a collective that will never complete.
    os._exit(EXIT_PEER_STOPPED)

  def wait_for_stopped_peer(self) -> None:
    """After a collective failed: give the watch time to find a stopped peer (then this process exits).

    A collective whose peer died fails at once with a transport error; the
    line the user needs names the peer, which the watch finds within the
    timeout. Returns when no peer stopped.
    """
    deadline = time.monotonic() + self.timeout_seconds + 2 * self._interval
    while time.monotonic() < deadline and self._thread.is_alive():
      time.sleep(self._interval / 4)

  def stop(self, *, finished: bool) -> None:
    """Stop watching; `finished`: this process completed its run, so the others stop expecting its beats.

    A process that stops with an error does not say so: the others find it
    silent and stop too, instead of waiting in a collective it will not join.
    Calling it again does nothing.

    Args:
      finished: True if this process completed its run: it then marks itself done in the key-value
        store (best effort), so the others no longer watch its heartbeat.
    """
    if self._stopped.is_set():
      return
    self._stopped.set()
    self._thread.join()
    if finished:
      try:
        self._client.key_value_set(self._key("done", self._index), "1", allow_overwrite=True)
      except Exception:  # noqa: BLE001 - the run is over either way
        pass
