"""`SimulatorHandle`: run `mes sim` from Python, in a thread or as a separate process.

    with SimulatorHandle(SimConfig(machines=4, seed=7, speed=10, truth=path)) as sim:
        sim.modbus_port, sim.opcua_endpoint, sim.truth_path
        sim.servers_down(); ...; sim.servers_up()     # PLC outage, model keeps running
        sim.stop(); sim.start()                        # restart, same ports, new run

Ports are chosen once, when the handle is made, so a restarted simulator listens where the old
one did. In process mode (`process=True`) the handle runs `python -m mes.sim ... --control`,
reads the ready line from its stdout and sends control commands on its stdin; the child exits
when its stdin closes, so a crashed test leaves no simulator behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from mes.sim.config import SimConfig
from mes.sim.runner import Simulator
from mes.sim.truth import Truth


class SimulatorError(RuntimeError):
    """The simulator did not start, or did not answer a command."""


class _ThreadRunner:
    def __init__(self, config: SimConfig) -> None:
        self._config = config
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Simulator | None = None
        self.info: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._main, name="mes-sim", daemon=True)

    def start(self, timeout: float) -> dict[str, Any]:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SimulatorError(f"simulator not ready after {timeout} s")
        if self._error is not None:
            self._thread.join(timeout)
            raise SimulatorError(f"simulator failed to start: {self._error!r}") from self._error
        return self.info

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as e:  # reported to the caller by start()
            self._error = e
            self._ready.set()

    async def _serve(self) -> None:
        sim = Simulator(self._config)
        try:
            await sim.start()
            self._loop, self._sim, self.info = asyncio.get_running_loop(), sim, sim.ready_info()
            self._ready.set()
            await sim.run()
        finally:
            await sim.close()

    def command(self, cmd: str, timeout: float) -> dict[str, Any]:
        if self._loop is None or self._sim is None:
            raise SimulatorError("simulator is not running")
        fut = asyncio.run_coroutine_threadsafe(self._sim.command(cmd), self._loop)
        return fut.result(timeout)

    def stop(self, timeout: float) -> None:
        if self._loop is not None and self._sim is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._sim.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise SimulatorError(f"simulator thread still running after {timeout} s")


class _ProcessRunner:
    def __init__(self, config: SimConfig, cwd: Path | None) -> None:
        self._args = [sys.executable, "-m", "mes.sim", *config.to_args(), "--control"]
        self._cwd = cwd
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    def start(self, timeout: float) -> dict[str, Any]:
        self._proc = subprocess.Popen(
            self._args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self._cwd
        )
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="mes-sim-stdout", daemon=True
        )
        self._reader.start()
        try:
            return self._next(timeout, "ready")
        except SimulatorError:
            self.stop(5.0)
            raise

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, timeout: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise SimulatorError(f"no {what} from the simulator after {timeout} s") from None
        if line is None:
            code = self._proc.wait() if self._proc else None
            raise SimulatorError(f"simulator exited (status {code}) before {what}")
        return dict(json.loads(line))

    def command(self, cmd: str, timeout: float) -> dict[str, Any]:
        if self._proc is None or self._proc.stdin is None or self._proc.poll() is not None:
            raise SimulatorError("simulator is not running")
        self._proc.stdin.write(cmd + "\n")
        self._proc.stdin.flush()
        return self._next(timeout, f"reply to {cmd!r}")

    def stop(self, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()  # the simulator stops when its control input ends
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout)  # it ends at the child's end of output
        if proc.stdout is not None:
            proc.stdout.close()


class SimulatorHandle:
    """Start, command and stop one simulator; see the module docstring."""

    def __init__(
        self, config: SimConfig, *, process: bool = False, cwd: Path | None = None
    ) -> None:
        self.config = config.with_ports()
        self.process = process
        self._cwd = cwd
        self._runner: _ThreadRunner | _ProcessRunner | None = None
        self.info: dict[str, Any] = {}

    @property
    def modbus_port(self) -> int | None:
        return self.info.get("modbus_port")

    @property
    def opcua_port(self) -> int | None:
        return self.info.get("opcua_port")

    @property
    def opcua_endpoint(self) -> str | None:
        return self.info.get("opcua_endpoint")

    @property
    def truth_path(self) -> Path | None:
        return self.config.truth

    @property
    def machines(self) -> list[str]:
        return list(self.info.get("machines", []))

    def start(self, timeout: float = 60.0) -> SimulatorHandle:
        """Start and wait for the ready line (the servers listen when this returns)."""
        if self._runner is not None:
            raise SimulatorError("simulator already running")
        runner = (
            _ProcessRunner(self.config, self._cwd) if self.process else _ThreadRunner(self.config)
        )
        self.info = runner.start(timeout)
        self._runner = runner
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the simulator and its servers; the truth log gets its `stop` record."""
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.stop(timeout)

    def restart(self) -> None:
        """Stop and start again on the same ports: a new run, appended to the truth log."""
        self.stop()
        self.start()

    def command(self, cmd: str, timeout: float = 30.0) -> dict[str, Any]:
        """Send a control command (runner.COMMANDS) and return the reply."""
        if self._runner is None:
            raise SimulatorError("simulator is not running")
        reply = self._runner.command(cmd, timeout)
        if not reply.get("ok"):
            raise SimulatorError(f"command {cmd!r} failed: {reply.get('error')}")
        return reply

    def pause(self) -> dict[str, Any]:
        """Freeze the model: the servers keep answering with the same values."""
        return self.command("pause")

    def resume(self) -> dict[str, Any]:
        return self.command("resume")

    def snapshot(self) -> dict[str, Any]:
        """What every machine shows now: `reply["machines"][code]` holds model.Snapshot fields."""
        return self.command("snapshot")

    def servers_down(self) -> dict[str, Any]:
        """Stop both servers (clients lose their connections); the model keeps running."""
        return self.command("servers-down")

    def servers_up(self) -> dict[str, Any]:
        """Serve again on the same ports, showing the model's current state."""
        return self.command("servers-up")

    def truth(self) -> Truth:
        """The truth log as written so far."""
        if self.config.truth is None:
            raise SimulatorError("this simulator writes no truth log (config.truth is unset)")
        return Truth.load(self.config.truth)

    def __enter__(self) -> SimulatorHandle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
