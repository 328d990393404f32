"""`mes bench ...`: the benchmarks, one subcommand each (docs/operations.md, "Benchmarks").

A benchmark module contributes its subcommand with `register_bench(benches)`, where `benches`
is the group's subparsers, and is listed in BENCHES with the name it adds; each prints a human
summary and then one JSON line of results. A benchmark whose extra is not installed (the
ingest's, on a gateway) says which one it needs.
"""

from __future__ import annotations

from typing import Any

from mes.cli_extras import register_command

BENCHES = [
    ("edge", "mes.bench.edge"),
    ("ingest", "mes.bench.ingest"),
    ("maintenance", "mes.bench.maintenance"),
    ("api", "mes.bench.api"),
]


def register(subparsers: Any) -> None:
    """Add `mes bench` and every benchmark of BENCHES under it."""
    bench = subparsers.add_parser(
        "bench", help="benchmarks: print figures and one JSON line of results"
    )
    benches = bench.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    for name, module in BENCHES:
        register_command(benches, name, module, register="register_bench", parent="mes bench")
