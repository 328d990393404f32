"""Child processes of ours (an agent, an ingest) that never outlive us."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when our process dies (Linux)."""
    # Not Linux: no prctl, and the parent's own cleanup is all there is.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_process(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> None:
    """Send `sig` to the process (SIGKILL to its whole group), wait `timeout`, then SIGKILL."""
    if proc.poll() is not None:
        return
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class Child:
    """`python -m mes.cli ARGS` with its output in a log file; `stop()` ends it for sure."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str] | None = None):
        self.log_path = log_path
        log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mes.cli", *args], stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )
        log.close()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL to the whole process group after `timeout` seconds."""
        stop_process(self.proc, signal.SIGTERM, timeout)
        return self.proc.returncode
