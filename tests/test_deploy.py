"""The deployment files name only what exists: docker-compose.yml, the Dockerfile and the
systemd units in config/systemd/.

No Docker engine runs here. The compose file is validated by `docker-compose config` (or the
`docker compose` plugin) where one is installed, and always structurally; every `mes` command
line in these files must parse with the real `mes` parser, every `MES_...` variable must be a
setting of some settings model (or a variable the code reads itself), and the image installs
exactly as the README's "Installing" says.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from core.settings import Settings
from ingest.settings import IngestSettings
from mes.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
UNITS = sorted((ROOT / "config/systemd").glob("*.service"))

# Commands the compose file runs that other work is still adding to `mes` (the maintenance
# engine and the API). Once one exists in the parser it is checked like every other command;
# until then it is only allowed to be missing, by name, here.
PENDING_COMMANDS: set[str] = set()

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*)|:?\?[^}]*)?\}")
_ENV_NAME = re.compile(r"\bMES_[A-Z0-9_]*[A-Z0-9]\b")
_SHELL_OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _services() -> dict[str, dict[str, Any]]:
    return _compose()["services"]


def _stack_variables(required_only: bool = False) -> set[str]:
    """Variables .env.example documents: the required ones set (empty), the optional ones
    commented out."""
    pattern = r"^([A-Z][A-Z0-9_]*)=" if required_only else r"^#?\s*([A-Z][A-Z0-9_]*)="
    names = set()
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if m := re.match(pattern, line):
            names.add(m.group(1))
    return names


def _dummy_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    return {**env, **{name: "x" for name in _stack_variables(required_only=True)}}


def _substitute(value: str) -> str:
    """Compose's interpolation with the defaults written in the file, else a dummy value;
    systemd's instance specifier as instance 1."""
    return _INTERPOLATION.sub(lambda m: m.group(2) or "x", value).replace("%i", "1")


def _mes_invocations(command: str | list[str]) -> list[list[str]]:
    """The argument lists of every `mes` run in a service command or a unit's ExecStart."""
    if isinstance(command, list) and command[:2] == ["sh", "-ec"]:
        command = command[2]
    words = shlex.split(command.replace("\\\n", " ")) if isinstance(command, str) else command
    found, current = [], None
    for word in words:
        if current is not None:
            if word in _SHELL_OPERATORS or "\n" in word:
                found.append(current)
                current = None
            else:
                current.append(word)
                continue
        if word == "mes" or word.endswith("/bin/mes"):
            current = []
    if current is not None:
        found.append(current)
    return found


def _split_lines(command: str | list[str]) -> list[str | list[str]]:
    """A multi-line shell script is one command per line; a list is one command."""
    if isinstance(command, list) and command[:2] == ["sh", "-ec"]:
        return [line for line in command[2].replace("\\\n", " ").splitlines() if line.strip()]
    return [command]


def _all_invocations() -> list[tuple[str, list[str]]]:
    out = []
    for name, service in _services().items():
        for line in _split_lines(service.get("command", [])):
            out += [(f"docker-compose.yml: {name}", args) for args in _mes_invocations(line)]
        test = service.get("healthcheck", {}).get("test", [])
        assert "mes" not in test, name
    for unit in UNITS:
        for line in unit.read_text(encoding="utf-8").splitlines():
            if line.startswith("ExecStart="):
                out += [(unit.name, args)
                        for args in _mes_invocations(line.removeprefix("ExecStart="))]
    return out


