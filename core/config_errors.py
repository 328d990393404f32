"""Turn pydantic validation errors into messages that name the file, the key and what was wanted.

Used by every configuration loader (service settings, the agent's tag map), so that a plant
engineer sees `config error in /etc/mes/agent.yaml: devices[0].port: expected an integer
(got 'abc')` and not a traceback.
"""

from __future__ import annotations

import re
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


_SECRET_WORDS = ("password", "secret", "token")
# The password in a URL's user information: `scheme://user:PASSWORD@host`.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)[^@\s]*(?=@)")


def redact_url(text: str) -> str:
    """`text` with the password of any URL in it replaced by `***`."""
    return _URL_PASSWORD.sub(r"\g<head>***", text)


def _redact(key: str | int, value: Any) -> Any:
    """The input as it may be quoted in an error: secrets (passwords, tokens) replaced,
    also inside a section quoted whole, so that they never reach a log."""
    if isinstance(key, str) and any(w in key.lower() for w in _SECRET_WORDS):
        return "***"
    if isinstance(value, Mapping):
        return {k: _redact(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact("", v) for v in value]
    if isinstance(value, str):
        return redact_url(value)
    return value


def _user_loc(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """The location as the user wrote it. pydantic adds the tag of a discriminated union or the
    name of a validator (`state.code.codes[1]` for what the user wrote as `state.codes[1]`):
    drop a part the user's data does not have when the next part is there."""
    parts = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
    out: list[str | int] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        found, value = _lookup(data, (part,)) if data is not None else (True, None)
        if found:
            out.append(part)
            data = value
        elif i + 1 < len(parts) and isinstance(part, str) and _lookup(data, (parts[i + 1],))[0]:
            pass  # a part pydantic added: skip it
        else:
            out.extend(parts[i:])
            break
        i += 1
    return tuple(out)


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
        loc = _user_loc(e["loc"], file_data)
        key = key_path(loc)
        shown = _redact(loc[-1] if loc else "", e.get("input"))
        got = f" (got {shown!r})" if e["type"] != "missing" and "input" in e else ""
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
