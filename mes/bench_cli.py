"""`mes bench ...`: the benchmarks, one subcommand each (docs/operations.md, "Benchmarks").

A benchmark module contributes its subcommand with `register_bench(benches)`, where `benches`
is the group's subparsers, and is listed in BENCHES; each prints a human summary and then one
JSON line of results.
"""

from __future__ import annotations

import importlib
from typing import Any

BENCHES = [
    "mes.bench.edge",
    "mes.bench.ingest",
    "mes.bench.maintenance",
]


def register(subparsers: Any) -> None:
    """Add `mes bench` and every benchmark of BENCHES under it."""
    bench = subparsers.add_parser(
        "bench", help="benchmarks: print figures and one JSON line of results"
    )
    benches = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    for name in BENCHES:
        importlib.import_module(name).register_bench(benches)