def _settings_paths() -> set[tuple[str, ...]]:
    """Every settings key as a path (("mqtt", "share_group"), ...), over every settings model
    the `mes` command builds (the parser imports each command's module, and every product
    package's `settings` module is imported, for commands that import theirs lazily)."""
    build_parser()
    for package in ("core", "edge_agent", "ingest", "api"):
        for found in pkgutil.walk_packages([str(ROOT / package)], f"{package}."):
            if found.name.endswith(".settings"):
                importlib.import_module(found.name)
    models: set[type[Settings]] = set()
    todo = [Settings]
    while todo:
        cls = todo.pop()
        models.add(cls)
        todo += cls.__subclasses__()
    paths: set[tuple[str, ...]] = set()

    def walk(model: type[BaseModel], prefix: tuple[str, ...]) -> None:
        for name, info in model.model_fields.items():
            paths.add((*prefix, name))
            # A section, or an optional one (`NotifyMqtt | None`).
            for candidate in (info.annotation, *typing.get_args(info.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    walk(candidate, (*prefix, name))

    for model in models:
        walk(model, ())
    return paths


def _variables_read_by_the_code() -> set[str]:
    """`MES_...` names the product and tooling read from the environment themselves."""
    names = set()
    for package in ("core", "edge_agent", "ingest", "api", "mes"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(re.findall(r"[\"'](MES_[A-Z0-9_]*[A-Z0-9])[\"']",
                                    path.read_text(encoding="utf-8")))
    return {n for n in names if "__" not in n}


def _environment_names() -> list[tuple[str, str]]:
    out = []
    for name, service in _services().items():
        env = service.get("environment", {})
        out += [(f"docker-compose.yml: {name}", k) for k in env if k.startswith("MES_")]
        for line in _split_lines(service.get("command", [])):
            text = line if isinstance(line, str) else " ".join(line)
            out += [(f"docker-compose.yml: {name} command", k) for k in _ENV_NAME.findall(text)]
    for unit in UNITS:
        text = unit.read_text(encoding="utf-8")
        out += [(unit.name, k) for k in _ENV_NAME.findall(text)]
    out += [("Dockerfile", k) for k in _ENV_NAME.findall(
        (ROOT / "Dockerfile").read_text(encoding="utf-8"))]
    return out


def test_compose_validates_with_docker_compose() -> None:
    tool = (["docker-compose"] if shutil.which("docker-compose") else
            ["docker", "compose"] if shutil.which("docker") and subprocess.run(
                ["docker", "compose", "version"], capture_output=True, check=False
            ).returncode == 0 else None)
    if tool is None:
        pytest.skip("neither docker-compose nor the docker compose plugin is installed "
                    "(apt-get install docker-compose); the structural checks still ran")
    done = subprocess.run([*tool, "-f", str(COMPOSE), "config", "-q"], cwd=ROOT,
                          env=_dummy_environment(), capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_compose_structure() -> None:
    compose = _compose()
    assert set(compose) - {"services", "volumes", "networks"} <= {
        k for k in compose if k.startswith("x-")}
    services = compose["services"]
    declared_volumes = set(compose.get("volumes", {}))
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        assert service.get("restart") in ("no", "unless-stopped", "always", "on-failure"), name
        for target in service.get("depends_on", {}):
            assert target in services, f"{name} depends on unknown {target}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
            else:
                assert (ROOT / source).exists(), f"{name}: {source} is not in the repository"
        long_running = service["restart"] != "no"
        command = service.get("command", [])
        pending = any(args[:1] and args[0] in PENDING_COMMANDS
                      for line in _split_lines(command) for args in _mes_invocations(line))
        if long_running and not pending:
            assert "healthcheck" in service, f"{name} has no health check"
    # The stack the issue asks for.
    commands = {" ".join(args[:2]) for _, args in _all_invocations()}
    assert {"db migrate", "registry apply", "registry broker-config", "ingest run",
            "maintenance run", "api", "sim --machines", "sim tagmap", "edge run"} <= commands
    ingests = [s for s in services.values()
               if any(a[:2] == ["ingest", "run"] for line in _split_lines(s.get("command", []))
                      for a in _mes_invocations(line))]
    assert len(ingests) >= 2
    assert {s["environment"]["MES_MQTT__CLIENT_ID"] for s in ingests} == {"ingest-1", "ingest-2"}
    assert all(s["environment"]["MES_MQTT__SHARE_GROUP"] for s in ingests)
    assert "timescale/timescaledb" in services["db"]["image"]
    assert services["broker"]["image"].startswith("eclipse-mosquitto:2")
    assert services["edge"]["build"]["target"] == "edge"


def test_no_secret_is_written_in_the_compose_file() -> None:
    stack_variables = _stack_variables()
    text = COMPOSE.read_text(encoding="utf-8")
    for variable in (m.group(1) for m in _INTERPOLATION.finditer(text)):
        assert variable in stack_variables, f"${{{variable}}} is not in .env.example"
    for name, service in _services().items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET", key):
                assert _INTERPOLATION.fullmatch(str(value)), f"{name}: {key} is written out"
            if "://" in str(value) and "@" in str(value):
                auth = str(value).split("://", 1)[1].split("@", 1)[0]
                assert ":" not in auth or _INTERPOLATION.search(auth), f"{name}: {key}"
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if re.match(r"^[A-Z_]*(PASSWORD|SECRET)=", line):
            assert line.endswith("="), f".env.example must leave secrets empty: {line}"


def test_every_mes_command_exists() -> None:
    parser = build_parser()
    choices = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    invocations = _all_invocations()
    assert invocations
    problems = []
    for where, args in invocations:
        args = [_substitute(a) for a in args]
        if args[0] in PENDING_COMMANDS and args[0] not in choices:
            continue
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                parser.parse_args(args)
            except SystemExit:
                problems.append(f"{where}: mes {' '.join(args)}: {err.getvalue().strip()}")
    assert problems == []


def test_pending_commands_are_still_pending_or_checked() -> None:
    """A pending command that has landed is checked above; one that never appears is stale."""
    used = {args[0] for _, args in _all_invocations()}
    assert used >= PENDING_COMMANDS


def test_every_mes_variable_is_a_setting() -> None:
    paths = _settings_paths()
    direct = _variables_read_by_the_code()
    names = _environment_names()
    assert names
    unknown = []
    for where, name in names:
        if "__" in name:
            path = tuple(part.lower() for part in name.removeprefix("MES_").split("__"))
            if path not in paths:
                unknown.append(f"{where}: {name}")
        elif name not in direct:
            unknown.append(f"{where}: {name}")
    assert unknown == []


@pytest.mark.parametrize("service", ["ingest-1", "ingest-2"])
def test_the_ingest_services_settings_load(service: str, monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("MES_") or k == "DATABASE_URL"]:
        monkeypatch.delenv(key)
    for key, value in _services()[service]["environment"].items():
        monkeypatch.setenv(key, _substitute(str(value)))
    monkeypatch.setenv("MES_MQTT__PASSWORD", "x")  # read from the secret file at start
    from core.settings import load_settings

    settings = load_settings(None, IngestSettings)
    assert settings.mqtt.subscription == "$share/ingest/mes/v1/#"
    assert settings.database.application_url().startswith("postgresql://mes_app:")


def _pip_installs(text: str) -> set[str]:
    found = set()
    for line in text.splitlines():
        if m := re.search(r"pip install (.*)", line):
            words = [w for w in shlex.split(m.group(1).split("#")[0]) if not w.startswith("-")]
            found.add(" ".join(words))
    return found


def test_the_image_installs_as_the_readme_says() -> None:
    dockerfile = _pip_installs((ROOT / "Dockerfile").read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Installing", 1)[1].split("\n## ", 1)[0]
    assert dockerfile == {".", ".[central]"}
    assert dockerfile <= _pip_installs(section)


def test_the_commands_are_found_in_shell_lines() -> None:
    script = ["sh", "-ec", "umask 077\nmes sim tagmap --machines 4 \\\n  | sed x > f\n"
              "exec mes edge run --config f"]
    found = [a for line in _split_lines(script) for a in _mes_invocations(line)]
    assert found == [["sim", "tagmap", "--machines", "4"], ["edge", "run", "--config", "f"]]
    assert _mes_invocations("/opt/mes/bin/mes ingest run --status-port 910%i") == [
        ["ingest", "run", "--status-port", "910%i"]]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
