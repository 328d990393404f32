"""`mes sim`: serve simulated machines over Modbus TCP and OPC UA, with a ground-truth log.

    mes sim --machines 4 --seed 7 --speed 10 --truth truth.jsonl --modbus-port P --opcua-port Q

prints one JSON ready line on stdout (ports, endpoint, machines) once both servers listen, logs
to stderr, and runs until interrupted. With `--control` it also takes commands on stdin, one
per line (runner.COMMANDS), answers each with one JSON line, and stops when stdin ends.
`python -m mes.sim` is the same command without the other parts of `mes`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.config_errors import ConfigError, describe
from core.logging import configure
from mes.sim.config import Protocol, SimConfig
from mes.sim.runner import Simulator
from mes.sim.tagmap import SHIPPED_MAP, SHIPPED_MODBUS_PORT, SHIPPED_OPCUA_PORT, render

# CLI option -> SimConfig field; options not given leave the field's default.
_FIELDS = {
    "machines": "machines", "seed": "seed", "speed": "speed", "tick": "tick_s",
    "min_dwell": "min_dwell_s", "extra_tags": "extra_tags", "protocols": "protocols",
    "assignment": "assignment", "host": "host", "modbus_port": "modbus_port",
    "opcua_port": "opcua_port", "truth": "truth",
}


def add_options(p: argparse.ArgumentParser) -> None:
    """The options that make a SimConfig (defaults live in SimConfig)."""
    p.add_argument("--machines", type=int, help="number of machines (default 4)")
    p.add_argument("--seed", type=int, help="random seed: same seed, same run (default 1)")
    p.add_argument("--speed", type=float, help="machine seconds per real second (default 1)")
    p.add_argument("--tick", type=float, help="real seconds between model steps (default 0.1)")
    p.add_argument("--min-dwell", type=float, help="shortest state, real seconds (default 0)")
    p.add_argument("--extra-tags", type=int, help="extra float32 tags per machine (default 0)")
    p.add_argument(
        "--protocols", type=lambda s: tuple(x for x in s.split(",") if x),
        help="comma-separated: modbus,opcua (default both)",
    )
    p.add_argument("--assignment", help="both (default): every machine on every protocol; "
                   "split: first half on Modbus, the rest on OPC UA")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--modbus-port", type=int, help="Modbus TCP port (default: a free one)")
    p.add_argument("--opcua-port", type=int, help="OPC UA port (default: a free one)")
    p.add_argument("--truth", type=Path, help="ground-truth log, JSON lines (appended)")


def config_from(args: argparse.Namespace) -> SimConfig:
    given = {f: getattr(args, o) for o, f in _FIELDS.items() if getattr(args, o, None) is not None}
    try:
        return SimConfig(**given)
    except ValidationError as e:
        raise describe(e, file="command line") from None


def register(subparsers: Any) -> None:
    """Add `mes sim` (and `mes sim tagmap`) to the `mes` command."""
    p = subparsers.add_parser("sim", help="serve simulated machines (Modbus TCP and OPC UA)")
    build(p)


def build(p: argparse.ArgumentParser) -> None:
    add_options(p)
    p.add_argument("--control", action="store_true",
                   help="take commands on stdin (one per line), stop when stdin ends")
    p.add_argument("--log-level", default="info")
    p.add_argument("--log-format", default="text", choices=("json", "text"))
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    t = sub.add_parser("tagmap", help="print the edge agent tag map (YAML) for the simulator")
    add_options(t)
    t.add_argument("--state-rule", choices=("status", "packml"), default="packml",
                   help="packml (default): the packml preset on the state register, refined "
                   "by the stop reason; status: a code table on the status word")
    t.set_defaults(func=tagmap)


def tagmap(args: argparse.Namespace) -> int:
    sys.stdout.write(render(config_from(args), state_rule=args.state_rule))
    return 0


def run(args: argparse.Namespace) -> int:
    configure(args.log_level, args.log_format)
    config = config_from(args)
    if not args.control:
        config = at_a_terminal(config)
        print(_map_hint(config), file=sys.stderr, flush=True)
    asyncio.run(_serve(config, control=args.control))
    return 0


def at_a_terminal(config: SimConfig) -> SimConfig:
    """A person at a terminal: ports not given are the ones the shipped map reads. Programs
    (--control: the test harness, the demo) ask for free ports instead."""
    return config.model_copy(update={
        "modbus_port": config.modbus_port or SHIPPED_MODBUS_PORT,
        "opcua_port": config.opcua_port or SHIPPED_OPCUA_PORT,
    })


def _map_hint(config: SimConfig) -> str:
    """Which tag map reads this simulator: the shipped one, or how to generate one."""
    shipped = SimConfig(modbus_port=SHIPPED_MODBUS_PORT, opcua_port=SHIPPED_OPCUA_PORT)
    served = []
    if Protocol.MODBUS in config.protocols:
        served.append(f"Modbus TCP {config.host}:{config.modbus_port}")
    if Protocol.OPCUA in config.protocols:
        served.append(f"OPC UA opc.tcp://{config.host}:{config.opcua_port}/")
    head = f"mes sim: {config.machines} machine(s) on {' and '.join(served)}. "
    if config.model_dump(exclude={"seed", "speed", "tick_s", "min_dwell_s", "truth"}) == \
            shipped.model_dump(exclude={"seed", "speed", "tick_s", "min_dwell_s", "truth"}):
        return head + f"The shipped map reads it: mes edge check --config {SHIPPED_MAP}"
    options = " ".join(config.to_args())
    return head + f"Its tag map: mes sim tagmap {options} > sim-agent.yaml"


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _serve(config: SimConfig, *, control: bool) -> None:
    sim = Simulator(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sim.stop)
    try:
        await sim.start()
        _emit(sim.ready_info())
        if control:
            _read_commands(sim, loop)
        await sim.run()
    finally:
        await sim.close()


def _read_commands(sim: Simulator, loop: asyncio.AbstractEventLoop) -> None:
    """Feed stdin lines to `sim.command` from a thread; end of input stops the simulator."""

    async def handle(cmd: str) -> None:
        _emit(await sim.command(cmd))

    def reader() -> None:
        for line in sys.stdin:
            if cmd := line.strip():
                asyncio.run_coroutine_threadsafe(handle(cmd), loop)
        loop.call_soon_threadsafe(sim.stop)

    threading.Thread(target=reader, name="mes-sim-control", daemon=True).start()


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m mes.sim`: `mes sim` on its own."""
    parser = argparse.ArgumentParser(prog="mes sim", description=__doc__.splitlines()[0])
    build(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
