"""Turn pydantic validation errors into messages that name the file, the key and what was wanted.

Used by every configuration loader (service settings, the agent's tag map), so that a plant
engineer sees `config error in /etc/mes/agent.yaml: devices[0].port: expected an integer
(got 'abc')` and not a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class ConfigError(Exception):
    """A configuration that cannot be used; `str()` is the whole message for the user."""

    def __init__(self, problems: Iterable[str], source: str | Path | None = None) -> None:
        self.problems = list(problems)
        self.source = str(source) if source else None
        where = f" in {self.source}" if self.source else ""
        lines = [f"config error{where}:"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def key_path(loc: Iterable[str | int]) -> str:
    """`("devices", 0, "port")` -> `devices[0].port`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _lookup(data: Any, loc: tuple[str | int, ...]) -> tuple[bool, Any]:
    for part in loc:
        in_map = isinstance(data, Mapping) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_map or in_list):
            return False, None
        data = data[part]
    return True, data


def describe(
    err: ValidationError,
    *,
    file: str | Path | None = None,
    file_data: Mapping[str, Any] | None = None,
    env_prefix: str | None = None,
    env_delimiter: str = "__",
) -> ConfigError:
    """Build a ConfigError from a ValidationError.

    When `file_data` (what was read from `file`) is given, each problem says whether the key came
    from the file or, failing that, from the environment variable `env_prefix + KEY`.
    """
    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic puts the union member or tag in the location: drop non-key parts it adds.
        key = key_path(loc)
        got = f" (got {e['input']!r})" if e["type"] != "missing" and "input" in e else ""
        origin = ""
        if file_data is not None:
            in_file, _ = _lookup(file_data, loc)
            if in_file:
                origin = f" [from {file}]"
            elif env_prefix and e["type"] != "missing":
                var = env_prefix + env_delimiter.join(str(p) for p in loc).upper()
                origin = f" [from environment variable {var}]"
        msg = e["msg"].removeprefix("Value error, ")
        problems.append(f"{key}: {msg}{got}{origin}")
    return ConfigError(problems, file)
