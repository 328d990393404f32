"""The product never imports tooling: which top-level package may import which.

`core` is shared by every part and imports none of them; `edge_agent` and `ingest` are two
products that share only `core`; `api` uses only `core`; `mes` (the CLI, demo, simulator,
benchmarks and test services) may import anything. Every import statement is checked,
including the ones inside functions, so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "edge_agent", "ingest", "api", "mes")
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "edge_agent": {"core", "edge_agent"},
    "ingest": {"core", "ingest"},
    "api": {"core", "api"},
    "mes": set(PACKAGES),
}


def imported_packages(source: str) -> set[str]:
    """Top-level packages of this project that `source` imports (absolute imports only)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {n.split(".")[0] for n in names} & set(PACKAGES)
    return found


def violations(package: str) -> list[str]:
    """`file: imports X` for every import of `package` that crosses a forbidden layer."""
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for target in sorted(imported_packages(path.read_text(encoding="utf-8"))):
            if target not in ALLOWED[package]:
                out.append(f"{path.relative_to(ROOT)}: imports {target}")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_its_layer_allows(package: str) -> None:
    assert violations(package) == []


def test_the_check_sees_imports_inside_functions() -> None:
    source = "import core.wire\ndef f():\n    from mes.sim import tagmap\n    import ingest.x\n"
    assert imported_packages(source) == {"core", "mes", "ingest"}
