"""A private MQTT broker process for tests, `mes demo` and benchmarks.

`mosquitto` runs with the project's configuration (`config/mosquitto/mosquitto.conf`), only its
listener port and persistence folder rewritten, so that what is tested is what we ship: the
queue limits there are what keep QoS 1 messages for an offline ingest (docs/operations.md). Where
mosquitto is not installed, the pure-Python `amqtt` broker stands in: MQTT 3.1.1 only, no
shared subscriptions or MQTT 5 reason codes, so `kind` tells tests what they may rely on.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from mes.services.ports import LOOPBACK, free_port, wait_for_port
from mes.services.process import stop_process

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BROKER_CONF = PROJECT_ROOT / "config" / "mosquitto" / "mosquitto.conf"


def broker_kind() -> str:
    """`mosquitto` when the binary is found (or MES_MOSQUITTO points at one), else `amqtt`."""
    if os.environ.get("MES_BROKER") == "amqtt":
        return "amqtt"
    return "mosquitto" if _mosquitto_binary() else "amqtt"


def _mosquitto_binary() -> str | None:
    return os.environ.get("MES_MOSQUITTO") or shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()),
        None,
    )


def render_mosquitto_conf(port: int, persistence_dir: Path, extra: str = "") -> str:
    """The shipped configuration with the listener and persistence folder of this instance."""
    text = BROKER_CONF.read_text()
    text = re.sub(r"^listener .*$", f"listener {port} {LOOPBACK}", text, flags=re.M)
    text = re.sub(
        r"^persistence_location .*$", f"persistence_location {persistence_dir}/", text, flags=re.M
    )
    return text + ("\n" + extra if extra else "")


@dataclass
class BrokerServer:
    """One private broker: `start()`, `stop(kill=False)`, `restart()`; `host`, `port`, `kind`."""

    workdir: Path
    port: int = 0
    extra_conf: str = ""
    kind: str = field(default_factory=broker_kind)
    host: str = LOOPBACK
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / f"{self.kind}.log"

    @classmethod
    def create(cls, base: Path | None = None, extra_conf: str = "") -> BrokerServer:
        return cls(workdir=Path(tempfile.mkdtemp(prefix="mes-mqtt-", dir=base)),
                   extra_conf=extra_conf)

    @property
    def supports_mqtt5(self) -> bool:
        return self.kind == "mosquitto"

    def _command(self) -> list[str]:
        if self.kind == "mosquitto":
            data = self.workdir / "data"
            data.mkdir(exist_ok=True)
            conf = self.workdir / "mosquitto.conf"
            # Run as root, mosquitto would drop to user `mosquitto`, which cannot write its
            # persistence file into our private folders: sessions would not survive a restart.
            extra = ("user root\n" if os.geteuid() == 0 else "") + self.extra_conf
            conf.write_text(render_mosquitto_conf(self.port, data, extra))
            return [_mosquitto_binary() or "mosquitto", "-c", str(conf)]
        conf = self.workdir / "amqtt.yaml"
        conf.write_text(textwrap.dedent(f"""\
            listeners:
              default:
                type: tcp
                bind: {LOOPBACK}:{self.port}
            plugins:
              amqtt.plugins.authentication.AnonymousAuthPlugin:
                allow_anonymous: true
            """))
        return [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(conf)]

    def start(self, timeout: float = 15) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        log.close()
        if not wait_for_port(self.port, timeout):
            self.stop(kill=True)
            raise TimeoutError(f"{self.kind} did not listen on {self.port}; see {self.log_path}")

    def stop(self, kill: bool = False, timeout: float = 15) -> None:
        """Stop the broker; `kill=True` is a crash (SIGKILL), otherwise a clean shutdown."""
        if self._proc is not None:
            stop_process(self._proc, signal.SIGKILL if kill else signal.SIGTERM, timeout)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> BrokerServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

